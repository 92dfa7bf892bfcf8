"""What both servers share: settings, SQL, validation, errors, the page template, counters.

Nothing here waits on the network, Postgres or Redis, so both servers can use it as it is,
and `diff sync_server.py async_server.py` shows only what differs between them: how they wait.
"""

import gc
import json
import logging
import os
import re
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path

import jinja2
import redis

from config import Settings

MAX_BODY_BYTES = 64 * 1024
MAX_TEXT_CHARS = 500
POOL_TIMEOUT_S = 10.0  # how long a request waits for a pooled connection before a 503
CONNECT_TIMEOUT_S = 5  # how long opening a Postgres connection may take
BACKLOG = 1024  # listen queue; http.server's default is 5, aiohttp's 128
COUNTER_KEY = "counter"

# Dates are formatted by Postgres, so both drivers hand the template the same strings.
SELECT_ITEMS = (
    "SELECT id, text, to_char(date_posted AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI')"
    " FROM item ORDER BY id"
)

HTML = "text/html; charset=utf-8"
JSON = "application/json"

NOT_FOUND = "There is no page at this path."
TOO_LARGE = f"Request body is larger than {MAX_BODY_BYTES} bytes."
BODY_STOPPED = "The request body stopped arriving before its Content-Length."
INTERNAL_ERROR = "Internal error; the server log has the details."
POSTGRES_DOWN = "Postgres is not answering; try again shortly."
REDIS_DOWN = "Redis is not answering; try again shortly."
POOL_BUSY = "Every database connection stayed busy; try again shortly."

LOG_FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"
REDIS_ERRORS = (redis.ConnectionError, redis.TimeoutError)  # the same classes in redis.asyncio

class BadRequest(Exception):
    """The client asked for something we will not do; str(error) is the sentence we send back.
    The HTTP layer refuses with it too: no such page (404), wrong method (405), too large (413).
    """

    def __init__(self, message, status=HTTPStatus.BAD_REQUEST, headers=None):
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


class PoolBusy(Exception):
    """No Postgres connection came free within POOL_TIMEOUT_S."""


class PostgresDown(Exception):
    """Postgres did not answer; each server raises it from its own driver's errors."""


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


def announce(name, message, model, settings):
    """The start-up line, from the one the framework prints with the address it bound."""
    url = re.search(r"http://\S+", message).group()
    print(f"{name}: serving on {url} with {model} ({settings.describe()})", flush=True)


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


@dataclass
class State:
    """What every handler reaches as request.app[STATE]. Each server builds it in new_state()
    from its own Postgres and Redis clients, which connect only when pools() opens them."""
    settings: Settings
    stats: "Stats"
    template: jinja2.Template
    db: object
    redis: object


def burn_cpu(ms):
    """Compute, not wait, for `ms` of this thread's CPU time: work no concurrency model hides."""
    deadline = time.thread_time() + ms / 1000
    while time.thread_time() < deadline:
        pass


class Stats:
    """Counters behind GET /stats, and the outages the log tells of (Outages, below). The
    lock is for the sync server's many threads.

    The peaks are the most at once since start-up or since reset_peaks(), so a benchmark that
    resets them before a run sees that run's peaks alone. waiting_upstream counts page views
    inside the --io-delay-ms wait: a blocking call in the event loop holds it at 1. The
    garbage collector's pauses are timed too: while one runs, no Python code runs, in any
    thread or task, and its work grows with the objects a server holds.
    """

    def __init__(self, knobs=None, log=None):
        self._lock = threading.Lock()
        self.knobs = knobs or {}
        self.outages = Outages(log or logging.getLogger(__name__))
        self.in_service = 0
        self.peak_in_service = 0
        self.waiting_upstream = 0
        self.peak_waiting_upstream = 0
        self.served = 0
        self.pg_connections_opened = 0
        self.full_collections = 0
        self.gc_pause_ms = 0.0
        self.longest_gc_pause_ms = 0.0
        self._collecting_since = None
        gc.callbacks.append(self._collection)  # made once, in new_state(), not at import

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

    def _collection(self, phase, info):
        """gc.callbacks: time each collection. No lock: the collector may run inside a
        `with self._lock` block of this very thread, and the GIL is held throughout."""
        if phase == "start":
            self._collecting_since = time.perf_counter()
            return
        pause_ms = (time.perf_counter() - self._collecting_since) * 1000
        self.gc_pause_ms += pause_ms
        self.longest_gc_pause_ms = max(self.longest_gc_pause_ms, pause_ms)
        self.full_collections += info["generation"] == 2

    def report(self):
        """The counters as GET /stats sends them (JSON bytes); reading changes nothing."""
        with self._lock:
            return json_bytes({
                "in_service": self.in_service, "peak_in_service": self.peak_in_service,
                "waiting_upstream": self.waiting_upstream,
                "peak_waiting_upstream": self.peak_waiting_upstream,
                "threads": threading.active_count(), "served": self.served, "pid": os.getpid(),
                "pg_connections_opened": self.pg_connections_opened, "knobs": self.knobs,
                "full_collections": self.full_collections,
                "gc_pause_ms": round(self.gc_pause_ms, 1),
                "longest_gc_pause_ms": round(self.longest_gc_pause_ms, 1)})

    def reset_peaks(self):
        """Start both peaks again from what is in service now (POST /stats/reset-peaks)."""
        with self._lock:
            self.peak_in_service = self.in_service
            self.peak_waiting_upstream = self.waiting_upstream
            self.longest_gc_pause_ms = 0.0


@dataclass
class Outage:
    """One service's outage, from its first refused request until a success ends it."""
    since: float  # time.monotonic() of its first refusal
    refused: int = 0
    paths: set = field(default_factory=set)  # the paths refused because of it


class Outages:
    """When Postgres or Redis stopped answering and when it answered again: two log lines an
    outage, the first with the driver's reason, the second with how many requests it cost,
    and nothing per request between them (with --access-log, the access log has each 503).

    A path refused because of a service calls that service on every request, so a later
    success on that path has reached it: the outage is over. Only a success during which the
    service refused no request counts: as Postgres stops, requests in flight still succeed
    on connections it has not ended yet. The lock is for the sync server's threads.
    """

    def __init__(self, log):
        self.log = log
        self._lock = threading.Lock()
        self._open = {}  # service -> its Outage, until it answers again
        self._refusals = {"Postgres": 0, "Redis": 0}  # since start-up

    @contextmanager
    def watch(self, path):
        """Around one request: PostgresDown or a Redis error counts as a refusal and goes on
        to the caller; a success ends the outages its path was refused for."""
        before = dict(self._refusals)  # without the lock: a stale count only delays the end
        try:
            yield
        except PostgresDown as error:
            self.refused("Postgres", path, error)
            raise
        except REDIS_ERRORS as error:
            self.refused("Redis", path, error)
            raise
        if self._open:  # most requests find none open, and take no lock
            self.answered(path, before)

    def refused(self, service, path, error):
        with self._lock:  # held while logging: an outage's two lines never change places
            self._refusals[service] += 1
            if service not in self._open:
                self._open[service] = Outage(time.monotonic())
                self.log.warning("%s unreachable: %s", service, one_line(error))
            self._open[service].refused += 1
            self._open[service].paths.add(path)

    def answered(self, path, before):
        with self._lock:
            for service, outage in list(self._open.items()):
                if path in outage.paths and self._refusals[service] == before[service]:
                    del self._open[service]
                    self.log.warning("%s back after %.1f s; requests refused meanwhile: %d",
                                     service, time.monotonic() - outage.since, outage.refused)


def one_line(error):
    """A driver's reason in one line (psycopg2's run over three), named by its class."""
    cause = error.__cause__ or error  # PostgresDown carries the driver's error
    lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
    return f"{type(cause).__name__}: {lines[0] if lines else ''}".rstrip(": ")

