"""95% intervals, standard library only, assuming nothing of the values' distribution.

A ratio over rounds is the median of its per-round ratios, bounded by the order statistics at
ranks k and n + 1 - k (the sign test: the rounds below the true median are Binomial(n, 1/2)).
Measured: a round is sometimes 2-6x off (a full garbage collection or a stall of the machine in
its 1 s slice), a tail that made a geometric mean's t interval jump from run to run (on the
same five runs: means 1.05x-1.36x, medians 1.08x-1.13x). It needs 6 rounds: with 5, all on
one side happens 1 time in 16.

A quantile is bounded by the order statistics at ranks n*p -/+ 1.96*sqrt(n*p*(1-p)) (the
samples below the true quantile are Binomial(n, p), taken as normal): for p99 of 300 samples,
from about the 293rd value to past the last.
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
    """(low, high): the 1-based ranks of n samples bounding the quantile; high may pass n."""
    p = per_mille / 1000
    half = Z * math.sqrt(n * p * (1 - p))
    return max(1, math.floor(n * p - half)), math.ceil(n * p + half)


def quantile_interval(sorted_values, per_mille, failures=0):
    """(low, high) of the quantile over sorted_values and `failures` more samples ranked after
    them (timeouts); a bound among the failures or past the last sample is None: not measured."""
    ranks = quantile_ranks(len(sorted_values) + failures, per_mille)  # (1, 0) of no samples
    return tuple(sorted_values[rank - 1] if 0 < rank <= len(sorted_values) else None
                 for rank in ranks)
