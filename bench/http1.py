"""HTTP/1.1 over asyncio streams for bench/idle.py and openloop.py: read a response, keep
connections alive without ever waiting for one. Standard library only (Python 3.10+)."""

import asyncio
import errno

ERROR_KINDS = ("connect", "client_fd_limit", "write", "read", "protocol")
OUT_OF_FDS = (errno.EMFILE, errno.ENFILE)


class Failed(Exception):
    """A request that got no answer; args[0] says why, one of ERROR_KINDS."""


async def read_response(reader):
    """Read one whole response, framed by its Content-Length (both servers send one), and
    return (status, kept): kept is False if the server closes the connection after it.
    Raises ValueError for a response this cannot frame."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    lengths = [int(line.split(b":")[1]) for line in lines
               if line.lower().startswith(b"content-length:")]
    if not lengths:
        raise ValueError("response without Content-Length")
    await reader.readexactly(lengths[0])
    return int(lines[0].split()[1]), b"connection: close" not in head.lower()


class Connections:
    """GET `path` (or POST `body` to it, as JSON) over kept-alive connections from `source`
    (a 127.x.y.z, or None for the OS's choice); `opened` counts the new ones."""

    def __init__(self, host, port, path, body=None, source=None):
        # "localhost" is resolved here, once: asyncio would ask a thread for every connection
        self.address = ("127.0.0.1" if host == "localhost" else host, port)
        self.local_addr = (source, 0) if source else None
        head = f"{'GET' if body is None else 'POST'} {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        self.request = (head + "\r\n").encode() + (body or b"")
        self.idle = []  # a stack: the most recently used goes first, the least likely to
        self.opened = 0  # have been closed by the server's idle timeout meanwhile

    async def take(self):
        """An idle connection, or else a new one at once: waiting for one to free up would
        make an open-loop client a closed loop again."""
        while self.idle:
            reader, writer = self.idle.pop()
            if not reader.at_eof() and not writer.is_closing():  # not closed by the server
                return reader, writer
            writer.close()
        try:
            opened = await asyncio.open_connection(*self.address, local_addr=self.local_addr)
        except OSError as error:
            raise Failed("client_fd_limit" if error.errno in OUT_OF_FDS else "connect")
        self.opened += 1
        return opened

    async def get(self, progress):
        """The request's answer's status, or Failed. The connection is kept if the server keeps
        it, closed on an error or when cancelled (a timeout). progress["connected"] is set once
        a connection is had: a request cancelled before that timed out connecting."""
        reader = writer = None
        kept, stage = False, "write"
        try:
            reader, writer = await self.take()
            progress["connected"] = True
            writer.write(self.request)
            await writer.drain()
            stage = "read"
            status, kept = await read_response(reader)
            return status
        except (OSError, asyncio.IncompleteReadError):
            raise Failed(stage) from None
        except (ValueError, IndexError, asyncio.LimitOverrunError):
            raise Failed("protocol") from None
        finally:
            if kept:
                self.idle.append((reader, writer))
            elif writer:
                writer.close()

    def close_idle(self):
        while self.idle:
            self.idle.pop()[1].close()
