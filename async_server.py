"""The todo app on an event loop: aiohttp, asyncpg and redis.asyncio.

One thread runs every connection. A handler that waits on the network, Postgres or Redis
yields to the event loop, which runs another handler meanwhile. Waiting costs a coroutine each.
"""

import asyncio
import logging
import sys
import time
from contextlib import asynccontextmanager
from http import HTTPStatus

import asyncpg
import redis
import redis.asyncio
from aiohttp import web
from aiohttp.log import access_logger
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from common import (COUNTER_KEY, HTML, INTERNAL_ERROR, JSON, MAX_BODY_BYTES, NOT_FOUND,
                    POOL_BUSY, POOL_TIMEOUT_S, POSTGRES_DOWN, REDIS_DOWN, ROUTES, SELECT_ITEMS,
                    TOO_LARGE, BadRequest, Settings, Stats, burn_cpu, error_bytes,
                    health_report, json_bytes, load_page_template, make_parser,
                    method_not_allowed, parse_new_item, render_page, settings_from)

INSERT_ITEM = "INSERT INTO item (text) VALUES ($1) RETURNING id"

POSTGRES_ERRORS = (OSError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError,
                   asyncpg.exceptions.OperatorInterventionError)
REDIS_ERRORS = (redis.ConnectionError, redis.TimeoutError)
log = logging.getLogger("async_server")

SETTINGS = web.AppKey("settings", Settings)
STATS = web.AppKey("stats", Stats)
TEMPLATE = web.AppKey("template", object)
DB = web.AppKey("db", object)
REDIS = web.AppKey("redis", redis.asyncio.Redis)


class PoolBusy(Exception):
    """No Postgres connection came free within POOL_TIMEOUT_S."""


class Postgres:
    """asyncpg's pool, fixed at its size: coroutines queue for a connection while the loop
    serves others. A connection that failed is replaced by the pool on its next use."""

    def __init__(self, settings, stats):
        self.url = settings.database_url
        self.size = settings.db_pool_size
        self.stats = stats

    async def open(self):
        self.pool = await asyncpg.create_pool(
            self.url, min_size=self.size, max_size=self.size, timeout=5,
            max_inactive_connection_lifetime=0, init=self.count,
            reset=self.keep_session)  # yields to the event loop

    @asynccontextmanager
    async def connection(self):
        """Lend a connection; a timeout while waiting for one means every one stayed busy."""
        try:
            conn = await self.pool.acquire(timeout=POOL_TIMEOUT_S)  # yields to the event loop
        except asyncio.TimeoutError:
            raise PoolBusy from None
        try:
            yield conn
        finally:
            await self.pool.release(conn)

    async def close(self):
        await self.pool.close()

    async def count(self, conn):
        self.stats.connection_opened()

    async def keep_session(self, conn):
        """asyncpg's default reset costs a round trip per request (RESET ALL, UNLISTEN, ...);
        psycopg2's pool hands connections back as they are, and neither server changes
        session state. An open transaction is still rolled back by asyncpg itself."""


def open_redis(settings):
    """redis.asyncio with a pool that waits for a free connection; its default pool raises."""
    pool = redis.asyncio.BlockingConnectionPool.from_url(
        settings.redis_url, max_connections=settings.db_pool_size, timeout=POOL_TIMEOUT_S,
        retry=Retry(NoBackoff(), 1))  # one retry replaces a connection Redis dropped
    return redis.asyncio.Redis.from_pool(pool)


@web.middleware
async def dispatch(request, handler):
    """Turn what went wrong into a status and a JSON sentence; the router has routed."""
    stats = request.app[STATS]
    counted = request.path != "/stats"  # reading /stats leaves what it reports alone
    if counted:
        stats.request_started()
    try:
        return await handler(request)
    except BadRequest as error:
        return respond(error.status, error_bytes(str(error)))
    except web.HTTPNotFound:
        return respond(HTTPStatus.NOT_FOUND, error_bytes(NOT_FOUND))
    except web.HTTPMethodNotAllowed as error:
        allowed = ", ".join(sorted(error.allowed_methods))
        return respond(HTTPStatus.METHOD_NOT_ALLOWED,
                       error_bytes(method_not_allowed(request.method, allowed)),
                       headers={"Allow": allowed})
    except web.HTTPRequestEntityTooLarge:
        return respond(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, error_bytes(TOO_LARGE))
    except PoolBusy:
        return respond(HTTPStatus.SERVICE_UNAVAILABLE, error_bytes(POOL_BUSY))
    except POSTGRES_ERRORS as error:
        log.warning("Postgres: %s", error)
        return respond(HTTPStatus.SERVICE_UNAVAILABLE, error_bytes(POSTGRES_DOWN))
    except REDIS_ERRORS as error:
        log.warning("Redis: %s", error)
        return respond(HTTPStatus.SERVICE_UNAVAILABLE, error_bytes(REDIS_DOWN))
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        return respond(HTTPStatus.INTERNAL_SERVER_ERROR, error_bytes(INTERNAL_ERROR))
    finally:
        if counted:
            stats.request_finished()


async def index(request):
    """GET /: every item, and this view's number from Redis."""
    app = request.app
    async with app[DB].connection() as conn:
        rows = await conn.fetch(SELECT_ITEMS)  # yields to the event loop
    counter = await app[REDIS].incr(COUNTER_KEY)  # yields to the event loop
    if app[SETTINGS].io_delay_ms:
        with app[STATS].upstream_wait():
            if app[SETTINGS].blocking:
                time.sleep(app[SETTINGS].io_delay_ms / 1000)  # blocks the loop: all wait
            else:
                await asyncio.sleep(app[SETTINGS].io_delay_ms / 1000)  # yields to the loop
    if app[SETTINGS].cpu_ms:
        burn_cpu(app[SETTINGS].cpu_ms)  # computes, and the loop waits for it
    return respond(HTTPStatus.OK, render_page(app[TEMPLATE], rows, counter), HTML)


async def create_item(request):
    """POST /items: validate, insert, answer 201 with the stored item."""
    text = parse_new_item(await request.read())  # yields to the event loop
    async with request.app[DB].connection() as conn:
        item_id = await conn.fetchval(INSERT_ITEM, text)  # yields to the event loop
    return respond(HTTPStatus.CREATED, json_bytes({"id": item_id, "text": text}))


async def health(request):
    """GET /health: does each service answer right now?"""
    try:
        async with request.app[DB].connection() as conn:
            await conn.execute("SELECT 1")  # yields to the event loop
        postgres_ok = True
    except (PoolBusy, *POSTGRES_ERRORS):
        postgres_ok = False
    try:
        redis_ok = await request.app[REDIS].ping()  # yields to the event loop
    except REDIS_ERRORS:
        redis_ok = False
    return respond(*health_report(postgres_ok, redis_ok))


async def show_stats(request):
    """GET /stats: requests in service now and at most, threads, connections opened."""
    return respond(HTTPStatus.OK, request.app[STATS].snapshot())


def respond(status, body, content_type=JSON, headers=None):
    """One whole response; aiohttp adds Content-Length and keeps the connection alive."""
    return web.Response(status=status, body=body,
                        headers={"Content-Type": content_type, **(headers or {})})


async def pools(app):
    """Open the Postgres and Redis pools before the first request, close them at shutdown."""
    app[DB] = Postgres(app[SETTINGS], app[STATS])
    await app[DB].open()
    app[REDIS] = open_redis(app[SETTINGS])
    await app[REDIS].ping()  # fail now, not on the first request
    yield
    await app[REDIS].aclose()
    await app[DB].close()


def make_app(settings):
    app = web.Application(middlewares=[dispatch], client_max_size=MAX_BODY_BYTES)
    app[SETTINGS] = settings
    app[STATS] = Stats(settings.knobs())
    app[TEMPLATE] = load_page_template()
    app.cleanup_ctx.append(pools)
    handlers = {"index": index, "create_item": create_item, "health": health,
                "show_stats": show_stats}
    for path, (method, name) in ROUTES.items():
        app.router.add_route(method, path, handlers[name])
    return app


def main(argv=None):
    parser = make_parser(__doc__.splitlines()[0], default_port=8081)
    parser.add_argument("--blocking", action="store_true",
                        help="wait for --io-delay-ms with time.sleep, which blocks the event "
                        "loop, instead of asyncio.sleep")
    settings = settings_from(parser.parse_args(argv))
    logging.basicConfig(format="%(asctime)s %(name)s %(levelname)s %(message)s",
                        level=logging.INFO if settings.access_log else logging.WARNING)
    # While Postgres is down, asyncpg logs a traceback per reconnect attempt; our own
    # one-line warnings already say Postgres is down.
    logging.getLogger("asyncpg.pool").setLevel(logging.ERROR)
    started = (f"async_server: serving on http://{settings.host}:{settings.port} "
               f"with one event loop ({settings.describe()})")
    try:
        web.run_app(make_app(settings), host=settings.host, port=settings.port,
                    backlog=1024, shutdown_timeout=5, print=lambda _: print(started, flush=True),
                    access_log=access_logger if settings.access_log else None)
    except (OSError, asyncpg.PostgresError, redis.RedisError) as error:
        sys.exit(f"async_server: cannot start: {error}".strip())
    print("async_server: stopped", flush=True)


if __name__ == "__main__":
    main()
