"""Binance USDT-M wire formats: stream names, depth windows, event and snapshot JSON.

Field names, order and string formatting follow ../shared/docs/binance-usdm-protocol.md;
prices and quantities are strings with the symbol's fixed decimals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson

from exchange_sim.market import StepOutput, SymbolMarket, Trade

DEPTH_INTERVALS_MS = (100, 250, 500)
PARTIAL_LEVELS = (5, 10, 20)
ALL = ""  # the symbol of the streams that carry every symbol (!bookTicker, !markPrice@arr, ...)
# The per-symbol and all-market streams of each websocket route (Binance routes by
# data type since 2026-04-23: high-frequency book data on /public, the rest on /market);
# unrouted URLs get the public class.
PUBLIC_KINDS = frozenset({"depth", "partialDepth", "bookTicker", "trade", "!bookTicker"})
MARKET_KINDS = frozenset({"aggTrade", "markPrice", "forceOrder", "miniTicker",
                          "!markPrice@arr", "!miniTicker@arr", "!forceOrder@arr"})
ROUTE_KINDS = {"public": PUBLIC_KINDS, "market": MARKET_KINDS, "legacy": PUBLIC_KINDS}
# Push intervals (simulated ms) of the streams that push on a clock.
ALL_BOOK_TICKER_MS = 5_000  # !bookTicker: each changed symbol's latest, every 5 s
MARK_PRICE_MS = (1_000, 3_000)  # @markPrice@1s / @markPrice (and their !...@arr)
MINI_TICKER_MS = 1_000
FORCE_ORDER_MS = 1_000  # the latest liquidation of each symbol in the last second


class StreamKey(NamedTuple):
    """What a stream name asks for: symbol (lower case; ALL for an all-market stream),
    kind, push interval (depth, partial depth, mark price) and levels (partial depth).
    A tuple: the clock looks keys up every step, and tuples hash fast."""

    symbol: str
    kind: str  # "depth" | "partialDepth" | "bookTicker" | "trade" | "aggTrade" | ... | "!bookTicker" | ...
    interval_ms: int = 0
    levels: int = 0


_ALL_STREAMS = {
    "!bookTicker": StreamKey(ALL, "!bookTicker", ALL_BOOK_TICKER_MS),
    "!markPrice@arr": StreamKey(ALL, "!markPrice@arr", 3_000),
    "!markPrice@arr@1s": StreamKey(ALL, "!markPrice@arr", 1_000),
    "!miniTicker@arr": StreamKey(ALL, "!miniTicker@arr", MINI_TICKER_MS),
    "!forceOrder@arr": StreamKey(ALL, "!forceOrder@arr", FORCE_ORDER_MS),
}
_INTERVALS = {"100ms": 100, "250ms": 250, "500ms": 500}


def parse_stream(name: str) -> StreamKey | None:
    """``btcusdt@depth@100ms`` -> StreamKey; None when not a stream we serve.

    Per symbol: ``@depth[@100ms|@250ms|@500ms]`` (diffs, 250 ms by default),
    ``@depth<5|10|20>[@100ms|@250ms|@500ms]`` (partial book), ``@bookTicker``,
    ``@trade``, ``@aggTrade``, ``@markPrice[@1s]``, ``@forceOrder``, ``@miniTicker``.
    All market: ``!bookTicker``, ``!markPrice@arr[@1s]``, ``!miniTicker@arr``,
    ``!forceOrder@arr``."""
    if name.startswith("!"):
        return _ALL_STREAMS.get(name)
    parts = name.split("@")
    if len(parts) < 2 or not parts[0] or parts[0] != parts[0].lower():
        return None
    symbol, kind, rest = parts[0], parts[1], parts[2:]
    if kind.startswith("depth"):
        levels = kind[5:]
        if levels and levels not in ("5", "10", "20"):
            return None
        if not rest:
            interval = 250
        elif len(rest) == 1 and rest[0] in _INTERVALS:
            interval = _INTERVALS[rest[0]]
        else:
            return None
        if levels:
            return StreamKey(symbol, "partialDepth", interval, int(levels))
        return StreamKey(symbol, "depth", interval)
    if kind == "markPrice":
        if not rest:
            return StreamKey(symbol, kind, 3_000)
        return StreamKey(symbol, kind, 1_000) if rest == ["1s"] else None
    if kind in ("bookTicker", "trade", "aggTrade", "forceOrder", "miniTicker") and not rest:
        return StreamKey(symbol, kind)
    return None


def dumps(obj: Any) -> str:
    return orjson.dumps(obj).decode()


@dataclass(slots=True)
class DepthWindow:
    """The engine batches one depth event of one interval merges."""

    first_id: int
    last_id: int
    prev_last_id: int  # the "pu": u of the previous event on this stream
    time_ms: int
    batches: list[StepOutput]


class DepthAggregator:
    """Cuts the engine batches into the events of one ``@depth`` interval.

    Cheap when nobody listens: it keeps references to the batches and only merges
    them into price levels when an event is actually encoded.
    """

    def __init__(self, interval_ms: int, start_u: int) -> None:
        self.interval_ms = interval_ms
        self.last_u = start_u
        self._batches: list[StepOutput] = []

    def add(self, out: StepOutput) -> DepthWindow | None:
        """Add one batch; return the finished window when ``out`` closes one."""
        if out.changes:
            self._batches.append(out)
        if out.time_ms % self.interval_ms:
            return None
        if not self._batches:
            return None
        window = DepthWindow(
            self._batches[0].changes[0][0], self._batches[-1].changes[-1][0], self.last_u, out.time_ms, self._batches
        )
        self.last_u = window.last_id
        self._batches = []
        return window


def depth_event(market: SymbolMarket, window: DepthWindow) -> dict[str, Any]:
    """The depthUpdate of ``window``: one entry per price, the latest quantity wins."""
    levels: dict[tuple[bool, int], int] = {}
    for batch in window.batches:
        for _uid, is_bid, tick, _old, new in batch.changes:
            levels[(is_bid, tick)] = new
    bid_levels = sorted(((t, q) for (b, t), q in levels.items() if b), reverse=True)
    ask_levels = sorted((t, q) for (b, t), q in levels.items() if not b)
    bids = [[market.price_str(t), market.qty_str(q)] for t, q in bid_levels]
    asks = [[market.price_str(t), market.qty_str(q)] for t, q in ask_levels]
    return depth_update(market, window, bids, asks)


def depth_update(market: SymbolMarket, window: DepthWindow, bids: list[list[str]],
                 asks: list[list[str]]) -> dict[str, Any]:
    """A ``depthUpdate`` message of ``window`` carrying these levels (the diff and the
    partial book streams share its fields)."""
    return {
        "e": "depthUpdate",
        "E": window.time_ms + 1,
        "T": window.time_ms,
        "s": market.symbol.upper(),
        "U": window.first_id,
        "u": window.last_id,
        "pu": window.prev_last_id,
        "b": bids,
        "a": asks,
    }


def partial_depth_event(market: SymbolMarket, window: DepthWindow, levels: int) -> dict[str, Any]:
    """``<symbol>@depth<levels>``: the best ``levels`` of each side after ``window``,
    with the window's update ids (as the diff stream of the same interval)."""
    return depth_update(
        market, window,
        [[market.price_str(t), market.qty_str(q)] for t, q in market.top_levels(True, levels)],
        [[market.price_str(t), market.qty_str(q)] for t, q in market.top_levels(False, levels)],
    )


def book_ticker_event(market: SymbolMarket, top: tuple[int, int, int, int, int], time_ms: int) -> dict[str, Any]:
    uid, bt, bq, at, aq = top
    return {
        "e": "bookTicker",
        "u": uid,
        "E": time_ms + 1,
        "T": time_ms,
        "s": market.symbol.upper(),
        "b": market.price_str(bt),
        "B": market.qty_str(bq),
        "a": market.price_str(at),
        "A": market.qty_str(aq),
    }


def agg_trade_event(market: SymbolMarket, trade: Trade) -> dict[str, Any]:
    return {
        "e": "aggTrade",
        "E": trade.time_ms + 1,
        "s": market.symbol.upper(),
        "a": trade.agg_id,
        "p": market.price_str(trade.tick),
        "q": market.qty_str(trade.lots),
        "nq": market.qty_str(trade.lots),  # no RPI orders here: all of it
        "f": trade.first_id,
        "l": trade.last_id,
        "T": trade.time_ms,
        "m": trade.seller_aggressor,
    }


def trade_event(market: SymbolMarket, trade: Trade) -> list[dict[str, Any]]:
    """The ``@trade`` messages of one aggregated trade: one per resting order filled."""
    symbol = market.symbol.upper()
    price = market.price_str(trade.tick)
    return [
        {"e": "trade", "E": trade.time_ms + 1, "T": trade.time_ms, "s": symbol, "t": trade.first_id + i,
         "p": price, "q": market.qty_str(lots), "X": "MARKET", "m": trade.seller_aggressor}
        for i, lots in enumerate(trade.fills or (trade.lots,))
    ]


def snapshot_body(
    market: SymbolMarket, update_id: int, bids: dict[int, int], asks: dict[int, int], limit: int, time_ms: int
) -> dict[str, Any]:
    """GET /fapi/v1/depth body: best first, at most ``limit`` levels a side."""
    top_bids = sorted(bids, reverse=True)[:limit]
    top_asks = sorted(asks)[:limit]
    return {
        "lastUpdateId": update_id,
        "E": time_ms + 1,
        "T": time_ms,
        "bids": [[market.price_str(t), market.qty_str(bids[t])] for t in top_bids],
        "asks": [[market.price_str(t), market.qty_str(asks[t])] for t in top_asks],
    }


def snapshot_now(market: SymbolMarket, limit: int) -> dict[str, Any]:
    """The live book's snapshot, without copying the whole book."""
    bids = dict(market.top_levels(True, limit))
    asks = dict(market.top_levels(False, limit))
    return snapshot_body(market, market.update_id, bids, asks, limit, market.now_ms)
