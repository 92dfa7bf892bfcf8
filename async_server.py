"""The todo app on an event loop: aiohttp, asyncpg and redis.asyncio.

One thread runs every connection. A handler that waits on the network, Postgres or Redis
yields to the event loop, which runs another handler meanwhile. Waiting costs a coroutine.
"""

import asyncio
import logging
import sys
import time
from http import HTTPStatus
from pathlib import Path

import redis

from common import (BACKLOG, COUNTER_KEY, HTML, LOG_FORMAT, MAX_BODY_BYTES, SELECT_ITEMS,
                    PostgresDown, State, announce, burn_cpu, health_report, json_bytes,
                    load_page_template, parse_new_item, refusal, render_page)
from config import make_parser, settings_from
from stats import Stats, tune_collector
from async_http import STATE, Application, middleware, refuse_too_large, respond, run_app
from async_pools import INSERT_ITEM, make_postgres, make_redis, open_redis, redis_is_up

NAME = Path(__file__).stem  # this file's name: in the log, --help and the start-up line
log = logging.getLogger(NAME)


async def index(request):
    """GET /: every item, and this view's number from Redis."""
    state = request.app[STATE]
    rows = await state.db.fetch(SELECT_ITEMS)  # yields to the event loop
    counter = await state.redis.incr(COUNTER_KEY)  # yields to the event loop
    if state.settings.io_delay_ms:
        with state.stats.upstream_wait():
            if state.settings.blocking:  # blocks, the mistake: a blocking call in the loop
                time.sleep(state.settings.io_delay_ms / 1000)  # blocks the loop: all wait
            else:
                await asyncio.sleep(state.settings.io_delay_ms / 1000)  # yields to the loop
    if state.settings.cpu_ms:
        burn_cpu(state.settings.cpu_ms)  # computes, and the loop waits for it
    return respond(HTTPStatus.OK, render_page(state.template, rows, counter), HTML)


async def create_item(request):
    """POST /items: validate, insert, answer 201 with the stored item."""
    state = request.app[STATE]
    text = parse_new_item(await request.read())  # yields to the event loop
    [(item_id,)] = await state.db.fetch(INSERT_ITEM, text)  # yields to the event loop
    return respond(HTTPStatus.CREATED, json_bytes({"id": item_id, "text": text}))


async def health(request):
    """GET /health: does each service answer right now?"""
    state = request.app[STATE]
    postgres_ok = await state.db.is_up()  # yields to the event loop
    redis_ok = await redis_is_up(state.redis)  # yields to the event loop
    return respond(*health_report(postgres_ok, redis_ok))


async def show_stats(request):
    """GET /stats: requests in service now and at most, threads, connections opened."""
    return respond(HTTPStatus.OK, request.app[STATE].stats.report())


async def reset_peaks(request):
    """POST /stats/reset-peaks: the peaks count again from now; answers with /stats."""
    request.app[STATE].stats.reset_peaks()
    return respond(HTTPStatus.OK, request.app[STATE].stats.report())


@middleware
async def dispatch(request, handler):
    """Run the handler, counted; turn what went wrong into a status and a JSON sentence."""
    try:
        with request.app[STATE].stats.serving(request.path):  # in service, outages logged
            return await handler(request)  # yields while the handler waits
    except Exception as error:  # common.refusal: a 400, a 503 or a logged 500
        return respond(*refusal(error, log, request))


async def pools(app):
    """Open the Postgres and Redis pools before the first request, close them at shutdown."""
    state = app[STATE]
    await state.db.open()  # yields to the event loop
    await open_redis(state.redis)  # yields to the event loop: fail now, not at a request
    tune_collector(state.settings.gc)  # start-up done: what it made is settled
    yield
    await state.redis.aclose()  # yields while it closes each connection
    await state.db.close()  # yields while it closes each connection


def new_state(settings):
    """What every handler shares; nothing connects until pools() opens it."""
    stats = Stats(settings.knobs(), log)
    return State(settings, stats, load_page_template(), make_postgres(settings, stats),
                 make_redis(settings))


def make_app(settings):
    app = Application(middlewares=[dispatch], client_max_size=MAX_BODY_BYTES)
    app[STATE] = new_state(settings)
    app.cleanup_ctx.append(pools)
    app.router.add_route("GET", "/", index)
    app.router.add_route("POST", "/items", create_item, expect_handler=refuse_too_large)
    app.router.add_route("GET", "/health", health)
    app.router.add_route("GET", "/stats", show_stats)
    app.router.add_route("POST", "/stats/reset-peaks", reset_peaks)
    return app


def main(argv=None):
    parser = make_parser(NAME, __doc__.splitlines()[0])
    settings = settings_from(parser.parse_args(argv))
    logging.basicConfig(format=LOG_FORMAT,
                        level=logging.INFO if settings.access_log else logging.WARNING)
    model = "one event loop"
    try:
        run_app(make_app(settings), host=settings.host, port=settings.port, backlog=BACKLOG,
                print=lambda message: announce(NAME, message, model, settings),
                access_log=settings.access_log,
                keepalive_timeout=settings.idle_timeout_s, shutdown_timeout=5)
    except (OSError, PostgresDown, redis.RedisError) as error:
        sys.exit(f"{NAME}: cannot start: {error}".strip())
    print(f"{NAME}: stopped", flush=True)


if __name__ == "__main__":
    main()
