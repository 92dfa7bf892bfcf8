"""The little async_server.py adds to aiohttp, mirrored by sync_http.py for sync_server.py.

aiohttp routes, reads bodies, writes Content-Length and keeps connections alive by itself.
What is left is making its refusals speak like the application's own errors.
"""

from http import HTTPStatus

from aiohttp import web

from common import JSON, NOT_FOUND, TOO_LARGE, BadRequest, method_not_allowed


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
