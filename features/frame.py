"""The frame pushed on ``/ws/{symbol}``: one typed definition.

The frame is built as these structs and encoded by msgspec; docs/frames.md's table
and the JSON Schema served at ``/schema/frame.json`` are generated from the same
definitions (``python -m features.frame markdown`` / ``schema``), so the three
cannot drift. Every metric follows docs/metrics.md; a value that cannot be
computed is ``null``.
"""

from __future__ import annotations

import sys
import types
import typing
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

Price = float
Qty = float


def _d(text: str) -> Meta:
    return Meta(description=text)


class SyncInfo(Struct, kw_only=True):
    """The book's state as the runtime shows it."""

    state: Annotated[str, _d("awaiting_snapshot / synced / quiet / resyncing / stale; quiet is in sync on a "
                             "live connection with no message for 5 s (served with full metrics)")]
    reason: Annotated[str | None, _d("why the book is in this state")] = None
    last_update_id: Annotated[int | None, _d("u of the last applied depth event")] = None
    last_message_age_s: Annotated[float | None, _d("seconds since the symbol's last message")] = None


class BidAsk(Struct, kw_only=True):
    bid: float | None = None
    ask: float | None = None


class BidAskLists(Struct, kw_only=True):
    bid: list[float] = msgspec.field(default_factory=list)
    ask: list[float] = msgspec.field(default_factory=list)


class DepthBands(Struct, kw_only=True):
    """Quantity within each band (bps of mid, the key) of the whole book, per side."""

    bid: dict[str, float] | None = None
    ask: dict[str, float] | None = None


class FrameWall(Struct, kw_only=True):
    side: Literal["bid", "ask"]
    price: Price
    size: Qty
    multiple: Annotated[float, _d("size / median size of the top levels")]
    age_s: Annotated[float, _d("seconds at this price at wall size")]


class FrameAlert(Struct, kw_only=True):
    type: Literal["WALL", "WALL_REMOVED", "LAYERING", "EXHAUSTION"]
    symbol: str
    side: str | None
    price: Price | None
    ts: Annotated[float, _d("seconds since the epoch")]
    details: dict[str, Any]


class Binned(Struct, kw_only=True):
    """Sizes per price bin: bin i covers [(bin0 + i) * bin_size, (bin0 + i + 1) * bin_size)."""

    bin0: int
    bin_size: float
    sizes: list[float]


class TradePrint(Struct, kw_only=True, omit_defaults=True):
    ts: Annotated[float, _d("local receive time, seconds since the epoch")]
    price: Price
    qty: Qty
    side: Literal["buy", "sell"]  # the aggressor
    nq: Annotated[Qty | None, _d("quantity without fills against RPI orders, when the exchange sent it")] = None


class ReplayState(Struct, kw_only=True):
    finished: bool


class HistoryState(Struct, kw_only=True):
    time: Annotated[float, _d("the recorded moment this frame shows, seconds since the epoch")]
    speed: Annotated[float, _d("playback speed, x real time (0: as fast as the client reads)")]
    finished: Annotated[bool, _d("true on the last frame: the recording ends here")]


class Frame(Struct, kw_only=True, tag_field="type", tag="frame"):
    """One frame of one symbol (the ``type`` field is ``"frame"``)."""

    symbol: Annotated[str, _d("lower case")]
    timestamp: Annotated[float, _d("local wall time of the frame, seconds since the epoch; in a replay the "
                                   "recorded receive time of the last message played")]
    ts_event_ms: Annotated[int | None, _d("exchange event time E of the last applied depth event")]
    seq: Annotated[int, _d("frame counter of this symbol (gaps = frames a slow client missed)")]
    sync: Annotated[SyncInfo, _d("state: awaiting_snapshot / synced / quiet / resyncing / stale (quiet: in sync "
                                 "on a live connection, no message for 5 s; served with full metrics)")]
    best_bid: Price | None = None
    best_ask: Price | None = None
    mid_price: Price | None = None
    spread: Annotated[Price | None, _d("best ask - best bid")] = None
    spread_bps: Annotated[float | None, _d("spread / mid, bps")] = None
    microprice: Annotated[Price | None, _d("size-weighted mid of level 1")] = None
    imbalance: Annotated[float | None, _d("top-N volume imbalance, in [-1, 1]")] = None
    imbalance_l1: Annotated[float | None, _d("level-1 imbalance, in [-1, 1]")] = None
    ofi: Annotated[float | None, _d("Cont-Kukanov-Stoikov OFI summed over the last 1 s, base asset")] = None
    ofi_levels: Annotated[list[float] | None, _d("multi-level OFI, levels 1..N")] = None
    depth_delta: Annotated[float | None, _d("change over 1 s of (total_bid_volume - total_ask_volume)")] = None
    total_bid_volume: Annotated[Qty | None, _d("top-N sum")] = None
    total_ask_volume: Annotated[Qty | None, _d("top-N sum")] = None
    depth_weighted_price: Annotated[BidAsk, _d("size-weighted price of the top N, per side")] = \
        msgspec.field(default_factory=BidAsk)
    depth_weighted_mid: Price | None = None
    slope: Annotated[BidAsk, _d("base asset per bp, per side")] = msgspec.field(default_factory=BidAsk)
    cumulative_depth: Annotated[BidAskLists, _d("cumulative quantity over levels 1..N, per side")] = \
        msgspec.field(default_factory=BidAskLists)
    depth_bands: Annotated[DepthBands, _d("whole book, quantity within each band of bps of mid")] = \
        msgspec.field(default_factory=DepthBands)
    bid_levels: Annotated[list[tuple[Price, Qty]], _d("best first, frame_levels (50) a side")] = \
        msgspec.field(default_factory=list)
    ask_levels: Annotated[list[tuple[Price, Qty]], _d("best first, frame_levels (50) a side")] = \
        msgspec.field(default_factory=list)
    walls: Annotated[list[FrameWall], _d("levels that are walls in this frame")] = msgspec.field(default_factory=list)
    alerts: Annotated[list[FrameAlert], _d("alerts raised since the previous frame; type WALL, WALL_REMOVED, "
                                           "LAYERING or EXHAUSTION; ts in seconds")] = \
        msgspec.field(default_factory=list)
    heatmap: Annotated[Binned | None, _d("resting size per price bin around the mid (whole book)")] = None
    volume_profile: Annotated[Binned | None, _d("mean resting size per bin over the last 180 s")] = None
    trades: Annotated[list[TradePrint], _d("trades since the previous frame; side = aggressor; nq (quantity "
                                           "without RPI fills) only when the exchange sent it; features use qty")] = \
        msgspec.field(default_factory=list)
    feed: Annotated[dict[str, Any], _d("messages_per_s, depth_events_per_s, lag_ms, latency_p50_ms, latency_p99_ms, "
                                       "gaps, resyncs, reconnects, book_ticker_checks, book_ticker_failures. In a "
                                       "replay lag_ms is the recording's: its receive time minus the exchange's "
                                       "event time, as recorded (negative when the recorder's clock was behind the "
                                       "exchange's)")] = msgspec.field(default_factory=dict)
    replay: Annotated[ReplayState | None, _d("null for live and simulated data; with --source replay, "
                                             "{finished: false} while the recordings play and {finished: true} once "
                                             "they have ended (the books stay, frames keep coming; /health says the "
                                             "same). The dashboard shows replaying / replay finished from it")] = None
    history: Annotated[HistoryState | None, _d("null on the live path; on /ws/{symbol}?from=..., the recorded "
                                               "moment shown, the playback speed and whether the recording "
                                               "ended: a frame of the past is never taken for a live one")] = None


encoder = msgspec.json.Encoder()


def encode(frame: Frame) -> bytes:
    return encoder.encode(frame)


def to_dict(frame: Frame) -> dict[str, Any]:
    """The frame as JSON-shaped builtins (what a client decodes)."""
    out: dict[str, Any] = msgspec.json.decode(encoder.encode(frame))
    return out


def json_schema() -> dict[str, Any]:
    """JSON Schema (2020-12) of a frame, generated from :class:`Frame`."""
    schema, components = msgspec.json.schema_components([Frame], ref_template="#/$defs/{name}")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema[0], "$defs": components}


def _type_name(hint: Any) -> str:
    """A short, readable type for the docs table: structs as ``{field, ...}``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Annotated:
        return _type_name(args[0])
    if hint is type(None):
        return "null"
    if isinstance(hint, type) and issubclass(hint, Struct):
        return "{" + ", ".join(hint.__struct_fields__) + "}"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args)
    if origin is list:
        return f"[{_type_name(args[0])}]"
    if origin is tuple:
        return "[" + ", ".join(_type_name(a) for a in args) + "]"
    if origin is dict:
        return "object"
    if origin is Literal:
        return " / ".join(f'"{a}"' for a in args)
    return {str: "str", int: "int", float: "float", bool: "bool"}.get(hint, str(hint))


def markdown_table() -> str:
    """The field table of docs/frames.md, from :class:`Frame` (fields in order)."""
    hints = typing.get_type_hints(Frame, include_extras=True)
    rows = ["| field | type | meaning |", "|---|---|---|", '| `type` | `"frame"` | |']
    for name in Frame.__struct_fields__:
        hint = hints[name]
        description = ""
        if typing.get_origin(hint) is Annotated:
            base, *extras = typing.get_args(hint)
            description = next((m.description for m in extras if isinstance(m, Meta) and m.description), "")
        else:
            base = hint
        rows.append(f"| `{name}` | {_type_name(base)} | {description} |".replace(" |  |", " | |"))
    return "\n".join(rows)


def main(argv: list[str]) -> int:
    if argv == ["schema"]:
        sys.stdout.write(msgspec.json.format(msgspec.json.encode(json_schema())).decode() + "\n")
        return 0
    if argv == ["markdown"]:
        sys.stdout.write(markdown_table() + "\n")
        return 0
    sys.stderr.write("usage: python -m features.frame schema|markdown\n")
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
