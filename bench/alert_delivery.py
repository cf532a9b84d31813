"""Alert delivery: latency from alert to receiver, and what a receiver that answers
500 for a while loses once it recovers.

Alerts go the product's whole way: frames carrying a new WALL alert handed to the
frame tap (``Alerting.offer_frame``, as the publisher does), the intake, the rules,
the destination's queue and worker (httpx, retries with backoff and full jitter,
token bucket), to a webhook receiver on loopback (bench/webhook_receiver.py).

0. The first alert, on a cold HTTP client (its connection set up), timed apart.
1. Latency: ``--alerts`` alerts at ``--rate`` a second to a receiver answering 200;
   p50/p99/max from the tap's call to the receiver reading the body.
2. Outage: the receiver answers 500 for ``--outage`` seconds (60 for the issue's
   figure; 10 by default for a quick run) while alerts keep coming at ``--outage-rate``
   a second, then 200 again. Lost = alerts offered and never received; expected 0 while
   the alerts of the outage fit the destination's queue (``--queue``, default 1000).

    python -m bench.alert_delivery [--outage 60] [--alerts 500] [--rate 50] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from typing import Any

from alerting.rules import parse
from alerting.service import Alerting
from bench.webhook_receiver import WebhookReceiver
from features.frame import AlertEvent, Frame, FrameAlert, SyncInfo

WAIT_CEILING_S = 600.0


def _frame(n: int) -> Frame:
    """A btcusdt frame whose only alert is WALL btcusdt-<n>, just born."""
    ts = time.time()
    a = FrameAlert(id=f"btcusdt-{n}", type="WALL", status="born", live=True, symbol="btcusdt", side="bid",
                   price=64_000.0, price_bin=None, ts=ts, born_ts=ts, age_s=5.1, size=10.0, notional=640_000.0,
                   peak_notional=640_000.0, distance_bps=2.0, depth_share=0.2, score=None,
                   events=[AlertEvent(ts=ts, status="born", price=64_000.0, size=10.0)])
    return Frame(symbol="btcusdt", timestamp=ts, ts_event_ms=None, seq=n, sync=SyncInfo(state="synced"),
                 mid_price=64_010.0, spread_bps=0.1, alerts=[a])


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


async def _until(pred: Any, timeout: float = WAIT_CEILING_S) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise TimeoutError("the receiver did not get every alert in time")
        await asyncio.sleep(0.01)


async def _offer(al: Alerting, first: int, count: int, rate: float, offered: dict[str, int]) -> None:
    """``count`` alerts at ``rate`` a second on a fixed grid (no drift)."""
    t0 = time.monotonic()
    for i in range(count):
        n = first + i
        offered[f"btcusdt-{n}"] = time.time_ns()
        al.offer_frame(_frame(n))
        delay = t0 + (i + 1) / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)


async def run(alerts: int, rate: float, outage_s: float, outage_rate: float, queue: int,
              dest_rate: float, burst: int) -> dict[str, Any]:
    rx = WebhookReceiver()
    await rx.start()
    dest = {"url": rx.url("/hook"), "queue": queue, "rate_per_s": dest_rate, "burst": burst,
            "give_up_after_s": max(900.0, 3 * outage_s)}
    rules = parse({"destinations": {"rx": dest},
                   "rules": [{"name": "walls", "kind": "wall", "cooldown_s": 0, "destinations": ["rx"]}]})
    al = Alerting(rules, "http://127.0.0.1:8050")
    al.start()
    worker = al.workers["rx"]
    offered: dict[str, int] = {}
    try:
        # 0. the first alert, on a cold client (connection set up), apart
        warm: dict[str, int] = {}
        await _offer(al, -1, 1, 1.0, warm)
        await _until(lambda: len(rx.delivered("/hook")) >= 1)
        first_ms = (rx.delivered("/hook")[0].wall_ns - warm["btcusdt--1"]) / 1e6
        # 1. latency
        await _offer(al, 0, alerts, rate, offered)
        await _until(lambda: len(rx.delivered("/hook")) >= alerts + 1)
        got = {json.loads(r.body)["alert_id"]: r.wall_ns for r in rx.delivered("/hook")}
        lat_ms = [(got[k] - offered[k]) / 1e6 for k in list(offered)[:alerts]]
        # 2. outage
        rx.route("/hook", status=500)
        n_out = max(1, round(outage_s * outage_rate))
        t_fail = time.monotonic()
        await _offer(al, alerts, n_out, n_out / outage_s, offered)
        rx.route("/hook", status=200)
        t_recovered = time.monotonic()
        delivered_before = len(got)
        await _until(lambda: len({json.loads(r.body)["alert_id"] for r in rx.delivered("/hook")})
                     >= 1 + alerts + n_out - worker.counters.dropped - worker.counters.dead_letters)
        drained_s = time.monotonic() - t_recovered
        received = {json.loads(r.body)["alert_id"] for r in rx.delivered("/hook")} - {"btcusdt--1"}
        lost = [k for k in offered if k not in received]
        st = worker.status()
        return {
            "first_alert_cold_ms": round(first_ms, 1), "alerts": alerts, "rate_per_s": rate,
            "latency_p50_ms": round(statistics.median(lat_ms), 2), "latency_p99_ms": round(_pct(lat_ms, 0.99), 2),
            "latency_max_ms": round(max(lat_ms), 2),
            "outage_s": round(t_recovered - t_fail, 1), "outage_alerts": n_out, "queue_bound": queue,
            "destination_rate_per_s": dest_rate, "destination_burst": burst,
            "attempts_during_outage": st["failed"], "retried": st["retried"],
            "lost": len(lost), "dropped": st["dropped"], "dead_letters": st["dead_letters"],
            "duplicates": len(rx.delivered("/hook")) - 1 - len(received),
            "drained_after_recovery_s": round(drained_s, 2),
            "delivered_before_outage": delivered_before - 1,
        }
    finally:
        await al.stop()
        await rx.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.alert_delivery", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--alerts", type=int, default=500, help="alerts of the latency run (default 500)")
    p.add_argument("--rate", type=float, default=50.0, help="their rate, a second (default 50)")
    p.add_argument("--outage", type=float, default=10.0, help="seconds the receiver answers 500 (default 10)")
    p.add_argument("--outage-rate", type=float, default=5.0, help="alerts a second during the outage (default 5)")
    p.add_argument("--queue", type=int, default=1000, help="the destination's queue bound (default 1000)")
    p.add_argument("--dest-rate", type=float, default=100.0,
                   help="the destination's rate limit, a second (default 100: the path, not the limit, is measured)")
    p.add_argument("--burst", type=int, default=100, help="its burst (default 100)")
    p.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = p.parse_args(argv)
    result = asyncio.run(run(args.alerts, args.rate, args.outage, args.outage_rate, args.queue, args.dest_rate,
                             args.burst))
    for key, value in result.items():
        print(f"{key:<28} {value}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0 if result["lost"] == 0 or result["outage_alerts"] > args.queue else 1


if __name__ == "__main__":
    sys.exit(main())
