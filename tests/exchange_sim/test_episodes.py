"""Scripted episodes carry labels and trip the detector definitions of metrics.md."""

from __future__ import annotations

import random
import statistics
from decimal import Decimal

import httpx

from exchange_sim import SimConfig, SimExchange
from exchange_sim.episodes import EpisodeScheduler
from exchange_sim.market import SymbolMarket
from exchange_sim.settings import mid_price_for, spec_for
from tests.exchange_sim.conftest import wait_for


def run_with_samples(seconds: int) -> tuple[EpisodeScheduler, list[dict]]:
    """Run a market with frequent episodes; 1 Hz samples of the top 20 levels."""
    cfg = SimConfig(symbols=("btcusdt",), seed=11, first_episode_after_s=(31.0, 32.0), wall_every_s=(20.0, 30.0),
                    layering_every_s=(20.0, 30.0), withdrawal_every_s=(20.0, 30.0), episode_gap_s=15.0)
    market = SymbolMarket("btcusdt", spec_for(cfg, "btcusdt"), mid_price_for(cfg, "btcusdt"),
                          random.Random("11:btcusdt"), 1_700_000_000_000)
    for _ in range(600):
        market.step()
    scheduler = EpisodeScheduler(market, cfg, random.Random("11:btcusdt:episodes"))
    samples = []
    for i in range(seconds * 20):
        market.begin_step()
        scheduler.on_step()
        market.run_random_flow()
        market.end_step()
        if i % 20 == 19:
            samples.append({"t": market.now_ms, "bids": market.top_levels(True, 20),
                            "asks": market.top_levels(False, 20), "spread": market.spread_ticks()})
    return scheduler, samples


def rolling_median(samples: list[dict], i: int) -> float:
    sizes = [q for s in samples[max(0, i - 30): i + 1] for side in ("bids", "asks") for _, q in s[side]]
    return statistics.median(sizes)


def test_each_kind_is_labelled_and_trips_its_detector() -> None:
    scheduler, samples = run_with_samples(240)
    labels = scheduler.labels
    assert {e.kind for e in labels} == {"wall", "layering", "withdrawal"}
    for a, b in zip(labels, labels[1:], strict=False):
        assert a.end_ms is not None and a.end_ms <= b.start_ms  # never overlapping
    tick = Decimal("0.1")
    for ep in labels:
        if ep.end_ms is None:
            continue
        span = [(i, s) for i, s in enumerate(samples) if ep.start_ms < s["t"] <= ep.end_ms]
        if ep.kind == "wall":
            assert ep.end_ms - ep.start_ms >= 8000
            price = round(Decimal(ep.prices[0]) / tick)
            side = "bids" if ep.side == "bid" else "asks"
            held = [i for i, s in span if dict(s[side]).get(price, 0) >= 5 * rolling_median(samples, i)]
            assert len(held) >= 6, (ep, len(held), len(span))
        elif ep.kind == "layering":
            side = "bids" if ep.side == "bid" else "asks"
            previous: set[int] = set()
            fired = False
            for i, s in span:
                big = {p for p, q in s[side] if q >= 8 * rolling_median(samples, i)}
                levels = [p for p, _ in s[side]]
                runs, run = [], []
                for p in levels:
                    if p in big:
                        run.append(p)
                    else:
                        runs.append(run)
                        run = []
                runs.append(run)
                current = {p for r in runs if len(r) >= 4 for p in r}
                if len(current) >= 4 and previous and len(current - previous) / len(current) >= 0.6:
                    fired = True
                previous = current
            assert fired, ep
        else:
            before = [s for s in samples if ep.start_ms - 15000 <= s["t"] <= ep.start_ms]
            depth_mean = statistics.fmean(sum(q for _, q in s["bids"] + s["asks"]) for s in before)
            spread_mean = statistics.fmean(s["spread"] for s in before)
            hit = [s for _, s in span if sum(q for _, q in s["bids"] + s["asks"]) < 0.3 * depth_mean
                   and s["spread"] > 4 * spread_mean]
            assert len(hit) >= 3, ep


async def test_injected_wall_is_labelled_and_holds_in_the_true_book() -> None:
    sim = SimExchange(SimConfig(symbols=("btcusdt",), seed=5, warmup_s=30.0, speed=2.0, episodes=False))
    urls = await sim.start(port=0)
    try:
        async with httpx.AsyncClient(base_url=urls.rest_base_url) as http:
            resp = await http.post("/sim/inject", json={"symbol": "btcusdt", "kind": "wall", "side": "bid",
                                                        "distance_ticks": 3, "multiple": 10, "duration_s": 3})
            assert resp.status_code == 200, resp.text
            label = resp.json()
            assert label["kind"] == "wall" and label["side"] == "bid" and label["end_ms"] is None
            price = label["prices"][0]
            qty = Decimal(label["details"]["qty"])
            for _ in range(3):
                book = (await http.get("/sim/book", params={"symbol": "btcusdt"})).json()
                assert Decimal(dict(book["bids"])[price]) >= qty
                def moved_on(held_at: int = book["update_id"]) -> bool:
                    return sim.true_book("btcusdt").update_id > held_at + 1000

                await wait_for(moved_on, what="1000 more updates")

            async def ended() -> bool:
                eps = (await http.get("/sim/episodes", params={"symbol": "btcusdt"})).json()
                return eps[-1]["end_ms"] is not None

            await wait_for(ended, what="the wall's end")
            eps = (await http.get("/sim/episodes", params={"symbol": "btcusdt"})).json()
            assert eps[-1]["end_ms"] - eps[-1]["start_ms"] >= 3000
            bad = await http.post("/sim/inject", json={"symbol": "btcusdt", "kind": "wall", "side": "up"})
            assert bad.status_code == 400
    finally:
        await sim.stop()


async def test_scheduled_episodes_appear_on_the_control_api() -> None:
    cfg = SimConfig(symbols=("ethusdt",), seed=2, warmup_s=30.0, speed=20.0, first_episode_after_s=(1.0, 2.0),
                    wall_every_s=(5.0, 8.0), layering_every_s=(5.0, 8.0), withdrawal_every_s=(5.0, 8.0),
                    episode_gap_s=1.0)
    sim = SimExchange(cfg)
    await sim.start(port=0)
    try:
        await wait_for(lambda: sum(e.end_ms is not None for e in sim.episodes("ethusdt")) >= 2, what="two episodes")
        for ep in sim.episodes("ethusdt"):
            data = ep.to_json()
            assert data["symbol"] == "ethusdt" and data["kind"] in ("wall", "layering", "withdrawal")
            assert data["prices"] and data["start_ms"] > 0
    finally:
        await sim.stop()
