"""Each profiled run's flame graph, drawn once, by write_report (at a run's end, or again by
python -m bench.report) from the raw stacks; and the summary's table of where they were."""

from html import escape
from pathlib import Path

from bench.profiles import NAMES, RATE, group_of, stacks
from bench.text import markdown_table

COLOURS = dict(zip(NAMES, ["#19a979", "#5899da", "#e8743b", "#f2b134", "#ed4a7b", "#945ecf",
                          "#bbbbbb"]))  # a frame's box takes its group's: it reads like the shares


def draw_flamegraphs(results, out_dir):
    """Each profiled run's flame graph, from its raw stacks, where its profile says."""
    for run in results["runs"]:
        profile = run.get("profile")
        if profile and (Path(out_dir) / profile["raw"]).exists():
            svg = flamegraph_svg(stacks(Path(out_dir) / profile["raw"]),
                                 f"{run['series']} at {run['point']}")
            (Path(out_dir) / profile["flamegraph"]).write_text(svg)


def shares_table(results):
    """The summary's section on profiled runs: each run's share of samples by group."""
    profiled = [run for run in results["runs"] if run.get("profile")]
    if not profiled:
        return ""
    lines = ["## Where the servers' samples were (py-spy)", "",
             "PROFILED: py-spy sampled each server for its whole life (start-up and warm-up "
             "included: the shares count them, the flame graphs leave out the imports) and "
             "shared its CPU; compare these runs' req/s only with each other. A sample counts "
             f"where its innermost frame was; groups by path are in bench/profiles.py "
             f"(GROUPS). {RATE} samples a second of the thread holding the GIL.", ""]
    rows = [[run["point"], run["series"], f"{run['profile']['samples']:,}",
             *(f"{run['profile']['shares'][name]:.1f}%" for name in NAMES),
             f"[{run['profile']['flamegraph']}]({run['profile']['flamegraph']})"]
            for run in profiled]
    return "\n".join(lines + [markdown_table(["Point", "Server", "Samples", *NAMES,
                                               "Flame graph"], rows)]) + "\n"


WIDTH, ROW, TOP = 1200, 17, 66  # px: the graph's width, a frame's height, the header's
MIN_WIDTH = 0.3  # px: narrower frames are not drawn, as flamegraph.pl's --minwidth
START_UP = "importlib._bootstrap"  # in the path of every frame that runs an import

SCRIPT = """
var boxes = Array.prototype.slice.call(document.querySelectorAll("g.frame"));
function zoom(target) {  // target spans the width; its callers too, the rest is hidden
  var x0 = +target.dataset.x, w = +target.dataset.w, depth = +target.dataset.depth;
  boxes.forEach(function (g) {
    var x = +g.dataset.x, gw = +g.dataset.w, inside = x >= x0 && x + gw <= x0 + w;
    var shown = inside || (+g.dataset.depth < depth && x <= x0 && x + gw >= x0 + w);
    g.style.display = shown ? "" : "none";
    var px = inside ? (x - x0) / w * WIDTH : 0, pw = inside ? gw / w * WIDTH : WIDTH;
    g.querySelector("rect").setAttribute("x", px.toFixed(1));
    g.querySelector("rect").setAttribute("width", Math.max(pw - 0.5, 0.5).toFixed(1));
    g.querySelector("text").setAttribute("x", (px + 3).toFixed(1));
    g.querySelector("text").textContent = pw > 30 ? g.dataset.name.slice(0, pw / 6.5) : "";
  });
}
boxes.forEach(function (g) { g.addEventListener("click", function () { zoom(g); }); });
"""


def stack_tree(stacks):
    """{frame: {"n": samples, "children": {...}}} of request handling; start-up's samples."""
    tree, start_up = {}, 0
    for frames, count in stacks:
        if any(START_UP in frame for frame in frames):
            start_up += count
            continue
        children = tree
        for frame in frames:
            node = children.setdefault(frame, {"n": 0, "children": {}})
            node["n"] += count
            children = node["children"]
    return tree, start_up


def boxes_of(children, x=0, depth=1):
    """[(x, samples, depth, frame)] of each frame, callers before their callees."""
    boxes = []
    for frame, node in sorted(children.items()):
        boxes += [(x, node["n"], depth, frame), *boxes_of(node["children"], x, depth + 1)]
        x += node["n"]
    return boxes


def flamegraph_svg(stacks, title):
    """The SVG text: a box a frame, in its group's colour, under the legend of the groups."""
    tree, start_up = stack_tree(stacks)
    total = sum(node["n"] for node in tree.values())
    scale = WIDTH / total if total else 0
    boxes = [(0, total, 0, "all")] + [box for box in boxes_of(tree)
                                      if box[1] * scale >= MIN_WIDTH]
    height = TOP + (max(box[2] for box in boxes) + 2) * ROW
    skipped = f"; {start_up:,} samples of start-up (imports) left out" if start_up else ""
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
             f'viewBox="0 0 {WIDTH} {height}" font-family="Verdana, sans-serif" '
             'font-size="11">', "<style>g.frame{cursor:pointer} g.frame:hover rect"
             "{stroke:#000;stroke-width:0.5}</style>",
             f'<rect width="{WIDTH}" height="{height}" fill="#f8f8f8"/>',
             f'<text x="{WIDTH / 2}" y="18" text-anchor="middle" font-size="15">'
             f'{escape(title)}</text>',
             f'<text x="6" y="38">{total:,} samples of request handling{skipped}. Click a '
             'frame to zoom, the top line to zoom out.</text>']
    x = 6
    for group, colour in COLOURS.items():
        parts.append(f'<rect x="{x}" y="46" width="10" height="10" fill="{colour}"/>'
                     f'<text x="{x + 14}" y="55" font-size="10">{escape(group)}</text>')
        x += 24 + 5.6 * len(group)
    for x, n, depth, frame in boxes:
        name = frame.split(" (")[0]
        px, pw = x * scale, n * scale if total else WIDTH
        label = name[:int(pw / 6.5)] if pw > 30 else ""
        colour = COLOURS[group_of(frame)] if depth else "#d8d8d8"
        parts.append(
            f'<g class="frame" data-x="{x}" data-w="{n}" data-depth="{depth}" '
            f'data-name="{escape(name)}"><title>{escape(frame)} '
            f'({n:,} samples, {100 * n / (total or 1):.1f}%)</title><rect x="{px:.1f}" '
            f'y="{TOP + depth * ROW}" width="{max(pw - 0.5, 0.5):.1f}" height="{ROW - 1}" '
            f'fill="{colour}" rx="2"/><text x="{px + 3:.1f}" y="{TOP + depth * ROW + 12}">'
            f'{escape(label)}</text></g>')
    parts += [f"<script><![CDATA[{SCRIPT.replace('WIDTH', str(WIDTH))}]]></script>", "</svg>"]
    return "\n".join(parts) + "\n"
