"""The whole market's light streams, as the screener keeps them: the latest value of
each stream per symbol, fed the raw combined-stream messages (from the sockets or
from a recording: the same code), and the rows built from them once a second.

Pure: no I/O, no clock read (receive times and row times are arguments). Per
message it only decodes, checks and stores the latest value; everything the rows
compute waits for :meth:`MarketState.rows`.

Streams (all combined, ``{"stream": ..., "data": ...}``):

* ``<symbol>@depth20@500ms``: the top 20 levels a side (a ``depthUpdate``);
* ``!bookTicker``: best bid/ask of every symbol whose top changed;
* ``!markPrice@arr@1s``: an array of ``markPriceUpdate`` (funding rate);
* ``!miniTicker@arr``: an array of ``24hrMiniTicker`` (24 h volume and change);
* ``!forceOrder@arr``: one ``forceOrder`` per message (at most one per symbol a second).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from features.rounding import Decimals
from screener.rows import (
    HIST_FIELDS,
    Liquidation,
    RowRules,
    SymbolLatest,
    round_in_place,
    row_values,
    with_histories,
)
from wire.binance import (
    DecodeError,
    book_ticker_decoder,
    depth_update_decoder,
    force_order_decoder,
    mark_price_decoder,
    mini_ticker_decoder,
    raw_array_decoder,
    raw_stream_decoder,
)

# The stream kinds, as counted in /health and /metrics.
PARTIAL_DEPTH = "partialDepth"
BOOK_TICKER = "bookTicker"
MARK_PRICE = "markPrice"
MINI_TICKER = "miniTicker"
FORCE_ORDER = "forceOrder"
ENVELOPE = "envelope"  # not a combined-stream message, or a stream we did not ask for
KINDS = (PARTIAL_DEPTH, BOOK_TICKER, MARK_PRICE, MINI_TICKER, FORCE_ORDER, ENVELOPE)

ALL_MARKET_STREAMS = {
    "public": ("!bookTicker",),
    "market": ("!markPrice@arr@1s", "!forceOrder@arr", "!miniTicker@arr"),
}


class Malformed(ValueError):
    """A message that decodes but carries numbers that cannot be (not finite, negative)."""


def _num(text: str, positive: bool = False) -> float:
    value = float(text)
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        raise Malformed(f"not a usable number: {text!r}")
    return value


def parse_levels(levels: list[tuple[str, str]]) -> tuple[tuple[float, float], ...]:
    """``[[price, qty], ...]`` strings as floats; quantity-0 levels left out."""
    out = []
    for p, q in levels:
        qty = _num(q)
        if qty > 0:
            out.append((_num(p, positive=True), qty))
    return tuple(out)


class MarketState:
    """The latest light-stream values of every watched symbol."""

    def __init__(self, depth_suffix: str = "@depth20@500ms", rules: RowRules | None = None) -> None:
        self.depth_suffix = depth_suffix
        self.rules = rules or RowRules()
        self.symbols: dict[str, SymbolLatest] = {}
        self.messages: Counter[str] = Counter()  # by kind (array elements counted one by one)
        self.malformed: Counter[str] = Counter()
        self.unwatched = 0  # well-formed values of symbols not watched (just dropped, or not yet listed)
        self._table: dict[str, Callable[[Any, int], None]] = {
            "!bookTicker": self._on_book_ticker,
            "!markPrice@arr@1s": self._on_mark_prices,
            "!markPrice@arr": self._on_mark_prices,
            "!miniTicker@arr": self._on_mini_tickers,
            "!forceOrder@arr": self._on_force_order,
        }

    # --- the watched symbols ---------------------------------------------------
    def watch(self, symbol: str, decimals: Decimals) -> None:
        sym = symbol.lower()
        if sym not in self.symbols:
            self.symbols[sym] = SymbolLatest(sym, decimals)

    def drop(self, symbol: str) -> None:
        self.symbols.pop(symbol.lower(), None)

    def depth_stream(self, symbol: str) -> str:
        return f"{symbol.lower()}{self.depth_suffix}"

    # --- messages ----------------------------------------------------------------
    def on_raw(self, raw: bytes | str, recv_ns: int) -> None:
        """One combined-stream message received at ``recv_ns`` (epoch ns)."""
        try:
            msg = raw_stream_decoder.decode(raw)
        except DecodeError:
            self.malformed[ENVELOPE] += 1
            return
        handler = self._table.get(msg.stream)
        recv_ms = recv_ns // 1_000_000
        if handler is not None:
            handler(msg.data, recv_ms)
        elif msg.stream.endswith(self.depth_suffix):
            self._on_partial_depth(msg.stream[: -len(self.depth_suffix)], msg.data, recv_ms)
        else:
            self.malformed[ENVELOPE] += 1

    def _latest(self, symbol: str) -> SymbolLatest | None:
        latest = self.symbols.get(symbol.lower())
        if latest is None:
            self.unwatched += 1
        return latest

    def _on_partial_depth(self, symbol: str, data: Any, recv_ms: int) -> None:
        self.messages[PARTIAL_DEPTH] += 1
        try:
            event = depth_update_decoder.decode(data)
            bids, asks = parse_levels(event.bids), parse_levels(event.asks)
        except (*DecodeError, ValueError):
            self.malformed[PARTIAL_DEPTH] += 1
            return
        latest = self._latest(symbol)
        if latest is not None:
            latest.bids, latest.asks, latest.book_ms, latest.book_u = bids, asks, recv_ms, event.final_update_id

    def _on_book_ticker(self, data: Any, _recv_ms: int) -> None:
        self.messages[BOOK_TICKER] += 1
        try:
            event = book_ticker_decoder.decode(data)
            bid, ask = _num(event.bid_price, True), _num(event.ask_price, True)
        except (*DecodeError, ValueError):
            self.malformed[BOOK_TICKER] += 1
            return
        latest = self._latest(event.symbol)
        if latest is not None:
            latest.ticker_bid, latest.ticker_ask = bid, ask

    def _elements(self, data: Any, kind: str) -> list[Any]:
        try:
            return raw_array_decoder.decode(data)
        except DecodeError:
            self.messages[kind] += 1
            self.malformed[kind] += 1
            return []

    def _on_mark_prices(self, data: Any, _recv_ms: int) -> None:
        for item in self._elements(data, MARK_PRICE):
            self.messages[MARK_PRICE] += 1
            try:
                event = mark_price_decoder.decode(item)
                # Empty for delivery contracts (no funding): unknown, not malformed.
                rate = float(event.funding_rate) if event.funding_rate else None
                if rate is not None and not math.isfinite(rate):
                    raise Malformed(event.funding_rate)
            except (*DecodeError, ValueError):
                self.malformed[MARK_PRICE] += 1
                continue
            latest = self._latest(event.symbol)
            if latest is not None:
                latest.funding_rate = rate

    def _on_mini_tickers(self, data: Any, _recv_ms: int) -> None:
        for item in self._elements(data, MINI_TICKER):
            self.messages[MINI_TICKER] += 1
            try:
                event = mini_ticker_decoder.decode(item)
                close, open_ = _num(event.close_price), _num(event.open_price)
                volume = _num(event.quote_volume)
            except (*DecodeError, ValueError):
                self.malformed[MINI_TICKER] += 1
                continue
            latest = self._latest(event.symbol)
            if latest is not None:
                latest.quote_volume = volume
                latest.change_pct = (close - open_) / open_ * 100 if open_ > 0 else None

    def _on_force_order(self, data: Any, recv_ms: int) -> None:
        self.messages[FORCE_ORDER] += 1
        try:
            order = force_order_decoder.decode(data).order
            filled = _num(order.filled_qty)
            avg = _num(order.avg_price)
            price = avg if avg > 0 else _num(order.price, True)
        except (*DecodeError, ValueError):
            self.malformed[FORCE_ORDER] += 1
            return
        latest = self._latest(order.symbol)
        if latest is not None and filled > 0:
            latest.liquidations.append(Liquidation(recv_ms, order.side, filled * price))

    # --- rows ----------------------------------------------------------------------
    def rows(self, now_ms: int, focus: Iterable[str] = ()) -> list[dict[str, Any]]:
        """Every watched symbol's row at ``now_ms``, rounded, with its histories; in
        symbol order. Call it once a second: each call is one second of history."""
        return self.rows_and_slim(now_ms, focus)[0]

    def rows_and_slim(self, now_ms: int, focus: Iterable[str] = ()) -> tuple[list[dict[str, Any]],
                                                                             list[dict[str, Any]]]:
        """:meth:`rows`, and the same rows without their histories (as /ws/screener
        sends them)."""
        focused = set(focus)
        rules = self.rules
        full, slim = [], []
        for sym, latest in sorted(self.symbols.items()):
            row = round_in_place(row_values(latest, now_ms, sym in focused, rules), latest.decimals)
            slim.append(row)
            full.append(with_histories(row, latest))
        return full, slim


def without_hist(row: dict[str, Any]) -> dict[str, Any]:
    """A row as /ws/screener sends it: without the 60 s histories."""
    return {k: v for k, v in row.items() if k not in HIST_FIELDS}


def changed_rows(previous: dict[str, dict[str, Any]], current: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows (without histories) that differ from ``previous`` in anything but their time."""
    return changed_slim_rows(previous, [without_hist(row) for row in current])


def changed_slim_rows(previous: dict[str, dict[str, Any]], current: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """:func:`changed_rows` of rows already without their histories."""
    out = []
    for slim in current:
        before = previous.get(slim["symbol"])
        if before is None or before != {**slim, "ts": before["ts"]}:
            out.append(slim)
    return out
