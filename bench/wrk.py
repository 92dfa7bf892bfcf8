"""Running wrk with bench/wrk.lua; bench/wrkparse.py reads what it prints."""

import math
import signal
import subprocess
from pathlib import Path

from bench.placement import pinned_to

LUA = Path(__file__).resolve().parent / "wrk.lua"


def threads_for(connections, threads):
    """wrk refuses more threads than connections (each thread needs one): cap the threads."""
    return min(threads, connections)


def start_wrk(case, url, threads, seconds, cpus=None):
    """wrk for at most `seconds` on `cpus`; stop it sooner with stop_wrk."""
    # whole seconds: wrk 4.1.0 refuses "-d 38.0s"
    command = ["wrk", "-t", str(threads), "-c", str(case.connections),
               "-d", f"{math.ceil(seconds)}s",
               "--timeout", f"{case.timeout_s}s", "-s", str(LUA), url, "--",
               case.method.lower()]
    wrk = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           preexec_fn=pinned_to(cpus))
    wrk.command = command
    return wrk


def stop_wrk(wrk):
    """Interrupt wrk (on SIGINT it stops and prints its report, as at the end of -d) and
    return its output, headed by the command. A wrk that fails is an error, not a result."""
    if wrk.poll() is None:
        wrk.send_signal(signal.SIGINT)
    try:
        output, _ = wrk.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        wrk.kill()
        raise SystemExit(f"bench: wrk did not stop: {' '.join(wrk.command)}") from None
    if wrk.returncode != 0:
        raise SystemExit(f"bench: wrk exited with {wrk.returncode}: "
                         f"{' '.join(wrk.command)}\n{output}")
    return f"$ {' '.join(wrk.command)}\n{output}"

