"""./run_bench.sh end to end (--quick), its --help, and docker-compose.yml against the servers."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from types import SimpleNamespace

import psutil
import pytest
from browser import assert_opens_cleanly, open_pages
from support import ROOT, wait_until

from bench.each_run import Placed
from bench.report.flamegraphs import START_UP
from bench.report.reading import SMOKE_TEST
from bench.results import problems
from bench.sampling import cpu_times, with_children


def run_bench(tmp_path, *args):
    result = subprocess.run([str(ROOT / "run_bench.sh"), "--quick", "--results", str(tmp_path),
                             *args], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    return result, json.loads((tmp_path / "latest" / "results.json").read_text())


@pytest.fixture(scope="module")
def quick_fair_run(tmp_path_factory, urls):
    """./run_bench.sh --quick: (what it printed, results.json, the run's folder)."""
    folder = tmp_path_factory.mktemp("bench")
    return (*run_bench(folder), folder / "latest")


@pytest.mark.slow  # runs the benchmark
def test_quick_fair_run_writes_every_run_with_passing_audits(quick_fair_run):
    result, results, latest = quick_fair_run
    runs = results["runs"]
    assert [(r["placement"], r["series"], r["method"], r["connections"]) for r in runs] == [
        ("shared", "sync", "GET", 500), ("shared", "async", "GET", 500),
        ("shared", "sync", "POST", 500), ("shared", "async", "POST", 500),
        ("isolated", "sync", "GET", 500), ("isolated", "async", "GET", 500),
        ("isolated", "sync", "POST", 500), ("isolated", "async", "POST", 500)]
    assert all(r["requests"] > 0 and r["audit"]["result"] == "ok" for r in runs)
    assert all(r["socket_errors"]["connect"] == 0 for r in runs)
    assert results["machine"]["cores"] >= 1 and results["machine"]["python"]
    for name in ["results.json", "summary.md", "chart.svg", "report.html"] + [r["raw"]
                                                                              for r in runs]:
        assert (latest / name).exists()
    assert problems(results) == []  # bench/results.py's contract
    for r in runs:  # all answered, and when; or, past --quick's 2 s, how many had been
        opening = r["opening"]
        assert (opening["answered"] == r["connections"]) == (opening["all_answered_s"] is not None)
    summary = (latest / "summary.md").read_text()
    assert "| Connections | Server | Req/s | Ratio |" in summary
    assert "The article's figures" in summary
    assert re.search(r"\[4/4\] (sync and async|async and sync) at POST /items c=500, isolated",
                     result.stderr)
    assert result.stdout.rstrip().endswith("report.html")  # where the whole report is


@pytest.mark.slow  # runs the benchmark
def test_interleaved_slices_hold_every_request_their_server_served_and_no_other(
        quick_fair_run):
    """Each slice ends when its server has nothing in service, and the other server's wrk is
    paused meanwhile: so the requests the data counted in a server's slices (Redis, rows)
    are exactly those the server itself counted over the rounds (/stats). A slice that ended
    early would hand its last requests to the other server's slice."""
    _, results, _ = quick_fair_run
    for run in results["runs"]:
        assert run["slices"] and all(served > 0 for served, _ in run["slices"])
        assert sum(served for served, _ in run["slices"]) == run["served_in_window"], run["point"]


@pytest.mark.slow  # runs the benchmark
def test_a_quick_run_says_it_is_a_smoke_test_first_and_last(quick_fair_run):
    """--quick's first and last printed lines (the shell's, on stderr: its last comes after
    the summary on stdout), the summary's first, summary.md and report.html say what it is,
    and its reading gives no ratio."""
    result, _, folder = quick_fair_run
    line = f"--quick is a {SMOKE_TEST}"
    errors = result.stderr.splitlines()
    assert (errors[0], errors[-1]) == (f"==> {line}", f"==> {line}")
    assert result.stdout.splitlines()[0] == f"{line}."
    said = result.stdout.split("What it says:\n")[1].split("\n\n")[0]
    assert said.startswith(f"- {line}.") and not re.search(r"\d\.\d\dx", said)
    for name in ("summary.md", "report.html"):
        assert f"{line}." in (folder / name).read_text()
    printed = (result.stdout + result.stderr).splitlines()  # progress, notes and summary
    assert len(printed) > 30 and all("==> " in line or line.startswith(" ") or not line
                                     for line in result.stderr.splitlines())
    wide = [line for line in printed if len(line) > 100]
    assert not wide, "printed lines wider than an ordinary terminal:\n" + "\n".join(wide)


@pytest.mark.slow  # runs the benchmark
def test_results_record_the_sync_servers_threads(tmp_path, urls):
    result, results = run_bench(tmp_path, "--only", "sync", "--connections", "50",
                                "--placement", "shared")
    runs = results["runs"]
    assert {r["series"] for r in runs} == {"sync"}
    assert "Scenario fair: sync alone (--only sync)" in result.stdout  # no "Ratio: to sync"
    assert "Ratio" not in result.stdout.split("What it says:")[0]
    assert all(r["peak_threads"] > 1 for r in runs)  # a thread per connection in service


@pytest.fixture(scope="module")
def article_few_connections(tmp_path_factory, urls):
    """--scenario article at 5 connections with 8 wrk threads: more threads than connections."""
    return run_bench(tmp_path_factory.mktemp("bench"), "--scenario", "article",
                     "--connections", "5", "--threads", "8")


@pytest.mark.slow  # runs the benchmark
def test_wrk_threads_are_capped_at_the_connections(article_few_connections):
    _, results = article_few_connections
    assert results["settings"]["threads"] == 8
    assert [(r["connections"], r["threads"]) for r in results["runs"]] == [(5, 5)] * 5
    assert all(r["requests"] > 0 and r["audit"]["result"] == "ok" for r in results["runs"])


@pytest.mark.slow  # runs the benchmark
def test_each_run_records_the_knobs_its_server_reported(article_few_connections,
                                                         start_server):
    _, results = article_few_connections
    for run in results["runs"]:
        reported = start_server(run["kind"], *run["flags"]).stats()["knobs"]
        assert run["knobs"] == reported
    assert results["runs"][0]["knobs"]["workers"] == 2  # the article's sync configuration


@pytest.mark.slow  # runs the benchmark
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="what psutil reads on Linux")
def test_server_figures_are_measured(article_few_connections):
    _, results = article_few_connections
    for run in results["runs"]:
        assert run["peak_threads"] >= 1 and run["peak_rss_mb"] > 0
        assert run["server_cpu_user_s"] > 0 and run["server_cpu_system_s"] >= 0
        assert run["server_cpu_s"] == pytest.approx(
            run["server_cpu_user_s"] + run["server_cpu_system_s"], abs=0.02)


@pytest.mark.slow  # runs the benchmark
def test_the_baseline_row_has_ratio_one(article_few_connections):
    result, results = article_few_connections
    assert results["baseline"] == "sync --workers 2 --connect-per-request"
    baseline_row = next(line for line in result.stdout.splitlines()
                        if line.startswith(f"  {results['baseline']}  "))
    assert " 1.00x " in baseline_row


@pytest.mark.parametrize("script, args", [
    ("run_bench.sh", ["--help"]), ("run_bench.sh", ["--scenario", "c10k", "--help"]),
    ("run_tests.sh", ["-h"]), ("run_tests.sh", ["-k", "parity", "--help"])])
def test_scripts_explain_themselves_without_setting_anything_up(tmp_path, script, args):
    """Help wherever -h or --help stands, on a PATH with no apt-get, wrk or Postgres and no
    services given: a script that set anything up first would stop, saying what is missing."""
    (tmp_path / "bin").mkdir()
    for program in ("bash", "dirname", "cat"):  # what the scripts need to show their help
        (tmp_path / "bin" / program).symlink_to(shutil.which(program))
    env = {"PATH": str(tmp_path / "bin"), "PYTHON": sys.executable, "HOME": str(tmp_path)}
    shown = subprocess.run([str(ROOT / script), *args], env=env, capture_output=True,
                           text=True, timeout=60)
    assert (shown.returncode, shown.stderr) == (0, ""), shown.stderr
    assert "DATABASE_URL" in shown.stdout and "REDIS_URL" in shown.stdout


def started_by(script):
    """{pid: command line} of every process `script` started, as the OS lists them, once one
    is wrk: the benchmark is running then, its server up (in a session of its own, a child)."""
    try:
        processes = psutil.Process(script.pid).children(recursive=True)
        if any(process.name() == "wrk" and "-v" not in process.cmdline()  # not its version
               for process in processes):
            return {process.pid: " ".join(process.cmdline()) for process in processes}
    except psutil.NoSuchProcess:  # one ended while we looked: look again
        pass
    return {}


def gone(pid):
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.slow  # runs the benchmark
def test_sigterm_stops_a_benchmark_at_once_with_everything_it_started(tmp_path, urls):
    """A 10-minute run, SIGTERM-ed once wrk runs: the script ends well before it could have,
    with a shell's code for SIGTERM, and leaves none of the processes it started."""
    script = subprocess.Popen([str(ROOT / "run_bench.sh"), "--only", "sync", "--connections",
                               "20", "--duration", "600", "--results", str(tmp_path)],
                              env={**os.environ, **urls}, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        started = wait_until(lambda: started_by(script), 120)
        script.terminate()  # kill PID: the script alone, as a CI runner or `kill` sends it
        shown = script.communicate(timeout=60)[0]  # a foreground benchmark would hold it 600 s
    finally:
        if script.poll() is None:
            os.killpg(script.pid, signal.SIGKILL)
    assert started, "wrk never ran:\n" + shown
    assert script.returncode == 143, shown
    assert {pid: line for pid, line in started.items() if not gone(pid)} == {}, shown


class Landed(SystemExit):
    """The SIGTERM the benchmark turns into SystemExit, landing where a test puts it."""


@pytest.mark.parametrize("where", ["connection", "start_wrk", "opening"])
def test_a_sigterm_while_a_side_starts_leaves_no_wrk_running(monkeypatch, where):
    """interleave.Side stops whatever it has started, whichever step a SIGTERM interrupts: a
    wrk already running is killed, and kill() on a half-built Side raises nothing else."""
    from bench import interleave
    started = []

    def start_wrk(*args):
        if where == "start_wrk":
            raise Landed
        started.append(subprocess.Popen(["sleep", "600"]))
        return started[-1]

    def land(*args, **kwargs):
        raise Landed
    monkeypatch.setattr(interleave, "start_wrk", start_wrk)
    if where == "connection":
        monkeypatch.setattr(interleave.http.client, "HTTPConnection", land)
    monkeypatch.setattr(interleave, "watch_opening", land)
    case = SimpleNamespace(connections=1, knobs={}, series="sync", timeout_s=1)
    server = SimpleNamespace(port=1, stats=lambda: {"knobs": {}})
    try:
        with pytest.raises(Landed):
            interleave.Side(case, server, SimpleNamespace(threads=1, opening_limit_s=1), None)
        assert [process.poll() for process in started] == [-signal.SIGKILL] * len(started)
    finally:
        for process in started:
            process.kill()
            process.wait()


def test_a_sigterm_before_wrk_starts_leaves_no_idle_clients_running(monkeypatch):
    """measure.measure stops the idle clients (idle.Held) it has started when a SIGTERM lands
    before wrk has: here, while the data is reset."""
    from bench import measure
    started = []

    class Held:
        def __init__(self, *args):
            self.process = subprocess.Popen(["sleep", "600"])
            started.append(self.process)

    def land(*args, **kwargs):
        raise Landed
    monkeypatch.setattr(measure, "Held", Held)
    monkeypatch.setattr(measure, "place_load", lambda where: Placed({"load": None}, None))
    monkeypatch.setattr(measure, "reset_data", land)
    case = SimpleNamespace(connections=1, idle=1, placement="shared")
    timing = SimpleNamespace(threads=1, warmup_s=1, opening_limit_s=1, duration_s=1)
    try:
        with pytest.raises(Landed):
            measure.measure(case, SimpleNamespace(port=1), timing, None, "01")
        assert [process.wait(timeout=10) for process in started] == [-signal.SIGKILL]
    finally:
        for process in started:
            process.kill()
            process.wait()


def test_bench_help_lists_every_flag():
    shown = subprocess.run([str(ROOT / "run_bench.sh"), "--help"], capture_output=True,
                           text=True, timeout=60).stdout
    for flag in ("--duration", "--connections", "--repeat", "--only", "--threads", "--quick",
                 "--scenario"):
        assert flag in shown




@pytest.mark.slow  # runs the benchmark
def test_a_profiled_run_writes_a_profile_per_server_run(tmp_path, urls):
    """--profile: one py-spy profile and flame graph per run, its groups adding up to 100%."""
    result, results = run_bench(tmp_path, "--profile", "--connections", "20", "--placement",
                                "shared")
    assert results["settings"]["profiled"] is True
    assert "PROFILED" in result.stdout
    for run in results["runs"]:
        profile = run["profile"]
        raw = tmp_path / "latest" / profile["raw"]
        assert raw.stat().st_size > 0
        assert profile["samples"] > 0
        assert sum(profile["shares"].values()) == pytest.approx(100, abs=0.5)
        graph = (tmp_path / "latest" / profile["flamegraph"]).read_text()
        handler = "index" if run["method"] == "GET" else "create_item"
        drawn = re.search(rf'<g class="frame" [^>]* data-name="{handler}"[^>]*>.*?'
                          r'<rect x="[\d.]+" y="([\d.]+)"', graph)
        # py-spy reads a running event loop's stacks without stopping it (--nonblocking),
        # and often gets only their innermost frames: in a 1 s run the event loop's handler
        # was in 4 to 7 samples (0 is chance), the threads' in 21 to 38. Drawn wherever
        # sampled, in view; sampled at least in the threaded server.
        sampled = any(f"{handler} (" in line and START_UP not in line
                      for line in raw.read_text().splitlines())
        assert sampled or run["series"] != "sync", f"no sample of {handler} in {raw.name}"
        assert not sampled or drawn and float(drawn[1]) < 700, f"{handler} is not in view"
        assert START_UP not in graph  # the imports at start-up are left out
    assert len({run["profile"]["raw"] for run in results["runs"]}) == len(results["runs"])
    report = tmp_path / "latest" / "report.html"
    assert_opens_cleanly(report, *open_pages([report])[0], charts=3)  # skips without chromium



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
        times = cpu_times(with_children(psutil.Process(family.pid)))
        assert times.total >= 0.55  # two children of 0.3 s, in 10 ms ticks
    finally:
        os.killpg(family.pid, signal.SIGKILL)
        family.wait()
