"""95% intervals, standard library only: for a ratio measured over rounds, and for a quantile.

A ratio between two servers is the geometric mean of its per-round ratios, with a Student t
interval on their logarithms: ratios multiply, so their logs are what averages fairly (1.25x
and 0.8x cancel to 1.00x), and t, not the normal, because rounds are few.

A quantile's interval needs no assumption about the latencies' distribution: the number of
samples below the true pth quantile is Binomial(n, p), so the order statistics at ranks
n*p -/+ 1.96*sqrt(n*p*(1-p)) bound it with about 95% confidence (the normal approximation of
the binomial; with 300 samples, p99's interval runs from about the 293rd value to the last).
"""

import math
import statistics

Z = 1.959964  # the normal's 97.5th percentile
# Student's t at 97.5%, by degrees of freedom; past 30, Cornish-Fisher's expansion (two terms)
# is within 0.0005 of it.
T_975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
         2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
         2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def t_975(df):
    if df <= len(T_975):
        return T_975[df - 1]
    return Z + (Z**3 + Z) / (4 * df) + (5 * Z**5 + 16 * Z**3 + 3 * Z) / (96 * df**2)


def ratio_interval(ratios):
    """(geometric mean, low, high) of positive ratios; low and high are None with fewer than
    two (no spread to measure)."""
    logs = [math.log(r) for r in ratios]
    mean = statistics.fmean(logs)
    if len(logs) < 2:
        return math.exp(mean), None, None
    half = t_975(len(logs) - 1) * statistics.stdev(logs) / math.sqrt(len(logs))
    return math.exp(mean), math.exp(mean - half), math.exp(mean + half)


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
