"""Check for exercise 5: the page's CPU work runs in other processes, not in the event loop's."""

from pathlib import Path

import pytest
from sampling import cpu_seconds
from support import call

EDIT = "async_server.py"


def children(pid):
    """Direct child processes of `pid`, from /proc."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux's /proc")
def test_cpu_work_moves_out_of_the_server_process(start_server, fresh_data):
    server = start_server("async", "--cpu-ms", "100")
    call(server.port, "GET", "/")  # starts any worker processes
    main_before = cpu_seconds(server.process.pid)
    helpers_before = sum(cpu_seconds(child) for child in children(server.process.pid))
    for _ in range(6):
        assert call(server.port, "GET", "/").status == 200
    main_used = cpu_seconds(server.process.pid) - main_before
    helpers_used = sum(cpu_seconds(child) for child in children(server.process.pid)) \
        - helpers_before
    assert main_used < 0.3, (
        f"the server process itself computed {main_used:.2f} s for 6 views of 100 ms: the "
        f"event loop still does the CPU work. Edit {EDIT} to hand it to a process pool.")
    # /proc counts CPU time in clock ticks (10 ms): allow two of rounding
    assert helpers_used >= 0.6 - 0.02, f"its child processes computed only {helpers_used:.2f} s"
