"""Fixtures: a real simulated exchange on free loopback ports, stopped cleanly."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from exchange_sim import SimConfig, SimExchange, SimUrls
from tests.waiting import CEILING_S, wait_until


async def wait_for(predicate: Callable[[], bool | Awaitable[bool]], timeout: float = CEILING_S,
                   what: str = "") -> None:
    """Poll ``predicate`` until true or fail after ``timeout`` seconds."""
    await wait_until(predicate, timeout, what)


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
