"""Check for exercise 6: several async server processes share one port."""

import os

import pytest
from support import call

EDIT = "async_server.py"


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
    served_by = {call(server.port, "GET", "/stats").json()["pid"] for _ in range(40)}
    assert len(served_by) == 2, (
        f"40 new connections were served by {len(served_by)} process(es): edit {EDIT} so "
        "--processes N starts N processes on one port with SO_REUSEPORT")
    assert server.stop() == 0
    assert not [pid for pid in served_by if alive(pid)], "SIGTERM left a server process behind"
