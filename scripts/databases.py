"""Throwaway Postgres and Redis in a temporary folder, on free loopback ports.

Standard library only, so the shell scripts can run it before the virtual environment exists:

    python3 scripts/databases.py up STATE_DIR     # prints DATABASE_URL=... and REDIS_URL=...
    python3 scripts/databases.py down STATE_DIR
    python3 scripts/databases.py postgres-bin     # the folder initdb is taken from

The tests import it to start instances of their own that they can stop and restart.
"""

import argparse
import functools
import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

PG_MAX_CONNECTIONS = 300  # both servers' pools, the tests and a learner's extra server fit


class DatabaseError(Exception):
    """A service could not be started; the message says what to do."""


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# Where ordinary installers put the Postgres server programs, after PATH: Debian and Ubuntu
# keep one folder per major version; Homebrew's postgresql@N formulae are keg-only (off PATH).
DEBIAN_GLOB = "/usr/lib/postgresql/*/bin"  # PG_DEBIAN_GLOB overrides it, for tests only
BREW_FORMULAE = [f"postgresql@{major}" for major in range(18, 12, -1)] + ["postgresql"]
INSTALL_HINT = "apt-get install postgresql, or brew install postgresql@18"


def version_key(folder):
    """(16,) for .../16/bin and (9, 6) for .../9.6/bin: 16 sorts after 9.6, not before."""
    return tuple(int(part) for part in Path(folder).parent.name.split(".") if part.isdigit())


def brew_prefix(formula):
    """`brew --prefix FORMULA`, or None where there is no brew (it prints a path even for a
    formula that is not installed, so callers check that the programs are there)."""
    brew = shutil.which("brew")
    if not brew:
        return None
    result = subprocess.run([brew, "--prefix", formula], capture_output=True, text=True)
    if result.returncode != 0:
        return None
    return result.stdout.strip() or None


def postgres_bin_candidates():
    """Folders that may hold initdb, pg_ctl and createdb, in the order they are preferred."""
    on_path = shutil.which("initdb")
    if on_path:  # a link such as /usr/local/bin/initdb: its siblings live where it points
        yield str(Path(on_path).resolve().parent)
    yield from sorted(glob.glob(os.environ.get("PG_DEBIAN_GLOB", DEBIAN_GLOB)),
                      key=version_key, reverse=True)
    for formula in BREW_FORMULAE:
        prefix = brew_prefix(formula)
        if prefix:
            yield str(Path(prefix) / "bin")


@functools.lru_cache(maxsize=None)  # asked once per run: brew can take a moment to answer
def postgres_bin_dir():
    """The first folder with the Postgres server programs; one version's, never a mix."""
    for folder in postgres_bin_candidates():
        if all(os.access(Path(folder) / name, os.X_OK) for name in ("initdb", "pg_ctl")):
            return folder
    raise DatabaseError(f"initdb not found: install the PostgreSQL server ({INSTALL_HINT})")


def postgres_bin(name):
    """A Postgres program from the folder postgres_bin_dir() chose."""
    return str(Path(postgres_bin_dir()) / name)


def unprivileged_user():
    """initdb refuses to run as root; as root, run Postgres as 'postgres' or 'nobody'."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise DatabaseError("running as root, and no 'postgres' or 'nobody' user to run Postgres as")


class Postgres:
    def __init__(self, state_dir, port=None):
        self.dir = Path(state_dir) / "postgres"
        self.port = port or free_port()
        self.url = f"postgresql://todo@127.0.0.1:{self.port}/todo"
        self.user = unprivileged_user()

    def run(self, *args, check=True):
        run_as = {"user": self.user.pw_uid, "group": self.user.pw_gid} if self.user else {}
        result = subprocess.run(args, capture_output=True, text=True, **run_as)
        if check and result.returncode:
            raise DatabaseError(f"{' '.join(args)} failed:\n{result.stdout}{result.stderr}")
        return result

    def create(self):
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.user:
            for path in (self.dir, self.dir.parent):
                os.chown(path, self.user.pw_uid, self.user.pw_gid)
        self.run(postgres_bin("initdb"), "-D", str(self.dir / "data"), "-U", "todo",
                 "--auth=trust", "--encoding=UTF8", "--no-locale")

    def start(self):
        options = (f"-c port={self.port} -c listen_addresses=127.0.0.1 "
                   f"-c unix_socket_directories='{self.dir}' "
                   f"-c max_connections={PG_MAX_CONNECTIONS}")
        self.run(postgres_bin("pg_ctl"), "start", "-w", "-t", "60", "-D",
                 str(self.dir / "data"), "-l", str(self.dir / "log"), "-o", options)

    def create_database(self):
        self.run(postgres_bin("createdb"), "-h", "127.0.0.1", "-p", str(self.port),
                 "-U", "todo", "todo")

    def stop(self):
        if (self.dir / "data" / "postmaster.pid").exists():
            self.run(postgres_bin("pg_ctl"), "stop", "-w", "-m", "fast", "-D",
                     str(self.dir / "data"), check=False)


class Redis:
    def __init__(self, state_dir, port=None):
        self.dir = Path(state_dir) / "redis"
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.pidfile = self.dir / "redis.pid"

    def start(self):
        server = shutil.which("redis-server")
        if not server:
            raise DatabaseError("redis-server not found: install it "
                               "(apt-get install redis-server, or brew install redis)")
        self.dir.mkdir(parents=True, exist_ok=True)
        subprocess.run([server, "--port", str(self.port), "--bind", "127.0.0.1",
                        "--save", "", "--appendonly", "no", "--daemonize", "yes",
                        "--pidfile", str(self.pidfile), "--dir", str(self.dir),
                        "--logfile", str(self.dir / "log")], check=True)
        wait_for(lambda: redis_answers(self.port), f"Redis on port {self.port}")

    def stop(self):
        try:
            pid = int(self.pidfile.read_text())
            os.kill(pid, 15)
        except (OSError, ValueError):
            return
        wait_for(lambda: not process_alive(pid), f"Redis (pid {pid}) to stop")


def redis_answers(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def wait_for(condition, what, seconds=30):
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise DatabaseError(f"gave up waiting for {what} after {seconds} s")
        time.sleep(0.05)


def up(state_dir, need_postgres=True, need_redis=True):
    """Start what is needed; return the environment variables that point at it."""
    env = {}
    if need_postgres:
        postgres = Postgres(state_dir)
        postgres.create()
        postgres.start()
        postgres.create_database()
        env["DATABASE_URL"] = postgres.url
    if need_redis:
        redis = Redis(state_dir)
        redis.start()
        env["REDIS_URL"] = redis.url
    return env


def down(state_dir):
    Redis(state_dir).stop()
    Postgres(state_dir, port=1).stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["up", "down", "postgres-bin"])
    parser.add_argument("state_dir", nargs="?",
                        help="a folder of its own; it holds data, logs and pids (up, down)")
    parser.add_argument("--no-postgres", action="store_true", help="DATABASE_URL is given")
    parser.add_argument("--no-redis", action="store_true", help="REDIS_URL is given")
    args = parser.parse_args()
    if args.action != "postgres-bin" and not args.state_dir:
        parser.error(f"{args.action} needs a STATE_DIR")
    try:
        if args.action == "postgres-bin":
            print(postgres_bin_dir())
        elif args.action == "up":
            env = up(args.state_dir, not args.no_postgres, not args.no_redis)
            for name, value in env.items():
                print(f"{name}={value}")
        else:
            down(args.state_dir)
    except DatabaseError as error:
        sys.exit(f"services: {error}")


if __name__ == "__main__":
    main()
