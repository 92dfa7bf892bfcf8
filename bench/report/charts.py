"""The charts of a run as SVG: report.html's, each in a figure with its legend (page.py), and
chart.svg, the same on one sheet. Grouped bars, a group a point, a whisker spanning the
repeats. Every row of the summary's table has its bar or its mark in every chart: a percentile
past the client's timeout is drawn to the top, dashed, labelled "> 2 s" (left out, the worst
case would look the best); a figure not measured reads "-"; a percentile from too few requests
(cells.few, "†") is an outline, not filled in as a measured height. Standard library only.
"""

import math
from html import escape

from bench.report.cells import FEW, few, groups, idle_cost, median_run

W, H, LEFT, BOTTOM = 560, 300, 64, 64  # px: a chart, and the room for its axes' labels
FIGURES = [("requests per second", "rps", "{:,.0f}"), ("p99 latency (ms)", "p99_ms", "{:,.1f}"),
           ("server CPU per request (ms)", "server_cpu_ms_per_request", "{:.2f}"),
           ("context switches per request", "server_switches_per_request", "{:.1f}"),
           ("CPU migrations per request", "server_migrations_per_request", "{:.2f}")]
INTERLEAVED_LATENCY = ("mean latency (ms): connections / req/s", "latency_mean_ms", "{:,.1f}")
PERCENTILES = ("p50_ms", "p99_ms")  # None: past the timeout (bench/results.py)
SERIES_COLOURS = {"sync": "#1f77b4", "async": "#d62728", "sync --workers 32": "#ff7f0e",
                  "async --blocking": "#9467bd",
                  "sync --workers 2 --connect-per-request": "#8c564b"}


def series_colour(name):
    """The same server configuration keeps its colour in every chart."""
    return SERIES_COLOURS.get(name, "#2ca02c")


def chart_cell(runs, key):
    """(the median run's figure, the repeats' lowest, highest: math.inf past the timeout); a
    percentile past the timeout ("past", its label, the timeout in ms); None: not measured."""
    middle, values = median_run(runs), [run.get(key) for run in runs]
    if middle.get(key) is None and key in PERCENTILES:
        return "past", f"> {middle['timeout_s']} s", middle["timeout_s"] * 1000
    known = [value for value in values if value is not None]
    if len(known) < len(values) and key not in PERCENTILES:  # not measured in every repeat
        return None
    return middle[key], min(known), max(known) if len(known) == len(values) else math.inf


def nice_top(highest):
    """The axis' top: the first of 1, 2, 2.5, 5 times a power of ten above the highest."""
    if highest <= 0:
        return 1
    power = 10 ** math.floor(math.log10(highest * 1.05))
    return next(step * power for step in (1, 2, 2.5, 5, 10) if step * power >= highest * 1.05)


def frame(title, ticks):
    """A chart's title, its x axis and a grey line across at each (y, label) tick."""
    parts = [f'<text x="{W / 2}" y="16" text-anchor="middle" font-weight="bold">'
             f'{escape(title)}</text>',
             f'<line x1="{LEFT}" y1="{H - BOTTOM}" x2="{W - 8}" y2="{H - BOTTOM}" stroke="#333"/>']
    for y, label in ticks:
        parts.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{W - 8}" y2="{y:.1f}" stroke="#eee"/>'
                     f'<text x="{LEFT - 4}" y="{y + 4:.1f}" text-anchor="end">{label}</text>')
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
    runs_at = groups(results["runs"])
    by_point = {point: {series: chart_cell(runs, key) for series, runs in by_series.items()}
                for point, by_series in runs_at.items()}
    # the highest figure (a past percentile's: its timeout) sets the axis
    values = [cell[1] if cell[2] == math.inf else cell[2] for by_series in by_point.values()
              for cell in by_series.values() if cell]
    if not values:
        return None
    series = list(dict.fromkeys(s for by_series in by_point.values() for s in by_series))
    top = nice_top(max(values))
    y0, slot = H - BOTTOM, (W - LEFT - 8) / len(by_point)
    bar = min(40, slot * 0.8 / len(series))

    def y_of(value):
        return y0 - min(value, top) / top * (y0 - 30)
    parts = frame(title, [(y_of(tick), form.format(tick)) for tick in (0, top / 2, top)])
    for i, (point, by_series) in enumerate(by_point.items()):
        x = LEFT + i * slot + (slot - bar * len(series)) / 2
        for n, words in enumerate(point.split(", ")):  # "GET / c=500", "shared"
            parts.append(f'<text x="{LEFT + (i + 0.5) * slot:.1f}" y="{y0 + 14 + 13 * n}" '
                         f'text-anchor="middle" font-size="10">{escape(words)}</text>')
        for name, cell in by_series.items():  # a series' bar keeps its place in every group
            left, what = x + series.index(name) * bar, f"{name} at {point}"
            if not cell or cell[0] == "past":
                parts.append(mark(cell, left, bar - 2, series_colour(name), what))
                continue
            value, low, high = cell
            hollow = key in PERCENTILES and few(median_run(runs_at[point][name]), key)
            fill = f'fill="none" stroke="{series_colour(name)}" stroke-width="2"' if hollow \
                else f'fill="{series_colour(name)}"'
            parts.append(f'<rect class="bar" data-cell="{escape(what)}" x="{left:.1f}" '
                         f'y="{y_of(value):.1f}" width="{bar - 2:.1f}" '
                         f'height="{y0 - y_of(value):.1f}" {fill}>'
                         f'<title>{escape(what)}: {form.format(value)}'
                         f'{range_text(low, high, form)}{FEW * hollow}</title></rect>')
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


def drawn(results):
    """Every chart this run's figures allow: [(svg parts, legend)] (capacity: capacity_charts)."""
    interleaved = any("slices" in run for run in results["runs"])  # no request is timed
    found = [bars(results, *(INTERLEAVED_LATENCY if interleaved and key == "p99_ms" else
                             (title, key, form))) for title, key, form in FIGURES]
    found.append(bars(idle_cost(results), "peak RSS grown per idle connection (KiB)",
                      "idle_kib", "{:,.1f}"))  # None without idle connections
    return [chart for chart in found if chart]


def svg(parts, width=W, height=H):
    return (f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{width}" '
            f'height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" '
            f'font-size="11">' + "".join(parts) + "</svg>")


def charts_html(charts):
    """report.html's charts (drawn's): each an inline SVG, its legend as the caption."""
    return "\n".join(
        "<figure>" + svg(parts) + "<figcaption>" + "".join(
            f'<span class="key"><i style="background:{colour}"></i>{escape(name)}</span>'
            for name, colour in legend) + "</figcaption></figure>"
        for parts, legend in charts)


def write_chart(found, path):
    """chart.svg: the charts (drawn's) two abreast on one white sheet, one legend below."""
    parts, legend = [], {}
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
