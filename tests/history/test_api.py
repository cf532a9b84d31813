"""``/history`` on a running stack: the series equal the frames that were pushed,
coverage starts with the run, bad parameters are 4xx saying why."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from tests.stack import StackHandle, running_stack

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
                               params={"from": lo, "to": hi + 1, "fields": "mid_price,spread,imbalance",
                                       "step": 1})).json()
        assert body["step"] == 1 and body["fields"] == ["mid_price", "spread", "imbalance"]
        assert [int(t) for t in body["t"]] == sorted(synced)
        for t, mid, spread, imb in zip(body["t"], body["mid_price"], body["spread"], body["imbalance"], strict=True):
            f = synced[int(t)]
            # The history keeps full precision; the frame was rounded where its JSON was
            # written (mid to two decimals past the tick, ratios to 4 significant digits).
            assert math.isclose(mid, f["mid_price"], abs_tol=0.0051) and math.isclose(spread, f["spread"], abs_tol=1e-9)
            assert math.isclose(imb, f["imbalance"], rel_tol=6e-4, abs_tol=1e-12)
        assert (await http.get("/health")).json()["history"] == {"on": True}
        cov = (await http.get("/history/btcusdt/coverage")).json()
        assert cov["ranges"] and cov["ranges"][0][0] <= synced[lo]["timestamp"] + 1e-3
        assert cov["ranges"][-1][1] >= synced[hi]["timestamp"] - 1e-3
        alerts = await http.get("/history/btcusdt/alerts", params={"from": lo - 60})
        assert alerts.status_code == 200 and isinstance(alerts.json()["alerts"], list)


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
