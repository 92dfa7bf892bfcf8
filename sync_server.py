"""The todo app on threads: the standard library's http.server, psycopg2 and redis-py.

One thread per connection. A handler that waits on the network, Postgres or Redis blocks
its thread, and the operating system runs another thread meanwhile. Waiting costs a thread.
"""

import logging
import sys
import threading
import time
from contextlib import contextmanager
from http import HTTPStatus

import psycopg2
import psycopg2.extensions
import psycopg2.pool
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from common import (BACKLOG, CONNECT_TIMEOUT_S, COUNTER_KEY, HTML, INTERNAL_ERROR, LOG_FORMAT,
                    MAX_BODY_BYTES, POOL_BUSY, POOL_TIMEOUT_S, POSTGRES_DOWN, REDIS_DOWN,
                    REDIS_ERRORS, SELECT_ITEMS, BadRequest, PoolBusy, PostgresDown, State, Stats,
                    announce, burn_cpu, error_bytes, health_report, json_bytes,
                    load_page_template, parse_new_item, render_page)
from config import make_parser, settings_from
from sync_http import Application, respond, run_app

INSERT_ITEM = "INSERT INTO item (text) VALUES (%s) RETURNING id"
POSTGRES_ERRORS = (psycopg2.OperationalError, psycopg2.InterfaceError)
STATE = "state"  # request.app[STATE]
log = logging.getLogger("sync_server")


class Postgres:
    """psycopg2 connections shared by many threads. psycopg2's pool raises when it is empty
    instead of waiting, and closes connections above minconn: so it is fixed at its size,
    and a semaphore makes threads queue for it."""

    def __init__(self, settings, stats):
        self.url = settings.database_url
        self.size = settings.db_pool_size
        self.stats = stats
        self.connect_per_request = settings.connect_per_request
        self.slots = threading.BoundedSemaphore(self.size)
        self.pool = None

    def open(self):
        """Open every pooled connection now, before the first request."""
        if self.connect_per_request:
            return
        try:
            self.pool = psycopg2.pool.ThreadedConnectionPool(
                self.size, self.size, self.url, connection_factory=self.counted,
                connect_timeout=CONNECT_TIMEOUT_S)  # waits on Postgres
        except POSTGRES_ERRORS as error:
            raise PostgresDown(error) from error

    def fetch(self, query, *args):
        """Run one statement on a lent connection; return its rows."""
        with self.connection() as conn, conn.cursor() as cursor:
            cursor.execute(query, args or None)  # waits on Postgres
            return cursor.fetchall()

    @contextmanager
    def connection(self):
        """Lend a connection; PoolBusy if none comes free in time, PostgresDown if it fails."""
        if not self.slots.acquire(timeout=POOL_TIMEOUT_S):  # waits for a free connection
            raise PoolBusy
        conn, broken = None, False
        try:
            if self.connect_per_request:  # as Django did by default: a handshake per request
                conn = psycopg2.connect(self.url, connection_factory=self.counted,
                                        connect_timeout=CONNECT_TIMEOUT_S)  # waits on Postgres
            else:
                conn = self.pool.getconn()  # waits on Postgres if it must reconnect
            yield conn
        except POSTGRES_ERRORS as error:
            broken = True
            raise PostgresDown(error) from error
        finally:
            if conn and self.connect_per_request:
                conn.close()
            elif conn:
                self.pool.putconn(conn, close=broken)
            self.slots.release()

    def close(self):
        if self.pool:
            self.pool.closeall()

    def counted(self, *args, **kwargs):
        """A connection that counts itself and runs each statement in its own transaction,
        as asyncpg does: no BEGIN/COMMIT round trips around a single query."""
        conn = psycopg2.extensions.connection(*args, **kwargs)
        conn.autocommit = True
        self.stats.connection_opened()
        return conn


def open_redis(settings):
    """redis-py with a pool that waits for a free connection; its default pool raises."""
    pool = redis.BlockingConnectionPool.from_url(
        settings.redis_url, max_connections=settings.db_pool_size, timeout=POOL_TIMEOUT_S,
        retry=Retry(NoBackoff(), 1))  # one retry replaces a connection Redis dropped
    return redis.Redis.from_pool(pool)


def new_state(settings):
    """What every handler shares; nothing connects until pools() opens it."""
    stats = Stats(settings.knobs())
    return State(settings, stats, load_page_template(), Postgres(settings, stats),
                 open_redis(settings))


def dispatch(request, handler):
    """Run the handler; turn what went wrong into a status and a JSON sentence."""
    stats = request.app[STATE].stats
    in_stats = not request.path.startswith("/stats")  # /stats reports; it is not reported
    if in_stats:
        stats.request_started()
    try:
        return handler(request)
    except BadRequest as error:
        return respond(error.status, error_bytes(str(error)), headers=error.headers)
    except PoolBusy:
        return respond(HTTPStatus.SERVICE_UNAVAILABLE, error_bytes(POOL_BUSY))
    except PostgresDown as error:
        log.warning("Postgres: %s", error)
        return respond(HTTPStatus.SERVICE_UNAVAILABLE, error_bytes(POSTGRES_DOWN))
    except REDIS_ERRORS as error:
        log.warning("Redis: %s", error)
        return respond(HTTPStatus.SERVICE_UNAVAILABLE, error_bytes(REDIS_DOWN))
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        return respond(HTTPStatus.INTERNAL_SERVER_ERROR, error_bytes(INTERNAL_ERROR))
    finally:
        if in_stats:
            stats.request_finished()


def index(request):
    """GET /: every item, and this view's number from Redis."""
    state = request.app[STATE]
    rows = state.db.fetch(SELECT_ITEMS)  # waits on Postgres
    counter = state.redis.incr(COUNTER_KEY)  # waits on Redis
    if state.settings.io_delay_ms:
        with state.stats.upstream_wait():
            time.sleep(state.settings.io_delay_ms / 1000)  # waits on a slow upstream
    if state.settings.cpu_ms:
        burn_cpu(state.settings.cpu_ms)  # computes, holding the GIL
    return respond(HTTPStatus.OK, render_page(state.template, rows, counter), HTML)


def create_item(request):
    """POST /items: validate, insert, answer 201 with the stored item."""
    state = request.app[STATE]
    text = parse_new_item(request.read())  # waits on the client
    [(item_id,)] = state.db.fetch(INSERT_ITEM, text)  # waits on Postgres
    return respond(HTTPStatus.CREATED, json_bytes({"id": item_id, "text": text}))


def health(request):
    """GET /health: does each service answer right now?"""
    state = request.app[STATE]
    try:
        state.db.fetch("SELECT 1")  # waits on Postgres
        postgres_ok = True
    except (PoolBusy, PostgresDown):
        postgres_ok = False
    try:
        redis_ok = state.redis.ping()  # waits on Redis
    except REDIS_ERRORS:
        redis_ok = False
    return respond(*health_report(postgres_ok, redis_ok))


def show_stats(request):
    """GET /stats: requests in service now and at most, threads, connections opened."""
    return respond(HTTPStatus.OK, request.app[STATE].stats.report())


def reset_peaks(request):
    """POST /stats/reset-peaks: the peaks count again from now; answers with /stats."""
    request.app[STATE].stats.reset_peaks()
    return respond(HTTPStatus.OK, request.app[STATE].stats.report())


def pools(app):
    """Open the Postgres and Redis pools before the first request, close them at shutdown."""
    state = app[STATE]
    state.db.open()  # waits on Postgres
    state.redis.ping()  # waits on Redis: fail now, not on the first request
    yield
    state.redis.close()
    state.db.close()


def make_app(settings):
    app = Application(middlewares=[dispatch], client_max_size=MAX_BODY_BYTES)
    app[STATE] = new_state(settings)
    app.cleanup_ctx.append(pools)
    app.router.add_route("GET", "/", index)
    app.router.add_route("POST", "/items", create_item)
    app.router.add_route("GET", "/health", health)
    app.router.add_route("GET", "/stats", show_stats)
    app.router.add_route("POST", "/stats/reset-peaks", reset_peaks)
    return app


def main(argv=None):
    parser = make_parser(__doc__.splitlines()[0], default_port=8080,
                         own_flags=("--workers", "--connect-per-request"))
    settings = settings_from(parser.parse_args(argv))
    logging.basicConfig(format=LOG_FORMAT,
                        level=logging.INFO if settings.access_log else logging.WARNING)
    model = f"{settings.workers} worker threads" if settings.workers else "a thread per connection"
    try:
        run_app(make_app(settings), host=settings.host, port=settings.port, backlog=BACKLOG,
                print=lambda message: announce("sync_server", message, model, settings),
                workers=settings.workers, access_log=settings.access_log,
                keepalive_timeout=settings.idle_timeout_s, shutdown_timeout=5)
    except (OSError, PostgresDown, redis.RedisError) as error:
        sys.exit(f"sync_server: cannot start: {error}".strip())
    print("sync_server: stopped", flush=True)


if __name__ == "__main__":
    main()
