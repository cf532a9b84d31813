"""The frame pushed on ``/ws/{symbol}``: one typed definition.

The frame is built as these structs and encoded by msgspec; docs/frames.md's tables
and the JSON Schema served at ``/schema/frame.json`` are generated from the same
definitions (``python -m features.frame markdown`` / ``schema``), so the three
cannot drift. Every metric follows docs/metrics.md; a value that cannot be
computed is ``null``. Each number's field names how it is written
(features/rounding.py): frames are built at full precision and rounded once, by
:func:`encode`.
"""

from __future__ import annotations

import sys
import types
import typing
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

from features.rounding import (
    AS_GIVEN,
    BOOK_PRICE,
    DERIVED_PRICE,
    DURATION,
    EXCHANGE_PRICE,
    EXCHANGE_QTY,
    PRICE,
    QTY,
    QUOTE,
    RATIO,
    TIME,
    Decimals,
    Pair,
    doc_of,
    rounded,
    rule_of,
)

Price = Annotated[float, PRICE]
Qty = Annotated[float, QTY]
BookPrice = Annotated[float, BOOK_PRICE]  # a level's price, as the book holds it
ExchangeQty = Annotated[float, EXCHANGE_QTY]  # a quantity as the exchange sent it


def _d(text: str) -> Meta:
    return Meta(description=text)


class SyncInfo(Struct, kw_only=True):
    """The book's state as the runtime shows it."""

    state: Annotated[str, _d("awaiting_snapshot / synced / quiet / resyncing / stale; quiet is in sync on a "
                             "live connection with no message for 5 s (served with full metrics)")]
    reason: Annotated[str | None, _d("why the book is in this state")] = None
    last_update_id: Annotated[int | None, _d("u of the last applied depth event")] = None
    last_message_age_s: Annotated[float | None, _d("seconds since the symbol's last message"), DURATION] = None


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
    """A level that is a wall in this frame (docs/metrics.md, "Wall")."""

    side: Literal["bid", "ask"]
    price: BookPrice
    size: ExchangeQty
    multiple: Annotated[float, _d("size / median size of the top levels"), RATIO]
    age_s: Annotated[float, _d("seconds at this price at wall size"), DURATION]


AlertType = Literal["WALL", "LAYERING", "EXHAUSTION", "LIQUIDATION_BURST"]
AlertStatus = Literal["born", "grown", "shrunk", "moved", "returned", "refired", "removed", "ended"]


class AlertEvent(Struct, kw_only=True):
    """One change in an alert's life."""

    ts: Annotated[float, _d("the detector sample, seconds since the epoch"), TIME]
    status: Annotated[AlertStatus, _d("what changed (docs/metrics.md, \"Alerts\")")]
    price: Annotated[float | None, _d("the alert's price after the change"), PRICE] = None
    size: Annotated[float | None, _d("its size after the change (before it, for removed)"), QTY] = None


class BurstResponse(Struct, kw_only=True):
    """A liquidation burst and the liquidity response of the side it hit (docs/metrics.md,
    "Liquidity response to a liquidation burst"). Liquidation figures are lower bounds."""

    start_ts: Annotated[float, _d("exchange time of the burst's first liquidation, seconds since the epoch"), TIME]
    liquidation_side: Annotated[Literal["buy", "sell"], _d("the forced orders' side: sell = longs liquidated, "
                                                           "selling into the bids")]
    count: Annotated[int, _d("liquidations received in the burst (at most one a second is sent)")]
    qty: Annotated[float, _d("their filled quantity, base asset"), QTY]
    notional: Annotated[float, _d("their filled notional, USDT"), QUOTE]
    largest_notional: Annotated[float, _d("the largest one's notional, USDT"), QUOTE]
    depth_before_10bps: Annotated[float | None, _d("hit side's depth within 10 bps of mid at the last frame "
                                                   "before the first liquidation, base asset; null: no depth "
                                                   "there then, the band is not measured"), QTY] = None
    depth_before_25bps: Annotated[float | None, _d("the same within 25 bps"), QTY] = None
    depth_min_10bps: Annotated[float | None, _d("its minimum since (until refilled)"), QTY] = None
    depth_min_25bps: Annotated[float | None, _d("the same within 25 bps"), QTY] = None
    drain_pct_10bps: Annotated[float | None, _d("(before - minimum) / before, %"), RATIO] = None
    drain_pct_25bps: Annotated[float | None, _d("the same within 25 bps"), RATIO] = None
    refill_s_10bps: Annotated[float | None, _d("seconds from the first liquidation until the depth is back to "
                                               "90 % of before; null: not yet, or not measured "
                                               "(0: it never fell below)"),
                              DURATION] = None
    refill_s_25bps: Annotated[float | None, _d("the same within 25 bps"), DURATION] = None
    refilled: Annotated[bool, _d("every measured band (depth before not null) back to 90 % of before")] = False


class FrameAlert(Struct, kw_only=True):
    """One alert over its life: the same id from birth to removal (docs/metrics.md, "Alerts")."""

    id: Annotated[str, _d("stable over the alert's life: <symbol>-<n>")]
    type: AlertType
    status: Annotated[AlertStatus, _d("its latest change: born; grown, shrunk; moved, returned (walls); "
                                      "refired (layering); then removed (walls) or ended (layering, exhaustion)")]
    live: Annotated[bool, _d("false once removed or ended")]
    symbol: str
    side: Literal["bid", "ask"]
    price: Annotated[float | None, _d("wall: its price now; layering: the run level nearest the mid; "
                                      "exhaustion: the side's best price"), PRICE]
    price_bin: Annotated[int | None, _d("the heatmap bin (bin_size wide) holding price: alerts are grouped by "
                                        "side and price_bin")]
    ts: Annotated[float, _d("the 1 Hz detector sample this state is from, seconds since the epoch"), TIME]
    born_ts: Annotated[float, _d("when the detector's rule fired, seconds since the epoch"), TIME]
    age_s: Annotated[float, _d("wall: since first seen at wall size, over all its prices (so > 5 s at birth); "
                               "layering, exhaustion: since born"), DURATION]
    size: Annotated[float, _d("wall: the level's size; layering: the run levels' total; exhaustion: the top-N "
                              "depth missing against its 15 s mean; base asset"), QTY]
    notional: Annotated[float | None, _d("size in USDT (price x size per level; exhaustion: x mid)"), QUOTE]
    peak_notional: Annotated[float | None, _d("the largest notional over the alert's life (the filter's "
                                              "figure)"), QUOTE]
    distance_bps: Annotated[float | None, _d("abs(price - mid) / mid, bps"), RATIO]
    depth_share: Annotated[float | None, _d("size / top-20 depth of its side (exhaustion: / its mean top-N "
                                            "depth), 0..1"), RATIO]
    score: Annotated[float | None, _d("notional / (1 + distance_bps / 10): orders alerts by significance"),
                     QUOTE]
    multiple: Annotated[float | None, _d("wall: size / rolling median; layering: its smallest level's"),
                        RATIO] = None
    levels: Annotated[int | None, _d("layering: number of run levels (the size of C_t)")] = None
    churn: Annotated[float | None, _d("layering: churn at its latest firing"), RATIO] = None
    reason: Annotated[str | None, _d("removed: pulled, filled, out_of_view or resync; ended: cleared or "
                                     "resync; a liquidation burst ends refilled, not_refilled (watched "
                                     "120 s), unmeasured (no book in sync before it) or resync")] = None
    remaining: Annotated[float | None, _d("removed wall: quantity left at its price"), QTY] = None
    traded_qty: Annotated[float | None, _d("removed wall: traded at its price against it in the last second"),
                          QTY] = None
    events: Annotated[list[AlertEvent], _d("its life so far: the first change and the latest ones (at most "
                                           "8)")] = msgspec.field(default_factory=list)
    burst: Annotated[BurstResponse | None, _d("LIQUIDATION_BURST: the burst and the liquidity response")] = None


class Binned(Struct, kw_only=True):
    """Sizes per price bin: bin i covers [(bin0 + i) * bin_size, (bin0 + i + 1) * bin_size)."""

    bin0: Annotated[int, _d("absolute index of the first bin")]
    bin_size: Annotated[float, _d("price width of a bin"), PRICE]
    sizes: Annotated[list[float], _d("base asset per bin"), QTY]


class TradePrint(Struct, kw_only=True, omit_defaults=True):
    """One trade (aggTrade) since the previous frame."""

    ts: Annotated[float, _d("local receive time, seconds since the epoch"), TIME]
    price: Annotated[float, EXCHANGE_PRICE]
    qty: ExchangeQty
    side: Annotated[Literal["buy", "sell"], _d("the aggressor")]
    nq: Annotated[ExchangeQty | None, _d("quantity without fills against RPI orders, when the exchange sent it")] = \
        None


class LiquidationPrint(Struct, kw_only=True):
    """One liquidation (forceOrder) since the previous frame."""

    ts: Annotated[float, _d("local receive time, seconds since the epoch"), TIME]
    trade_ts: Annotated[float, _d("the exchange's time of the forced order (o.T), seconds since the epoch"), TIME]
    side: Annotated[Literal["buy", "sell"], _d("the forced order's side: sell = a long liquidated, selling into "
                                               "the bids; buy = a short, buying from the asks")]
    price: Annotated[float, _d("average price of its fills (o.ap)"), DERIVED_PRICE]
    qty: Annotated[float, _d("filled quantity (o.z)"), EXCHANGE_QTY]
    notional: Annotated[float, _d("price x qty, USDT"), QUOTE]


class LiquidationTotals(Struct, kw_only=True):
    """Liquidations of one side received in one window (lower bounds)."""

    count: int
    qty: Annotated[float, _d("base asset"), QTY]
    notional: Annotated[float, _d("USDT"), QUOTE]
    largest_notional: Annotated[float | None, _d("the largest one's notional, USDT"), QUOTE] = None
    largest_qty: Annotated[float | None, _d("its quantity"), QTY] = None
    largest_price: Annotated[float | None, _d("its average price"), DERIVED_PRICE] = None


class LiquidationSides(Struct, kw_only=True):
    """Per forced-order side: sell = longs liquidated, buy = shorts liquidated."""

    sell: LiquidationTotals
    buy: LiquidationTotals


class LiquidationStats(Struct, kw_only=True):
    """Liquidations received in the last 1 s, 1 min and 5 min, per side. Binance sends at
    most the latest liquidation per symbol per 1000 ms: every figure is a lower bound."""

    last_1s: LiquidationSides
    last_1m: LiquidationSides
    last_5m: LiquidationSides


class MarkInfo(Struct, kw_only=True):
    """Mark price and funding from the latest markPriceUpdate (docs/metrics.md)."""

    mark_price: Annotated[float, DERIVED_PRICE]
    index_price: Annotated[float, DERIVED_PRICE]
    estimated_settle_price: Annotated[float | None, DERIVED_PRICE] = None
    basis_bps: Annotated[float, _d("(mark - index) / index, bps"), RATIO]
    mark_mid_bps: Annotated[float | None, _d("(mark - mid) / mid, bps; null without a book"), RATIO] = None
    funding_rate: Annotated[float | None, _d("per funding interval (a fraction: 0.0001 = 0.01 %)"), RATIO] = None
    funding_rate_annual: Annotated[float | None, _d("funding_rate x 3 x 365 (the 8-hour schedule), a "
                                                    "fraction"), RATIO] = None
    next_funding_time: Annotated[float | None, _d("seconds since the epoch"), TIME] = None
    funding_in_s: Annotated[float | None, _d("seconds from the frame to the next funding"), DURATION] = None
    age_s: Annotated[float, _d("seconds since the update was received"), DURATION]


class OpenInterestInfo(Struct, kw_only=True):
    """The latest open interest poll and its change (docs/metrics.md)."""

    open_interest: Annotated[float, _d("base asset"), QTY]
    notional: Annotated[float | None, _d("open_interest x mark price (mid without one), USDT"), QUOTE] = None
    age_s: Annotated[float, _d("seconds since the poll was answered"), DURATION]
    change_1m: Annotated[float | None, _d("latest - the poll 1 min before it (null until the polls reach back "
                                          "that far), base asset"), QTY] = None
    change_5m: Annotated[float | None, _d("the same over 5 min"), QTY] = None
    change_1h: Annotated[float | None, _d("the same over 1 h"), QTY] = None
    change_1m_pct: Annotated[float | None, _d("change_1m / the earlier value, %"), RATIO] = None
    change_5m_pct: Annotated[float | None, RATIO] = None
    change_1h_pct: Annotated[float | None, RATIO] = None


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
                                   "recorded receive time of the last message played"), TIME]
    ts_event_ms: Annotated[int | None, _d("exchange event time E of the last applied depth event")]
    seq: Annotated[int, _d("frame counter of this symbol (gaps = frames a slow client missed; through an "
                           "API node also frames built while the bus was down, never sent; an API node's "
                           "stale frames repeat the last seq, as no frame was built)")]
    sync: Annotated[SyncInfo, _d("state: awaiting_snapshot / synced / quiet / resyncing / stale (quiet: in sync "
                                 "on a live connection, no message for 5 s; served with full metrics)")]
    best_bid: BookPrice | None = None
    best_ask: BookPrice | None = None
    mid_price: Annotated[float | None, DERIVED_PRICE] = None
    spread: Annotated[float | None, _d("best ask - best bid"), PRICE] = None
    spread_bps: Annotated[float | None, _d("spread / mid, bps"), RATIO] = None
    microprice: Annotated[float | None, _d("size-weighted mid of level 1"), DERIVED_PRICE] = None
    imbalance: Annotated[float | None, _d("top-N volume imbalance, in [-1, 1]"), RATIO] = None
    imbalance_l1: Annotated[float | None, _d("level-1 imbalance, in [-1, 1]"), RATIO] = None
    ofi: Annotated[float | None, _d("Cont-Kukanov-Stoikov OFI summed over the last 1 s, base asset"), QTY] = None
    ofi_levels: Annotated[list[float] | None, _d("multi-level OFI, levels 1..N"), QTY] = None
    depth_delta: Annotated[float | None, _d("change over 1 s of (total_bid_volume - total_ask_volume)"), QTY] = None
    total_bid_volume: Annotated[float | None, _d("top-N sum"), QTY] = None
    total_ask_volume: Annotated[float | None, _d("top-N sum"), QTY] = None
    depth_weighted_price: Annotated[BidAsk, _d("size-weighted price of the top N, per side"), DERIVED_PRICE] = \
        msgspec.field(default_factory=BidAsk)
    depth_weighted_mid: Annotated[float | None, DERIVED_PRICE] = None
    slope: Annotated[BidAsk, _d("base asset per bp, per side"), RATIO] = msgspec.field(default_factory=BidAsk)
    cumulative_depth: Annotated[BidAskLists, _d("cumulative quantity over levels 1..N, per side"), QTY] = \
        msgspec.field(default_factory=BidAskLists)
    depth_bands: Annotated[DepthBands, _d("whole book, quantity within each band of bps of mid"), QTY] = \
        msgspec.field(default_factory=DepthBands)
    bid_levels: Annotated[list[tuple[float, float]], _d("[price, qty], best first, frame_levels (50) a side"),
                          Pair(BOOK_PRICE, EXCHANGE_QTY)] = msgspec.field(default_factory=list)
    ask_levels: Annotated[list[tuple[float, float]], _d("[price, qty], best first, frame_levels (50) a side"),
                          Pair(BOOK_PRICE, EXCHANGE_QTY)] = msgspec.field(default_factory=list)
    walls: Annotated[list[FrameWall], _d("levels that are walls in this frame")] = msgspec.field(default_factory=list)
    alerts: Annotated[list[FrameAlert], _d("every live alert (its state at the latest 1 Hz detector sample) and "
                                           "every alert that ended since the previous frame (its final state); "
                                           "GET /alerts/{symbol} has the last 180 s")] = \
        msgspec.field(default_factory=list)
    heatmap: Annotated[Binned | None, _d("resting size per price bin around the mid (whole book)")] = None
    volume_profile: Annotated[Binned | None, _d("mean resting size per bin over the last 180 s")] = None
    trades: Annotated[list[TradePrint], _d("trades since the previous frame; side = aggressor; nq (quantity "
                                           "without RPI fills) only when the exchange sent it; features use qty")] = \
        msgspec.field(default_factory=list)
    liquidations: Annotated[list[LiquidationPrint], _d("liquidations (forceOrder) received since the previous "
                                                       "frame; at most one a second per symbol is sent")] = \
        msgspec.field(default_factory=list)
    liquidation_stats: Annotated[LiquidationStats | None, _d("liquidations in the last 1 s / 1 min / 5 min per "
                                                             "side, lower bounds; null when the liquidation stream "
                                                             "is not watched")] = None
    mark: Annotated[MarkInfo | None, _d("mark, index, basis, funding; null before the first markPrice update "
                                        "or once the last is older than 10 s")] = None
    open_interest: Annotated[OpenInterestInfo | None, _d("open interest and its change; null before the first "
                                                         "poll")] = None
    feed: Annotated[dict[str, Any], _d("messages_per_s, depth_events_per_s, lag_ms, latency_p50_ms, latency_p99_ms, "
                                       "gaps, resyncs, reconnects, book_ticker_checks, book_ticker_failures. In a "
                                       "replay lag_ms is the recording's: its receive time minus the exchange's "
                                       "event time, as recorded (negative when the recorder's clock was behind the "
                                       "exchange's)"), AS_GIVEN] = msgspec.field(default_factory=dict)
    replay: Annotated[ReplayState | None, _d("null for live and simulated data; with --source replay, "
                                             "{finished: false} while the recordings play and {finished: true} once "
                                             "they have ended (the books stay, frames keep coming; /health says the "
                                             "same). The dashboard shows replaying / replay finished from it")] = None
    history: Annotated[HistoryState | None, _d("null on the live path; on /ws/{symbol}?from=..., the recorded "
                                               "moment shown, the playback speed and whether the recording "
                                               "ended: a frame of the past is never taken for a live one")] = None


encoder = msgspec.json.Encoder()


def encode(frame: Frame, dec: Decimals | None = None) -> bytes:
    """The frame's JSON; with ``dec`` (the symbol's decimals) every number is written by
    its field's rule (docs/frames.md, "rounding"). The frame itself is not changed."""
    return encoder.encode(frame if dec is None else rounded(frame, dec))


def to_dict(frame: Frame, dec: Decimals | None = None) -> dict[str, Any]:
    """The frame as JSON-shaped builtins (what a client decodes)."""
    out: dict[str, Any] = msgspec.json.decode(encode(frame, dec))
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


def _description(hint: Any) -> str:
    if typing.get_origin(hint) is Annotated:
        for m in typing.get_args(hint)[1:]:
            if isinstance(m, Meta) and m.description:
                return str(m.description)
    return ""


def _rows(cls: type[Struct], first: list[str]) -> tuple[list[str], list[type[Struct]]]:
    """Table rows of ``cls``'s fields, and the structs below it that get a table of their own."""
    hints = typing.get_type_hints(cls, include_extras=True)
    rows = ["| field | type | meaning | rounding |", "|---|---|---|---|", *first]
    nested: list[type[Struct]] = []
    for name in cls.__struct_fields__:
        hint = hints[name]
        how = rule_of(hint)
        if isinstance(how, type) and how not in nested:
            nested.append(how)
        rows.append(f"| `{name}` | {_type_name(hint)} | {_description(hint)} | {doc_of(hint)} |"
                    .replace(" |  |", " | |").replace(" |  |", " | |"))
    return rows, nested


def markdown_table() -> str:
    """The field tables of docs/frames.md, from :class:`Frame` (fields in order), then
    one table per object it holds (walls, alerts, ...), with the rounding of every number."""
    rows, nested = _rows(Frame, ['| `type` | `"frame"` | | |'])
    done: list[type[Struct]] = []
    while nested:
        cls = nested.pop(0)
        if cls in done or not any(rule_of(h) for h in typing.get_type_hints(cls, include_extras=True).values()):
            continue
        done.append(cls)
        sub, more = _rows(cls, [])
        nested.extend(more)
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        rows += ["", f"`{cls.__name__}`: {doc}" if doc else f"`{cls.__name__}`", "", *sub]
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
