"""The benchmark's plans and its reading of results, in-process: no server, no wrk."""

import re
import subprocess
import sys

import pytest

from bench.limits import somaxconn_note
from bench.report import render_summary
from bench.report.cells import summarize
from bench.scenarios import SCENARIOS, Case
from bench.launch import KINDS
from support import ROOT


def server_flags(kind):
    shown = subprocess.run([sys.executable, f"{kind}_server.py", "--help"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout
    return set(re.findall(r"(--[a-z][a-z-]+)", shown))


@pytest.mark.parametrize("name", SCENARIOS)
def test_every_scenario_names_a_sync_baseline_it_runs(name):
    scenario = SCENARIOS[name]
    cases = scenario.plan([500, 1500])
    baselines = [case for case in cases if case.series == scenario.baseline]
    assert baselines and {case.kind for case in baselines} == {"sync"}
    assert {case.point for case in baselines} == {case.point for case in cases}


def test_case_flags_are_made_from_its_knobs():
    case = Case("GET / c=5", 5, "sync", "sync", {"workers": 2, "connect_per_request": True})
    assert case.flags == ("--workers", "2", "--connect-per-request")
    assert Case("GET / c=5", 5, "async", "async").flags == ()


def test_every_flag_a_scenario_passes_is_one_the_server_takes():
    taken = {kind: server_flags(kind) for kind in KINDS}
    for scenario in SCENARIOS.values():
        for case in scenario.plan([500, 1500]):
            assert set(flag for flag in case.flags if flag.startswith("--")) <= taken[case.kind]


def fake_run(series, rps, point="delay 10 ms"):
    """The fields of a results run (measure.measure) that the summary reads."""
    return {"point": point, "x": 10, "series": series, "method": "GET", "rps": rps,
            "requests": int(rps * 10), "threads": 2, "p50_ms": 1.0, "p99_ms": 2.0,
            "timeouts": 0, "socket_errors": {"connect": 0, "read": 0, "write": 0},
            "non_2xx": 0, "peak_threads": None, "peak_rss_mb": None, "peak_in_service": None,
            "mean_in_service": None, "server_cpu_s": None, "wrk_cpu_s": 0.1, "valid": True,
            "audit": {"result": "ok"}}


def blocking_results():
    """The blocking scenario's order puts async first; its baseline is still sync."""
    return {"scenario": "blocking", "x_axis": "upstream delay (ms)", "baseline": "sync",
            "machine": {"cores": 2, "cpu": "test", "python": "3", "os": "test", "wrk": "wrk"},
            "settings": {"duration_s": 10, "warmup_s": 2, "threads": 2, "repeat": 1},
            "runs": [fake_run("async", 1000), fake_run("async --blocking", 100),
                     fake_run("sync", 500)]}


def test_ratio_divides_by_the_baseline_series_not_the_first():
    ratios = {row["series"]: row["ratio"] for row in summarize(blocking_results())}
    assert ratios == {"async": 2.0, "async --blocking": 0.2, "sync": 1.0}


def test_summary_names_the_baseline_and_shows_unmeasured_figures_as_unknown():
    summary = render_summary(blocking_results())
    assert "| delay 10 ms | sync | 500 | 1.00x |" in summary
    assert "Ratio is req/s divided by `sync`'s at the same point" in summary.replace("\n", " ")
    row = max((line for line in summary.splitlines() if line.startswith("| delay 10 ms | sync")),
              key=len)  # the table with every column, not the short one above it
    assert "| - | - |" in row and "| 0 MB" not in row  # peak threads and RSS: not measured


def test_results_without_a_baseline_ratio_nothing():
    results = blocking_results()
    results["runs"] = [run for run in results["runs"] if run["series"] != "sync"]
    assert [row["ratio"] for row in summarize(results)] == [None, None]


def test_a_note_when_connections_exceed_the_listen_queue():
    assert "somaxconn 1024" in somaxconn_note(1500, 1024)
    assert somaxconn_note(500, 1024) is None
    assert somaxconn_note(1500, None) is None  # not known on this system: nothing to say


def test_bench_help_imports_nothing_from_the_virtual_environment():
    shown = subprocess.run([sys.executable, "-X", "importtime", "-m", "bench", "--help"],
                           cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and "--scenario" in shown.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in shown.stderr.splitlines()}
    assert not imported & {"psutil", "psycopg2", "redis", "aiohttp", "asyncpg"}
