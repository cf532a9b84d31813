"""The bookTicker cross-check: a free, exact integrity check of a rebuilt book.

A bookTicker whose ``u`` equals the ``u`` of an applied depth event carries the
exchange's best bid and ask (price and quantity) right after that event. The
bookTicker stream is real time and usually arrives *before* the batched depth
event it names, so a check runs from whichever of the two comes second.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from orderbook.book_state import BookState
from wire.binance import BookTicker

Top = tuple[int | None, float, int | None, float]  # best bid key, qty, best ask key, qty


@dataclass(frozen=True, slots=True)
class TickerMismatch:
    update_id: int
    book_ticker: dict[str, Any]  # b, B, a, A as the exchange sent them
    book: dict[str, Any]  # the same four read from the local book
    raw: bytes | str | None = None  # the bookTicker message as received, when known

    def as_dict(self) -> dict[str, Any]:
        return {"update_id": self.update_id, "book_ticker": self.book_ticker, "book": self.book}


class TickerCrossCheck:
    """Matches bookTickers to applied depth events of one book by update id."""

    def __init__(self, book: BookState, remember: int = 1024) -> None:
        self.book = book
        self.remember = remember
        self.checks = 0
        self.failures = 0
        self.consecutive_failures = 0  # mismatches since the last matching check
        self.first_failure: TickerMismatch | None = None
        self.last_failure: TickerMismatch | None = None
        # bookTickers ahead of the book, by u in arrival order (u grows): only their
        # four fields are kept, and every one at or below an applied u is dropped.
        self._pending: OrderedDict[int, tuple[tuple[Any, Any, Any, Any], bytes | str | None]] = OrderedDict()
        self._applied: OrderedDict[int, Top] = OrderedDict()  # recent applied events' tops

    def reset(self) -> None:
        """Forget everything (the book was rebuilt from a new snapshot)."""
        self._pending.clear()
        self._applied.clear()
        self.consecutive_failures = 0

    def on_applied(self, u: int) -> bool | None:
        """Call right after the event with final update id ``u`` was applied.
        Returns the check's result when a waiting bookTicker named ``u``, else None."""
        book = self.book
        bids, asks = book.bids, book.asks
        bk = bids.keys()[-1] if bids else None
        ak = asks.keys()[0] if asks else None
        top = (bk, bids[bk] if bk is not None else 0.0, ak, asks[ak] if ak is not None else 0.0)
        applied = self._applied
        applied[u] = top
        if len(applied) > self.remember:
            applied.popitem(last=False)
        result = None
        pending = self._pending
        if pending:
            waiting = pending.pop(u, None)
            if waiting is not None:
                result = self._check(u, waiting[0], top, waiting[1])
            # Tickers at or below u can no longer name a future event.
            while pending and next(iter(pending)) <= u:
                pending.popitem(last=False)
            while len(pending) > 4 * self.remember:  # a stream of tickers and no depth
                pending.popitem(last=False)
        return result

    def on_book_ticker(self, ticker: BookTicker, raw: bytes | str | None = None) -> bool | None:
        """Feed one bookTicker event (``raw``: its bytes, kept for the log of a
        mismatch); returns the check's result if one was made."""
        u = ticker.update_id
        fields = (ticker.bid_price, ticker.bid_qty, ticker.ask_price, ticker.ask_qty)
        top = self._applied.get(u)
        if top is not None:
            return self._check(u, fields, top, raw)
        if u > self.book.last_update_id:
            self._pending[u] = (fields, raw)
        return None

    def _check(self, u: int, fields: tuple[Any, Any, Any, Any], top: Top, raw: bytes | str | None) -> bool:
        self.checks += 1
        book = self.book
        b, bq, a, aq = fields
        try:
            expected: Top = (book.key(b), float(bq), book.key(a), float(aq))
        except (TypeError, ValueError):
            expected = (None, float("nan"), None, float("nan"))
        if expected == top:
            self.consecutive_failures = 0
            return True
        self.failures += 1
        self.consecutive_failures += 1
        mismatch = TickerMismatch(
            u,
            {"b": b, "B": bq, "a": a, "A": aq},
            {
                "b": book.price(top[0]) if top[0] is not None else None,
                "B": top[1],
                "a": book.price(top[2]) if top[2] is not None else None,
                "A": top[3],
            },
            raw,
        )
        if self.first_failure is None:
            self.first_failure = mismatch
        self.last_failure = mismatch
        return False
