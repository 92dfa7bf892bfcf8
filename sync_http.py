"""What aiohttp does for async_server.py, done by hand on http.server for sync_server.py.

Read from the top: a thread per connection (or a fixed number of them, --workers), run_app,
the handler each thread runs for its connection, then the small aiohttp look-alikes the
server is written against (Application, add_route, cleanup_ctx, Request, respond). The HTTP
hygiene that http.server leaves to us comes last. No application logic lives here; the
names follow aiohttp's, so that the two servers read alike.
"""

import contextlib
import errno
import functools
import logging
import queue
import re
import signal
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Callable

from common import (BODY_STOPPED, JSON, NOT_FOUND, TOO_LARGE, BadRequest, error_bytes,
                    method_not_allowed)

STATE = "state"  # request.app[STATE]; aiohttp's is a web.AppKey, a key that knows its type
CHUNKED_BODY = "Send the body with a Content-Length header; this server cannot read chunked ones."
UNCLEAR_LENGTH = "Send one Content-Length, a number of bytes."
log = logging.getLogger("sync_http")
# accept() fails with these while a limit lasts; asyncio waits this long before it tries again
OUT_OF_RESOURCES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
ACCEPT_RETRY_DELAY_S = 1


class Server(HTTPServer):
    """Listens and accepts; serve() answers every request on one connection. In which thread
    is what the two servers below differ in: that is the whole concurrency model."""

    def get_request(self):
        """Accept a connection. Out of descriptors (or memory), say so in one line and stop
        accepting for a second, as asyncio's accept loop does: http.server would ignore the
        error and retry at once, spinning a core while the limit lasts."""
        try:
            return super().get_request()
        except OSError as error:
            if error.errno in OUT_OF_RESOURCES:
                log.warning("cannot accept connections: %s; trying again in %s s", error,
                            ACCEPT_RETRY_DELAY_S)
                time.sleep(ACCEPT_RETRY_DELAY_S)
            raise  # http.server drops this connection attempt and goes on

    def serve(self, conn, address):
        """Every request on one connection, in the calling thread; then close it."""
        try:
            self.finish_request(conn, address)  # runs Handler, below, until the client leaves
        except (ConnectionError, TimeoutError):
            pass  # it hung up or went silent, mid-request or mid-answer: no one to answer
        except Exception:
            self.handle_error(conn, address)
        finally:
            self.shutdown_request(conn)


class ThreadPerConnectionServer(Server):
    """A thread per connection, started as serve_forever() accepts each connection."""

    def process_request(self, conn, address):
        # aiohttp starts a task per connection instead (web_protocol.py, connection_made):
        #     task = loop.create_task(self.start())
        try:
            threading.Thread(target=self.serve, args=(conn, address), daemon=True).start()
        except RuntimeError as error:  # "can't start new thread": the OS's limit on threads
            log.warning("cannot start a thread for a connection: %s; closed it, accepting "
                        "again in %s s", error, ACCEPT_RETRY_DELAY_S)
            self.shutdown_request(conn)
            time.sleep(ACCEPT_RETRY_DELAY_S)  # one line a second while the limit lasts


class WorkerPoolServer(Server):
    """--workers N: N threads, started once, take connections from a queue one at a time,
    like gunicorn's N sync workers. The other connections wait in the queue."""

    def start_workers(self):
        self.connections = queue.SimpleQueue()
        for _ in range(self.workers):
            threading.Thread(target=self.work, daemon=True).start()

    def process_request(self, conn, address):
        self.connections.put((conn, address))

    def work(self):
        while True:
            conn, address = self.connections.get()  # waits for a connection
            self.serve(conn, address)


def run_app(app, *, host, port, backlog, print, workers=0, access_log=False,
            keepalive_timeout=15, shutdown_timeout=5):
    """Serve until SIGINT or SIGTERM, as aiohttp's web.run_app does: enter every cleanup_ctx
    before accepting the first request; on the signal, stop accepting, give the requests in
    flight up to shutdown_timeout seconds to finish, then leave the cleanup_ctx in reverse."""
    server_class = WorkerPoolServer if workers else ThreadPerConnectionServer
    server = server_class((host, port), Handler, bind_and_activate=False)
    server.request_queue_size = backlog
    server.app, server.workers, server.access_log = app, workers, access_log
    server.keepalive_timeout = keepalive_timeout
    server.in_flight, server.stopping = InFlight(), False
    with contextlib.ExitStack() as stack:
        stack.callback(server.server_close)
        server.server_bind()
        server.server_activate()
        for context in app.cleanup_ctx:
            stack.enter_context(contextlib.contextmanager(context)(app))
        if workers:
            server.start_workers()
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)  # also when started with SIGINT ignored
        print(f"Running on http://{host}:{server.server_address[1]}")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        server.stopping = True  # each open connection closes after its request in flight
        server.socket.close()
        server.in_flight.wait_until_none(shutdown_timeout)


def stop(signum, frame):
    raise KeyboardInterrupt  # ends serve_forever; run_app closes what it opened


class Handler(BaseHTTPRequestHandler):
    """One instance per connection, running in that connection's thread: it reads each
    request, runs the application on it and writes the answer, until the connection closes."""

    protocol_version = "HTTP/1.1"  # keep-alive: http.server's HTTP/1.0 default reconnects
    disable_nagle_algorithm = True  # TCP_NODELAY: a response need not wait for an ACK
    wbufsize = 64 * 1024  # headers and body leave in one send, not two

    def setup(self):
        self.timeout = self.server.keepalive_timeout  # a silent client gives its thread back
        super().setup()

    def answer(self):
        """Route, run the application's middleware and handler, send what it returns."""
        with self.server.in_flight:
            self.send(self.server.app.handle(self.as_request()))

    # http.server calls do_<METHOD>; every method goes the same way, as in aiohttp's router.
    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = answer

    def as_request(self):
        return Request(self.server.app, self.command, self.path.partition("?")[0],
                       self.read_body, self.content_length)

    def send(self, response):
        """Status line, headers with Content-Length, body: the connection can stay open."""
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        unread = not self.body_read and (self.content_length or "Transfer-Encoding" in self.headers)
        if unread or self.close_connection or self.server.workers or self.server.stopping:
            self.send_header("Connection", "close")  # also as gunicorn's sync workers do
        elif self.request_version == "HTTP/1.0":  # kept open as it asked: say so (RFC 9112
            self.send_header("Connection", "keep-alive")  # 9.3), or it waits for a close
        self.end_headers()
        if self.command != "HEAD":  # a HEAD response has headers only
            self.wfile.write(response.body)

    # The HTTP hygiene: what http.server leaves unchecked or logs as it should not.

    def parse_request(self):
        """http.server's parse, then what it leaves to us: a body whose length is unclear is
        refused before anything reads it (RFC 9112 section 6.3: two different Content-Lengths
        or one that is not a number are unrecoverable; behind a proxy they smuggle requests),
        and a client waiting for 100 Continue hears the route's expect handler first.
        Returns False once a refusal has been sent, as http.server's own does."""
        self.body_read, self.content_length, self.expects_100 = False, None, False
        if not super().parse_request():  # it calls handle_expect_100(), below
            return False
        lengths = self.headers.get_all("Content-Length", [])
        if len(lengths) > 1 or not all(re.fullmatch(r"[0-9]+", n.strip()) for n in lengths):
            return self.refuse(BadRequest(UNCLEAR_LENGTH), f"Content-Length: {', '.join(lengths)}")
        self.content_length = int(lengths[0]) if lengths else None
        if self.expects_100:
            request = self.as_request()
            try:
                self.server.app.router.expect_handler(request.method, request.path)(request)
            except BadRequest as error:
                return self.refuse(error, str(error))
            super().handle_expect_100()  # 100 Continue: send the body
            self.wfile.flush()  # now: the client waits for it before it sends the body
        return True

    def handle_expect_100(self):
        self.expects_100 = True  # answered in parse_request(), once the headers are checked
        return True

    def refuse(self, error, reason):
        """Answer a request the application never sees, close the connection, log one line."""
        self.log_error("bad request: %s", reason)
        self.close_connection = True
        self.send(respond(error.status, error_bytes(str(error)), headers=error.headers))
        return False

    def read_body(self):
        if "Transfer-Encoding" in self.headers:  # http.server cannot read chunked bodies
            raise BadRequest(CHUNKED_BODY, HTTPStatus.LENGTH_REQUIRED)
        length, limit = self.content_length or 0, self.server.app.client_max_size
        if length > limit:
            if length <= 16 * limit:
                self.rfile.read(length)  # read and drop it, so the client sees our answer
                self.body_read = True
            raise BadRequest(TOO_LARGE, HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
        try:
            body = self.rfile.read(length)  # waits on the client
        except OSError:
            body = b""
        if len(body) < length:  # it hung up or went silent: answer, then close
            raise BadRequest(BODY_STOPPED)
        self.body_read = True
        return body

    def log_message(self, format, *args):
        if self.server.access_log:
            super().log_message(format, *args)

    def log_error(self, format, *args):
        """A request refused before the application saw it, or a connection gone silent: one
        line (http.server's send_error() says why here), at INFO: shown with --access-log."""
        log.info("%s: %s", self.client_address[0], format % args)


class InFlight:
    """How many requests are being handled now; wait_until_none() lets them finish."""

    def __init__(self):
        self.count, self.lock = 0, threading.Lock()

    def __enter__(self):
        with self.lock:
            self.count += 1

    def __exit__(self, *exc_info):
        with self.lock:
            self.count -= 1

    def wait_until_none(self, timeout):
        """Polled, at shutdown only: a Condition would cost every request a notify."""
        deadline = time.monotonic() + timeout
        while self.count and time.monotonic() < deadline:
            time.sleep(0.05)


class Application(dict):
    """Shared state by key, routes, and cleanup_ctx: generators that open what the
    application needs before the first request and close it after the last."""

    def __init__(self, middlewares, client_max_size):
        super().__init__()
        self.middlewares = middlewares  # each called as middleware(request, handler)
        self.client_max_size = client_max_size  # bytes of request body; more gets a 413
        self.router = Router()
        self.cleanup_ctx = []

    def handle(self, request):
        """The route's handler, run inside every middleware, the first outermost."""
        handler = self.router.resolve(request.method, request.path)
        for middleware in reversed(self.middlewares):
            handler = functools.partial(middleware, handler=handler)
        return handler(request)


def middleware(function):
    """aiohttp's web.middleware marks a function as middleware(request, handler); here every
    middleware is one, so it only keeps the two servers' code alike."""
    return function


class Router:
    def __init__(self):
        self.routes = {}  # path -> (the one method it takes, handler, expect handler)

    def add_route(self, method, path, handler, expect_handler=None):
        self.routes[path] = (method, handler, expect_handler or continue_any)

    def resolve(self, method, path):
        """The handler for this request, or one that refuses it as aiohttp's router does."""
        if path not in self.routes:
            return refusal(BadRequest(NOT_FOUND, HTTPStatus.NOT_FOUND))
        allowed, handler, _ = self.routes[path]
        if method != allowed:
            return refusal(BadRequest(method_not_allowed(method, allowed),
                                      HTTPStatus.METHOD_NOT_ALLOWED, {"Allow": allowed}))
        return handler

    def expect_handler(self, method, path):
        """What decides whether a client that sent Expect: 100-continue may send its body."""
        route = self.routes.get(path)
        return route[2] if route and route[0] == method else continue_any


def refusal(error):
    def refuse(request):
        raise error
    return refuse


def continue_any(request):
    """The default expect handler, as aiohttp's: any body may come."""


def refuse_too_large(request):
    """An expect handler: a body larger than client_max_size is refused with 413 before the
    client sends it, rather than read and refused after."""
    if (request.content_length or 0) > request.app.client_max_size:
        raise BadRequest(TOO_LARGE, HTTPStatus.REQUEST_ENTITY_TOO_LARGE)


@dataclass
class Request:
    """What a handler reads of a request, named as on aiohttp's web.Request."""
    app: Application
    method: str
    path: str
    read: Callable[[], bytes]  # the body; waits on the client
    content_length: int | None = None  # None if the request has no Content-Length header


@dataclass
class Response:
    status: int
    body: bytes
    headers: dict


def respond(status, body, content_type=JSON, headers=None):
    """One whole response; the handler adds Content-Length and keeps the connection."""
    return Response(status, body, {"Content-Type": content_type, **(headers or {})})
