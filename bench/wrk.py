"""Running wrk with bench/wrk.lua, and reading its text report and wrk.lua's WRK_JSON line.

wrk counts every completed response as a request, whatever its status; "Non-2xx or 3xx"
counts statuses of 400 and above; a response slower than --timeout is a timeout, left out of
the latency percentiles. Requests still unanswered when wrk stops count nowhere.
"""

import json
import math
import re
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
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=pinned_to(cpus))


def stop_wrk(wrk):
    """Interrupt wrk (it stops and prints its report, as at the end of -d); its output headed
    by the command. SIGINT goes again each second: the kernel may hand it to a worker thread,
    which stops the workers while the main thread sleeps out -d; a second one finds it."""
    command = " ".join(wrk.args)
    for _ in range(30):
        if wrk.poll() is None:
            wrk.send_signal(signal.SIGINT)
        try:
            output, _ = wrk.communicate(timeout=1)
        except subprocess.TimeoutExpired:
            continue
        if wrk.returncode != 0:
            raise SystemExit(f"bench: wrk exited with {wrk.returncode}: {command}\n{output}")
        return f"$ {command}\n{output}"
    wrk.kill()
    raise SystemExit(f"bench: wrk did not stop: {command}")


class WrkOutputError(ValueError):
    """The output is not what bench/wrk.lua makes wrk print."""


def parse_wrk(output):
    """Return the run's numbers as a dict; raise WrkOutputError if the report is incomplete."""
    line = next((line for line in output.splitlines() if line.startswith("WRK_JSON ")), None)
    if line is None:
        raise WrkOutputError("no WRK_JSON line: was wrk run with -s bench/wrk.lua?")
    raw = json.loads(line[len("WRK_JSON "):])
    check_against_text(raw, output)
    socket_errors = {kind: raw[kind + "_errors"] for kind in ("connect", "read", "write")}
    return {  # wrk's latency and rate mix in the opening: the window's come from elsewhere
        "requests": raw["requests"],
        "seconds": round(raw["duration_us"] / 1e6, 3),
        "ok": raw["requests"] - raw["status_errors"],
        "non_2xx": raw["status_errors"],
        "timeouts": raw["timeouts"],
        "socket_errors": socket_errors,
    }


# wrk's text report's lines, and the WRK_JSON figures each must match (a line left out: 0s)
IN_TEXT = {r"^\s*(\d+) requests in ": ("requests",),
           r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)":
               ("connect_errors", "read_errors", "write_errors", "timeouts"),
           r"Non-2xx or 3xx responses: (\d+)": ("status_errors",)}


def check_against_text(raw, output):
    """wrk's text report and our Lua summary must tell the same story."""
    for pattern, keys in IN_TEXT.items():
        found = re.search(pattern, output, re.M)
        in_text = tuple(map(int, found.groups())) if found else (0,) * len(keys)
        in_json = tuple(raw[key] for key in keys)
        if in_text != in_json:
            raise WrkOutputError(f"wrk's report and WRK_JSON differ: {keys} {in_text}, {in_json}")
