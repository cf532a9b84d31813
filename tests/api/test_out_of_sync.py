"""A book knocked out of sync: /health degraded then unhealthy (503), /book and
/simulate answer 503 with the reason, frames and /metrics say so; after the faults
are cleared everything recovers and the book equals the exchange's again."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

from tests.api.wsclient import recv_json, ws_connect
from tests.stack import StackHandle, book_mismatches, running_stack

pytestmark = pytest.mark.asyncio(loop_scope="module")

SYM, OTHER = "btcusdt", "ethusdt"


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def h() -> AsyncIterator[StackHandle]:
    async with running_stack(
        symbols=(SYM, OTHER), push_interval_s=0.1, backoff_initial_s=0.1, backoff_max_s=0.5
    ) as handle:
        await handle.wait_synced()
        yield handle


@pytest_asyncio.fixture(loop_scope="module", autouse=True)
async def clean_start(h: StackHandle) -> AsyncIterator[None]:
    """Each test starts with no fault left on the exchange and every book in sync,
    whatever the test before it did or failed to undo."""
    h.leave_clean()
    await h.wait_synced()
    yield
    h.leave_clean()


def knock_out(h: StackHandle, symbol: str) -> None:
    """Every snapshot fails, and a dropped event forces a resync that needs one."""
    h.sim.set_fault(symbol, "snapshot_5xx", status=503, count=1000)
    h.sim.set_fault(symbol, "drop", count=1)


async def recover(h: StackHandle) -> None:
    h.sim.clear_faults()
    await h.wait_synced()


async def test_one_book_out_of_sync(h: StackHandle) -> None:
    knock_out(h, SYM)
    try:
        await h.wait_for(lambda: not h.feed(SYM).in_sync, what=f"{SYM} out of sync")
        async with httpx.AsyncClient(base_url=h.api_url) as http, ws_connect(f"{h.ws_url}/ws/{SYM}") as ws:
            r = await http.get("/health")
            assert r.status_code == 200
            body = r.json()
            assert body["status"] == "degraded"
            assert body["sync"][SYM]["in_sync"] is False and body["sync"][SYM]["state"] != "synced"
            assert body["sync"][SYM]["reason"]
            assert body["sync"][OTHER]["in_sync"] is True

            for path in (f"/book/{SYM}", f"/book/{SYM}?depth=5", f"/simulate/{SYM}?side=buy&size=1",
                         f"/simulate/{SYM}?side=sell&sizes=0.1,1,5"):
                r = await http.get(path)
                assert r.status_code == 503, (path, r.text)
                detail = r.json()["detail"]
                assert SYM in detail and "not in sync" in detail, detail
            # Bad input is still a 422, an unknown symbol still a 404: not hidden by the 503.
            assert (await http.get(f"/simulate/{SYM}?side=buy&size=-1")).status_code == 422
            # The other symbol is untouched.
            assert (await http.get(f"/book/{OTHER}?depth=3")).status_code == 200
            assert (await http.get(f"/simulate/{OTHER}?side=buy&size=1")).status_code == 200

            metrics = (await http.get("/metrics")).text
            assert f'liq_in_sync{{symbol="{SYM}"}} 0.0' in metrics
            assert f'liq_in_sync{{symbol="{OTHER}"}} 1.0' in metrics

            # Frames keep coming, saying the book is not in sync.
            await recv_json(ws)
            frame = await recv_json(ws)
            assert frame["type"] == "frame" and frame["sync"]["state"] != "synced"
    finally:
        await recover(h)


async def test_every_book_out_of_sync_is_unhealthy(h: StackHandle) -> None:
    for sym in (SYM, OTHER):
        knock_out(h, sym)
    try:
        await h.wait_for(lambda: not h.feed(SYM).in_sync and not h.feed(OTHER).in_sync, what="both out of sync")
        async with httpx.AsyncClient(base_url=h.api_url) as http:
            r = await http.get("/health")
            assert r.status_code == 503
            body = r.json()
            assert body["status"] == "unhealthy"
            assert not any(s["in_sync"] for s in body["sync"].values())
            assert (await http.get("/symbols")).status_code == 200
            assert (await http.get("/stats")).status_code == 200
    finally:
        await recover(h)


async def test_recovery_after_the_faults_are_cleared(h: StackHandle) -> None:
    resyncs = {sym: h.feed(sym).validator.counters.resyncs for sym in (SYM, OTHER)}
    for sym in (SYM, OTHER):
        knock_out(h, sym)
    await h.wait_for(lambda: not h.feed(SYM).in_sync and not h.feed(OTHER).in_sync, what="both out of sync")
    await recover(h)
    async with httpx.AsyncClient(base_url=h.api_url) as http:
        r = await http.get("/health")
        assert r.status_code == 200 and r.json()["status"] == "healthy"
        for sym in (SYM, OTHER):
            assert (await http.get(f"/book/{sym}?depth=5")).status_code == 200
            assert (await http.get(f"/simulate/{sym}?side=sell&size=1")).status_code == 200
            assert book_mismatches(h.feed(sym), h.sim) == []
            assert h.feed(sym).validator.counters.resyncs > resyncs[sym]


async def test_a_stale_book_is_not_served(h: StackHandle) -> None:
    """Its connection silent past the liveness ping's deadline: /health says stale,
    and /book and /simulate refuse it like any book not in sync. The feed's
    thresholds are lowered to a nanosecond (the connection keeps its own), so every
    read sees a message older than them, whatever is still in flight."""
    feed = h.feed(SYM)
    settings = feed.settings
    feed.settings = settings.replace(stale_after_s=1e-9, pong_timeout_s=1e-9)
    try:
        assert feed.in_sync  # the sync machine itself still says synced
        async with httpx.AsyncClient(base_url=h.api_url) as http:
            body = (await http.get("/health")).json()
            assert body["status"] == "degraded" and body["sync"][SYM]["state"] == "stale"
            for path in (f"/book/{SYM}", f"/simulate/{SYM}?side=buy&size=1"):
                r = await http.get(path)
                assert r.status_code == 503, (path, r.text)
                assert "stale" in r.json()["detail"] and "no message" in r.json()["detail"]
    finally:
        feed.settings = settings
    await h.wait_for(lambda: feed.sync_info()["state"] == "synced", what="fresh again")


async def test_a_quiet_book_on_a_live_connection_is_served(h: StackHandle) -> None:
    """Silent for longer than stale_after_s while its connection is heard from: the
    book is quiet, still trusted: served, healthy, full frames."""
    feed = h.feed(SYM)
    settings = feed.settings
    feed.settings = settings.replace(stale_after_s=1e-9)  # the connection's pong deadline stays 10 s
    try:
        async with httpx.AsyncClient(base_url=h.api_url) as http:
            body = (await http.get("/health")).json()
            assert body["sync"][SYM]["state"] == "quiet" and body["sync"][SYM]["in_sync"] is True
            assert body["status"] == "healthy"
            assert body["sync"][SYM]["last_message_age_s"] is not None
            assert (await http.get(f"/book/{SYM}?depth=3")).json()["state"] == "quiet"
            assert (await http.get(f"/simulate/{SYM}?side=buy&size=1")).status_code == 200
    finally:
        feed.settings = settings
