"""The chart of a benchmark: req/s and p99 latency against the scenario's x axis, as SVG.

Standard library only; bench/report.py's main() draws it again from a results.json.
"""

from html import escape

from bench.rows import summarize

SERIES_COLOURS = {"sync": "#1f77b4", "async": "#d62728", "sync --workers 32": "#ff7f0e",
                  "async --blocking": "#9467bd",
                  "sync --workers 2 --connect-per-request": "#8c564b"}


def series_colour(name):
    """The same server configuration keeps its colour in every chart; POST points are paler."""
    series = name.split(" (")[0].removesuffix(" POST")
    colour = SERIES_COLOURS.get(series, "#2ca02c")
    return colour + "80" if " POST" in name or "(isolated)" in name else colour


def write_chart(results, path):
    """Six panels against the scenario's x axis, one line a server (and placement): req/s,
    p99 latency, the server's CPU per request, its peak memory, and its context switches and
    CPU migrations per request."""
    lines = {}
    placements = {run.get("placement") for run in results["runs"]}
    for row in summarize(results):
        run = row["run"]
        name = row["series"] + (" POST" if run["method"] == "POST" else "") + (
            f" ({run['placement']})" if len(placements) > 1 else "")
        lines.setdefault(name, []).append((run["x"], run["rps"], run["p99_ms"],
                                           run.get("server_cpu_ms_per_request"),
                                           run.get("peak_rss_mb"),
                                           run.get("server_switches_per_request"),
                                           run.get("server_migrations_per_request")))
    xs = sorted({points[0] for line in lines.values() for points in line})
    panels = [("requests per second", 1), ("p99 latency (ms)", 2),
              ("server CPU per request (ms)", 3), ("server peak RSS (MB)", 4),
              ("context switches per request", 5), ("CPU migrations per request", 6)]
    width, height, pad = 420, 300, 55
    colours = [series_colour(name) for name in lines]
    rows = (len(panels) + 1) // 2
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * width}" '
             f'height="{rows * height + 30 + 18 * len(lines)}" font-family="sans-serif" '
             'font-size="12">', '<rect width="100%" height="100%" fill="white"/>']
    for panel, (title, index) in enumerate(panels):
        left, below = panel % 2 * width, panel // 2 * height
        values = [p[index] for points in lines.values() for p in points if p[index] is not None]
        top = max(values, default=1) * 1.1 or 1
        step = (width - 1.5 * pad) / len(xs)
        def x_at(x):
            return left + pad + (xs.index(x) + 0.5) * step

        def y_at(y):
            return below + height - pad + 20 - y / top * (height - pad - 10)
        parts.append(f'<text x="{left + width / 2}" y="{below + 16}" text-anchor="middle">'
                     f'{escape(title)}</text>')
        parts.append(f'<line x1="{left + pad}" y1="{y_at(0)}" x2="{left + width - 10}" '
                     f'y2="{y_at(0)}" stroke="black"/>')
        parts.append(f'<line x1="{left + pad}" y1="{y_at(0)}" x2="{left + pad}" '
                     f'y2="{y_at(top)}" stroke="black"/>')
        form = "{:,.0f}" if top > 11 else "{:.2f}"
        for tick in (0, top / 2 / 1.1, top / 1.1):
            parts.append(f'<text x="{left + pad - 4}" y="{y_at(tick) + 4}" '
                         f'text-anchor="end">{form.format(tick)}</text>')
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
        y = rows * height + 30 + 18 * n
        parts.append(f'<rect x="{pad}" y="{y - 10}" width="12" height="12" fill="{colour}"/>')
        parts.append(f'<text x="{pad + 18}" y="{y}">{escape(name)}</text>')
    parts.append("</svg>")
    path.write_text("\n".join(parts) + "\n")
