"""--scenario capacity's results read (bench/capacity.py): each server's highest rate under the
target with its interval and their ratio ("What it says"), summary.md's section and table, the
terminal's view, and report.html's charts (p50 and p99 against the offered rate, a panel a
method). capacity_section and terminal_view take any scenario's results, the rest capacity's
only. Standard library only.
"""

import math
import textwrap
from html import escape

from bench.report.charts import BOTTOM, H, LEFT, W, frame, nice_top, series_colour
from bench.text import COLUMNS, figure, label_of, markdown_table

BUSY_CORES = 0.8  # a Python process using this much of a core has nearly all it can use
GLANCE = ("A point is a server's percentile over every request of its rounds at that offered "
          "rate, its whisker the 95% interval.")


def grid_runs(results, method):
    return [run for run in results["runs"] if run.get("rate") and run["method"] == method]


def with_interval(run, name, timeout_s):
    """"5.0 ms (4.1–7.9)": a percentile, its 95% interval ("-": past the samples); or "> 1 s"."""
    if run[f"{name}_ms"] is None:
        return f"> {timeout_s:g} s"
    low, high = run["offered"][f"{name}_interval_ms"]
    return f"{run[f'{name}_ms']:,.1f} ms ({low:,.1f}–{figure(high, '{:,.1f}')})"


def few(run, results):
    return run["offered"]["samples"] < results["capacity"]["min_samples"]


def sustained(kind, capacity, rates):
    """"sync sustains 480/s, its capacity between 320 and 640/s", or no rate, or the top one."""
    said = (f"{kind} sustains no rate offered (not {rates[0]:,}/s)" if capacity["rate"] is None
            else f"{kind} sustains {capacity['rate']:,}/s"
            + " (the top rate)" * (capacity["rate"] == rates[-1]))
    high = f"past {rates[-1]:,}" if capacity["high"] is None else f"{capacity['high']:,}"
    return f"{said}, its capacity between {capacity['low'] or 0:,} and {high}/s"


def ratio_text(kind, ratio):
    if ratio["value"] is None:
        return f"no ratio {kind}/sync: one of them kept no rate under the target"
    high = "unbounded" if ratio["high"] is None else f"{ratio['high']:.2f}x"
    return f"{kind}/sync {ratio['value']:.2f}x ({ratio['low'] or 0:.2f}x to {high})"


def capacity_reading(results):
    """A "- " line per method (each server's capacity and the ratio), then the client's."""
    cap = results["capacity"]
    lines = []
    for method, summary in cap["methods"].items():
        rates, said = summary["rates"], []
        for kind, capacity in summary["capacity"].items():
            said.append(sustained(kind, capacity, rates))
            at = [run for run in grid_runs(results, method)
                  if run["kind"] == kind and run["rate"] == capacity["rate"]]
            if at and few(at[0], results):
                said[-1] += f" (its p99 there from only {at[0]['offered']['samples']:,} samples)"
        said += [ratio_text(kind, ratio) for kind, ratio in summary["ratio"].items()]
        lines.append(f"- {label_of(method)}, p99 under {cap['target_ms']:g} ms: "
                     + "; ".join(said) + ".")
    lines.append(client_sentence(results))
    return lines


def cores(run):
    return run["offered"]["client_cpu_s"] / run["duration_s"]


def client_sentence(results):
    """Where the open-loop client (one Python process) fell behind, and its CPU there; or not."""
    cap, behind = results["capacity"], []
    for method, summary in cap["methods"].items():
        rate = summary["client_behind_from"]
        if rate is not None:
            used = max(cores(run) for run in grid_runs(results, method) if run["rate"] == rate)
            why = ("near all of the one core a Python process can use" if used >= BUSY_CORES
                   else "waiting for CPUs the servers, Postgres, Redis or other programs held")
            behind.append(f"{label_of(method)} from {rate:,}/s ({used:.2f} of a core: {why})")
    if not behind:
        most = max(cores(run) for run in results["runs"] if run.get("rate"))
        return (f"- The open-loop client kept its schedule at every rate, using at most "
                f"{most:.2f} of a core.")
    return ("- The open-loop client fell behind its schedule (its send lag's p99 past 10 ms) "
            f"at {' and '.join(behind)}: from there it set part of the pace, and its lateness "
            "is in both servers' latency alike.")


def capacity_section(results):
    """summary.md's section: how the rates were offered and read, and the table."""
    cap = results.get("capacity")
    if not cap:
        return ""
    timeout = cap["timeout_s"]
    saturation = "; ".join(f"{label_of(m)}: " + ", ".join(f"{k} {v:,.0f} req/s" for k, v in
                                                         s["saturation"].items())
                           for m, s in cap["methods"].items())
    rows = [[label_of(run["method"]), f"{run['rate']:,}/s", run["series"],
             with_interval(run, "p50", timeout), with_interval(run, "p99", timeout)
             + " *" * few(run, results), f"{run['offered']['samples']:,}",
             f"{run['rps']:,.0f}", f"{run['timeouts']:,}",
             f"{cores(run):.2f}" + (" behind" if run["offered"]["client_behind"] else ""),
             under(run, cap["target_ms"])] for run in results["runs"] if run.get("rate")]
    table = markdown_table(["Request", "Offered", "Server", "p50 (95% interval)",
                            "p99 (95% interval)", "Samples", "Answered/s", "Timeouts",
                            "Client cores", f"p99 < {cap['target_ms']:g} ms"], rows)
    legend = textwrap.fill(
        "Both servers were offered requests open loop, each timed from when it was due, at rates "
        f"from 10% to 110% of the higher saturation under wrk ({saturation}). At each rate, "
        f"{cap['rounds']} round(s) gave each server a {cap['slice_duration_s']:g} s slice after "
        f"{cap['slice_warmup_s']:g} s of warm-up, in an order drawn by "
        f"random.Random({cap['seed']}). p50 and p99 pool every request of the rounds, a timeout "
        f"(past {timeout:g} s) or an error ranked last. In brackets are their 95% intervals "
        "(bench/intervals.py; \"-\" where a bound lies past the samples or the timeout); they "
        "take requests as independent, so they are too narrow near a knee, where latencies come "
        f"in bursts. A p99 from under {cap['min_samples']:,} samples is marked with an asterisk: "
        "its upper bound lies among its last values (it is drawn hollow in the chart). Capacity "
        "is the highest rate whose p99, and every lower rate's, is under the target; it lies "
        "between the highest rate surely under (its upper bound too) and the first rate surely "
        "over (its lower bound too). Client cores is the open-loop client's CPU; \"behind\" "
        "means its send lag's p99 passed 10 ms. In the last column, \"?\" means the interval "
        "holds the target, so the run cannot tell which side of it the p99 is on.",
        COLUMNS, break_on_hyphens=False)
    return f"## Capacity at p99 under {cap['target_ms']:g} ms\n\n{legend}\n\n{table}\n\n"


def under(run, target_ms):
    low, high = run["offered"]["p99_interval_ms"]
    said = "yes" if run["p99_ms"] is not None and run["p99_ms"] < target_ms else "no"
    surely = (high is not None and high < target_ms) or (low is None or low >= target_ms)
    return said + "?" * (not surely)


def terminal_view(results):
    """The runs the terminal's table shows: capacity's wrk runs only (its grid is summary.md's)."""
    if not results.get("capacity"):
        return results
    return {**results, "runs": [run for run in results["runs"] if not run["rate"]]}


def capacity_charts(results):
    """A panel a method: [(svg parts, legend)], as charts.drawn's."""
    return [panel(results, method) for method in results["capacity"]["methods"]]


def panel(results, method):
    """p99 (solid, round) and p50 (dashed, square) against the offered rate, log latency up
    to the timeout (past it, or a bound not measured: the top edge), the target dashed across."""
    cap = results["capacity"]
    runs, y0 = grid_runs(results, method), H - BOTTOM
    highest, top = max(run["rate"] for run in runs), cap["timeout_s"] * 1000
    step = nice_top(highest) / 10  # the axis ends on a round figure just past the top rate
    x_top = math.ceil(highest * 1.05 / step) * step
    known = [v for run in runs for v in run["offered"]["p50_interval_ms"][:1] if v]
    bottom = 10 ** math.floor(math.log10(max(0.1, min(known, default=1))))

    def x_of(rate):
        return LEFT + rate / x_top * (W - LEFT - 8)

    def y_of(value):
        share = 1 if value is None else math.log(max(value, bottom) / bottom) / math.log(
            top / bottom)
        return y0 - min(1, share) * (y0 - 30)
    ticks = [10 ** k for k in range(round(math.log10(bottom)), 5) if 10 ** k < top] + [top]
    parts = frame(f"{label_of(method)}: p50 and p99 latency (ms, log scale)",
                  [(y_of(tick), f"{tick / 1000:g} s" if tick == top else f"{tick:,g}")
                   for tick in ticks])
    for rate, anchor in ((0, "start"), (x_top / 2, "middle"), (x_top, "end")):
        parts.append(f'<text x="{x_of(rate):.1f}" y="{y0 + 14}" text-anchor="{anchor}">'
                     f'{rate:,.0f}</text>')
    target = y_of(cap["target_ms"])
    parts.append(f'<line class="target" x1="{LEFT}" y1="{target:.1f}" x2="{W - 8}" '
                 f'y2="{target:.1f}" stroke="#555" stroke-dasharray="6 4"/>')
    parts.append(f'<text x="{W / 2}" y="{y0 + 30}" text-anchor="middle" font-size="10">'
                 f'offered rate (req/s); grey dashes: the {cap["target_ms"]:g} ms target; top '
                 f'edge: past the {cap["timeout_s"]:g} s timeout</text><text x="{W / 2}" '
                 f'y="{y0 + 45}" text-anchor="middle" font-size="10">● p99  ■ p50 (dashed)  '
                 f'○ p99 from under {cap["min_samples"]:,} samples  | 95% interval</text>')
    kinds = list(dict.fromkeys(run["series"] for run in runs))
    for kind in kinds:
        mine, colour = [run for run in runs if run["series"] == kind], series_colour(kind)
        for name, dash in (("p99", ""), ("p50", "4 3")):
            line = " ".join(f"{x_of(r['rate']):.1f},{y_of(r[f'{name}_ms']):.1f}" for r in mine)
            parts.append(f'<polyline points="{line}" fill="none" stroke="{colour}" '
                         f'stroke-dasharray="{dash}"/>')
            parts += [point(results, run, name, x_of(run["rate"]), y_of, colour) for run in mine]
    return parts, [(kind, series_colour(kind)) for kind in kinds]


def point(results, run, name, x, y_of, colour):
    """One percentile's mark, its whisker and its hover text."""
    low, high = run["offered"][f"{name}_interval_ms"]
    hollow = name == "p99" and few(run, results)
    what = (f"{run['series']} at {run['point']}: {name} "
            f"{with_interval(run, name, results['capacity']['timeout_s'])}, "
            f"{run['offered']['samples']:,} samples")
    y = y_of(run[f"{name}_ms"])
    shape = (f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5"' if name == "p99" else
             f'<rect x="{x - 2.5:.1f}" y="{y - 2.5:.1f}" width="5" height="5"')
    return (f'<path d="M{x:.1f},{y_of(low):.1f}V{y_of(high):.1f}" stroke="{colour}"/>'
            f'{shape} class="{name}{" few" * hollow}" data-cell="{escape(what)}" '
            f'fill="{"white" if hollow else colour}" stroke="{colour}">'
            f'<title>{escape(what)}</title>{"</circle>" if name == "p99" else "</rect>"}')
