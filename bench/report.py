"""Turn results.json into the table a learner reads, a plain reading of it, and a chart.

    python bench/report.py results/latest     # writes summary.md and chart.svg again
"""

import json
import sys
from html import escape
from pathlib import Path

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

COLUMNS = ["Server", "Requests", "Req/s", "Ratio", "p50", "p99", "Timeouts", "Socket errors",
           "Non-2xx", "Peak threads", "Peak RSS", "Audit"]


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


def summarize(results):
    """One row per point and series: the median run, and the spread of req/s over repeats."""
    rows = []
    for point, by_series in groups(results["runs"]).items():
        baseline = None
        for series, runs in by_series.items():
            run = median_run(runs)
            rps = [r["rps"] for r in runs]
            baseline = baseline or run["rps"]
            rows.append({"point": point, "series": series, "run": run,
                         "spread": (min(rps), max(rps)) if len(rps) > 1 else None,
                         "ratio": run["rps"] / baseline if baseline else None})
    return rows


def cell_ms(value):
    return "-" if value is None else f"{value:,.1f} ms"


def socket_errors(errors):
    total = sum(errors.values())
    return "0" if not total else ", ".join(f"{k} {v}" for k, v in errors.items() if v)


def audit_cell(run):
    audit = run["audit"]
    text = audit["result"]
    if audit["result"] != "ok":
        text += f" ({audit['what']} {audit['counted']}, wrk {audit['wrk_ok']})"
    return text if run["valid"] else text + ", INVALID"


def table(results):
    axis = results["x_axis"][0].upper() + results["x_axis"][1:]
    lines = [f"| {axis} | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for row in summarize(results):
        run = row["run"]
        rps = f"{run['rps']:,.0f}"
        if row["spread"]:
            rps += f" ({row['spread'][0]:,.0f}–{row['spread'][1]:,.0f})"
        cells = [row["point"], row["series"], f"{run['requests']:,}", rps,
                 "-" if row["ratio"] is None else f"{row['ratio']:.2f}x",
                 cell_ms(run["p50_ms"]), cell_ms(run["p99_ms"]), f"{run['timeouts']:,}",
                 socket_errors(run["socket_errors"]), f"{run['non_2xx']:,}",
                 str(run["peak_threads"] or "-"),
                 "-" if run["peak_rss_mb"] is None else f"{run['peak_rss_mb']:.0f} MB",
                 audit_cell(run)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def reading(results):
    """Plain sentences: who served more at each point, by how much, and what went wrong."""
    sentences = []
    for point, by_series in groups(results["runs"]).items():
        medians = {series: median_run(runs) for series, runs in by_series.items()}
        names = list(medians)
        first = medians[names[0]]
        for name in names[1:]:
            other = medians[name]
            if not first["rps"] or not other["rps"]:
                continue
            ratio = other["rps"] / first["rps"]
            more, less = (name, names[0]) if ratio >= 1 else (names[0], name)
            factor = ratio if ratio >= 1 else 1 / ratio
            sentences.append(
                f"- {point}: {more} served {factor:.2f}x the requests per second of {less} "
                f"({other['rps']:,.0f} vs {first['rps']:,.0f}); p99 {cell_ms(other['p99_ms'])} "
                f"vs {cell_ms(first['p99_ms'])}; timeouts {other['timeouts']:,} vs "
                f"{first['timeouts']:,}.")
    runs = results["runs"]
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


def inside_the_runs(results):
    lines = ["| Point | Server | req/s × mean latency | mean in service (sampled) | "
             "peak in service (/stats) | server CPU | wrk CPU |", "|---" * 7 + "|"]
    for row in summarize(results):
        run = row["run"]
        cells = [run.get("littles_law_in_service"), run["mean_in_service"],
                 run["peak_in_service"]]
        cells = ["-" if value is None else str(value) for value in cells]
        lines.append(f"| {row['point']} | {row['series']} | " + " | ".join(cells)
                     + f" | {run['server_cpu_s']:.1f} s | {run['wrk_cpu_s']:.1f} s |")
    return "\n".join(lines)


def render_summary(results):
    machine, settings = results["machine"], results["settings"]
    median = " (median, min–max)" if settings["repeat"] > 1 else ""
    return f"""
# Benchmark: scenario `{results['scenario']}`

Machine: {machine['cores']} cores ({machine['cpu']}), Python {machine['python']}, \
{machine['os']}, {machine['wrk']}. wrk, both servers, Postgres and Redis share these cores:
compare the servers within this run, not with runs on other machines.
Runs: {settings['duration_s']} s each after a {settings['warmup_s']} s warm-up, wrk with \
{settings['threads']} threads, {settings['repeat']} repeat(s){median}.

{table(results)}

Ratio: req/s divided by the first server's req/s at the same point. p50 and p99 leave out
responses slower than wrk's --timeout, which count as timeouts. Audit: the Redis counter or
the new rows match wrk's successful responses, plus at most one request per connection that
was still in flight when wrk stopped.

## What it says

{reading(results)}

## Inside the runs

Little's law: requests in service = throughput × time each spends in the system. The first
column computes it from wrk's figures, the next two are what the server counted. CPU is
seconds used during the {settings['duration_s']} s run, out of {machine['cores']} cores × \
{settings['duration_s']} s: what wrk uses, the servers, Postgres and Redis cannot.

{inside_the_runs(results)}

## For comparison

{ARTICLE_TABLE}"""


SERIES_COLOURS = {"sync": "#1f77b4", "async": "#d62728", "sync --workers 32": "#ff7f0e",
                  "async --blocking": "#9467bd",
                  "sync --workers 2 --connect-per-request": "#8c564b"}


def series_colour(name):
    """The same server configuration keeps its colour in every chart; POST points are paler."""
    series = name.removesuffix(" POST")
    colour = SERIES_COLOURS.get(series, "#2ca02c")
    return colour + "80" if series != name else colour


def write_chart(results, path):
    """Two panels, req/s and p99 latency, against the scenario's x axis; one line a server."""
    lines = {}
    for row in summarize(results):
        run = row["run"]
        name = row["series"] + (" POST" if run["method"] == "POST" else "")
        lines.setdefault(name, []).append((run["x"], run["rps"], run["p99_ms"]))
    xs = sorted({x for points in lines.values() for x, _, _ in points})
    panels = [("requests per second", 1), ("p99 latency (ms)", 2)]
    width, height, pad = 420, 300, 55
    colours = [series_colour(name) for name in lines]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * width}" '
             f'height="{height + 30 + 18 * len(lines)}" font-family="sans-serif" '
             'font-size="12">', '<rect width="100%" height="100%" fill="white"/>']
    for panel, (title, index) in enumerate(panels):
        left = panel * width
        values = [p[index] for points in lines.values() for p in points if p[index] is not None]
        top = max(values, default=1) * 1.1 or 1
        step = (width - 1.5 * pad) / len(xs)
        x_at = lambda x: left + pad + (xs.index(x) + 0.5) * step  # noqa: E731
        y_at = lambda y: height - pad + 20 - y / top * (height - pad - 10)  # noqa: E731
        parts.append(f'<text x="{left + width / 2}" y="16" text-anchor="middle">'
                     f'{escape(title)}</text>')
        parts.append(f'<line x1="{left + pad}" y1="{y_at(0)}" x2="{left + width - 10}" '
                     f'y2="{y_at(0)}" stroke="black"/>')
        parts.append(f'<line x1="{left + pad}" y1="{y_at(0)}" x2="{left + pad}" '
                     f'y2="{y_at(top)}" stroke="black"/>')
        for tick in (0, top / 2 / 1.1, top / 1.1):
            parts.append(f'<text x="{left + pad - 4}" y="{y_at(tick) + 4}" '
                         f'text-anchor="end">{tick:,.0f}</text>')
        for x in xs:
            parts.append(f'<text x="{x_at(x)}" y="{y_at(0) + 16}" text-anchor="middle">'
                         f'{x:g}</text>')
        parts.append(f'<text x="{left + width / 2}" y="{y_at(0) + 32}" text-anchor="middle">'
                     f'{escape(results["x_axis"])}</text>')
        for colour, points in zip(colours, lines.values()):
            drawn = [(x_at(x), y_at(p[index - 1])) for x, *p in points
                     if p[index - 1] is not None]
            if len(drawn) > 1:
                parts.append('<polyline fill="none" stroke-width="2" stroke="' + colour
                             + '" points="' + " ".join(f"{x:.1f},{y:.1f}" for x, y in drawn)
                             + '"/>')
            parts += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"/>'
                      for x, y in drawn]
    for n, (colour, name) in enumerate(zip(colours, lines)):
        y = height + 30 + 18 * n
        parts.append(f'<rect x="{pad}" y="{y - 10}" width="12" height="12" fill="{colour}"/>')
        parts.append(f'<text x="{pad + 18}" y="{y}">{escape(name)}</text>')
    parts.append("</svg>")
    path.write_text("\n".join(parts) + "\n")


def main():
    if len(sys.argv) != 2 or sys.argv[1] in ("-h", "--help"):
        sys.exit("usage: python bench/report.py RESULTS_DIR  (rewrites summary.md and chart.svg "
                 "from its results.json)")
    out_dir = Path(sys.argv[1])
    results = json.loads((out_dir / "results.json").read_text())
    (out_dir / "summary.md").write_text(render_summary(results))
    write_chart(results, out_dir / "chart.svg")


if __name__ == "__main__":
    main()
