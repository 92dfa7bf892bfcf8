"""bench/openloop.py, the open-loop load generator, held to what it claims: against servers
made here whose latency is known, it reports that latency; it shows the queue a closed-loop
client would hide; what never answers ranks after every answer. And bench/limits.py reads
the machine's limits back. Needs no Postgres or Redis.

These tests time things, against the house rule, because a latency meter is checked by
timing: each server's own wait is known (asyncio.sleep), and the bounds allow for the event
loops, not for a saturated machine: there the first test fails, saying that the client could
not keep to its schedule. The queue test's bounds follow from the server's capacity, with
room for a busy machine.
"""

import asyncio
import itertools
import json
import os
import resource
import signal
import subprocess
import sys
import threading
from contextlib import contextmanager

import pytest

from bench.openloop import ranked
from bench.limits import held_by, read_limits
from bench.report.reading import thread_ceiling
from support import ROOT, free_port

OPENLOOP = [sys.executable, "-m", "bench.openloop"]  # run from ROOT
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@contextmanager
def serving(wait):
    """A keep-alive HTTP/1.1 server on a free port, on its own event loop in a thread. Each
    request is answered once `await wait(n)` returns, n counting requests from 0 as they
    arrive. Yields the port."""
    ready, numbers = threading.Event(), itertools.count()
    loop, server = asyncio.new_event_loop(), {}

    async def handle(reader, writer):
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                await wait(next(numbers))  # yields to the event loop
                writer.write(ANSWER)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client closed it
        except asyncio.CancelledError:
            pass  # stopped with the server: Python 3.11's streams would log it as an error
        finally:
            writer.close()

    async def start():
        server["it"] = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
        ready.set()

    async def stop():  # the handlers still waiting too, so that none is left pending
        server["it"].close()
        waiting = asyncio.all_tasks() - {asyncio.current_task()}
        for task in waiting:
            task.cancel()
        await asyncio.gather(*waiting, return_exceptions=True)

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop)
    assert ready.wait(10)
    try:
        yield server["it"].sockets[0].getsockname()[1]
    finally:
        asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def openloop(port, *flags, open_files=None):
    """Run bench.openloop against `port`, allowed `open_files` if given; its JSON report."""
    done = subprocess.run([*OPENLOOP, "--port", str(port), *flags],
                          cwd=ROOT,
                          capture_output=True, text=True, timeout=60,
                          preexec_fn=open_files and (lambda: resource.setrlimit(
                              resource.RLIMIT_NOFILE, (open_files, open_files))))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_fixed_latency_is_reported_as_it_is():
    async def wait(n):
        await asyncio.sleep(0.1)

    with serving(wait) as port:
        report = openloop(port, "--rate", "50", "--duration", "3", "--timeout", "2",
                          "--warmup", "1")
    assert (report["sent"], report["ok"], report["timeouts"]) == (150, 150, 0)
    # never less than the server's own 100 ms: each request is timed from when it was due
    # (how much more it took is a measurement, for the benchmark, not a test)
    assert 100 <= report["p50_ms"] <= report["p99_ms"] <= report["max_ms"]
    # the warm-up's connections, kept alive, serve the window: it opens few of its own
    assert report["connections_opened"] < report["connections_opened_in_warmup"]


def test_the_queue_a_closed_loop_would_hide_is_measured():
    """One request at a time, 50 ms each: capacity 20/s, offered 40/s. A closed-loop client
    would send 60 in 3 s and see 50 ms each; here all 120 are sent on schedule, and request
    i cannot be answered before (i + 1) x 50 ms though it was due at i x 25 ms."""
    one_at_a_time = asyncio.Lock()  # bound to the server's loop when first used

    async def wait(n):
        async with one_at_a_time:
            await asyncio.sleep(0.05)

    with serving(wait) as port:
        report = openloop(port, "--rate", "40", "--duration", "3", "--timeout", "10")
    assert (report["sent"], report["ok"], report["timeouts"]) == (120, 120, 0)
    assert 50 <= report["answered_in_window"] <= 61  # capacity x time, not the offered 120
    assert report["p50_ms"] > 1000  # request 59: due at 1.475 s, answered after 3 s
    assert report["p99_ms"] > 2500  # request 118: due at 2.95 s, answered after 5.95 s
    assert report["peak_in_flight"] >= 55  # the queue, counted: 120 sent, at most 60 answered


def test_requests_never_answered_rank_after_every_answer():
    async def wait(n):
        if n % 2:  # every other request is never answered
            await asyncio.Event().wait()

    with serving(wait) as port:
        report = openloop(port, "--rate", "20", "--duration", "2", "--timeout", "1")
    assert (report["sent"], report["ok"], report["timeouts"]) == (40, 20, 20)
    assert report["p50_ms"] is not None  # the 20th of 40: still an answer
    assert report["p99_ms"] is None and report["p99_past_timeout"] is True
    assert report["max_ms"] is None and report["max_past_timeout"] is True


def test_running_out_of_descriptors_is_counted_not_a_crash():
    async def wait(n):
        await asyncio.sleep(1)

    with serving(wait) as port:  # 50 in flight at once, a descriptor each, but 30 allowed
        report = openloop(port, "--rate", "50", "--duration", "1", "--timeout", "2",
                          open_files=30)
    assert report["client_fd_limit"] == 30
    assert report["ok"] > 0 and report["errors"]["client_fd_limit"] > 0
    assert report["ok"] + report["errors"]["client_fd_limit"] == report["sent"] == 50


def test_ctrl_c_stops_it_cleanly():
    async def wait(n):
        await asyncio.sleep(5)

    with serving(wait) as port:
        client = subprocess.Popen(
            [*OPENLOOP, "--port", str(port), "--rate", "50",
             "--duration", "10", "--timeout", "6"], cwd=ROOT, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,  # a shell's background job ignores SIGINT:
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # not this one
        client.stderr.readline()  # its first progress line: it is sending
        client.send_signal(signal.SIGINT)
        out, err = client.communicate(timeout=30)
    assert (client.returncode, out) == (130, "")
    assert "interrupted" in err and "Traceback" not in err


def test_percentiles_rank_failures_last():
    answers = [i / 1000 for i in range(1, 100)]  # 1 ms to 99 ms
    assert ranked(answers, failures=1)["p99_ms"] == 99.0  # 1% failed: p99 is still an answer
    assert ranked(answers, failures=1)["max_past_timeout"] is True
    assert ranked(answers[:-1], failures=2)["p99_ms"] is None  # 2% failed: past the timeout
    assert ranked([], failures=0)["p50_ms"] is None


def test_each_percentile_comes_with_its_sample_count_and_95_percent_interval():
    """300 answers of 1 to 300 ms: p99 is the 297th, and its interval runs from the 293rd to
    the 301st, past the last sample: no upper bound was measured. A failure ranks last."""
    answers = [i / 1000 for i in range(1, 301)]
    figures = ranked(answers)
    assert figures["samples"] == 300 and figures["p99_ms"] == 297.0
    assert figures["p99_interval_ms"] == [293.0, None]
    assert figures["p50_interval_ms"] == [133.0, 167.0]  # 150 -/+ 1.96 * sqrt(75)
    assert "max_interval_ms" not in figures  # the slowest is measured, not estimated
    failed = ranked(answers[:-5], failures=5)  # the 296th to 300th never answered
    assert failed["samples"] == 300 and failed["p99_ms"] is None
    assert failed["p99_interval_ms"] == [293.0, None]
    assert ranked([])["samples"] == 0 and ranked([])["p50_interval_ms"] == [None, None]


def test_an_unreachable_port_is_a_connect_error_not_a_crash():
    report = openloop(free_port(), "--rate", "20", "--duration", "0.5", "--timeout", "1")
    assert report["sent"] == report["errors"]["connect"] == 10
    assert report["p50_ms"] is None and report["p50_past_timeout"] is True


@pytest.mark.parametrize("flags, says", [
    (["--rate", "0"], "--rate, --duration and --timeout take numbers above 0"),
    (["--rate", "ten"], "invalid float value"),
    (["--rate", "10", "--host", "example.com"], "invalid choice"),
])
def test_bad_flags_get_a_clear_error(flags, says):
    done = subprocess.run([*OPENLOOP, "--port", "1", "--duration", "1",
                           "--timeout", "1", *flags], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 2 and says in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads Linux's /proc")
def test_limits_are_read_back_from_proc():
    limits = read_limits()
    for name, path in [("max_map_count", "/proc/sys/vm/max_map_count"),
                       ("pid_max", "/proc/sys/kernel/pid_max"),
                       ("threads_max", "/proc/sys/kernel/threads-max")]:
        with open(path) as proc:
            assert limits[name] == int(proc.read()) > 0
    assert limits["nofile_soft"] > 0 and limits["mem_available_mb"] > 0
    with open("/proc/sys/net/ipv4/ip_local_port_range") as proc:
        low, high = (int(n) for n in proc.read().split())
    assert limits["ephemeral_ports"] == high - low + 1 > 0
    ceiling, name = thread_ceiling(limits)
    assert name in ("RLIMIT_NOFILE (soft)", "RLIMIT_NPROC", "vm.max_map_count / 2",
                    "kernel.pid_max", "kernel.threads-max")
    assert isinstance(ceiling, int) and ceiling > 0


def test_a_process_is_seen_to_hold_its_threads():
    before, release = held_by(os.getpid()), threading.Event()
    waiting = [threading.Thread(target=release.wait) for _ in range(5)]
    for thread in waiting:
        thread.start()
    try:
        during = held_by(os.getpid())
    finally:
        release.set()
        for thread in waiting:
            thread.join()
    assert during["threads"] == before["threads"] + 5
    if sys.platform.startswith("linux"):
        assert during["maps"] > 0 and during["fds"] > 0


def test_the_smallest_known_limit_caps_a_thread_per_connection():
    limits = {"nofile_soft": 20000, "nproc": 5000, "nproc_exempt": False,
              "max_map_count": 65530, "pid_max": None, "threads_max": 192729}
    assert thread_ceiling(limits) == (5000, "RLIMIT_NPROC")
    assert thread_ceiling({**limits, "nproc_exempt": True}) == (20000, "RLIMIT_NOFILE (soft)")
    assert thread_ceiling({**limits, "nproc_exempt": True, "nofile_soft": None}) == (
        32765, "vm.max_map_count / 2")  # a thread's stack and its guard page: two maps
    assert thread_ceiling(dict.fromkeys(limits)) == (None, None)
