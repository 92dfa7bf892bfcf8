"""Count the system calls each server makes per request, under the same light load.

    .venv/bin/python scripts/count_syscalls.py [--rate 500] [--wait-ms 1000] [--seconds 6]

Starts each server with --io-delay-ms, offers it a fixed rate of GET / (bench/openloop.py),
attaches `strace -c -f` to every thread it has for a few seconds of that steady state, and
divides each system call's count by the requests the server counted meanwhile (/stats).
strace slows every call it sees, so read the counts, not the times. Linux only (strace);
needs DATABASE_URL and REDIS_URL, as the servers do. Prints a Markdown table.
"""

import argparse
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.each_run import reset_data, start_openloop  # noqa: E402 (after the path)
from bench.launch import KINDS, Server  # noqa: E402

ROW = re.compile(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$")


def counted(kind, args, log_dir):
    """{syscall: calls per request} and the requests counted, for one server."""
    server = Server(kind, ("--io-delay-ms", str(args.wait_ms)), log_dir=log_dir).start()
    reset_data()
    warmup_s = args.wait_ms / 1000 + 2
    with open(Path(log_dir) / f"openloop-{kind}.txt", "w") as progress:
        client = start_openloop(server.port, args.rate, args.seconds + 2, args.wait_ms / 1000 + 5,
                                warmup_s, None, progress)
        time.sleep(warmup_s + 1)
        before = server.stats()["served"]
        trace = subprocess.Popen(["strace", "-c", "-f", "-p", str(server.pid)],
                                 stderr=subprocess.PIPE, text=True)
        time.sleep(args.seconds)
        trace.send_signal(signal.SIGINT)
        table = trace.communicate(timeout=60)[1]
        served = server.stats()["served"] - before
        client.communicate(timeout=args.wait_ms / 1000 + 70)
    server.stop()
    calls = {}
    for line in table.splitlines():
        match = ROW.match(line)
        if match and match.group(2) != "total":
            calls[match.group(2)] = int(match.group(1))
    return {name: count / served for name, count in calls.items()}, served


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=500, help="requests a second (default: %(default)s)")
    parser.add_argument("--wait-ms", type=int, default=1000,
                        help="each request's upstream wait (default: %(default)s)")
    parser.add_argument("--seconds", type=int, default=6,
                        help="how long strace counts (default: %(default)s)")
    args = parser.parse_args()
    if not shutil.which("strace"):
        sys.exit("count_syscalls: needs strace (Linux: apt-get install strace)")
    log_dir = tempfile.mkdtemp(prefix="todo-syscalls.")
    results = {}
    for kind in KINDS:
        print(f"counting {kind}_server.py's system calls for {args.seconds} s ...",
              file=sys.stderr, flush=True)
        results[kind] = counted(kind, args, log_dir)
    names = sorted(set().union(*(per for per, _ in results.values())),
                   key=lambda name: -max(per.get(name, 0) for per, _ in results.values()))
    print(f"System calls per request, GET / at {args.rate:g}/s, each waiting "
          f"{args.wait_ms} ms; requests counted: "
          + ", ".join(f"{kind} {served:,}" for kind, (_, served) in results.items()) + "\n")
    print("| System call | " + " | ".join(KINDS) + " |\n|---" * 1 + "|---" * len(KINDS) + "|")
    for name in names + ["total"]:
        cells = [f"{sum(per.values()) if name == 'total' else per.get(name, 0):.2f}"
                 for per, _ in results.values()]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
