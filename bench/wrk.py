"""Running wrk with bench/wrk.lua; bench/wrkparse.py reads what it prints."""

import os
import subprocess
import sys
import time
from pathlib import Path

from bench.placement import pinned_to

LUA = Path(__file__).resolve().parent / "wrk.lua"


def threads_for(connections, threads):
    """wrk refuses more threads than connections (each thread needs one): cap the threads."""
    return min(threads, connections)


def run_wrk(case, url, threads, seconds, progress=False, cpus=None):
    """wrk for `seconds`, bounded by a hard timeout; prints a dot every half second if asked.
    Returns its output, headed by the command, and the CPU seconds it used: it shares the
    cores with the servers."""
    command = ["wrk", "-t", str(threads), "-c", str(case.connections), "-d", f"{seconds}s",
               "--timeout", f"{case.timeout_s}s", "-s", str(LUA), url, "--",
               case.method.lower()]
    wrk = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           preexec_fn=pinned_to(cpus))
    deadline = time.monotonic() + seconds + 30
    try:
        while True:
            pid, status, usage = os.wait4(wrk.pid, os.WNOHANG)
            if pid:
                wrk.returncode = os.waitstatus_to_exitcode(status)
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"bench: wrk did not finish: {' '.join(command)}")
            if progress:
                print(".", end="", file=sys.stderr, flush=True)
            time.sleep(0.5 if progress else 0.1)
    finally:  # the deadline, or SIGTERM's SystemExit (bench/run.py): no load left running
        if wrk.returncode is None:
            wrk.kill()
            wrk.wait()
    cpu = round(usage.ru_utime + usage.ru_stime, 2)
    return f"$ {' '.join(command)}\n{wrk.stdout.read()}", cpu
