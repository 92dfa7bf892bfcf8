"""One server's configuration: its command-line flags and the two service URLs.

Both servers take the same flags, plus a few knobs that only one of them has; every knob has
one name and one default, here.
"""

import argparse
import os
from dataclasses import dataclass

DEFAULT_URLS = {  # what docker-compose.yml publishes
    "DATABASE_URL": "postgresql://todo:todo@127.0.0.1:5432/todo",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
}
# Each server by its file's name: the port it listens on unless told, and the knobs only it
# has. A knob one server lacks is chosen at set-up (sync_pools.make_postgres), not in a branch.
SERVERS = {
    "sync_server": {"port": 8080, "own_flags": ("--workers", "--connect-per-request")},
    "async_server": {"port": 8081, "own_flags": ("--blocking",)},
}
GC_MODES = ("default", "freeze", "thresholds")  # --gc: stats.tune_collector() applies each


@dataclass(frozen=True)
class Settings:
    """One server's configuration: its flags and its two URLs. Each knob's default is here."""
    host: str
    port: int
    database_url: str
    redis_url: str
    db_pool_size: int = 10
    access_log: bool = False
    io_delay_ms: float = 0.0
    cpu_ms: float = 0.0
    idle_timeout_s: float = 15.0  # a connection silent this long is closed (a thread freed)
    gc: str = "default"  # the garbage collector after start-up: one of GC_MODES
    workers: int = 0  # sync only; 0 = one thread per connection
    connect_per_request: bool = False  # sync only
    blocking: bool = False  # async only

    def describe(self):
        """The knobs, for the start-up line."""
        knobs = [f"db-pool-size={self.db_pool_size}"]
        knobs += [f"{name}={value}" for name, value in (
            ("workers", self.workers), ("io-delay-ms", self.io_delay_ms),
            ("cpu-ms", self.cpu_ms)) if value]
        knobs += [f"idle-timeout-s={self.idle_timeout_s:g}"]
        knobs += [f"gc={self.gc}"] if self.gc != Settings.gc else []
        knobs += [name for name, on in (
            ("connect-per-request", self.connect_per_request),
            ("blocking", self.blocking), ("access-log", self.access_log)) if on]
        return ", ".join(knobs)

    def knobs(self):
        """Every tunable and its value, as /stats reports it: what the server really ran with."""
        return {"db_pool_size": self.db_pool_size, "workers": self.workers,
                "connect_per_request": self.connect_per_request,
                "io_delay_ms": self.io_delay_ms, "cpu_ms": self.cpu_ms,
                "blocking": self.blocking, "access_log": self.access_log,
                "idle_timeout_s": self.idle_timeout_s, "gc": self.gc}


def make_parser(name, description):
    """The flags both servers take, plus the knobs only server `name` has (SERVERS)."""
    default_port, own_flags = SERVERS[name]["port"], SERVERS[name]["own_flags"]
    parser = argparse.ArgumentParser(
        description=description,
        epilog="Environment: DATABASE_URL (default %s), REDIS_URL (default %s)."
        % (DEFAULT_URLS["DATABASE_URL"], DEFAULT_URLS["REDIS_URL"]),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=default_port, help="port to listen on")
    parser.add_argument("--db-pool-size", type=positive_int, default=Settings.db_pool_size,
                        help="Postgres connections kept open; the Redis pool gets as many")
    parser.add_argument("--access-log", action="store_true", help="log every request")
    parser.add_argument("--io-delay-ms", type=non_negative, default=Settings.io_delay_ms,
                        help="each page view also waits this long on a simulated slow "
                        "upstream call, holding no database connection")
    parser.add_argument("--cpu-ms", type=non_negative, default=Settings.cpu_ms,
                        help="each page view also burns this much pure-Python CPU time")
    parser.add_argument("--idle-timeout-s", type=non_negative, default=Settings.idle_timeout_s,
                        help="close a connection that sends nothing for this long")
    parser.add_argument("--gc", choices=GC_MODES, default=Settings.gc, help="the garbage "
                        "collector after start-up: as Python sets it, with what start-up made "
                        "frozen out of its sight, or collecting less often")
    own = {
        "--workers": dict(type=non_negative_int, default=Settings.workers,
                          help="serve at most N requests at once with N threads; 0 means one "
                          "thread per connection"),
        "--connect-per-request": dict(action="store_true",
                                      help="open a new Postgres connection for every request "
                                      "instead of using the pool"),
        "--blocking": dict(action="store_true",
                           help="wait for --io-delay-ms with time.sleep, which blocks the "
                           "event loop, instead of asyncio.sleep"),
    }
    for flag in own_flags:
        parser.add_argument(flag, **own[flag])
    return parser


def settings_from(args):
    """Combine parsed flags with DATABASE_URL and REDIS_URL from the environment. A knob the
    server has no flag for keeps its default from Settings; a flag that is no knob is left out."""
    return Settings(
        database_url=os.environ.get("DATABASE_URL") or DEFAULT_URLS["DATABASE_URL"],
        redis_url=os.environ.get("REDIS_URL") or DEFAULT_URLS["REDIS_URL"],
        **{name: value for name, value in vars(args).items() if name in Settings.__annotations__})


def positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def non_negative_int(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


def non_negative(text):
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value
