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


# The warm-up of the shared ``sim`` fixture: the book starts whole, so the protocol and
# fault tests need no market history; a test that reads further back into the past
# (a stale snapshot 10 s old) asks for more with ``@pytest.mark.sim_warmup(seconds)``.
WARMUP_S = 2.0


@pytest.fixture
async def sim(request: pytest.FixtureRequest) -> AsyncIterator[SimExchange]:
    marker = request.node.get_closest_marker("sim_warmup")
    warmup_s = float(marker.args[0]) if marker else WARMUP_S
    exchange = SimExchange(SimConfig(symbols=("btcusdt", "ethusdt"), seed=7, warmup_s=warmup_s, episodes=False))
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
