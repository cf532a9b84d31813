"""``--role api``: the API and the dashboard, fed from the bus; no exchange connection.

* Frames (``liq.frame.*``) go to the same FrameHub and the same 180 s buffers as in
  one process, so ``/ws`` (api/ws.py) serves them unchanged: its ``history``
  message, then each frame as the ingest node encoded it.
* At start the buffers are filled from the frames stream (the last 180 s kept by
  JetStream) and the ingest nodes are known from the health stream: a new API node
  answers ``history`` at once, from the bus, not from a cache of its own.
* A symbol whose frames stop (its ingest node killed, cut off, or this node's bus
  connection down) is shown stale: after ``bus_stale_after_s`` without a frame the
  node pushes, each tick, a frame with ``sync.state`` "stale" and the reason, every
  metric null, as one process does for a book out of sync. The frames of the owner
  (or of a replacement) take over again when they come back.
* ``/health`` lists every node heard on the bus, its symbols and when it was last
  heard from; ``/book`` and ``/simulate`` are asked of the symbol's owner
  (bus/api_routes.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI

from api.hub import FrameHub
from api.server import ApiServer
from api.services import Services, SourceInfo
from bus.connection import BusConnection
from bus.messages import FrameHead, Malformed, NodeHealth, OwnerReply, OwnerRequest, decode, encode
from bus.subjects import (
    ALERT_PREFIX,
    FRAME_PREFIX,
    FRAMES_STREAM,
    HEALTH_PREFIX,
    HEALTH_STREAM,
    RETENTION_S,
    ask_subject,
    health_subject,
    is_token,
    last_token,
)
from config import Settings
from data_ingestion.runtime import IngestionRuntime
from data_ingestion.tasks import TaskRegistry
from embedded_server import url_host
from features.frame import Frame, SyncInfo
from features.frame import encode as encode_frame
from state.rolling_buffer import FrameBuffer

if TYPE_CHECKING:
    from nats.aio.msg import Msg
    from nats.aio.subscription import Subscription

log = logging.getLogger("bus.api")

WATCH_EVERY_S = 0.25  # how often silent symbols are looked for
HEALTH_EVERY_S = 1.0
FETCH_BATCH = 500


@dataclass(slots=True)
class NodeView:
    """The last health of one node, and when this node heard it."""

    health: NodeHealth
    heard_wall: float  # seconds since the epoch
    heard_mono: float  # local monotonic time (for a message read from the stream: its age applied)

    def owned(self) -> list[str]:
        return [s.symbol for s in self.health.symbols if s.owned]


class NodeDirectory:
    """Every node heard on ``liq.health.*`` in the last RETENTION_S."""

    def __init__(self) -> None:
        self.nodes: dict[str, NodeView] = {}

    def on_health(self, health: NodeHealth, age_s: float = 0.0) -> NodeView:
        """Keep ``health`` (``age_s`` old) unless a newer one of that node is known."""
        known = self.nodes.get(health.node)
        if known is not None and known.health.instance == health.instance and known.health.ts > health.ts:
            return known
        view = NodeView(health, time.time() - age_s, time.monotonic() - age_s)
        self.nodes[health.node] = view
        return view

    def owner_of(self, symbol: str) -> NodeView | None:
        """The ingest node that last said it owns ``symbol`` (the most recently heard)."""
        best: NodeView | None = None
        for view in self.nodes.values():
            if view.health.role == "ingest" and symbol in view.owned() and (
                    best is None or view.heard_mono > best.heard_mono):
                best = view
        return best

    def forget_old(self) -> None:
        now = time.monotonic()
        for name in [n for n, v in self.nodes.items() if now - v.heard_mono > RETENTION_S]:
            log.info("bus: node %s not heard for %.0f s; forgotten", name, RETENTION_S)
            del self.nodes[name]

    def of_role(self, role: str) -> list[NodeView]:
        return sorted((v for v in self.nodes.values() if v.health.role == role), key=lambda v: v.health.node)


@dataclass(slots=True)
class SymbolOnBus:
    """One symbol as this API node receives it."""

    buffer: FrameBuffer
    last: FrameHead | None = None  # the head of the last frame from its ingest node
    last_mono: float = 0.0  # when it arrived (local monotonic)
    frames: int = 0
    alerts: int = 0
    stale_since: float | None = None  # monotonic; None while frames arrive
    stale_pushed_mono: float = 0.0
    stale_reason: str | None = None
    stale_frames: int = 0
    stale_episodes: int = 0


@dataclass(slots=True)
class BusCounters:
    frames: int = 0
    alerts: int = 0
    health: int = 0
    history_frames: int = 0  # read from the stream at start
    history_load_s: float | None = None
    malformed: Malformed = field(default_factory=Malformed)


class BusFrames:
    """The frames from the bus, for the endpoints (api.services.FrameSource): one 180 s
    buffer per symbol, fed with the bytes the ingest node encoded, and the hub."""

    def __init__(self, settings: Settings, hub: FrameHub, directory: NodeDirectory, bus: BusConnection,
                 counters: BusCounters) -> None:
        self.settings = settings
        self.hub = hub
        self.directory = directory
        self.bus = bus
        self.counters = counters
        self.symbols: dict[str, SymbolOnBus] = {}
        self._buffers: dict[str, FrameBuffer] = {}
        self._frame_bytes: dict[str, int] = {}
        self._loading: list[tuple[str, bytes]] | None = None  # live frames held while the stream is read

    # --- FrameSource ---------------------------------------------------------------------
    @property
    def buffers(self) -> Mapping[str, FrameBuffer]:
        return self._buffers

    @property
    def build_ms_last(self) -> Mapping[str, float]:
        return {}  # frames are built on the ingest nodes

    @property
    def frame_bytes_last(self) -> Mapping[str, int]:
        return self._frame_bytes

    # --- symbols ---------------------------------------------------------------------------
    def symbol(self, symbol: str) -> SymbolOnBus:
        st = self.symbols.get(symbol)
        if st is None:
            s = self.settings
            st = self.symbols[symbol] = SymbolOnBus(FrameBuffer(symbol, s.buffer_seconds, s.push_interval_s))
            self._buffers[symbol] = st.buffer
            log.info("%s: served from the bus", symbol)
        return st

    # --- frames ------------------------------------------------------------------------------
    async def on_frame_msg(self, msg: Msg) -> None:
        if self._loading is not None:
            self._loading.append((msg.subject, msg.data))
            return
        self.on_frame(msg.subject, msg.data)

    def on_frame(self, subject: str, data: bytes, age_s: float = 0.0, live: bool = True) -> None:
        """One frame from ``subject``: buffered, and (live) handed to the hub."""
        head = decode(FrameHead, data, subject, self.counters.malformed)
        if head is None:
            return
        symbol = last_token(subject)
        if head.symbol != symbol or not is_token(symbol):
            self.counters.malformed.note("FrameHead", subject, f"frame of {head.symbol!r} on this subject")
            return
        st = self.symbol(symbol)
        if not live and st.last is not None and head.timestamp <= st.last.timestamp:
            return  # already read (a live frame held while the stream was read)
        self.counters.frames += live
        st.frames += 1
        st.alerts += len(head.alerts)
        st.last = head
        st.last_mono = time.monotonic() - age_s
        st.buffer.append(None, data)
        self._frame_bytes[symbol] = len(data)
        if st.stale_since is not None and age_s < self.stale_after(symbol):
            log.info("%s: frames from the bus again after %.1f s stale", symbol, time.monotonic() - st.stale_since)
            st.stale_since = None
            st.stale_reason = None
        if live:
            self.hub.publish(symbol, data.decode())

    def hold(self) -> None:
        """Hold live frames from now on, until :meth:`load_history` has read the stream."""
        self._loading = []

    async def load_history(self) -> None:
        """The last RETENTION_S of frames from the stream into the buffers (live
        frames arriving meanwhile are held, then applied without the ones read)."""
        t0 = time.monotonic()
        if self._loading is None:
            self.hold()
        try:
            for subject, data, age in await read_stream(self.bus, FRAMES_STREAM, FRAME_PREFIX + "*"):
                self.on_frame(subject, data, age_s=age, live=False)
                self.counters.history_frames += 1
        finally:
            held, self._loading = self._loading or [], None
            for subject, data in held:
                self.on_frame(subject, data, live=False)
                self.counters.frames += 1
        self.counters.history_load_s = round(time.monotonic() - t0, 3)

    async def on_alert_msg(self, msg: Msg) -> None:
        # Alerts also travel inside their frame (that is what /ws clients get); the
        # alerts stream is for consumers that want alerts alone. Counted here.
        self.counters.alerts += 1

    # --- silence -------------------------------------------------------------------------------
    def stale_after(self, symbol: str) -> float:
        owner = self.directory.owner_of(symbol)
        cadence = owner.health.cadence_s if owner is not None else self.settings.push_interval_s
        return max(self.settings.bus_stale_after_s, 2.5 * cadence)

    def silence(self, symbol: str, now: float) -> str | None:
        """Why ``symbol`` is stale at ``now`` (monotonic), or None while its frames come."""
        st = self.symbols[symbol]
        silent = now - st.last_mono if st.last is not None else None
        owner = self.directory.owner_of(symbol)
        limit = self.settings.bus_stale_after_s
        if silent is not None and silent <= limit:
            return None
        owner_silent = owner is None or now - owner.heard_mono > limit
        if not owner_silent and (silent is None or silent <= self.stale_after(symbol)):
            return None  # its first frame is on its way, or a slow cadence's next one is not late yet
        since = f"for {silent:.1f} s" if silent is not None else "yet"
        if not self.bus.connected:
            return f"no frame {since}: this API node lost the bus ({self.bus.url}) and is reconnecting"
        if owner is None:
            return f"no frame {since} and no ingest node owns it now"
        heard = now - owner.heard_mono
        return f"no frame {since} from ingest node {owner.health.node} (last heard from {heard:.1f} s ago)"

    def watch(self) -> None:
        """Mark silent symbols stale and push their stale frame once per tick."""
        now = time.monotonic()
        for symbol, st in self.symbols.items():
            why = self.silence(symbol, now)
            if why is None:
                continue
            if st.stale_since is None:
                st.stale_since = now
                st.stale_episodes += 1
                st.stale_pushed_mono = 0.0
                log.warning("%s: stale on this API node: %s", symbol, why)
            st.stale_reason = why
            if now - st.stale_pushed_mono >= self.settings.push_interval_s:
                st.stale_pushed_mono = now
                self.push_stale(symbol, st, why, now)

    def push_stale(self, symbol: str, st: SymbolOnBus, why: str, now: float) -> None:
        """A frame saying the symbol is stale, every metric null, as one process
        sends for a book out of sync; it keeps the last frame's seq (no frame was
        built) and its last update id."""
        last = st.last
        age = None
        if last is not None:
            age = round(now - st.last_mono + (last.sync.last_message_age_s or 0.0), 3)
        frame = Frame(
            symbol=symbol, timestamp=time.time(), ts_event_ms=last.ts_event_ms if last else None,
            seq=last.seq if last else 0,
            sync=SyncInfo(state="stale", reason=why, last_update_id=last.sync.last_update_id if last else None,
                          last_message_age_s=age),
        )
        encoded = encode_frame(frame)
        st.buffer.append(None, encoded)
        st.stale_frames += 1
        self.hub.publish(symbol, encoded.decode())

    def sync_of(self, symbol: str) -> dict[str, Any]:
        """The symbol's state for /health: its ingest node's, or stale with the reason."""
        st = self.symbols[symbol]
        now = time.monotonic()
        if st.stale_since is not None or st.last is None:
            last = st.last
            return {
                "state": "stale" if last is not None or st.stale_since is not None else "awaiting_frames",
                "reason": st.stale_reason or "no frame from the bus yet",
                "last_update_id": last.sync.last_update_id if last else None,
                "last_message_age_s": None,
            }
        return {
            "state": st.last.sync.state,
            "reason": st.last.sync.reason,
            "last_update_id": st.last.sync.last_update_id,
            "last_message_age_s": None if st.last.sync.last_message_age_s is None
            else round(st.last.sync.last_message_age_s + now - st.last_mono, 3),
        }


async def read_stream(bus: BusConnection, stream: str, subject: str,
                      last_per_subject: bool = False) -> list[tuple[str, bytes, float]]:
    """Every message ``stream`` keeps on ``subject`` (or the last of each subject),
    oldest first, as (subject, data, age in seconds)."""
    from nats.errors import TimeoutError as NatsTimeout
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

    js = bus.js
    info = await js.stream_info(stream)
    if not info.state.messages:
        return []
    policy = DeliverPolicy.LAST_PER_SUBJECT if last_per_subject else DeliverPolicy.ALL
    sub = await js.pull_subscribe(subject, stream=stream, config=ConsumerConfig(
        ack_policy=AckPolicy.NONE, deliver_policy=policy, inactive_threshold=30.0))
    out: list[tuple[str, bytes, float]] = []
    try:
        while True:
            try:
                msgs = await sub.fetch(FETCH_BATCH, timeout=2.0)
            except NatsTimeout:
                break  # nothing more (the stream's messages aged out meanwhile)
            now = time.time()
            for m in msgs:
                stamp = m.metadata.timestamp
                age = max(0.0, now - stamp.timestamp()) if stamp is not None else 0.0
                out.append((m.subject, m.data, age))
            if not msgs or msgs[-1].metadata.num_pending == 0:
                break
    finally:
        try:
            await sub.unsubscribe()
        except Exception as exc:  # the consumer goes away by itself (inactive_threshold)
            log.debug("read_stream: unsubscribe: %r", exc)
    return out


class ApiNode:
    """An API node: the API (and dashboard) of api/ and dashboard/, fed from the bus."""

    def __init__(self, settings: Settings) -> None:
        s = self.settings = settings
        self.node = s.node_name
        self.instance = os.urandom(4).hex()
        self.started_at = time.time()
        self.bus = BusConnection(s.bus_url, self.node, s.bus_connect_timeout_s, s.lease_ttl_s, s.bus_replicas,
                                 leases=False)
        self.tasks = TaskRegistry()
        self.hub = FrameHub(s.max_ws_clients, s.max_ws_clients_per_ip, s.ws_client_queue,
                            behind_limit_s=s.ws_stall_timeout_s)
        self.directory = NodeDirectory()
        self.counters = BusCounters()
        self.frames = BusFrames(s, self.hub, self.directory, self.bus, self.counters)
        # No feeds and never started: the endpoints that read local books are replaced
        # by the ones of bus/api_routes.py; its process monitor gives this node's RSS.
        self.runtime = IngestionRuntime(s, self.tasks)
        self.source = SourceInfo("bus", "waiting for ingest nodes", "no ingest node heard on the bus yet")
        self.services = Services(s, self.runtime, self.frames, self.hub, self.source, remote=self)
        self.api: ApiServer | None = None
        self.dashboard: Any = None
        self.dashboard_url: str | None = None
        self.requests = {"asked": 0, "answered": 0, "no_owner": 0, "timeouts": 0}
        self._subs: list[Subscription] = []

    # --- RemoteBooks -------------------------------------------------------------------------
    def symbols(self) -> list[str]:
        return sorted(set(self.frames.symbols) | set(self.expected_symbols()))

    def expected_symbols(self) -> list[str]:
        return [sym for view in self.directory.of_role("ingest") for sym in view.owned()]

    def add_routes(self, app: FastAPI) -> None:
        from bus.api_routes import add_api_node_routes

        add_api_node_routes(app, self)

    @property
    def api_url(self) -> str:
        assert self.api is not None
        return f"http://{url_host(self.settings.host)}:{self.api.port}"

    # --- start and stop ---------------------------------------------------------------------
    async def start(self, api_sock: socket.socket, dash_sock: socket.socket | None) -> None:
        s = self.settings
        await self.bus.connect()
        nc = self.bus.nc
        self.frames.hold()  # live frames from now on wait until the stream is read
        self._subs = [
            await nc.subscribe(HEALTH_PREFIX + "*", cb=self._on_health_msg),
            await nc.subscribe(FRAME_PREFIX + "*", cb=self.frames.on_frame_msg),
            await nc.subscribe(ALERT_PREFIX + "*", cb=self.frames.on_alert_msg),
        ]
        await self.bus.sync()  # the server has the subscriptions: nothing falls between them and the stream
        for subject, data, age in await read_stream(self.bus, HEALTH_STREAM, HEALTH_PREFIX + "*",
                                                    last_per_subject=True):
            self._on_health(subject, data, age)
        await self.frames.load_history()
        for symbol in self.expected_symbols():
            self.frames.symbol(symbol)
        self._refresh_source()
        log.info("bus: node %s on %s: %d frames of %s read from the stream in %.2f s; ingest nodes: %s",
                 self.node, self.bus.connected_url, self.counters.history_frames,
                 ", ".join(self.symbols()) or "no symbol yet", self.counters.history_load_s or 0.0,
                 ", ".join(v.health.node for v in self.directory.of_role("ingest")) or "none yet")
        self.api = ApiServer(self.services, api_sock, log_level="warning")
        await self.api.start()
        self.tasks.supervise(self._watch, name="bus-watch")
        self.tasks.supervise(self._publish_health, name="bus-health")
        if dash_sock is not None:
            await self._start_dashboard(dash_sock)
        shown = f"[{s.host}]" if ":" in s.host else s.host
        log.info("source: %s (%s)", self.source.label, self.source.reason)
        if self.dashboard is not None:
            log.info("dashboard: http://%s:%d/", shown, s.dash_port)
        log.info("API: %s  (docs %s/docs, health %s/health)", self.api_url, self.api_url, self.api_url)

    async def _start_dashboard(self, dash_sock: socket.socket) -> None:
        """The page, given this node's API first and then the others of --api-urls: it
        moves to the next one when its socket drops."""
        from dashboard.server import DashboardServer

        s = self.settings
        if not self.symbols():  # give the ingest nodes one health period to be heard
            deadline = time.monotonic() + 2 * HEALTH_EVERY_S
            while not self.symbols() and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        symbols = self.symbols() or list(s.symbols)
        urls = [self.api_url] + [u.rstrip("/") for u in s.api_urls if u.rstrip("/") != self.api_url]
        dash_sock.close()  # released just before the dashboard binds it
        # Built in a thread: importing Dash and building the page takes seconds of CPU
        # that the frames from the bus must not wait for.
        app = await asyncio.to_thread(_dash_app, ",".join(urls), symbols, self.source.label)
        self.dashboard = DashboardServer(app, s.host, s.dash_port)
        self.dashboard.start()
        self.dashboard_url = self.dashboard.url
        self.services.origins.add(self.dashboard.url)

    async def stop(self) -> None:
        if self.dashboard is not None:
            await asyncio.to_thread(self.dashboard.stop)
        if self.api is not None:
            await self.api.stop()
        await self.tasks.cancel_all()
        await self.bus.close()

    # --- the bus -------------------------------------------------------------------------------
    async def _on_health_msg(self, msg: Msg) -> None:
        self._on_health(msg.subject, msg.data)

    def _on_health(self, subject: str, data: bytes, age_s: float = 0.0) -> None:
        health = decode(NodeHealth, data, subject, self.counters.malformed)
        if health is None:
            return
        if last_token(subject) != health.node:
            self.counters.malformed.note("NodeHealth", subject, f"health of {health.node!r} on this subject")
            return
        self.counters.health += 1
        known = self.directory.nodes.get(health.node)
        view = self.directory.on_health(health, age_s)
        if (known is None or known.health.instance != health.instance) and age_s == 0.0:
            log.info("bus: %s node %s (instance %s) heard; owns %s", health.role, health.node,
                     health.instance, ", ".join(view.owned()) or "nothing yet")
        if health.role == "ingest":
            for symbol in view.owned():
                self.frames.symbol(symbol)
        elif health.dashboard_url and health.node != self.node:
            # A page served by another API node of this cluster may move here.
            self.services.origins.add(health.dashboard_url)

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(WATCH_EVERY_S)
            if loop.time() - before > WATCH_EVERY_S + 0.5:
                # This node's own loop stalled: frames that came meanwhile are still
                # unread. Let them in before judging anyone silent.
                continue
            self.frames.watch()
            self._refresh_source()
            self.directory.forget_old()

    def _refresh_source(self) -> None:
        """What /health and the banner say of the source: the ingest nodes'."""
        nodes = [v for v in self.directory.of_role("ingest") if v.health.source is not None]
        if not nodes:
            return
        kinds = {(v.health.source.kind, v.health.source.label) for v in nodes if v.health.source is not None}
        names = ", ".join(v.health.node for v in nodes)
        src = self.source
        if len(kinds) == 1:
            kind, label = next(iter(kinds))
            first = nodes[0].health.source
            assert first is not None
            src.kind, src.label, src.reason = kind, label, f"{first.reason}; through the bus from {names}"
        else:
            src.kind = "mixed"
            src.label = "MIXED: " + " + ".join(sorted(label for _k, label in kinds))
            src.reason = f"the ingest nodes ({names}) read different sources"

    def health(self) -> NodeHealth:
        return NodeHealth(
            node=self.node, instance=self.instance, role="api", ts=time.time(), started_at=self.started_at,
            cadence_s=self.settings.push_interval_s, api_url=self.api_url if self.api is not None else None,
            dashboard_url=self.dashboard_url, rss_mb=round(self.runtime.process.rss_mb(), 1),
        )

    async def _publish_health(self) -> None:
        subject = health_subject(self.node)
        while True:
            await self.bus.publish(subject, encode(self.health()))
            await asyncio.sleep(HEALTH_EVERY_S)

    async def ask_owner(self, symbol: str, path: str, query: list[tuple[str, str]]) -> OwnerReply:
        """``path`` with ``query`` answered by ``symbol``'s ingest node; ApiError 503
        with the reason when it cannot be."""
        from nats.errors import NoRespondersError
        from nats.errors import TimeoutError as NatsTimeout

        from api.errors import ApiError

        self.requests["asked"] += 1
        if not self.bus.connected:
            raise ApiError(503, f"{symbol}: this API node lost the bus ({self.bus.url}) and is reconnecting")
        owner = self.directory.owner_of(symbol)
        who = f"ingest node {owner.health.node}" if owner is not None else "its ingest node"
        timeout = self.settings.bus_request_timeout_s
        try:
            msg = await self.bus.nc.request(ask_subject(symbol), encode(OwnerRequest(path=path, query=query)),
                                            timeout=timeout)
        except NoRespondersError:
            self.requests["no_owner"] += 1
            raise ApiError(503, f"{symbol}: no ingest node answers for it on the bus now "
                                f"(its owner is down or still starting)") from None
        except NatsTimeout:
            self.requests["timeouts"] += 1
            raise ApiError(503, f"{symbol}: {who} did not answer within {timeout:g} s") from None
        reply = decode(OwnerReply, msg.data, msg.subject or ask_subject(symbol), self.counters.malformed)
        if reply is None:
            raise ApiError(503, f"{symbol}: {who} sent a malformed answer")
        self.requests["answered"] += 1
        return reply


def _dash_app(api_urls: str, symbols: list[str], source_label: str) -> Any:
    from dashboard.app import create_app

    return create_app(api_urls, symbols, source_label)
