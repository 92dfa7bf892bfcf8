"""Where a server's time goes: py-spy samples it from outside, and its stacks are grouped here.

With --profile, each measured run starts its own server under `py-spy record` (py-spy starts
the server as its child, so no extra privileges are needed on Linux; macOS asks for sudo).
py-spy writes collapsed stacks, one line each, "frame;frame;...;leaf COUNT", a frame being
"function (path)". Only the thread holding the GIL is sampled (--gil): where the interpreter
spends its time, which on one core is nearly all of a server's CPU. A thread that has let go
of the GIL (waiting on a socket, or for the GIL itself) is not in the samples. A sample
counts where its leaf frame is.

Standard library only: flame graphs are drawn here too, as plain SVG.
"""

import shutil
import subprocess
import sys
import tempfile
from html import escape
from pathlib import Path

RATE = 100  # samples a second: py-spy's default
# The first group with a fragment in a leaf frame's "function (path)" takes the sample: the
# drivers come first, so redis/_parsers/socket.py is Redis, not the socket module. py-spy sees
# no frames inside C: time in psycopg2's C code shows as our Postgres method calling it, so
# that counts as the driver. One home for the grouping: the summary and LESSON.md read it here.
GROUPS = [
    ("drivers (Postgres, Redis)", ("/psycopg2/", "/asyncpg/", "/redis/", "Postgres.")),
    ("socket reads and writes", ("/socket.py)", "/asyncio/selector_events.py)")),
    ("concurrency: event loop", ("/asyncio/", "/selectors.py)")),
    ("concurrency: threads", ("/threading.py)", "/queue.py)", "/socketserver.py)")),
    ("HTTP layer", ("/aiohttp/", "/http/server.py)", "/email/", "/sync_http.py)",
                    "/async_http.py)", "/multidict/", "/yarl/")),
    ("application (template, validation, handlers)", ("/jinja2/", "/markupsafe/", "/json/",
                                                      "/templates/", "/common.py)",
                                                      "/config.py)", "_server.py)")),
]
OTHER = "other"


def py_spy():
    """The py-spy command from .venv, or None where it is not installed."""
    found = Path(sys.executable).with_name("py-spy")
    return str(found) if found.exists() else shutil.which("py-spy")


def recording(command, raw_path):
    """`command` run under py-spy, writing collapsed stacks to raw_path when it exits."""
    return [py_spy(), "record", "--rate", str(RATE), "--gil", "--nonblocking", "--format", "raw",
            "--full-filenames", "--nolineno", "-o", str(raw_path), "--", *command]


def can_profile():
    """None if py-spy can record here, else the sentence that says why not."""
    if not py_spy():
        return "py-spy is not installed"
    with tempfile.TemporaryDirectory() as folder:
        trial = subprocess.run([py_spy(), "record", "--format", "raw", "-o",
                                str(Path(folder) / "trial.txt"), "--", sys.executable, "-c",
                                "import time; time.sleep(0.5)"], capture_output=True, text=True)
    if trial.returncode != 0:
        return f"py-spy cannot record here ({trial.stderr.strip().splitlines()[-1:]})"
    return None


def stacks(raw_path):
    """[(frames, count)] from py-spy's raw output."""
    found = []
    for line in Path(raw_path).read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            found.append((stack.split(";"), int(count)))
    return found


def group_of(frame):
    return next((name for name, parts in GROUPS if any(part in frame for part in parts)), OTHER)


def shares(raw_path):
    """{"samples": N, "shares": {group: percent}}: where the leaf frames were; sums to 100."""
    totals = dict.fromkeys([name for name, _ in GROUPS] + [OTHER], 0)
    for frames, count in stacks(raw_path):
        totals[group_of(frames[-1])] += count
    samples = sum(totals.values())
    return {"samples": samples, "shares": {name: round(100 * n / samples, 1) if samples else 0.0
                                           for name, n in totals.items()}}


def write_flamegraph(raw_path, svg_path, title):
    """A flame graph: each frame a box as wide as its share of the samples, callers below
    callees; hover a box for its name and share."""
    tree = {}
    for frames, count in stacks(raw_path):
        node = tree
        for frame in frames:
            node = node.setdefault(frame, {"n": 0, "children": {}})
            node["n"] += count
            node = node["children"]
    total = sum(child["n"] for child in tree.values()) or 1
    width, row, boxes, depth = 1200, 16, [], [0]

    def draw(children, x, level):
        depth[0] = max(depth[0], level + 1)
        for frame, node in sorted(children.items()):
            w = width * node["n"] / total
            if w >= 0.5:
                boxes.append((x, level, w, frame, node["n"]))
                draw(node["children"], x, level + 1)
            x += w

    draw(tree, 0, 0)
    height = (depth[0] + 2) * row
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             'font-family="monospace" font-size="10">',
             f'<text x="4" y="12">{escape(title)} ({total} samples)</text>']
    for x, level, w, frame, n in boxes:
        y = height - (level + 1) * row
        names = [name for name, _ in GROUPS] + [OTHER]
        colour = ["#19a979", "#5899da", "#e8743b", "#f2b134", "#ed4a7b", "#945ecf", "#bbbbbb"][
            names.index(group_of(frame))]
        label = frame.split(" (")[0]
        parts.append(f'<g><title>{escape(frame)}: {n} samples, {100 * n / total:.1f}%</title>'
                     f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{row - 1}" '
                     f'fill="{colour}"/><text x="{x + 2:.1f}" y="{y + 11}">'
                     f'{escape(label[:int(w / 6)])}</text></g>')
    parts.append("</svg>")
    Path(svg_path).write_text("\n".join(parts) + "\n")


def shares_table(results):
    """The summary's section on profiled runs: each run's share of samples by group."""
    profiled = [run for run in results["runs"] if run.get("profile")]
    if not profiled:
        return ""
    names = [name for name, _ in GROUPS] + [OTHER]
    lines = ["## Where the servers' samples were (py-spy)", "",
             "PROFILED: py-spy sampled each server for its whole run (warm-up included) and "
             "shared its CPU; compare these runs' req/s only with each other. A sample counts "
             f"where its innermost frame was; groups by path are in bench/profiles.py "
             f"(GROUPS). {RATE} samples a second of the thread holding the GIL.", "",
             "| Point | Server | Samples | " + " | ".join(names) + " | Flame graph |",
             "|---" * (len(names) + 4) + "|"]
    for run in profiled:
        profile = run["profile"]
        cells = [f"{profile['shares'][name]:.1f}%" for name in names]
        lines.append(f"| {run['point']} | {run['series']} | {profile['samples']:,} | "
                     + " | ".join(cells) + f" | [{profile['flamegraph']}]"
                     f"({profile['flamegraph']}) |")
    return "\n".join(lines) + "\n"
