"""Check for exercise 6: several async server processes share one port."""

import os
import sys

import psutil
import pytest
from support import call

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


def test_requests_are_spread_over_processes(start_server, fresh_data):
    try:
        server = start_server("async", "--processes", "2")
    except RuntimeError as error:
        pytest.fail(f"async_server.py --processes 2 did not start: edit {EDIT}.\n{error}")
    if not SPREADS_CONNECTIONS:
        started = [server.process.pid] + [
            child.pid for child in psutil.Process(server.process.pid).children(recursive=True)]
        assert len(started) >= 2, (
            f"--processes 2 started {len(started)} process(es): edit {EDIT}")
        assert server.stop() == 0
        assert not [pid for pid in started if alive(pid)], "SIGTERM left a process behind"
        pytest.skip(f"two processes started and stopped, but {sys.platform}'s SO_REUSEPORT "
                    "does not spread connections over them: the spreading is checked on Linux")
    served_by = {call(server.port, "GET", "/stats").json()["pid"] for _ in range(40)}
    assert len(served_by) == 2, (
        f"40 new connections were served by {len(served_by)} process(es): edit {EDIT} so "
        "--processes N starts N processes on one port with SO_REUSEPORT")
    assert server.stop() == 0
    assert not [pid for pid in served_by if alive(pid)], "SIGTERM left a server process behind"
