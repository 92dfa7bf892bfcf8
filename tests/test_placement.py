"""Where the server and the load run, and what the sampler counts, asked of the OS itself."""

import json
import os
import socket
import subprocess
import threading
import time

import psutil
import pytest

from bench.report.cells import median_run, percentile_cell, unaccepted
from bench.each_run import other_cpu
from bench.measure import answered_connections, watch_opening
from bench.placement import cpus_for, supported
from bench.report.reading import repeat_ratios, spread
from bench.sampling import established, readable, ThreadCounts
from support import ROOT, call

affinity = pytest.mark.skipif(not supported() or len(os.sched_getaffinity(0)) < 2,
                              reason="CPU affinity needs Linux and two cores")


def run_bench(tmp_path, *args):
    done = subprocess.run([str(ROOT / "run_bench.sh"), "--quick", "--results", str(tmp_path),
                           *args], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads((tmp_path / "latest" / "results.json").read_text())


@affinity
def test_placements_divide_the_cores():
    assert cpus_for("isolated", [0, 1]) == {"server": [1], "load": [0]}
    assert cpus_for("spread", [0, 1]) == {"server": [0, 1], "load": [0]}  # cannot part
    assert cpus_for("isolated", list(range(8))) == {"server": [7], "load": list(range(7))}
    assert cpus_for("spread", list(range(8))) == {"server": [4, 5, 6, 7], "load": [0, 1, 2, 3]}
    # shared is explicit too: every CPU, never an affinity inherited from the benchmark
    assert cpus_for("shared", [0, 1]) == {"server": [0, 1], "load": [0, 1]}
    assert cpus_for("isolated", [0]) == {"server": [0], "load": [0]}  # one core: shared


@pytest.mark.slow  # runs the benchmark
@affinity
def test_a_shared_server_after_an_isolated_one_may_use_every_cpu(tmp_path, urls):
    """The placement scenario runs isolated first, which moves the benchmark itself onto the
    load's CPUs; the shared servers started after it must not inherit that affinity."""
    results = run_bench(tmp_path, "--scenario", "placement")
    every_cpu = sorted(os.sched_getaffinity(0))
    assert [(r["placement"], r["series"]) for r in results["runs"]] == [
        (where, kind) for where in ("isolated", "shared", "spread") for kind in ("sync", "async")]
    for run in results["runs"]:
        assert run["cpus"]["server"] == (every_cpu[-1:] if run["placement"] == "isolated"
                                         else every_cpu)
        assert run["cpus"]["seen"] and set(run["cpus"]["seen"]) <= set(run["cpus"]["server"])
        assert run["server_switches_per_request"] > 0  # over every thread, per request
        assert run["server_migrations_per_request"] is not None
        assert run["requests"] > 0 and run["audit"]["result"] == "ok"
        assert run["knobs"]["db_pool_size"] > 0  # what the server reported it ran with


@pytest.mark.skipif(not readable(os.getpid()), reason="per-thread counts need Linux's /proc")
def test_thread_counts_keep_what_ended_threads_did():
    """Switches of threads that started and ended inside the window count, up to the last
    reading that saw them alive."""
    counts = ThreadCounts(os.getpid())
    for _ in range(5):  # each thread sleeps ten times: at least ten voluntary switches
        slept, leave = threading.Event(), threading.Event()

        def sleep_ten_times():
            for _ in range(10):
                leave.wait(0.001)
            slept.set()
            leave.wait()

        thread = threading.Thread(target=sleep_ten_times)
        thread.start()
        slept.wait()
        counts.read()  # seen alive, after its sleeps
        leave.set()
        thread.join()
    counts.read()  # the window's end
    totals = counts.totals()
    assert totals["voluntary"] >= 50
    assert totals["cpus"] and set(totals["cpus"]) <= set(os.sched_getaffinity(0))


@affinity
@pytest.mark.parametrize("kind", ["sync", "async"])
def test_every_thread_of_a_placed_server_runs_on_its_cpus(start_server, fresh_data, kind):
    last = sorted(os.sched_getaffinity(0))[-1]
    server = start_server(kind, cpus=[last])
    with socket.create_connection(("127.0.0.1", server.port)):  # one more thread for sync
        assert call(server.port, "GET", "/").status == 200
        threads = psutil.Process(server.process.pid).threads()
        placed = [thread.id for thread in threads if os.sched_getaffinity(thread.id) == {last}]
    assert len(placed) == len(threads) >= 1


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_the_sampler_counts_the_connections_a_server_holds(start_server, kind):
    server = start_server(kind)
    process = psutil.Process(server.process.pid)
    held = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(12)]
    try:
        for conn in held:  # a request answered on each: each has been accepted
            conn.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert conn.recv(100).startswith(b"HTTP/1.1 200")
        assert established(process, server.port, but=held[0].getsockname()[1]) == 11
    finally:
        for conn in held:
            conn.close()


def test_a_percentile_past_the_timeout_is_not_printed_as_a_number():
    run = {"timeout_s": 2, "p99_ms": None, "p50_ms": 90.0}  # the probe ranks timeouts last
    assert percentile_cell(run, "p99_ms") == "> 2 s"
    assert percentile_cell(run, "p50_ms") == "90.0 ms"


def test_connections_never_accepted_are_flagged():
    assert unaccepted({"connections": 1500, "peak_connections": 930}) == 570
    assert unaccepted({"connections": 500, "peak_connections": 497}) == 0  # within 1%
    assert unaccepted({"connections": 500, "peak_connections": None}) == 0  # unmeasured


def test_repeats_are_paired_and_their_range_read():
    """Each repeat's ratio divides by the baseline's req/s in the same repeat."""
    runs = [{"point": "GET / c=500", "series": series, "repeat": n, "rps": rps}
            for series, rates in (("sync", [1000, 1000, 800]), ("async", [1100, 1300, 1200]))
            for n, rps in enumerate(rates)]
    ratios = repeat_ratios({"baseline": "sync", "runs": runs},
                           {"point": "GET / c=500", "series": "async"})
    assert [round(ratio, 2) for ratio in ratios] == [1.10, 1.30, 1.50]
    assert spread(ratios) == "repeats 1.10x–1.50x, one side, but 3 repeats are few"
    assert spread([0.9, 1.1, 1.0, 1.0, 1.0]).endswith("holds 1.00x: no difference either way")
    assert spread([0.8, 0.9, 0.85, 0.9, 0.95]).endswith("below 1.00x in every one")


def test_the_median_of_an_even_number_of_repeats_is_the_mean_of_the_middle_two():
    runs = [{"repeat": n, "rps": rps, "p99_ms": p99}
            for n, (rps, p99) in enumerate([(1300, 10.0), (700, 90.0)])]
    assert median_run(runs) == {"repeat": 1, "rps": 1000, "p99_ms": 90.0}
    assert median_run(runs[:1]) == runs[0]


def test_other_cpu_is_what_no_measured_process_used():
    run = {"server_cpu_s": 9.0, "postgres_cpu_s": 2.0, "redis_cpu_s": 0.5, "wrk_cpu_s": 0.5,
           "bench_cpu_s": 0.4, "idle": None, "machine_busy_s": 15.4}
    assert other_cpu(run) == 3.0
    assert other_cpu({**run, "postgres_cpu_s": None}) is None  # not ours to read: unknown


def test_the_opening_counts_connections_answered_once_from_the_os():
    """A server that answers only three of five connections: the OS shows three answered on
    the client's side, and the figure says so rather than a time (measure.watch_opening)."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    accepted = []

    def serve():
        for n in range(5):
            conn, _ = listener.accept()
            accepted.append(conn)
            conn.recv(100)
            if n < 3:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(5)]
    try:
        for client in clients:
            client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        server.join(10)
        if answered_connections(port, os.getpid()) is None:
            pytest.skip("ss (iproute2) is not here: the figure is None")
        for client in clients[:3]:
            assert client.recv(100).startswith(b"HTTP/1.1 200")
        three = watch_opening(port, os.getpid(), 3, time.monotonic(), limit_s=10)
        assert three["answered"] == 3 and three["all_answered_s"] is not None
        five = watch_opening(port, os.getpid(), 5, time.monotonic(), limit_s=0.5)
        assert five == {"connections": 5, "all_answered_s": None, "answered": 3,
                        "limit_s": 0.5}
        assert answered_connections(port, os.getpid()) == (5, 3)
        assert answered_connections(port, os.getppid()) == (0, 0)  # only the client's own
    finally:
        for conn in clients + accepted:
            conn.close()
        listener.close()
