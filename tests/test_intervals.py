"""bench/intervals.py: each 95% interval holds the true value about 95% of the time, checked by
simulation on known distributions (seeded: the same draws every run)."""

import math
import random

from bench.intervals import median_interval, quantile_interval, quantile_ranks


def coverage(trials, draw, holds):
    rng = random.Random(2026)
    return sum(holds(draw(rng)) for _ in range(trials)) / trials


def test_a_ratio_interval_holds_the_median_at_least_95_times_in_100_even_with_stalls():
    """Rounds that are mostly near 1.1x, and now and then 2-6x off (a stall in one slice):
    the interval holds the true median whatever the tail, for 6 to 20 rounds."""
    def draw(rng, n):
        return [rng.uniform(2, 6) if rng.random() < 0.1 else math.exp(rng.gauss(0.1, 0.1))
                for _ in range(n)]
    true = 1.1208  # this mixture's median, by a million draws
    for n in (6, 11, 20):
        def holds(ratios):
            _, low, high = median_interval(ratios)
            return low <= true <= high
        assert 0.95 <= coverage(2000, lambda rng: draw(rng, n), holds) <= 0.995, n


def test_a_ratio_is_the_middle_round_and_five_rounds_have_no_interval():
    assert median_interval([1.3, 0.9, 6.0, 1.1, 1.2, 1.0]) == (1.15, 0.9, 6.0)
    assert median_interval([1.3, 0.9, 6.0, 1.1, 1.2]) == (1.2, None, None)
    ratios = [0.92, 1.02, 1.07, 1.1, 1.1, 1.12, 1.2, 1.23, 1.29, 1.36, 2.24]
    assert median_interval(ratios) == (1.12, 1.02, 1.36)  # ranks 2 and 10 of 11


def test_a_quantile_interval_holds_the_true_p99_about_95_times_in_100():
    true = -math.log(0.01)  # exponential(1)'s 99th percentile
    def draw(rng):
        return sorted(rng.expovariate(1) for _ in range(2000))
    def holds(values):
        low, high = quantile_interval(values, 990)
        return low <= true <= high
    assert 0.93 <= coverage(1000, draw, holds) <= 0.99


def test_a_p99_of_300_samples_has_no_measured_upper_bound_and_timeouts_rank_last():
    assert quantile_ranks(300, 990) == (293, 301)
    values = [float(v) for v in range(1, 301)]
    assert quantile_interval(values, 990) == (293.0, None)
    low, high = quantile_interval(values[:295], 500, failures=5)
    assert (low, high) == (values[quantile_ranks(300, 500)[0] - 1],
                           values[quantile_ranks(300, 500)[1] - 1])
    assert quantile_interval([], 990) == (None, None)
