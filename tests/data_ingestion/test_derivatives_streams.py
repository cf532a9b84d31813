"""Liquidations, mark price and open interest: over real sockets from the simulated
exchange, in Binance's wire shape, malformed ones counted and skipped, the open
interest polls kept behind snapshots in the weight budget, recorded and replayed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import orjson

from api.assembly import Stack
from api.services import SourceInfo
from config import load_settings
from data_ingestion.recording import FORCE_ORDER, MARK_PRICE, OPEN_INTEREST, read_recording, segments_of
from data_ingestion.rest import RestClient, WeightBudget
from exchange_sim.protocol import StreamKey, dumps
from sim_stack import start_sim_exchange
from tests.stack import running_stack
from tests.waiting import wait_until

# A forceOrder as Binance sends it today, with fields this client does not know
# (``ps``, ``st`` in the order, ``x`` beside it): they are ignored.
ORDER: dict[str, Any] = {"s": "BTCUSDT", "S": "SELL", "o": "LIMIT", "f": "IOC", "q": "0.500", "p": "61500.0",
                         "ap": "61520.40", "X": "FILLED", "l": "0.200", "z": "0.500", "T": 1_723_161_256_398,
                         "ps": "BOTH", "st": "LIQUIDATION"}
WIRE_FORCE_ORDER: dict[str, Any] = {
    "e": "forceOrder", "E": 1_723_161_256_400, "x": "future field",
    "o": ORDER,
}
MALFORMED = [
    {"e": "forceOrder", "E": 1, "o": {"s": "BTCUSDT", "S": "SELL", "q": "1.0", "p": "61500.0"}},  # no ap, X, z...
    {**WIRE_FORCE_ORDER, "o": {**ORDER, "S": "SIDEWAYS"}},  # not a side
    {**WIRE_FORCE_ORDER, "o": {**ORDER, "z": "lots"}},  # not a number
    {**WIRE_FORCE_ORDER, "o": {**ORDER, "ap": "nan", "p": "inf"}},  # not finite
]


def streams_of(health: dict[str, Any], symbol: str) -> dict[str, Any]:
    return health["monitoring"][symbol]["streams"]


async def test_a_force_order_in_the_wire_shape_is_taken_and_malformed_ones_are_counted_and_skipped() -> None:
    async with running_stack(symbols=("btcusdt",), open_interest_poll_s=1.0) as h:
        await h.wait_synced()
        feed = h.feed("btcusdt")
        deriv = h.stack.features["btcusdt"].derivatives
        assert deriv.watched  # subscribed: a window without liquidations is a known zero, not unknown
        key = StreamKey("btcusdt", "forceOrder")
        # In sync says nothing of the market connection: sent before its SUBSCRIBE, a message is lost.
        await h.wait_for(lambda: h.sim.hub.has(key), what="the forceOrder subscription")
        for bad in MALFORMED:
            h.sim.hub.publish(key, dumps(bad))
        h.sim.hub.publish(key, dumps(WIRE_FORCE_ORDER))
        st = feed.context["forceOrder"]
        await h.wait_for(lambda: st.messages + st.malformed >= 1 + len(MALFORMED)
                         and any(x.trade_time_ms == 1_723_161_256_398 for x in deriv._kept),
                         what="the forceOrder messages handled")
        taken = [x for x in deriv._kept if x.trade_time_ms == 1_723_161_256_398]
        assert len(taken) == 1
        liq = taken[0]
        assert (liq.side, liq.price, liq.qty) == ("sell", 61520.4, 0.5)  # filled quantity at the average price
        assert liq.notional == 61520.4 * 0.5
        # The one without its fields and the one with a bad side fail to decode; the bad
        # and non-finite numbers fail the feed's checks: all four counted, none taken.
        assert st.malformed == len(MALFORMED)
        assert h.feed("btcusdt").in_sync  # bad input changes nothing else
        async with httpx.AsyncClient(base_url=h.api_url) as client:
            health = (await client.get("/health")).json()
            metrics = (await client.get("/metrics")).text
        fo = streams_of(health, "btcusdt")["forceOrder"]
        assert fo["malformed_messages"] == len(MALFORMED) and fo["messages"] >= 1
        assert f'liq_stream_malformed_total{{stream="forceOrder",symbol="btcusdt"}} {float(len(MALFORMED))}' \
            in metrics


async def test_mark_price_and_open_interest_arrive_with_their_rates_in_health() -> None:
    async with running_stack(symbols=("btcusdt", "ethusdt"), open_interest_poll_s=1.0) as h:
        await h.wait_synced()
        feeds = [h.feed(s) for s in ("btcusdt", "ethusdt")]
        await h.wait_for(lambda: all(f.context["markPrice"].messages >= 3 and f.context["openInterest"].messages >= 3
                                     for f in feeds), what="three mark prices and three polls a symbol")
        async with httpx.AsyncClient(base_url=h.api_url) as client:
            health = (await client.get("/health")).json()
            oi = (await client.get(f"{h.sim.urls.rest_base_url}/fapi/v1/openInterest",  # type: ignore[union-attr]
                                   params={"symbol": "BTCUSDT"})).json()
            metrics = (await client.get("/metrics")).text
        for sym in ("btcusdt", "ethusdt"):
            streams = streams_of(health, sym)
            for name in ("markPrice", "openInterest"):
                assert streams[name]["messages"] >= 3
                assert streams[name]["messages_per_s"] > 0
                assert 0 <= streams[name]["last_message_age_s"] < 30
                assert streams[name]["malformed_messages"] == 0
        assert health["rest_weight"]["low_priority_skipped"] == 0
        assert set(oi) == {"openInterest", "symbol", "time"} and oi["symbol"] == "BTCUSDT"
        assert float(oi["openInterest"]) > 0
        assert 'liq_stream_messages_total{stream="markPrice",symbol="btcusdt"}' in metrics
        state = h.stack.features["btcusdt"].derivatives
        assert state.mark is not None and state.mark.next_funding_ms is not None
        assert state.mark.next_funding_ms % (8 * 3600 * 1000) == 0  # 00:00, 08:00, 16:00 UTC


async def test_open_interest_polls_never_go_ahead_of_a_waiting_snapshot() -> None:
    now = [1_000_000.0]
    budget = WeightBudget(2400, 0.5, clock=lambda: now[0])
    assert budget.limit == 1200 and budget.low_priority_limit == 600
    assert budget.may_spend_low(1)
    budget.waiting = 1  # a snapshot waits for the budget: no poll goes
    assert not budget.may_spend_low(1)
    budget.waiting = 0
    budget.spend(599)
    assert budget.may_spend_low(1)
    budget.spend(1)
    assert not budget.may_spend_low(1)  # half the limit is reached
    assert budget.delay_for(20) == 0  # the other half stays for snapshots
    budget.blocked_until = now[0] + 30  # the exchange said Retry-After
    assert not budget.may_spend_low(1)
    # Over real HTTP: a poll the budget refuses is skipped at once, nothing sent.
    async with running_stack(symbols=("btcusdt",), open_interest_poll_s=0) as h:
        rest = RestClient(h.settings.rest_base_url, WeightBudget(2400, 0.5))
        try:
            got = await rest.open_interest("btcusdt")
            assert got is not None and float(got[0].open_interest) > 0 and b"openInterest" in got[1]
            assert rest.budget.used >= 1
            rest.budget.waiting = 1
            used = rest.budget.used
            assert await rest.open_interest("btcusdt") is None
            assert rest.budget.used == used and rest.budget.low_skipped == 1
        finally:
            await rest.close()


async def test_open_interest_moves_with_the_trades() -> None:
    async with running_stack(symbols=("btcusdt",), open_interest_poll_s=0, sim_config={"regime": "volatile"}) as h:
        stats = h.sim.state("btcusdt").stats
        first = stats.open_interest_lots
        agg = stats.base_volume
        await h.wait_for(lambda: stats.base_volume > agg + 5, what="five BTC traded")
        assert stats.open_interest_lots != first
        async with httpx.AsyncClient(base_url=h.settings.rest_base_url) as client:
            missing = await client.get("/fapi/v1/openInterest")
            unknown = await client.get("/fapi/v1/openInterest", params={"symbol": "NOPEUSDT"})
        assert missing.status_code == 400 and missing.json()["code"] == -1102
        assert unknown.status_code == 400 and unknown.json()["code"] == -1121
        # Each trade opens or closes its quantity: the interest moved by at most what traded.
        assert abs(stats.open_interest_lots - first) * 0.001 <= stats.base_volume - agg + 1e-9


class SeriesSpy:
    """What the feed hands the features (liquidations, mark prices, open interest), in order."""

    def __init__(self, features: Any) -> None:
        self.calls: list[tuple[Any, ...]] = []
        for name in ("on_liquidation", "on_mark_price", "on_open_interest"):
            real = getattr(features, name)
            setattr(features, name, self._spy(name, real))

    def _spy(self, name: str, real: Any) -> Any:
        def call(*args: Any) -> None:
            self.calls.append((name, *args))
            real(*args)

        return call


async def test_record_then_replay_gives_the_same_liquidation_mark_and_open_interest_series(tmp_path: Path) -> None:
    settings = load_settings(environ={}, symbols=("btcusdt",), source="sim", api_port=0, host="127.0.0.1",
                             dashboard=False, history=False, record_dir=str(tmp_path), open_interest_poll_s=1.0)
    sim, settings = await start_sim_exchange(settings, warmup_s=20.0)
    try:
        stack = Stack(settings, SourceInfo("sim", "SIMULATED market", "test"))
        await stack.start()
        try:
            live = SeriesSpy(stack.features["btcusdt"])
            key = StreamKey("btcusdt", "forceOrder")
            await wait_until(lambda: sim.hub.has(key), what="the forceOrder subscription")
            for i in range(3):
                sim.hub.publish(key, dumps({**WIRE_FORCE_ORDER, "o": {**ORDER, "T": 1_000 + i}}))
            await wait_until(lambda: sum(c[0] == "on_liquidation" for c in live.calls) >= 3
                             and sum(c[0] == "on_mark_price" for c in live.calls) >= 3
                             and sum(c[0] == "on_open_interest" for c in live.calls) >= 3,
                             what="three liquidations, mark prices and polls")
        finally:
            await stack.stop()
    finally:
        await sim.stop()
    files = [str(p) for p in segments_of(tmp_path, "btcusdt")]
    kinds = [m.kind for m in read_recording(files)]
    assert kinds.count(FORCE_ORDER) >= 3 and kinds.count(MARK_PRICE) >= 3 and kinds.count(OPEN_INTEREST) >= 3
    replay_settings = load_settings(environ={}, source="replay", replay_files=tuple(files), replay_speed=0.0,
                                    api_port=0, symbols=("btcusdt",))
    replay = Stack(replay_settings, SourceInfo("replay", "REPLAY", "test"), replay_files=files)
    spies: list[SeriesSpy] = []
    replay.runtime.features_factory = _spied(replay, spies)
    await replay.start()
    try:
        await wait_until(lambda: bool(replay.runtime.replay and replay.runtime.replay.finished), 120,
                         "the replay's end")
    finally:
        await replay.stop()
    replayed = spies[0].calls
    # The replay holds what came before the live spy was attached, then exactly what it saw,
    # receive times included.
    assert len(live.calls) >= 9
    assert replayed[-len(live.calls):] == live.calls
    assert orjson.dumps([c[0] for c in replayed]).count(b"on_liquidation") == 3


def _spied(stack: Stack, spies: list[SeriesSpy]) -> Any:
    make = stack._make_features

    def factory(symbol: str, spec: Any) -> Any:
        features = make(symbol, spec)
        spies.append(SeriesSpy(features))
        return features

    return factory
