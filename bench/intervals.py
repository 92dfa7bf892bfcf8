"""95% intervals, standard library only: for a ratio measured over rounds, and for a quantile.

A ratio between two servers is the median of its per-round ratios, with the interval the
order statistics give it (the sign test's): the number of rounds below the true median is
Binomial(n, 1/2), so the ranks k and n + 1 - k bound it with at least 95% confidence for the
largest k that allows. No assumption about the rounds' spread: here a round is sometimes
2-6x off (a full garbage collection or a stall of the machine landing in one 1 s slice), a
tail that makes a geometric mean's t interval jump from run to run (measured on the same
five runs: means 1.05x-1.36x, medians 1.08x-1.13x). It needs 6 rounds: with 5, all on one
side happens 1 time in 16.

A quantile's interval needs no assumption about the latencies' distribution either: the
number of samples below the true pth quantile is Binomial(n, p), so the order statistics at
ranks n*p -/+ 1.96*sqrt(n*p*(1-p)) bound it with about 95% confidence (the normal
approximation of the binomial; with 300 samples, p99's interval runs from about the 293rd
value to past the last).
"""

import math
import statistics

Z = 1.959964  # the normal's 97.5th percentile


def median_interval(values):
    """(median, low, high) of values; low and high are None with fewer than 6 values."""
    ranked, n = sorted(values), len(values)
    k = 0  # the largest k with P(Binomial(n, 1/2) < k) <= 2.5%
    while sum(math.comb(n, i) for i in range(k + 1)) / 2**n <= 0.025:
        k += 1
    if k == 0:
        return statistics.median(ranked), None, None
    return statistics.median(ranked), ranked[k - 1], ranked[n - k]


def quantile_ranks(n, per_mille):
    """(low, high): 1-based ranks among n ranked samples that bound the per_mille quantile with
    about 95% confidence; low is at least 1; high may pass n (no upper bound measured)."""
    p = per_mille / 1000
    half = Z * math.sqrt(n * p * (1 - p))
    return max(1, math.floor(n * p - half)), math.ceil(n * p + half)


def quantile_interval(sorted_values, per_mille, failures=0):
    """(low, high) of the per_mille quantile over sorted_values and `failures` more samples
    ranked after every value (timeouts: they took longer than anything answered). A bound that
    falls among the failures, or past the last sample, is None: not measured."""
    n = len(sorted_values) + failures
    if n == 0:
        return None, None
    low, high = quantile_ranks(n, per_mille)
    def at(rank):
        return sorted_values[rank - 1] if rank <= len(sorted_values) else None
    return at(low), at(high)
