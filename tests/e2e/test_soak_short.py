"""A short accelerated soak: the simulated market at 4x speed, 15 faults one after
the other, each covering every kind at least once. After each fault the test waits
for what it must cause (counted by the client) and then for the recovery: both books
in sync again and equal to the exchange's. No task dies, every loss of sync ends in
a new sync, and whenever a feed says it is in sync its book is the exchange's.

Nothing here is measured against the wall clock: a slow machine makes the soak
longer, not different. The ceilings only turn a hang into a failure."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest

from tests.stack import StackHandle, book_mismatches, running_stack

pytestmark = pytest.mark.slow

SYMS = ("btcusdt", "ethusdt")
INJECTIONS = 15
CEILING_S = 60.0

FAULTS: list[tuple[str, dict[str, Any]]] = [
    ("drop", {"count": 1}),
    ("duplicate", {"count": 2}),
    ("reorder", {"count": 1}),
    ("close", {"frame": True}),
    ("close", {"frame": False}),
    # Well past the liveness probe's 1.5 s + 1 s pong deadline, so that the
    # connection is declared stale however late the last message was read.
    ("silence", {"seconds": 4.0}),
    ("malformed", {"kind": "json", "count": 1}),
    ("malformed", {"kind": "fields", "count": 1}),
    ("snapshot_5xx", {"count": 1}),
    ("snapshot_stale", {"count": 1}),
    ("rotate", {}),
]
# Faults after which the book cannot be trusted: the client must go out of sync.
RESYNCING = {"drop", "reorder", "close", "silence", "rotate", "snapshot_5xx", "snapshot_stale"}
SNAPSHOT_FAULTS = {"snapshot_5xx", "snapshot_stale"}


def plan(rng: random.Random) -> list[tuple[str, str, dict[str, Any]]]:
    """Every fault once in a random order, then random ones up to INJECTIONS."""
    faults = list(FAULTS)
    rng.shuffle(faults)
    faults += [rng.choice(FAULTS) for _ in range(INJECTIONS - len(faults))]
    return [(rng.choice(SYMS), name, params) for name, params in faults]


def effect(h: StackHandle, symbol: str, name: str) -> Callable[[], bool]:
    """A predicate that becomes true once the client has counted what fault ``name``
    on ``symbol`` must cause (counters read now, at injection)."""
    feed = h.feed(symbol)
    c, m = feed.validator.counters, feed.monitor
    public = next(conn for conn in h.stack.runtime.connections if conn.name.startswith("public"))
    if name in ("drop", "reorder"):
        gaps = c.gaps
        return lambda: c.gaps > gaps
    if name == "duplicate":
        stale = c.dropped_stale
        return lambda: c.dropped_stale >= stale + 2
    if name == "malformed":
        bad = public.malformed + c.malformed + m.malformed
        return lambda: public.malformed + c.malformed + m.malformed > bad
    if name in ("close", "silence", "rotate"):
        reconnects = m.reconnects
        return lambda: m.reconnects > reconnects
    if name == "snapshot_5xx":
        errors = m.snapshot_errors
        return lambda: m.snapshot_errors > errors
    if name == "snapshot_stale":
        refused = c.snapshots_refused
        return lambda: c.snapshots_refused > refused
    raise AssertionError(f"no effect known for fault {name}")


async def test_accelerated_soak_with_faults() -> None:
    rng = random.Random(42)
    async with running_stack(
        symbols=SYMS,
        sim_config={"speed": 4.0},
        push_interval_s=0.5,
        stale_after_s=1.5,
        pong_timeout_s=1.0,
        backoff_initial_s=0.1,
        backoff_max_s=2.0,
    ) as h:
        await h.wait_synced(CEILING_S)
        feeds = {s: h.feed(s) for s in SYMS}
        samples_in_sync = 0

        def books_right_while_in_sync() -> None:
            """Whenever a feed says it is in sync, its book is the exchange's."""
            nonlocal samples_in_sync
            for sym, feed in feeds.items():
                if feed.in_sync:
                    assert book_mismatches(feed, h.sim) == [], f"{sym} said in sync with a wrong book"
                    samples_in_sync += 1

        async def wait_checking(predicate: Callable[[], bool], what: str) -> None:
            def check() -> bool:
                books_right_while_in_sync()
                return predicate()

            await h.wait_for(check, CEILING_S, what)

        def total_resyncs() -> int:
            return sum(f.validator.counters.resyncs for f in feeds.values())

        injected: list[str] = []
        expected_resyncs = 0
        recovery_checks = 0
        for i, (symbol, name, params) in enumerate(plan(rng)):
            what = f"fault {i + 1} ({name} {params} on {symbol})"
            resyncs = total_resyncs()
            counted = effect(h, symbol, name)
            h.sim.set_fault(symbol, name, **params)
            if name in SNAPSHOT_FAULTS:
                h.sim.set_fault(symbol, "drop", count=1)  # a resync, which asks for the snapshot
            injected.append(name)
            await wait_checking(counted, f"the client counting {what}")
            if name in RESYNCING:
                expected_resyncs += 1
                def resynced(before: int = resyncs) -> bool:
                    return total_resyncs() > before

                await wait_checking(resynced, f"a resync after {what}")
            # Recovered: both books in sync with events applied on top of the snapshot,
            # each equal to the exchange's truth, and the fault used up at the exchange.
            await wait_checking(lambda: all(f.in_sync for f in feeds.values()), f"both in sync after {what}")
            applied = {s: f.validator.counters.events_applied for s, f in feeds.items()}
            def applied_on_top(before: dict[str, int] = applied) -> bool:
                return all(f.in_sync and f.validator.counters.events_applied >= before[s] + 5
                           for s, f in feeds.items())

            await wait_checking(applied_on_top, f"events applied after {what}")
            for sym, feed in feeds.items():
                assert book_mismatches(feed, h.sim) == [], f"{sym} after {what}"
                recovery_checks += 1
            assert h.sim.faults() == {s: {} for s in SYMS}, f"{what} not used up: {h.sim.faults()}"

        h.sim.clear_faults()
        await h.wait_synced(CEILING_S)
        for sym, feed in feeds.items():
            assert book_mismatches(feed, h.sim) == []
            c = feed.validator.counters
            # Every loss of sync was followed by a new sync (the first sync has no resync).
            assert c.syncs == c.resyncs + 1, (sym, c)
        assert h.stack.tasks.failures == []
        assert len(injected) == INJECTIONS and {n for n, _ in FAULTS} <= set(injected)
        assert total_resyncs() >= expected_resyncs >= 7
        assert recovery_checks == 2 * INJECTIONS
        assert samples_in_sync >= recovery_checks
