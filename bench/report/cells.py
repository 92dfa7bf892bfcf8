"""results.json read for the tables: the runs grouped, the median run of each point and series
with its spread and ratio (summarize), and how one figure is written in a cell ("-" for what
could not be measured, never 0)."""

from bench.intervals import median_interval
from bench.text import figure

NOISY_SHARE = 0.1  # other processes using more than 10% of a core during a run: NOISY
# A percentile with fewer requests slower than it is one of the few slowest, which another
# run would draw differently, not a figure to read exactly: a p99 of under 1,000 samples.
FEW_ABOVE, FEW = 10, "†"
PER_MILLE = {"p50_ms": 500, "p90_ms": 900, "p99_ms": 990, "p999_ms": 999}
# req/s x the probe's mean latency further than this (%) from the requests the server had in
# service: the probe's requests may not have waited as wrk's did, nor its percentiles be theirs
LITTLE_OFF, LITTLE = 15, "‡"


def cpu_per_request(run):
    return figure(run.get("server_cpu_ms_per_request"), "{:.2f} ms")


def socket_errors(errors):
    return ", ".join(f"{k} {v}" for k, v in errors.items() if v) or "0"


def audit_cell(run, short=False):
    """The audit's result and the run's flags; where it failed, its counts, unless short."""
    audit = run["audit"]
    text = audit["result"]
    if audit["result"] != "ok" and not short:
        text += f" ({audit['what']} {audit['counted']}, clients {audit['wrk_ok']}" + (
            f" + {audit['probe_ok']})" if "probe_ok" in audit else ")")
    return (" " if short else ", ").join([text, *flags(run)])


def flags(run):
    """PARTIAL and INVALID where the run measured fewer clients than asked."""
    return ["PARTIAL"] * bool(unaccepted(run)) + ["INVALID"] * (not run["valid"])


def unaccepted(run):
    """wrk's connections the server never accepted while wrk measured (they waited in the
    listen queue, neither served nor counted), if more than 1% of them. Not for a --workers
    server (it closes each connection: wrk's come and go) nor an open-loop client (it opens
    connections as requests fall due)."""
    accepted = run.get("peak_connections")
    if ((run.get("knobs") or {}).get("workers") or run.get("rate") or accepted is None
            or accepted >= 0.99 * run["connections"]):
        return 0
    return run["connections"] - accepted


def percentile_cell(run, key, detail="n"):
    """A percentile of the open-loop client or the probe (None: it fell among the timeouts),
    the requests it ranked, its 95% interval where recorded if detail is "interval", and its
    marks (FEW, LITTLE); "short", for tables within COLUMNS: "1,720 (300)"."""
    samples, short = run.get("latency_samples"), detail == "short"
    if run[key] is None and "slices" in run:  # interleaved: a paused wrk's requests age
        return "-"
    text = (f"> {run['timeout_s']} s" if run[key] is None else figure(run[key], "{:,.1f} ms")
            if not short or samples is None else figure(run[key], "{:,.0f}"))
    if samples is None:
        return text
    low, high = (detail == "interval" and run.get(key[:-3] + "_interval_ms")) or [None] * 2
    bounds = ("" if low is None else f", 95%: {low:,.1f}–{high:,.1f} ms" if high is not None
              else f", 95%: from {low:,.1f} ms")
    return (f"{text} ({'' if short else 'n='}{samples:,}{bounds})" + FEW * few(run, key)
            + LITTLE * (littles_law_off(run) is not None))


def few(run, key):
    """Fewer than FEW_ABOVE of the requests ranked were slower than this percentile."""
    samples = run.get("latency_samples")
    return bool(samples) and samples * (1000 - PER_MILLE[key]) < FEW_ABOVE * 1000


def littles_law_off(run):
    """How far (%) req/s x the probe's mean latency is from the mean the server counted in
    service, where further than LITTLE_OFF; else None. Not checked for an open-loop run (no
    probe) nor --workers (its count leaves out connections queued for a worker)."""
    estimate, counted = run.get("littles_law_in_service"), run.get("mean_in_service")
    if run.get("rate") or (run.get("knobs") or {}).get("workers") or not counted:
        return None
    off = None if estimate is None else round(100 * (estimate / counted - 1))
    return off if off is not None and abs(off) > LITTLE_OFF else None


def latency_heading(results):
    """The probe's p99, or for interleaved runs the mean by Little's law."""
    return "Mean latency" if any("slices" in run for run in results["runs"]) else "p99 (n)"


def latency_cell(run):
    if "slices" in run:
        return figure(run["latency_mean_ms"], "{:,.1f} ms")
    return percentile_cell(run, "p99_ms", "short")


def server_cpu(run):
    total = figure(run["server_cpu_s"], "{:.1f} s")
    if run.get("server_cpu_user_s") is None:  # not measured here
        return total
    return f"{total} ({run['server_cpu_user_s']:.1f} + {run['server_cpu_system_s']:.1f})"


def switches(run):
    voluntary = run.get("server_ctx_switches_voluntary")
    if voluntary is None:
        return "-"
    involuntary = figure(run["server_ctx_switches_involuntary"], "{:,}")
    per_request = figure(run.get("server_switches_per_request"), "{:.1f}")
    return f"{per_request} ({voluntary:,} + {involuntary})"


def migrations(run):
    per_request = figure(run.get("server_migrations_per_request"), "{:.2f}")
    return f"{per_request} (on {cpu_list((run.get('cpus') or {}).get('seen'))})"


def cpu_list(cpus):
    return "-" if cpus is None else ",".join(map(str, cpus))


def placed(results):
    """Per placement, the CPUs the server was allowed (read back from it), those its threads
    were seen running on, and the load's."""
    by_placement = {}
    for run in results["runs"]:
        by_placement.setdefault(run.get("placement"), []).append(run.get("cpus") or {})

    def listed(cpus, key):
        return " or ".join(sorted({cpu_list(c.get(key)) for c in cpus}))
    return " ".join(f"Placement {where}: the server allowed CPUs {listed(cpus, 'server')} (read "
                    f"back from the OS), its threads seen running on {listed(cpus, 'seen')}; "
                    f"wrk, Postgres and Redis on {listed(cpus, 'load')}."
                    for where, cpus in by_placement.items())


def opening(run):
    """How long the server took to answer every connection wrk opened at once."""
    opened = run.get("opening") or {}
    if opened.get("all_answered_s") is not None:
        return f"{opened['all_answered_s']:.1f} s"
    if opened.get("answered") is None:
        return "-"
    return f"{opened['answered']:,} of {opened['connections']:,} by {opened['limit_s']} s"


def idle_cost(results):
    """results with only the runs that held idle connections, each given idle_kib: KiB of peak
    RSS grown per idle connection over the same server with none (None: not known)."""
    unloaded = {run["series"]: run for run in results["runs"] if not run.get("idle")}
    runs = []
    for run in results["runs"]:
        base, idle = unloaded.get(run["series"]), run.get("idle")
        if not idle:
            continue
        grown = None
        if base and idle["opened"] and None not in (run["peak_rss_mb"], base["peak_rss_mb"]):
            grown = (run["peak_rss_mb"] - base["peak_rss_mb"]) * 1024 / idle["opened"]
        runs.append({**run, "idle_kib": grown})
    return {**results, "runs": runs}


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


def compared(results):
    """Whether Ratio compares anything (not so with --only, which runs one server alone)."""
    return any(row["ratio"] is not None and row["series"] != results["baseline"]
               for row in summarize(results))


def series_ran(results):
    return " and ".join(dict.fromkeys(run["series"] for run in results["runs"]))


def summarize(results):
    """One row per point and series: the median run, the spreads over repeats of req/s and
    CPU/req, and the ratio of its req/s to the baseline's at that point (None without one);
    for interleaved runs, the ratio within rounds with its 95% interval."""
    rows = []
    for point, by_series in groups(results["runs"]).items():
        baseline = by_series.get(results["baseline"])
        baseline_rps = median_run(baseline)["rps"] if baseline else None
        for series, runs in by_series.items():
            run = median_run(runs)
            rps = [r["rps"] for r in runs]
            cpu = [r.get("server_cpu_ms_per_request") for r in runs]
            within = (interleaved(runs, baseline) if baseline and "slices" in run
                      and series != results["baseline"] else None)
            rows.append({"point": point, "series": series, "run": run,
                         "spread": (min(rps), max(rps)) if len(rps) > 1 else None,
                         "cpu_spread": (min(cpu), max(cpu)) if len(cpu) > 1
                         and None not in cpu else None,
                         "ratio": within[0] if within else
                         run["rps"] / baseline_rps if baseline_rps else None,
                         "interval": within[1:] if within else None})
    return rows


def interleaved(runs, baseline):
    """(ratio, low, high, rounds): the median of the rounds' req/s ratios to the baseline's in
    the same round (and repeat), with its 95% interval."""
    base = {run["repeat"]: run["slices"] for run in baseline}
    ratios = [(served / seconds) / (base_served / base_seconds)
              for run in runs for (served, seconds), (base_served, base_seconds)
              in zip(run["slices"], base.get(run["repeat"], []))
              if served and base_served]
    return (*median_interval(ratios), len(ratios)) if ratios else None


def ratio_cell(row):
    """The ratio, and its 95% interval where it was measured within rounds."""
    text = figure(row["ratio"], "{:.2f}x")
    if row["interval"] and row["interval"][0] is not None:
        text += " ({:.2f}–{:.2f})".format(*row["interval"][:2])
    return text
