"""What both servers share: settings, routes, SQL, validation, the page template, counters.

Everything here is I/O-free and identical for both servers, so `diff sync_server.py
async_server.py` shows only what differs between them: how they wait.
"""

import argparse
import json
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path

import jinja2

MAX_BODY_BYTES = 64 * 1024
MAX_TEXT_CHARS = 500
DEFAULT_DB_POOL_SIZE = 10
POOL_TIMEOUT_S = 10.0  # how long a request waits for a pooled connection before a 503
COUNTER_KEY = "counter"

# Dates are formatted by Postgres, so both drivers hand the template the same strings.
SELECT_ITEMS = (
    "SELECT id, text, to_char(date_posted AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI')"
    " FROM item ORDER BY id"
)

# path -> (the one method it takes, handler name). Both servers route from this table.
ROUTES = {
    "/": ("GET", "index"),
    "/items": ("POST", "create_item"),
    "/health": ("GET", "health"),
    "/stats": ("GET", "show_stats"),
}

HTML = "text/html; charset=utf-8"
JSON = "application/json"

NOT_FOUND = "There is no page at this path."
TOO_LARGE = f"Request body is larger than {MAX_BODY_BYTES} bytes."
INTERNAL_ERROR = "Internal error; the server log has the details."
POSTGRES_DOWN = "Postgres is not answering; try again shortly."
REDIS_DOWN = "Redis is not answering; try again shortly."
POOL_BUSY = "Every database connection stayed busy; try again shortly."

DEFAULT_URLS = {  # what docker-compose.yml publishes
    "DATABASE_URL": "postgresql://todo:todo@127.0.0.1:5432/todo",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
}


@dataclass(frozen=True)
class Settings:
    host: str
    port: int
    database_url: str
    redis_url: str
    db_pool_size: int
    access_log: bool
    io_delay_ms: float
    cpu_ms: float
    workers: int = 0  # sync only; 0 = one thread per connection
    connect_per_request: bool = False  # sync only
    blocking: bool = False  # async only

    def describe(self):
        """The knobs, for the start-up line."""
        knobs = [f"db-pool-size={self.db_pool_size}"]
        knobs += [f"{name}={value}" for name, value in (
            ("workers", self.workers), ("io-delay-ms", self.io_delay_ms),
            ("cpu-ms", self.cpu_ms)) if value]
        knobs += [name for name, on in (
            ("connect-per-request", self.connect_per_request),
            ("blocking", self.blocking), ("access-log", self.access_log)) if on]
        return ", ".join(knobs)

    def knobs(self):
        """Every tunable and its value, as /stats reports it: what the server really ran with."""
        return {"db_pool_size": self.db_pool_size, "workers": self.workers,
                "connect_per_request": self.connect_per_request,
                "io_delay_ms": self.io_delay_ms, "cpu_ms": self.cpu_ms,
                "blocking": self.blocking, "access_log": self.access_log}


def make_parser(description, default_port):
    """The flags both servers take; each server adds its own knobs."""
    parser = argparse.ArgumentParser(
        description=description,
        epilog="Environment: DATABASE_URL (default %s), REDIS_URL (default %s)."
        % (DEFAULT_URLS["DATABASE_URL"], DEFAULT_URLS["REDIS_URL"]),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=default_port, help="port to listen on")
    parser.add_argument("--db-pool-size", type=positive_int, default=DEFAULT_DB_POOL_SIZE,
                        help="Postgres connections kept open; the Redis pool gets as many")
    parser.add_argument("--access-log", action="store_true", help="log every request")
    parser.add_argument("--io-delay-ms", type=non_negative, default=0.0,
                        help="each page view also waits this long on a simulated slow "
                        "upstream call, holding no database connection")
    parser.add_argument("--cpu-ms", type=non_negative, default=0.0,
                        help="each page view also burns this much pure-Python CPU time")
    return parser


def settings_from(args):
    """Combine parsed flags with DATABASE_URL and REDIS_URL from the environment."""
    return Settings(
        host=args.host, port=args.port,
        database_url=os.environ.get("DATABASE_URL") or DEFAULT_URLS["DATABASE_URL"],
        redis_url=os.environ.get("REDIS_URL") or DEFAULT_URLS["REDIS_URL"],
        db_pool_size=args.db_pool_size, access_log=args.access_log,
        io_delay_ms=args.io_delay_ms, cpu_ms=args.cpu_ms,
        workers=getattr(args, "workers", 0),
        connect_per_request=getattr(args, "connect_per_request", False),
        blocking=getattr(args, "blocking", False))


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


class BadRequest(Exception):
    """The client sent something we will not store; str(error) is the sentence we send back."""

    def __init__(self, message, status=HTTPStatus.BAD_REQUEST):
        super().__init__(message)
        self.status = status


def parse_new_item(body):
    """Validate a POST /items body (bytes) and return the text to store.

    Only the key "text" is accepted, so no key a client sends ever reaches SQL.
    """
    if not body.strip():
        raise BadRequest('Request body is empty; send a JSON object like {"text": "..."}.')
    try:
        data = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise BadRequest("Request body is not valid UTF-8.") from None
    except RecursionError:
        raise BadRequest("Request body nests too deeply.") from None
    except ValueError as error:
        raise BadRequest(f"Request body is not valid JSON: {error.msg}.") from None
    if not isinstance(data, dict):
        raise BadRequest('Request body must be a JSON object like {"text": "..."}.')
    unknown = sorted(key for key in data if key != "text")
    if unknown:
        names = ", ".join(json.dumps(key[:40]) for key in unknown[:5])
        raise BadRequest(f'Unknown field(s): {names}; only "text" is accepted.')
    if "text" not in data:
        raise BadRequest('Field "text" is required.')
    text = data["text"]
    if not isinstance(text, str):
        raise BadRequest('Field "text" must be a string.')
    text = text.strip()
    if not text:
        raise BadRequest('Field "text" must not be blank.')
    if len(text) > MAX_TEXT_CHARS:
        raise BadRequest(f'Field "text" must be at most {MAX_TEXT_CHARS} characters '
                         f'(it has {len(text)}).')
    if "\x00" in text:  # Postgres text cannot hold NUL
        raise BadRequest('Field "text" must not contain NUL characters.')
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate such as "\ud800"
        raise BadRequest('Field "text" must be valid Unicode.') from None
    return text


def json_bytes(data):
    return json.dumps(data, ensure_ascii=False).encode("utf-8")


def error_bytes(message):
    return json_bytes({"error": message})


def method_not_allowed(method, allowed):
    return f"Method {method} is not allowed here; use {allowed}."


def health_report(postgres_ok, redis_ok):
    """Status and body for GET /health."""
    report = {"postgres": "ok" if postgres_ok else "down",
              "redis": "ok" if redis_ok else "down"}
    status = HTTPStatus.OK if postgres_ok and redis_ok else HTTPStatus.SERVICE_UNAVAILABLE
    return status, json_bytes(report)


def load_page_template():
    """Compile templates/index.html once, at start-up; autoescaping is what makes <script> text."""
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates")),
        autoescape=True)
    return environment.get_template("index.html")


def render_page(template, rows, counter):
    """rows are (id, text, posted) from SELECT_ITEMS, whichever driver fetched them."""
    return template.render(items=rows, counter=counter).encode("utf-8")


def burn_cpu(ms):
    """Compute, not wait, for `ms` of this thread's CPU time: work no concurrency model hides."""
    deadline = time.thread_time() + ms / 1000
    while time.thread_time() < deadline:
        pass


class Stats:
    """Counters behind GET /stats. The lock is for the sync server's many threads.

    The peaks are the most at once since the previous read, so a benchmark that reads them
    before and during a run sees that run's peaks alone. waiting_upstream counts page views
    inside the --io-delay-ms wait: a blocking call in the event loop holds it at 1.
    """

    def __init__(self, knobs=None):
        self._lock = threading.Lock()
        self.knobs = knobs or {}
        self.in_service = 0
        self.peak_in_service = 0
        self.waiting_upstream = 0
        self.peak_waiting_upstream = 0
        self.served = 0
        self.pg_connections_opened = 0

    def request_started(self):
        with self._lock:
            self.in_service += 1
            self.peak_in_service = max(self.peak_in_service, self.in_service)

    def request_finished(self):
        with self._lock:
            self.in_service -= 1
            self.served += 1

    @contextmanager
    def upstream_wait(self):
        with self._lock:
            self.waiting_upstream += 1
            self.peak_waiting_upstream = max(self.peak_waiting_upstream, self.waiting_upstream)
        try:
            yield
        finally:
            with self._lock:
                self.waiting_upstream -= 1

    def connection_opened(self):
        with self._lock:
            self.pg_connections_opened += 1

    def snapshot(self):
        with self._lock:
            report = json_bytes({
                "in_service": self.in_service, "peak_in_service": self.peak_in_service,
                "waiting_upstream": self.waiting_upstream,
                "peak_waiting_upstream": self.peak_waiting_upstream,
                "threads": threading.active_count(), "served": self.served, "pid": os.getpid(),
                "pg_connections_opened": self.pg_connections_opened, "knobs": self.knobs})
            self.peak_in_service = self.in_service
            self.peak_waiting_upstream = self.waiting_upstream
            return report
