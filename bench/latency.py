"""Latency percentiles that never flatter: a request that got no answer ranks after every
answer, as if it took forever, so a percentile that falls among those is no number at all.

Used by bench/openloop.py; pure functions, tested in-process (tests/test_openloop.py).
"""

# in per mille, so that ranks are exact integers: 0.99 * 100 is 99.00000000000001 in floats
PERCENTILES = (("p50", 500), ("p90", 900), ("p99", 990), ("p999", 999), ("max", 1000))


def ranked(values_s, failures=0):
    """{"p50_ms": .., "p50_past_timeout": .., ...} for each of PERCENTILES, over the values
    (seconds) and `failures` more requests ranked after all of them.

    Nearest rank: pXX is the smallest value that at least XX% of requests took no longer
    than. Where that rank falls among the failures, pXX_ms is None and pXX_past_timeout
    True: with more than 1% failed, p99 is None. With no requests at all, every figure is
    None and no flag is set."""
    values = sorted(values_s)
    total = len(values) + failures
    figures = {}
    for name, per_mille in PERCENTILES:
        rank = -(-per_mille * total // 1000)  # ceil(per_mille * total / 1000), in integers
        past = rank > len(values)
        figures[f"{name}_ms"] = None if past or rank == 0 else round(values[rank - 1] * 1e3, 2)
        figures[f"{name}_past_timeout"] = past
    return figures
