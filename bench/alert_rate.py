"""Alerts per minute on real recordings: the detectors' rules alone, the same events
as alerts over their life, and those alerts through the default minimum-notional filter.

Each recording is played through the real sync rules (SequenceValidator + BookState)
and SymbolFeatures, with one frame at each whole second of recorded receive time (as
the live stack does at its default 1 s cadence), so the figures do not depend on the
machine's speed.

    python -m bench.alert_rate [FILE ...] [--min-notional USDT] [--list] [--json PATH]

Without files it reads the two real recordings of ../shared/data/binance-usdm (or
$LIQ_DATA_DIR).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from config import Settings
from data_ingestion.recording import read_recording, symbol_of
from features.engine import SymbolFeatures
from features.frame import Frame, FrameAlert
from features.liquidity_detection import EXHAUSTION, LAYERING, WALL, WALL_REMOVED, Alert
from orderbook.book_state import BookState
from orderbook.sequence_validator import EventOutcome, SequenceValidator
from wire.binance import AggTrade, DepthSnapshot, DepthUpdate, Trade

_NS = 1_000_000_000
DATA_DIR = Path(os.environ.get("LIQ_DATA_DIR", Path(__file__).resolve().parent.parent.parent / "shared" / "data"
                               / "binance-usdm"))
REAL_RECORDINGS = (DATA_DIR / "btcusdt_20240808.gz", DATA_DIR / "ethusdt_20240808.gz")
SYNCED = {"state": "synced", "reason": None}


@dataclass(slots=True)
class Replayed:
    """What one recording gave: every frame's detector events and alerts."""

    symbol: str
    frames: int = 0  # frames built in sync (one per recorded second)
    detections: list[Alert] = field(default_factory=list)
    alerts: dict[str, FrameAlert] = field(default_factory=dict)  # id -> its last state
    states: int = 0  # alert states carried by the frames


def frames_of(path: str | os.PathLike[str], settings: Settings | None = None) -> Iterator[tuple[Frame, SymbolFeatures]]:
    """Replay ``path`` (one symbol) and yield each frame built in sync, with the engine."""
    settings = settings or Settings()
    feats: SymbolFeatures | None = None
    book: BookState | None = None
    validator: SequenceValidator | None = None
    next_frame_ns = 0
    for msg in read_recording([path]):
        data = msg.data
        if feats is None:
            symbol = symbol_of(msg)
            if symbol is None:
                continue
            spec = settings.spec(symbol)
            book = BookState(symbol, spec.tick_size, spec.price_decimals)
            validator = SequenceValidator(symbol, book)
            feats = SymbolFeatures(symbol, settings, spec)
        assert book is not None and validator is not None
        if isinstance(data, DepthSnapshot):
            validator.note_snapshot_requested()
            validator.on_snapshot(data)
        elif isinstance(data, DepthUpdate):
            if validator.on_depth_event(data) is EventOutcome.APPLIED:
                feats.on_depth_applied(book, msg.ts_recv_ns, data.event_time_ms)
                if not next_frame_ns:
                    next_frame_ns = (msg.ts_recv_ns // _NS + 1) * _NS
        elif isinstance(data, AggTrade | Trade) and validator.in_sync:
            feats.on_trade(msg.ts_recv_ns, float(data.price), float(data.qty),
                           "sell" if data.buyer_is_maker else "buy")
        while next_frame_ns and msg.ts_recv_ns >= next_frame_ns and validator.in_sync:
            yield feats.build_frame(book, next_frame_ns, dict(SYNCED), {}), feats
            next_frame_ns += _NS


def replay(path: str | os.PathLike[str], settings: Settings | None = None) -> Replayed:
    out: Replayed | None = None
    for frame, feats in frames_of(path, settings):
        if out is None:
            out = Replayed(feats.symbol)
        out.frames += 1
        out.detections += feats.last_detections
        out.states += len(frame.alerts)
        for a in frame.alerts:
            out.alerts[a.id] = a
    if out is None:
        raise ValueError(f"{path}: no frame in sync (no snapshot, or no depth event after it)")
    return out


def rates(r: Replayed, min_notional: float) -> dict[str, Any]:
    minutes = r.frames / 60.0
    det = Counter(a.type for a in r.detections)
    raised = det[WALL] + det[LAYERING] + det[EXHAUSTION]
    alerts = list(r.alerts.values())
    kept = [a for a in alerts if (a.peak_notional or 0.0) >= min_notional]
    changes = sum(len(a.events) - 1 for a in alerts)  # every change after the birth

    def per_min(n: int) -> float:
        return round(n / minutes, 2) if minutes else 0.0

    return {
        "symbol": r.symbol,
        "minutes": round(minutes, 2),
        "detector": {"WALL": det[WALL], "WALL_REMOVED": det[WALL_REMOVED], "LAYERING": det[LAYERING],
                     "EXHAUSTION": det[EXHAUSTION]},
        "detector_alerts": raised,
        "detector_alerts_per_min": per_min(raised),
        "detector_events_per_min": per_min(sum(det.values())),
        "alerts": len(alerts),
        "alerts_by_type": dict(Counter(a.type for a in alerts)),
        "alerts_per_min": per_min(len(alerts)),
        "alert_changes": changes,
        "min_notional": min_notional,
        "alerts_filtered": len(kept),
        "alerts_filtered_per_min": per_min(len(kept)),
    }


def listing(r: Replayed) -> str:
    rows = []
    for a in sorted(r.alerts.values(), key=lambda a: a.born_ts):
        life = " > ".join(f"{e.status} {e.price} {e.size:.3f}" for e in a.events)
        rows.append(f"{a.id:12} {a.type:10} {a.side} peak {a.peak_notional or 0:>12,.0f} USDT "
                    f"{a.reason or 'live':12} {life}")
    return "\n".join(rows)


def table(results: Sequence[dict[str, Any]]) -> str:
    head = (f"{'symbol':8} {'min':>5} {'detector events':>16} {'/min':>6} {'WALL+LAYERING+EXH.':>19} {'/min':>6} "
            f"{'alerts':>7} {'/min':>6} {'>= filter':>10} {'/min':>6}")
    rows = [head]
    for x in results:
        events = sum(x["detector"].values())
        rows.append(f"{x['symbol']:8} {x['minutes']:>5} {events:>16} {x['detector_events_per_min']:>6} "
                    f"{x['detector_alerts']:>19} {x['detector_alerts_per_min']:>6} "
                    f"{x['alerts']:>7} {x['alerts_per_min']:>6} {x['alerts_filtered']:>10} "
                    f"{x['alerts_filtered_per_min']:>6}")
    rows.append(f"filter: peak notional >= {results[0]['min_notional']:,.0f} USDT" if results else "")
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.alert_rate", description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", help="recordings (default: the two real ones)")
    parser.add_argument("--min-notional", type=float, default=None,
                        help="USDT (default: the alert_min_notional_usdt setting)")
    parser.add_argument("--list", action="store_true", help="also list every alert with its life")
    parser.add_argument("--json", default="", help="also write the figures to this path")
    args = parser.parse_args(argv)
    settings = Settings()
    min_notional = settings.alert_min_notional_usdt if args.min_notional is None else args.min_notional
    files = args.files or [str(p) for p in REAL_RECORDINGS]
    results = []
    for path in files:
        r = replay(path, settings)
        results.append(rates(r, min_notional))
        if args.list:
            sys.stdout.write(f"{path}\n{listing(r)}\n\n")
    sys.stdout.write(table(results) + "\n")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
