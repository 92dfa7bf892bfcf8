"""--scenario capacity (bench/capacity.py): where each server's p99 passes the target, with an
interval that shows both the grid's step and the quantile's uncertainty; the slices pooled;
and, end to end, a --quick run that writes every file with results.json keeping the contract."""

import json
import re
import subprocess

import pytest
from support import ROOT

from bench.capacity import capacity_at, grid_rates, pooled_figures, pooled_report, ratio_of
from bench.report.capacity_report import capacity_reading, capacity_section
from bench.results import problems

TARGET = 100  # ms


def test_capacity_is_the_last_rate_under_the_target_and_its_interval_the_surely_under_to_over():
    points = [(100, 5, 4, 6), (200, 20, 15, 40), (300, 80, 60, 130), (400, 150, 120, 300),
              (500, 900, 800, None)]
    # 300 is under (80 ms) but not surely (its upper bound 130 ms is not); 400 is surely over
    assert capacity_at(points, TARGET) == {"rate": 300, "low": 200, "high": 400}


def test_a_rate_that_is_over_but_not_surely_leaves_the_interval_open_to_the_next():
    points = [(100, 5, 4, 6), (200, 110, 90, 130), (300, 400, 300, 500)]
    assert capacity_at(points, TARGET) == {"rate": 100, "low": 100, "high": 300}


def test_no_rate_under_the_target_has_no_capacity_and_an_interval_from_zero():
    points = [(100, 150, 120, 200), (200, None, None, None)]  # None: past the timeout
    assert capacity_at(points, TARGET) == {"rate": None, "low": None, "high": 100}


def test_every_rate_under_the_target_is_a_capacity_of_the_top_rate_or_more():
    points = [(100, 5, 4, 6), (200, 8, 7, 9), (300, 50, 40, None)]  # 300: no upper bound
    assert capacity_at(points, TARGET) == {"rate": 300, "low": 200, "high": None}


def test_a_rate_under_the_target_past_one_over_it_does_not_count():
    """Sustained means every lower rate too: a lucky dip past the knee is not capacity."""
    points = [(100, 5, 4, 6), (200, 150, 120, 200), (300, 60, 50, 70)]
    assert capacity_at(points, TARGET) == {"rate": 100, "low": 100, "high": 200}


def test_the_ratio_spans_what_both_intervals_allow_and_none_where_unbounded():
    other, base = {"rate": 600, "low": 500, "high": 700}, {"rate": 300, "low": 200, "high": 400}
    assert ratio_of(other, base) == {"value": 2.0, "low": 1.25, "high": 3.5}
    assert ratio_of(other, {"rate": None, "low": None, "high": 100}) == {
        "value": None, "low": 5.0, "high": None}
    assert ratio_of({"rate": 600, "low": 500, "high": None}, base)["high"] is None


def test_the_grid_is_the_same_rates_rounded_and_rising():
    assert grid_rates(1234, (1.1, 0.1, 0.55)) == [120, 680, 1360]
    assert grid_rates(40, (0.1, 0.2)) == [10]  # at least 10 a second, each once


def report(latencies_ms, sent, timeouts=0, behind=False):
    """An open-loop client's report (openloop.py) with --raw, as a slice gives it."""
    return {"sent": sent, "ok": len(latencies_ms), "ok_all": len(latencies_ms) + 5,
            "non_2xx": 0, "timeouts": timeouts, "timeouts_connecting": 0,
            "answered_in_window": len(latencies_ms), "client_cpu_s": 0.5, "duration_s": 2,
            "errors": {"connect": 0, "read": 0}, "latencies_ms": latencies_ms,
            "achieved_rate": len(latencies_ms) / 2, "p99_ms": None, "send_lag_ms_p99": 1.0,
            "client_behind": behind, "peak_in_flight": 3}


def test_slices_pool_every_request_and_rank_timeouts_after_every_answer():
    first = report([float(ms) for ms in range(1, 601)], 600)
    second = report([float(ms) for ms in range(601, 1191)], 600, timeouts=10, behind=True)
    pooled = pooled_report([first, second])
    assert (pooled["sent"], pooled["samples"], pooled["timeouts"]) == (1200, 1200, 10)
    assert pooled["p50_ms"] == 600.0 and pooled["p50_interval_ms"] == [566.0, 634.0]
    # 10 of 1,200 timed out: the 1,188th is p99, and its upper bound falls among the timeouts
    assert pooled["p99_ms"] == 1188.0 and pooled["p99_interval_ms"][1] is None
    assert pooled["client_behind"] and len(pooled["slices"]) == 2
    assert (pooled["achieved_rate"], pooled["client_cpu_s"]) == (297.5, 1.0)


def test_sampled_figures_pool_peaks_as_the_highest_and_per_request_over_all_requests():
    def figures(cpu, served, peak):
        return {"peak_threads": peak, "mean_in_service": 2.0, "served_in_window": served,
                "server_cpu_s": cpu, "server_cpu_ms_per_request": 99.0,
                "server_ctx_switches_voluntary": 10, "server_ctx_switches_involuntary": 0,
                "server_migrations": None, "server_migrations_per_request": None,
                "server_switches_per_request": 1.0, "server_cpus_seen": [peak % 2]}
    pooled = pooled_figures([figures(1.0, 1000, 3), figures(2.0, 2000, 8)])
    assert pooled["peak_threads"] == 8 and pooled["server_cpu_s"] == 3.0
    assert pooled["server_cpu_ms_per_request"] == 1.0 and pooled["server_cpus_seen"] == [0, 1]
    assert pooled["server_switches_per_request"] == pytest.approx(20 / 3000, abs=0.001)
    assert pooled["server_migrations"] is None and pooled["server_migrations_per_request"] is None


def test_the_reading_names_each_capacity_its_interval_the_ratio_and_where_the_client_fell_behind():
    def run(kind, rate, samples, client_cpu_s):
        return {"rate": rate, "method": "GET", "kind": kind, "series": kind, "duration_s": 6,
                "offered": {"samples": samples, "client_cpu_s": client_cpu_s}}
    results = {"capacity": {"target_ms": 100, "min_samples": 1000, "methods": {"GET": {
        "rates": [100, 200, 300], "client_behind_from": 300,
        "capacity": {"sync": {"rate": None, "low": None, "high": 100},
                     "async": {"rate": 300, "low": 200, "high": None}},
        "ratio": {"async": ratio_of({"rate": 300, "low": 200, "high": None},
                                    {"rate": None, "low": None, "high": 100})}}}},
        "runs": [run("sync", 300, 1800, 1.2), run("async", 300, 900, 5.4),
                 run("async", 200, 600, 0.6)]}
    assert capacity_reading(results) == [
        "- GET /, p99 under 100 ms: sync sustains no rate offered (not 100/s), its capacity "
        "between 0 and 100/s; async sustains 300/s (the top rate), its capacity between 200 "
        "and past 300/s (its p99 there from only 900 samples); no ratio async/sync: one of "
        "them kept no rate under the target.",
        "- The open-loop client fell behind its schedule (its send lag's p99 past 10 ms) at "
        "GET / from 300/s (0.90 of a core: near all of the one core a Python process can use):"
        " from there it set part of the pace, and its lateness is in both servers' latency "
        "alike."]


@pytest.fixture(scope="module")
def quick_capacity_run(tmp_path_factory, urls):
    """./run_bench.sh --scenario capacity --quick: (what it printed, results.json, its folder)."""
    folder = tmp_path_factory.mktemp("capacity")
    result = subprocess.run([str(ROOT / "run_bench.sh"), "--quick", "--scenario", "capacity",
                             "--results", str(folder)], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    latest = folder / "latest"
    return result, json.loads((latest / "results.json").read_text()), latest


@pytest.mark.slow  # runs the benchmark
def test_a_quick_capacity_run_offers_both_servers_the_same_rates_and_writes_every_file(
        quick_capacity_run):
    result, results, latest = quick_capacity_run
    assert problems(results) == []  # bench/results.py's contract, capacity's field included
    saturation = [run for run in results["runs"] if not run["rate"]]
    offered = [run for run in results["runs"] if run["rate"]]
    assert [(r["method"], r["series"]) for r in saturation] == [
        ("GET", "sync"), ("GET", "async"), ("POST", "sync"), ("POST", "async")]
    capacity = results["capacity"]
    assert capacity["rounds"] == 1 and isinstance(capacity["seed"], int)
    for method, summary in capacity["methods"].items():
        assert len(summary["rates"]) == 2 and set(summary["capacity"]) == {"sync", "async"}
        assert [(r["rate"], r["series"]) for r in offered if r["method"] == method] == [
            (rate, kind) for rate in summary["rates"] for kind in ("sync", "async")]
        assert max(summary["rates"]) == pytest.approx(max(summary["saturation"].values()),
                                                      abs=10)
    for run in offered:  # one slice each: every request sent is a sample, none lost
        pooled = run["offered"]
        assert pooled["samples"] == pooled["sent"] == run["requests"] > 0
        assert len(pooled["slices"]) == 1 and len(pooled["p99_interval_ms"]) == 2
        assert run["audit"]["result"] == "ok" and pooled["client_cpu_s"] > 0
    for name in ["summary.md", "chart.svg", "report.html"] + [r["raw"] for r in results["runs"]]:
        assert (latest / name).exists()
    page = (latest / "report.html").read_text()
    assert page.count('class="p99') == page.count('class="p50') == len(offered)
    assert page.count('class="target"') == 2  # a panel a method, the target across each
    summary = (latest / "summary.md").read_text()
    assert "## Capacity at p99 under 100 ms" in summary
    assert len(re.findall(r"^\| (GET /|POST /items) \| \d", summary, re.M)) == len(offered)
    assert capacity_section(results) in summary
    said = capacity_reading(results)  # "What it says" for a run that is not --quick
    assert said[0].startswith("- GET /, p99 under 100 ms: sync sustains ")
    assert "its capacity between " in said[0] and "async/sync" in said[0]
    assert said[-1].startswith("- The open-loop client ")
    assert "round 1/1: POST /items at 2 rates" in result.stderr
