"""``/history`` on a running stack: the series equal the frames that were pushed,
coverage starts with the run, bad parameters are 4xx saying why."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from history.store import DERIVATIVES_FIELDS
from tests.history.test_store import T0, derivatives_frame, frame
from tests.stack import StackHandle, running_stack
from tests.waiting import wait_until

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def h(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[StackHandle]:
    data = tmp_path_factory.mktemp("data")
    async with running_stack(push_interval_s=0.25, history=True, data_dir=str(data)) as handle:
        await handle.wait_synced()
        yield handle


async def test_the_series_equals_the_frames_pushed(h: StackHandle) -> None:
    store = h.stack.history
    assert store is not None and Path(store.path).name == "history.sqlite"
    await h.wait_for(lambda: store.rows_written >= 12, what="a few seconds of history")
    await asyncio.to_thread(store.flush)
    frames = h.stack.publisher.buffers["btcusdt"].frames() if h.stack.publisher else []
    first_of_second: dict[int, dict] = {}
    for f in frames:
        first_of_second.setdefault(int(f["timestamp"]), f)
    synced = {s: f for s, f in first_of_second.items() if f["sync"]["state"] in ("synced", "quiet")}
    assert len(synced) >= 3
    lo, hi = min(synced), max(synced)
    async with httpx.AsyncClient(base_url=h.api_url) as http:
        body = (await http.get("/history/BTCUSDT/metrics",
                               params={"from": lo, "to": hi + 1, "step": 1,
                                       "fields": "mid_price,spread,imbalance,mark_price,basis_bps"})).json()
        assert body["step"] == 1 and body["fields"] == ["mid_price", "spread", "imbalance", "mark_price", "basis_bps"]
        assert [int(t) for t in body["t"]] == sorted(synced)
        for t, mid, spread, imb in zip(body["t"], body["mid_price"], body["spread"], body["imbalance"], strict=True):
            f = synced[int(t)]
            # The history keeps full precision; the frame was rounded where its JSON was
            # written (mid to two decimals past the tick, ratios to 4 significant digits).
            assert math.isclose(mid, f["mid_price"], abs_tol=0.0051) and math.isclose(spread, f["spread"], abs_tol=1e-9)
            assert math.isclose(imb, f["imbalance"], rel_tol=6e-4, abs_tol=1e-12)
        assert any(synced[int(t)]["mark"] is not None for t in body["t"]), "no markPrice update in the run"
        for t, mark, basis in zip(body["t"], body["mark_price"], body["basis_bps"], strict=True):
            # The simulated exchange's markPrice stream: the frame's own figures, or null
            # where the frame had none (before the first update).
            m = synced[int(t)]["mark"]
            if m is None:
                assert mark is None and basis is None
            else:
                assert math.isclose(mark, m["mark_price"], abs_tol=0.001)
                assert math.isclose(basis, m["basis_bps"], rel_tol=6e-4, abs_tol=1e-9)
        assert (await http.get("/health")).json()["history"] == {"on": True}
        cov = (await http.get("/history/btcusdt/coverage")).json()
        assert cov["ranges"] and cov["ranges"][0][0] <= synced[lo]["timestamp"] + 1e-3
        assert cov["ranges"][-1][1] >= synced[hi]["timestamp"] - 1e-3


async def test_an_injected_wall_comes_back_from_the_alert_history(h: StackHandle) -> None:
    store = h.stack.history
    assert store is not None
    since = time.time()
    episode = await h.sim.inject_wall("btcusdt", side="bid", distance_ticks=2, multiple=25.0, duration_s=12.0)
    price = float(episode.prices[0])
    async with httpx.AsyncClient(base_url=h.api_url) as http:

        async def the_wall() -> list[dict[str, Any]]:
            await asyncio.to_thread(store.flush)
            body = (await http.get("/history/btcusdt/alerts", params={"from": since - 1})).json()
            assert body["symbol"] == "btcusdt" and body["from"] == since - 1
            return [a for a in body["alerts"] if a["type"] == "WALL" and a["price"] == price]

        async def recorded() -> bool:
            return bool(await the_wall())

        await wait_until(recorded, what=f"the WALL alert at {price} in the alert history")
        (wall,) = await the_wall()
        assert wall["side"] == "bid" and wall["symbol"] == "btcusdt"
        assert wall["events"][0]["status"] == "born" and wall["events"][0]["price"] == price
        assert wall["born_ts"] >= since
        # Nothing of it before it was injected.
        before = (await http.get("/history/btcusdt/alerts", params={"from": since - 60, "to": since})).json()
        assert all(a["id"] != wall["id"] for a in before["alerts"])


async def test_derivatives_context_comes_back_over_http(h: StackHandle) -> None:
    """Hand-set mark, funding, open interest and liquidations of a symbol the stack does
    not trade, stored by the running store and read through /history: as set, null
    (JSON null) where the frame had none, averaged over the known seconds by a step."""
    store = h.stack.history
    assert store is not None
    for s in range(4):
        f = derivatives_frame(T0 + s, 100.0 + s, 8000.0 + s, (3, 900.0), (s, 50.0 * s))
        f.symbol = "solusdt"
        store.add_frame(f)
    for s in range(4, 6):
        f = frame(T0 + s, 100.0)
        f.symbol = "solusdt"
        store.add_frame(f)
    await asyncio.to_thread(store.flush)
    async with httpx.AsyncClient(base_url=h.api_url) as http:
        resp = await http.get("/history/solusdt/metrics",
                              params={"from": T0, "to": T0 + 6, "step": 1, "fields": ",".join(DERIVATIVES_FIELDS)})
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["fields"] == list(DERIVATIVES_FIELDS) and body["samples"] == [1] * 6
        assert body["mark_price"] == [100.0, 101.0, 102.0, 103.0, None, None]
        assert body["index_price"][:4] == pytest.approx([99.95, 100.95, 101.95, 102.95])
        assert body["index_price"][4:] == [None] * 2
        assert body["basis_bps"] == [5.0] * 4 + [None] * 2
        assert body["mark_mid_bps"][:4] == pytest.approx([0.0, 100.0, 200.0, 300.0])
        assert body["mark_mid_bps"][4:] == [None] * 2
        assert body["funding_rate"] == [0.0001] * 4 + [None] * 2
        assert body["open_interest"] == [8000.0, 8001.0, 8002.0, 8003.0, None, None]
        assert body["liquidation_sell_count_1m"] == [3] * 4 + [None] * 2
        assert body["liquidation_sell_notional_1m"] == [900.0] * 4 + [None] * 2
        assert body["liquidation_buy_count_1m"] == [0, 1, 2, 3, None, None]
        assert body["liquidation_buy_notional_1m"] == [0.0, 50.0, 100.0, 150.0, None, None]
        fields = "funding_rate,open_interest,liquidation_buy_count_1m"
        stepped = (await http.get("/history/solusdt/metrics",
                                  params={"from": T0, "to": T0 + 6, "step": 3, "fields": fields})).json()
        assert stepped["samples"] == [3, 3]
        assert stepped["funding_rate"] == [pytest.approx(0.0001), pytest.approx(0.0001)]
        assert stepped["open_interest"] == [pytest.approx(8001.0), 8003.0]  # 3-5 s: only 3 s is known
        assert stepped["liquidation_buy_count_1m"] == [pytest.approx(1.0), 3.0]
        unknown = (await http.get("/history/solusdt/metrics", params={"fields": "funding"})).json()["detail"]
        assert "unknown field(s) funding" in unknown
        assert all(name in unknown.split("known: ")[1].split(", ") for name in DERIVATIVES_FIELDS), unknown


@pytest.mark.parametrize(("path", "status", "words"), [
    ("/history/dogeusdt/metrics", 404, "no history of 'dogeusdt'"),
    ("/history/btcusdt/metrics?fields=nope", 422, "unknown field(s) nope"),
    ("/history/btcusdt/metrics?fields=,", 422, "at least one field"),
    ("/history/btcusdt/metrics?from=abc", 422, "from must be a number"),
    ("/history/btcusdt/metrics?from=10&to=5", 422, "from must be before to"),
    ("/history/btcusdt/metrics?step=0", 422, "step must be a positive"),
    ("/history/btcusdt/metrics?to=1_000", 422, "to must be a number"),
    ("/history/btcusdt/alerts?from=nan", 422, "from must be finite"),
])
async def test_bad_history_requests(h: StackHandle, path: str, status: int, words: str) -> None:
    async with httpx.AsyncClient(base_url=h.api_url) as http:
        resp = await http.get(path)
    assert resp.status_code == status and words in resp.json()["detail"], resp.text
