"""How long a server takes to answer every connection a closed-loop client has just opened.

wrk opens all its connections at once. An event loop accepts them all and answers them in
turn; a server with a thread per connection must first start a thread each, and the threads
already running compete with it for the GIL. Until every connection has had its first
answer, part of the client is waiting on the server's start-up, not on its steady state:
this time is its own figure, and the measured window starts after it.

Read from the OS, not from the server: a server-side socket whose bytes the client has
acknowledged (`ss -ti` shows bytes_acked) has had an answer. Linux only (ss, iproute2);
elsewhere the figure is None.
"""

import shutil
import subprocess
import sys
import time

EVERY_S = 0.1


def answered_connections(port):
    """(open, answered): the server's established connections on `port`, and those that
    have sent an answer the client acknowledged; None where ss cannot tell."""
    if not shutil.which("ss"):
        return None
    listed = subprocess.run(["ss", "-tinH", "state", "established", f"( sport = :{port} )"],
                            capture_output=True, text=True, timeout=30)
    if listed.returncode != 0:
        return None
    details = [line for line in listed.stdout.splitlines() if line.startswith(("\t", " "))]
    return len(details), sum("bytes_acked:" in line for line in details)


def watch_opening(port, connections, started, limit_s, already_answered=0):
    """Poll until `connections` more connections than `already_answered` have been answered,
    at most `limit_s` after `started` (time.monotonic()). Returns the figure for results.json:
    {connections, all_answered_s (None if not within the limit, or unmeasurable), answered
    (by then), limit_s}. Prints a dot a second, as a run does."""
    figure = {"connections": connections, "all_answered_s": None, "answered": None,
              "limit_s": limit_s}
    next_dot = 0.0
    while (elapsed := time.monotonic() - started) < limit_s:
        counts = answered_connections(port)
        if counts is None:
            return figure
        figure["answered"] = max(0, counts[1] - already_answered)
        if figure["answered"] >= connections:
            figure["all_answered_s"] = round(elapsed, 2)
            return figure
        if elapsed >= next_dot:
            print(".", end="", file=sys.stderr, flush=True)
            next_dot += 1
        time.sleep(EVERY_S)
    return figure
