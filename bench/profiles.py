"""Where a server's time goes: py-spy samples it from outside, and its stacks are grouped here.

With --profile, each measured run starts its own server under `py-spy record` (py-spy starts
the server as its child, so no extra privileges are needed on Linux; macOS asks for sudo).
py-spy writes collapsed stacks, one line each, "frame;frame;...;leaf COUNT", a frame being
"function (path)". Only the thread holding the GIL is sampled (--gil): where the interpreter
spends its time, which on one core is nearly all of a server's CPU. A thread that has let go
of the GIL (waiting on a socket, or for the GIL itself) is not in the samples. A sample
counts where its leaf frame is.

Standard library only: bench/flamegraph.py draws each run's flame graph from the raw stacks.
"""

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.flamegraph import write_flamegraph_svg

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


COLOURS = ["#19a979", "#5899da", "#e8743b", "#f2b134", "#ed4a7b", "#945ecf", "#bbbbbb"]


def colour_of(frame):
    """A frame's box takes its group's colour: the flame graph reads like the shares."""
    return COLOURS[[name for name, _ in GROUPS].index(group_of(frame))
                   if group_of(frame) != OTHER else len(GROUPS)]


def write_flamegraph(raw_path, svg_path, title):
    """An interactive flame graph of the run's request handling (bench/flamegraph.py)."""
    legend = list(zip([name for name, _ in GROUPS] + [OTHER], COLOURS))
    write_flamegraph_svg(stacks(raw_path), svg_path, title, colour_of, legend)


def redraw_flamegraphs(results, out_dir):
    """Draw each profiled run's flame graph again from its raw stacks (python -m bench.report),
    with the title the run gave it."""
    for run in results["runs"]:
        profile = run.get("profile")
        if profile and (Path(out_dir) / profile["raw"]).exists():
            write_flamegraph(Path(out_dir) / profile["raw"], Path(out_dir) / profile["flamegraph"],
                             f"{run['series']} at {run['point']}")


def shares_table(results):
    """The summary's section on profiled runs: each run's share of samples by group."""
    profiled = [run for run in results["runs"] if run.get("profile")]
    if not profiled:
        return ""
    names = [name for name, _ in GROUPS] + [OTHER]
    lines = ["## Where the servers' samples were (py-spy)", "",
             "PROFILED: py-spy sampled each server for its whole life (start-up and warm-up "
             "included: the shares count them, the flame graphs leave out the imports) and "
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
