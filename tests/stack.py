"""The product's loopback stack for the tests (``sim_stack.running_stack``, see
there), and the test-only oracle that compares a feed's book with the exchange's.

    async with running_stack(symbols=("btcusdt", "ethusdt"), push_interval_s=0.2) as h:
        await h.wait_synced()
        assert book_mismatches(h.feed("btcusdt"), h.sim) == []
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import sim_stack
from exchange_sim.exchange import SimExchange
from sim_stack import StackHandle, depth_interval_ms, last_published_u

__all__ = ["TEST_WARMUP_S", "StackHandle", "book_mismatches", "depth_interval_ms", "last_published_u",
           "running_stack"]

# Simulated seconds the exchange runs before serving, for the tests. The book starts
# whole (every level of the snapshot's band), and no test's oracle reads further back
# than the run itself (the true book at the feed's own update ids, the labels of
# episodes scheduled after the warm-up), so the tests need much less than the 20 s
# the tools use; each one costs about 0.1 s of CPU per symbol. A test that needs more
# history passes ``sim_config={"warmup_s": ...}``.
TEST_WARMUP_S = 3.0


@contextlib.asynccontextmanager
async def running_stack(symbols: tuple[str, ...] = ("btcusdt", "ethusdt"), sim_config: dict[str, Any] | None = None,
                        **overrides: Any) -> AsyncIterator[StackHandle]:
    """``sim_stack.running_stack`` with the tests' shorter warm-up (see TEST_WARMUP_S)."""
    async with sim_stack.running_stack(symbols, {"warmup_s": TEST_WARMUP_S, **(sim_config or {})},
                                       **overrides) as handle:
        yield handle


def book_mismatches(feed: Any, sim: SimExchange) -> list[str]:
    """Differences between a feed's book and the exchange's true book at the same
    update id. Read without awaiting, so both sides are at one instant.

    The client holds what the 1,000-level snapshot and the diffs gave: every level
    it holds must equal the exchange's, and inside the price band the snapshot
    covered it must hold every level the exchange holds. Beyond that band the
    exchange has levels no snapshot ever sent (Binance behaves the same way)."""
    book = feed.book
    truth = sim.true_book(feed.symbol, update_id=book.last_update_id)
    problems: list[str] = []
    if truth.update_id != book.last_update_id:
        return [f"truth at {truth.update_id}, book at {book.last_update_id}"]
    band = book.snapshot_band
    for side, mine, theirs_raw in (("bid", book.bids, truth.bids), ("ask", book.asks, truth.asks)):
        theirs = {book.key(p): float(q) for p, q in theirs_raw}
        for k, q in mine.items():
            if theirs.get(k) != q:
                problems.append(f"{side} {book.price(k)}: book {q}, exchange {theirs.get(k)}")
        lo, hi = (band.bid_low, band.bid_high) if side == "bid" else (band.ask_low, band.ask_high)
        for k, q in theirs.items():
            if lo <= k <= hi and k not in mine:
                problems.append(f"{side} {book.price(k)}: missing (exchange {q})")
    return problems[:10]
