"""./run_bench.sh --serve: both servers running on what the benchmark would use, until Ctrl-C,
for the exercises' hands-on parts. run_bench.sh has started Postgres and Redis and exported
their URLs. A port already taken is an error naming its holder, never a silent move: the
exercises' wrk commands name these ports.
"""

import os
import signal
import socket
import tempfile

import psutil

from scripts.reset_db import reset
from bench.launch import KINDS, Server, ServerError
from bench.placement import listeners


class PortTaken(ServerError):
    """A port --serve was to use is held by another process."""


def check_free(kind, port):
    """Raise PortTaken, naming the holder and the way out, if `port` cannot be bound."""
    try:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))
    except OSError:
        raise PortTaken(f"port {port}, for {kind}_server.py, is taken by {holder_of(port)}. "
                        "Stop it, or choose other ports: ./run_bench.sh --serve --serve-ports "
                        "8090,8091 (and use those in the exercises' commands)") from None


def holder_of(port):
    """Who listens on `port`, as far as this user may see."""
    for pid in listeners(port):
        try:
            process = psutil.Process(pid)
            return f"process {pid} ({' '.join(process.cmdline())[:120] or process.name()})"
        except psutil.Error:
            return f"process {pid}"
    return "a process this user cannot see (another user's?)"


def stop_on(signum, _frame):
    """Raise Stopped, once: a second signal (run_bench.sh forwards it) must not interrupt the
    stopping. It goes to a handler that does nothing, not to SIG_IGN: a signal pending when its
    handler became SIG_IGN made Python print "OSError: Signal 15 ignored due to race condition"."""
    signal.signal(signal.SIGINT, already_stopping)
    signal.signal(signal.SIGTERM, already_stopping)
    raise Stopped(signum)


def already_stopping(_signum, _frame):
    """A second Ctrl-C or SIGTERM while the servers stop: they are stopping already."""


class Stopped(KeyboardInterrupt):
    """A signal ended the serving (args[0]: its number); no `except Exception` on the way
    catches it."""


def serve(say, ports):
    """Start both servers on `ports` ({"sync": 8080, "async": 8081}) on fresh data, print how to
    reach them, wait for Ctrl-C or SIGTERM. Returns 128 + the signal's number, as a shell
    reports it even where it could not trap it (a background job's SIGINT comes in ignored);
    1 if a port is taken or a server would not start."""
    env = {name: os.environ[name] for name in ("DATABASE_URL", "REDIS_URL")}
    signal.signal(signal.SIGINT, stop_on)  # SIGINT may come in ignored: a background job
    signal.signal(signal.SIGTERM, stop_on)
    log_dir = tempfile.mkdtemp(prefix="todo-serve.")
    servers = []
    try:
        for kind in KINDS:
            check_free(kind, ports[kind])
        reset(env["DATABASE_URL"], env["REDIS_URL"])  # the item table, 20 rows, counter 0
        for kind in KINDS:
            servers.append(Server(kind, env=env, log_dir=log_dir, port=ports[kind]).start())
        for server in servers:
            print(f"{server.kind + '_server.py':<16} http://127.0.0.1:{server.port}/   "
                  f"(log: {server.log_path})")
        print("\nTo start another server by hand, in another terminal, from this folder:\n"
              f"    export DATABASE_URL={env['DATABASE_URL']} REDIS_URL={env['REDIS_URL']}\n"
              f"    .venv/bin/python async_server.py --port {max(ports.values()) + 1}\n"
              "Press Ctrl-C here to stop both servers, Postgres and Redis.", flush=True)
        while True:
            signal.pause()  # until a signal's handler raises
    except Stopped as stop:
        say("stopping the servers")
        return 128 + stop.args[0]
    except ServerError as error:
        say(str(error))
        return 1
    finally:
        for server in servers:
            server.stop()
