"""The API server: the app of api/app.py on uvicorn, in the same event loop as
ingestion, on a socket bound before anything starts. ``stop`` closes every client
websocket with a close frame, and aborts the ones that stopped reading."""

from __future__ import annotations

import asyncio
import socket
import time

import uvicorn

from api.app import create_app
from api.limits import ConnectionLimits, connection_cap, guarded_protocols
from api.services import Services
from embedded_server import EmbeddedServer, bind_socket, start_serving, stop_serving

# Kernel send buffer of every accepted connection (inherited from the listening
# socket). Left to autotuning, Linux grows it to 4 MB: minutes of frames that a
# client which stopped reading would still be handed, late, before the hub's bounded
# queue ever noticed it was slow. Capped, a stalled client fills it in a few frames,
# then its handler blocks and the hub keeps only its newest frames (and counts the
# rest). 256 KiB is plenty for loopback and for ~10 MB/s at 25 ms round trip.
CLIENT_SEND_BUFFER_BYTES = 256 * 1024


def bind_api_socket(host: str, port: int) -> socket.socket:
    """The API's listening socket, bound up front (a port in use is a clear error
    before anything starts), its clients' send buffer capped."""
    return bind_socket(host, port, send_buffer=CLIENT_SEND_BUFFER_BYTES)


class ApiServer:
    """The API on a pre-bound socket; ``stop`` closes client sockets with a close frame."""

    def __init__(self, services: Services, sock: socket.socket, log_level: str = "warning") -> None:
        self.services = services
        self.sock = sock
        self._port = int(sock.getsockname()[1])
        self.app = create_app(services)
        s = services.settings
        if services.limits is None:
            services.limits = ConnectionLimits(connection_cap(s.max_connections), s.header_timeout_s)
        http_protocol, ws_protocol = guarded_protocols(services.limits)
        # X-Forwarded-For is believed only from the proxies named in the settings:
        # uvicorn's default trusts it from 127.0.0.1, where any local client could
        # then pose as any number of addresses and pass the per-address limit.
        forwarded = s.forwarded_allow_ips.strip()
        config = uvicorn.Config(
            self.app,
            http=http_protocol,
            ws=ws_protocol,
            log_level=log_level,
            access_log=False,
            proxy_headers=bool(forwarded),
            forwarded_allow_ips=forwarded or None,
            timeout_keep_alive=max(1, round(s.keepalive_idle_s)),
            ws_max_size=64 * 1024,
            ws_per_message_deflate=False,
            ws_ping_interval=20.0,
            ws_ping_timeout=20.0,
            timeout_graceful_shutdown=3,
            lifespan="off",
        )
        self.server = EmbeddedServer(config)
        self._task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        return self._port

    async def start(self) -> None:
        self._task = await start_serving(self.server, self.sock, name="api-server")

    async def stop(self, grace_s: float = 1.0) -> None:
        hub = self.services.hub
        hub.closing = True
        for sub in hub.subscribers():
            hub.unsubscribe(sub)  # wakes each sender, which closes with 1001
        await self._wait_handlers(grace_s)
        if hub.active_handlers > 0 or self._stalled_connections():
            # A client that stopped reading cannot be handed a close frame: its
            # handler waits for the socket to drain, and uvicorn's own shutdown would
            # wait for it too (and then leave the socket open). Abort those; their
            # handlers then end at once.
            for transport in self._stalled_connections():
                transport.abort()
            await self._wait_handlers(0.5)
        if self._task is not None:
            await stop_serving(self.server, self._task)
        else:
            self.server.should_exit = True
        hub.closing = False

    async def _wait_handlers(self, seconds: float) -> None:
        hub = self.services.hub
        deadline = time.monotonic() + seconds
        while hub.active_handlers > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    def _stalled_connections(self) -> list[asyncio.WriteTransport]:
        """Transports of this server still holding bytes the client has not taken."""
        out = []
        for conn in list(self.server.server_state.connections):
            transport = getattr(conn, "transport", None)
            if transport is not None and transport.get_write_buffer_size() > 0:
                out.append(transport)
        return out
