"""Burst protection (total and per-address websocket limits, close code 1013 with a
reason) and shutdown (clients get a close frame with 1001, a stalled client does not
hold the server up, and the API comes back)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

from tests.api.wsclient import (
    expect_close,
    read_until_closed,
    recv_frames,
    recv_json,
    stalled_client,
    ws_connect,
)
from tests.stack import StackHandle, running_stack
from tests.waiting import CEILING_S

pytestmark = pytest.mark.asyncio(loop_scope="module")

MAX_CLIENTS, PER_ADDRESS = 3, 2


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def h() -> AsyncIterator[StackHandle]:
    async with running_stack(
        push_interval_s=0.1, max_ws_clients=MAX_CLIENTS, max_ws_clients_per_ip=PER_ADDRESS, frame_levels=500
    ) as handle:
        await handle.wait_synced()
        yield handle


@pytest_asyncio.fixture(loop_scope="module", autouse=True)
async def api_serving(h: StackHandle) -> AsyncIterator[None]:
    """Each test starts with the API serving, no client left and the books in sync,
    whatever the test before it did."""
    assert h.stack.api is not None
    if not h.stack.api.server.started or h.stack.api.server.should_exit:
        await h.stack.start_api_again()
    await h.wait_for(lambda: h.stack.hub.client_count == 0, what="no client left")
    await h.wait_synced()
    yield
    h.leave_clean()


async def stats(h: StackHandle) -> dict:
    async with httpx.AsyncClient(base_url=h.api_url) as http:
        return (await http.get("/stats")).json()


async def test_limits_per_address_and_in_total(h: StackHandle) -> None:
    url = f"{h.ws_url}/ws/btcusdt"
    refused = h.stack.hub.stats.clients_refused
    async with contextlib.AsyncExitStack() as stack:
        a1 = await stack.enter_async_context(ws_connect(url, "127.0.0.1"))
        a2 = await stack.enter_async_context(ws_connect(url.replace("btcusdt", "ethusdt"), "127.0.0.1"))
        for ws in (a1, a2):
            assert (await recv_json(ws))["type"] == "history"
        # A third from the same address: refused, whatever the symbol.
        async with ws_connect(url, "127.0.0.1") as a3:
            code, reason = await expect_close(a3)
        assert code == 1013 and "127.0.0.1" in reason and f"limit {PER_ADDRESS}" in reason, reason
        # Another address still gets in: 3 clients in all.
        b1 = await stack.enter_async_context(ws_connect(url, "127.0.0.2"))
        assert (await recv_json(b1))["type"] == "history"
        # A fourth from a fresh address: over the total.
        async with ws_connect(url, "127.0.0.3") as c1:
            code, reason = await expect_close(c1)
        assert code == 1013 and f"too many websocket clients (limit {MAX_CLIENTS})" in reason, reason
        body = await stats(h)
        assert body["clients"] == MAX_CLIENTS
        assert body["clients_by_symbol"] == {"btcusdt": 2, "ethusdt": 1}
        assert body["clients_refused"] == refused + 2
        # The ones let in still get their frames.
        for ws in (a1, a2, b1):
            await recv_frames(ws, 2)
        # A slot freed is a slot available again.
        await b1.close()
        await h.wait_for(lambda: h.stack.hub.client_count == MAX_CLIENTS - 1, what="the slot freed")
        async with ws_connect(url, "127.0.0.3") as c2:
            assert (await recv_json(c2))["type"] == "history"
    await h.wait_for(lambda: h.stack.hub.client_count == 0, what="every client gone")


async def test_shutdown_sends_1001_and_the_api_comes_back(h: StackHandle) -> None:
    stalled = await stalled_client(f"{h.ws_url}/ws/ethusdt")  # never reads: cannot take a close frame
    try:
        async with ws_connect(f"{h.ws_url}/ws/btcusdt") as fast:
            await recv_json(fast)
            await recv_frames(fast, 2)
            # Let the stalled one fill its buffers (its frames start being dropped).
            await h.wait_for(lambda: any(s.dropped for s in h.stack.hub.subscribers()), what="the stalled client")
            # No timing: stop_api must simply end (the ceiling only turns a hang into a
            # failure), and the stalled client's socket must have been aborted.
            await asyncio.wait_for(h.stack.stop_api(), CEILING_S)
            code, reason = await expect_close(fast, timeout=CEILING_S)
        assert code == 1001 and reason == "server shutting down"
        assert h.stack.hub.client_count == 0 and h.stack.hub.active_handlers == 0
        # A client that stopped reading cannot take a close frame: its connection was
        # aborted (what it had not read is lost) instead of holding the shutdown up or
        # being left open.
        assert await read_until_closed(stalled, CEILING_S) in ("eof", "reset")
    finally:
        stalled.close()
    # Back on the same port: HTTP and websocket work again.
    await h.stack.start_api_again()
    async with httpx.AsyncClient(base_url=h.api_url) as http:
        assert (await http.get("/health")).json()["status"] == "healthy"
    async with ws_connect(f"{h.ws_url}/ws/btcusdt") as ws:
        assert (await recv_json(ws))["type"] == "history"
        await recv_frames(ws, 1)
