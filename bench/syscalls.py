"""Count the system calls each server makes per request, under the same light load.

    .venv/bin/python -m bench.syscalls [--rate 500] [--wait-ms 1000] [--seconds 8] [--out DIR]

Each server runs under `perf stat`, counting every thread's system calls by tracepoint
(cheap: strace would slow the server many times) while bench/openloop.py offers a fixed rate
of GET / with --io-delay-ms; a few seconds' counts are divided by the requests /stats counted
meanwhile. Needs DATABASE_URL, REDIS_URL, and root or kernel.perf_event_paranoid at -1.
Prints a Markdown table; --out also writes DIR/summary.md and DIR/counts.json (which
bench.report does not render).
"""

import argparse
import json
import platform
import shutil
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from bench.text import COLUMNS, markdown_table
from bench.each_run import reset_data, start_openloop
from bench.launch import KINDS, Server, ServerError

# The system calls either server makes most; "all" is every system call.
CALLS = ("futex", "recvfrom", "sendto", "epoll_wait", "epoll_ctl", "getpid", "accept4",
         "setsockopt", "getsockname", "ioctl", "poll", "clock_nanosleep", "clone3", "mmap")
EVENTS = ["raw_syscalls:sys_enter"] + [f"syscalls:sys_enter_{name}" for name in CALLS]
INTERVAL_MS = 100


def counted(kind, args, log_dir):
    """{system call: calls per request} and the requests counted, for one server."""
    print(f"counting {kind}_server.py's system calls ...", file=sys.stderr, flush=True)
    out = Path(log_dir) / f"perf-{kind}.csv"
    server = Server(kind, ["--io-delay-ms", str(args.wait_ms)], log_dir=log_dir,
                    under=["perf", "stat", "-I", str(INTERVAL_MS), "-x,", "-o", str(out),
                           "-e", ",".join(EVENTS), "--"])
    try:
        server.start()
    except ServerError as error:
        sys.exit(f"bench.syscalls: {kind}_server.py did not start under perf: {error}")
    try:
        reset_data()
        warmup_s = args.wait_ms / 1000 + 2
        with open(Path(log_dir) / f"openloop-{kind}.txt", "w") as progress:
            client = start_openloop(server.port, args.rate, args.seconds + 2,
                                    args.wait_ms / 1000 + 5, warmup_s, None, progress)
            time.sleep(warmup_s + 1)
            # perf's interval clock started with the process it runs the server under
            before, window_start = server.stats()["served"], time.monotonic() - server.started_at
            time.sleep(args.seconds)
            served = server.stats()["served"] - before
            window_end = time.monotonic() - server.started_at
            client.communicate(timeout=args.wait_ms / 1000 + 70)
    finally:
        server.stop()  # the server exits on SIGTERM, and perf, which ran it, writes and ends
    return per_request(out.read_text(), window_start, window_end, served), served


def per_request(csv, start_s, end_s, served):
    """{system call: calls per request} from perf stat -I -x, output: the intervals that
    ended inside [start_s, end_s] (seconds since perf started), over `served` requests."""
    calls = {}
    for line in csv.splitlines():
        fields = line.split(",")
        if len(fields) < 4 or not fields[1].strip().isdigit():
            continue  # a comment, or <not counted>
        at, count, event = float(fields[0]), int(fields[1]), fields[3]
        if start_s < at <= end_s:
            name = "all" if event == "raw_syscalls:sys_enter" else event.rsplit("_enter_", 1)[1]
            calls[name] = calls.get(name, 0) + count
    return {name: count / served for name, count in calls.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=500,
                        help="requests a second (default: %(default)s)")
    parser.add_argument("--wait-ms", type=int, default=1000,
                        help="each request's upstream wait (default: %(default)s)")
    parser.add_argument("--seconds", type=int, default=8,
                        help="how long the counts are taken (default: %(default)s)")
    parser.add_argument("--out", type=Path, help="a folder for summary.md and counts.json")
    args = parser.parse_args()
    if not shutil.which("perf"):
        sys.exit("bench.syscalls: needs perf (Debian and Ubuntu: apt-get install linux-perf)")
    log_dir = tempfile.mkdtemp(prefix="todo-syscalls.")
    results = {kind: counted(kind, args, log_dir) for kind in KINDS}
    names = ["all"] + sorted(CALLS, key=lambda name: -max(
        per.get(name, 0) for per, _ in results.values()))
    heading = (f"System calls per request: GET / offered at {args.rate:g} a second, each "
               f"waiting {args.wait_ms} ms; counted over {args.seconds} s, requests served: "
               + ", ".join(f"{kind} {served:,}" for kind, (_, served) in results.items())
               + f". Python {platform.python_version()}.")
    rows = [[name, *(f"{per.get(name, 0):.2f}" for per, _ in results.values())]
            for name in names]
    lines = [textwrap.fill(heading, COLUMNS), "",
             markdown_table(["System call", *KINDS], rows)]
    print("\n".join(lines))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "summary.md").write_text("\n".join(lines) + "\n")
        (args.out / "counts.json").write_text(json.dumps(
            {"python": platform.python_version(), "rate": args.rate, "wait_ms": args.wait_ms,
             "seconds": args.seconds, "per_request": {kind: {"served": served, "calls": per}
                                                      for kind, (per, served) in results.items()}},
            indent=2) + "\n")


if __name__ == "__main__":
    main()
