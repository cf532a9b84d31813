"""The connection of a node to the bus: NATS with JetStream.

The first connection either succeeds within ``bus_connect_timeout_s`` or is a
:class:`bus.errors.BusUnavailable` with the reason (main.py: one line, exit code
2). After that the client reconnects by itself, for ever, every half second: a
restarted NATS server costs a gap, never a process restart. On each reconnection
the streams and the lease bucket are declared again (the server may have come back
without its store); subscriptions are renewed by the client.

Publishing never waits for a disconnected server: a frame built while the bus is
down is not sent (and counted), so the gap is seen as a gap and no stale frames
arrive late.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from bus.errors import BusUnavailable
from bus.subjects import LEASE_BUCKET, RETENTION_S, STREAMS

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.js.client import JetStreamContext
    from nats.js.kv import KeyValue

log = logging.getLogger("bus")

SCHEMES = ("nats", "tls")
RECONNECT_WAIT_S = 0.5
PING_INTERVAL_S = 5  # a silent server (a cut network, not a closed socket) is noticed within ~15 s


def parse_bus_url(text: str) -> list[str]:
    """``--bus`` as a list of server URLs (several separated by commas, for a NATS
    cluster); BusUnavailable saying what is wrong when one is not nats://HOST:PORT."""
    servers = [part.strip() for part in text.split(",") if part.strip()]
    if not servers:
        raise BusUnavailable("--bus: give the NATS server as nats://HOST:PORT")
    for url in servers:
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise BusUnavailable(f"--bus: {url!r} is not a URL ({exc})") from None
        if parts.scheme not in SCHEMES or not parts.hostname:
            raise BusUnavailable(f"--bus must be nats://HOST:PORT (several separated by commas), got {url!r}")
        if port is None:
            raise BusUnavailable(f"--bus: {url!r} has no port (the NATS default is 4222)")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise BusUnavailable(f"--bus: {url!r} has a path or query; give nats://HOST:PORT")
    return servers


class BusConnection:
    """One NATS connection of a node, with JetStream, its streams and the lease bucket."""

    def __init__(self, url: str, name: str, connect_timeout_s: float = 5.0, lease_ttl_s: float = 5.0,
                 replicas: int = 1, leases: bool = True) -> None:
        self.url = url
        self.servers = parse_bus_url(url)
        self.name = name
        self.connect_timeout_s = connect_timeout_s
        self.lease_ttl_s = lease_ttl_s
        self.replicas = max(1, replicas)
        self.with_leases = leases  # API nodes own nothing: they neither declare nor read the bucket
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._leases: KeyValue | None = None
        self.disconnects = 0
        self.reconnects = 0
        self.down_since: float | None = None  # monotonic time of the last disconnection, while down
        self.last_error: str | None = None
        self.on_reconnect: list[Callable[[], Awaitable[None]]] = []  # run (as a task) after each reconnection
        self._after_reconnect: asyncio.Task[None] | None = None
        self._closing = False

    # --- the connection --------------------------------------------------------------
    async def connect(self) -> None:
        """Connect, check JetStream, declare the streams and the lease bucket; or
        raise BusUnavailable with the reason."""
        import nats  # only the bus roles need the client
        from nats.errors import NoServersError

        async def on_error(exc: Exception) -> None:
            self.last_error = _describe(exc)

        try:
            async with asyncio.timeout(self.connect_timeout_s):
                self._nc = await nats.connect(
                    servers=self.servers,
                    name=self.name,
                    connect_timeout=max(1, min(2, round(self.connect_timeout_s))),
                    reconnect_time_wait=RECONNECT_WAIT_S,  # type: ignore[arg-type]
                    max_reconnect_attempts=-1,
                    ping_interval=PING_INTERVAL_S,
                    max_outstanding_pings=2,
                    error_cb=on_error,
                    disconnected_cb=self._disconnected,
                    reconnected_cb=self._reconnected,
                )
        except TimeoutError:
            why = f" ({self.last_error})" if self.last_error else ""
            raise BusUnavailable(f"--bus {self.url}: no NATS server answered within "
                                 f"{self.connect_timeout_s:g} s{why}") from None
        except (OSError, NoServersError) as exc:
            raise BusUnavailable(f"--bus {self.url}: {_describe(exc)}") from None
        self._js = self._nc.jetstream(timeout=5.0)
        try:
            await self._js.account_info()
        except Exception as exc:
            await self.close()
            raise BusUnavailable(f"--bus {self.url}: the NATS server has no JetStream ({_describe(exc)}); "
                                 "start it with -js") from None
        await self.declare()

    async def declare(self) -> None:
        """The streams (one per kind, the last RETENTION_S of each) and, for a node that
        owns symbols, the lease bucket."""
        from nats.js.api import DiscardPolicy, StorageType, StreamConfig
        from nats.js.errors import BadRequestError

        js = self.js
        for name, prefix in STREAMS.items():
            config = StreamConfig(name=name, subjects=[prefix + "*"], max_age=RETENTION_S, storage=StorageType.FILE,
                                  discard=DiscardPolicy.OLD, num_replicas=self.replicas)
            try:
                await js.add_stream(config)
            except BadRequestError:  # declared by an older node with another configuration
                await js.update_stream(config)
        if not self.with_leases:
            return
        try:
            self._leases = await js.create_key_value(bucket=LEASE_BUCKET, ttl=self.lease_ttl_s, history=1,
                                                     replicas=self.replicas)
        except BadRequestError:  # the bucket exists with another lease time: the nodes share the first one's
            self._leases = await js.key_value(LEASE_BUCKET)
        ttl = (await self._leases.status()).ttl
        if ttl and abs(ttl - self.lease_ttl_s) > 1e-6:
            log.warning("lease bucket %s keeps leases %g s (not %g s as configured here): its first node set it",
                        LEASE_BUCKET, ttl, self.lease_ttl_s)
            self.lease_ttl_s = ttl

    async def _disconnected(self) -> None:
        if self.down_since is None and not self._closing:
            self.disconnects += 1
            self.down_since = time.monotonic()
            log.warning("bus: disconnected from %s (%s); reconnecting", self.url, self.last_error or "closed")

    async def _reconnected(self) -> None:
        down = time.monotonic() - self.down_since if self.down_since is not None else 0.0
        self.down_since = None
        self.reconnects += 1
        log.info("bus: reconnected to %s after %.1f s", self.connected_url or self.url, down)
        # Not awaited here: the client calls this from its reconnection task.
        self._after_reconnect = asyncio.get_running_loop().create_task(self._redeclare(), name="bus-redeclare")

    async def _redeclare(self) -> None:
        try:
            await self.declare()
        except Exception as exc:  # the next reconnection tries again
            log.warning("bus: declaring the streams again failed (%s)", _describe(exc))
        for hook in list(self.on_reconnect):
            try:
                await hook()
            except Exception:
                log.exception("bus: a reconnection hook failed")

    async def close(self) -> None:
        self._closing = True
        if self._after_reconnect is not None:
            self._after_reconnect.cancel()
        if self._nc is not None and not self._nc.is_closed:
            try:
                async with asyncio.timeout(2.0):
                    await self._nc.close()
            except (TimeoutError, Exception) as exc:  # closing a dead connection must not stop a shutdown
                log.debug("bus: close: %s", _describe(exc))

    # --- what the nodes use ----------------------------------------------------------
    @property
    def nc(self) -> Client:
        assert self._nc is not None, "not connected"
        return self._nc

    @property
    def js(self) -> JetStreamContext:
        assert self._js is not None, "not connected"
        return self._js

    @property
    def leases(self) -> KeyValue:
        assert self._leases is not None, "not connected"
        return self._leases

    @property
    def connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    @property
    def connected_url(self) -> str | None:
        nc = self._nc
        if nc is None or nc.connected_url is None:
            return None
        return nc.connected_url.geturl()

    async def sync(self) -> None:
        """Return once everything sent so far has reached the server (see :func:`flush_all`)."""
        await flush_all(self.nc)

    async def publish(self, subject: str, data: bytes) -> bool:
        """Send ``data`` now; False (nothing sent, nothing queued) while disconnected."""
        if not self.connected:
            return False
        await self.nc.publish(subject, data)
        return True

    def status(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "connected": self.connected,
            "server": self.connected_url,
            "disconnects": self.disconnects,
            "reconnects": self.reconnects,
            "down_for_s": round(time.monotonic() - self.down_since, 1) if self.down_since is not None else None,
            "last_error": self.last_error,
        }


async def flush_all(nc: Any, timeout_s: float = 10.0) -> None:
    """Return once every command written to ``nc`` so far has reached the server.

    ``Client.flush`` alone does not promise that in nats-py 2.16: its PING goes straight
    to the socket, while SUB and PUB commands wait in a buffer for the client's flusher
    task, so the PONG can come back before a subscription made just before was sent
    (then a message published from another connection right after is lost, or a
    request finds no responder). So the buffer is handed to the flusher first and
    waited for (nats-py's own force flush), then the PING/PONG round trip."""
    force = getattr(nc, "_flush_pending", None)
    if force is not None:
        await force(force_flush=True)
    await nc.flush(timeout=timeout_s)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    if isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
