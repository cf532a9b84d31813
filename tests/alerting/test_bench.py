"""bench/alert_delivery.py on a short outage: every alert offered is received once,
and the figures it prints are consistent with what the receiver read."""

from __future__ import annotations

from bench.alert_delivery import run


async def test_a_short_outage_loses_nothing_and_the_figures_add_up() -> None:
    r = await run(alerts=20, rate=50.0, outage_s=1.0, outage_rate=10.0, queue=1000, dest_rate=100.0, burst=100)
    assert r["delivered_before_outage"] == 20 and r["outage_alerts"] == 10
    assert (r["lost"], r["dropped"], r["dead_letters"], r["duplicates"]) == (0, 0, 0, 0)
    assert r["attempts_during_outage"] >= 1 and r["retried"] == r["attempts_during_outage"]
    assert 0 < r["latency_p50_ms"] <= r["latency_p99_ms"] <= r["latency_max_ms"]


async def test_an_outage_longer_than_the_queue_loses_what_did_not_fit() -> None:
    # 30 alerts into a queue of 10 behind the one being retried: 19 dropped (20 if the
    # worker had not yet taken the first one when the queue filled), the oldest waiting.
    r = await run(alerts=5, rate=50.0, outage_s=1.0, outage_rate=30.0, queue=10, dest_rate=100.0, burst=100)
    assert r["outage_alerts"] == 30 and 19 <= r["dropped"] <= 20
    assert r["lost"] == r["dropped"] and r["dead_letters"] == 0 and r["duplicates"] == 0
