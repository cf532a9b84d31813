"""Ownership leases on a real NATS server: a live owner keeps its symbol, a silent
one loses it after the lease time, a released one is free at once."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from bus.connection import BusConnection
from bus.leases import Leases
from bus.nats_server import NatsServer
from tests.waiting import wait_until

TTL_S = 1.0


@contextlib.asynccontextmanager
async def node(server: NatsServer, name: str) -> AsyncIterator[tuple[Leases, list[tuple[str, bool]]]]:
    bus = BusConnection(server.url, name, connect_timeout_s=10, lease_ttl_s=TTL_S)
    await bus.connect()
    changes: list[tuple[str, bool]] = []
    leases = Leases(bus, name, f"{name}-instance", on_change=lambda sym, owned: changes.append((sym, owned)))
    try:
        yield leases, changes
    finally:
        await bus.close()


async def test_a_live_owner_keeps_its_symbol_and_a_silent_one_loses_it(
    nats_server: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    async with node(nats_server, "node-a") as (a, a_changes), node(nats_server, "node-b") as (b, _b_changes):
        await a.claim_all(["btcusdt"])
        assert a.owned() == ["btcusdt"] and a_changes == [("btcusdt", True)]
        renewing = asyncio.create_task(a.run())
        waiting = asyncio.create_task(b.claim_all(["btcusdt"]))
        # While node-a renews, node-b waits, with a log line naming the owner.
        first = a._revision["btcusdt"]
        await wait_until(lambda: a._revision.get("btcusdt", 0) >= first + 3, what="three renewals by node-a")
        assert not waiting.done() and not b.owns("btcusdt") and a.owns("btcusdt")
        assert any("owned by ingest node node-a" in r.getMessage() for r in caplog.records)
        # node-a stops renewing (as if killed): node-b takes the symbol after the lease time.
        renewing.cancel()
        await wait_until(lambda: waiting.done(), what="node-b to take btcusdt")
        await waiting
        assert b.owned() == ["btcusdt"]
        # node-a, renewing again, finds it gone and stops counting on it.
        await a.renew()
        assert not a.owns("btcusdt") and a_changes[-1] == ("btcusdt", False)
        assert any("node-b holds it now" in r.getMessage() for r in caplog.records)


async def test_a_released_lease_is_free_at_once(nats_server: NatsServer) -> None:
    async with node(nats_server, "node-a") as (a, _), node(nats_server, "node-b") as (b, _):
        await a.claim_all(["ethusdt", "btcusdt"])
        holder = await b.try_claim("ethusdt")
        assert holder is not None and holder.node == "node-a"
        await a.release_all()
        assert a.owned() == []
        assert await b.try_claim("ethusdt") is None and b.owns("ethusdt")
        assert await b.try_claim("btcusdt") is None
