"""Alerting in a running stack: the tap on the frame path, the rules, the delivery
workers, and what /health, /metrics and /alerts/rules read.

The frame publisher calls :meth:`Alerting.offer_frame` for every frame it builds.
That call does small work (which alerts changed since the previous frame, and
whether any rule wants them) and hands a digest to a bounded intake with a put that
never waits; a full intake drops the digest and counts it. One task takes the
digests, applies the rules (alerting/engine.py) and puts each notification on the
queue of each of its destinations (alerting/delivery.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from alerting.delivery import DestinationWorker, install_log_redaction
from alerting.engine import RuleEngine
from alerting.notification import Notification
from alerting.rules import RulesError, RuleSet, load_file, parse, public_document, save_file, to_document
from data_ingestion.tasks import TaskRegistry
from features.frame import Frame, FrameAlert

log = logging.getLogger("alerting")

DEPTH_BAND = "25"  # depth within 25 bps of mid, the band the depth_collapse rules read
YIELD_EVERY = 50  # digests applied between two yields to the event loop


@dataclass(frozen=True, slots=True)
class _FrameDigest:
    symbol: str
    ts_ms: int
    spread_bps: float | None
    depth25_usdt: float | None
    alerts: tuple[FrameAlert, ...]  # changed since the previous frame, of a kind and status some rule wants
    market: bool  # some spread or depth rule applies to the symbol


@dataclass(frozen=True, slots=True)
class _Rows:
    ts_ms: int
    rows: tuple[Mapping[str, Any], ...]


def depth25_usdt(frame: Frame) -> float | None:
    """Both sides' quantity within 25 bps of mid, in USDT (x mid); None without it."""
    bands = frame.depth_bands
    if frame.mid_price is None or bands.bid is None or bands.ask is None:
        return None
    bid, ask = bands.bid.get(DEPTH_BAND), bands.ask.get(DEPTH_BAND)
    if bid is None or ask is None:
        return None
    return (bid + ask) * frame.mid_price


class Alerting:
    """The rules in force and the delivery workers of one process."""

    def __init__(self, rules: RuleSet, dashboard_url: str, path: str | None = None,
                 intake_bound: int = 10_000) -> None:
        install_log_redaction()
        self.path = path
        self.rules = rules
        self.engine = RuleEngine(rules, dashboard_url)
        self.workers: dict[str, DestinationWorker] = {
            name: DestinationWorker(name, dest) for name, dest in rules.destinations.items()}
        self.intake: deque[_FrameDigest | _Rows] = deque()
        self.intake_bound = intake_bound
        self.intake_dropped = 0
        self.notifications = 0
        self.undeliverable = 0  # notifications of a rule without destinations
        self._seen: dict[str, dict[str, tuple[str, float]]] = {}  # symbol -> alert id -> (status, last change ts)
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._tasks = TaskRegistry()  # replaced by the process's own at start
        self._lock = asyncio.Lock()  # one PUT at a time

    @classmethod
    def from_file(cls, path: str, dashboard_url: str, intake_bound: int = 10_000) -> Alerting:
        """The rules of ``path``, or an empty rule set saved there later if it does not exist yet."""
        rules = load_file(path) if Path(path).exists() else RuleSet()
        return cls(rules, dashboard_url, path, intake_bound)

    # --- the tap: called on the frame path, never waits ------------------------------
    def offer_frame(self, frame: Frame) -> None:
        symbol = frame.symbol
        seen = self._seen.setdefault(symbol, {})
        fresh: dict[str, tuple[str, float]] = {}
        changed: list[FrameAlert] = []
        wanted = self.engine.wanted
        for a in frame.alerts:
            mark = (a.status, a.events[-1].ts if a.events else a.born_ts)
            if a.live:
                fresh[a.id] = mark
            if seen.get(a.id) != mark and (a.type, a.status) in wanted:
                changed.append(a)
        self._seen[symbol] = fresh
        market = self.engine.wants_market(symbol)
        if not changed and not market:
            return
        self._put(_FrameDigest(symbol, round(frame.timestamp * 1000), frame.spread_bps,
                               depth25_usdt(frame) if market else None, tuple(changed), market))

    def on_screener_rows(self, ts_ms: int, rows: Iterable[Mapping[str, Any]]) -> None:
        """The screener's rows of one second (GET /screener's ROW shape), for the
        spread_blowout and depth_collapse rules over the whole market."""
        if self.engine.market_rules:
            self._put(_Rows(ts_ms, tuple(rows)))

    def _put(self, item: _FrameDigest | _Rows) -> None:
        if len(self.intake) >= self.intake_bound:
            self.intake_dropped += 1
            if self.intake_dropped == 1 or self.intake_dropped % 1000 == 0:
                log.warning("alerting: intake full (%d); %d digests dropped so far", self.intake_bound,
                            self.intake_dropped)
            return
        self.intake.append(item)
        self._ready.set()

    # --- the rules applied, the notifications routed ---------------------------------
    async def run(self) -> None:
        while True:
            while not self.intake:
                self._ready.clear()
                await self._ready.wait()
            done = 0
            while self.intake and done < YIELD_EVERY:
                item = self.intake.popleft()
                try:
                    self.route(self.apply(item))
                except Exception:  # a bug in a rule must not stop the alerts
                    log.exception("alerting: applying the rules failed; this digest skipped")
                done += 1
            await asyncio.sleep(0)

    def apply(self, item: _FrameDigest | _Rows) -> list[Notification]:
        if isinstance(item, _Rows):
            return self.engine.on_screener_rows(item.ts_ms, item.rows)
        out = self.engine.on_alerts(item.symbol, item.alerts)
        if item.market:
            out += self.engine.on_market("frame", item.symbol, item.ts_ms, item.spread_bps, item.depth25_usdt)
        return out

    def route(self, notifications: Iterable[Notification]) -> None:
        for n in notifications:
            self.notifications += 1
            log.info("%s: %s %s (rule %s) -> %s", n.symbol, n.kind, n.status, n.rule,
                     ", ".join(n.destinations) or "no destination")
            if not n.destinations:
                self.undeliverable += 1
            for name in n.destinations:
                worker = self.workers.get(name)
                if worker is not None:
                    worker.offer(n)

    # --- life --------------------------------------------------------------------------
    def start(self, tasks: TaskRegistry | None = None) -> None:
        """The rules task and one delivery worker per destination, supervised by
        ``tasks`` (the process's registry; one of its own when none is given)."""
        self._tasks = tasks or TaskRegistry()
        for worker in self.workers.values():
            worker.start(self._tasks)
        self._task = self._tasks.supervise(self.run, name="alerting-rules")
        if self.rules.rules:
            log.info("alerting: %d rules, destinations: %s", len(self.rules.rules),
                     ", ".join(f"{w.name} ({w.format}, {w.shown_url})" for w in self.workers.values()) or "none")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for worker in self.workers.values():
            await worker.stop()

    # --- GET / PUT /alerts/rules ------------------------------------------------------
    def document(self) -> dict[str, Any]:
        doc = public_document(self.rules)
        doc["file"] = Path(self.path).name if self.path else None
        doc["dashboard_url"] = self.engine.dashboard_url
        return doc

    async def replace(self, raw: bytes) -> dict[str, Any]:
        """A new rule set from a PUT body (JSON; without ``destinations``, the current
        ones are kept). RulesError when bad: nothing changed. OSError when it cannot be
        saved to the rules file: nothing changed either."""
        try:
            doc = msgspec.json.decode(raw)
        except msgspec.DecodeError as exc:
            raise RulesError(f"body: not valid JSON ({str(exc).splitlines()[0]})") from None
        if not isinstance(doc, dict):
            raise RulesError("body: expected a JSON object with \"rules\" (and optionally \"destinations\")")
        for key in ("file", "dashboard_url"):  # what GET adds, so its answer can be PUT back
            doc.pop(key, None)
        if "destinations" not in doc:
            doc["destinations"] = to_document(self.rules)["destinations"]
        else:
            self._restore_redacted(doc["destinations"])
        async with self._lock:
            rules = parse(doc, rules_file=self.path or None)
            new_workers: dict[str, DestinationWorker] = {}
            for name, dest in rules.destinations.items():
                old = self.workers.get(name)
                if old is None or old.dest != dest:
                    new_workers[name] = DestinationWorker(name, dest)  # RulesError: a secret missing
            if self.path:
                await asyncio.to_thread(save_file, self.path, rules)
            for name, worker in list(self.workers.items()):
                if name not in rules.destinations or name in new_workers:
                    waiting = worker.take_queue()
                    await worker.stop()
                    del self.workers[name]
                    if name in new_workers:
                        new_workers[name].adopt(waiting)
            for name, worker in new_workers.items():
                worker.start(self._tasks)
                self.workers[name] = worker
            self.rules = rules
            self.engine.replace(rules)
            log.info("alerting: rules replaced: %d rules, %d destinations%s", len(rules.rules),
                     len(rules.destinations), f", saved to {self.path}" if self.path else "")
            return self.document()

    def _restore_redacted(self, destinations: Any) -> None:
        """A destination sent back as GET shows it (its ``url`` reduced to scheme and
        host) keeps the URL in force: GET's answer can be edited and PUT back."""
        if not isinstance(destinations, dict):
            return
        for name, dest in destinations.items():
            old = self.rules.destinations.get(name)
            if not isinstance(dest, dict) or old is None:
                continue
            dest.pop("format_in_use", None)
            if old.url is not None and dest.get("url") == public_document(self.rules)["destinations"][name].get(
                    "url"):
                dest["url"] = old.url

    # --- /health and /metrics -------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        return {
            "rules": len(self.rules.rules),
            "file": Path(self.path).name if self.path else None,
            "intake_queued": len(self.intake),
            "intake_bound": self.intake_bound,
            "intake_dropped": self.intake_dropped,
            "notifications": self.notifications,
            "without_destination": self.undeliverable,
            "by_rule": {name: {"matched": c.matched, "cooldown": c.cooldown}
                        for name, c in self.engine.counters.items()},
            "destinations": {name: w.status() for name, w in self.workers.items()},
        }

