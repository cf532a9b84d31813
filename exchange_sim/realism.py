"""Measure the simulated market the way ../shared/data/binance-usdm/README.md
measured the real recordings, and print both side by side.

Runs in-process on simulated time (no sockets, no sleeping): a minute of market
takes a few seconds. ``python -m exchange_sim.realism [--seconds 60]``.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
from collections.abc import Sequence
from typing import Any

from exchange_sim.episodes import EpisodeScheduler
from exchange_sim.settings import SimConfig, mid_price_for, spec_for

# The real figures (README table), per symbol; None where the README gives none.
REAL: dict[str, dict[str, Any]] = {
    "btcusdt": {
        "depth_events_per_s_0ms": 19.0,
        "changes_per_event": (34, 68, 1226),
        "delete_share": 0.22,
        "spread_1tick_share": 0.992,
        "widest_spread_ticks": 158,
        "snapshot_range": (146.8, 175.9),
        "level_size_pcts": (0.002, 0.089, 0.812, 2.875, 20.0),
        "top10_depth_pcts": (6.9, 12.2, 27.0),
        "trades_per_s": 61.8,
        "levels_a_side": (5000, 4600),
    },
    "ethusdt": {
        "depth_events_per_s_0ms": 19.1,
        "changes_per_event": (39, 65, 921),
        "delete_share": 0.14,
        "spread_1tick_share": 0.991,
        "widest_spread_ticks": 53,
        "snapshot_range": (13.24, 13.81),
        "level_size_pcts": (0.023, 1.7, 18.3, 75.8, 164.7),
        "top10_depth_pcts": (48.0, 72.5, 121.0),
        "trades_per_s": 40.8,
        "levels_a_side": (3200, 3000),
    },
}


def _pct(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of sorted ``values``."""
    if not values:
        return float("nan")
    idx = min(len(values) - 1, max(0, round(q / 100.0 * (len(values) - 1))))
    return values[idx]


def measure(symbol: str = "btcusdt", seconds: float = 60.0, seed: int = 1, episodes: bool = False) -> dict[str, Any]:
    """Run ``seconds`` of simulated market for ``symbol`` and return the README's
    figures (quantities in base asset, prices in quote currency)."""
    from exchange_sim.market import SymbolMarket

    cfg = SimConfig(symbols=(symbol,), seed=seed, start_ms=1_700_000_000_000)
    spec = spec_for(cfg, symbol)
    market = SymbolMarket(
        symbol, spec, mid_price_for(cfg, symbol), random.Random(f"{seed}:{symbol}"), cfg.start_ms or 0
    )
    scheduler = EpisodeScheduler(market, cfg, random.Random(f"{seed}:{symbol}:episodes")) if episodes else None
    lot = spec.lot_size
    step_ms = market.params.step_ms
    steps = int(seconds * 1000 / step_ms)
    # Warm up so the book reaches its steady shape, as a live exchange would be.
    for _ in range(int(30_000 / step_ms)):
        market.step()
    changes_per_event: list[int] = []
    deletes = 0
    total_changes = 0
    spread_1 = 0
    widest = 0
    trades = 0
    agg_trades = 0
    level_sizes: list[float] = []
    top10: list[float] = []
    events_100ms = 0
    pending_100ms = 0
    mid_start = (market.best_bid[0] + market.best_ask[0]) / 2
    for i in range(steps):
        market.begin_step()
        if scheduler is not None:
            scheduler.on_step()
        market.run_random_flow()
        out = market.end_step()
        n_changes = len({(c[1], c[2]) for c in out.changes})
        pending_100ms += n_changes
        if (i + 1) % (100 // step_ms) == 0 and pending_100ms:
            events_100ms += 1
            pending_100ms = 0
        if n_changes:
            changes_per_event.append(n_changes)
            total_changes += len(out.changes)
            deletes += sum(1 for c in out.changes if c[4] == 0)
            spread = market.spread_ticks()
            spread_1 += spread == 1
            widest = max(widest, spread)
        agg_trades += len(out.trades)
        trades += sum(t.last_id - t.first_id + 1 for t in out.trades)
        if (i + 1) % (1000 // step_ms) == 0:
            for is_bid in (True, False):
                level_sizes.extend(q * lot for _, q in market.top_levels(is_bid, 200))
            top10.append(
                (sum(q for _, q in market.top_levels(True, 10)) + sum(q for _, q in market.top_levels(False, 10)))
                * lot
            )
    level_sizes.sort()
    top10.sort()
    changes_sorted = sorted(changes_per_event)
    bids1000 = market.top_levels(True, 1000)
    asks1000 = market.top_levels(False, 1000)
    tick = spec.tick_size
    mid_end = (market.best_bid[0] + market.best_ask[0]) / 2
    return {
        "symbol": symbol,
        "seconds": seconds,
        "depth_events_per_s_0ms": len(changes_per_event) / seconds,
        "depth_events_per_s_100ms": events_100ms / seconds,
        "changes_per_event": (
            _pct(changes_sorted, 50),
            statistics.fmean(changes_sorted) if changes_sorted else 0.0,
            changes_sorted[-1] if changes_sorted else 0,
        ),
        "delete_share": deletes / total_changes if total_changes else 0.0,
        "spread_1tick_share": spread_1 / len(changes_per_event) if changes_per_event else 0.0,
        "widest_spread_ticks": widest,
        "snapshot_range": (
            (bids1000[0][0] - bids1000[-1][0]) * tick,
            (asks1000[-1][0] - asks1000[0][0]) * tick,
        ),
        "level_size_pcts": tuple(_pct(level_sizes, q) for q in (10, 50, 90, 99, 100)),
        "top10_depth_pcts": tuple(_pct(top10, q) for q in (10, 50, 90)),
        "trades_per_s": trades / seconds,
        "agg_trades_per_s": agg_trades / seconds,
        "levels_a_side": (len(market.bids), len(market.asks)),
        "mid_move_ticks": mid_end - mid_start,
    }


def _fmt(value: Any) -> str:
    if isinstance(value, tuple):
        return " / ".join(_fmt(v) for v in value)
    if isinstance(value, float):
        if value != value:
            return "-"
        if abs(value) >= 100:
            return f"{value:.0f}"
        if abs(value) >= 1:
            return f"{value:.2f}"
        return f"{value:.3f}"
    return str(value)


def report(figures: dict[str, Any]) -> str:
    """A text table of the measured figures next to the real ones."""
    real = REAL.get(figures["symbol"], {})
    rows = [f"{figures['symbol'].upper()} ({figures['seconds']:.0f} s simulated)", f"{'figure':34} {'sim':>32}  real"]
    for key, value in figures.items():
        if key in ("symbol", "seconds"):
            continue
        rows.append(f"{key:34} {_fmt(value):>32}  {_fmt(real[key]) if key in real else ''}")
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Compare the simulated market with the real recordings.")
    parser.add_argument("--seconds", type=float, default=60.0, help="simulated seconds to measure (default 60)")
    parser.add_argument("--symbols", default="btcusdt,ethusdt", help="comma-separated symbols")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--episodes", action="store_true", help="include scripted episodes in the run")
    args = parser.parse_args(argv)
    for symbol in [s.strip().lower() for s in args.symbols.split(",") if s.strip()]:
        sys.stdout.write(report(measure(symbol, args.seconds, args.seed, args.episodes)) + "\n\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
