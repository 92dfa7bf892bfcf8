"""Many mostly idle clients: the case event loops were invented for (C10K).

    python -m bench.idle --port 8081 --connections 10000 [--heartbeat 60]

Opens the connections a few hundred at a time (the server's listen queue must not overflow)
and holds them, with a GET /health on each every --heartbeat seconds from a random start.
Prints "holding N" once all are open (or failed), and on SIGTERM or SIGINT a JSON line,
{"asked", "opened", "failed", "closed_by_server", "heartbeats", "cpu_s"} (cpu_s: what this
one process spent holding them all), then exits.
"""

import argparse
import asyncio
import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.http1 import read_response
from bench.launch import wait_until
from bench.limits import raise_fd_limit, read_int

ROOT = Path(__file__).resolve().parent.parent

REQUEST = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"  # no counter to upset the audit
OPENING_AT_ONCE = 200


class Clients:
    def __init__(self, port, count, heartbeat_s):
        self.port, self.count, self.heartbeat_s = port, count, heartbeat_s
        self.opened = self.failed = self.closed_by_server = self.heartbeats = 0
        self.all_open, self.stop = asyncio.Event(), asyncio.Event()

    async def client(self, opening):
        """Open, then hold, with a request every heartbeat, until told to stop."""
        kept = True
        try:
            async with opening:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            self.opened += 1
        except OSError:
            self.failed += 1
            return
        finally:
            if self.opened + self.failed == self.count:
                self.all_open.set()
        try:
            delay = random.uniform(0, self.heartbeat_s)
            while kept and not self.stop.is_set():
                try:
                    await asyncio.wait_for(self.stop.wait(), delay)
                except asyncio.TimeoutError:
                    writer.write(REQUEST)
                    await writer.drain()
                    kept = (await read_response(reader))[1]  # False: the server closed it
                    self.heartbeats += 1
                delay = self.heartbeat_s
            self.closed_by_server += not kept
        except (OSError, asyncio.IncompleteReadError):
            self.closed_by_server += 1
        finally:
            writer.close()

    async def run(self):
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.stop.set)
        opening = asyncio.Semaphore(OPENING_AT_ONCE)
        tasks = [asyncio.create_task(self.client(opening)) for _ in range(self.count)]
        if not tasks:
            self.all_open.set()
        await self.all_open.wait()
        print(f"holding {self.opened}", flush=True)
        await self.stop.wait()
        await asyncio.gather(*tasks)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--port", type=int, required=True, help="the server's port")
    parser.add_argument("--connections", type=int, required=True, help="how many to hold")
    parser.add_argument("--heartbeat", type=float, default=60.0,
                        help="seconds between page views on each connection")
    args = parser.parse_args()
    raise_fd_limit(args.connections)  # a descriptor per connection
    clients = Clients(args.port, args.connections, args.heartbeat)
    asyncio.run(clients.run())
    print(json.dumps({"asked": args.connections, "opened": clients.opened,
                      "failed": clients.failed, "closed_by_server": clients.closed_by_server,
                      "heartbeats": clients.heartbeats, "cpu_s": round(time.process_time(), 2)}),
          flush=True)


class Held:
    """bench/idle.py in a subprocess for one run, returned once the server holds every
    connection that opened (its accept loop may lag behind the connects)."""

    def __init__(self, server, count, cpus=None):
        import psutil
        from bench.placement import pinned_to
        from bench.sampling import established
        self.server_side = psutil.Process(server.pid)
        self.threads_before = self.server_side.num_threads()
        self.kernel_stack_before = kernel_stack_kb()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.idle", "--port", str(server.port),
             "--connections", str(count)],
            stdout=subprocess.PIPE, text=True, cwd=ROOT, preexec_fn=pinned_to(cpus))
        try:  # Ctrl-C, SIGTERM, an error: the clients go too
            line = self.process.stdout.readline()  # "holding N", once every one is open
            if not line.startswith("holding"):
                raise SystemExit(f"bench: idle clients did not start: {line!r}")
            opened = int(line.split()[1])
            wait_until(lambda: established(self.server_side, server.port, but=None) >= opened,
                       60, 0.2)
        except BaseException:
            self.process.kill()
            raise
        self.kernel_stack_held = kernel_stack_kb()

    def stop(self):
        """{asked, opened, failed, closed_by_server, heartbeats, cpu_s, kernel_stack_kb}"""
        self.process.send_signal(signal.SIGTERM)
        report = json.loads(self.process.stdout.readline())
        self.process.wait(timeout=60)
        # the next run's kernel memory starts from here: the threads of closed connections end
        wait_until(lambda: self.server_side.num_threads() <= self.threads_before, 60, 0.2)
        return {**report,
                "kernel_stack_kb": grown(self.kernel_stack_before, self.kernel_stack_held)}


def grown(before, after):
    """KiB of kernel stacks grown, never below 0: the figure is machine-wide, and other
    processes' threads ending meanwhile can make it fall (c10k once recorded -4)."""
    return None if None in (before, after) else max(0, after - before)


def kernel_stack_kb():
    """The kernel's memory for thread stacks (Linux: 16 KiB a thread), or None elsewhere."""
    return read_int(Path("/proc/meminfo"), field="KernelStack:")


if __name__ == "__main__":
    sys.exit(main())
