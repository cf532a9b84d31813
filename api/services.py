"""What the API's endpoints read: the running parts, handed over once at start."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from api.hub import FrameHub
from api.limits import ConnectionLimits
from api.origins import OriginPolicy
from api.publisher import FramePublisher
from config import Settings
from data_ingestion.runtime import IngestionRuntime
from features.market_impact import ImpactSimulator
from history.store import HistoryStore


@dataclass(slots=True)
class SourceInfo:
    """Where the books come from, shown in /health and on the dashboard banner."""

    kind: str  # binance | sim | replay
    label: str  # "LIVE Binance", "SIMULATED market", "REPLAY of btcusdt_20240808.gz"
    reason: str  # why (auto's choice, or "chosen with --source")

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "label": self.label, "reason": self.reason}


@dataclass(slots=True)
class Services:
    """What the endpoints read: built by api/assembly.py (or a test) and handed to create_app."""

    settings: Settings
    runtime: IngestionRuntime
    publisher: FramePublisher
    hub: FrameHub
    source: SourceInfo
    started_mono: float = field(default_factory=time.monotonic)
    impact: ImpactSimulator | None = None
    origins: OriginPolicy = field(default_factory=OriginPolicy)
    limits: ConnectionLimits | None = None  # set by the API server from the settings and the descriptor limit
    history: HistoryStore | None = None  # the metric history, when on

    def __post_init__(self) -> None:
        if self.impact is None:
            self.impact = ImpactSimulator(self.settings.impact_max_size)
        if not self.origins.allowed and self.settings.allow_origins:
            self.origins = OriginPolicy(self.settings.allow_origins)
