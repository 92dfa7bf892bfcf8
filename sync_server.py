"""The todo app on threads: the standard library's http.server, psycopg2 and redis-py.

One thread per connection. A handler that waits on the network, Postgres or Redis blocks
its thread, and the operating system runs another thread meanwhile. Waiting costs a thread.
"""

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
from sync_http import STATE, Application, middleware, refuse_too_large, respond, run_app
from sync_pools import INSERT_ITEM, make_postgres, make_redis, open_redis, redis_is_up

NAME = Path(__file__).stem  # this file's name: in the log, --help and the start-up line
log = logging.getLogger(NAME)


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
    postgres_ok = state.db.is_up()  # waits on Postgres
    redis_ok = redis_is_up(state.redis)  # waits on Redis
    return respond(*health_report(postgres_ok, redis_ok))


def show_stats(request):
    """GET /stats: requests in service now and at most, threads, connections opened."""
    return respond(HTTPStatus.OK, request.app[STATE].stats.report())


def reset_peaks(request):
    """POST /stats/reset-peaks: the peaks count again from now; answers with /stats."""
    request.app[STATE].stats.reset_peaks()
    return respond(HTTPStatus.OK, request.app[STATE].stats.report())


@middleware
def dispatch(request, handler):
    """Run the handler, counted; turn what went wrong into a status and a JSON sentence."""
    try:
        with request.app[STATE].stats.serving(request.path):  # in service, outages logged
            return handler(request)  # waits while the handler waits
    except Exception as error:  # common.refusal: a 400, a 503 or a logged 500
        return respond(*refusal(error, log, request))


def pools(app):
    """Open the Postgres and Redis pools before the first request, close them at shutdown."""
    state = app[STATE]
    state.db.open()  # waits on Postgres
    open_redis(state.redis)  # waits on Redis: fail now, not on the first request
    tune_collector(state.settings.gc)  # start-up done: what it made is settled
    yield
    state.redis.close()  # blocks while it closes each connection
    state.db.close()  # blocks while it closes each connection


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
    model = f"{settings.workers} worker threads" if settings.workers else "a thread per connection"
    try:
        run_app(make_app(settings), host=settings.host, port=settings.port, backlog=BACKLOG,
                print=lambda message: announce(NAME, message, model, settings),
                workers=settings.workers,
                access_log=settings.access_log,
                keepalive_timeout=settings.idle_timeout_s, shutdown_timeout=5)
    except (OSError, PostgresDown, redis.RedisError) as error:
        sys.exit(f"{NAME}: cannot start: {error}".strip())
    print(f"{NAME}: stopped", flush=True)


if __name__ == "__main__":
    main()
