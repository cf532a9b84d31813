"""Every labelled liquidation burst of the simulated exchange is alerted, with the
depth before, the drain and the refill time of the side it hit matching the
exchange's own book (its truth, measured at every engine batch).

What the client can know: a snapshot holds 1,000 levels a side, about 18 bps of the
simulated BTCUSDT book, so before the burst it sees the 25 bps band only in part (the
levels beyond its snapshot that no diff touched are unknown to it, as on Binance). The
client's "before" is held between the exchange's side as it stood at the burst's
start counted inside the client's snapshot band and the whole of it; once the market
makers pull their orders every level near the touch has been sent in a diff, so the
drain and the refill are the exchange's depth series judged against the client's
"before" by the client's rules.

Tolerances, from the client's sampling: the client measures depth once a frame (1 s)
at the exchange time of the book's last depth event (100 ms windows), the exchange at
every 50 ms batch. So its "before" is the book up to 1.1 s earlier than the first
forced order (within 20 % of those bounds), its minimum is seen while the book stays
thin (drain within 10 percentage points), and it sees the refill at the first frame
after it happened: refill_s within [-1.0, +2.0] s of the truth (a second of frames,
the 100 ms depth window, and a before up to 20 % off moving the 90 % mark).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.stack import running_stack

pytestmark = pytest.mark.slow

# (the tools' warm-up: the book before each burst in its steady shape)
BURSTS = {"warmup_s": 20.0, "episode_kinds": ("liquidation_burst",), "first_episode_after_s": (3.0, 5.0),
          "episode_every_s": {"liquidation_burst": (10.0, 14.0)}, "episode_gap_s": 6.0, "regime": "calm"}
BEFORE_TOLERANCE = 0.20  # relative
DRAIN_TOLERANCE_PCT = 10.0  # percentage points
LOT = 0.001  # BTCUSDT's and ETHUSDT's step
REFILL_EARLY_S, REFILL_LATE_S = 1.0, 2.0


def known_before(label: Any, band_bps: float, snapshot_band: Any) -> float:
    """The exchange's depth within ``band_bps`` of mid on the hit side at the burst's
    start, counting only the levels inside the client's snapshot band: the least the
    client can know (it also knows the levels beyond that diffs have touched)."""
    d = label.details
    mid = d["mid_ticks_before"]
    lo, hi = (snapshot_band.bid_low, snapshot_band.bid_high) if label.side == "bid" else \
        (snapshot_band.ask_low, snapshot_band.ask_high)
    return sum(lots for tick, lots in d["levels_before"]
               if abs(tick - mid) <= band_bps / 1e4 * mid + 1e-6 and lo <= tick <= hi) * LOT


def response_truth(label: Any, band_bps: float, before: float) -> tuple[float, float | None]:
    """(drain %, refill s) of the exchange's depth series against ``before``, by the
    client's rules: the minimum since the first forced order, and the first time back
    at 90 % of before after being below it."""
    d = label.details
    column = 1 if band_bps == 10.0 else 2
    start = d["forced_orders"][0]["T"]
    series = [(row[0], row[column]) for row in d["depth_series"] if row[0] >= start]
    low = min(v for _, v in series)
    dipped = False
    for t, v in series:
        if v < 0.9 * before:
            dipped = True
        elif dipped:
            return (before - low) / before * 100.0, (t - start) / 1000.0
    return (before - low) / before * 100.0, None


def finished_bursts(sim: Any, symbol: str) -> list[Any]:
    return [e for e in sim.episodes(symbol) if e.kind == "liquidation_burst" and e.end_ms is not None]


async def test_every_labelled_burst_is_alerted_with_the_truth_of_the_book() -> None:
    async with running_stack(symbols=("btcusdt", "ethusdt"), sim_config=BURSTS, open_interest_poll_s=0) as h:
        await h.wait_synced()
        for wanted in (1, 2):
            def labelled(n: int = wanted) -> bool:
                return all(len(finished_bursts(h.sim, s)) >= n for s in ("btcusdt", "ethusdt"))

            await h.wait_for(labelled, what=f"burst {wanted} labelled on both symbols")
        labels = {s: finished_bursts(h.sim, s)[:2] for s in ("btcusdt", "ethusdt")}

        def alert_for(symbol: str, label: Any) -> dict[str, Any] | None:
            start = label.details["forced_orders"][0]["T"]
            for a in h.stack.features[symbol].alert_list():
                if a.type == "LIQUIDATION_BURST" and a.burst is not None and round(a.burst.start_ts * 1000) == start:
                    return {"live": a.live, "reason": a.reason}
            return None

        await h.wait_for(lambda: all((x := alert_for(s, e)) is not None and not x["live"]
                                     for s, ls in labels.items() for e in ls),
                         what="every labelled burst alerted and its refill seen")
        async with httpx.AsyncClient(base_url=h.api_url) as client:
            answers = {s: (await client.get(f"/alerts/{s}", params={"kind": "LIQUIDATION_BURST",
                                                                     "min_notional": 0})).json()
                       for s in labels}
        published = {s: set(h.sim.state(s).stats.published_liquidations) for s in labels}
        bands = {s: h.feed(s).book.snapshot_band for s in labels}
        assert all(h.feed(s).validator.counters.resyncs == 0 for s in labels)  # one snapshot: its band
    threshold = h.settings.liquidation_burst_notional_usdt
    for symbol, ls in labels.items():
        alerts = [a for g in answers[symbol]["groups"] for a in g["alerts"]]
        for label in ls:
            truth = label.details
            orders = truth["forced_orders"]
            assert orders[0]["T"] in published[symbol], "the first forced order was sent (calm market: no other)"
            found = [a for a in alerts if round(a["burst"]["start_ts"] * 1000) == orders[0]["T"]]
            assert len(found) == 1, (symbol, label.id)
            a = found[0]
            b = a["burst"]
            assert a["type"] == "LIQUIDATION_BURST" and a["side"] == label.side and not a["live"]
            assert a["reason"] == "refilled" and b["refilled"]
            assert b["liquidation_side"] == truth["liquidation_side"].lower()
            # Lower bounds: the client sees what was sent, never more than what was liquidated.
            sent = [o for o in orders if o["T"] in published[symbol]]
            assert 1 <= b["count"] <= len(orders)
            assert threshold <= b["notional"] <= truth["notional"] + 0.01
            assert b["notional"] >= sum(o["notional"] for o in sent) - 0.01 * len(sent)
            for band in ("10", "25"):
                least, most = known_before(label, float(band), bands[symbol]), truth[f"depth_before_{band}bps"]
                before = b[f"depth_before_{band}bps"]
                assert (1 - BEFORE_TOLERANCE) * least <= before <= (1 + BEFORE_TOLERANCE) * most, (symbol, band, b)
                drain, true_refill = response_truth(label, float(band), before)
                seen = (symbol, band, b, least, most, drain, true_refill)
                assert abs(b[f"drain_pct_{band}bps"] - drain) <= DRAIN_TOLERANCE_PCT, seen
                refill = b[f"refill_s_{band}bps"]
                assert true_refill is not None and refill is not None, seen
                assert true_refill - REFILL_EARLY_S <= refill <= true_refill + REFILL_LATE_S, seen
