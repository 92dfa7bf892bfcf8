"""How long a server takes to answer every connection a closed-loop client has just opened.

wrk opens all its connections at once. An event loop accepts them all and answers them in
turn; a server with a thread per connection must first start a thread each, and the threads
already running compete with it for the GIL. Until every connection has had its first
answer, part of the client is waiting on the server's start-up, not on its steady state:
this time is its own figure, and the measured window starts after it.

Read from the OS, not from the server: a socket of the client's process that has received
bytes from the server's port (`ss -tip` shows bytes_received) has had an answer. Only the
client's own sockets count, not the probe's, the sampler's or idle clients'. Linux only
(ss, iproute2); elsewhere the figure is None.
"""

import shutil
import subprocess
import sys
import time

EVERY_S = 0.1


def answered_connections(port, client_pid):
    """(open, answered): the connections process `client_pid` holds to `port`, and those on
    which an answer has arrived; None where ss cannot tell."""
    if not shutil.which("ss"):
        return None
    listed = subprocess.run(["ss", "-tinpH", "state", "established", f"( dport = :{port} )"],
                            capture_output=True, text=True, timeout=30)
    if listed.returncode != 0:
        return None
    opened = answered = 0
    owner = f"pid={client_pid},"
    lines = listed.stdout.splitlines()
    for socket_line, details in zip(lines, lines[1:]):
        if owner in socket_line and details.startswith(("\t", " ")):
            opened += 1
            answered += "bytes_received:" in details
    return opened, answered


def watch_opening(port, client_pid, connections, started, limit_s):
    """Poll until the client has had an answer on `connections` connections, at most
    `limit_s` after `started` (time.monotonic()). Returns the figure for results.json:
    {connections, all_answered_s (None if not within the limit, or unmeasurable), answered
    (by then), limit_s}; with limit_s 0, nothing is watched and both are None. Prints a dot
    a second, as a run does."""
    figure = {"connections": connections, "all_answered_s": None, "answered": None,
              "limit_s": limit_s}
    next_dot = 0.0
    while (elapsed := time.monotonic() - started) < limit_s:
        counts = answered_connections(port, client_pid)
        if counts is None:
            return figure
        figure["answered"] = counts[1]
        if figure["answered"] >= connections:
            figure["all_answered_s"] = round(elapsed, 2)
            return figure
        if elapsed >= next_dot:
            print(".", end="", file=sys.stderr, flush=True)
            next_dot += 1
        time.sleep(EVERY_S)
    return figure
