from __future__ import annotations

import random

import httpx
import pytest

from data_ingestion.backoff import Backoff
from data_ingestion.rest import DEPTH_WEIGHT, WeightBudget, symbol_filters


def test_backoff_doubles_caps_and_resets() -> None:
    b = Backoff(1.0, 30.0, 2.0, jitter=0.0)
    assert [b.next_delay() for _ in range(7)] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    b.reset()
    assert b.next_delay() == 1.0


def test_backoff_jitter_stays_within_its_share_and_under_the_cap() -> None:
    b = Backoff(1.0, 30.0, 2.0, jitter=0.2, rng=random.Random(7))
    delays = [b.next_delay() for _ in range(12)]
    bases = [1, 2, 4, 8, 16, 30, 30, 30, 30, 30, 30, 30]
    for d, base in zip(delays, bases, strict=True):
        assert base * 0.8 <= d <= min(30.0, base * 1.2)
    assert len(set(delays)) == len(delays)  # spread, not in lock step


def test_backoff_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        Backoff(0, 30)
    with pytest.raises(ValueError):
        Backoff(5, 1)


class FakeClock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_weight_budget_keeps_under_its_share_of_the_minute() -> None:
    clock = FakeClock(1_000_040.0)  # 20 s into a minute (1_000_020 is a minute boundary)
    budget = WeightBudget(2400, 0.5, clock)
    assert budget.limit == 1200
    w = DEPTH_WEIGHT[1000]
    for _ in range(60):  # 60 snapshots of weight 20 = 1200
        assert budget.delay_for(w) == 0.0
        budget.spend(w)
    # The 61st must wait for the next minute (40 s away, plus a margin).
    assert budget.delay_for(w) == pytest.approx(40.05)
    clock.t += 40.1
    assert budget.delay_for(w) == 0.0


def test_weight_budget_reads_the_exchange_header_and_retry_after() -> None:
    clock = FakeClock(600.0)
    budget = WeightBudget(2400, 0.5, clock)
    budget.observe(httpx.Headers({"X-MBX-USED-WEIGHT-1M": "1190"}), 200)
    assert budget.used == 1190 and budget.delay_for(20) > 0
    retry = budget.observe(httpx.Headers({"Retry-After": "7"}), 429)
    assert retry == 7.0 and budget.rate_limited == 1
    clock.t += 1
    assert budget.delay_for(2) == pytest.approx(6.0)  # blocked until Retry-After passes
    assert budget.observe(httpx.Headers({}), 418) == 60.0  # a ban without Retry-After: wait a minute


def test_symbol_filters_from_exchange_info() -> None:
    info = {"symbols": [
        {"symbol": "BTCUSDT", "status": "TRADING", "filters": [{"filterType": "PRICE_FILTER", "tickSize": "0.10"},
                                          {"filterType": "LOT_SIZE", "stepSize": "0.001"}]},
        {"symbol": "BROKEN", "filters": []},
    ]}
    assert symbol_filters(info) == {"btcusdt": (0.1, 0.001, 1, 3, "TRADING", None, None)}


async def test_snapshot_requests_under_a_429_storm_stay_within_the_budget() -> None:
    """Against the simulated exchange: every snapshot answered 429 (Retry-After 1 s);
    the client honours it and never sends more than the budget allows."""
    from tests.stack import running_stack

    async with running_stack(symbols=("btcusdt",), backoff_initial_s=0.1) as h:
        await h.wait_synced()
        assert h.stack.runtime.rest is not None
        budget = h.stack.runtime.rest.budget
        requests = budget.requests
        h.sim.set_fault("btcusdt", "snapshot_429", retry_after=1, count=1_000_000)
        h.sim.set_fault("btcusdt", "drop", count=1)
        await h.wait_for(lambda: budget.rate_limited >= 2, what="two 429 answers")
        window_start = budget.requests
        await h.wait_for(lambda: budget.rate_limited >= 4, what="four 429 answers")
        # One request per Retry-After second at most: not a hammering loop.
        assert budget.requests - window_start <= 3
        assert not h.feed("btcusdt").in_sync
        h.sim.clear_faults()
        await h.wait_synced()
        assert budget.requests - requests < 15
