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
from urllib.parse import unquote, urlsplit

from common import (BODY_STOPPED, JSON, NOT_FOUND, TOO_LARGE, BadRequest, error_bytes,
                    method_not_allowed)

STATE = "state"  # request.app[STATE]; aiohttp's is a web.AppKey, a key that knows its type
CHUNKED_BODY = "Send the body with a Content-Length header; this server cannot read chunked ones."
UNCLEAR_LENGTH = "Send one Content-Length, a number of bytes."
NOT_HTTP = "The request line is not one this server can read."
# The methods aiohttp's parser (llhttp) knows. It refuses any other with a 400, a lower-case
# one too: RFC 9110 section 9.1 makes methods case-sensitive, so "get" is unknown. RFC 9110
# would answer an unknown method 501, but the client's mistake is no failure of the server's.
METHODS = frozenset("ACL BIND CHECKOUT CONNECT COPY DELETE GET HEAD LINK LOCK M-SEARCH MERGE "
                    "MKACTIVITY MKCALENDAR MKCOL MOVE NOTIFY OPTIONS PATCH POST PROPFIND "
                    "PROPPATCH PURGE PUT QUERY REBIND REPORT SEARCH SOURCE SUBSCRIBE TRACE "
                    "UNBIND UNLINK UNLOCK UNSUBSCRIBE".split())
# Headers that hold one value (RFC 9110 section 5.3): aiohttp's parser refuses a request that
# sends one twice with a 400, as RFC 9112 section 3.2 requires of two Hosts
SINGLETONS = ("Content-Location", "Content-Range", "Content-Type", "ETag", "Host",
              "Max-Forwards", "Server", "Transfer-Encoding", "User-Agent")  # Content-Length: below
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
    # what send() reads, set by parse_request() for each request; these until it has
    body_read, content_length, headers = False, None, {}

    def setup(self):
        self.timeout = self.server.keepalive_timeout  # a silent client gives its thread back
        super().setup()

    def answer(self):
        """Route, run the application's middleware and handler, send what it returns."""
        with self.server.in_flight:
            self.send(self.server.app.handle(self.as_request()))

    def __getattr__(self, name):
        """http.server calls do_<METHOD>; every method goes the same way, as in aiohttp's
        router (parse_request() has refused those aiohttp's parser refuses)."""
        if name.startswith("do_"):
            return self.answer
        raise AttributeError(name)

    def as_request(self):
        return Request(self.server.app, self.command, self.route_path, self.read_body,
                       self.content_length)

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
        target = self.requestline.split()[1]  # self.path, but as sent: http.server turns
        self.route_path = route_path(self.command, target)  # "//health" into "/health"
        if self.command not in METHODS or self.route_path is None:
            return self.refuse(BadRequest(NOT_HTTP), f"request line {self.requestline!r}")
        lengths = self.headers.get_all("Content-Length", [])
        if len(lengths) > 1 or not all(re.fullmatch(r"[0-9]+", n.strip()) for n in lengths):
            return self.refuse(BadRequest(UNCLEAR_LENGTH), f"Content-Length: {', '.join(lengths)}")
        self.content_length = int(lengths[0]) if lengths else None
        for name in SINGLETONS:
            if len(self.headers.get_all(name, [])) > 1:
                return self.refuse(BadRequest(f"Send one {name} header."), f"two {name}")
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

    def send_error(self, code, message=None, explain=None):
        """http.server's own refusals (a request line too long, a header it cannot read...)
        in the JSON every other answer has, not its HTML page."""
        error = BadRequest(f"{message or HTTPStatus(code).phrase}.", code)
        self.refuse(error, f"{code} {message}")

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
        self.routes = {}  # path -> {method: (handler, expect handler)}

    def add_route(self, method, path, handler, expect_handler=None):
        self.routes.setdefault(path, {})[method] = (handler, expect_handler or continue_any)

    def resolve(self, method, path):
        """The handler for this request, or one that refuses it as aiohttp's router does."""
        if path not in self.routes:
            return refusal(BadRequest(NOT_FOUND, HTTPStatus.NOT_FOUND))
        if method not in self.routes[path]:
            allowed = ", ".join(sorted(self.routes[path]))
            return refusal(BadRequest(method_not_allowed(method, allowed),
                                      HTTPStatus.METHOD_NOT_ALLOWED, {"Allow": allowed}))
        return self.routes[path][method][0]

    def expect_handler(self, method, path):
        """What decides whether a client that sent Expect: 100-continue may send its body."""
        return self.routes.get(path, {}).get(method, (None, continue_any))[1]


def route_path(method, target):
    """The path aiohttp's router matches for a request-target (RFC 9112 section 3.2), or None
    where its parser refuses the target with a 400. Printable ASCII only. Origin-form
    "/items?x" up to the "?" (or a "#" if none); absolute-form "http://host/items", which a
    server MUST accept, by its path; authority-form (CONNECT's) and "*" (OPTIONS') by no path
    of ours. Each segment is percent-decoded, as yarl does for aiohttp: "/%68ealth" is
    "/health", but "%2F" stays encoded and never splits a segment. Dot segments stay."""
    if not re.fullmatch(r"[!-~]+", target):
        return None
    if method == "CONNECT" or (method, target) == ("OPTIONS", "*"):
        path = ""
    elif target.startswith("/"):
        path = target.partition("?" if "?" in target else "#")[0]
    elif re.match(r"[A-Za-z]+://", target):
        try:
            url = urlsplit(target)
            url.port  # raises ValueError for a port that is no number from 0 to 65535
        except ValueError:
            return None
        if not url.hostname or not re.fullmatch(r"(\[[^]]*\]|[^[\]]+)(:[0-9]*)?",
                                                url.netloc.rpartition("@")[2]):
            return None  # no host, or more after an IPv6 one than a port
        path = url.path
    else:
        return None
    return "/".join(unquote(segment).replace("/", "%2F") for segment in path.split("/"))


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
