"""uvicorn embedded in a host program's event loop, on a socket bound up front.

The API (``api/server.py``) and the simulated exchange's REST side
(``exchange_sim/exchange.py``) both serve this way: the socket is bound before
anything starts, so a port in use is a clear error at once; the server runs as a
task of the caller's loop; signals stay the host program's business.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator

import uvicorn


class EmbeddedServer(uvicorn.Server):
    """uvicorn without its signal handlers: the host program owns SIGINT/SIGTERM
    (uvicorn would swallow them, then raise them again on exit)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def url_host(host: str) -> str:
    """``host`` as it goes in a URL: an IPv6 address in brackets."""
    return f"[{host}]" if ":" in host else host


def bind_socket(host: str, port: int, send_buffer: int | None = None) -> socket.socket:
    """A listening, non-blocking TCP socket on ``host:port`` (0 picks a free port).
    ``send_buffer`` fixes the kernel send buffer of every accepted connection
    (inherited from this socket); None leaves it to the kernel's autotuning."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if send_buffer is not None and send_buffer > 0:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(2048)
    sock.setblocking(False)
    return sock


async def start_serving(server: uvicorn.Server, sock: socket.socket, name: str) -> asyncio.Task[None]:
    """Run ``server`` on ``sock`` as a task of the running loop; return once it
    accepts connections (or raise what stopped it from starting)."""
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]), name=name)
    while not server.started:
        if task.done():
            task.result()  # raises what stopped it
            raise RuntimeError(f"{name}: the server stopped before it started")
        await asyncio.sleep(0.01)
    return task


async def stop_serving(server: uvicorn.Server, task: asyncio.Task[None]) -> None:
    """Ask ``server`` to exit and wait until it has."""
    server.should_exit = True
    with contextlib.suppress(asyncio.CancelledError):
        await task
