"""Check for exercise 6: several async server processes share one port. The operating system
says which processes listen on it and which one holds each accepted connection (psutil)."""

import http.client
import json
import os
import signal
import sys
import time

import psutil
import pytest

EDIT = "async_server.py"
# Linux hands each new connection to one of the processes listening with SO_REUSEPORT. macOS
# lets them all bind but gives the connections to one; FreeBSD needs SO_REUSEPORT_LB.
SPREADS_CONNECTIONS = sys.platform.startswith("linux")


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def server_tree(server):
    main = psutil.Process(server.process.pid)
    return [main] + main.children(recursive=True)


def listening(tree, port):
    """The pids of `tree` with a socket listening on `port`."""
    return {process.pid for process in tree for conn in process.net_connections("tcp")
            if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port}


def listening_soon(tree, port, count):
    """listening(), asked again for up to 10 s until `count` listen: the first process says
    "serving on" before its children may have bound their sockets, on a busy machine."""
    deadline = time.monotonic() + 10
    while len(found := listening(tree, port)) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    return found


def served_by(tree, port):
    """GET /stats on a new connection: (the pid the OS says holds the accepted end, the pid
    /stats reports)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/stats")
        reported = json.loads(conn.getresponse().read())["pid"]
        client = conn.sock.getsockname()[1]  # still open: keep-alive
        holders = [process.pid for process in tree for held in process.net_connections("tcp")
                   if held.laddr.port == port and held.raddr and held.raddr.port == client]
    finally:
        conn.close()
    return (holders[0] if len(holders) == 1 else None), reported


def test_requests_are_spread_over_processes(start_server, fresh_data):
    try:
        server = start_server("async", "--processes", "2")
    except RuntimeError as error:
        pytest.fail(f"async_server.py --processes 2 did not start: edit {EDIT}.\n{error}")
    tree = server_tree(server)
    started = [process.pid for process in tree]
    try:
        if not SPREADS_CONNECTIONS:
            assert len(started) >= 2, (
                f"--processes 2 started {len(started)} process(es): edit {EDIT}")
            assert server.stop() == 0
            assert not [pid for pid in started if alive(pid)], "SIGTERM left a process behind"
            pytest.skip(f"two processes started and stopped, but {sys.platform}'s SO_REUSEPORT "
                        "does not spread connections over them: the spreading is checked on "
                        "Linux")
        listeners = listening_soon(tree, server.port, 2)
        assert len(listeners) == 2, (
            f"the OS says {len(listeners)} process(es) listen on port {server.port}: edit "
            f"{EDIT} so --processes N starts N processes on one port with SO_REUSEPORT")
        served = [served_by(tree, server.port) for _ in range(40)]
        assert all(held == reported for held, reported in served), (
            f"/stats reports a pid other than the process holding the connection: {served}")
        serving = {held for held, _ in served}
        assert len(serving) == 2, (
            f"40 new connections were held by {len(serving)} process(es): edit {EDIT}")
        assert server.stop() == 0
        left = [pid for pid in started if alive(pid)]
        assert not left, f"SIGTERM left server process(es) {left} behind: edit {EDIT}"
    finally:
        for pid in started:  # whatever the outcome, the check leaves nothing running
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
