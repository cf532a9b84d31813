"""A market of many symbols: exchangeInfo, the activity skew, the all-market and
partial-book streams in Binance's wire shape, regimes and episodes on the moving market."""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
import pytest_asyncio
import websockets

from exchange_sim import SimConfig, SimExchange
from exchange_sim.contracts import BY_SYMBOL, CONTRACTS, market_symbols, parse_market, with_market
from exchange_sim.episodes import EPISODE_KINDS, EpisodeRun, EpisodeScheduler, register
from exchange_sim.market import SymbolMarket
from exchange_sim.protocol import StreamKey
from exchange_sim.regimes import Regime
from exchange_sim.settings import spec_for
from exchange_sim.venue import KEY_ALL_MARK, KEY_ALL_MINI_TICKER, Venue
from tests.waiting import CEILING_S
from wire.binance import BookTicker, DepthUpdate, stream_message_decoder

MARKET = market_symbols(8)

# Binance's own examples of each message (its USDS-M futures stream pages): the
# simulated messages must have the same keys, nesting and JSON types.
BINANCE: dict[str, Any] = {
    "partialDepth": {"e": "depthUpdate", "E": 1571889248277, "T": 1571889248276, "s": "BTCUSDT",
                     "U": 390497796, "u": 390497878, "pu": 390497794,
                     "b": [["7403.89", "0.002"]], "a": [["7405.96", "3.340"]]},
    "bookTicker": {"e": "bookTicker", "u": 400900217, "E": 1568014460893, "T": 1568014460891, "s": "BNBUSDT",
                   "b": "25.35190000", "B": "31.21000000", "a": "25.36520000", "A": "40.66000000"},
    "markPriceUpdate": {"e": "markPriceUpdate", "E": 1562305380000, "s": "BTCUSDT", "p": "11794.15000000",
                        "i": "11784.62659091", "P": "11784.25641265", "r": "0.00038167", "T": 1562306400000},
    "24hrMiniTicker": {"e": "24hrMiniTicker", "E": 123456789, "s": "BTCUSDT", "c": "0.0025", "o": "0.0010",
                       "h": "0.0025", "l": "0.0010", "v": "10000", "q": "18"},
    "forceOrder": {"e": "forceOrder", "E": 1568014460893,
                   "o": {"s": "BTCUSDT", "S": "SELL", "o": "LIMIT", "f": "IOC", "q": "0.014", "p": "9910",
                         "ap": "9910", "X": "FILLED", "l": "0.014", "z": "0.014", "T": 1568014460893}},
}


def shape(value: Any) -> Any:
    """Keys, nesting and JSON types of a message, without its values."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__
on_the_market = pytest.mark.asyncio(loop_scope="module")  # the tests reading the shared exchange


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def market() -> AsyncIterator[SimExchange]:
    sim = SimExchange(SimConfig(symbols=MARKET, seed=4, warmup_s=5.0, speed=3.0, regime="volatile",
                                episodes=False))
    await sim.start(port=0)
    try:
        yield sim
    finally:
        await sim.stop()


async def messages(url: str, streams: list[str], count: int) -> list[dict[str, Any]]:
    """The first ``count`` messages of a combined-stream connection."""
    async with websockets.connect(f"{url}/stream?streams={'/'.join(streams)}", max_size=None) as ws:
        return [json.loads(await asyncio.wait_for(ws.recv(), CEILING_S)) for _ in range(count)]


def test_the_contract_table_has_three_hundred_plausible_contracts() -> None:
    assert len(CONTRACTS) >= 300 and len({c.symbol for c in CONTRACTS}) == len(CONTRACTS)
    for c in CONTRACTS:
        assert c.symbol.endswith("usdt") and c.symbol == c.symbol.lower()
        assert 2e-4 >= c.tick / c.price >= 1e-7, c  # four to six significant digits of price
        assert c.lot * c.price <= 300.0, c  # one lot is worth little (SOLUSDT's, a whole SOL, most)
    activity = [c.activity for c in CONTRACTS[:300]]
    assert activity == sorted(activity, reverse=True)
    assert activity[0] == 1.0 and activity[9] <= 0.1 and activity[299] <= 0.001
    assert market_symbols(3) == ("btcusdt", "ethusdt", "solusdt")
    assert parse_market("2") == ("btcusdt", "ethusdt") and parse_market("SOLUSDT, xrpusdt") == ("solusdt", "xrpusdt")
    assert with_market(("ethusdt",), "3") == ("ethusdt", "btcusdt", "solusdt")
    with pytest.raises(ValueError):
        market_symbols(len(CONTRACTS) + 1)


@on_the_market
async def test_exchange_info_lists_every_symbol_with_its_filters(market: SimExchange) -> None:
    assert market.urls is not None
    async with httpx.AsyncClient(base_url=market.urls.rest_base_url) as http:
        info = (await http.get("/fapi/v1/exchangeInfo")).json()
    by_symbol = {s["symbol"]: {f["filterType"]: f for f in s["filters"]} for s in info["symbols"]}
    assert set(by_symbol) == {s.upper() for s in MARKET}
    for symbol in MARKET:
        c = BY_SYMBOL[symbol]
        filters = by_symbol[symbol.upper()]
        assert Decimal(filters["PRICE_FILTER"]["tickSize"]) == Decimal(str(c.tick)), symbol
        assert Decimal(filters["LOT_SIZE"]["stepSize"]) == Decimal(str(c.lot)), symbol


def test_a_few_symbols_are_busy_and_the_tail_updates_every_few_seconds() -> None:
    """The ten busiest contracts and the last twenty of a 300-symbol market (a
    contract's activity is its own, whatever else trades)."""
    tail = market_symbols(300)[-20:]
    venue = Venue(SimConfig(symbols=market_symbols(10) + tail, seed=2, warmup_s=0.0, regime="volatile",
                            start_ms=1_700_000_000_000))
    changes: Counter[str] = Counter()
    events: Counter[str] = Counter()  # @depth@0ms events: batches that changed the book
    for symbol, state in venue.symbols.items():
        agg = state.aggregators[100]
        original = agg.add

        def counting(out: Any, symbol: str = symbol, original: Any = original) -> Any:
            if out.changes:
                events[symbol] += 1
                changes[symbol] += len(out.changes)
            return original(out)

        agg.add = counting  # type: ignore[method-assign]
    for _ in range(20 * 60):  # a simulated minute
        venue.step_all()
    assert events["btcusdt"] >= 1150 and events["ethusdt"] >= 1150  # every 50 ms batch
    assert all(5 <= events[s] <= 120 for s in tail), {s: events[s] for s in tail}  # every 0.5 to 12 s
    assert changes["btcusdt"] > 100 * changes[tail[0]]


@on_the_market
async def test_partial_book_depth_is_the_true_top_of_the_book(market: SimExchange) -> None:
    assert market.urls is not None
    for name in ("ethusdt@depth5@100ms", "solusdt@depth10", "btcusdt@depth20@500ms"):
        levels = int(name.split("@")[1][5:])
        msgs = await messages(market.urls.ws_public_url, [name], 4)
        for prev, msg in zip(msgs, msgs[1:], strict=False):
            ev = msg["data"]
            assert msg["stream"] == name
            assert list(ev) == ["e", "E", "T", "s", "U", "u", "pu", "b", "a"] and ev["e"] == "depthUpdate"
            assert shape(ev) == shape(BINANCE["partialDepth"])
            assert ev["pu"] == prev["data"]["u"] and ev["U"] > ev["pu"]
            assert len(ev["b"]) == levels and len(ev["a"]) == levels
            symbol = ev["s"].lower()
            truth = market.true_book(symbol, update_id=ev["u"])
            assert [list(x) for x in truth.bids[:levels]] == ev["b"]
            assert [list(x) for x in truth.asks[:levels]] == ev["a"]


@on_the_market
async def test_all_market_streams_in_binance_shape(market: SimExchange) -> None:
    assert market.urls is not None
    served = {s.upper() for s in MARKET}
    got = await messages(market.urls.ws_market_url, ["!markPrice@arr@1s", "!miniTicker@arr"], 4)
    marks = [m["data"] for m in got if m["stream"] == "!markPrice@arr@1s"]
    minis = [m["data"] for m in got if m["stream"] == "!miniTicker@arr"]
    assert marks and minis
    for arr in marks:
        assert {e["s"] for e in arr} == served
        for e in arr:
            assert list(e) == ["e", "E", "s", "p", "i", "P", "r", "T"] and e["e"] == "markPriceUpdate"
            assert shape(e) == shape(BINANCE["markPriceUpdate"])
            assert e["T"] % (8 * 3600 * 1000) == 0 and 0 < e["T"] - e["E"] <= 8 * 3600 * 1000
            assert abs(float(e["r"])) <= 0.0075 and abs(float(e["p"]) / float(e["i"]) - 1) < 0.005
    for arr in minis:
        assert {e["s"] for e in arr} <= served and arr
        for e in arr:
            assert list(e) == ["e", "E", "s", "c", "o", "h", "l", "v", "q"] and e["e"] == "24hrMiniTicker"
            assert shape(e) == shape(BINANCE["24hrMiniTicker"])
            assert float(e["l"]) <= float(e["c"]) <= float(e["h"]) and float(e["q"]) > 0
    tickers = await messages(market.urls.ws_public_url, ["!bookTicker"], len(MARKET))
    symbols = set()
    for msg in tickers:
        e = msg["data"]
        assert msg["stream"] == "!bookTicker"
        assert list(e) == ["e", "u", "E", "T", "s", "b", "B", "a", "A"] and Decimal(e["b"]) < Decimal(e["a"])
        assert shape(e) == shape(BINANCE["bookTicker"])
        symbols.add(e["s"])
    assert len(symbols) >= len(MARKET) // 2  # each changed symbol's latest quote, every 5 s


async def test_liquidations_reach_force_order_streams() -> None:
    sim = SimExchange(SimConfig(symbols=("btcusdt", "ethusdt"), seed=3, warmup_s=2.0, speed=30.0,
                                regime="volatile", episodes=False))
    urls = await sim.start(port=0)
    try:
        msgs = await messages(urls.ws_market_url, ["!forceOrder@arr", "btcusdt@forceOrder"], 3)
    finally:
        await sim.stop()
    for msg in msgs:
        e = msg["data"]
        assert list(e) == ["e", "E", "o"] and e["e"] == "forceOrder"
        assert shape(e) == shape(BINANCE["forceOrder"])
        o = e["o"]
        assert list(o) == ["s", "S", "o", "f", "q", "p", "ap", "X", "l", "z", "T"]
        assert o["S"] in ("BUY", "SELL") and o["o"] == "LIMIT" and o["f"] == "IOC"
        assert o["X"] in ("FILLED", "EXPIRED") and Decimal(o["z"]) <= Decimal(o["q"])
        assert Decimal(o["l"]) <= Decimal(o["z"]) and o["T"] <= e["E"]
        # an IOC sell is priced below what it fills at, a buy above
        assert (Decimal(o["p"]) <= Decimal(o["ap"])) == (o["S"] == "SELL")


@on_the_market
async def test_the_client_reads_partial_books_and_all_market_tickers_whatever_binance_adds(
    market: SimExchange,
) -> None:
    """The product's decoder reads a partial book as a depth event and !bookTicker as a
    bookTicker, from the simulated exchange and from Binance's examples, and a field
    Binance adds later (here at the top of the event and in a wrapper) changes nothing."""
    assert market.urls is not None
    names = ["btcusdt@depth10@100ms", "!bookTicker"]
    got: list[dict[str, Any]] = []
    async with websockets.connect(f"{market.urls.ws_public_url}/stream?streams={'/'.join(names)}") as ws:
        while {m["stream"] for m in got} != set(names):  # !bookTicker comes every 5 s
            got.append(json.loads(await asyncio.wait_for(ws.recv(), CEILING_S)))
    samples = [{"stream": names[0], "data": BINANCE["partialDepth"]},
               {"stream": names[1], "data": BINANCE["bookTicker"]}]
    for msg in got + samples:
        plain = stream_message_decoder.decode(json.dumps(msg))
        kind = DepthUpdate if msg["stream"] == names[0] else BookTicker
        assert isinstance(plain.data, kind)
        extended = {**msg, "id": 7, "data": {**msg["data"], "rp": "0.000", "x": {"nested": [1, 2]}}}
        assert stream_message_decoder.decode(json.dumps(extended)) == plain


@on_the_market
@pytest.mark.parametrize("route,stream", [("market", "!bookTicker"), ("public", "!markPrice@arr@1s"),
                                          ("public", "!forceOrder@arr"), ("market", "btcusdt@depth5")])
async def test_all_market_and_partial_streams_are_silent_on_the_other_route(
    market: SimExchange, route: str, stream: str
) -> None:
    assert market.urls is not None
    base = market.urls.ws_public_url if route == "public" else market.urls.ws_market_url
    other = "btcusdt@bookTicker" if route == "public" else "btcusdt@aggTrade"
    got = await messages(base, [stream, other], 12)
    assert {m["stream"] for m in got} == {other}


def test_the_price_moves_in_jumps_and_the_spread_closes() -> None:
    """The mid moves by tens of ticks a few times a second in the volatile regime, and
    the spread is one tick at the end of nearly every batch."""
    spec = spec_for(SimConfig(), "btcusdt")
    m = SymbolMarket("btcusdt", spec, 61_800.0, random.Random(5), 1_700_000_000_000,
                     regime=Regime("volatile", random.Random(5), 1_700_000_000_000))
    mids = []
    one_tick = 0
    wide_inside = 0
    for _ in range(20 * 60):
        out = m.step()
        mids.append(m.mid_ticks())
        one_tick += m.spread_ticks() == 1
        wide_inside += any(at - bt > 1 for _, bt, _, at, _ in out.tickers)
    jumps = [abs(b - a) for a, b in zip(mids, mids[1:], strict=False) if b != a]
    assert 40 <= len(jumps) <= 400  # about 1-3 moves a second
    assert sorted(jumps)[len(jumps) // 2] >= 5  # moves of several ticks, not one
    assert one_tick >= 0.97 * len(mids) and wide_inside > 20  # wider inside a batch, closed by its end


def test_regimes_alternate_and_every_symbol_sees_the_same() -> None:
    regime = Regime("auto", random.Random(1), 0)
    levels = [regime.level(t * 1000) for t in range(0, 1800)]
    assert min(levels) == 0.0 and max(levels) == 1.0
    changes = sum(1 for a, b in zip(levels, levels[1:], strict=False) if (a == 0.0) != (b == 0.0))
    assert changes >= 4  # calm and volatile periods both come back in half an hour
    again = Regime("auto", random.Random(1), 0)
    assert [again.level(t * 1000) for t in range(0, 1800, 7)] == levels[::7]  # same seed, same periods
    venue = Venue(SimConfig(symbols=("btcusdt", "solusdt"), seed=1, warmup_s=0.0, start_ms=0))
    assert venue.symbols["btcusdt"].market.regime is venue.symbols["solusdt"].market.regime


def test_a_new_kind_of_episode_plugs_in() -> None:
    """A kind registered under a name is scheduled and labelled like the built-in ones."""

    class Pause(EpisodeRun):
        def step(self, now_ms: int) -> bool:
            return now_ms >= self.label.start_ms + 2000

        def abort(self) -> None:
            pass

    register("pause", lambda s: Pause(s.market, s.rng, s.new_label("pause", "both")))
    try:
        cfg = SimConfig(symbols=("ethusdt",), episode_kinds=("pause",), episode_every_s={"pause": (3.0, 4.0)},
                        first_episode_after_s=(1.0, 1.0), episode_gap_s=1.0)
        m = SymbolMarket("ethusdt", spec_for(cfg, "ethusdt"), 3_500.0, random.Random(1), 0)
        scheduler = EpisodeScheduler(m, cfg, random.Random(2))
        for _ in range(20 * 20):
            m.begin_step()
            scheduler.on_step()
            m.run_random_flow()
            m.end_step()
        labels = [e for e in scheduler.labels if e.end_ms is not None]
        assert len(labels) >= 3 and {e.kind for e in labels} == {"pause"}
        assert all(e.end_ms - e.start_ms >= 2000 for e in labels)  # type: ignore[operator]
    finally:
        del EPISODE_KINDS["pause"]


class RecordingHub:
    """Stands for the venue's StreamHub: the chosen streams are subscribed, and what
    is published to them is kept in order (no sockets, no clock)."""

    def __init__(self, keys: set[StreamKey]) -> None:
        self.keys = keys
        self.sent: list[tuple[StreamKey, str]] = []

    def has(self, key: StreamKey) -> bool:
        return key in self.keys

    def publish(self, key: StreamKey, data: str, wrap: bool = True) -> None:
        self.sent.append((key, data))


def test_the_mark_and_index_follow_the_exchange_mid() -> None:
    """Each @markPrice@1s push of two volatile minutes: mark p and index i within a few
    bps of the exchange's own mid at that moment (the true book), the basis p - i
    small, while the mid itself travels several times further."""
    venue = Venue(SimConfig(symbols=("solusdt",), seed=6, warmup_s=10.0, regime="volatile", episodes=False,
                            start_ms=1_700_000_000_000))
    hub = RecordingHub({venue.symbols["solusdt"].key_mark[1000]})
    venue.hub = hub  # type: ignore[assignment]
    rows = []  # (true mid, mark, index), one per push
    for _ in range(20 * 120):
        before = len(hub.sent)
        venue.step_all()
        for _, data in hub.sent[before:]:
            e = json.loads(data)
            book = venue.true_book("solusdt")
            rows.append(((float(book.bids[0][0]) + float(book.asks[0][0])) / 2, float(e["p"]), float(e["i"])))
    assert len(rows) == 120

    def bps(a: float, b: float) -> float:
        return abs(a - b) / b * 1e4

    mark_mid = sorted(bps(p, mid) for mid, p, _ in rows)
    index_mid = sorted(bps(i, mid) for mid, _, i in rows)
    basis = max(bps(p, i) for _, p, i in rows)
    mids = [mid for mid, _, _ in rows]
    assert bps(max(mids), min(mids)) > 15.0  # the mid moved: following it is not standing still
    assert mark_mid[-1] < 5.0 and mark_mid[60] < 2.0, (mark_mid[-1], mark_mid[60])  # max, median
    assert index_mid[-1] < 5.0 and index_mid[60] < 2.0, (index_mid[-1], index_mid[60])
    assert basis < 4.0, basis


def test_same_seed_same_all_market_and_partial_book_streams_over_five_symbols() -> None:
    """Two venues, same seed and start, five symbols from busy to the tail of the skew
    (BTCUSDT and ETHUSDT left out: they would cost most of the time): a simulated minute
    of !markPrice@arr@1s, !miniTicker@arr and every symbol's depth10@500ms is the same
    message for message; another seed is not."""
    symbols = ("xrpusdt", "bnbusdt", "wifusdt", "atomusdt", market_symbols(300)[-1])

    def minute(seed: int) -> list[tuple[StreamKey, str]]:
        venue = Venue(SimConfig(symbols=symbols, seed=seed, warmup_s=2.0, regime="volatile",
                                start_ms=1_700_000_000_000))
        keys = {KEY_ALL_MARK[1000], KEY_ALL_MINI_TICKER}
        keys |= {StreamKey(s, "partialDepth", 500, 10) for s in symbols}
        hub = RecordingHub(keys)
        venue.hub = hub  # type: ignore[assignment]
        for _ in range(20 * 60):
            venue.step_all()
        return hub.sent

    first, again = minute(11), minute(11)
    kinds = Counter(key.kind for key, _ in first)
    assert kinds["!markPrice@arr"] == 60 and kinds["!miniTicker@arr"] >= 50
    assert {key.symbol for key, _ in first if key.kind == "partialDepth"} == set(symbols)
    assert first == again
    assert minute(12) != first
