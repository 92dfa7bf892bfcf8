"""bench/intervals.py: each 95% interval holds the true value about 95% of the time, checked by
simulation on known distributions (seeded: the same draws every run)."""

import math
import random

from bench.intervals import quantile_interval, quantile_ranks, ratio_interval, t_975


def coverage(trials, draw, holds):
    rng = random.Random(2026)
    return sum(holds(draw(rng)) for _ in range(trials)) / trials


def test_a_ratio_interval_holds_the_true_ratio_about_95_times_in_100():
    true = math.log(1.1)
    def draw(rng):
        return [math.exp(rng.gauss(true, 0.08)) for _ in range(8)]
    def holds(ratios):
        _, low, high = ratio_interval(ratios)
        return low <= 1.1 <= high
    assert 0.93 <= coverage(2000, draw, holds) <= 0.97


def test_ratios_average_on_logs_and_one_ratio_has_no_interval():
    assert math.isclose(ratio_interval([1.25, 0.8])[0], 1.0)
    assert ratio_interval([1.3]) == (1.3, None, None)
    assert t_975(1) == 12.706 and abs(t_975(31) - 2.0395) < 0.0005


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
