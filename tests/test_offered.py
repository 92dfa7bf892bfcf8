"""A run at a fixed offered rate (bench/offered.py): requests in flight counted by the server
itself, the audit against the Redis counter, and the limits a run meets named."""

import os
import sys
import threading

import pytest

from bench.offered import (in_flight_at, limit_met, measure_offered, merged, peak_in_flight,
                           thread_states)
from bench.openloop import ranked
from bench.run import Timing
from bench.report.reading import limits_sentence
from bench.report import served_again
from bench.scenarios import SCENARIOS, Case

WAIT_MS, RATE = 400, 50  # 20 requests waiting at once, by Little's law


@pytest.mark.slow  # runs the benchmark's open-loop measurement
@pytest.mark.parametrize("kind", ["sync", "async"])
def test_an_offered_run_holds_rate_times_wait_in_flight(start_server, fresh_data, tmp_path,
                                                         kind):
    server = start_server(kind, "--io-delay-ms", str(WAIT_MS))
    case = Case("0.4 s wait, 50/s", 20, kind, kind, {"io_delay_ms": WAIT_MS}, timeout_s=3,
                rate=RATE, placement="shared")
    run = measure_offered(case, server, Timing(warmup_s=0.5, duration_s=2, threads=None),
                          tmp_path, "01")
    assert run["requests"] == 2 * RATE and run["ok"] == 2 * RATE
    assert run["timeouts"] == 0 and not any(run["socket_errors"].values())
    assert run["audit"]["result"] == "ok"
    # counted by the server inside the upstream wait: about rate x wait, never 1 at a time
    assert 10 <= run["waiting_upstream_peak"] <= 40
    if kind == "sync":  # a thread for each connection the client holds open
        assert run["held"]["threads"] > run["waiting_upstream_peak"] / 2
    assert run["limit_met"] is None
    assert run["gc_pause_ms"] >= run["longest_gc_pause_ms"] >= 0  # timed by the server itself
    assert run["p50_ms"] >= WAIT_MS  # timed from when each request was due


def client_report(latencies_ms, sent):
    """What one open-loop client prints with --raw, with what merged() reads."""
    counts = {key: 0 for key in ("offered_rate", "ok", "ok_all", "non_2xx", "timeouts",
                                 "timeouts_connecting", "answered_in_window", "achieved_rate",
                                 "connections_opened", "connections_opened_in_warmup",
                                 "client_cpu_s", "mean_in_flight")}
    return {**counts, "sent": sent, "answered": len(latencies_ms), "errors": {"connect": 0},
            "latencies_ms": latencies_ms, "in_flight_history": [[0.0, 1]],
            "send_lag_ms_p99": 0, "send_lag_ms_max": 0, "client_behind": False,
            "start_clock": 0.0, "first_failure": None,
            **ranked([ms / 1000 for ms in latencies_ms], sent - len(latencies_ms))}


def test_several_clients_percentiles_are_ranked_again_with_their_count_and_interval():
    """Two clients' answers are ranked together: 400 samples, the one unanswered last."""
    first = [float(ms) for ms in range(1, 201)]
    second = [float(ms) for ms in range(201, 400)]
    report = merged([client_report(first, 200), client_report(second, 200)])
    assert report["samples"] == 400 and report["p99_ms"] == 396.0
    assert report["p99_interval_ms"] == [392.0, None]  # 396 -/+ 3.9: to the 400th, failed
    assert report["p50_interval_ms"] == [180.0, 220.0]  # 200 -/+ 19.6
    assert report == {**report, **ranked([ms / 1000 for ms in first + second], 1)}


def test_the_peak_in_flight_adds_every_clients_last_sample_at_each_of_the_firsts():
    """At 0.1 s the first client had 5 and the second its 0.05 s sample, 7; at 0.2 s, 1 and
    20 (a sample at the same clock counts); the second's 100 at 0.25 s comes after the first's
    last sample, so it is not summed, as in_flight_at would not sum it."""
    histories = [[[0.1, 5], [0.2, 1]], [[0.05, 7], [0.2, 20], [0.25, 100]]]
    assert peak_in_flight(histories) == 21 == max(in_flight_at(histories, at)
                                                  for at, _ in histories[0])
    assert peak_in_flight([[], [[0.1, 3]]]) == 0


def test_a_limit_in_the_log_is_named():
    report = {"errors": {"connect": 0, "client_fd_limit": 0}}
    log = "sync_http WARNING 127.0.0.1:5000 refused: can't start new thread\n"
    assert limit_met(log, report) == "server: threads: the OS refused to start one"
    assert limit_met("", {"errors": {"connect": 0, "client_fd_limit": 3}}).startswith("client")
    assert limit_met("", report) is None


def test_the_summary_says_which_limit_binds_a_thread_per_connection_first():
    limits = {"nofile_soft": 20000, "nofile_hard": 20000, "nproc": None, "nproc_exempt": True,
              "max_map_count": 65530, "pid_max": 32768, "threads_max": 190000}
    sentence = limits_sentence(limits)
    assert "about 32,765 (vm.max_map_count / 2" in sentence and "20,000 open files" in sentence


def test_quick_waits_keeps_the_two_shorter_waits():
    scenario = SCENARIOS["waits"]
    cases = scenario.quick(scenario.plan([500]))
    assert len({case.point for case in cases}) == 2
    assert max(case.knobs["io_delay_ms"] for case in cases) < max(
        case.knobs["io_delay_ms"] for case in scenario.plan([500]))
    assert max(case.rate * case.knobs["io_delay_ms"] / 1000 for case in
               scenario.plan([500])) >= 10_000  # the full run: ten thousand in flight


def test_a_macs_thread_cap_is_named_as_the_first_limit():
    """Simulated: what read_limits() gives on macOS (kern.num_taskthreads, no /proc)."""
    mac = {"nofile_soft": 10240, "nofile_hard": None, "nproc": 2666, "nproc_exempt": False,
           "max_map_count": None, "pid_max": None, "threads_max": None, "task_threads": 4096,
           "pids_max": None}
    sentence = limits_sentence(mac)
    assert "about 2,666 (RLIMIT_NPROC)" in sentence  # the user's processes' cap, lower here
    assert "the first limit here is threads" in sentence
    sentence = limits_sentence({**mac, "nproc": None})
    assert "about 4,096 (kern.num_taskthreads (per process))" in sentence


def test_open_files_come_first_where_they_are_fewer_than_threads():
    limits = {"nofile_soft": 20000, "nofile_hard": 20000, "nproc": None, "nproc_exempt": True,
              "max_map_count": 65530, "pid_max": 32768, "threads_max": 190000}
    assert "the first limit here is open files, for both servers" in limits_sentence(limits)


def test_a_thread_cap_the_run_set_is_named_as_the_first_limit():
    """The laptop scenario caps each server at 4,096 threads: that, not the machine's
    32,765 or its 20,000 open files, is what a thread per connection meets first."""
    limits = {"nofile_soft": 20_000, "nproc": None, "nproc_exempt": True,
              "max_map_count": 65_530, "pid_max": 32_768, "threads_max": 190_000}
    sentence = limits_sentence(limits, thread_cap=4_096)
    assert "at about 4,096 (the cap this run set on each server's threads)" in sentence
    assert "So the first limit here is threads, for the thread-per-connection server." in sentence


def test_a_server_that_stopped_answering_is_said_so_with_what_it_did_then():
    """Served again: 'no' alone hides a server that stalled while it burned CPU; where the
    run counted the time after the window, the table says when it last answered and how."""
    run = {"recovered_s": None, "stalled": {"threads": 19_536, "runnable": 1_957},
           "after_window": [[60.0, 11_000, 19_977, 100.0], [72.0, 13_465, 19_873, 110.0],
                            [74.0, None, 19_800, 113.0], [80.0, 13_465, 19_700, 121.6]]}
    assert served_again(run) == ("no: answered nothing after 72 s, then 1.45 cores busy, "
                                 "1,957 of 19,536 threads runnable")
    assert served_again({**run, "recovered_s": 0.2}) == "0.2 s"
    assert served_again({"recovered_s": None}) == "no"  # runs made before it was counted


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads Linux's /proc")
def test_thread_states_count_this_process_threads_and_the_one_running():
    states = thread_states(os.getpid())
    assert states["threads"] == threading.active_count() and states["runnable"] >= 1
