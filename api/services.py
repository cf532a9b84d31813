"""What the API's endpoints read: the running parts, handed over once at start."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from api.hub import FrameHub
from api.limits import ConnectionLimits
from api.origins import OriginPolicy
from config import Settings
from data_ingestion.runtime import IngestionRuntime
from features.market_impact import ImpactSimulator
from history.store import HistoryStore
from state.rolling_buffer import FrameBuffer

if TYPE_CHECKING:
    from fastapi import FastAPI

    from alerting.service import Alerting


@dataclass(slots=True)
class SourceInfo:
    """Where the books come from, shown in /health and on the dashboard banner."""

    kind: str  # binance | sim | replay
    label: str  # "LIVE Binance", "SIMULATED market", "REPLAY of btcusdt_20240808.gz"
    reason: str  # why (auto's choice, or "chosen with --source")

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "label": self.label, "reason": self.reason}


class FrameSource(Protocol):
    """The frames as the endpoints read them: each symbol's last 180 s, and what the
    last ones cost. api.publisher.FramePublisher builds them in this process; on an
    API node (--role api) bus.api_node.BusFrames receives them from the bus."""

    @property
    def buffers(self) -> Mapping[str, FrameBuffer]: ...

    @property
    def build_ms_last(self) -> Mapping[str, float]: ...

    @property
    def frame_bytes_last(self) -> Mapping[str, int]: ...


class RemoteBooks(Protocol):
    """Books that live in other processes: on an API node they are on ingest nodes,
    which publish the frames and answer for their books (bus/api_node.py)."""

    def symbols(self) -> list[str]:
        """The symbols served, as the bus announces them."""
        ...

    def add_routes(self, app: FastAPI) -> None:
        """The endpoints answered from the bus (/health, /book, /simulate, /metrics);
        they take the place of the ones that read local books."""
        ...


@dataclass(slots=True)
class Services:
    """What the endpoints read: built by api/assembly.py (or a test) and handed to create_app."""

    settings: Settings
    runtime: IngestionRuntime  # on an API node: never started, no feeds (see remote)
    publisher: FrameSource
    hub: FrameHub
    source: SourceInfo
    started_mono: float = field(default_factory=time.monotonic)
    impact: ImpactSimulator | None = None
    origins: OriginPolicy = field(default_factory=OriginPolicy)
    limits: ConnectionLimits | None = None  # set by the API server from the settings and the descriptor limit
    history: HistoryStore | None = None  # the metric history, when on
    remote: RemoteBooks | None = None  # set on an API node: the books are on ingest nodes
    screener: Any = None  # api.screener.ScreenerPublisher while the screener runs
    market: Any = None  # data_ingestion.market.MarketWatch: the screener's connections
    focus: Any = None  # api.focus.FocusSet: promotion and release of full-depth books
    alerting: Alerting | None = None  # the alert rules and their deliveries (alerting/)

    def __post_init__(self) -> None:
        if self.impact is None:
            self.impact = ImpactSimulator(self.settings.impact_max_size)
        if not self.origins.allowed and self.settings.allow_origins:
            self.origins = OriginPolicy(self.settings.allow_origins)

    def served_symbols(self) -> list[str]:
        """The symbols this API serves: its own feeds', or on an API node the bus's."""
        if self.remote is not None:
            return self.remote.symbols()
        return list(self.runtime.feeds)
