"""What a server process used during one wrk run: CPU, context switches, threads, memory,
and what it counted itself (requests in service), read through psutil on Linux and macOS alike.
"""

import http.client
import json
import threading

import psutil

UNMEASURABLE = (psutil.Error, NotImplementedError, AttributeError)


def cpu_seconds(pid):
    """User plus system CPU seconds a process has used so far."""
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def measured(read):
    """read() or None where this platform or process does not tell: never a made-up 0."""
    try:
        return read()
    except UNMEASURABLE:
        return None


class Sampler:
    """Reads the server's threads, memory and requests in service four times a second, and its
    CPU time and context switches before and after.

    /stats is read over one kept-alive connection opened before wrk starts: a new connection
    per sample would queue behind wrk's in the sync server's accept backlog.
    """

    def __init__(self, server):
        self.process = psutil.Process(server.process.pid)
        self.samples = []
        self.done = threading.Event()
        self.conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        self.read_stats()  # also starts /stats's peak afresh
        self.before = self.counters()
        self.thread = threading.Thread(target=self.sample, daemon=True)
        self.thread.start()

    def counters(self):
        return {"cpu": measured(self.process.cpu_times),
                "switches": measured(self.process.num_ctx_switches)}

    def read_stats(self):
        try:
            self.conn.request("GET", "/stats")
            return json.loads(self.conn.getresponse().read())
        except (OSError, ValueError, http.client.HTTPException):
            self.conn.close()  # reconnects on the next request
            return None

    def sample(self):
        while not self.done.wait(0.25):
            self.samples.append((measured(self.process.num_threads),
                                 measured(lambda: self.process.memory_info().rss),
                                 self.read_stats()))

    def stop(self):
        self.done.set()
        self.thread.join()
        self.conn.close()
        self.after = self.counters()

    def figures(self):
        """The run's figures for the results (see measure.measure); None where unmeasured."""
        threads = [t for t, _, _ in self.samples if t is not None]
        rss = [r for _, r, _ in self.samples if r is not None]
        stats = [s for _, _, s in self.samples if s]
        cpu = self.used("cpu", ("user", "system"))
        switches = self.used("switches", ("voluntary", "involuntary"))
        if psutil.LINUX and max(threads, default=2) > 1:  # psutil counts the main thread's
            switches = dict.fromkeys(switches)  # alone there (its issue 1467): unmeasured
        return {
            "peak_threads": max(threads, default=None),
            "peak_rss_mb": round(max(rss) / 2**20, 1) if rss else None,
            "peak_in_service": max((s["peak_in_service"] for s in stats), default=None),
            "mean_in_service": round(sum(s["in_service"] for s in stats) / len(stats), 1)
            if stats else None,
            "server_cpu_s": None if cpu["user"] is None else round(cpu["user"] + cpu["system"], 2),
            "server_cpu_user_s": cpu["user"], "server_cpu_system_s": cpu["system"],
            "server_ctx_switches_voluntary": switches["voluntary"],
            "server_ctx_switches_involuntary": switches["involuntary"],
        }

    def used(self, counter, fields):
        """{field: after - before} for fields of a psutil counter; None where unmeasured."""
        before, after = self.before[counter], self.after[counter]
        if before is None or after is None:
            return dict.fromkeys(fields)
        return {field: round(getattr(after, field) - getattr(before, field), 2)
                for field in fields}
