"""Score the liquidity detectors against the simulated exchange's labelled episodes.

Runs the simulated market in-process on simulated time (no sockets, no sleeping),
turns it into the depth events a ``@depth@100ms`` client would receive (the
exchange's own aggregation and encoding), feeds them through the project's real
SequenceValidator + BookState (from a limit-1000 snapshot, as a client starts) and
SymbolFeatures (aggTrades with their aggressor side), builds one frame per
simulated second, and matches the detectors' events of each frame's sample (the rules
of docs/metrics.md, before they are folded into alerts over their life) against the
episode labels:

- recall (per kind) = labels caught / labels. A label is caught when an alert of
  its type (wall -> WALL, layering -> LAYERING, withdrawal -> EXHAUSTION), same
  symbol, same side ("both" matches any side) and, for walls, same price, fires
  between the label's start and its end + ``slack_s``.
- precision (per alert type) = alerts matching some label / alerts.
- WALL_REMOVED agreement: for each caught wall, the WALL_REMOVED at its price near
  the label's end, and whether its reason (pulled / filled) agrees with the label's
  end (pulled / eaten).

Organic events. The background book is as heavy-tailed as the real recordings (about
18 % of top-20 levels are >= 5x the rolling median, 12 % >= 8x; the real BTCUSDT file
has 18 % and 15 %, and its rules fire 41 WALL and 6 LAYERING in its 344 s in sync), so
random orders legitimately meet the metrics.md definitions. Those are not episodes, but they
are real in the exchange's book: :class:`TruthOracle` applies the definitions to the
exchange's TRUE top 20 (not the client's reconstruction) at the same 1 Hz instants
and labels them ``origin: organic``. Recall is over the scripted episodes only;
precision is given twice: ``precision`` (an alert must match a scripted episode, the
strict figure) and ``precision_truth`` (it may instead match an organic event of the
true book: an alert the exchange's book does not justify is a false alarm).

A scripted wall the background flow ate before it had rested > wall_min_age_s + 1 s
is not a wall by definition; such labels are listed as ``too_short`` and left out of
recall.

    python -m bench.detector_score [--minutes 30] [--symbols btcusdt,ethusdt] [--seed 1] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

import orjson

from config import Settings
from exchange_sim.episodes import EpisodeScheduler
from exchange_sim.market import SymbolMarket
from exchange_sim.protocol import DepthAggregator, depth_event, snapshot_now
from exchange_sim.settings import SimConfig, mid_price_for, spec_for
from features.engine import SymbolFeatures
from features.liquidity_detection import EXHAUSTION, LAYERING, WALL, WALL_REMOVED
from orderbook.book_state import BookState
from orderbook.sequence_validator import EventOutcome, SequenceValidator, SnapshotOutcome
from wire.binance import DepthUpdate, event_decoder, snapshot_decoder

KIND_ALERT = {"wall": WALL, "layering": LAYERING, "withdrawal": EXHAUSTION}
KINDS = tuple(KIND_ALERT)
DEPTH_INTERVAL_MS = 100
SNAPSHOT_LIMIT = 1000
START_MS = 1_700_000_000_000  # whole second: depth windows and frames align
DEFAULT_SLACK_S = 3.0
_MS = 1_000_000  # ns per ms
_WALL_END = {"pulled": "pulled", "eaten": "filled"}  # label end_reason -> WALL_REMOVED reason


def _median(values: list[float]) -> float | None:
    if not values:
        return None
    v = sorted(values)
    n = len(v)
    return float(v[n // 2]) if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2.0


class TruthOracle:
    """The metrics.md definitions on the exchange's true book, one sample a second:
    what a perfect client would see. Written apart from features/ on purpose."""

    def __init__(self, symbol: str, market: SymbolMarket, settings: Settings) -> None:
        self.symbol = symbol
        self.market = market
        self.s = settings
        self.samples: list[tuple[int, list[tuple[int, int]], list[tuple[int, int]]]] = []
        self._depths: list[tuple[int, float, float, int]] = []  # (ms, bid depth, ask depth, spread)
        self.labels: list[dict[str, Any]] = []
        self._walls: dict[tuple[str, int], dict[str, Any]] = {}  # (side, tick) -> state
        self._prev_layers: dict[str, set[int]] = {"bid": set(), "ask": set()}

    def sample(self, now_ms: int) -> None:
        s = self.s
        m = self.market
        n = s.detector_levels
        bids = m.top_levels(True, n)
        asks = m.top_levels(False, n)
        lot = m.spec.lot_size
        spread = asks[0][0] - bids[0][0]
        depth = {
            "bid": sum(q for _, q in bids[: s.top_n]) * lot,
            "ask": sum(q for _, q in asks[: s.top_n]) * lot,
        }
        self.samples.append((now_ms, bids, asks))
        win_ms = s.median_window_s * 1000
        recent = [x for x in self.samples if x[0] > now_ms - win_ms]
        self.samples = recent
        med_lots = _median([q for x in recent for side in (x[1], x[2]) for _, q in side])
        if med_lots and med_lots > 0:
            self._walls_step(now_ms, bids, asks, med_lots)
            self._layers_step(now_ms, "bid", bids, med_lots)
            self._layers_step(now_ms, "ask", asks, med_lots)
        # exhaustion: the current sample against the means of the previous 15 s
        ex_ms = s.exhaustion_window_s * 1000
        prev = [d for d in self._depths if d[0] > now_ms - ex_ms]
        if prev:
            mean_spread = sum(d[3] for d in prev) / len(prev)
            if spread > s.exhaustion_spread_multiple * mean_spread:
                for i, side in ((1, "bid"), (2, "ask")):
                    mean_depth = sum(d[i] for d in prev) / len(prev)
                    if depth[side] < s.exhaustion_depth_ratio * mean_depth:
                        self.labels.append(self._label("withdrawal", side, [], now_ms, now_ms))
        prev.append((now_ms, depth["bid"], depth["ask"], spread))
        self._depths = prev

    def _label(self, kind: str, side: str, prices: list[str], start: int, end: int) -> dict[str, Any]:
        return {
            "id": f"o{len(self.labels) + 1}", "symbol": self.symbol, "kind": kind, "side": side,
            "prices": prices, "start_ms": start, "end_ms": end, "details": {}, "origin": "organic",
        }

    def _walls_step(self, now_ms: int, bids: list[tuple[int, int]], asks: list[tuple[int, int]], med: float) -> None:
        s = self.s
        seen = set()
        for side, levels in (("bid", bids), ("ask", asks)):
            for tick, q in levels:
                if q < s.wall_multiple * med:
                    continue
                key = (side, tick)
                seen.add(key)
                st = self._walls.get(key)
                if st is None:
                    self._walls[key] = {"first": now_ms, "label": None}
                    continue
                if st["label"] is None and now_ms - st["first"] > s.wall_min_age_s * 1000:
                    label = self._label("wall", side, [self.market.price_str(tick)], st["first"], now_ms)
                    st["label"] = label
                    self.labels.append(label)
                if st["label"] is not None:
                    st["label"]["end_ms"] = now_ms
        for key in [k for k in self._walls if k not in seen]:
            del self._walls[key]

    def _layers_step(self, now_ms: int, side: str, levels: list[tuple[int, int]], med: float) -> None:
        s = self.s
        big = [q >= s.layering_multiple * med for _, q in levels] + [False]
        c_t: set[int] = set()
        start = None
        for i, b in enumerate(big):
            if b and start is None:
                start = i
            elif not b and start is not None:
                if i - start >= s.layering_min_levels:
                    c_t.update(t for t, _ in levels[start:i])
                start = None
        prev = self._prev_layers[side]
        self._prev_layers[side] = c_t
        if len(c_t) >= s.layering_min_levels and len(c_t - prev) / len(c_t) >= s.layering_min_churn:
            self.labels.append(self._label("layering", side, [], now_ms, now_ms))


@dataclass(slots=True)
class SymbolRun:
    """One symbol: the exchange side (market, episodes, aggregation) and the client
    side (validator, book, features)."""

    symbol: str
    market: SymbolMarket
    scheduler: EpisodeScheduler
    aggregator: DepthAggregator
    book: BookState
    validator: SequenceValidator
    features: SymbolFeatures
    oracle: TruthOracle
    alerts: list[dict[str, Any]] = field(default_factory=list)
    snapshot_taken: bool = False
    outcomes: dict[str, int] = field(default_factory=dict)


def _setup(symbol: str, cfg: SimConfig, settings: Settings) -> SymbolRun:
    """The market as SimExchange builds it (same seeds), warmed up unpublished."""
    spec = spec_for(cfg, symbol)
    start_ms = cfg.start_ms if cfg.start_ms is not None else START_MS
    market = SymbolMarket(
        symbol, spec, mid_price_for(cfg, symbol), random.Random(f"{cfg.seed}:{symbol}"), start_ms,
        truth_window_ms=int(cfg.truth_window_s * 1000),
    )
    aggregator = DepthAggregator(DEPTH_INTERVAL_MS, market.update_id)
    for _ in range(int(cfg.warmup_s * 1000 / market.params.step_ms)):
        aggregator.add(market.step())
    scheduler = EpisodeScheduler(market, cfg, random.Random(f"{cfg.seed}:{symbol}:episodes"))
    book = BookState(symbol, spec.tick_size, spec.price_decimals)
    features = SymbolFeatures(symbol, settings, settings.symbol_specs.get(symbol, spec))
    oracle = TruthOracle(symbol, market, settings)
    return SymbolRun(symbol, market, scheduler, aggregator, book, SequenceValidator(symbol, book), features, oracle)


def _step(run: SymbolRun) -> None:
    """One engine batch on the exchange, and what a client does with its output."""
    market = run.market
    market.begin_step()
    run.scheduler.on_step()
    market.run_random_flow()
    out = market.end_step()
    feats = run.features
    if out.trades:
        # aggTrade: "m" (seller_aggressor) true means the seller was the aggressor.
        price_str, qty_str = market.price_str, market.qty_str
        for tr in out.trades:
            feats.on_trade(
                (tr.time_ms + 1) * _MS, float(price_str(tr.tick)), float(qty_str(tr.lots)),
                "sell" if tr.seller_aggressor else "buy",
            )
    window = run.aggregator.add(out)
    if window is not None:
        # The exact bytes a client would receive, decoded as the client decodes them.
        event = event_decoder.decode(orjson.dumps(depth_event(market, window)))
        assert isinstance(event, DepthUpdate)
        outcome = run.validator.on_depth_event(event)
        run.outcomes[outcome.value] = run.outcomes.get(outcome.value, 0) + 1
        if outcome is EventOutcome.APPLIED:
            feats.on_depth_applied(run.book, event.event_time_ms * _MS, event.event_time_ms)
    if not run.snapshot_taken and run.validator.buffered:
        # A client fetches its REST snapshot once the stream is buffering.
        snap = snapshot_decoder.decode(orjson.dumps(snapshot_now(market, SNAPSHOT_LIMIT)))
        run.validator.note_snapshot_requested()
        result = run.validator.on_snapshot(snap)
        if result not in (SnapshotOutcome.SYNCED, SnapshotOutcome.PENDING):
            raise RuntimeError(f"{run.symbol}: snapshot refused: {result}")
        run.snapshot_taken = True


def _frame(run: SymbolRun, ts_ns: int) -> None:
    if not run.validator.in_sync:
        return
    run.oracle.sample(ts_ns // _MS)
    sync = {"state": "synced", "reason": run.validator.reason}
    run.features.build_frame(run.book, ts_ns, sync, {})
    run.alerts.extend(a.to_dict() for a in run.features.last_detections)


def simulate(
    minutes: float = 30.0,
    symbols: Sequence[str] = ("btcusdt", "ethusdt"),
    seed: int = 1,
    sim_config: SimConfig | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Run the market and the client; return labels, alerts and the run's facts."""
    symbols = tuple(s.lower() for s in symbols)
    base = sim_config or SimConfig()
    cfg = replace(base, symbols=symbols, seed=seed, start_ms=base.start_ms or START_MS)
    settings = settings or Settings(symbols=symbols)
    runs = [_setup(s, cfg, settings) for s in symbols]
    step_ms = runs[0].market.params.step_ms
    if any(r.market.params.step_ms != step_ms for r in runs):
        raise ValueError("every symbol must step at the same engine batch length")
    steps = int(minutes * 60_000 / step_ms)
    t0 = time.perf_counter()
    for _ in range(steps):
        for run in runs:
            _step(run)
        now_ms = runs[0].market.now_ms
        if now_ms % 1000 == 0:  # one frame per simulated second, on the second
            for run in runs:
                _frame(run, now_ms * _MS)
    elapsed = time.perf_counter() - t0
    end_ms = runs[0].market.now_ms
    return {
        "minutes": minutes,
        "symbols": list(symbols),
        "seed": seed,
        "end_ms": end_ms,
        "cpu_seconds": elapsed,
        "labels": [{**e.to_json(), "origin": "episode"} for r in runs for e in r.scheduler.labels],
        "organic": [lb for r in runs for lb in r.oracle.labels],
        "alerts": [a for r in runs for a in r.alerts],
        "sync": {r.symbol: {"state": r.validator.state.value, **r.validator.counters.as_dict()} for r in runs},
        "ticks": {r.symbol: r.market.spec.tick_size for r in runs},
    }


# --- matching ---------------------------------------------------------------------------
def _same_price(label_price: str, alert_price: float | None, tick: float) -> bool:
    if alert_price is None:
        return False
    return round(float(Decimal(label_price)) / tick) == round(alert_price / tick)


def _matches(label: dict[str, Any], alert: dict[str, Any], slack_s: float, end_ms: int, tick: float) -> bool:
    if alert["type"] != KIND_ALERT[label["kind"]] or alert["symbol"] != label["symbol"]:
        return False
    if label["side"] != "both" and alert["side"] != label["side"]:
        return False
    ts_ms = alert["ts"] * 1000.0
    label_end = label["end_ms"] if label["end_ms"] is not None else end_ms
    if not label["start_ms"] <= ts_ms <= label_end + slack_s * 1000.0:
        return False
    if label["kind"] == "wall":
        return _same_price(label["prices"][0], alert["price"], tick)
    return True


def _too_short(label: dict[str, Any], settings: Settings) -> bool:
    """A wall label that did not rest long enough to be a wall by definition."""
    return label["kind"] == "wall" and label["end_ms"] - label["start_ms"] <= (settings.wall_min_age_s + 1.0) * 1000


def _masked_by_cooldown(
    label: dict[str, Any], alerts: list[dict[str, Any]], slack_s: float, settings: Settings
) -> bool:
    """A layering label the detector must stay quiet for, by definition: a LAYERING
    alert on the same symbol and side before the label's start whose 30 s cooldown
    covers the whole scoring window of the label."""
    if label["kind"] != "layering":
        return False
    quiet_until_ms = max(
        (a["ts"] * 1000.0 + settings.layering_cooldown_s * 1000.0 for a in alerts
         if a["type"] == LAYERING and a["symbol"] == label["symbol"] and a["side"] == label["side"]
         and a["ts"] * 1000.0 < label["start_ms"]),
        default=0.0,
    )
    return quiet_until_ms > label["end_ms"] + slack_s * 1000.0


def match(result: dict[str, Any], slack_s: float = DEFAULT_SLACK_S, settings: Settings | None = None) -> dict[str, Any]:
    """Recall, precision and the WALL_REMOVED agreement of one :func:`simulate` result.
    Labels still running at the end count for precision (an alert on them is right)
    but not for recall."""
    settings = settings or Settings()
    labels: list[dict[str, Any]] = result["labels"]
    organic: list[dict[str, Any]] = result.get("organic", [])
    alerts: list[dict[str, Any]] = result["alerts"]
    end_ms: int = result["end_ms"]
    ticks: dict[str, float] = result["ticks"]
    kinds: dict[str, Any] = {}
    misses: list[dict[str, Any]] = []
    false_alarms: list[dict[str, Any]] = []
    too_short: list[dict[str, Any]] = []
    for kind in KINDS:
        atype = KIND_ALERT[kind]
        ks = [lb for lb in labels if lb["kind"] == kind]
        org = [lb for lb in organic if lb["kind"] == kind]
        finished = []
        for lb in ks:
            if lb["end_ms"] is None:
                continue
            if _too_short(lb, settings):
                too_short.append(lb)
                continue
            finished.append(lb)
        typed = [a for a in alerts if a["type"] == atype]
        caught = masked = masked_caught = 0
        for lb in finished:
            is_masked = _masked_by_cooldown(lb, typed, slack_s, settings)
            masked += is_masked
            if any(_matches(lb, a, slack_s, end_ms, ticks[lb["symbol"]]) for a in typed):
                caught += 1
                masked_caught += is_masked
            else:
                misses.append({**lb, "masked_by_cooldown": is_masked})
        good = explained = 0
        for a in typed:
            tick = ticks[a["symbol"]]
            if any(_matches(lb, a, slack_s, end_ms, tick) for lb in ks):
                good += 1
                explained += 1
            elif any(_matches(lb, a, 0.0, end_ms, tick) for lb in org):
                explained += 1
            else:
                false_alarms.append(a)
        kinds[kind] = {
            "alert": atype,
            "labels": len(finished),
            "too_short": sum(1 for lb in ks if lb["end_ms"] is not None and _too_short(lb, settings)),
            "alerts": len(typed),
            "caught": caught,
            "matched_alerts": good,
            "organic_events": len(org),
            "explained_alerts": explained,
            "masked_by_cooldown": masked,
            "recall": caught / len(finished) if finished else None,
            "recall_unmasked": (caught - masked_caught) / (len(finished) - masked) if len(finished) > masked else None,
            "precision": good / len(typed) if typed else None,
            "precision_truth": explained / len(typed) if typed else None,
        }
    # WALL_REMOVED: the removal of a caught wall, at its price, around the label's end.
    removed = [a for a in alerts if a["type"] == WALL_REMOVED]
    agree = judged = found = 0
    disagreements: list[dict[str, Any]] = []
    for lb in labels:
        if lb["kind"] != "wall" or lb["end_ms"] is None or _too_short(lb, settings):
            continue
        want = _WALL_END.get(lb["details"].get("end_reason", ""))
        if want is None:
            continue
        judged += 1
        tick = ticks[lb["symbol"]]
        cands = [
            a for a in removed
            if a["symbol"] == lb["symbol"] and a["side"] == lb["side"]
            and _same_price(lb["prices"][0], a["price"], tick)
            and lb["start_ms"] <= a["ts"] * 1000.0 <= lb["end_ms"] + slack_s * 1000.0
        ]
        if not cands:
            continue
        found += 1
        got = cands[-1]["details"].get("reason")
        if got == want:
            agree += 1
        else:
            disagreements.append({"label": lb["id"], "symbol": lb["symbol"], "want": want, "got": got,
                                  "removal": cands[-1]})
    kinds["wall_removed"] = {
        "walls_judged": judged,
        "removals_found": found,
        "reason_agrees": agree,
        "agreement": agree / found if found else None,
        "disagreements": disagreements,
    }
    return {"kinds": kinds, "misses": misses, "false_alarms": false_alarms, "too_short": too_short}


def score(
    minutes: float = 30.0,
    symbols: Sequence[str] = ("btcusdt", "ethusdt"),
    seed: int = 1,
    sim_config: SimConfig | None = None,
    slack_s: float = DEFAULT_SLACK_S,
    settings: Settings | None = None,
    keep_raw: bool = False,
) -> dict[str, Any]:
    """Run and score. ``sim_config`` changes the simulator (e.g. episode frequencies);
    its symbols and seed are replaced by ``symbols`` and ``seed``."""
    t0 = time.perf_counter()
    result = simulate(minutes, symbols, seed, sim_config, settings)
    scored = match(result, slack_s, settings)
    out: dict[str, Any] = {
        "minutes": minutes,
        "symbols": result["symbols"],
        "seed": seed,
        "slack_s": slack_s,
        "kinds": scored["kinds"],
        "misses": scored["misses"],
        "false_alarms": scored["false_alarms"],
        "too_short": scored["too_short"],
        "sync": result["sync"],
        "seconds": time.perf_counter() - t0,
    }
    if keep_raw:
        out["labels"] = result["labels"]
        out["alerts"] = result["alerts"]
        out["organic"] = result["organic"]
    return out


def table(report: dict[str, Any]) -> str:
    def f(x: float | None) -> str:
        return "-" if x is None else f"{x:.2f}"

    rows = [
        f"detector score: {report['minutes']:g} simulated min, {','.join(report['symbols'])}, "
        f"seed {report['seed']}, slack {report['slack_s']:g} s, {report['seconds']:.1f} s wall",
        f"{'kind':12} {'alert':11} {'labels':>6} {'alerts':>6} {'caught':>6} {'recall':>7} {'precision':>9} "
        f"{'organic':>7} {'prec_truth':>10} {'masked':>6} {'recall_unmasked':>15}",
    ]
    for kind in KINDS:
        k = report["kinds"][kind]
        rows.append(
            f"{kind:12} {k['alert']:11} {k['labels']:>6} {k['alerts']:>6} {k['caught']:>6} "
            f"{f(k['recall']):>7} {f(k['precision']):>9} {k['organic_events']:>7} {f(k['precision_truth']):>10} "
            f"{k['masked_by_cooldown']:>6} {f(k['recall_unmasked']):>15}"
        )
    rows.append(
        "precision: alerts matching a scripted episode; prec_truth: or an organic event of the exchange's true "
        "book (organic = such events)\nmasked: layering labels whose whole window fell in the detector's 30 s "
        "cooldown after an earlier same-side alert (quiet by definition); recall_unmasked leaves them out"
    )
    short = report["kinds"]["wall"]["too_short"]
    if short:
        rows.append(f"walls eaten by the flow before resting > wall_min_age_s + 1 s (not scored): {short}")
    w = report["kinds"]["wall_removed"]
    rows.append(
        f"WALL_REMOVED reason vs label end: {w['reason_agrees']}/{w['removals_found']} agree "
        f"({w['walls_judged']} ended walls)"
    )
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Score the liquidity detectors against labelled sim episodes.")
    parser.add_argument("--minutes", type=float, default=30.0, help="simulated minutes (default 30)")
    parser.add_argument("--symbols", default="btcusdt,ethusdt")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--slack", type=float, default=DEFAULT_SLACK_S, help="seconds allowed after a label's end")
    parser.add_argument("--json", default="", help="also write the JSON report to this path")
    args = parser.parse_args(argv)
    symbols = tuple(s.strip().lower() for s in args.symbols.split(",") if s.strip())
    report = score(args.minutes, symbols, args.seed, slack_s=args.slack)
    text = json.dumps(report, indent=2, default=str)
    sys.stdout.write(table(report) + "\n\n" + text + "\n")
    if args.json:
        with open(args.json, "w") as fh:
            fh.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
