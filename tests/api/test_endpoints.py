"""The HTTP endpoints over real HTTP, with the simulated exchange behind them.

Values are checked against the truth: with the market paused, /book equals the
exchange's true book at the same update id, and /simulate's VWAP is recomputed by
hand from the /book levels (then rounded as docs/frames.md says); /alerts follows a
wall injected on the exchange over its life; /metrics passes promtool's rules.
"""

from __future__ import annotations

import contextlib
import math
import statistics
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families

from api.limits import connection_cap
from config import Settings, load_settings
from tests.api.promlint import check as lint_metrics
from tests.api.wsclient import recv_json, ws_connect
from tests.stack import StackHandle, running_stack
from tests.waiting import wait_until

pytestmark = pytest.mark.asyncio(loop_scope="module")

SYMS = ("btcusdt", "ethusdt")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def h() -> AsyncIterator[StackHandle]:
    async with running_stack(symbols=SYMS, push_interval_s=0.2) as handle:
        await handle.wait_synced()
        yield handle


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def http(h: StackHandle) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=h.api_url, timeout=60) as client:
        yield client


@pytest_asyncio.fixture(loop_scope="module", autouse=True)
async def clean_start(h: StackHandle) -> AsyncIterator[None]:
    """Each test starts with the market running, no client left over, books in sync."""
    h.leave_clean()
    await h.wait_for(lambda: h.stack.hub.client_count == 0, what="no client left")
    await h.wait_synced()
    yield
    h.leave_clean()


@contextlib.asynccontextmanager
async def paused(h: StackHandle, symbol: str) -> AsyncIterator[None]:
    """The market frozen, and the feed's book settled: in sync and holding the last
    depth event the exchange published (the steps of an unfinished 100 ms window stay
    unpublished until the market resumes, so compare with the truth at the book's id)."""
    h.sim.pause()
    try:
        await h.settled(symbol)
        yield
    finally:
        h.sim.resume()


def as_levels(raw: list[tuple[str, str]]) -> list[list[float]]:
    return [[float(p), float(q)] for p, q in raw]


async def get_json(http: httpx.AsyncClient, path: str, status: int = 200) -> Any:
    r = await http.get(path)
    assert r.status_code == status, (path, r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith("application/json")
    return r.json()


# --- health, symbols, docs ------------------------------------------------------------


async def test_symbols(http: httpx.AsyncClient) -> None:
    assert await get_json(http, "/symbols") == {"symbols": list(SYMS)}


async def test_health_when_everything_is_in_sync(h: StackHandle, http: httpx.AsyncClient) -> None:
    body = await get_json(http, "/health")
    assert body["status"] == "healthy"
    assert body["symbols"] == list(SYMS)
    assert body["connections"] == h.stack.hub.client_count
    assert body["uptime_seconds"] >= 0
    assert 10 < body["memory_mb"] < 4096
    assert body["source"]["kind"] == "sim"
    for sym in SYMS:
        assert body["sync"][sym]["in_sync"] is True
        assert body["sync"][sym]["state"] == "synced"
        assert body["sync"][sym]["last_update_id"] > 0
        mon = body["monitoring"][sym]
        for key in ("latency_avg_ms", "reconnect_count", "gaps", "resyncs", "messages_per_s", "lag_ms"):
            assert key in mon, key
        assert mon["reconnect_count"] == h.feed(sym).monitor.reconnects
        assert mon["gaps"] == h.feed(sym).validator.counters.gaps


async def test_health_counts_websocket_connections(h: StackHandle, http: httpx.AsyncClient) -> None:
    async with ws_connect(f"{h.ws_url}/ws/btcusdt") as ws:
        await recv_json(ws)
        assert (await get_json(http, "/health"))["connections"] == 1
    await h.wait_for(lambda: h.stack.hub.client_count == 0, what="the client gone")
    assert (await get_json(http, "/health"))["connections"] == 0


async def test_openapi_and_docs(http: httpx.AsyncClient) -> None:
    spec = await get_json(http, "/openapi.json")
    for path in ("/health", "/symbols", "/stats", "/book/{symbol}", "/simulate/{symbol}", "/alerts/{symbol}",
                 "/metrics"):
        assert path in spec["paths"], path
    r = await http.get("/docs")
    assert r.status_code == 200 and "swagger" in r.text.lower()


async def test_binds_loopback_by_default() -> None:
    assert Settings().host == "127.0.0.1"
    assert load_settings(environ={}).host == "127.0.0.1"


async def test_server_socket_is_on_loopback(h: StackHandle) -> None:
    assert h.stack.api is not None
    assert h.stack.api.sock.getsockname()[0] == "127.0.0.1"


# --- /book ----------------------------------------------------------------------------


@pytest.mark.parametrize("sym", SYMS)
async def test_book_equals_the_true_book(h: StackHandle, http: httpx.AsyncClient, sym: str) -> None:
    async with paused(h, sym):
        body = await get_json(http, f"/book/{sym}")
        truth = h.sim.true_book(sym, update_id=body["last_update_id"])
        feed = h.feed(sym)
        bids, asks = feed.book.top(max(len(feed.book.bids), len(feed.book.asks)))
    assert truth.update_id == body["last_update_id"]
    assert body["symbol"] == sym and body["state"] == "synced"
    # Exactly the feed's book...
    assert body["bids"] == [[p, q] for p, q in bids]
    assert body["asks"] == [[p, q] for p, q in asks]
    assert body["bid_levels_total"] == len(body["bids"]) and body["ask_levels_total"] == len(body["asks"])
    # ...which is the exchange's: every level held equals the truth, and inside the
    # band the snapshot covered, every true level is held.
    t_bids: dict[float, float] = {p: q for p, q in as_levels(truth.bids)}
    t_asks: dict[float, float] = {p: q for p, q in as_levels(truth.asks)}
    for p, q in body["bids"]:
        assert t_bids.get(p) == q, ("bid", p, q, t_bids.get(p))
    for p, q in body["asks"]:
        assert t_asks.get(p) == q, ("ask", p, q, t_asks.get(p))
    band = body["snapshot_band"]
    held_b, held_a = {p for p, _ in body["bids"]}, {p for p, _ in body["asks"]}
    assert {p for p in t_bids if band["bid_low"] <= p <= band["bid_high"]} <= held_b
    assert {p for p in t_asks if band["ask_low"] <= p <= band["ask_high"]} <= held_a
    # Best first, no crossed book; the top of book is the truth's.
    assert [p for p, _ in body["bids"]] == sorted(held_b, reverse=True)
    assert [p for p, _ in body["asks"]] == sorted(held_a)
    assert body["bids"][0] == as_levels(truth.bids)[0] and body["asks"][0] == as_levels(truth.asks)[0]
    assert body["bids"][0][0] < body["asks"][0][0]


async def test_book_depth(h: StackHandle, http: httpx.AsyncClient) -> None:
    async with paused(h, "btcusdt"):
        full = await get_json(http, "/book/btcusdt")
        top = await get_json(http, "/book/BTCUSDT?depth=5")  # upper case accepted
    assert top["symbol"] == "btcusdt"
    assert top["last_update_id"] == full["last_update_id"]
    assert top["bids"] == full["bids"][:5] and top["asks"] == full["asks"][:5]
    huge = await get_json(http, "/book/btcusdt?depth=100000")
    assert len(huge["bids"]) == huge["bid_levels_total"]


# --- /simulate ------------------------------------------------------------------------


def vwap_by_hand(levels: list[list[float]], size: float) -> tuple[float, float, int]:
    """(vwap, quantity filled, levels touched) of a market order of ``size`` against
    ``levels`` (best first)."""
    left, cost, filled, touched = size, 0.0, 0.0, 0
    for price, qty in levels:
        take = min(qty, left)
        cost += price * take
        filled += take
        left -= take
        touched += 1
        if left <= 1e-12:
            break
    return cost / filled, filled, touched


@pytest.mark.parametrize("side", ["buy", "sell"])
async def test_simulate_vwap_equals_the_book_walked_by_hand(h: StackHandle, http: httpx.AsyncClient,
                                                            side: str) -> None:
    async with paused(h, "btcusdt"):
        book = await get_json(http, "/book/btcusdt")
        eaten = book["asks"] if side == "buy" else book["bids"]
        # Through three whole levels and into half of the fourth.
        size = round(sum(q for _, q in eaten[:3]) + eaten[3][1] / 2, 6)
        res = await get_json(http, f"/simulate/btcusdt?side={side}&size={size}")
        curve = await get_json(http, f"/simulate/BTCUSDT?side={side.upper()}&sizes=0.1,1,{size},5,10")
        everything = sum(q for _, q in eaten)
        beyond = await get_json(http, f"/simulate/btcusdt?side={side}&size={everything * 2}")
    vwap, filled, touched = vwap_by_hand(eaten, size)
    assert res["last_update_id"] == book["last_update_id"]
    assert res["symbol"] == "btcusdt" and res["side"] == side
    # Written as docs/frames.md says: VWAP and slippage at the tick's decimals + 2 (BTCUSDT:
    # 3), quantities at the lot's or the size's (here 6), bps to 4 significant digits.
    assert abs(res["vwap"] - vwap) <= 0.0005 + 1e-9 and res["vwap"] == round(res["vwap"], 3)
    assert abs(res["quantity_filled"] - filled) <= 5e-7 and res["fully_filled"] is True
    assert res["levels_consumed"] == touched == 4
    assert res["best_price"] == eaten[0][0] and res["worst_price"] == eaten[3][0]
    assert [f["price"] for f in res["fills"]] == [p for p, _ in eaten[:4]]
    assert [f["qty"] for f in res["fills"][:3]] == [q for _, q in eaten[:3]]  # whole levels, exactly
    assert abs(res["slippage"] - abs(vwap - eaten[0][0])) <= 0.0005 + 1e-9
    mid = (book["bids"][0][0] + book["asks"][0][0]) / 2
    assert math.isclose(res["impact_bps"], abs(vwap - mid) / mid * 1e4, rel_tol=5e-4)
    assert float(f"{res['impact_bps']:.4g}") == res["impact_bps"]
    for f in res["fills"]:
        assert f["cumulative_cost"] == round(f["cumulative_cost"], 2)
    # The curve: one point per size, in the order given, each equal to the walk by hand.
    assert curve["last_update_id"] == book["last_update_id"] and curve["side"] == side
    assert [p["size"] for p in curve["curve"]] == [0.1, 1.0, size, 5.0, 10.0]
    for point in curve["curve"]:
        v, q, n = vwap_by_hand(eaten, point["size"])
        assert abs(point["vwap"] - v) <= 0.0005 + 1e-9, point
        assert abs(point["quantity_filled"] - q) <= 5e-7 and point["levels_consumed"] == n
    # Larger than the whole side: everything is eaten, not fully filled.
    assert beyond["fully_filled"] is False
    assert math.isclose(beyond["quantity_filled"], everything, rel_tol=1e-9)
    assert beyond["levels_consumed"] == len(eaten)


async def test_simulate_a_size_finer_than_the_lot_keeps_its_decimals(http: httpx.AsyncClient) -> None:
    # BTCUSDT's lot is 0.001: quantities are written to 3 decimals, or to the size's own
    # when it has more, so 0.0005 (less than any level) is not written as 0.0.
    res = await get_json(http, "/simulate/btcusdt?side=buy&size=0.0005")
    assert res["quantity_filled"] == 0.0005 and res["levels_consumed"] == 1
    assert res["fills"][0]["qty"] == 0.0005 == res["fills"][0]["cumulative_qty"]
    assert res["fills"][0]["cumulative_cost"] == round(res["best_price"] * 0.0005, 2)


# --- /alerts ----------------------------------------------------------------------------


def alerts_of(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [a for g in body["groups"] for a in g["alerts"]]


def rank(a: dict[str, Any]) -> tuple[int, float, float, str]:
    """docs/metrics.md's order: live first, then by score, newest, id."""
    return (0 if a["live"] else 1, -(a["score"] or 0.0), -a["born_ts"], a["id"])


async def test_alerts_follow_an_injected_wall_over_its_life(h: StackHandle, http: httpx.AsyncClient) -> None:
    episode = await h.sim.inject_wall("btcusdt", side="bid", distance_ticks=2, multiple=25.0, duration_s=12.0)
    price = float(episode.prices[0])
    seen: dict[str, Any] = {}

    async def the_wall(live: bool) -> bool:
        body = await get_json(http, "/alerts/btcusdt?min_notional=0&kind=wall")
        mine = [a for a in alerts_of(body) if a["side"] == "bid" and a["id"] == seen.get("id", a["id"])
                and (a["price"] == price or "id" in seen)]
        if mine and mine[0]["live"] == live:
            seen.update(mine[0], body=body)
            return True
        return False

    await wait_until(lambda: the_wall(True), what=f"a live WALL alert at {price}")
    a, body = dict(seen), seen["body"]
    assert body["kinds"] == ["WALL"] and body["min_notional"] == 0.0
    assert body["default_min_notional"] == h.settings.alert_min_notional_usdt
    assert a["type"] == "WALL" and a["symbol"] == "btcusdt" and a["status"] in ("born", "grown", "shrunk")
    assert a["events"][0]["status"] == "born" and a["events"][0]["price"] == price
    # Significance by its definitions (docs/metrics.md, "Alerts"), to the rounding of the answer.
    assert a["age_s"] >= h.settings.wall_min_age_s  # more than 5 s, written to the millisecond
    assert abs(a["notional"] - price * a["size"]) <= 0.006
    assert a["peak_notional"] >= a["notional"] and 0 < a["depth_share"] <= 1
    assert abs(a["score"] - a["notional"] / (1 + a["distance_bps"] / 10)) <= 0.01 + 1e-3 * a["score"]
    assert a["price_bin"] == round(price / 0.1) // 20  # BTCUSDT's heatmap bins: 20 ticks
    # The filters: another kind, a higher floor, an older state.
    others = await get_json(http, "/alerts/btcusdt?min_notional=0&kind=LAYERING,EXHAUSTION")
    assert a["id"] not in {x["id"] for x in alerts_of(others)}
    floor = a["peak_notional"] + 1
    above = await get_json(http, f"/alerts/btcusdt?min_notional={floor}")
    assert all(x["peak_notional"] >= floor for x in alerts_of(above)) and a["id"] not in {
        x["id"] for x in alerts_of(above)}
    later = await get_json(http, f"/alerts/btcusdt?min_notional=0&since={a['ts'] + 1000}")
    assert alerts_of(later) == [] and later["total"] >= 1
    # The default floor applies when none is given, the same figure the dashboard starts with.
    default = await get_json(http, "/alerts/BTCUSDT")
    assert default["min_notional"] == h.settings.alert_min_notional_usdt
    assert all(x["peak_notional"] >= default["min_notional"] for x in alerts_of(default))
    # Then it goes: the same id, no longer live, with how it went.
    await wait_until(lambda: the_wall(False), what=f"the WALL alert {a['id']} removed")
    assert seen["id"] == a["id"] and seen["status"] == "removed"
    assert seen["reason"] in ("pulled", "filled", "out_of_view") and seen["events"][-1]["status"] == "removed"


async def test_alerts_are_grouped_by_price_and_ordered_by_significance(h: StackHandle,
                                                                       http: httpx.AsyncClient) -> None:
    await wait_until(lambda: h.stack.features["btcusdt"].alert_list() != [], what="some alert on btcusdt")
    body = await get_json(http, "/alerts/btcusdt?min_notional=0")
    flat = alerts_of(body)
    assert body["shown"] == len(flat) and body["total"] >= len(flat) > 0
    keys = [(g["side"], g["price_bin"]) for g in body["groups"]]
    assert len(keys) == len(set(keys))  # one group per side and price bin
    for g in body["groups"]:
        assert {(x["side"], x["price_bin"]) for x in g["alerts"]} == {(g["side"], g["price_bin"])}
        assert g["alerts"] == sorted(g["alerts"], key=rank) and g["score"] == g["alerts"][0]["score"]
        prices = [x["price"] for x in g["alerts"] if x["price"] is not None]
        assert (g["price_low"], g["price_high"]) == ((min(prices), max(prices)) if prices else (None, None))
    firsts = [g["alerts"][0] for g in body["groups"]]
    assert firsts == sorted(firsts, key=rank)


BAD_REQUESTS = [
    ("/book/dogeusdt", 404, "unknown symbol"),
    ("/history/btcusdt/metrics", 404, "history is off"),
    ("/book/btcusdt?depth=0", 422, "depth"),
    ("/book/btcusdt?depth=-3", 422, "depth"),
    ("/book/btcusdt?depth=ten", 422, "depth"),
    ("/book/btcusdt?depth=1.5", 422, "depth"),
    ("/book/btcusdt?depth=1_000", 422, "depth must be a whole number"),
    ("/book/btcusdt?depth=%D9%A1%D9%A2", 422, "depth must be a whole number"),  # Arabic-Indic 12
    ("/book/btcusdt?depth=100001", 422, "from 1 to 100000"),
    ("/simulate/dogeusdt?side=buy&size=1", 404, "unknown symbol"),
    ("/simulate/btcusdt?size=1", 422, "side"),
    ("/simulate/btcusdt?side=hold&size=1", 422, "side must be 'buy' or 'sell'"),
    ("/simulate/btcusdt?side=buy", 422, "exactly one"),
    ("/simulate/btcusdt?side=buy&size=1&sizes=1,2", 422, "exactly one"),
    ("/simulate/btcusdt?side=buy&size=abc", 422, "must be a number"),
    ("/simulate/btcusdt?side=buy&size=", 422, "must be a number"),
    ("/simulate/btcusdt?side=buy&size=0", 422, "must be positive"),
    ("/simulate/btcusdt?side=buy&size=1E-310", 422, "below the minimum"),
    ("/simulate/btcusdt?side=buy&sizes=1,1e-13", 422, "below the minimum"),
    ("/simulate/btcusdt?side=buy&size=-0", 422, "must be positive"),
    ("/simulate/btcusdt?side=sell&size=-1.5", 422, "must be positive"),
    ("/simulate/btcusdt?side=buy&size=nan", 422, "must be finite"),
    ("/simulate/btcusdt?side=buy&size=NaN", 422, "must be finite"),
    ("/simulate/btcusdt?side=buy&size=inf", 422, "must be finite"),
    ("/simulate/btcusdt?side=buy&size=-Infinity", 422, "must be finite"),
    ("/simulate/btcusdt?side=buy&size=1e400", 422, "must be finite"),
    ("/simulate/btcusdt?side=buy&size=1e10", 422, "above the maximum"),
    ("/simulate/btcusdt?side=buy&size=1_000", 422, "must be a number"),
    ("/simulate/btcusdt?side=buy&size=%D9%A1%D9%A2", 422, "must be a number"),  # Arabic-Indic 12
    ("/simulate/btcusdt?side=buy&size=%EF%BC%91", 422, "must be a number"),  # fullwidth 1
    ("/simulate/btcusdt?side=buy&size=0x10", 422, "must be a number"),
    ("/simulate/btcusdt?side=buy&sizes=1,abc", 422, "must be a number"),
    ("/simulate/btcusdt?side=buy&sizes=1,-2", 422, "must be positive"),
    ("/simulate/btcusdt?side=buy&sizes=1,nan", 422, "must be finite"),
    ("/simulate/btcusdt?side=buy&sizes=,,", 422, "at least one size"),
    ("/simulate/btcusdt?side=buy&sizes=" + ",".join(["1"] * 51), 422, "at most 50"),
    ("/simulate/btcusdt?side=buy&size=1_000", 422, "decimal or exponent notation"),
    ("/simulate/btcusdt?side=buy&size=0x10", 422, "decimal or exponent notation"),
    ("/alerts/dogeusdt", 404, "unknown symbol 'dogeusdt'"),
    ("/alerts/btcusdt?since=abc", 422, "since must be a number"),
    ("/alerts/btcusdt?since=", 422, "since must be a number"),
    ("/alerts/btcusdt?since=nan", 422, "since must be finite"),
    ("/alerts/btcusdt?since=1e999", 422, "since must be finite"),
    ("/alerts/btcusdt?since=-1", 422, "since must be at least 0"),
    ("/alerts/btcusdt?since=1.7e9.5", 422, "since must be a number"),
    ("/alerts/btcusdt?min_notional=1_000", 422, "min_notional must be a number"),
    ("/alerts/btcusdt?min_notional=0x10", 422, "min_notional must be a number"),
    ("/alerts/btcusdt?min_notional=-5", 422, "min_notional must be at least 0"),
    ("/alerts/btcusdt?min_notional=Infinity", 422, "min_notional must be finite"),
    ("/alerts/btcusdt?kind=FOO", 422, "kind must be among WALL, LAYERING, EXHAUSTION, LIQUIDATION_BURST"),
    ("/alerts/btcusdt?kind=WALL,spoof", 422, "got 'spoof'"),
    ("/alerts/btcusdt?kind=WALL_REMOVED", 422, "last state of its WALL alert"),
    ("/alerts/btcusdt?kind=,", 422, "give at least one of WALL, LAYERING, EXHAUSTION, LIQUIDATION_BURST"),
]


@pytest.mark.parametrize(("path", "status", "words"), BAD_REQUESTS, ids=[p for p, _, _ in BAD_REQUESTS])
async def test_bad_input_is_a_4xx_saying_what_is_wrong(http: httpx.AsyncClient, path: str, status: int,
                                                        words: str) -> None:
    body = await get_json(http, path, status)
    assert isinstance(body["detail"], str) and words in body["detail"], body


# --- /stats and /metrics ----------------------------------------------------------------


async def test_stats(h: StackHandle, http: httpx.AsyncClient) -> None:
    async with ws_connect(f"{h.ws_url}/ws/ethusdt") as ws:
        await recv_json(ws)
        body = await get_json(http, "/stats")
    assert body["clients"] == 1
    assert body["clients_by_symbol"] == {"btcusdt": 0, "ethusdt": 1}
    for key in ("clients_total", "clients_refused", "frames_published", "frames_dropped", "slow_clients"):
        assert key in body
    assert body["limits"] == {"max_clients": h.settings.max_ws_clients,
                              "max_clients_per_address": h.settings.max_ws_clients_per_ip,
                              "queue_frames": h.settings.ws_client_queue,
                              "stall_timeout_s": h.settings.ws_stall_timeout_s,
                              "client_messages_per_s": h.settings.ws_client_msgs_per_s,
                              "max_connections": connection_cap(h.settings.max_connections),
                              "header_timeout_s": h.settings.header_timeout_s}
    assert set(body["connections"]) == {"refused_over_cap", "closed_header_timeout", "refused_upgrade_too_long"}
    assert body["clients_evicted"] == 0 and body["origins_refused"] == 0
    assert body["frames_published"] >= 2
    assert set(body["frame_bytes"]) == set(SYMS)


def metric_samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def test_metrics_prometheus_text(h: StackHandle, http: httpx.AsyncClient) -> None:
    async with ws_connect(f"{h.ws_url}/ws/btcusdt") as ws:
        await recv_json(ws)
        r = await http.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    samples = metric_samples(r.text)
    for sym in SYMS:
        lab = (("symbol", sym),)
        feed = h.feed(sym)
        for name in ("liq_messages_total", "liq_gaps_total", "liq_resyncs_total", "liq_reconnects_total",
                     "liq_exchange_lag_seconds", "liq_processing_latency_seconds_count"):
            assert (name, lab) in samples, (name, sym)
        assert samples[("liq_in_sync", lab)] == 1.0
        assert samples[("liq_gaps_total", lab)] == feed.validator.counters.gaps
        assert samples[("liq_messages_total", lab)] > 0
        # Seconds, not milliseconds: the mean of the lags the monitor holds (in ms), / 1000.
        # A few events arrive between the scrape and this read: close, not equal.
        lag_s = statistics.fmean(feed.monitor.lag_ms) / 1000
        assert samples[("liq_exchange_lag_seconds", lab)] == pytest.approx(lag_s, rel=0.2, abs=0.002)
        # Histogram: cumulative buckets ending at +Inf == count.
        buckets = sorted(
            (float(dict(labels)["le"]), v) for (n, labels), v in samples.items()
            if n == "liq_processing_latency_seconds_bucket" and dict(labels)["symbol"] == sym
        )
        assert [v for _, v in buckets] == sorted(v for _, v in buckets)
        assert buckets[-1] == (math.inf, samples[("liq_processing_latency_seconds_count", lab)])
        assert buckets[-1][1] > 0
    assert samples[("liq_ws_clients", (("symbol", "btcusdt"),))] == 1.0
    assert samples[("liq_ws_clients", (("symbol", "ethusdt"),))] == 0.0
    assert ("liq_frames_dropped_total", ()) in samples
    assert ("liq_ws_clients_refused_total", ()) in samples
    assert samples[("liq_process_rss_bytes", ())] > 10 * 1024 * 1024


async def test_metrics_pass_promtools_rules(http: httpx.AsyncClient) -> None:
    """What `promtool check metrics` checks, on the live exposition: base units, _total
    on counters only, no abbreviated units, HELP and TYPE, valid names."""
    r = await http.get("/metrics")
    assert r.status_code == 200
    assert "# TYPE liq_processing_latency_seconds histogram" in r.text  # the parser sees every family
    assert lint_metrics(r.text) == []
