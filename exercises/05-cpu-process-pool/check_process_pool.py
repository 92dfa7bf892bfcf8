"""Check for exercise 5: the page's CPU work runs in other processes, not in the event loop's."""

import psutil
from support import call

EDIT = "async_server.py"


def cpu_seconds(process):
    """User plus system CPU time of a process so far (0 once it is gone)."""
    try:
        times = process.cpu_times()
    except psutil.NoSuchProcess:
        return 0.0
    return times.user + times.system


def helpers_cpu(pid):
    """CPU seconds of every process below `pid`, by pid: pool workers are children of the
    server with fork, but of a forkserver process (Linux's default from Python 3.14)."""
    return {child.pid: cpu_seconds(child)
            for child in psutil.Process(pid).children(recursive=True)}


def test_cpu_work_moves_out_of_the_server_process(start_server, fresh_data):
    server = start_server("async", "--cpu-ms", "100")
    call(server.port, "GET", "/")  # starts any worker processes
    main = psutil.Process(server.process.pid)
    main_before, helpers_before = cpu_seconds(main), helpers_cpu(main.pid)
    for _ in range(6):
        assert call(server.port, "GET", "/").status == 200
    main_used = cpu_seconds(main) - main_before
    helpers_after = helpers_cpu(main.pid)  # workers started on demand count from zero
    helpers_used = sum(used - helpers_before.get(pid, 0.0)
                       for pid, used in helpers_after.items())
    assert main_used < 0.3, (
        f"the server process itself computed {main_used:.2f} s for 6 views of 100 ms: the "
        f"event loop still does the CPU work. Edit {EDIT} to hand it to a process pool.")
    # CPU time is counted in clock ticks (10 ms on Linux): allow one of rounding per process
    assert helpers_used >= 0.6 - 0.01 * len(helpers_after), (
        f"the processes below the server computed only {helpers_used:.2f} s")
