"""Check for exercise 5: the page's CPU work runs in other processes, not in the event loop's,
and the loop keeps serving while they compute. The operating system counts the CPU seconds;
the server's /stats says what it was serving. How the pool is built is yours."""

import threading

import psutil
from support import at_once, call, wait_until

EDIT = "async_server.py"
VIEWS = 6  # page views at once, of 100 ms of CPU each
LONG_VIEWS, LONG_CPU_MS = 2, 1500  # views still computing while /stats is asked


def cpu_seconds(process):
    """User plus system CPU time of a process so far (0 once it is gone)."""
    try:
        times = process.cpu_times()
    except psutil.NoSuchProcess:
        return 0.0
    return times.user + times.system


def helpers_cpu(pid):
    """CPU seconds of every process below `pid`: those running (a pool's workers, children of
    the server with fork, of a forkserver process with Python 3.14's default) and those gone
    (a pool made per request), which the OS adds to the process that waited for them."""
    server = psutil.Process(pid)
    total = server.cpu_times().children_user + server.cpu_times().children_system
    for child in server.children(recursive=True):
        try:
            times = child.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


def start_computing(start_server, cpu_ms):
    server = start_server("async", "--cpu-ms", str(cpu_ms))
    call(server.port, "GET", "/")  # starts any worker processes
    return server, psutil.Process(server.process.pid)


def test_cpu_work_moves_out_of_the_server_process(start_server, fresh_data):
    server, main = start_computing(start_server, 100)
    main_before, helpers_before = cpu_seconds(main), helpers_cpu(main.pid)
    statuses = at_once([lambda: call(server.port, "GET", "/", timeout=60).status] * VIEWS)
    assert statuses == [200] * VIEWS
    main_used = cpu_seconds(main) - main_before
    helpers_used = helpers_cpu(main.pid) - helpers_before
    assert main_used < 0.3, (
        f"the server process itself computed {main_used:.2f} s for {VIEWS} views of 100 ms: "
        f"the event loop still does the CPU work. Edit {EDIT} to hand it to a process pool.")
    # CPU time is counted in clock ticks (10 ms on Linux): allow a few of rounding
    assert helpers_used >= VIEWS * 0.1 - 0.05, (
        f"the processes below the server computed only {helpers_used:.2f} s of "
        f"{VIEWS * 0.1:.1f}: edit {EDIT} to run burn_cpu in a process pool")


def test_the_loop_serves_while_the_pool_computes(start_server, fresh_data):
    """Two long views computing elsewhere, and /stats answered meanwhile, counting both in
    service. Waiting for the pool's result without awaiting it (future.result()) holds the
    loop: /stats is answered only once a view is done."""
    server, main = start_computing(start_server, LONG_CPU_MS)
    before = helpers_cpu(main.pid)
    views = [threading.Thread(target=call, args=(server.port, "GET", "/"),
                              kwargs={"timeout": 60}) for _ in range(LONG_VIEWS)]
    for view in views:
        view.start()
    computing = wait_until(lambda: helpers_cpu(main.pid) - before > 0.1
                           or not any(view.is_alive() for view in views), 30)
    computing = computing and any(view.is_alive() for view in views)  # not: all done already
    serving = server.stats()["in_service"] if computing else None
    for view in views:
        view.join()
    assert computing, (f"no process below the server computed for {LONG_VIEWS} views: edit "
                       f"{EDIT} to run burn_cpu in a process pool")
    assert serving == LONG_VIEWS, (
        f"while other processes computed {LONG_VIEWS} views, the event loop answered /stats "
        f"only when {LONG_VIEWS - serving} of them had finished: it waited for the pool "
        f"without yielding. Edit {EDIT} to await the result (loop.run_in_executor).")
