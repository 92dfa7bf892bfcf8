"""The servers under comparison, started and stopped one way for the benchmark and the tests.
Standard library only: ./run_bench.sh --help and the test fixtures import it before .venv.
"""

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from contextlib import suppress
from pathlib import Path

from bench.limits import ThreadCap
from bench.placement import cpus_for, pinned_to
from bench.profiles import shares
from bench.pyspy import recording

ROOT = Path(__file__).resolve().parent.parent
KINDS = ("sync", "async")  # {kind}_server.py: the one list of servers compared
START_TIMEOUT_S = 30
STOP_TIMEOUT_S = 15


def wait_until(condition, seconds=10, every_s=0.05):
    """Poll condition() until it returns something true, for at most `seconds`; return its
    last value. The project's one polling loop: the benchmark's and the tests' (support.py)."""
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(every_s)


class ServerError(RuntimeError):
    """A server exited or did not answer in time; the message ends with its log's tail."""


class Server:
    """{kind}_server.py --port <free port> [flags] in a subprocess, its output in a log file,
    in a session of its own: a Ctrl-C typed at the terminal reaches whoever started it, which
    then stops it in order."""

    def __init__(self, kind, flags=(), env=None, log_dir=".", cpus=None, profile_to=None,
                 port=None, thread_cap=0, under=()):
        """cpus: the CPUs it may run on (placement.cpus_for), None for any. profile_to: a file
        for py-spy's samples of the server's whole life. thread_cap: the most threads the OS
        lets it run (limits.ThreadCap), 0 for no cap. under: a command that runs the server
        as its child (perf stat ... --, bench/syscalls.py); py-spy's when profiling."""
        from scripts.databases import free_port  # scripts/: on the path of whatever starts servers
        self.kind, self.flags, self.cpus = kind, tuple(flags), cpus
        self.profile_to = profile_to
        self.under = list(under) or (recording([], profile_to) if profile_to else [])
        self.pid = None  # the server's own: under py-spy or perf, their child
        self.started_at = None  # time.monotonic() when the process (or what it runs under) began
        self.port = port or free_port()
        self.env = {**os.environ, **(env or {})}
        self.log_path = Path(log_dir) / f"server-{kind}-{self.port}.log"
        self.process = None
        self.thread_cap = ThreadCap(thread_cap) if thread_cap else None

    @property
    def command(self):
        return [*self.under, sys.executable, str(ROOT / f"{self.kind}_server.py"), "--port",
                str(self.port), *self.flags]

    def start(self):
        """Start it and wait for its "serving on" line, printed once it listens: no request
        is sent, so /stats counts none. ServerError if it exits or does not say so."""
        with open(self.log_path, "wb") as log:  # the child keeps its own copy of the file
            self.process = subprocess.Popen(self.command, cwd=ROOT, env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True,
                                            preexec_fn=self.preexec if self.cpus or
                                            self.thread_cap else None)
        self.started_at = time.monotonic()
        if self.thread_cap:
            self.thread_cap.hold(self.process.pid)

        def said_or_exited():
            return "serving on" in self.log() or self.process.poll() is not None
        wait_until(said_or_exited, START_TIMEOUT_S)
        if "serving on" not in self.log():
            what = (f"did not start in {START_TIMEOUT_S} s" if self.process.poll() is None
                    else f"exited with status {self.process.returncode}")
            self.stop()  # and its thread cap released, whichever it was
            tail = "\n".join(self.log().splitlines()[-20:])
            raise ServerError(f"{' '.join(self.command)} {what}; the end of {self.log_path}:\n"
                              + tail)
        self.pid = self.stats()["pid"] if self.under else self.process.pid  # not py-spy's
        return self

    def preexec(self):
        """In the child, before the server runs: its CPUs, and an rlimit on its threads."""
        if self.cpus:
            pinned_to(self.cpus)()
        if self.thread_cap:
            self.thread_cap.preexec()

    def get(self, path, timeout=5):
        """(status, body) of one GET on a new connection."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def stats(self):
        """GET /stats as a dict (see stats.Stats); raises OSError if the server is gone."""
        return json.loads(self.get("/stats")[1])

    def wait_idle(self, seconds=60):
        """Wait until no request is in service (wrk's last may still be); False if not soon."""
        def idle():
            try:
                return self.stats()["in_service"] == 0
            except (OSError, ValueError, http.client.HTTPException):
                return False
        return wait_until(idle, seconds, every_s=0.2)

    def stop(self, stop_signal=signal.SIGTERM):
        """SIGTERM as a process manager sends it (or SIGINT, Ctrl-C); if that has not stopped
        it in 15 s, a kill of its whole process group, so that no process it forked holds the
        port or its pools once it is gone. Returns the exit status; twice is harmless."""
        if self.process is None:  # never started
            return None
        if self.process.poll() is None:
            os.kill(self.pid or self.process.pid, stop_signal)  # under py-spy, py-spy writes
        try:
            return self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):  # all of it ended meanwhile
                os.killpg(self.process.pid, signal.SIGKILL)  # its session's group: start()
            return self.process.wait()
        finally:
            if self.thread_cap:
                self.thread_cap.release()

    def log(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class Servers:
    """One running process per server configuration, started on first use; when profiling,
    one per run, under py-spy, so that each run's profile is its own (profile_of stops it)."""

    def __init__(self, out_dir, profiling=False):
        self.out_dir, self.profiling = out_dir, profiling
        self.running = {}

    def profile_of(self, server):
        """Stop the server, so py-spy writes its samples; their summary (the report draws them)."""
        self.running = {key: s for key, s in self.running.items() if s is not server}
        server.stop()
        return {"raw": server.profile_to.name,
                "flamegraph": server.profile_to.with_suffix(".svg").name,
                **shares(server.profile_to)}

    def get(self, case, keep, step):
        def key(c):
            return (c.kind, c.flags, c.placement, c.thread_cap)
        for other in set(self.running) - {key(c) for c in (case, *keep)}:
            self.running.pop(other).stop()  # what no later run needs: a quiet machine
        if key(case) not in self.running:
            cpus = cpus_for(case.placement)
            profile = self.out_dir / f"{step:02d}-{case.kind}-profile.txt"
            self.running[key(case)] = Server(case.kind, case.flags, log_dir=self.out_dir,
                                             cpus=cpus and cpus["server"],
                                             profile_to=profile if self.profiling else None,
                                             thread_cap=case.thread_cap).start()
        return self.running[key(case)]

    def stop_all(self):
        while self.running:
            self.running.popitem()[1].stop()
