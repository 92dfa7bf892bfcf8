"""What a server process used during one wrk run (CPU, context switches, threads, memory,
connections, and what its /stats counted), and what Postgres and Redis used meanwhile, read
through psutil. A server's figures are its whole tree's: the processes it starts (a pool's
workers, --processes' copies) do its work where it was placed (bench/placement.py), and would
otherwise count as another program's (NOISY).
"""

import http.client
import json
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import psutil

UNMEASURABLE = (psutil.Error, NotImplementedError, AttributeError)


def cpu_times(processes, reaped=True):
    """User, system and total CPU seconds the `processes` have used so far: the one reader of
    CPU time. reaped: with their exited children's, which the OS adds to the parent's (a
    Postgres backend that served one request), so each process counts once; a process but
    the first that has exited meanwhile is skipped, its time now its parent's."""
    user = system = 0.0
    for n, process in enumerate(processes):
        try:
            times = process.cpu_times()
        except psutil.Error:
            if n == 0:
                raise
            continue
        user += times.user + reaped * times.children_user
        system += times.system + reaped * times.children_system
    return SimpleNamespace(user=user, system=system, total=user + system)


def with_children(process):
    """The process and every process below it, as found now."""
    try:
        return [process, *process.children(recursive=True)]
    except psutil.NoSuchProcess:
        return [process]


def tree_total(read, tree):
    """read(p) summed over a server's `tree`; None if not one could be read."""
    found = [value for value in (measured(lambda p=p: read(p)) for p in tree) if value is not None]
    return sum(found) if found else None


def established(process, port, but):
    """Connections to `port` that the server has accepted and still holds open, but the one
    from local port `but` (the sampler's own)."""
    return sum(1 for c in process.net_connections(kind="tcp")
               if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == port
               and c.raddr and c.raddr.port != but)


def busy_seconds():
    """CPU seconds all cores have spent running processes so far, as their own times count
    them: the kernel's interrupt work on loopback traffic, charged to no process, is left out."""
    times = psutil.cpu_times()
    return times.user + times.system + getattr(times, "nice", 0.0)


def measured(read):
    """read() or None where this platform or process does not tell: never a made-up 0."""
    try:
        return read()
    except UNMEASURABLE:
        return None


def ask(conn, method="GET", path="/stats"):
    """A request on a kept-alive connection to the server: its JSON answer, or None, the
    connection closed (http.client opens it again on the next request)."""
    try:
        conn.request(method, path)
        return json.loads(conn.getresponse().read())
    except (OSError, ValueError, http.client.HTTPException):
        conn.close()
        return None


class Sampler:
    """Reads the server's threads, memory and requests in service four times a second, and its
    CPU time and context switches before and after. /stats is read over one kept-alive
    connection opened before wrk starts: a new one per sample would queue behind wrk's in the
    sync server's accept backlog."""

    def __init__(self, server, find_services, light=False, conn=None):
        """find_services() -> {name: [psutil.Process]}, asked again at the end: a process born
        in the window counts whole, one that exited in its parent's children. light: no
        connection scans or per-thread readings in the window, for tens of thousands of both
        whose threads live as long as the run (bench/offered.py), where each reading costs
        the load's CPUs a second or more. conn: one opened earlier, for a server at its limit
        on connections."""
        self.process = psutil.Process(server.pid)
        # with --profile the server runs under py-spy, whose sampling is load, not "other"
        under = getattr(server, "process", None)
        self.profiler = (psutil.Process(under.pid) if under and under.pid != server.pid
                         else None)
        self.port, self.find_services, self.light = server.port, find_services, light
        self.samples = []
        self.done = threading.Event()
        self.own_conn = conn is None  # one it was given, its owner closes
        self.conn = conn or http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        # read before the window opens: a reading is costly at thousands of threads
        self.threads = ThreadCounts(server.pid) if readable(server.pid) else None
        ask(self.conn, "POST", "/stats/reset-peaks")  # the peaks count from here
        self.stats_before = self.last_stats = ask(self.conn)
        self.before = self.counters()
        self.opened_at = time.monotonic()
        self.thread = threading.Thread(target=self.sample, daemon=True)
        self.thread.start()

    def counters(self):
        services = self.find_services()
        self.cores = {name: measured(lambda p=processes: len(p[0].cpu_affinity()))
                      for name, processes in services.items() if processes}
        return {"cpu": measured(lambda: cpu_times(with_children(self.process))),
                "switches": measured(self.process.num_ctx_switches),
                "machine": measured(busy_seconds),
                # this benchmark's own CPU, not its clients' (wrk, openloop) that it has reaped
                "bench": measured(lambda: cpu_times([psutil.Process()], reaped=False).total),
                **({"profiler": measured(lambda: cpu_times([self.profiler]).total)}
                   if self.profiler else {}),
                **{name: cpu_times(processes).total if processes else None
                   for name, processes in services.items()}}

    def own_port(self):
        return self.conn.sock.getsockname()[1] if self.conn.sock else None

    def sample(self):
        """Four times a second; connections once a second and per-thread scheduler counts
        every two seconds, as reading them is costly when a server holds thousands."""
        tick = 0
        while not self.done.wait(0.25):
            held = (measured(lambda: established(self.process, self.port, self.own_port()))
                    if tick % 4 == 0 and not self.light else None)
            if self.threads and tick % 8 == 7 and not self.light:
                self.threads.read()
            tree = with_children(self.process)
            self.samples.append((tree_total(psutil.Process.num_threads, tree),
                                 tree_total(lambda p: p.memory_info().rss, tree),
                                 ask(self.conn), held))
            tick += 1

    def stop(self):
        """End the window: served and CPU are read together, as at the start."""
        self.done.set()
        self.thread.join()
        self.last_stats = ask(self.conn)
        self.after = self.counters()
        self.window_s = round(time.monotonic() - self.opened_at, 3)
        if self.threads:
            self.threads.read()
        if self.own_conn:
            self.conn.close()
        before, after = self.stats_before, self.last_stats
        self.served_in_window = after["served"] - before["served"] if before and after else None

    def figures(self):
        """The run's figures for the results (see measure.measure); None where unmeasured."""
        threads, rss, stats, accepted = ([sample[n] for sample in self.samples
                                          if sample[n] is not None] for n in range(4))
        cpu = self.used("cpu", ("user", "system"))
        total = None if cpu["user"] is None else round(cpu["user"] + cpu["system"], 2)
        scheduled = self.scheduled(threads)
        switches = (None if scheduled["voluntary"] is None
                    else scheduled["voluntary"] + scheduled["involuntary"])
        return {
            "peak_threads": max(threads, default=None),
            "peak_rss_mb": round(max(rss) / 2**20, 1) if rss else None,
            "peak_in_service": max((s["peak_in_service"] for s in stats), default=None),
            "mean_in_service": round(sum(s["in_service"] for s in stats) / len(stats), 1)
            if stats else None,
            "peak_connections": max(accepted, default=None),
            "served_in_window": self.served_in_window,
            "server_cpu_s": total, "server_cpu_ms_per_request": self.per_request(total, 1000, 3),
            "server_cpu_user_s": cpu["user"], "server_cpu_system_s": cpu["system"],
            # {postgres,redis,bench,profiler}_cpu_s and machine_busy_s
            **{"machine_busy_s" if name == "machine" else f"{name.lower()}_cpu_s":
               self.service_used(name) for name in self.after if name not in ("cpu", "switches")},
            "server_ctx_switches_voluntary": scheduled["voluntary"],
            "server_ctx_switches_involuntary": scheduled["involuntary"],
            "server_migrations": scheduled["migrations"],
            "server_switches_per_request": self.per_request(switches),
            "server_migrations_per_request": self.per_request(scheduled["migrations"]),
            "server_cpus_seen": scheduled["cpus"],
            **self.collections(),
        }

    def collections(self):
        """The server's garbage collections in the window, as stats.Stats timed them."""
        before, after = self.stats_before or {}, self.last_stats or {}
        if "gc_pause_ms" not in before or "gc_pause_ms" not in after:
            return dict.fromkeys(("gc_pause_ms", "longest_gc_pause_ms", "collections",
                                  "full_collections"))
        return {"gc_pause_ms": round(after["gc_pause_ms"] - before["gc_pause_ms"], 1),
                "longest_gc_pause_ms": round(after["longest_gc_pause_ms"], 1),
                "collections": after["collections"] - before["collections"],
                "full_collections": after["full_collections"] - before["full_collections"]}

    def scheduled(self, threads):
        """Switches, migrations and CPUs over every thread (ThreadCounts); else psutil's
        switches, which count the whole process on macOS but the main thread alone on Linux
        (psutil issue 1467): there, unmeasured once the server has more than one thread."""
        if self.threads:
            return self.threads.totals()
        switches = self.used("switches", ("voluntary", "involuntary"))
        if psutil.LINUX and max(threads, default=2) > 1:
            switches = dict.fromkeys(switches)
        return {**switches, "migrations": None, "cpus": None}

    def per_request(self, count, scale=1, digits=2):
        if count is None or not self.served_in_window:
            return None
        return round(scale * count / self.served_in_window, digits)

    def service_used(self, name):
        """CPU seconds a service (or the machine, or this benchmark) used in the window; None
        unread, or past what every core could give: a process counted twice (a Postgres
        backend reaped mid-window counts in its parent's children), not a figure to print."""
        before, after = self.before.get(name), self.after[name]
        if before is None or after is None:
            return None
        cores = self.cores.get(name) or psutil.cpu_count() or 1
        possible = self.window_s * cores * 1.02  # 2% for the readings' skew
        return round(after - before, 2) if after - before <= possible else None

    def used(self, counter, fields):
        """{field: after - before} for fields of a psutil counter; None where unmeasured."""
        before, after = self.before[counter], self.after[counter]
        if before is None or after is None:
            return dict.fromkeys(fields)
        return {field: round(getattr(after, field) - getattr(before, field), 2)
                for field in fields}


FIELDS = ("migrations", "voluntary", "involuntary")
SCHED_KEYS = {"se.nr_migrations": "migrations", "nr_voluntary_switches": "voluntary",
              "nr_involuntary_switches": "involuntary", "se.sum_exec_runtime": "runtime"}
PROCESSOR_FIELD = 39  # proc(5): the CPU number a task last ran on


def readable(pid):
    """True where this platform keeps per-thread scheduler counts for `pid`."""
    return Path(f"/proc/{pid}/task/{pid}/sched").exists()


def read_thread(task):
    """{migrations, voluntary, involuntary, runtime, cpu} of one thread, or None if it ended.
    Read as raw bytes: opening the files is most of the cost, at a thousand threads a read."""
    try:
        with open(f"{task}/sched", "rb") as sched_file, open(f"{task}/stat", "rb") as stat_file:
            sched, stat = sched_file.read().decode(), stat_file.read().decode()
    except OSError:
        return None
    lines = (line.partition(":") for line in sched.splitlines())
    counts = {SCHED_KEYS[key.strip()]: float(value) for key, _, value in lines
              if key.strip() in SCHED_KEYS}
    after_name = stat.rsplit(")", 1)[1].split()  # the name may hold spaces and parentheses
    counts["cpu"] = int(after_name[PROCESSOR_FIELD - 3])
    return counts


class ThreadCounts:
    """Context switches, CPU migrations and the CPUs they ran on, summed over every thread of
    a server from its creation on: read() as often as threads may end and at the window's end,
    then totals(). Linux keeps them in /proc/PID/task/TID/sched (kernels with
    CONFIG_SCHED_DEBUG, as Debian's, Ubuntu's and Fedora's) and stat; an ended thread takes
    its counts with it, so it counts up to its last reading (every two seconds, Sampler). A
    reading costs about 50 ms of CPU per thousand threads, on the load's CPUs."""

    def __init__(self, pid):
        self.pid = pid
        self.last = self.snapshot()
        self.sums = dict.fromkeys(FIELDS, 0.0)
        self.cpus_seen = set()

    def snapshot(self):
        try:
            tasks = list(Path(f"/proc/{self.pid}/task").iterdir())
        except OSError:
            return {}  # the process is gone
        threads = {int(task.name): read_thread(task) for task in tasks}
        return {tid: counts for tid, counts in threads.items() if counts is not None}

    def read(self):
        """Add what each thread did since the last reading: one born since counts from 0, and
        one that ended since has already counted up to the last reading that saw it."""
        now = self.snapshot()
        for tid, counts in now.items():
            before = self.last.get(tid)
            if before is None or counts["runtime"] < before["runtime"]:  # new, or id reused
                before = dict.fromkeys((*FIELDS, "runtime"), 0.0)
            if counts["runtime"] > before["runtime"]:
                self.cpus_seen.add(counts["cpu"])
            for field in FIELDS:
                self.sums[field] += counts[field] - before[field]
        self.last = now

    def totals(self):
        """{migrations, voluntary, involuntary, cpus}: the window's sums over every thread."""
        return {**{field: int(n) for field, n in self.sums.items()},
                "cpus": sorted(self.cpus_seen)}
