"""A short accelerated soak: the simulated market at 4x speed for about 40 s of
wall time with a fault every couple of seconds. No task dies, every resync ends in
sync, and at the end each book equals the exchange's."""

from __future__ import annotations

import asyncio
import random

from tests.stack import book_mismatches, running_stack

FAULTS = [
    ("drop", {"count": 1}),
    ("duplicate", {"count": 2}),
    ("reorder", {"count": 1}),
    ("close", {"frame": True}),
    ("close", {"frame": False}),
    ("silence", {"seconds": 2.0}),
    ("malformed", {"kind": "json", "count": 1}),
    ("malformed", {"kind": "fields", "count": 1}),
    ("snapshot_5xx", {"count": 1}),
    ("snapshot_stale", {"count": 1}),
    ("rotate", {}),
]


async def test_accelerated_soak_with_faults() -> None:
    rng = random.Random(42)
    async with running_stack(
        symbols=("btcusdt", "ethusdt"),
        sim_config={"speed": 4.0},
        push_interval_s=0.5,
        stale_after_s=1.5,
        backoff_initial_s=0.1,
        backoff_max_s=2.0,
    ) as h:
        await h.wait_synced(30)
        loop = asyncio.get_running_loop()
        end = loop.time() + 40.0
        injected = 0
        checks_while_synced = 0
        while loop.time() < end:
            symbol = rng.choice(("btcusdt", "ethusdt"))
            name, params = rng.choice(FAULTS)
            h.sim.set_fault(symbol, name, **params)
            injected += 1
            for _ in range(20):  # 2 s of sampling between faults
                await asyncio.sleep(0.1)
                for sym in ("btcusdt", "ethusdt"):
                    feed = h.feed(sym)
                    if feed.in_sync:
                        assert book_mismatches(feed, h.sim) == [], f"{sym} said in sync with a wrong book"
                        checks_while_synced += 1
        h.sim.clear_faults()
        await h.wait_synced(30)
        for sym in ("btcusdt", "ethusdt"):
            feed = h.feed(sym)
            assert book_mismatches(feed, h.sim) == []
            c = feed.validator.counters
            # Every loss of sync was followed by a new sync (the first sync has no resync).
            assert c.syncs == c.resyncs + 1
        assert h.stack.tasks.failures == []
        total_resyncs = sum(h.feed(s).validator.counters.resyncs for s in ("btcusdt", "ethusdt"))
        assert injected >= 15 and total_resyncs >= 5
        assert checks_while_synced > 100
