"""The little async_server.py adds to aiohttp, mirrored by sync_http.py for sync_server.py.

aiohttp routes, reads bodies, writes Content-Length, keeps connections alive and starts a
task per connection by itself. What is left is making its refusals speak like the
application's own errors. This module offers the names sync_http.py offers (STATE,
Application, middleware, run_app, ...), so that the two servers differ only where they wait.
"""

from http import HTTPStatus

from aiohttp import web
from aiohttp.log import access_logger
from aiohttp.web import middleware  # noqa: F401 (for async_server.py, as sync_http's)

from common import JSON, NOT_FOUND, TOO_LARGE, BadRequest, State, method_not_allowed

STATE = web.AppKey("state", State)  # request.app[STATE]


def Application(middlewares, client_max_size):
    """aiohttp's web.Application, with refusals() inside the application's own middlewares."""
    return web.Application(middlewares=[*middlewares, refusals], client_max_size=client_max_size)


def run_app(app, *, access_log=False, **kwargs):
    """aiohttp's web.run_app, with access_log a flag as in sync_http.run_app."""
    web.run_app(app, access_log=access_logger if access_log else None, **kwargs)


@web.middleware
async def refusals(request, handler):
    """aiohttp's router and body reader refuse with exceptions of their own: 404, 405, 413.
    Raise them as the BadRequest that sync_http.py raises, and dispatch() answers both."""
    try:
        return await handler(request)
    except web.HTTPNotFound:
        raise BadRequest(NOT_FOUND, HTTPStatus.NOT_FOUND) from None
    except web.HTTPMethodNotAllowed as error:
        allowed = ", ".join(sorted(error.allowed_methods))
        raise BadRequest(method_not_allowed(request.method, allowed),
                         HTTPStatus.METHOD_NOT_ALLOWED, {"Allow": allowed}) from None
    except web.HTTPRequestEntityTooLarge:
        raise BadRequest(TOO_LARGE, HTTPStatus.REQUEST_ENTITY_TOO_LARGE) from None


def respond(status, body, content_type=JSON, headers=None):
    """One whole response; aiohttp adds Content-Length and keeps the connection alive."""
    return web.Response(status=status, body=body,
                        headers={"Content-Type": content_type, **(headers or {})})
