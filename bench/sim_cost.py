"""What the simulated exchange costs: CPU (% of one core) and RSS of the standalone
``python -m exchange_sim`` process while clients read it as the product does.

The exchange runs in its own process (its figures are not mixed with the clients'),
in the volatile regime (the busier one; ``--regime`` to change it). Clients
subscribe to what a user of the dashboard asks of Binance: for each focus symbol
(BTCUSDT and ETHUSDT) the diff depth at 100 ms and bookTicker on /public, aggTrade
on /market; with ``--market N`` also the whole-market screening streams
(``!bookTicker``, ``!miniTicker@arr``, ``!markPrice@arr@1s``, ``!forceOrder@arr``)
and a partial book of every symbol (``<symbol>@depth10@500ms``). Figures over the
measured window, after a settling period:

    cpu_pct        exchange process CPU, % of one core
    rss_mb         its resident memory at the end
    messages_per_s messages the clients received, by stream kind
    warmup_s       wall seconds from start to serving (the market's warm-up included)

    python -m bench.sim_cost [--market 0|N] [--seconds 60] [--regime volatile] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import psutil
import websockets

from exchange_sim.contracts import market_symbols

REPO = Path(__file__).resolve().parent.parent
FOCUS = ("btcusdt", "ethusdt")
SETTLE_S = 10.0


def _start(market: int, regime: str) -> tuple[subprocess.Popen[str], dict[str, str], float]:
    cmd = [sys.executable, "-m", "exchange_sim", "--port", "0", "--regime", regime, "--log-level", "warning",
           "--symbols", ",".join(FOCUS)]
    if market:
        cmd += ["--market", str(market)]
    started = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    urls: dict[str, str] = {}
    while len(urls) < 3:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"simulated exchange exited with {proc.wait()}")
        key, _, value = line.strip().partition(" ")
        urls[key] = value
    return proc, urls, time.monotonic() - started


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def streams(market: int) -> dict[str, list[str]]:
    """The streams of each route the clients read."""
    public = [f"{s}@depth@100ms" for s in FOCUS] + [f"{s}@bookTicker" for s in FOCUS]
    market_route = [f"{s}@aggTrade" for s in FOCUS]
    if market:
        public += ["!bookTicker"] + [f"{s}@depth10@500ms" for s in market_symbols(market)]
        market_route += ["!miniTicker@arr", "!markPrice@arr@1s", "!forceOrder@arr"]
    return {"public": public, "market": market_route}


async def _read(url: str, names: list[str], counts: Counter[str], stop: asyncio.Event) -> None:
    """One combined-stream connection; the first streams in the URL, the rest subscribed."""
    async with websockets.connect(f"{url}/stream?streams={'/'.join(names[:20])}", max_size=None) as ws:
        for i in range(20, len(names), 200):
            await ws.send(json.dumps({"method": "SUBSCRIBE", "params": names[i:i + 200], "id": i}))
            await asyncio.sleep(0.25)  # Binance allows 10 messages a second
        while not stop.is_set():
            try:
                raw = await asyncio.wait_for(ws.recv(), 1.0)
            except TimeoutError:
                continue
            msg = orjson.loads(raw)
            stream = msg.get("stream")
            if stream is None:
                continue
            kind = stream if stream.startswith("!") else stream.split("@", 1)[1]
            if kind.startswith("depth10"):
                kind = "<symbol>@depth10@500ms"
            counts[kind] += 1


async def measure(market: int = 0, seconds: float = 60.0, regime: str = "volatile") -> dict[str, Any]:
    proc, urls, warmup_s = _start(market, regime)
    try:
        ps = psutil.Process(proc.pid)
        counts: Counter[str] = Counter()
        stop = asyncio.Event()
        routes = streams(market)
        readers = [asyncio.create_task(_read(urls["ws_public_url"], routes["public"], counts, stop)),
                   asyncio.create_task(_read(urls["ws_market_url"], routes["market"], counts, stop))]
        await asyncio.sleep(SETTLE_S)
        counts.clear()
        cpu0 = ps.cpu_times()
        t0 = time.monotonic()
        await asyncio.sleep(seconds)
        cpu1 = ps.cpu_times()
        elapsed = time.monotonic() - t0
        rss_mb = ps.memory_info().rss / 1e6
        stop.set()
        for task in readers:
            with contextlib.suppress(Exception):
                await task
    finally:
        _stop(proc)
    cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    return {
        "symbols": len(FOCUS) if not market else len(dict.fromkeys((*FOCUS, *market_symbols(market)))),
        "regime": regime,
        "seconds": round(elapsed, 1),
        "warmup_s": round(warmup_s, 1),
        "cpu_pct": round(100.0 * cpu / elapsed, 1),
        "rss_mb": round(rss_mb, 1),
        "messages_per_s": {k: round(v / elapsed, 1) for k, v in sorted(counts.items())},
    }


def bench_sim_cost() -> dict[str, Any]:
    """``make bench``: two symbols, then a market of 300."""
    two = asyncio.run(measure(0, 60.0))
    many = asyncio.run(measure(300, 60.0))
    return {"two.cpu_pct": two["cpu_pct"], "two.rss_mb": two["rss_mb"],
            "market300.cpu_pct": many["cpu_pct"], "market300.rss_mb": many["rss_mb"],
            "market300.warmup_s": many["warmup_s"]}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="CPU and memory of the simulated exchange under its clients.")
    parser.add_argument("--market", type=int, default=0, help="serve a market of N symbols (default: the two focus)")
    parser.add_argument("--seconds", type=float, default=60.0, help="measured window (default 60)")
    parser.add_argument("--regime", default="volatile", choices=("volatile", "calm", "auto"))
    parser.add_argument("--json", default="", help="also write the result to this file")
    args = parser.parse_args(argv)
    result = asyncio.run(measure(args.market, args.seconds, args.regime))
    text = json.dumps(result, indent=2)
    sys.stdout.write(text + "\n")
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
