"""The todo app on threads: the standard library's http.server, psycopg2 and redis-py.

One thread per connection. Each thread blocks while it waits on the network, Postgres or
Redis, and the operating system runs another thread meanwhile. Waiting costs a thread each.
"""

import logging
import queue
import signal
import sys
import threading
import time
from contextlib import contextmanager
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg2
import psycopg2.extensions
import psycopg2.pool
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from common import (COUNTER_KEY, HTML, INTERNAL_ERROR, JSON, MAX_BODY_BYTES, NOT_FOUND,
                    POOL_BUSY, POOL_TIMEOUT_S, POSTGRES_DOWN, REDIS_DOWN, ROUTES, SELECT_ITEMS,
                    TOO_LARGE, BadRequest, Stats, burn_cpu, error_bytes, health_report,
                    json_bytes, load_page_template, make_parser, method_not_allowed,
                    non_negative_int, parse_new_item, render_page, settings_from)

INSERT_ITEM = "INSERT INTO item (text) VALUES (%s) RETURNING id"
SOCKET_TIMEOUT_S = 15  # a client that goes silent gives its thread back after this
CHUNKED_BODY = "Send the body with a Content-Length header; this server cannot read chunked ones."

POSTGRES_ERRORS = (psycopg2.OperationalError, psycopg2.InterfaceError)
REDIS_ERRORS = (redis.ConnectionError, redis.TimeoutError)
log = logging.getLogger("sync_server")


class PoolBusy(Exception):
    """No Postgres connection came free within POOL_TIMEOUT_S."""


class Postgres:
    """psycopg2 connections shared by many threads.

    psycopg2's pool raises when it is empty instead of waiting, and closes connections above
    minconn: so it is fixed at its size, and a semaphore makes threads queue for it.
    """

    def __init__(self, settings, stats):
        self.url = settings.database_url
        self.connect_per_request = settings.connect_per_request
        self.factory = autocommit_connection(stats)
        self.slots = threading.BoundedSemaphore(settings.db_pool_size)
        self.pool = None if self.connect_per_request else psycopg2.pool.ThreadedConnectionPool(
            settings.db_pool_size, settings.db_pool_size, self.url,
            connection_factory=self.factory, connect_timeout=5)  # waits on Postgres

    @contextmanager
    def connection(self):
        """Lend a connection; one that failed is closed, and the pool opens a new one."""
        if not self.slots.acquire(timeout=POOL_TIMEOUT_S):  # waits for a free connection
            raise PoolBusy
        try:
            if self.connect_per_request:  # as Django did by default: a handshake per request
                conn = psycopg2.connect(self.url, connection_factory=self.factory,
                                        connect_timeout=5)  # waits on Postgres
            else:
                conn = self.pool.getconn()  # waits on Postgres if it must reconnect
            broken = False
            try:
                yield conn
            except POSTGRES_ERRORS:
                broken = True
                raise
            finally:
                if self.connect_per_request:
                    conn.close()
                else:
                    self.pool.putconn(conn, close=broken)
        finally:
            self.slots.release()

    def close(self):
        if self.pool:
            self.pool.closeall()


def autocommit_connection(stats):
    """A connection class that counts itself and runs each statement in its own transaction,
    as asyncpg does: no BEGIN/COMMIT round trips around a single query."""
    class Connection(psycopg2.extensions.connection):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.autocommit = True
            stats.connection_opened()
    return Connection


def open_redis(settings):
    """redis-py with a pool that waits for a free connection; its default pool raises."""
    pool = redis.BlockingConnectionPool.from_url(
        settings.redis_url, max_connections=settings.db_pool_size, timeout=POOL_TIMEOUT_S,
        retry=Retry(NoBackoff(), 1))  # one retry replaces a connection Redis dropped
    return redis.Redis.from_pool(pool)


class Handler(BaseHTTPRequestHandler):
    """One instance per connection, running in that connection's own thread."""

    protocol_version = "HTTP/1.1"  # keep-alive: http.server's HTTP/1.0 default reconnects
    disable_nagle_algorithm = True  # TCP_NODELAY: a response need not wait for an ACK
    wbufsize = 64 * 1024  # headers and body leave in one send, not two
    timeout = SOCKET_TIMEOUT_S

    def do_GET(self):
        self.dispatch()

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def dispatch(self):
        """Route, then turn what went wrong into a status and a JSON sentence."""
        self.body_read = False
        path = self.path.partition("?")[0]
        stats = self.server.stats
        counted = path != "/stats"  # reading /stats leaves what it reports alone
        if counted:
            stats.request_started()
        try:
            if path not in ROUTES:
                return self.send(HTTPStatus.NOT_FOUND, error_bytes(NOT_FOUND))
            method, name = ROUTES[path]
            if self.command != method:
                return self.send(HTTPStatus.METHOD_NOT_ALLOWED,
                                 error_bytes(method_not_allowed(self.command, method)),
                                 headers={"Allow": method})
            getattr(self, name)()
        except BadRequest as error:
            self.send(error.status, error_bytes(str(error)))
        except PoolBusy:
            self.send(HTTPStatus.SERVICE_UNAVAILABLE, error_bytes(POOL_BUSY))
        except POSTGRES_ERRORS as error:
            log.warning("Postgres: %s", error)
            self.send(HTTPStatus.SERVICE_UNAVAILABLE, error_bytes(POSTGRES_DOWN))
        except REDIS_ERRORS as error:
            log.warning("Redis: %s", error)
            self.send(HTTPStatus.SERVICE_UNAVAILABLE, error_bytes(REDIS_DOWN))
        except OSError:
            raise  # the client went away; handle() ends the connection quietly
        except Exception:
            log.exception("%s %s failed", self.command, path)
            self.send(HTTPStatus.INTERNAL_SERVER_ERROR, error_bytes(INTERNAL_ERROR))
        finally:
            if counted:
                stats.request_finished()

    def index(self):
        """GET /: every item, and this view's number from Redis."""
        server = self.server
        with server.db.connection() as conn, conn.cursor() as cursor:
            cursor.execute(SELECT_ITEMS)  # waits on Postgres
            rows = cursor.fetchall()
        counter = server.redis.incr(COUNTER_KEY)  # waits on Redis
        if server.settings.io_delay_ms:
            with server.stats.upstream_wait():
                time.sleep(server.settings.io_delay_ms / 1000)  # waits on a slow upstream
        if server.settings.cpu_ms:
            burn_cpu(server.settings.cpu_ms)  # computes, holding the GIL
        self.send(HTTPStatus.OK, render_page(server.template, rows, counter), HTML)

    def create_item(self):
        """POST /items: validate, insert, answer 201 with the stored item."""
        text = parse_new_item(self.read_body())  # waits on the client
        with self.server.db.connection() as conn, conn.cursor() as cursor:
            cursor.execute(INSERT_ITEM, (text,))  # waits on Postgres
            item_id = cursor.fetchone()[0]
        self.send(HTTPStatus.CREATED, json_bytes({"id": item_id, "text": text}))

    def health(self):
        """GET /health: does each service answer right now?"""
        try:
            with self.server.db.connection() as conn, conn.cursor() as cursor:
                cursor.execute("SELECT 1")  # waits on Postgres
            postgres_ok = True
        except (PoolBusy, *POSTGRES_ERRORS):
            postgres_ok = False
        try:
            redis_ok = self.server.redis.ping()  # waits on Redis
        except REDIS_ERRORS:
            redis_ok = False
        self.send(*health_report(postgres_ok, redis_ok))

    def show_stats(self):
        """GET /stats: requests in service now and at most, threads, connections opened."""
        self.send(HTTPStatus.OK, self.server.stats.snapshot())

    def read_body(self):
        if "Transfer-Encoding" in self.headers:  # http.server cannot read chunked bodies
            raise BadRequest(CHUNKED_BODY, HTTPStatus.LENGTH_REQUIRED)
        self.body_read = True
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise BadRequest("Content-Length is not a number.") from None
        if length > MAX_BODY_BYTES:
            if length <= 16 * MAX_BODY_BYTES:
                self.rfile.read(length)  # read and drop it, so the client sees our answer
            else:
                self.body_read = False  # left unread: send() closes the connection
            raise BadRequest(TOO_LARGE, HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
        return self.rfile.read(length)  # waits on the client

    def send(self, status, body, content_type=JSON, headers=None):
        """One whole response with Content-Length, so the connection can be kept alive."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        unread = not self.body_read and (self.headers.get("Content-Length", "0") != "0"
                                         or "Transfer-Encoding" in self.headers)
        if unread or self.server.settings.workers:  # gunicorn's sync workers close too
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":  # a HEAD response has headers only
            self.wfile.write(body)

    def handle(self):
        try:
            super().handle()
        except (ConnectionError, TimeoutError):
            pass  # the client hung up or went silent: nothing to answer

    def log_message(self, format, *args):
        if self.server.settings.access_log:
            super().log_message(format, *args)


class TodoServer(ThreadingHTTPServer):
    """A thread per connection, started as each connection is accepted."""

    request_queue_size = 1024  # listen backlog; http.server's 5 refuses connections under load
    daemon_threads = True

    def open(self, settings):
        self.settings = settings
        self.stats = Stats(settings.knobs())
        self.template = load_page_template()
        self.db = Postgres(settings, self.stats)
        self.redis = open_redis(settings)
        self.redis.ping()  # fail now, not on the first request

    def close(self):
        self.server_close()
        self.db.close()
        self.redis.close()


class WorkerPoolServer(TodoServer):
    """--workers N: N threads take connections from a queue, like gunicorn's N sync workers."""

    def start_workers(self, count):
        self.connections = queue.SimpleQueue()
        for _ in range(count):
            threading.Thread(target=self.work, daemon=True).start()

    def process_request(self, request, client_address):
        self.connections.put((request, client_address))

    def work(self):
        while True:
            request, client_address = self.connections.get()  # waits for a connection
            self.process_request_thread(request, client_address)


def main(argv=None):
    parser = make_parser(__doc__.splitlines()[0], default_port=8080)
    parser.add_argument("--workers", type=non_negative_int, default=0,
                        help="serve at most N requests at once with N threads; 0 means one "
                        "thread per connection")
    parser.add_argument("--connect-per-request", action="store_true",
                        help="open a new Postgres connection for every request instead of "
                        "using the pool")
    settings = settings_from(parser.parse_args(argv))
    logging.basicConfig(format="%(asctime)s %(name)s %(levelname)s %(message)s")
    server_class = WorkerPoolServer if settings.workers else TodoServer
    try:
        server = server_class((settings.host, settings.port), Handler)
        server.open(settings)
    except (OSError, psycopg2.Error, redis.RedisError) as error:
        sys.exit(f"sync_server: cannot start: {error}".strip())
    if settings.workers:
        server.start_workers(settings.workers)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)  # also when started with SIGINT ignored, as aiohttp does
    host, port = server.server_address[:2]
    model = f"{settings.workers} worker threads" if settings.workers else "a thread per connection"
    print(f"sync_server: serving on http://{host}:{port} with {model} ({settings.describe()})",
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    print("sync_server: stopped", flush=True)


def stop(signum, frame):
    raise KeyboardInterrupt  # ends serve_forever; main() closes the pools


if __name__ == "__main__":
    main()
