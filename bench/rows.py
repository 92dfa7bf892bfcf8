"""results.json grouped for reading: the runs of each point and series, the median run of
each, its spread over repeats and its ratio to the scenario's baseline. The summary
(report.py), its plain reading (reading.py) and the chart (chart.py) all read through here.
"""


def groups(runs):
    """{point: {series: [runs]}}, in the order the runs were planned."""
    grouped = {}
    for run in runs:
        grouped.setdefault(run["point"], {}).setdefault(run["series"], []).append(run)
    return grouped


def median_run(runs):
    """The run with the median req/s. For an even count, the lower of the two middle runs
    stands for the others' figures, and its req/s is the true median: the mean of the two
    middle ones (with two repeats, the lower alone would be the worse repeat, not a middle)."""
    ranked = sorted(runs, key=lambda run: run["rps"])
    middle = ranked[(len(ranked) - 1) // 2]
    if len(ranked) % 2:
        return middle
    return {**middle, "rps": (middle["rps"] + ranked[len(ranked) // 2]["rps"]) / 2}


def baseline_of(results):
    """The series Ratio divides by at each point."""
    return results["baseline"]


def summarize(results):
    """One row per point and series: the median run, the spread of req/s over repeats, and
    the ratio of its req/s to the baseline series' at that point (None without a baseline)."""
    rows = []
    for point, by_series in groups(results["runs"]).items():
        baseline = by_series.get(baseline_of(results))
        baseline_rps = median_run(baseline)["rps"] if baseline else None
        for series, runs in by_series.items():
            run = median_run(runs)
            rps = [r["rps"] for r in runs]
            cpu = [r.get("server_cpu_ms_per_request") for r in runs]
            rows.append({"point": point, "series": series, "run": run,
                         "spread": (min(rps), max(rps)) if len(rps) > 1 else None,
                         "cpu_spread": (min(cpu), max(cpu)) if len(cpu) > 1
                         and None not in cpu else None,
                         "ratio": run["rps"] / baseline_rps if baseline_rps else None})
    return rows
