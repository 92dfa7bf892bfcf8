"""What both servers share: settings, SQL, validation, errors, the page template.

Nothing here waits on the network, Postgres or Redis, so both servers can use it as it is,
and `diff sync_server.py async_server.py` shows only what differs between them: how they wait.
"""

import json
import re
import time
from dataclasses import dataclass
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
VALUE_REFUSED = "A value in the request is not one the database can store."

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


class ValueRefused(BadRequest):
    """Postgres or its driver refused a value the request carried (an integer past 2**31 - 1,
    a NUL in text): the client's mistake, a 400, and no outage: the connection is fine. A
    handler that looks a row up by such an id answers 404 instead: no row can have it."""

    def __init__(self):
        super().__init__(VALUE_REFUSED)


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


# What a handler's exception becomes, first match first: an outage or a full pool is a 503.
REFUSALS = [(PoolBusy, HTTPStatus.SERVICE_UNAVAILABLE, POOL_BUSY),
            (PostgresDown, HTTPStatus.SERVICE_UNAVAILABLE, POSTGRES_DOWN),
            (REDIS_ERRORS, HTTPStatus.SERVICE_UNAVAILABLE, REDIS_DOWN)]


def refusal(error, log, request):
    """respond()'s arguments for an exception a handler raised: a BadRequest's own status,
    sentence and headers; a REFUSALS entry's; else a 500, logged with its traceback."""
    if isinstance(error, BadRequest):
        return error.status, error_bytes(str(error)), JSON, error.headers
    for errors, status, message in REFUSALS:
        if isinstance(error, errors):
            return status, error_bytes(message), JSON, {}
    log.error("%s %s failed", request.method, request.path, exc_info=error)
    return HTTPStatus.INTERNAL_SERVER_ERROR, error_bytes(INTERNAL_ERROR), JSON, {}


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
    stats: object  # stats.Stats
    template: jinja2.Template
    db: object
    redis: object


BURN_TURNS = 1_000  # turns of the loop between clock reads: about 0.1 ms of bytecode here


def burn_cpu(ms):
    """Compute, not wait, for `ms` of this thread's CPU time: work no concurrency model hides.

    Integer arithmetic in bytecode, as a template or an encoder spends its time. The clock is
    read every BURN_TURNS turns only: time.thread_time() is a system call, and read on every
    turn it made the kernel do about 80% of the "work" (0.84 s system, 0.17 s user here)."""
    deadline, x = time.thread_time() + ms / 1000, 1
    while time.thread_time() < deadline:
        for _ in range(BURN_TURNS):
            x = (x * 1103515245 + 12345) & 0xFFFFFFFF
    return x
