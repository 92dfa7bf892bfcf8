"""What the scheduler did to a server's threads during a run: context switches, CPU
migrations, and the CPUs its threads really ran on, summed over every thread.

Linux keeps these per thread, in /proc/PID/task/TID/sched (se.nr_migrations,
nr_voluntary_switches, nr_involuntary_switches, se.sum_exec_runtime; on kernels built with
CONFIG_SCHED_DEBUG, as Debian's, Ubuntu's and Fedora's are) and the CPU a thread last ran on
in /proc/PID/task/TID/stat. A thread that ends takes its counts with it, so the counts are
read at the start of the window, every two seconds during it (bench/sampling.py) and at its
end: a thread that ended mid-window counts up to its last reading. That loses at most its
last two seconds, and only for threads that end: a thread per kept-alive connection lives as
long as wrk's connection does. A reading costs about 50 ms of CPU per thousand threads, on
the load's CPUs, and is counted in the benchmark's own CPU. Elsewhere (macOS, or no sched
file) switches come from psutil, which counts the whole process there, and migrations and
CPUs are None: never a made-up 0.
"""

from pathlib import Path

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
    counts = {}
    for line in sched.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in SCHED_KEYS:
            counts[SCHED_KEYS[key.strip()]] = float(value)
    after_name = stat.rsplit(")", 1)[1].split()  # the name may hold spaces and parentheses
    counts["cpu"] = int(after_name[PROCESSOR_FIELD - 3])
    return counts


class ThreadCounts:
    """Per-thread scheduler counts of one process, over a window: start() at its beginning,
    read() as often as threads may end, stop() at its end, then totals()."""

    def __init__(self, pid):
        self.pid = pid
        self.first, self.last = {}, {}
        self.ended = dict.fromkeys(FIELDS, 0.0)  # what threads gone since were seen doing
        self.cpus_seen = set()

    def snapshot(self):
        threads = {}
        try:
            tasks = list(Path(f"/proc/{self.pid}/task").iterdir())
        except OSError:
            return threads  # the process is gone
        for task in tasks:
            counts = read_thread(task)
            if counts is not None:
                threads[int(task.name)] = counts
        return threads

    def start(self):
        self.first = self.last = self.snapshot()

    def read(self):
        """Fold a new reading in: a thread born since starts from 0, one that ended keeps
        what its last reading showed, one that ran since the last reading adds its CPU."""
        now = self.snapshot()
        for tid, counts in now.items():
            before = self.last.get(tid)
            if before is None or counts["runtime"] < before["runtime"]:  # new, or id reused
                if before is not None:
                    self.retire(tid)
                self.first[tid] = {**dict.fromkeys(FIELDS, 0.0), "runtime": 0.0}
                before = self.first[tid]
            if counts["runtime"] > before["runtime"]:
                self.cpus_seen.add(counts["cpu"])
        for tid in set(self.last) - set(now):
            self.retire(tid)
        self.last = now
        self.first = {tid: c for tid, c in self.first.items() if tid in now}

    def retire(self, tid):
        for field in FIELDS:
            self.ended[field] += self.last[tid][field] - self.first.get(tid, self.last[tid])[field]

    def stop(self):
        self.read()

    def totals(self):
        """{migrations, voluntary, involuntary, cpus}: the window's sums over every thread."""
        sums = {field: int(self.ended[field] + sum(
            counts[field] - self.first[tid][field] for tid, counts in self.last.items()))
            for field in FIELDS}
        return {**sums, "cpus": sorted(self.cpus_seen)}
