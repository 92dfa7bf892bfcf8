"""Drive wrk against both servers on equal terms, audit every run, write and print the results.

Started by ./run_bench.sh, which first sets up .venv, wrk, Postgres and Redis. Runs as:
    python bench/run.py [--scenario fair] [--duration 10] [--repeat 1] ...
"""

import argparse
import http.client
import json
import os
import platform
import resource
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import asdict
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

from report import render_summary, write_chart  # noqa: E402
from scenarios import SCENARIOS, X_AXIS  # noqa: E402
from wrkparse import WrkOutputError, parse_wrk  # noqa: E402

DEFAULT_KNOBS = {"workers": 0, "connect_per_request": False, "io_delay_ms": 0, "cpu_ms": 0,
                 "blocking": False}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="./run_bench.sh", description="Benchmark sync_server.py against async_server.py "
        "with wrk, on the same data, pools and machine, and print the comparison.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        epilog="Scenarios: fair (the article's runs on equal terms), article (sync with 2 "
        "workers and a connection per request, as the article's Django), sweep (10 to 1500 "
        "connections), io-delay (a slow upstream call per view), cpu (CPU work per view), "
        "blocking (time.sleep inside the event loop). Results go to results/<UTC time>/ and "
        "results/latest. Set DATABASE_URL and REDIS_URL to use your own Postgres and Redis.")
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), default="fair",
                        help="what to run; see below")
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured run")
    parser.add_argument("--connections", default="500,1500",
                        help="comma-separated connection counts (fair and article)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="run everything N times; report the median and the min-max")
    parser.add_argument("--only", choices=["sync", "async"], help="benchmark one server only")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2,
                        help="wrk threads; the default is this machine's core count")
    parser.add_argument("--warmup", type=int, default=2,
                        help="seconds of unmeasured load before each run")
    parser.add_argument("--quick", action="store_true",
                        help="2 s runs, 1 s warm-up, no repeats: a smoke test, not a measurement")
    parser.add_argument("--results", default=str(ROOT / "results"),
                        help="folder for results/<UTC time>/")
    args = parser.parse_args(argv)
    try:
        args.connections = [int(c) for c in args.connections.split(",")]
    except ValueError:
        parser.error("--connections takes numbers separated by commas, e.g. 500,1500")
    if args.quick:
        args.duration, args.warmup, args.repeat = 2, 1, 1
    if min(args.connections) < args.threads:
        parser.error("wrk needs at least as many connections as threads")
    return args


def main(argv=None):
    args = parse_args(argv)
    cases = [case for case in SCENARIOS[args.scenario](args.connections)
             if not args.only or case.kind == args.only]
    out_dir = new_results_dir(Path(args.results))
    fd_note = raise_fd_limit(max(case.connections for case in cases))
    machine = describe_machine()
    say(f"scenario {args.scenario}: {len(cases) * args.repeat} runs of {args.duration} s, "
        f"wrk with {args.threads} threads; results in {out_dir}")
    say(f"{machine['cores']} cores ({machine['cpu']}), shared by wrk, both servers, Postgres "
        "and Redis: compare servers within this run, not across runs")
    if fd_note:
        say(fd_note)
    runs, servers = [], Servers(out_dir)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        plan = ordered(cases, args.repeat)
        for step, (repeat, case) in enumerate(plan, 1):
            server = servers.get(case, keep=[c for _, c in plan[step:]])
            say(f"[{step}/{len(plan)}] {case.series:<8} {case.point}  {args.duration}s ",
                end="")
            run = measure(case, server, args, out_dir, f"{step:02d}")
            run["repeat"] = repeat
            runs.append(run)
            print(f" {run['rps']:.0f} req/s, in service ≈ "
                  f"{run.get('littles_law_in_service', '-')} (peak {run['peak_in_service']}), "
                  f"audit {run['audit']['result']}" + ("" if run["valid"] else ", INVALID"),
                  file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        say("interrupted: stopping the servers")
        return 130
    finally:
        servers.stop_all()
    results = {"scenario": args.scenario, "x_axis": X_AXIS[args.scenario], "machine": machine,
               "settings": {"duration_s": args.duration, "warmup_s": args.warmup,
                            "repeat": args.repeat, "threads": args.threads,
                            "connections": args.connections, "only": args.only,
                            "quick": args.quick, "fd_limit": fd_note or "enough"},
               "runs": runs}
    (out_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    summary = render_summary(results)
    (out_dir / "summary.md").write_text(summary)
    write_chart(results, out_dir / "chart.svg")
    print(summary)
    print(f"Raw wrk output, results.json, summary.md and chart.svg: {out_dir}")
    failed = [run for run in runs if run["audit"]["result"] == "FAILED"]
    if failed:
        say(f"{len(failed)} run(s) failed the audit: the server's counts do not match wrk's")
        return 1
    return 0


def ordered(cases, repeats):
    """Every case, `repeats` times; within a point, the servers swap order on each repeat."""
    points = list(dict.fromkeys(case.point for case in cases))
    plan = []
    for repeat in range(repeats):
        for point in points:
            group = [case for case in cases if case.point == point]
            plan += [(repeat, case) for case in (group if repeat % 2 == 0 else group[::-1])]
    return plan


def measure(case, server, args, out_dir, step):
    """Warm up, reset the data, run wrk with the server sampled, then audit the counts."""
    from common import DEFAULT_DB_POOL_SIZE  # imported here: --help must work before .venv
    from reset_db import count_rows, reset
    url = f"http://127.0.0.1:{server.port}/"
    reset_data = lambda: reset(os.environ["DATABASE_URL"], os.environ["REDIS_URL"])  # noqa: E731
    reset_data()
    run_wrk(case, url, args.threads, args.warmup)  # unmeasured
    server.wait_idle()
    reset_data()
    rows_at_start = count_rows(os.environ["DATABASE_URL"])
    sampler = Sampler(server)
    output, wrk_cpu_s = run_wrk(case, url, args.threads, args.duration, progress=True)
    sampler.stop()
    drained = server.wait_idle()
    raw_name = f"{step}-{case.kind}-{case.method.lower()}-c{case.connections}.txt"
    (out_dir / raw_name).write_text(output)
    try:
        numbers = parse_wrk(output)
    except WrkOutputError as error:
        raise SystemExit(f"bench: {error}; wrk printed:\n{output}") from None
    run = {**asdict(case), "flags": list(case.flags), "knobs": {
           "db_pool_size": DEFAULT_DB_POOL_SIZE, **DEFAULT_KNOBS, **case.knobs},
           "path": "/items" if case.method == "POST" else "/",
           "duration_s": args.duration, "threads": args.threads, **numbers,
           **sampler.peaks(), "wrk_cpu_s": wrk_cpu_s, "raw": raw_name}
    run["audit"] = audit(case, numbers, drained, rows_at_start)
    run["valid"] = numbers["socket_errors"]["connect"] == 0
    if numbers["latency_mean_ms"] is not None:  # Little's law: L = lambda x W
        in_service = numbers["rps"] * numbers["latency_mean_ms"] / 1000
        run["littles_law_in_service"] = round(in_service, 1)
    return run


def run_wrk(case, url, threads, seconds, progress=False):
    """wrk for `seconds`, bounded by a hard timeout; prints a dot every half second if asked.
    Returns its output and the CPU seconds it used: it shares the cores with the servers."""
    command = ["wrk", "-t", str(threads), "-c", str(case.connections), "-d", f"{seconds}s",
               "--timeout", f"{case.timeout_s}s", "-s", str(ROOT / "bench" / "wrk.lua"), url,
               "--", case.method.lower()]
    wrk = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + seconds + 30
    while True:
        pid, status, usage = os.wait4(wrk.pid, os.WNOHANG)
        if pid:
            wrk.returncode = os.waitstatus_to_exitcode(status)
            break
        if time.monotonic() > deadline:
            wrk.kill()
            raise SystemExit(f"bench: wrk did not finish: {' '.join(command)}")
        if progress:
            print(".", end="", file=sys.stderr, flush=True)
        time.sleep(0.5 if progress else 0.1)
    cpu = round(usage.ru_utime + usage.ru_stime, 2)
    return f"$ {' '.join(command)}\n{wrk.stdout.read()}", cpu


def audit(case, numbers, drained, rows_at_start):
    """The server's own counts against wrk's: each successful GET added one to the Redis
    counter, each 201 one row. Requests still in flight when wrk stopped were served but not
    counted by wrk: at most one per connection."""
    from reset_db import count_rows, counter_value
    if case.method == "GET":
        counted = counter_value(os.environ["REDIS_URL"])
    else:
        counted = count_rows(os.environ["DATABASE_URL"]) - rows_at_start
    expected = numbers["ok"]
    verdict = {"counted": counted, "wrk_ok": expected, "allowed_extra": case.connections,
               "what": "Redis counter" if case.method == "GET" else "new rows"}
    if not drained:
        verdict["result"] = "UNSETTLED"
    elif expected <= counted <= expected + case.connections:
        verdict["result"] = "ok"
    else:
        verdict["result"] = "FAILED"
    return verdict


class Servers:
    """One running process per server configuration, started on first use."""

    def __init__(self, out_dir):
        self.out_dir = out_dir
        self.running = {}

    def get(self, case, keep):
        key = (case.kind, case.flags)
        for other in list(self.running):  # stop what no later run needs: a quiet machine
            if other != key and all((c.kind, c.flags) != other for c in keep):
                self.running.pop(other).stop()
        if key not in self.running:
            self.running[key] = ServerProcess(case.kind, case.flags, self.out_dir)
        return self.running[key]

    def stop_all(self):
        while self.running:
            self.running.popitem()[1].stop()


class ServerProcess:
    def __init__(self, kind, flags, out_dir):
        from services import free_port
        self.port = free_port()
        log_name = f"server-{kind}-{self.port}.log"
        self.log = open(out_dir / log_name, "wb")
        command = [sys.executable, str(ROOT / f"{kind}_server.py"), "--port", str(self.port),
                   *flags]
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT,
                                        start_new_session=True)  # Ctrl-C reaches us, not it
        deadline = time.monotonic() + 30
        while get_json(self.port, "/health") is None:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"bench: {' '.join(command)} did not start; see "
                                 f"{out_dir / log_name}")
            time.sleep(0.1)

    def stats(self):
        return get_json(self.port, "/stats")

    def wait_idle(self, seconds=60):
        """Wait until no request is in service: wrk's last requests are still being served."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            stats = self.stats()
            if stats and stats["in_service"] == 0:
                return True
            time.sleep(0.2)
        return False

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


class Sampler:
    """Reads the server's threads, memory and requests in service four times a second.

    /stats is read over one kept-alive connection opened before wrk starts: a new connection
    per sample would queue behind wrk's in the sync server's accept backlog.
    """

    def __init__(self, server):
        self.server = server
        self.samples = []
        self.done = threading.Event()
        self.conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        self.read_stats()  # also starts /stats's peak afresh
        self.cpu_before = cpu_seconds(server.process.pid)
        self.thread = threading.Thread(target=self.sample, daemon=True)
        self.thread.start()

    def read_stats(self):
        try:
            self.conn.request("GET", "/stats")
            return json.loads(self.conn.getresponse().read())
        except (OSError, ValueError, http.client.HTTPException):
            self.conn.close()  # reconnects on the next request
            return None

    def sample(self):
        while not self.done.wait(0.25):
            self.samples.append((proc_status(self.server.process.pid), self.read_stats()))

    def stop(self):
        self.done.set()
        self.thread.join()
        self.conn.close()
        self.cpu_used = cpu_seconds(self.server.process.pid) - self.cpu_before

    def peaks(self):
        status = [s for s, _ in self.samples if s]
        stats = [s for _, s in self.samples if s]
        return {
            "peak_threads": max((s["Threads"] for s in status), default=None),
            "peak_rss_mb": max((round(s["VmRSS"] / 1024, 1) for s in status), default=None),
            "peak_in_service": max((s["peak_in_service"] for s in stats), default=None),
            "mean_in_service": round(sum(s["in_service"] for s in stats) / len(stats), 1)
            if stats else None,
            "server_cpu_s": round(self.cpu_used, 2),
        }


def cpu_seconds(pid):
    """User plus system CPU time of a process so far, from /proc (0 where there is none)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_status(pid):
    """Threads and VmRSS (kB) from /proc; None where there is no /proc (macOS)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in lines if ":" in line)
    return {"Threads": int(fields["Threads"]), "VmRSS": int(fields["VmRSS"].split()[0])}


def get_json(port, path, timeout=2):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as reply:
            return json.loads(reply.read())
    except (OSError, ValueError):
        return None


def raise_fd_limit(connections):
    """wrk and a thread-per-connection server each need a descriptor per connection."""
    needed = connections + 256
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return None
    target = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < needed:
        return (f"open files limited to {target} (hard limit), {connections} connections need "
                f"about {needed}: expect connect errors, as in the article")
    return f"raised the open-files limit from {soft} to {target}"


def describe_machine():
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) \
        if Path("/proc/cpuinfo").exists() else platform.processor()
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    packages = {name: metadata.version(name) for name in
                ("aiohttp", "asyncpg", "redis", "psycopg2-binary", "jinja2")}
    somaxconn = Path("/proc/sys/net/core/somaxconn")
    return {"cores": os.cpu_count(), "cpu": cpu, "os": platform.platform(),
            "python": platform.python_version(), "packages": packages,
            "wrk": (wrk.stdout or wrk.stderr).split("Copyright")[0].strip(),
            "somaxconn": int(somaxconn.read_text()) if somaxconn.exists() else None}


def new_results_dir(results):
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out_dir = results / stamp
    out_dir.mkdir(parents=True, exist_ok=True)
    latest = results / "latest"
    if latest.is_symlink() or latest.exists():
        latest.unlink()
    latest.symlink_to(stamp)
    return out_dir


def say(message, end="\n"):
    print(f"==> {message}", end=end, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
