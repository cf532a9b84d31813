"""Fixtures: a real simulated exchange on free loopback ports, stopped cleanly."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from exchange_sim import SimConfig, SimExchange, SimUrls


async def wait_for(predicate: Callable[[], bool | Awaitable[bool]], timeout: float = 5.0, what: str = "") -> None:
    """Poll ``predicate`` until true or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        await asyncio.sleep(0.02)


@pytest.fixture
async def sim() -> AsyncIterator[SimExchange]:
    exchange = SimExchange(SimConfig(symbols=("btcusdt", "ethusdt"), seed=7, warmup_s=15.0, episodes=False))
    await exchange.start(host="127.0.0.1", port=0)
    try:
        yield exchange
    finally:
        await exchange.stop()


@pytest.fixture
def urls(sim: SimExchange) -> SimUrls:
    assert sim.urls is not None
    return sim.urls


@pytest.fixture
async def http(urls: SimUrls) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=urls.rest_base_url, timeout=10.0) as client:
        yield client
