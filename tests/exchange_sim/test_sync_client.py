"""An independent client, written from binance-usdm-protocol.md only (httpx +
websockets, no simulator internals, no orderbook package), keeps books of two
symbols and must equal the exchange's true book at its last applied ``u``."""

from __future__ import annotations

import asyncio
import functools
import json
from decimal import Decimal

import httpx
import websockets

from exchange_sim import SimConfig, SimExchange
from tests.exchange_sim.conftest import wait_for
from tests.waiting import CEILING_S


class MiniBook:
    """Futures sync rules: buffer, snapshot, drop u < L, bridge U <= L <= u, pu chain."""

    def __init__(self) -> None:
        self.bids: dict[Decimal, Decimal] = {}
        self.asks: dict[Decimal, Decimal] = {}
        self.buffer: list[dict] = []
        self.last_u: int | None = None
        self.band: tuple[Decimal, Decimal] | None = None  # lowest snapshot bid, highest snapshot ask
        self.gaps = 0
        self.received = 0  # depth events seen, in sync or not
        self.applied = 0  # depth events applied to the book

    def apply(self, ev: dict) -> None:
        for side, book in (("b", self.bids), ("a", self.asks)):
            for p, q in ev[side]:
                if Decimal(q) == 0:
                    book.pop(Decimal(p), None)
                else:
                    book[Decimal(p)] = Decimal(q)
        self.last_u = ev["u"]
        self.applied += 1

    def on_event(self, ev: dict) -> None:
        self.received += 1
        if self.last_u is None:
            self.buffer.append(ev)
            return
        if ev["pu"] != self.last_u:
            self.gaps += 1
            self.last_u = None
            self.buffer = [ev]
            return
        self.apply(ev)

    def on_snapshot(self, snap: dict) -> bool:
        last_id = snap["lastUpdateId"]
        if not self.buffer or self.buffer[0]["U"] > last_id:
            return False  # older than the stream: fetch again
        self.bids = {Decimal(p): Decimal(q) for p, q in snap["bids"]}
        self.asks = {Decimal(p): Decimal(q) for p, q in snap["asks"]}
        self.band = (min(self.bids), max(self.asks))
        events = [e for e in self.buffer if e["u"] >= last_id]
        if not events or not events[0]["U"] <= last_id <= events[0]["u"]:
            return False
        self.buffer = []
        self.last_u = last_id
        prev = None
        for ev in events:
            if prev is not None and ev["pu"] != prev:
                self.last_u = None  # not in sync after all: fetch again
                return False
            self.apply(ev)
            prev = ev["u"]
        return True


def compare(book: MiniBook, truth: dict) -> None:
    """Within the snapshot's band every level equals; outside it every level the
    client holds equals the exchange's (levels it never saw are not compared)."""
    assert book.band is not None
    low_bid, high_ask = book.band
    true_bids = {Decimal(p): Decimal(q) for p, q in truth["bids"]}
    true_asks = {Decimal(p): Decimal(q) for p, q in truth["asks"]}
    in_band_bids = {p: q for p, q in book.bids.items() if p >= low_bid}
    in_band_asks = {p: q for p, q in book.asks.items() if p <= high_ask}
    assert {p: q for p, q in true_bids.items() if p >= low_bid} == in_band_bids
    assert {p: q for p, q in true_asks.items() if p <= high_ask} == in_band_asks
    for p, q in book.bids.items():
        assert true_bids.get(p) == q
    for p, q in book.asks.items():
        assert true_asks.get(p) == q
    assert max(book.bids) < min(book.asks)


ROUNDS = 10
EVENTS_PER_ROUND = 10  # about a second of the 100 ms stream



def received_more(book: MiniBook, before: int) -> bool:
    return book.received > before


def applied_more(book: MiniBook, before: int) -> bool:
    """EVENTS_PER_ROUND more events applied, or the book lost its sync (a gap)."""
    return book.applied >= before + EVENTS_PER_ROUND or book.last_u is None

async def test_independent_client_matches_true_book_every_ten_events() -> None:
    """Ten comparisons per symbol, each after ten more events applied: counted, so a
    slow machine makes the test longer, not weaker."""
    sim = SimExchange(SimConfig(symbols=("btcusdt", "ethusdt"), seed=3, speed=2.0, warmup_s=30.0))
    urls = await sim.start(host="127.0.0.1", port=0)
    books = {"btcusdt": MiniBook(), "ethusdt": MiniBook()}
    streams = "/".join(f"{s}@depth@100ms" for s in books)
    try:
        async with (
            httpx.AsyncClient(base_url=urls.rest_base_url, timeout=CEILING_S) as http,
            websockets.connect(f"{urls.ws_public_url}/stream?streams={streams}", max_size=None) as ws,
        ):

            async def reader() -> None:
                async for raw in ws:
                    msg = json.loads(raw)
                    data = msg["data"]
                    books[data["s"].lower()].on_event(data)

            task = asyncio.create_task(reader())

            async def sync(symbol: str) -> None:
                book = books[symbol]
                while book.last_u is None:
                    await wait_for(lambda: len(book.buffer) >= 2, what=f"{symbol} buffered events")
                    resp = await http.get("/fapi/v1/depth", params={"symbol": symbol.upper(), "limit": 1000})
                    assert resp.status_code == 200
                    seen = book.received
                    if not book.on_snapshot(resp.json()):
                        # Older or newer than the buffered stream: the next event changes that.
                        await wait_for(functools.partial(received_more, book, seen), what=f"{symbol} next event")

            await asyncio.gather(*(sync(s) for s in books))
            checks = 0
            for _ in range(ROUNDS):
                for symbol, book in books.items():
                    if book.last_u is None:
                        await sync(symbol)
                    start = book.applied
                    await wait_for(functools.partial(applied_more, book, start),
                                   what=f"{symbol}: {EVENTS_PER_ROUND} more events applied")
                    if book.last_u is None:
                        continue  # a gap: counted below, and fails the test
                    snapshot = (dict(book.bids), dict(book.asks), book.last_u)
                    resp = await http.get("/sim/book", params={"symbol": symbol, "update_id": snapshot[2]})
                    assert resp.status_code == 200, resp.text
                    truth = resp.json()
                    assert truth["update_id"] == snapshot[2]
                    frozen = MiniBook()
                    frozen.bids, frozen.asks, frozen.band = snapshot[0], snapshot[1], book.band
                    compare(frozen, truth)
                    checks += 1
            task.cancel()
            assert all(b.gaps == 0 for b in books.values())
            assert checks == ROUNDS * len(books)
            assert all(len(b.bids) >= 1000 and len(b.asks) >= 1000 for b in books.values())
    finally:
        await sim.stop()
