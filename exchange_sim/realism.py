"""The simulated market measured exactly as the real recordings are, side by side.

One measuring code, :class:`RecordingStats`, reads recording lines (``<local ns>
<raw JSON>``, the format of ../shared/data/binance-usdm): the REST snapshot, then the
``@depth@0ms`` diffs applied on it (one event per engine batch), ``@trade`` and
``@bookTicker`` messages. The real files go through it as they are; the simulated
market is recorded the same way (:func:`simulated_recording`: the exchange's own
encoding of one depth event per batch, one trade message per fill, every
bookTicker, one limit-1000 snapshot a second after the stream opened) and goes
through the same code. The figures are those of the data README plus the standard
deviation of mid changes over 1, 10 and 60 s and the price range over 5 minutes.

The simulated run uses the recordings' prices (BTCUSDT at 61,800 and ETHUSDT at
2,680, as in August 2024) so that sizes in coins and spans in ticks compare like
with like, and the volatile regime (the recordings come from a busy evening).

    python -m exchange_sim.realism [--seconds 600] [--symbols btcusdt,ethusdt] [--seed 1]
                                   [--regime volatile] [--episodes] [--measure-real] [--json PATH]

Runs in-process on simulated time (no sockets, no sleeping): ten simulated minutes
of one symbol take well under a minute.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import statistics
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

from exchange_sim.episodes import EpisodeScheduler
from exchange_sim.market import SymbolMarket
from exchange_sim.protocol import DepthAggregator, book_ticker_event, depth_event, snapshot_now, trade_event
from exchange_sim.regimes import Regime
from exchange_sim.settings import SimConfig, spec_for

REPO = Path(__file__).resolve().parent.parent
RECORDINGS = Path(os.environ.get("LIQ_TEST_RECORDINGS", REPO.parent / "shared" / "data" / "binance-usdm"))
RECORDING_FILES = {"btcusdt": "btcusdt_20240808.gz", "ethusdt": "ethusdt_20240808.gz"}
# The recordings' ticks and prices (August 2024).
RECORDING_TICKS = {"btcusdt": 0.1, "ethusdt": 0.01}
RECORDING_PRICES = {"btcusdt": 61_800.0, "ethusdt": 2_680.0}

TOP_LEVELS = 200  # level sizes: the top 200 levels of each side
DEPTH_LEVELS = 10  # top-10 depth, both sides
LEVELS_AFTER_S = 345.0  # "levels a side after 345 s of diffs", the recordings' span
RANGE_WINDOW_S = 300.0  # price range: mean of max - min over 5-minute windows
STD_HORIZONS_S = (1, 10, 60)

# The real figures, measured with this module on the two recordings
# (python -m exchange_sim.realism --measure-real): used when the files are absent.
REAL: dict[str, dict[str, Any]] = {
    "btcusdt": {
        "seconds": 344.5, "depth_events_per_s": 19.0, "changes_per_event": (34.0, 67.7, 1226.0),
        "delete_share": 0.217, "spread_1tick_share": 0.992, "spread_mean_ticks": 1.20,
        "widest_spread_ticks": 158.0, "snapshot_range": (146.8, 175.9),
        "level_size_pcts": (0.002, 0.057, 0.789, 3.99, 500.6), "top10_depth_pcts": (7.08, 12.13, 26.92),
        "trades_per_s": 61.85, "trade_qty_pcts": (0.002, 0.016, 0.265, 1.146),
        "book_tickers_per_s": 191.7, "levels_a_side": (5018.0, 4577.0),
        "mid_std_bps": (1.30, 3.62, 6.97), "range_5min_bps": 40.1,
    },
    "ethusdt": {
        "seconds": 344.5, "depth_events_per_s": 19.1, "changes_per_event": (39.0, 65.1, 921.0),
        "delete_share": 0.135, "spread_1tick_share": 0.991, "spread_mean_ticks": 1.06,
        "widest_spread_ticks": 53.0, "snapshot_range": (13.24, 13.81),
        "level_size_pcts": (0.023, 1.373, 16.13, 45.94, 1500.3), "top10_depth_pcts": (50.27, 71.13, 119.1),
        "trades_per_s": 40.86, "trade_qty_pcts": (0.008, 0.071, 1.6, 8.459),
        "book_tickers_per_s": 156.6, "levels_a_side": (3181.0, 3013.0),
        "mid_std_bps": (1.23, 3.54, 8.04), "range_5min_bps": 23.2,
    },
}

# The figures held to +/-30 % of the real ones (the positions of a tuple that are;
# None for a single number): maxima and the snapshot's span are shown, not held.
TARGETS: dict[str, tuple[int, ...] | None] = {
    "trades_per_s": None,
    "trade_qty_pcts": (0, 1, 2, 3),
    "changes_per_event": (0, 1),
    "delete_share": None,
    "spread_1tick_share": None,
    "spread_mean_ticks": None,
    "level_size_pcts": (0, 1, 2, 3),
    "top10_depth_pcts": (0, 1, 2),
    "levels_a_side": (0, 1),
    "book_tickers_per_s": None,
    "mid_std_bps": (0, 1, 2),
    "range_5min_bps": None,
}
BAND = 0.3
TARGET_NOTE = "* target figure (maxima and the snapshot span shown, not held); ! outside +/-30 %"


def outside_band(ratio: dict[str, Any], keys: Iterable[str] | None = None) -> list[str]:
    """The target figures (of ``keys``, default all) whose ratio is off by more than 30 %."""
    out: list[str] = []
    for key in keys if keys is not None else TARGETS:
        positions = TARGETS[key]
        values = [ratio[key]] if positions is None else [ratio[key][i] for i in positions]
        names = [key] if positions is None else [f"{key}[{i}]" for i in positions]
        out.extend(name for name, r in zip(names, values, strict=True) if not abs(r - 1.0) <= BAND)
    return out


def _pct(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of sorted ``values``."""
    if not values:
        return float("nan")
    idx = min(len(values) - 1, max(0, round(q / 100.0 * (len(values) - 1))))
    return values[idx]


class RecordingStats:
    """The figures of one symbol's recording, from its lines in order.

    Book: the first REST snapshot, then every depth event with ``u >=
    lastUpdateId`` applied on it (full depth, integer tick keys). Per applied event:
    its entries (level changes), deletes, the spread after it and the mid. Once a
    second (the first event of each second of exchange time): the sizes of the top
    200 levels a side and the top-10 depth of both sides. Rates are per second of
    the span between the first and the last applied event."""

    def __init__(self, tick: float) -> None:
        self.tick = tick
        self.bids: dict[int, float] = {}
        self.asks: dict[int, float] = {}
        self.last_update_id: int | None = None
        self.snapshot_range = (float("nan"), float("nan"))
        self.first_ms: int | None = None
        self.last_ms = 0
        self.changes: list[int] = []
        self.deletes = 0
        self.spreads: list[int] = []
        self.mids: list[tuple[int, float]] = []
        self.level_sizes: list[float] = []
        self.top10: list[float] = []
        self.trade_qty: list[float] = []
        self.book_tickers = 0
        self.levels_at: tuple[int, int] | None = None
        self._second = -1

    # ------------------------------------------------------------ reading
    def on_line(self, raw: bytes) -> None:
        msg = orjson.loads(raw)
        if "lastUpdateId" in msg:
            if self.last_update_id is None:
                self.on_snapshot(msg)
            return
        data = msg.get("data", msg)
        kind = data.get("e")
        if kind == "depthUpdate":
            self.on_depth(data)
        elif kind == "trade":
            if self.first_ms is not None:
                self.trade_qty.append(float(data["q"]))
        elif kind == "bookTicker" and self.first_ms is not None:
            self.book_tickers += 1

    def on_snapshot(self, snap: dict[str, Any]) -> None:
        tick = self.tick
        self.bids = {round(float(p) / tick): float(q) for p, q in snap["bids"]}
        self.asks = {round(float(p) / tick): float(q) for p, q in snap["asks"]}
        self.last_update_id = snap["lastUpdateId"]
        bid_prices = [float(p) for p, _ in snap["bids"]]
        ask_prices = [float(p) for p, _ in snap["asks"]]
        self.snapshot_range = (bid_prices[0] - bid_prices[-1], ask_prices[-1] - ask_prices[0])

    def on_depth(self, ev: dict[str, Any]) -> None:
        if self.last_update_id is None or ev["u"] < self.last_update_id:
            return
        tick = self.tick
        n = 0
        deletes = 0
        for side, book in (("b", self.bids), ("a", self.asks)):
            for p, q in ev[side]:
                key = round(float(p) / tick)
                qty = float(q)
                n += 1
                if qty == 0.0:
                    deletes += 1
                    book.pop(key, None)
                else:
                    book[key] = qty
        now = ev["E"]
        if self.first_ms is None:
            self.first_ms = now
        self.last_ms = now
        self.changes.append(n)
        self.deletes += deletes
        best_bid = max(self.bids)
        best_ask = min(self.asks)
        self.spreads.append(best_ask - best_bid)
        self.mids.append((now, (best_bid + best_ask) / 2.0 * tick))
        second = now // 1000
        if second != self._second:
            self._second = second
            self._sample(best_bid, best_ask)
        if self.levels_at is None and now - self.first_ms >= LEVELS_AFTER_S * 1000:
            self.levels_at = (len(self.bids), len(self.asks))

    def _sample(self, best_bid: int, best_ask: int) -> None:
        bids = sorted(self.bids, reverse=True)[:TOP_LEVELS]
        asks = sorted(self.asks)[:TOP_LEVELS]
        self.level_sizes.extend(self.bids[k] for k in bids)
        self.level_sizes.extend(self.asks[k] for k in asks)
        self.top10.append(sum(self.bids[k] for k in bids[:DEPTH_LEVELS])
                          + sum(self.asks[k] for k in asks[:DEPTH_LEVELS]))

    # ------------------------------------------------------------ figures
    def _mid_grid(self) -> list[float]:
        """The mid once a second from the first event (the mid after the last event
        at or before each point)."""
        grid: list[float] = []
        t = self.mids[0][0]
        i = 0
        while t <= self.last_ms:
            while i + 1 < len(self.mids) and self.mids[i + 1][0] <= t:
                i += 1
            grid.append(self.mids[i][1])
            t += 1000
        return grid

    def _mid_std_bps(self, grid: list[float], horizon_s: int) -> float:
        """Standard deviation of the mid's change over ``horizon_s``, in bps, over
        every start second (overlapping windows: ten minutes hold only ten separate
        minutes, but 540 overlapping ones)."""
        moves = [(b - a) / a * 1e4 for a, b in zip(grid, grid[horizon_s:], strict=False)]
        return statistics.pstdev(moves) if len(moves) > 1 else float("nan")

    def _range_bps(self, grid: list[float]) -> float:
        """Mean of (max - min) / mean mid over every 5-minute window starting on a
        10-second boundary, in bps (the whole span when shorter)."""
        if not grid:
            return float("nan")
        width = int(RANGE_WINDOW_S)
        windows = [grid[s:s + width] for s in range(0, max(1, len(grid) - width + 1), 10)]
        return statistics.fmean((max(w) - min(w)) / statistics.fmean(w) * 1e4 for w in windows)

    def figures(self) -> dict[str, Any]:
        seconds = (self.last_ms - (self.first_ms or 0)) / 1000.0 or float("nan")
        changes = sorted(self.changes)
        sizes = sorted(self.level_sizes)
        top10 = sorted(self.top10)
        trades = sorted(self.trade_qty)
        levels = self.levels_at or (len(self.bids), len(self.asks))
        total = sum(changes)
        grid = self._mid_grid() if self.mids else []
        return {
            "seconds": seconds,
            "depth_events_per_s": len(changes) / seconds,
            "changes_per_event": (_pct(changes, 50), statistics.fmean(changes) if changes else float("nan"),
                                  float(changes[-1]) if changes else float("nan")),
            "delete_share": self.deletes / total if total else float("nan"),
            "spread_1tick_share": sum(1 for s in self.spreads if s == 1) / len(self.spreads) if self.spreads
            else float("nan"),
            "spread_mean_ticks": statistics.fmean(self.spreads) if self.spreads else float("nan"),
            "widest_spread_ticks": float(max(self.spreads, default=0)),
            "snapshot_range": self.snapshot_range,
            "level_size_pcts": tuple(_pct(sizes, q) for q in (10, 50, 90, 99, 100)),
            "top10_depth_pcts": tuple(_pct(top10, q) for q in (10, 50, 90)),
            "trades_per_s": len(trades) / seconds,
            "trade_qty_pcts": tuple(_pct(trades, q) for q in (10, 50, 90, 99)),
            "book_tickers_per_s": self.book_tickers / seconds,
            "levels_a_side": (float(levels[0]), float(levels[1])),
            "mid_std_bps": tuple(self._mid_std_bps(grid, h) for h in STD_HORIZONS_S),
            "range_5min_bps": self._range_bps(grid),
        }


def measure_lines(lines: Iterable[bytes], tick: float) -> dict[str, Any]:
    """Figures of a recording given as raw JSON lines (without the time prefix)."""
    stats = RecordingStats(tick)
    for raw in lines:
        stats.on_line(raw)
    return stats.figures()


def recording_lines(path: Path) -> Iterator[bytes]:
    with gzip.open(path, "rb") as fh:
        for line in fh:
            _ts, _, raw = line.partition(b" ")
            if raw.strip():
                yield raw


def measure_real(symbol: str, directory: Path = RECORDINGS) -> dict[str, Any]:
    """The figures of the real recording of ``symbol``."""
    return measure_lines(recording_lines(directory / RECORDING_FILES[symbol]), RECORDING_TICKS[symbol])


def real_figures(symbol: str) -> dict[str, Any]:
    """Measured on the recording when it is here, else the table above."""
    path = RECORDINGS / RECORDING_FILES.get(symbol, "-")
    if path.exists():
        return measure_real(symbol)
    return REAL.get(symbol, {})


def simulated_recording(
    symbol: str, seconds: float, seed: int = 1, regime: str = "volatile", episodes: bool = False,
    warmup_s: float = 60.0, mid_price: float | None = None,
) -> Iterator[bytes]:
    """The simulated market of ``symbol`` recorded as the real files were: one depth
    event per engine batch (``@depth@0ms``), every trade and bookTicker, one
    limit-1000 snapshot a second after the stream opened."""
    cfg = SimConfig(symbols=(symbol,), seed=seed, start_ms=1_700_000_000_000, regime=regime)
    spec = spec_for(cfg, symbol)
    if mid_price is None:
        mid_price = RECORDING_PRICES.get(symbol) or cfg.mid_prices.get(symbol, 100.0)
    start_ms = cfg.start_ms or 0
    rng = random.Random(f"{seed}:{symbol}")
    market = SymbolMarket(symbol, spec, mid_price, rng, start_ms,
                          regime=Regime(regime, random.Random(f"{seed}:regime"), start_ms))
    for _ in range(int(warmup_s * 1000 / market.params.step_ms)):
        market.step()
    scheduler = EpisodeScheduler(market, cfg, random.Random(f"{seed}:{symbol}:episodes")) if episodes else None
    agg = DepthAggregator(market.params.step_ms, market.update_id)
    stream = symbol + "@depth@0ms"
    snapshot_at: int | None = market.now_ms + 1000
    end = market.now_ms + int(seconds * 1000) + 1000
    while market.now_ms < end:
        market.begin_step()
        if scheduler is not None:
            scheduler.on_step()
        market.run_random_flow()
        out = market.end_step()
        for top in out.tickers:
            yield orjson.dumps({"stream": symbol + "@bookTicker", "data": book_ticker_event(market, top, out.time_ms)})
        for trade in out.trades:
            for event in trade_event(market, trade):
                yield orjson.dumps({"stream": symbol + "@trade", "data": event})
        window = agg.add(out)
        if window is not None:
            yield orjson.dumps({"stream": stream, "data": depth_event(market, window)})
        if snapshot_at is not None and market.now_ms >= snapshot_at:
            snapshot_at = None
            yield orjson.dumps(snapshot_now(market, 1000))


def measure(symbol: str = "btcusdt", seconds: float = 600.0, seed: int = 1, regime: str = "volatile",
            episodes: bool = False, warmup_s: float = 60.0) -> dict[str, Any]:
    """Run ``seconds`` of simulated market for ``symbol`` (at the recording's price) and
    return the figures :class:`RecordingStats` gives for the real files."""
    tick = spec_for(SimConfig(), symbol).tick_size
    return measure_lines(simulated_recording(symbol, seconds, seed, regime, episodes, warmup_s), tick)


def ratios(sim: dict[str, Any], real: dict[str, Any]) -> dict[str, Any]:
    """sim / real for every figure both have (tuples element by element)."""
    out: dict[str, Any] = {}
    for key, value in sim.items():
        if key not in real or key == "seconds":
            continue
        ref = real[key]
        if isinstance(value, tuple):
            out[key] = tuple(_ratio(v, r) for v, r in zip(value, ref, strict=False))
        else:
            out[key] = _ratio(value, ref)
    return out


def _ratio(value: float, ref: float) -> float:
    return value / ref if ref else float("nan")


def _fmt(value: Any) -> str:
    if isinstance(value, tuple):
        return " / ".join(_fmt(v) for v in value)
    if isinstance(value, float):
        if value != value:
            return "-"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        if abs(value) >= 1:
            return f"{value:.2f}"
        return f"{value:.3f}"
    return str(value)


LABELS = {
    "depth_events_per_s": "depth events/s (0 ms)",
    "changes_per_event": "level changes/event med/mean/max",
    "delete_share": "share of deletes",
    "spread_1tick_share": "spread = 1 tick (share of events)",
    "spread_mean_ticks": "spread mean, ticks",
    "widest_spread_ticks": "widest spread, ticks",
    "snapshot_range": "1000-level snapshot range bid/ask",
    "level_size_pcts": "level size top 200 p10/p50/p90/p99/max",
    "top10_depth_pcts": "top-10 depth p10/p50/p90",
    "trades_per_s": "trades/s",
    "trade_qty_pcts": "trade qty p10/p50/p90/p99",
    "book_tickers_per_s": "bookTicker messages/s",
    "levels_a_side": "levels a side (after 345 s) bid/ask",
    "mid_std_bps": "mid change std 1 s/10 s/60 s, bps",
    "range_5min_bps": "price range per 5 min, bps",
}


def report(symbol: str, sim: dict[str, Any], real: dict[str, Any]) -> str:
    """A text table: figure, simulated, real, ratio (a * marks a target figure, a !
    a target figure outside the band)."""
    rat = ratios(sim, real)
    rows = [f"{symbol.upper()}: {sim['seconds']:.0f} s simulated vs {real.get('seconds', float('nan')):.0f} s real",
            f"  {'figure':40} {'sim':>34}  {'real':>34}  ratio"]
    off = {name.split("[")[0] for name in outside_band(rat)}
    for key, label in LABELS.items():
        mark = "!" if key in off else "*" if key in TARGETS else " "
        rows.append(f"{mark} {label:40} {_fmt(sim[key]):>34}  {_fmt(real.get(key, float('nan'))):>34}  "
                    f"{_fmt(rat.get(key, float('nan')))}")
    rows.append("  " + TARGET_NOTE)
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Compare the simulated market with the real recordings.")
    parser.add_argument("--seconds", type=float, default=600.0, help="simulated seconds to measure (default 600)")
    parser.add_argument("--symbols", default="btcusdt,ethusdt", help="comma-separated symbols")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--regime", default="volatile", choices=("volatile", "calm", "auto"),
                        help="the simulated market's regime (default volatile, like the recordings)")
    parser.add_argument("--episodes", action="store_true", help="include scripted episodes in the run")
    parser.add_argument("--measure-real", action="store_true",
                        help="measure the real recordings (else the table of their figures when absent)")
    parser.add_argument("--json", default="", help="also write every figure and ratio to this JSON file")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {}
    for symbol in [s.strip().lower() for s in args.symbols.split(",") if s.strip()]:
        real = measure_real(symbol) if args.measure_real else real_figures(symbol)
        sim = measure(symbol, args.seconds, args.seed, args.regime, args.episodes)
        sys.stdout.write(report(symbol, sim, real) + "\n\n")
        results[symbol] = {"sim": sim, "real": real, "ratio": ratios(sim, real)}
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

