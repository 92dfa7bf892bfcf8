"""./run_bench.sh end to end (--quick), its --help, and docker-compose.yml against the servers."""

import json
import os
import re
import signal
import subprocess
import sys

import psutil
import pytest
from support import ROOT

from sampling import tree_cpu_times



def run_bench(tmp_path, *args):
    result = subprocess.run([str(ROOT / "run_bench.sh"), "--quick", "--results", str(tmp_path),
                             *args], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    return result, json.loads((tmp_path / "latest" / "results.json").read_text())


def test_quick_fair_run_writes_every_run_with_passing_audits(tmp_path, urls):
    result, results = run_bench(tmp_path)
    runs = results["runs"]
    assert [(r["placement"], r["series"], r["method"], r["connections"]) for r in runs] == [
        ("shared", "sync", "GET", 500), ("shared", "async", "GET", 500),
        ("shared", "sync", "POST", 500), ("shared", "async", "POST", 500),
        ("shared", "sync", "GET", 1500), ("shared", "async", "GET", 1500),
        ("isolated", "sync", "GET", 500), ("isolated", "async", "GET", 500),
        ("isolated", "sync", "POST", 500), ("isolated", "async", "POST", 500)]
    assert all(r["requests"] > 0 and r["audit"]["result"] == "ok" for r in runs)
    assert all(r["socket_errors"]["connect"] == 0 for r in runs)
    assert results["machine"]["cores"] >= 1 and results["machine"]["python"]
    for name in ["results.json", "summary.md", "chart.svg"] + [r["raw"] for r in runs]:
        assert (tmp_path / "latest" / name).exists()
    assert "| Connections | Server | Requests | Req/s |" in result.stdout
    assert "The article's figures" in result.stdout
    assert re.search(r"\[10/10\] async +POST /items c=500, isolated", result.stderr)
    assert "Placement: shared lets the OS" in result.stdout  # the plain reading comes first


def test_results_record_the_sync_servers_threads(tmp_path, urls):
    _, results = run_bench(tmp_path, "--only", "sync", "--connections", "50",
                           "--placement", "shared")
    runs = results["runs"]
    assert {r["series"] for r in runs} == {"sync"}
    assert all(r["peak_threads"] > 1 for r in runs)  # a thread per connection in service


@pytest.fixture(scope="module")
def article_few_connections(tmp_path_factory, urls):
    """--scenario article at 5 connections with 8 wrk threads: more threads than connections."""
    return run_bench(tmp_path_factory.mktemp("bench"), "--scenario", "article",
                     "--connections", "5", "--threads", "8")


def test_wrk_threads_are_capped_at_the_connections(article_few_connections):
    _, results = article_few_connections
    assert results["settings"]["threads"] == 8
    assert [(r["connections"], r["threads"]) for r in results["runs"]] == [(5, 5)] * 5
    assert all(r["requests"] > 0 and r["audit"]["result"] == "ok" for r in results["runs"])


def test_each_run_records_the_knobs_its_server_reported(article_few_connections,
                                                         start_server):
    _, results = article_few_connections
    for run in results["runs"]:
        reported = start_server(run["kind"], *run["flags"]).stats()["knobs"]
        assert run["knobs"] == reported
    assert results["runs"][0]["knobs"]["workers"] == 2  # the article's sync configuration


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="what psutil reads on Linux")
def test_server_figures_are_measured(article_few_connections):
    _, results = article_few_connections
    for run in results["runs"]:
        assert run["peak_threads"] >= 1 and run["peak_rss_mb"] > 0
        assert run["server_cpu_user_s"] > 0 and run["server_cpu_system_s"] >= 0
        assert run["server_cpu_s"] == pytest.approx(
            run["server_cpu_user_s"] + run["server_cpu_system_s"], abs=0.02)


def test_the_baseline_row_has_ratio_one(article_few_connections):
    result, results = article_few_connections
    assert results["baseline"] == "sync --workers 2 --connect-per-request"
    baseline_row = next(line for line in result.stdout.splitlines()
                        if line.startswith(f"| GET / c=5 | {results['baseline']} |"))
    assert "| 1.00x |" in baseline_row


@pytest.mark.parametrize("script", ["run_bench.sh", "run_tests.sh"])
def test_scripts_explain_themselves_without_setting_anything_up(script):
    shown = subprocess.run([str(ROOT / script), "--help"], capture_output=True, text=True,
                           timeout=60)
    assert shown.returncode == 0
    assert "DATABASE_URL" in shown.stdout and "REDIS_URL" in shown.stdout


def test_bench_help_lists_every_flag():
    shown = subprocess.run([str(ROOT / "run_bench.sh"), "--help"], capture_output=True,
                           text=True, timeout=60).stdout
    for flag in ("--duration", "--connections", "--repeat", "--only", "--threads", "--quick",
                 "--scenario"):
        assert flag in shown




def test_a_profiled_run_writes_a_profile_per_server_run(tmp_path, urls):
    """--profile: one py-spy profile and flame graph per run, its groups adding up to 100%."""
    result, results = run_bench(tmp_path, "--profile", "--connections", "20", "--placement",
                                "shared")
    assert results["settings"]["profiled"] is True
    assert "PROFILED" in result.stdout
    for run in results["runs"]:
        profile = run["profile"]
        assert (tmp_path / "latest" / profile["raw"]).stat().st_size > 0
        assert "<rect" in (tmp_path / "latest" / profile["flamegraph"]).read_text()
        assert profile["samples"] > 0
        assert sum(profile["shares"].values()) == pytest.approx(100, abs=0.5)
    assert len({run["profile"]["raw"] for run in results["runs"]}) == len(results["runs"])


BURN = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass\n"
FAMILY = f"""import subprocess, sys, time
burn = {BURN!r}
subprocess.run([sys.executable, "-c", burn])  # exits, and is reaped
alive = subprocess.Popen([sys.executable, "-c", burn + "time.sleep(600)"])
while alive.pid and sum(map(float, open(f"/proc/{{alive.pid}}/stat").read().split()[13:15])) < 28:
    time.sleep(0.05)  # until it has burnt its 0.3 s (in clock ticks)
print("ready", flush=True)
time.sleep(600)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_servers_cpu_counts_the_processes_below_it_gone_or_running():
    """A process pool's workers do the server's work: the sampler counts them as the server's,
    a worker that has exited too (CPU seconds, counted by the OS)."""
    family = subprocess.Popen([sys.executable, "-c", FAMILY], stdout=subprocess.PIPE, text=True,
                              start_new_session=True)
    try:
        assert family.stdout.readline().strip() == "ready"
        times = tree_cpu_times(psutil.Process(family.pid))
        assert times.user + times.system >= 0.55  # two children of 0.3 s, in 10 ms ticks
    finally:
        os.killpg(family.pid, signal.SIGKILL)
        family.wait()
