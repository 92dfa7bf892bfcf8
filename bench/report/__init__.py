"""results.json turned into summary.md's tables and legends, and the table ./run_bench.sh
prints at the end (terminal_summary, within COLUMNS).

    python -m bench.report results/latest     # writes every file of the report again
"""

import os
import re
import sys
import textwrap
from pathlib import Path

from bench.report.capacity_report import capacity_charts, capacity_section, terminal_view
from bench.report.cells import (FEW, FEW_ABOVE, LITTLE, LITTLE_OFF, audit_cell, compared,
                                cpu_per_request, few, idle_cost, latency_cell,
                                latency_heading, littles_law_off, migrations, opening,
                                percentile_cell, placed, ratio_cell, series_ran, server_cpu,
                                socket_errors, summarize, switches)
from bench.report.charts import drawn, write_chart
from bench.report.flamegraphs import draw_flamegraphs, shares_table
from bench.report.page import write_page
from bench.report.reading import SMOKE_TEST, reading
from bench.results import load
from bench.text import COLUMNS, figure, markdown_table

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

def axis(results):
    return results["x_axis"][0].upper() + results["x_axis"][1:]


def rps_cell(row):
    """The median run's req/s, and the repeats' range where there were repeats."""
    return f"{row['run']['rps']:,.0f}" + (f" {spread_cell(row)}" if row["spread"] else "")


def spread_cell(row):
    return f"({row['spread'][0]:,.0f}–{row['spread'][1]:,.0f})" if row["spread"] else ""


def table(results, short=False):
    """A table of the runs, a row per point and server: short, summary.md's first, within
    COLUMNS (README.md copies rows of docs/runs/fair's), or with every column. No Ratio where
    it compares nothing (--only)."""
    ratio = compared(results)
    headings = [axis(results), "Server", "Req/s", *["Ratio"] * ratio, "CPU/req"] + (
        [latency_heading(results), "Audit"] if short else
        ["p50", "p99", "All answered", "Timeouts", "Socket errors", "Non-2xx", "Accepted",
         "Peak threads", "Peak RSS", "Audit"])

    def cells(row):
        run = row["run"]
        cpu = cpu_per_request(run)
        common = [row["point"], row["series"], rps_cell(row), *[ratio_cell(row)] * ratio]
        if short:
            return common + [cpu, latency_cell(run), audit_cell(run, short=True)]
        if row["cpu_spread"]:
            cpu += " ({:.2f}–{:.2f})".format(*row["cpu_spread"])
        return common + [cpu, percentile_cell(run, "p50_ms", "interval"),
                         percentile_cell(run, "p99_ms", "interval"), opening(run),
                         "-" if "slices" in run else f"{run['timeouts']:,}",
                         socket_errors(run["socket_errors"]), f"{run['non_2xx']:,}",
                         figure(run.get("peak_connections"), "{:,}"),
                         figure(run["peak_threads"]), figure(run["peak_rss_mb"], "{:.0f} MB"),
                         audit_cell(run)]
    return markdown_table(headings, [cells(row) for row in summarize(results)])


def footnotes(results):
    """Under the first table: what n and the marks in every table's percentiles mean."""
    runs = [row["run"] for row in summarize(results)]
    if not any(run.get("latency_samples") for run in runs):  # interleaved runs time none
        return ""
    recorded = any(run.get("p99_interval_ms") is not None for run in runs)
    notes = ["p99 (n) is in ms, over n requests, answered or not "
             + ("(the table after this one gives each percentile's 95% interval)." if recorded
                else "(95% interval not recorded: results.json before version 2 kept none).")]
    if any(few(run, key) for run in runs for key in ("p99_ms", "p999_ms") if key in run):
        notes.append(f"{FEW}: fewer than {FEW_ABOVE} requests were slower than this "
                     "percentile (for a p99: n under 1,000), so it is one of the few slowest, "
                     "which another run would draw differently, not an exact figure.")
    if any(littles_law_off(run) is not None for run in runs):
        notes.append(f"{LITTLE}: req/s × the probe's mean latency is more than {LITTLE_OFF}% off "
                     "the requests in service (LATENCY, in What it says), so the probe's "
                     "percentiles may not be those of wrk's requests.")
    return textwrap.fill(" ".join(notes), COLUMNS, break_on_hyphens=False) + "\n\n"


def inside_the_runs(results):
    headings = ["Point", "Server", "req/s × probe's mean latency", "mean in service (sampled)",
                "peak in service (/stats)", "server CPU (user + system)", "CPU per request",
                "context switches per request (voluntary + involuntary)",
                "CPU migrations per request (CPUs run on)", "GC pauses (longest)",
                "Postgres CPU", "Redis CPU", "wrk CPU", "other CPU"]

    def cells(row):
        run = row["run"]
        off = littles_law_off(run)
        return [row["point"], row["series"], figure(run.get("littles_law_in_service"))
                + ("" if off is None else f" ({off:+d}%){LITTLE}"),
                figure(run["mean_in_service"]), figure(run["peak_in_service"]), server_cpu(run),
                cpu_per_request(run), switches(run), migrations(run), gc_pauses(run),
                *[figure(run.get(key), "{:.1f} s") for key in
                  ("postgres_cpu_s", "redis_cpu_s", "wrk_cpu_s", "other_cpu_s")]]
    return section("Inside the runs", inside_intro(results), headings,
                   [cells(row) for row in summarize(results)])


def inside_intro(results):
    """What "Inside the runs" shows, said for each kind of run in it: with a probe (wrk's runs
    made one at a time), interleaved, or open loop."""
    runs = results["runs"]
    said = ["Little's law: requests in service = throughput × the time each spends in the "
            "system. The second and third columns are the requests the server itself counted "
            "in service."]
    if any(run.get("probe") for run in runs):
        said.append("In a run with a probe, the first column estimates the same as req/s × the "
                    "probe's mean latency, which should come near wrk's connections plus the "
                    f"probe's few. {LITTLE} marks a run where it is more than {LITTLE_OFF}% off "
                    "the mean the server counted: the probe's requests may not have waited as "
                    "wrk's did. A --workers server gets no mark, as its count leaves out the "
                    "connections waiting for a worker. The CPU of such a run is counted over the "
                    f"{results['settings']['duration_s']} s window and the probe's warm-up of "
                    "about a second before it.")
    if any("slices" in run for run in runs):
        said.append("Interleaved runs have no probe, and their mean latency is itself "
                    "connections / req/s, so req/s × it would only give back wrk's connections: "
                    "their first column reads \"-\". Their CPU is counted over every round of "
                    "their point, the other server's slices included.")
    if any(run.get("rate") for run in runs):
        said.append("Open-loop runs have no probe (their client times every request itself), so "
                    "their first column reads \"-\". Their CPU is counted over the window, "
                    "after the client's warm-up.")
    return textwrap.fill(" ".join(said + [
        "The CPU columns give the seconds each process used in that time, out of "
        f"{results['machine']['cores']} cores × that time; what wrk, Postgres and Redis used, "
        "the servers could not. Context switches and migrations are summed over the server's "
        "threads (Linux's per-thread counts) and divided by the requests it counted. A "
        "migration is a thread woken on another CPU than the one it last ran on; \"CPUs run "
        "on\" lists those its threads were seen on. GC pauses: the server's collections in the "
        "same time, as it timed them; no Python code runs during one."]),
        COLUMNS, break_on_hyphens=False)


def section(title, intro, headings, rows):
    if not rows:
        return ""
    return f"## {title}\n\n{intro}\n\n{markdown_table(headings, rows)}\n\n"


def offered_table(results):
    """Runs at a fixed offered rate: what the waits cost each model."""
    def cells(run):
        held = run.get("held") or {}
        return [run["point"], run["series"], f"{run['rate']:,.0f}/s", f"{run['rps']:,.0f}",
                figure(run.get("waiting_upstream_peak"), "{:,}"),
                *[percentile_cell(run, key, "interval")
                  for key in ("p50_ms", "p99_ms", "p999_ms")],
                f"{run['timeouts']:,}", socket_errors(run["socket_errors"]),
                figure(held.get("threads"), "{:,}"), figure(held.get("fds"), "{:,}"),
                figure(run["peak_rss_mb"], "{:,.0f} MB"),
                figure(run.get("kernel_stack_kb"), "{:,} KiB"), cpu_per_request(run),
                gc_pauses(run), figure(run.get("wrk_cpu_s"), "{:.1f} s"),
                run.get("limit_met") or "none"]
    return section(
        "What the waiting requests cost",
        "Offered: requests sent a second on a fixed schedule (bench/openloop.py), each timed "
        "from when it was due. Waiting: the most requests the server counted inside the "
        "upstream wait at once. Threads and open files: the server's at the end of the "
        "window; kernel stacks: the machine's growth since before the run (Linux). Client "
        "CPU: the open-loop client's own.",
        ["Point", "Server", "Offered", "Answered req/s", "Waiting", "p50", "p99", "p99.9",
         "Timeouts", "Errors", "Threads", "Open files", "Peak RSS", "Kernel stacks", "CPU/req",
         "GC pauses (longest) in collections (full)", "Client CPU", "Limit met"],
        [cells(row["run"]) for row in summarize(results) if row["run"].get("rate")])


def limits_table(results):
    """Runs that met a limit: when, what the clients got, what the server said, and after."""
    def cells(run):
        offered, first = run["offered"], run["offered"].get("first_failure")
        connecting = offered.get("timeouts_connecting", 0)
        said = run.get("limit_lines")
        cap = run.get("thread_cap_how") or "-"
        if run.get("threads_refused") is not None:
            cap += f"; {run['threads_refused']:,} refused"
        return [run["point"], run["series"], run["limit_met"],
                f"{first['due_clock'] - offered['start_clock']:.1f} s ({first['in_flight']:,})"
                if first else "-", f"{run['ok']:,}", f"{connecting:,}",
                f"{run['timeouts'] - connecting:,}",
                f"{sum(run['socket_errors'].get(k, 0) for k in ('connect', 'read', 'write')):,}",
                f"{run['non_2xx']:,}",
                f"{said['count']:,} lines: \"{said['first'].split(' ', 3)[-1]}\""
                if said else "nothing", served_again(run), cap]
    return section(
        "The limits met",
        "Met: when the first request that got no 2xx was due, from the first one due, and the "
        "client's requests in flight then (sampled every 0.1 s). Over the window, the clients' "
        "requests timed out connecting (the server was not accepting), timed out once "
        "connected, were refused or reset, or got a 5xx. Server's log: its first line naming "
        "the limit, and how many. Served again: seconds from the clients' end until a new "
        "connection got a 200 from /health; \"no\": not within the timeout and 10 s more "
        "(requests accepted late still wait out their wait), then, where counted, when it last "
        "answered and what it did from then. Thread cap: how the OS capped the server's "
        "threads, and how many it refused (pids.events).",
        ["Point", "Server", "Limit met", "Met (in flight)", "2xx", "Timed out connecting",
         "Timed out", "Refused or reset", "5xx", "Server's log", "Served again", "Thread cap"],
        [cells(row["run"]) for row in summarize(results) if row["run"].get("limit_met")])


def idle_table(results):
    """Runs with idle connections: what each one cost the server."""
    def cells(run):
        idle = run["idle"]
        closed = idle["closed_by_server"]
        stacks = idle["kernel_stack_kb"]
        return [run["point"], run["series"], f"{idle['opened']:,}",
                f"no: {closed:,} closed" if closed else "yes",
                f"{run['peak_threads'] or '-'}", f"{run['peak_rss_mb'] or '-'} MB",
                figure(run["idle_kib"], "{:.1f} KiB"),
                figure(None if stacks is None else stacks / idle["opened"], "{:.1f} KiB"),
                f"{idle['cpu_s']:.1f} s"]
    return section(
        "What the idle connections cost",
        "Per idle connection, against the same server with none: peak RSS grown, and the "
        "kernel's thread stacks grown (Linux's KernelStack, machine-wide: only the sync server "
        "starts threads). Stayed open: the server closed none. Idle clients' CPU: one asyncio "
        "process's.",
        ["Point", "Server", "Opened", "Stayed open", "Peak threads", "Peak RSS",
         "RSS per connection", "Kernel stacks per connection", "Idle clients' CPU"],
        [cells(run) for run in idle_cost(results)["runs"]])


def served_again(run):
    """How soon a new connection got a 200 after the load; where none did and the run counted
    it (offered.AfterWindow), when the server last answered and what it did from then."""
    if run.get("recovered_s") is not None:
        return f"{run['recovered_s']:.1f} s"
    stalled, samples = run.get("stalled"), run.get("after_window") or []
    answered = [sample for sample in samples if sample[1] is not None]
    if not stalled or not answered:
        return "no"
    last = max(answered, key=lambda sample: sample[1])  # the first to get there
    later = [sample for sample in samples if sample[0] >= last[0] and sample[3] is not None]
    busy = ((later[-1][3] - later[0][3]) / (later[-1][0] - later[0][0])
            if len(later) > 1 and later[-1][0] > later[0][0] else None)
    return (f"no: answered nothing after {last[0]:.0f} s, then {figure(busy, '{:.2f}')} cores "
            f"busy, {stalled['runnable']:,} of {stalled['threads']:,} threads runnable")


def gc_pauses(run):
    if run.get("gc_pause_ms") is None:
        return "-"
    text = f"{run['gc_pause_ms']:,.0f} ms ({run['longest_gc_pause_ms']:,.1f} ms)"
    if run.get("collections") is not None:
        text += f" in {run['collections']:,} ({run['full_collections']:,} full)"
    return text


def runs_line(results):
    """How long each run was, in what order, with how many wrk threads and repeats."""
    settings, runs = results["settings"], results["runs"]
    fewer = sorted({run["threads"] for run in runs
                    if run["threads"] is not None and run["threads"] < settings["threads"]})
    wrk = (f"wrk with {settings['threads']} threads" + (
        f" ({', '.join(map(str, fewer))} in runs with fewer connections: wrk needs a connection "
        "per thread)" if fewer else "") + f", {settings['repeat']} repeat(s)")
    if not any("slices" in run for run in runs):
        return (f"Runs: {settings['duration_s']} s each after a {settings['warmup_s']} s "
                f"warm-up, {wrk}")
    rounds = sorted({len(run["slices"]) for run in runs})
    warm = (f"after a {settings['warmup_s']} s warm-up each" if settings["warmup_s"] else
            "after the opening, with no other warm-up")
    return (f"Runs: at each point both servers, interleaved: {rounds[0]}"
            f"{'' if len(rounds) == 1 else f' to {rounds[-1]}'} rounds, each giving each "
            f"server one slice of load in a random order (seed {settings['seed']}), {warm}; {wrk}")


def how_measured(results):
    """The legend of the tables: how the window was measured, and what each column means."""
    counted = "as Redis (page views) or Postgres (inserts) counted them"
    if any("slices" in run for run in results["runs"]):
        how = [
            "Each server has its own wrk. It opens its connections at once (\"All answered\" is "
            "how long the server took to answer every one, read from the OS), and is then paused "
            "(SIGSTOP) while the other server is measured. A slice resumes one wrk for "
            f"{results['settings']['slice_s']} s, pauses it, and ends once that server has "
            "answered everything it was sent. Req/s is the slices' requests over their length, "
            f"{counted}. Ratio is the median, over the rounds, of req/s divided by the "
            "baseline's in the same round, with its 95% interval (bench/intervals.py; none under "
            "6 rounds). A stall moves that median by one rank, not by the stall's size. Where the "
            "interval holds 1.00x, the run cannot tell the two servers apart. Mean latency is "
            "connections / req/s, by Little's law, as every connection always has a request "
            "out. Percentiles and timeouts are not measured: a paused wrk's requests age while "
            "it is stopped."]
    else:
        rates = sorted({run["probe"]["offered_rate"] for run in results["runs"]
                        if run.get("probe")})
        rate = " to ".join(f"{r:g}" for r in dict.fromkeys(rates[:1] + rates[-1:])) or "no"
        how = [
            "Each wrk run opens its connections at once. The window is measured on them once the "
            "server has answered each one (\"All answered\" is how long that took, read from the "
            f"OS) and after a warm-up. Req/s is the window's requests per second, {counted}.",
            f"Ratio is req/s divided by `{results['baseline']}`'s at the same point, the "
            "scenario's baseline (1.00x)." if compared(results) else
            f"No Ratio column: only {series_ran(results)} ran, so there is nothing to divide by.",
            "p50 and p99 are a probe's: requests of the same kind sent at a low fixed rate "
            f"({rate} a second here) on connections of its own, each timed from when it was "
            "due. A timeout ranks after every answer; a percentile that falls among the timeouts "
            "reads \"> timeout\"."]
    return textwrap.fill(" ".join(how + [
        "Timeouts (where measured), socket errors and non-2xx are wrk's, over its whole run, "
        "opening included. CPU/req is the server's CPU time per request it counted in the "
        "window. Accepted is the most connections it held open at once; PARTIAL marks fewer "
        "than wrk opened. Audit ok means the Redis counter or the new rows match the clients' "
        "successes, plus at most one request per connection still in flight when they stopped. "
        "\"-\" marks a figure that could not be measured here."]),
        COLUMNS, break_on_hyphens=False)


def render_summary(results):
    machine, settings = results["machine"], results["settings"]
    median = " (median, min–max)" if settings["repeat"] > 1 else ""
    quick = f"**--quick is a {SMOKE_TEST}.**\n\n" if settings.get("quick") else ""
    return f"""
# Benchmark: scenario `{results['scenario']}`

{quick}## What it says

{reading(results)}

## The runs

Machine: {machine['cores']} cores ({machine['cpu']}), Python {machine['python']}, \
{machine['os']}, {machine['wrk']}. wrk, both servers, Postgres and Redis run on this one
machine: compare the servers within this run, not with runs on other machines.
{runs_line(results)}{median}. {placed(results)}

{table(results, short=True)}

{footnotes(results)}{capacity_section(results)}\
The same runs with every column; what each means follows the table.

{table(results)}

{how_measured(results)}

{inside_the_runs(results)}{offered_table(results)}{limits_table(results)}\
{idle_table(results)}{shares_table(results)}
## For comparison

{ARTICLE_TABLE}"""


def main():
    if len(sys.argv) != 2 or sys.argv[1] in ("-h", "--help"):
        sys.exit("usage: python -m bench.report RESULTS_DIR  (rewrites summary.md, chart.svg, "
                 "the flame graphs and report.html from its results.json)")
    out_dir = Path(sys.argv[1])
    try:
        results = load(out_dir)
    except (OSError, ValueError) as error:
        sys.exit(f"bench.report: {error}")
    print(write_report(results, out_dir))


def write_report(results, out_dir):
    """summary.md, chart.svg, the flame graphs and report.html in out_dir; report.html's path."""
    draw_flamegraphs(results, out_dir)
    summary = render_summary(results)
    (out_dir / "summary.md").write_text(summary)
    # once, for chart.svg and report.html alike; capacity: latency against offered rate
    charts = capacity_charts(results) if results.get("capacity") else drawn(results)
    write_chart(charts, out_dir / "chart.svg")
    return write_page(results, summary, out_dir, charts)


def compact_table(results):
    """The terminal's table: a block per point, a row per server, in aligned columns."""
    rows = summarize(results)
    ranged, ratio = any(row["spread"] for row in rows), compared(results)
    head = (["Server", "Req/s"] + ["(min–max)"] * ranged + ["Ratio"] * ratio
            + [latency_heading(results), "All answered", "CPU/req", "Audit"])
    cells = {}
    for row in rows:
        run = row["run"]
        cells.setdefault(row["point"], []).append(
            [row["series"], f"{run['rps']:,.0f}", *[spread_cell(row)] * ranged,
             *[ratio_cell(row)] * ratio, latency_cell(run), opening(run), cpu_per_request(run),
             audit_cell(run, short=True)])
    widths = [max(len(line[i]) for line in [head] + sum(cells.values(), []))
              for i in range(len(head))]
    widths[0] = min(widths[0], COLUMNS - 2 - sum(w + 2 for w in widths[1:]))

    def aligned(line):
        first = line[0] if len(line[0]) <= widths[0] else line[0][:widths[0] - 1] + "…"
        rest = [cell.rjust(width) for cell, width in zip(line[1:-1], widths[1:-1])]
        return ("  " + "  ".join([first.ljust(widths[0])] + rest + [line[-1]])).rstrip()

    return "\n".join(line for point, block in cells.items()
                     for line in [point, aligned(head), *map(aligned, block), ""])


def wrapped(text):
    """Each "- " sentence of the reading wrapped to the terminal, continued under its words."""
    text = re.sub(r"(\d) (ms|s|MB|KiB)\b", "\\1\N{NO-BREAK SPACE}\\2", text)  # 20 s: one word
    text = re.sub(r"(GET|POST) (/\S*) c=", "\\1\N{NO-BREAK SPACE}\\2\N{NO-BREAK SPACE}c=", text)
    return "\n".join(textwrap.fill(line, COLUMNS, subsequent_indent="  ",
                                   break_on_hyphens=False) for line in text.splitlines()
                      ).replace("\N{NO-BREAK SPACE}", " ")


def headline(results):
    """The summary's first line: what the table shows, and what Ratio divides by."""
    if compared(results):
        return (f"Scenario {results['scenario']}: each server's median run at each point "
                f"(Ratio: to {results['baseline']}).")
    only = f" (--only {results['settings']['only']})" if results["settings"].get("only") else ""
    return (f"Scenario {results['scenario']}: {series_ran(results)} alone{only}, its median run "
            "at each point.")


def terminal_summary(results, report_path):
    """The end of a run's output, no line over COLUMNS wide."""
    return "\n".join([
        *([wrapped(f"--quick is a {SMOKE_TEST}."), ""] if results["settings"].get("quick")
          else []),
        wrapped(headline(results)), "",
        *([wrapped("PROFILED: py-spy sampled each server and shared its CPU: compare these "
                   "req/s only with other profiled runs."), ""]
          if results["settings"].get("profiled") else []),
        compact_table(terminal_view(results)),
        *[note[:-1] for note in [footnotes(results)] if note],
        "What it says:", wrapped(reading(results)), "",
        "Every column, the charts and the flame graphs (summary.md beside it: the tables):",
        shortest(report_path)])


def shortest(path):
    """The path as typed from here where that is shorter: results/.../report.html."""
    relative = os.path.relpath(path)
    return relative if len(relative) < len(str(path)) else str(path)

