"""The little async_server.py adds to aiohttp, mirrored by sync_http.py for sync_server.py.

aiohttp routes, reads bodies, writes Content-Length, keeps connections alive and starts a
task per connection by itself. What is left: its refusals speak like the application's own
errors, a client that announces too large a body is refused before it sends it, a request
its parser refuses is logged in one line, not a traceback, and neither is a client that
hangs up mid-body. This module offers the names sync_http.py offers (STATE, Application,
middleware, run_app, ...), so that the two servers differ only where they wait.
"""

import logging
from http import HTTPStatus

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.log import access_logger, server_logger
from aiohttp.web import middleware  # noqa: F401 (for async_server.py, as sync_http's)
from aiohttp.web_urldispatcher import _default_expect_handler

from common import (BODY_STOPPED, JSON, NOT_FOUND, TOO_LARGE, BadRequest, State, error_bytes,
                    method_not_allowed)

STATE = web.AppKey("state", State)  # request.app[STATE]
log = logging.getLogger("async_http")


def Application(middlewares, client_max_size):
    """aiohttp's web.Application, with refusals() inside the application's own middlewares."""
    return web.Application(middlewares=[*middlewares, refusals], client_max_size=client_max_size)


def run_app(app, *, access_log=False, **kwargs):
    """aiohttp's web.run_app, with access_log a flag as in sync_http.run_app, and the parser's
    refusals logged in one line each."""
    server_logger.addFilter(one_line_per_bad_request)
    logging.getLogger("asyncio").addFilter(OneLineWhenOutOfDescriptors())
    web.run_app(app, access_log=access_logger if access_log else None, **kwargs)


@web.middleware
async def refusals(request, handler):
    """aiohttp's router and body reader refuse with exceptions of their own: 404, 405, 413,
    and ConnectionResetError for a body its client hung up in the middle of. Raise them as
    the BadRequest that sync_http.py raises, and dispatch() answers both."""
    try:
        return await handler(request)  # yields while the handler waits
    except web.HTTPNotFound:
        raise BadRequest(NOT_FOUND, HTTPStatus.NOT_FOUND) from None
    except web.HTTPMethodNotAllowed as error:
        allowed = ", ".join(sorted(error.allowed_methods))
        raise BadRequest(method_not_allowed(request.method, allowed),
                         HTTPStatus.METHOD_NOT_ALLOWED, {"Allow": allowed}) from None
    except web.HTTPRequestEntityTooLarge:
        raise BadRequest(TOO_LARGE, HTTPStatus.REQUEST_ENTITY_TOO_LARGE) from None
    except ConnectionResetError:  # from request.read(): to a client gone, not our error
        raise BadRequest(BODY_STOPPED) from None


async def refuse_too_large(request):
    """An expect handler: a body larger than client_max_size is refused with 413 before the
    client sends it. aiohttp's default answers 100 Continue to any size, then reads the whole
    upload only to refuse it."""
    if (request.content_length or 0) > request.client_max_size:
        response = respond(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, error_bytes(TOO_LARGE))
        response.force_close()  # the body was never sent: nothing more to read on it
        return response
    return await _default_expect_handler(request)  # 100 Continue; yields to the event loop


def one_line_per_bad_request(record):
    """A logging filter for aiohttp's server log: a request its parser refused (400: two
    Content-Lengths, a negative one, Content-Length with Transfer-Encoding...) is logged with
    a traceback at ERROR, so any client could fill the log. Say it in one line at INFO instead
    (shown with --access-log), as sync_http.py does."""
    error = record.exc_info[1] if record.exc_info else None
    if not isinstance(error, HttpProcessingError):
        return True
    client = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
    log.info("%s: bad request: %s", client, error.message.splitlines()[0].rstrip(":"))
    return False


RETRY_AFTER_CLOSE = "Exception in callback BaseSelectorEventLoop._start_serving"


class OneLineWhenOutOfDescriptors:
    """A logging filter for asyncio's log. Out of descriptors, asyncio's accept loop logs a
    traceback, stops accepting for a second and tries again; up to Python 3.13 it also goes
    on trying once for every place in the listen queue (CPython gh-151615), a traceback and a
    retry each: thousands of lines a second. Say it in one line a second at most, with how
    many times it happened, as sync_http.py does."""

    def __init__(self):
        self.last_line, self.unsaid = 0.0, 0

    def filter(self, record):
        message = record.getMessage()
        if message.startswith(RETRY_AFTER_CLOSE) and record.exc_info and isinstance(
                record.exc_info[1], ValueError):
            return False  # those retries, still due when the server closed its socket
        if not message.startswith("socket.accept() out of system resource"):
            return True
        self.unsaid += 1
        if record.created - self.last_line >= 1:
            error = record.exc_info[1] if record.exc_info else "?"
            log.warning("cannot accept connections: %s; trying again in 1 s (%d times since "
                        "the last line)", error, self.unsaid)
            self.last_line, self.unsaid = record.created, 0
        return False


def respond(status, body, content_type=JSON, headers=None):
    """One whole response; aiohttp adds Content-Length and keeps the connection alive."""
    return web.Response(status=status, body=body,
                        headers={"Content-Type": content_type, **(headers or {})})
