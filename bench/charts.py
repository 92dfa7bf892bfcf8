"""The charts of a run, as SVG: report.html's, each in a figure with its legend (page.py), and
chart.svg, the same charts on one sheet. Bars where the points are separate cases (fair,
article, placement), a whisker spanning the repeats; lines where the points sweep one
quantity (the scenario's x axis). One chart per figure: req/s, p99, CPU, context switches and
migrations per request, and what an idle connection costs (c10k).

Every row of the summary's table has its bar, point or mark in every chart: a percentile
past the client's timeout is drawn to the chart's top, dashed, labelled "> 2 s" (never left
out, which would draw the worst case as the best); a figure not measured reads "-" in place.
Standard library only.
"""

import math
from html import escape

from bench.cells import groups, median_run, percentile_cell

W, H, LEFT, BOTTOM = 560, 300, 64, 64  # px: a chart, and the room for its axes' labels
FIGURES = [("requests per second", "rps", "{:,.0f}"), ("p99 latency (ms)", "p99_ms", "{:,.1f}"),
           ("server CPU per request (ms)", "server_cpu_ms_per_request", "{:.2f}"),
           ("context switches per request", "server_switches_per_request", "{:.1f}"),
           ("CPU migrations per request", "server_migrations_per_request", "{:.2f}")]
PERCENTILES = ("p50_ms", "p99_ms")  # None: past the timeout (bench/results.py)
SERIES_COLOURS = {"sync": "#1f77b4", "async": "#d62728", "sync --workers 32": "#ff7f0e",
                  "async --blocking": "#9467bd",
                  "sync --workers 2 --connect-per-request": "#8c564b"}


def series_colour(name):
    """The same server configuration keeps its colour in every chart; POST points are paler."""
    series = name.split(" (")[0].removesuffix(" POST")
    colour = SERIES_COLOURS.get(series, "#2ca02c")
    return colour + "80" if " POST" in name or "(isolated)" in name else colour


def is_sweep(results):
    """Lines when each point has an x of its own and x is a quantity: placement codes its
    names as 0, 1, 2, which a line between them would misread."""
    xs = {run["point"]: run["x"] for run in results["runs"]}
    return (len(set(xs.values())) == len(xs) > 1
            and not results["x_axis"].startswith("placement"))


def line_name(run, several_placements):
    """The series, POST, and the placement where there are several."""
    return run["series"] + (" POST" if run["method"] == "POST" else "") + (
        f" ({run['placement']})" if several_placements else "")


def chart_cell(runs, key):
    """A cell of a chart: (the median run's figure, the repeats' lowest, highest); for a
    percentile past the timeout, ("past", its label, the timeout in ms); None where it was not
    measured. A repeat past the timeout takes the whisker to the top (highest: math.inf)."""
    middle, values = median_run(runs), [run.get(key) for run in runs]
    if middle.get(key) is None:
        if key not in PERCENTILES:
            return None
        return "past", percentile_cell(middle, key), middle["timeout_s"] * 1000
    known = [value for value in values if value is not None]
    if len(known) < len(values) and key not in PERCENTILES:
        return None
    return middle[key], min(known), max(known) if len(known) == len(values) else math.inf


def past_limit(cells):
    """The axis must reach a past percentile's timeout, in ms, so that its bar is true."""
    return max((cell[2] for cell in cells if cell and cell[0] == "past"), default=0)


def nice_top(highest):
    """The axis' top: the first of 1, 2, 2.5, 5 times a power of ten above the highest."""
    if highest <= 0:
        return 1
    power = 10 ** math.floor(math.log10(highest * 1.05))
    return next(step * power for step in (1, 2, 2.5, 5, 10) if step * power >= highest * 1.05)


def axis(top, form, unit_label, y0):
    """The y axis: three ticks and the figure's name."""
    parts = [f'<line x1="{LEFT}" y1="{y0}" x2="{W - 8}" y2="{y0}" stroke="#333"/>']
    for tick in (0, top / 2, top):
        y = y0 - tick / top * (y0 - 30)
        parts.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{W - 8}" y2="{y:.1f}" stroke="#eee"/>'
                     f'<text x="{LEFT - 4}" y="{y + 4:.1f}" text-anchor="end">'
                     f'{form.format(tick)}</text>')
    parts.append(f'<text x="{W / 2}" y="16" text-anchor="middle" font-weight="bold">'
                 f'{escape(unit_label)}</text>')
    return parts


def mark(cell, x, width, colour, what):
    """A bar or point's stand-in: past the timeout, dashed to the top (y 30) and labelled; not
    measured, a "-" on the axis. `what` names the row, for the test and the hover."""
    middle = x + width / 2
    if cell:
        return (f'<rect class="past" data-cell="{escape(what)}" x="{x:.1f}" y="30" '
                f'width="{width:.1f}" height="{H - BOTTOM - 30}" fill="{colour}" '
                f'fill-opacity="0.25" stroke="{colour}" stroke-dasharray="4 3">'
                f'<title>{escape(what)}: {escape(cell[1])}, past the timeout</title></rect>'
                f'<text x="{middle:.1f}" y="44" text-anchor="middle" font-weight="bold">'
                f'{escape(cell[1])}</text>')
    return (f'<text class="unmeasured" data-cell="{escape(what)}" x="{middle:.1f}" '
            f'y="{H - BOTTOM - 4}" text-anchor="middle"><title>{escape(what)}: not measured'
            '</title>-</text>')


def bars(results, title, key, form):
    """Grouped bars, a group a point; (svg parts, legend) or None where nothing was measured."""
    by_point = {point: {series: chart_cell(runs, key) for series, runs in by_series.items()}
                for point, by_series in groups(results["runs"]).items()}
    cells = [cell for by_series in by_point.values() for cell in by_series.values()]
    values = [cell[2] if cell[2] != math.inf else cell[1] for cell in cells
              if cell and cell[0] != "past"]
    if not values and not any(cells):
        return None
    series = list(dict.fromkeys(s for by_series in by_point.values() for s in by_series))
    top = nice_top(max(values + [past_limit(cells)]))
    y0, slot = H - BOTTOM, (W - LEFT - 8) / len(by_point)
    bar = min(40, slot * 0.8 / len(series))
    y_of = lambda v: y0 - min(v, top) / top * (y0 - 30)  # noqa: E731
    parts = axis(top, form, title, y0)
    for i, (point, by_series) in enumerate(by_point.items()):
        x = LEFT + i * slot + (slot - bar * len(series)) / 2
        for n, words in enumerate(point.split(", ")):  # "GET / c=500", "shared"
            parts.append(f'<text x="{LEFT + (i + 0.5) * slot:.1f}" y="{y0 + 14 + 13 * n}" '
                         f'text-anchor="middle" font-size="10">{escape(words)}</text>')
        for j, name in enumerate(series):
            if name not in by_series:
                continue
            cell, left, what = by_series[name], x + j * bar, f"{name} at {point}"
            if not cell or cell[0] == "past":
                parts.append(mark(cell, left, bar - 2, series_colour(name), what))
                continue
            value, low, high = cell
            parts.append(f'<rect class="bar" data-cell="{escape(what)}" x="{left:.1f}" '
                         f'y="{y_of(value):.1f}" width="{bar - 2:.1f}" '
                         f'height="{y0 - y_of(value):.1f}" fill="{series_colour(name)}">'
                         f'<title>{escape(what)}: {form.format(value)}'
                         f'{range_text(low, high, form)}</title></rect>')
            if high > low:
                mid = left + bar / 2 - 1
                parts.append(f'<path d="M{mid:.1f},{y_of(low):.1f}V{y_of(high):.1f}'
                             f'M{mid - 4:.1f},{y_of(low):.1f}h8M{mid - 4:.1f},'
                             f'{y_of(high):.1f}h8" stroke="#000" fill="none"/>')
    return parts, [(name, series_colour(name)) for name in series]


def range_text(low, high, form):
    if high == math.inf:
        return f" (repeats from {form.format(low)} to past the timeout)"
    return f" (repeats {form.format(low)}–{form.format(high)})" if high > low else ""


def lines(results, title, key, form, points=None):
    """A line a server configuration against the scenario's x; points: {name: [(x, y)]}
    where the figure is not a run's own (idle connections). A point past the timeout is an
    open circle at the top, labelled; one not measured, a "-" on the axis."""
    if points is None:
        several = len({run.get("placement") for run in results["runs"]}) > 1
        points = {}
        for point, by_series in groups(results["runs"]).items():
            for runs in by_series.values():
                cell = chart_cell(runs, key)
                points.setdefault(line_name(runs[0], several), []).append(
                    (runs[0]["x"], cell[0] if cell and cell[0] != "past" else cell,
                     f"{runs[0]['series']} at {point}"))
    else:
        points = {name: [(x, y, f"{name} at {x:,g}") for x, y in line]
                  for name, line in points.items()}
    values = [y for line in points.values() for _, y, _ in line if isinstance(y, float | int)]
    cells = [y for line in points.values() for _, y, _ in line if isinstance(y, tuple)]
    if not values and not cells:
        return None
    xs = sorted({x for line in points.values() for x, _, _ in line})
    top, y0 = nice_top(max(values + [past_limit(cells)])), H - BOTTOM
    span = (xs[-1] - xs[0]) or 1
    x_of = lambda x: LEFT + 10 + (x - xs[0]) / span * (W - LEFT - 40)  # noqa: E731
    y_of = lambda y: y0 - y / top * (y0 - 30)  # noqa: E731
    parts = axis(top, form, title, y0)
    parts += [f'<text x="{x_of(x):.1f}" y="{y0 + 14}" text-anchor="middle">{x:,g}</text>'
              for x in xs]
    parts.append(f'<text x="{W / 2}" y="{y0 + 32}" text-anchor="middle">'
                 f'{escape(results["x_axis"])}</text>')
    for name, line in points.items():
        colour, line = series_colour(name), sorted(line, key=lambda p: p[0])
        drawn = [(x, y) for x, y, _ in line if isinstance(y, float | int)]
        parts.append(f'<polyline fill="none" stroke-width="2" stroke="{colour}" points="'
                     + " ".join(f"{x_of(x):.1f},{y_of(y):.1f}" for x, y in drawn) + '"/>')
        for x, y, what in line:
            if not isinstance(y, float | int):
                parts.append(mark(y, x_of(x) - 4, 8, colour, what))
                continue
            parts.append(f'<circle class="bar" data-cell="{escape(what)}" cx="{x_of(x):.1f}" '
                         f'cy="{y_of(y):.1f}" r="3.5" fill="{colour}"><title>{escape(what)}: '
                         f'{form.format(y)}</title></circle>')
    return parts, [(name, series_colour(name)) for name in points]


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


def drawn(results):
    """Every chart this run's figures allow: [(svg parts, legend)]."""
    draw = lines if is_sweep(results) else bars
    found = [draw(results, title, key, form) for title, key, form in FIGURES]
    memory = idle_cost(results)
    if memory:
        found.append(lines(results, "peak RSS grown per idle connection (KiB)", None,
                           "{:,.1f}", memory))
    return [chart for chart in found if chart]


def svg(parts, width=W, height=H, extra=""):
    return (f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{width}" '
            f'height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" '
            f'font-size="11"{extra}>' + "".join(parts) + "</svg>")


def charts_html(results):
    """report.html's charts: each an inline SVG, its legend as the figure's caption."""
    return "\n".join(
        "<figure>" + svg(parts) + "<figcaption>" + "".join(
            f'<span class="key"><i style="background:{colour}"></i>{escape(name)}</span>'
            for name, colour in legend) + "</figcaption></figure>"
        for parts, legend in drawn(results))


def write_chart(results, path):
    """chart.svg: the same charts two abreast on one white sheet, one legend below."""
    found, parts, legend = drawn(results), [], {}
    for n, (chart, keys) in enumerate(found):
        parts.append(f'<g transform="translate({n % 2 * W},{n // 2 * H})">'
                     + "".join(chart) + "</g>")
        legend.update(keys)
    below = (len(found) + 1) // 2 * H
    for n, (name, colour) in enumerate(legend.items()):
        parts.append(f'<rect x="{LEFT}" y="{below + 18 * n}" width="12" height="12" '
                     f'fill="{colour}"/><text x="{LEFT + 18}" y="{below + 18 * n + 11}">'
                     f'{escape(name)}</text>')
    height = below + 18 * len(legend) + 10
    path.write_text(svg(['<rect width="100%" height="100%" fill="white"/>', *parts], 2 * W,
                        height) + "\n")
