"""The charts of report.html, as inline SVG: bars with each repeat's range where the points
are separate cases (fair, article, placement), lines where they sweep one quantity (x: the
scenario's x axis). One chart per figure: req/s, p99, CPU, context switches and migrations
per request (where measured), and what an idle connection costs (c10k).

Standard library only; bench/page.py puts them in the page.
"""

import math
from html import escape

from bench.chart import series_colour
from bench.rows import groups, median_run

W, H, LEFT, BOTTOM = 560, 300, 64, 64  # px: a chart, and the room for its axes' labels
FIGURES = [("requests per second", "rps", "{:,.0f}"), ("p99 latency (ms)", "p99_ms", "{:,.1f}"),
           ("server CPU per request (ms)", "server_cpu_ms_per_request", "{:.2f}"),
           ("context switches per request", "server_switches_per_request", "{:.1f}"),
           ("CPU migrations per request", "server_migrations_per_request", "{:.2f}")]


def is_sweep(results):
    """Lines when each point has an x of its own and x is a quantity: placement codes its
    names as 0, 1, 2, which a line between them would misread."""
    xs = {run["point"]: run["x"] for run in results["runs"]}
    return (len(set(xs.values())) == len(xs) > 1
            and not results["x_axis"].startswith("placement"))


def line_name(run, several_placements):
    """As chart.py names a line: the series, POST, and the placement where there are several."""
    return run["series"] + (" POST" if run["method"] == "POST" else "") + (
        f" ({run['placement']})" if several_placements else "")


def measured(runs, key):
    """(the median run's figure, the lowest, the highest) over the repeats; None if unmeasured."""
    values = [run.get(key) for run in runs]
    if median_run(runs).get(key) is None or None in values:
        return None
    return median_run(runs)[key], min(values), max(values)


def nice_top(highest):
    """The axis' top: the first of 1, 2, 2.5, 5 times a power of ten above the highest."""
    if highest <= 0:
        return 1
    power = 10 ** math.floor(math.log10(highest * 1.05))
    return next(step * power for step in (1, 2, 2.5, 5, 10) if step * power >= highest * 1.05)


def axis(top, form, unit_label, x0, y0):
    """The y axis: three ticks and the figure's name."""
    parts = [f'<line x1="{x0}" y1="{y0}" x2="{W - 8}" y2="{y0}" stroke="#333"/>']
    for tick in (0, top / 2, top):
        y = y0 - tick / top * (y0 - 30)
        parts.append(f'<line x1="{x0}" y1="{y:.1f}" x2="{W - 8}" y2="{y:.1f}" stroke="#eee"/>'
                     f'<text x="{x0 - 4}" y="{y + 4:.1f}" text-anchor="end">'
                     f'{form.format(tick)}</text>')
    parts.append(f'<text x="{W / 2}" y="16" text-anchor="middle" font-weight="bold">'
                 f'{escape(unit_label)}</text>')
    return parts


def svg(parts, legend):
    items = "".join(f'<span class="key"><i style="background:{colour}"></i>{escape(name)}</span>'
                    for name, colour in legend)
    return (f'<figure><svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{W}" '
            f'height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="11">'
            + "".join(parts) + f"</svg><figcaption>{items}</figcaption></figure>")


def bars(results, title, key, form):
    """Grouped bars, a group a point; a whisker spans the repeats' lowest to highest."""
    by_point = {point: {series: measured(runs, key) for series, runs in by_series.items()}
                for point, by_series in groups(results["runs"]).items()}
    values = [v for by_series in by_point.values() for v in by_series.values() if v]
    if not values:
        return ""
    series = list(dict.fromkeys(s for by_series in by_point.values() for s in by_series))
    top = nice_top(max(v[2] for v in values))
    y0, slot = H - BOTTOM, (W - LEFT - 8) / len(by_point)
    bar = min(40, slot * 0.8 / len(series))
    parts = axis(top, form, title, LEFT, y0)
    for i, (point, by_series) in enumerate(by_point.items()):
        x = LEFT + i * slot + (slot - bar * len(series)) / 2
        for n, words in enumerate(point.split(", ")):  # "GET / c=500", "shared"
            parts.append(f'<text x="{LEFT + (i + 0.5) * slot:.1f}" y="{y0 + 14 + 13 * n}" '
                         f'text-anchor="middle" font-size="10">{escape(words)}</text>')
        for j, name in enumerate(series):
            if not by_series.get(name):
                continue
            value, low, high = by_series[name]
            left, y_of = x + j * bar, lambda v: y0 - v / top * (y0 - 30)
            parts.append(f'<rect x="{left:.1f}" y="{y_of(value):.1f}" width="{bar - 2:.1f}" '
                         f'height="{y0 - y_of(value):.1f}" fill="{series_colour(name)}">'
                         f'<title>{escape(name)} at {escape(point)}: {form.format(value)}'
                         f'{range_text(low, high, form)}</title></rect>')
            if high > low:
                mid = left + bar / 2 - 1
                parts.append(f'<path d="M{mid:.1f},{y_of(low):.1f}V{y_of(high):.1f}'
                             f'M{mid - 4:.1f},{y_of(low):.1f}h8M{mid - 4:.1f},'
                             f'{y_of(high):.1f}h8" stroke="#000" fill="none"/>')
    return svg(parts, [(name, series_colour(name)) for name in series])


def range_text(low, high, form):
    return f" (repeats {form.format(low)}–{form.format(high)})" if high > low else ""


def lines(results, title, key, form, points=None):
    """A line a server configuration against the scenario's x; points: {name: [(x, y)]}
    where the figure is not a run's own (idle connections)."""
    if points is None:
        several = len({run.get("placement") for run in results["runs"]}) > 1
        points = {}
        for by_series in groups(results["runs"]).values():
            for runs in by_series.values():
                value = measured(runs, key)
                if value:
                    points.setdefault(line_name(runs[0], several), []).append(
                        (runs[0]["x"], value[0]))
    values = [y for line in points.values() for _, y in line]
    if not values:
        return ""
    xs = sorted({x for line in points.values() for x, _ in line})
    top, y0 = nice_top(max(values)), H - BOTTOM
    span = (xs[-1] - xs[0]) or 1
    x_of = lambda x: LEFT + 10 + (x - xs[0]) / span * (W - LEFT - 40)  # noqa: E731
    y_of = lambda y: y0 - y / top * (y0 - 30)  # noqa: E731
    parts = axis(top, form, title, LEFT, y0)
    parts += [f'<text x="{x_of(x):.1f}" y="{y0 + 14}" text-anchor="middle">{x:,g}</text>'
              for x in xs]
    parts.append(f'<text x="{W / 2}" y="{y0 + 32}" text-anchor="middle">'
                 f'{escape(results["x_axis"])}</text>')
    for name, line in points.items():
        colour, line = series_colour(name), sorted(line)
        parts.append(f'<polyline fill="none" stroke-width="2" stroke="{colour}" points="'
                     + " ".join(f"{x_of(x):.1f},{y_of(y):.1f}" for x, y in line) + '"/>')
        parts += [f'<circle cx="{x_of(x):.1f}" cy="{y_of(y):.1f}" r="3.5" fill="{colour}">'
                  f'<title>{escape(name)} at {x:,g}: {form.format(y)}</title></circle>'
                  for x, y in line]
    return svg(parts, [(name, series_colour(name)) for name in points])


def idle_cost(results):
    """{name: [(idle connections, KiB of peak RSS grown per connection)]}, against the same
    server with none (as bench/idle.py's table computes it)."""
    unloaded = {run["series"]: run for run in results["runs"] if not run.get("idle")}
    points = {}
    for run in results["runs"]:
        base, idle = unloaded.get(run["series"]), run.get("idle")
        if idle and base and idle["opened"] and None not in (run["peak_rss_mb"],
                                                             base["peak_rss_mb"]):
            grown = (run["peak_rss_mb"] - base["peak_rss_mb"]) * 1024 / idle["opened"]
            points.setdefault(run["series"], []).append((run["x"], grown))
    return points


def charts(results):
    """Every chart this run's figures allow, as HTML."""
    draw = lines if is_sweep(results) else bars
    found = [draw(results, title, key, form) for title, key, form in FIGURES]
    memory = idle_cost(results)
    if memory:
        found.append(lines(results, "peak RSS grown per idle connection (KiB)", None,
                           "{:,.1f}", memory))
    return "\n".join(chart for chart in found if chart)
