"""The messages on the bus, one typed struct each, decoded once where they arrive.

A frame travels as the very bytes ``/ws/<symbol>`` sends (features.frame.Frame,
encoded once by its builder); a receiver decodes only its head (:class:`FrameHead`)
to route it and to know its sync state. Everything else (health, leases, requests
to an owner and their replies) is a struct of this module. A message that does
not decode is counted (:class:`Malformed`) and skipped, never raised into a
subscription callback.
"""

from __future__ import annotations

import logging
import time
from typing import Annotated, Literal, TypeVar

import msgspec
from msgspec import Meta, Struct

from features.frame import FrameAlert, SyncInfo

log = logging.getLogger("bus")

Seconds = Annotated[float, Meta(ge=0)]


class FrameHead(Struct, kw_only=True):
    """What a receiver reads of a frame: the rest of its fields are passed on as bytes."""

    symbol: str
    timestamp: float  # the frame's wall time, seconds since the epoch
    seq: int  # frame counter of the symbol on the node that built it
    ts_event_ms: int | None = None  # exchange event time of the last applied depth event
    sync: SyncInfo  # the book's state on its ingest node
    alerts: list[FrameAlert] = msgspec.field(default_factory=list)


class SourceState(Struct, kw_only=True):
    """Where an ingest node's books come from (api.services.SourceInfo on the wire)."""

    kind: str  # binance | sim | replay
    label: str  # "LIVE Binance", "SIMULATED market", ...
    reason: str


class SymbolState(Struct, kw_only=True):
    """One symbol of an ingest node, as its health says."""

    symbol: str
    owned: bool  # the node holds the symbol's lease and publishes its frames
    state: str  # the feed's display state: synced, quiet, resyncing, stale, awaiting_snapshot
    reason: str | None = None
    last_update_id: int | None = None


class NodeHealth(Struct, kw_only=True):
    """``liq.health.<node>``, once a second from every node."""

    node: str
    instance: str  # random per process: a restarted node is a new instance of the same name
    role: Literal["ingest", "api"]
    ts: float  # the sender's wall clock, seconds since the epoch
    started_at: float
    cadence_s: Seconds  # the node's push interval
    api_url: str | None = None  # the node's own API
    dashboard_url: str | None = None  # the page it serves, if any (its peers allow it as an origin)
    source: SourceState | None = None  # ingest nodes
    symbols: list[SymbolState] = msgspec.field(default_factory=list)
    rss_mb: float = 0.0
    frames_published: int = 0  # frames put on the bus since start
    frames_not_sent: int = 0  # frames built while the bus was down or the symbol not owned


class Lease(Struct, kw_only=True):
    """The value of a symbol's key in the lease bucket: who owns it."""

    node: str
    instance: str
    claimed_at: float  # wall clock of the first claim by this instance
    api_url: str | None = None


class OwnerRequest(Struct, kw_only=True):
    """``liq.ask.<symbol>``: an API node passes a request on to the symbol's owner."""

    path: str  # /book/<symbol> or /simulate/<symbol>
    query: list[tuple[str, str]] = msgspec.field(default_factory=list)


class OwnerReply(Struct, kw_only=True):
    """The owner's answer, status and JSON body as its own API gave them."""

    status: int
    body: str
    node: str


T = TypeVar("T")


class Malformed:
    """Messages that did not decode, by kind, with the last reason (for /health)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.last: str | None = None
        self._logged_at: dict[str, float] = {}

    def note(self, kind: str, subject: str, why: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        self.last = f"{subject}: {why}"
        now = time.monotonic()
        if now - self._logged_at.get(kind, -1e9) >= 10.0:  # one line per kind per 10 s, not one per message
            self._logged_at[kind] = now
            log.warning("malformed %s message on %s skipped (%s); %d so far", kind, subject, why, self.counts[kind])

    @property
    def total(self) -> int:
        return sum(self.counts.values())


_decoders: dict[type, msgspec.json.Decoder[object]] = {}
encoder = msgspec.json.Encoder()


def decode(kind: type[T], data: bytes, subject: str, malformed: Malformed) -> T | None:
    """``data`` as a ``kind``, or None (counted in ``malformed``) when it is not one."""
    dec = _decoders.get(kind)
    if dec is None:
        dec = _decoders[kind] = msgspec.json.Decoder(kind)
    try:
        return dec.decode(data)  # type: ignore[return-value]
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        malformed.note(kind.__name__, subject, str(exc)[:200])
        return None


def encode(message: Struct) -> bytes:
    return encoder.encode(message)
