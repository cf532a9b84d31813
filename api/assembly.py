"""Wires ingestion, features, the frame publisher and the API server together.

``main.py`` (the CLI) and ``sim_stack.py`` (the tests, benchmarks and browser tools)
build the product through :class:`Stack`, so the tests exercise exactly what a user
runs. The Dash server and the simulated exchange are attached by their callers; the
stack only needs their URLs.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
from collections.abc import Sequence

from alerting.service import Alerting
from api.focus import FocusSet
from api.heap_trim import HeapTrimmer
from api.hub import FrameHub
from api.publisher import FramePublisher
from api.screener import ScreenerPublisher
from api.server import ApiServer, bind_api_socket
from api.services import Services, SourceInfo
from config import Settings, SymbolSpec
from data_ingestion.market import MarketWatch
from data_ingestion.recorder import Recorder, open_recorder
from data_ingestion.recording import HISTORY_DB
from data_ingestion.runtime import IngestionRuntime
from data_ingestion.tasks import TaskRegistry
from embedded_server import url_host
from features.engine import SymbolFeatures
from history.store import HistoryStore, band_fields
from screener.market import MarketState
from screener.rows import RowRules

log = logging.getLogger("stack")


class Stack:
    """Ingestion + features + publisher + API, started and stopped as one."""

    def __init__(
        self,
        settings: Settings,
        source: SourceInfo,
        api_socket: socket.socket | None = None,
        replay_files: Sequence[str] = (),
        recorder: Recorder | None = None,
        hub: FrameHub | None = None,
    ) -> None:
        """``recorder``: an opened one (main.py); without it the runtime opens the one the
        settings ask for, if any."""
        self.settings = settings
        self.source = source
        self.replay_files = tuple(replay_files)
        self.tasks = TaskRegistry()
        self.features: dict[str, SymbolFeatures] = {}
        self.runtime = IngestionRuntime(settings, self.tasks, self._make_features, recorder)
        # An ingest node (bus/ingest_node.py) hands in a hub that also puts each frame on the bus.
        self.hub = hub if hub is not None else FrameHub(
            settings.max_ws_clients, settings.max_ws_clients_per_ip, settings.ws_client_queue,
            behind_limit_s=settings.ws_stall_timeout_s)
        self._api_socket = api_socket
        self.publisher: FramePublisher | None = None
        self.services: Services | None = None
        self.api: ApiServer | None = None
        self.history: HistoryStore | None = None
        self.market: MarketWatch | None = None
        self.screener: ScreenerPublisher | None = None
        self.focus: FocusSet | None = None
        self.alerting: Alerting | None = None

    def _open_history(self) -> HistoryStore | None:
        """The metric database, in the data directory the recorder has checked and
        locked (``--data-dir``, or ``--record DIR``), opened before any exchange
        connection; None with history off."""
        if self.runtime.recorder is None:
            self.runtime.recorder = open_recorder(self.settings)
        recorder = self.runtime.recorder
        if not self.settings.history or recorder is None:
            return None
        s = self.settings
        return HistoryStore(recorder.directory / HISTORY_DB, s.retain_s, band_fields(s.depth_bands_bps),
                            gap_after_s=max(3.0, 3 * s.push_interval_s))

    def _make_features(self, symbol: str, spec: SymbolSpec) -> SymbolFeatures:
        features = SymbolFeatures(symbol, self.settings, spec)
        self.features[symbol] = features
        return features

    @property
    def api_url(self) -> str:
        assert self.api is not None
        return f"http://{url_host(self.settings.host)}:{self.api.port}"

    async def start(self) -> None:
        s = self.settings
        if self.source.kind == "replay":
            await self.runtime.start_replay(self.replay_files, s.replay_speed)
        else:
            self.history = self._open_history()
            await self.runtime.start_live()
        self.alerting = build_alerting(s)
        self.publisher = FramePublisher(
            self.runtime.feeds, self.features, self.hub, s.buffer_seconds, s.push_interval_s,
            replay=self.source.kind == "replay", history=self.history, alert_tap=self.alerting.offer_frame,
            align_s=s.frame_align_s,
        )
        self.services = Services(s, self.runtime, self.publisher, self.hub, self.source, history=self.history,
                                 alerting=self.alerting)
        self.alerting.start(self.tasks)
        # One process only: over the bus (--role ingest/api) the screener is not carried yet.
        if s.screener and self.source.kind != "replay" and s.role == "all":
            await self._start_screener()
        sock = self._api_socket if self._api_socket is not None else bind_api_socket(s.host, s.api_port)
        self.api = ApiServer(self.services, sock, log_level="warning")
        await self.api.start()
        self.tasks.supervise(self.publisher.run, name="frame-publisher")
        self.heap_trimmer = HeapTrimmer(self.hub)
        self.tasks.supervise(self.heap_trimmer.run, name="heap-trim")
        # What lives from start-up on (modules, the first books, the simulated
        # exchange's warm market) leaves the collector's view: full collections then
        # walk only young objects, which keeps their pauses off the frames' tail.
        gc.collect()
        gc.freeze()

    async def _start_screener(self) -> None:
        """The whole market on the light streams, its rows built once a second."""
        s = self.settings
        assert self.runtime.rest is not None and self.services is not None
        rules = RowRules(wall_multiple=s.wall_multiple, wall_flag_multiple=s.screener_wall_flag_multiple,
                         burst_notional=s.liquidation_burst_notional_usdt, burst_window_s=s.liquidation_burst_window_s)
        state = MarketState(s.screener_depth_suffix, rules)
        self.market = MarketWatch(s, self.tasks, self.runtime.rest, state, self.runtime.recorder)
        await self.market.start()
        feeds = self.runtime.feeds
        self.screener = ScreenerPublisher(state, self.hub, lambda: {sym for sym, f in feeds.items() if f.in_sync},
                                          on_rows=self.alerting.on_screener_rows if self.alerting else None)
        self.services.market = self.market
        self.services.screener = self.screener
        self.tasks.supervise(self.screener.run, name="screener-publisher")
        assert self.publisher is not None
        self.focus = FocusSet(self.runtime, self.publisher, self.hub, self, s.focus_max, s.focus_idle_s)
        self.services.focus = self.focus
        self.market.on_gone = self.focus.leave
        self.tasks.supervise(self.focus.run, name="focus-release")

    def allow_origin(self, url: str) -> None:
        """Let pages served from ``url`` (the dashboard) read the API from a browser."""
        assert self.services is not None
        self.services.origins.add(url)

    async def stop_api(self) -> None:
        assert self.api is not None
        await self.api.stop()

    async def start_api_again(self) -> None:
        assert self.api is not None and self.services is not None
        port = self.api.port
        self.api = ApiServer(self.services, bind_api_socket(self.settings.host, port), log_level="warning")
        await self.api.start()

    async def stop(self) -> None:
        """API clients closed with a close frame, exchange sockets closed, tasks
        cancelled and awaited, recorder flushed."""
        if self.api is not None:
            await self.api.stop()
        if self.market is not None:
            await self.market.stop()
        await self.runtime.stop()
        await self.tasks.cancel_all()
        if self.alerting is not None:
            await self.alerting.stop()
        if self.history is not None:
            await asyncio.to_thread(self.history.close)


def build_alerting(s: Settings) -> Alerting:
    """The alert rules of ``--alerts`` (none without it; PUT /alerts/rules sets them),
    linking to ``alerts_dashboard_url`` or the dashboard's own address."""
    link = s.alerts_dashboard_url or f"http://{url_host(s.host)}:{s.dash_port}"
    if s.alerts_file:
        return Alerting.from_file(s.alerts_file, link, s.alerts_intake_queue)
    from alerting.rules import RuleSet

    return Alerting(RuleSet(), link, None, s.alerts_intake_queue)
