"""Turn results.json into the table a learner reads and a plain reading of it.

    python bench/report.py results/latest     # writes summary.md and chart.svg again

results.json holds scenario, x_axis, baseline (the series Ratio divides by), machine
(machine.describe_machine), settings (bench/run.py's flags and its notes on the open-files
limit and the listen queue) and runs, each a dict as measure.measure documents it.
"""

import json
import sys
from pathlib import Path

from cells import (NOISY_SHARE, TIMED_OUT_SHARE, audit_cell, cell_ms, figure, percentile_cell,
                   migrations, placed, server_cpu, socket_errors, switches, unaccepted)
from idle import idle_table
from profiles import shares_table
from scenarios import SCENARIOS

ARTICLE_TABLE = """\
The article's figures (2017; Django 1.8 on gunicorn with 2 sync workers, DEBUG on, a new
Postgres connection per request, against aiohttp; Docker on a 2-core laptop; wrk -t10,
averages of 5 runs). Not measured here:

| wrk command | Server | Requests | Connect errors | Timeouts | Req/s |
|---|---|---|---|---|---|
| -c 500 -t 10 (10 s) | Django | 1049 | 257 | 116 | 104 |
| -c 500 -t 10 (10 s) | aiohttp | 5904 | 257 | 0 | 585 |
| -c 1500 -t 10 -d 60s --timeout 5s | Django | 6128 | 1257 | 88 (+5 non-2xx) | 102 |
| -c 1500 -t 10 -d 60s --timeout 5s | aiohttp | 36563 | 1257 | 0 | 608 |
"""

COLUMNS = ["Server", "Requests", "Req/s", "Ratio", "CPU/req", "p50", "p99", "Timeouts",
           "Socket errors", "Non-2xx", "Accepted", "Peak threads", "Peak RSS", "Audit"]


def groups(runs):
    """{point: {series: [runs]}}, in the order the runs were planned."""
    grouped = {}
    for run in runs:
        grouped.setdefault(run["point"], {}).setdefault(run["series"], []).append(run)
    return grouped


def median_run(runs):
    """The run with the median req/s (the lower middle one for an even count)."""
    ranked = sorted(runs, key=lambda run: run["rps"])
    return ranked[(len(ranked) - 1) // 2]


def baseline_of(results):
    """The series Ratio divides by; results.json from before it named one go by the scenario."""
    return results.get("baseline") or SCENARIOS[results["scenario"]].baseline


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


def table(results):
    axis = results["x_axis"][0].upper() + results["x_axis"][1:]
    lines = [f"| {axis} | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for row in summarize(results):
        run = row["run"]
        rps = f"{run['rps']:,.0f}"
        if row["spread"]:
            rps += f" ({row['spread'][0]:,.0f}–{row['spread'][1]:,.0f})"
        cells = [row["point"], row["series"], f"{run['requests']:,}", rps,
                 figure(row["ratio"], "{:.2f}x"),
                 figure(run.get("server_cpu_ms_per_request"), "{:.2f} ms") + (
                     " ({:.2f}–{:.2f})".format(*row["cpu_spread"]) if row["cpu_spread"] else ""),
                 percentile_cell(run, "p50_ms", 0.5),
                 percentile_cell(run, "p99_ms", TIMED_OUT_SHARE), f"{run['timeouts']:,}",
                 socket_errors(run["socket_errors"]), f"{run['non_2xx']:,}",
                 figure(run.get("peak_connections"), "{:,}"),
                 figure(run["peak_threads"]), figure(run["peak_rss_mb"], "{:.0f} MB"),
                 audit_cell(run)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def placement_reading(results):
    """Where one request was run in several placements: per placement, in plain words, how
    the other series compared with the baseline, and the baseline's CPU, context switches and
    migrations per request, which is where a thread per connection pays for a placement."""
    base_name, by_request = baseline_of(results), {}
    for run in results["runs"]:
        request = f"{run['method']} {run.get('path', '/')} c={run.get('connections')}"
        by_request.setdefault(request, {}).setdefault(run.get("placement"), []).append(run)
    sentences = []
    for request, by_placement in by_request.items():
        if len(by_placement) < 2 or None in by_placement:
            continue
        parts = []
        for where, runs in by_placement.items():
            base = [r for r in runs if r["series"] == base_name]
            others = [r for r in runs if r["series"] != base_name]
            if not base or not others:
                continue
            b, o = median_run(base), median_run(others)
            parts.append(
                f"{where}, {o['series']} served {o['rps'] / b['rps']:.2f}x {base_name}'s "
                f"req/s ({o['rps']:,.0f} vs {b['rps']:,.0f}); {base_name} used "
                f"{figure(b.get('server_cpu_ms_per_request'), '{:.2f} ms')} of CPU, "
                f"{figure(b.get('server_switches_per_request'), '{:.1f}')} context switches "
                f"and {figure(b.get('server_migrations_per_request'), '{:.2f}')} migrations per "
                f"request, {o['series']} "
                f"{figure(o.get('server_cpu_ms_per_request'), '{:.2f} ms')}, "
                f"{figure(o.get('server_switches_per_request'), '{:.1f}')} and "
                f"{figure(o.get('server_migrations_per_request'), '{:.2f}')}")
        if parts:
            sentences.append(f"- {request}: " + "; ".join(parts) + ".")
    if sentences:
        sentences.insert(0, "Placement: shared lets the OS put every process on any CPU, as "
                         "on a laptop; isolated gives the server a core of its own, a control "
                         "no laptop has; spread gives it both cores with the load on one.")
    return sentences


def reading(results):
    """Plain sentences: first what the placements show, then at each point who served more
    than the baseline series and by how much, then what went wrong."""
    sentences, base_name = placement_reading(results), baseline_of(results)
    for point, by_series in groups(results["runs"]).items():
        if base_name not in by_series:
            continue
        base = median_run(by_series[base_name])
        for name, runs in by_series.items():
            other = median_run(runs)
            if name == base_name or not base["rps"] or not other["rps"]:
                continue
            (more, a), (less, b) = sorted([(name, other), (base_name, base)],
                                          key=lambda pair: -pair[1]["rps"])
            sentences.append(
                f"- {point}: {more} served {a['rps'] / b['rps']:.2f}x the requests per second "
                f"of {less} ({a['rps']:,.0f} vs {b['rps']:,.0f}); p99 {cell_ms(a['p99_ms'])} "
                f"vs {cell_ms(b['p99_ms'])}; timeouts {a['timeouts']:,} vs {b['timeouts']:,}.")
            sentences += ratio_spread(point, name, runs, by_series[base_name], base_name)
    runs = results["runs"]
    for run in runs:
        if unaccepted(run):
            sentences.append(
                f"- PARTIAL: {run['series']} at {run['point']} accepted at most "
                f"{run['peak_connections']:,} of wrk's {run['connections']:,} connections "
                f"while wrk measured; the other {unaccepted(run):,} waited in the listen "
                "queue, neither served nor counted: this row measures fewer clients.")
    for run in runs:
        if (run.get("other_cpu_s") or 0) > NOISY_SHARE * run.get("duration_s", 0):
            sentences.append(
                f"- NOISY: during {run['series']} at {run['point']}, other processes on this "
                f"machine used {run['other_cpu_s']:.1f} s of CPU in {run['duration_s']} s: "
                "they took CPU from what was measured; compare with care, or run it again.")
    invalid = [r for r in runs if not r["valid"]]
    if invalid:
        sentences.append(f"- {len(invalid)} run(s) had socket connect errors and are INVALID: "
                         "wrk could not open all its connections (an open-files or backlog "
                         "limit on this machine, as in the article's 257 and 1257), so they "
                         "measured fewer connections than asked.")
    errors = [r for r in runs if r["non_2xx"]]
    for run in errors:
        sentences.append(f"- {run['series']} at {run['point']} answered {run['non_2xx']:,} "
                         "requests with an error status (see its server log).")
    failed = [r for r in runs if r["audit"]["result"] != "ok"]
    for run in failed:
        sentences.append(f"- Audit {run['audit']['result']} for {run['series']} at "
                         f"{run['point']}: {audit_cell(run)}.")
    return "\n".join(sentences)


def ratio_spread(point, name, runs, base_runs, base_name):
    """With repeats: this series' ratio to the baseline in each repeat, and their range."""
    base_by_repeat = {run.get("repeat"): run["rps"] for run in base_runs}
    ratios = [run["rps"] / base_by_repeat[run.get("repeat")] for run in runs
              if base_by_repeat.get(run.get("repeat"))]
    if len(ratios) < 2:
        return []
    listed = ", ".join(f"{ratio:.2f}x" for ratio in ratios)
    return [f"- {point}: {name} / {base_name}, repeat by repeat: {listed} (range "
            f"{min(ratios):.2f}x–{max(ratios):.2f}x)."]


def inside_the_runs(results):
    lines = ["| Point | Server | req/s × mean latency | mean in service (sampled) | "
             "peak in service (/stats) | server CPU (user + system) | CPU per request | "
             "context switches per request (voluntary + involuntary) | CPU migrations per "
             "request (CPUs run on) | Postgres CPU | Redis CPU | wrk CPU | other CPU |",
             "|---" * 13 + "|"]
    for row in summarize(results):
        run = row["run"]
        cells = [figure(run.get("littles_law_in_service")), figure(run["mean_in_service"]),
                 figure(run["peak_in_service"]), server_cpu(run),
                 figure(run.get("server_cpu_ms_per_request"), "{:.2f} ms"), switches(run),
                 migrations(run),
                 figure(run.get("postgres_cpu_s"), "{:.1f} s"),
                 figure(run.get("redis_cpu_s"), "{:.1f} s"), figure(run["wrk_cpu_s"], "{:.1f} s"),
                 figure(run.get("other_cpu_s"), "{:.1f} s")]
        lines.append(f"| {row['point']} | {row['series']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def threads_used(results):
    """wrk's threads as asked, and where a run with fewer connections had fewer."""
    asked = results["settings"]["threads"]
    fewer = sorted({run["threads"] for run in results["runs"] if run["threads"] < asked})
    if not fewer:
        return f"{asked} threads"
    return (f"{asked} threads ({', '.join(map(str, fewer))} in runs with fewer connections: "
            "wrk needs a connection per thread)")


def render_summary(results):
    machine, settings = results["machine"], results["settings"]
    median = " (median, min–max)" if settings["repeat"] > 1 else ""
    return f"""
# Benchmark: scenario `{results['scenario']}`

Machine: {machine['cores']} cores ({machine['cpu']}), Python {machine['python']}, \
{machine['os']}, {machine['wrk']}. wrk, both servers, Postgres and Redis run on this one
machine: compare the servers within this run, not with runs on other machines.
Runs: {settings['duration_s']} s each after a {settings['warmup_s']} s warm-up, wrk with \
{threads_used(results)}, {settings['repeat']} repeat(s){median}. {placed(results)}

{table(results)}

Ratio: req/s divided by the req/s of `{baseline_of(results)}` at the same point, the
scenario's baseline (1.00x). p50 and p99 leave out responses slower than wrk's --timeout,
which count as timeouts; where those are more than 1% of the responses, p99 reads
"> timeout". CPU/req: the server's CPU time over the requests it counted itself, in the same
window. Accepted: the most connections the server held open at once (PARTIAL: fewer than
wrk opened). Audit: the Redis counter or the new rows match wrk's successful responses, plus
at most one request per connection still in flight when wrk stopped. A "-" is a figure this
machine could not measure.

## What it says

{reading(results)}

## Inside the runs

Little's law: requests in service = throughput × time each spends in the system. The first
column computes it from wrk's figures, the next two are what the server counted. CPU is
seconds used during the {settings['duration_s']} s run, out of {machine['cores']} cores × \
{settings['duration_s']} s: what wrk uses, the servers, Postgres and Redis cannot.
Context switches and CPU migrations are summed over all the server's threads, from the
kernel's per-thread counts (Linux; bench/scheduler.py), and divided by the requests the
server counted in the window; a migration is a thread woken on another CPU than it last ran
on. "CPUs run on" are those its threads were seen running on.

{inside_the_runs(results)}

{idle_table(results)}{shares_table(results)}
## For comparison

{ARTICLE_TABLE}"""


def main():
    if len(sys.argv) != 2 or sys.argv[1] in ("-h", "--help"):
        sys.exit("usage: python bench/report.py RESULTS_DIR  (rewrites summary.md and chart.svg "
                 "from its results.json)")
    out_dir = Path(sys.argv[1])
    results = json.loads((out_dir / "results.json").read_text())
    (out_dir / "summary.md").write_text(render_summary(results))
    from chart import write_chart  # chart.py imports this module's summarize()
    write_chart(results, out_dir / "chart.svg")


if __name__ == "__main__":
    main()
