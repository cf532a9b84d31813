"""``make soak``: the whole product for a long accelerated run, faults on.

Starts the simulated exchange in a process of its own (the one ``main.py --source
sim`` would start in its process, same settings, liquidation bursts included) and
``python main.py --source sim --sim-url ...`` (the dashboard server on) reading it, so
that the RSS measured is the dashboard's own, not the exchange's books as well.
Connects ten websocket clients as dashboard tabs would, injects a random fault every
few seconds through the simulated exchange's control API, and every 30 s samples
both processes' RSS, the book levels the dashboard holds, resyncs and time in sync.
Prints the series and a verdict on memory (flat after warm-up), then stops the
process with SIGINT. History is on, as for a user, into a temporary data directory
removed at the end. ``--sim-inside`` runs the exchange in the dashboard's process, as
``python main.py --source sim`` does (the figure of earlier soaks).

    python -m bench.soak [--minutes 30] [--speed 3] [--fault-every 5] [--sim-inside]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import websockets

REPO = Path(__file__).resolve().parent.parent

FAULTS = [
    ("drop", {"count": 1}), ("duplicate", {"count": 2}), ("reorder", {"count": 1}),
    ("close", {"frame": True}), ("close", {"frame": False}), ("silence", {"seconds": 6.0}),
    ("malformed", {"kind": "json", "count": 1}), ("snapshot_5xx", {"count": 1}),
    ("snapshot_stale", {"count": 1}), ("snapshot_429", {"retry_after": 2, "count": 1}), ("rotate", {}),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _client(url: str, stop: asyncio.Event, counts: dict[str, int]) -> None:
    while not stop.is_set():
        try:
            async with websockets.connect(url, max_size=None) as ws:
                while not stop.is_set():
                    try:
                        await asyncio.wait_for(ws.recv(), 2.0)
                        counts["messages"] += 1
                    except TimeoutError:
                        continue
        except (OSError, websockets.ConnectionClosed):
            await asyncio.sleep(1.0)


async def serve_sim(speed: float) -> None:
    """The simulated exchange ``main.py --source sim`` starts, in this process until
    killed; prints its REST address (its websockets on the next port, where
    ``--sim-url`` looks for them)."""
    from config import load_settings
    from sim_stack import start_sim_exchange

    _sim, pointed = await start_sim_exchange(load_settings().replace(sim_speed=speed), port=free_port())
    print(pointed.rest_base_url, flush=True)
    await asyncio.Event().wait()


def _health_figures(h: dict[str, Any], frames_received: int, faults: int) -> dict[str, Any]:
    """A sample's figures from the dashboard's /health body."""
    mon = h["monitoring"]
    return {
        "book_levels": sum(m["bid_levels"] + m["ask_levels"] for m in mon.values()),
        "resyncs": sum(m["resyncs"] for m in mon.values()),
        "time_in_sync_pct": round(min(m["time_in_sync_pct"] for m in mon.values()), 2),
        "status": h["status"],
        "frames_received": frames_received,
        "faults": faults,
    }


async def soak(minutes: float, speed: float, fault_every: float, clients: int = 10,
               sim_inside: bool = False) -> dict[str, Any]:
    api_port, dash_port = free_port(), free_port()
    data_dir = tempfile.mkdtemp(prefix="liq-soak-")
    sim_proc: subprocess.Popen[str] | None = None
    source = ["--source", "sim", "--sim-speed", str(speed)]
    if not sim_inside:
        sim_proc = subprocess.Popen([sys.executable, "-m", "bench.soak", "--serve-sim", "--speed", str(speed)],
                                    cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert sim_proc.stdout is not None
        source += ["--sim-url", sim_proc.stdout.readline().strip()]
    proc = subprocess.Popen(
        [sys.executable, "main.py", *source, "--api-port", str(api_port),
         "--dash-port", str(dash_port), "--log-level", "warning", "--data-dir", data_dir],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    ps = psutil.Process(proc.pid)
    sim_ps = psutil.Process(sim_proc.pid) if sim_proc is not None else None
    base = f"http://127.0.0.1:{api_port}"
    samples: list[dict[str, Any]] = []
    rng = random.Random(7)
    stop = asyncio.Event()
    counts = {"messages": 0}
    try:
        # A pooled connection is let go after 1 s idle, well inside the servers' keep-alive
        # time: a request every few seconds on a connection the server is closing at that
        # moment would fail with a read error (the soak once stopped at minute 26 so).
        async with httpx.AsyncClient(timeout=5.0, limits=httpx.Limits(keepalive_expiry=1.0)) as http:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if (await http.get(f"{base}/health")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the dashboard did not become healthy")
                await asyncio.sleep(0.5)
            health = (await http.get(f"{base}/health")).json()
            sim = health["exchange"]["rest_base_url"]
            symbols = health["symbols"]
            tasks = [asyncio.create_task(_client(f"ws://127.0.0.1:{api_port}/ws/{symbols[i % len(symbols)]}",
                                                 stop, counts)) for i in range(clients)]
            t0 = time.monotonic()
            next_fault = t0 + fault_every
            next_sample = t0
            faults = 0
            while time.monotonic() - t0 < minutes * 60:
                now = time.monotonic()
                if now >= next_fault:
                    name, params = rng.choice(FAULTS)
                    await http.post(f"{sim}/sim/faults",
                                    json={"symbol": rng.choice(symbols), "fault": name, "params": params})
                    faults += 1
                    next_fault = now + fault_every
                if now >= next_sample:
                    sample = {
                        "minute": round((now - t0) / 60, 2),
                        "rss_mb": round(ps.memory_info().rss / 2**20, 1),
                        "sim_rss_mb": round(sim_ps.memory_info().rss / 2**20, 1) if sim_ps else None,
                    }
                    next_sample = now + 30
                    try:
                        h = (await http.get(f"{base}/health")).json()
                    except httpx.HTTPError as exc:
                        # Kept and counted, not the end of the run: the series goes on, and the
                        # dashboard's log (its stderr) is in the result.
                        sample["health_error"] = f"{type(exc).__name__} after {time.monotonic() - now:.1f} s"
                    else:
                        sample |= _health_figures(h, counts["messages"], faults)
                    samples.append(sample)
                    print(json.dumps(sample), flush=True)
                await asyncio.sleep(0.2)
            stop.set()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await http.post(f"{sim}/sim/faults", json={"clear": True})
    finally:
        t_stop = time.monotonic()
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = -9
        stop_s = time.monotonic() - t_stop
        stderr = proc.stderr.read() if proc.stderr else ""
        if sim_proc is not None:
            sim_proc.kill()
            sim_proc.wait()
        shutil.rmtree(data_dir, ignore_errors=True)
    at5 = next((s["rss_mb"] for s in samples if s["minute"] >= 5), None)
    last = samples[-1]["rss_mb"] if samples else None
    answered = [s for s in samples if "health_error" not in s]
    health_errors = [s for s in samples if "health_error" in s]
    return {
        "minutes": minutes,
        "speed": speed,
        "sim_inside": sim_inside,
        "samples": samples,
        "rss_peak_mb": max(s["rss_mb"] for s in samples) if samples else None,
        "rss_at_5_min_mb": at5,
        "rss_end_mb": last,
        "rss_growth_5_to_end_pct": round(100 * (last / at5 - 1), 2) if at5 and last else None,
        "resyncs": answered[-1]["resyncs"] if answered else None,
        "time_in_sync_pct": answered[-1]["time_in_sync_pct"] if answered else None,
        "health_errors": health_errors,
        "exit_code": code,
        "stop_seconds": round(stop_s, 2),
        "traceback_on_stderr": "Traceback" in stderr,
        "stderr_tail": stderr.splitlines()[-40:],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--speed", type=float, default=3.0, help="simulated market speed factor")
    p.add_argument("--fault-every", type=float, default=5.0, help="seconds between injected faults")
    p.add_argument("--sim-inside", action="store_true",
                   help="the simulated exchange in the dashboard's process (its RSS then counts its books)")
    p.add_argument("--serve-sim", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--json", default=str(REPO / "bench" / "results" / "soak.json"))
    args = p.parse_args(argv)
    if args.serve_sim:
        asyncio.run(serve_sim(args.speed))
        return 0
    result = asyncio.run(soak(args.minutes, args.speed, args.fault_every, sim_inside=args.sim_inside))
    summary = {k: v for k, v in result.items() if k != "samples"}
    print(json.dumps(summary, indent=2))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2))
    ok = result["exit_code"] == 0 and not result["traceback_on_stderr"] and not result["health_errors"]
    return 0 if ok else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
