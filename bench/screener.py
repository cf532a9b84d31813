"""Screener benchmark: the whole simulated market (300 symbols) on the light streams
plus 2 focus symbols with full-depth books, as ``main.py`` runs them.

The simulated exchange runs in its own process (``python -m exchange_sim --market
300``) so that its cost is not counted; ``main.py --source sim --sim-url ...`` reads
it over loopback. After a warm-up, over the measured window:

    cpu_cores            main.py's CPU time / wall time (1.0 = one core busy)
    rss_mb_max           main.py's largest resident set size seen (sampled each second)
    frame_build_p50_ms   the screener's 1 Hz frame (all rows built, diffed, encoded),
    frame_build_p99_ms   wall time, from /health (its last 600 frames)
    frame_build_cpu_p50_ms, frame_build_cpu_p99_ms
                         the same frames' CPU time (what they cost without waiting for
                         a core: on a loaded machine the wall time is mostly waiting)
    rows                 rows in GET /screener
    focus_synced         the focus symbols in sync at the end
    malformed            screener messages counted malformed (expected 0)

Targets (issue 17): <= 1 core, <= 400 MB, <= 50 ms.

    python -m bench.screener [--market 300] [--warmup 30] [--seconds 60]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

REPO = Path(__file__).resolve().parent.parent
FOCUS = ("btcusdt", "ethusdt")


def free_port_pair() -> int:
    """A port P with P and P + 1 free (the simulated exchange's REST and websocket ports)."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            continue
    raise RuntimeError("no pair of free ports")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout_s: float, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer within {timeout_s:.0f} s")


def run(market: int, warmup_s: float, seconds: float) -> dict[str, Any]:
    py = sys.executable
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    sim_port = free_port_pair()
    api_port = free_port()
    sim = subprocess.Popen([py, "-m", "exchange_sim", "--port", str(sim_port), "--market", str(market),
                            "--symbols", ",".join(FOCUS), "--warmup", "5", "--log-level", "warning"],
                           cwd=REPO, env=env, stdout=subprocess.DEVNULL)
    app: subprocess.Popen[bytes] | None = None
    try:
        wait_http(f"http://127.0.0.1:{sim_port}/fapi/v1/ping", 300, sim)
        app = subprocess.Popen([py, "main.py", "--source", "sim", "--sim-url", f"http://127.0.0.1:{sim_port}",
                                "--symbols", ",".join(FOCUS), "--api-port", str(api_port), "--no-dashboard",
                                "--no-history", "--log-level", "warning", "--screener"],
                               cwd=REPO, env=env, stdout=subprocess.DEVNULL)
        api = f"http://127.0.0.1:{api_port}"
        wait_http(f"{api}/health", 120, app)
        time.sleep(warmup_s)
        proc = psutil.Process(app.pid)
        cpu0 = proc.cpu_times()
        t0 = time.monotonic()
        rss_max = 0
        while time.monotonic() - t0 < seconds:
            rss_max = max(rss_max, proc.memory_info().rss)
            time.sleep(1.0)
        cpu1 = proc.cpu_times()
        wall = time.monotonic() - t0
        health = httpx.get(f"{api}/health", timeout=10).json()
        rows = httpx.get(f"{api}/screener", params={"limit": "1000"}, timeout=10).json()
        scr = health.get("screener", {})
        return {
            "market": market,
            "seconds": round(wall, 1),
            "cpu_cores": round((cpu1.user + cpu1.system - cpu0.user - cpu0.system) / wall, 3),
            "rss_mb_max": round(rss_max / 1e6, 1),
            "frame_build_p50_ms": round(scr.get("build_ms_p50") or 0.0, 2),
            "frame_build_p99_ms": round(scr.get("build_ms_p99") or 0.0, 2),
            "frame_build_cpu_p50_ms": round(scr.get("build_cpu_ms_p50") or 0.0, 2),
            "frame_build_cpu_p99_ms": round(scr.get("build_cpu_ms_p99") or 0.0, 2),
            "rows": rows["count"],
            "rows_with_mid": sum(1 for r in rows["rows"] if r["mid"] is not None),
            "focus_synced": sorted(s for s in FOCUS if any(r["symbol"] == s and r["focus"] for r in rows["rows"])),
            "malformed": scr.get("malformed", {}),
            "machine_cpus": psutil.cpu_count(),
            "load_avg_1m": round(os.getloadavg()[0], 2),
        }
    finally:
        for p in (app, sim):
            if p is not None and p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--market", type=int, default=300)
    ap.add_argument("--warmup", type=float, default=30.0, help="seconds before measuring")
    ap.add_argument("--seconds", type=float, default=60.0, help="measured window")
    args = ap.parse_args()
    print(json.dumps(run(args.market, args.warmup, args.seconds), indent=2))


if __name__ == "__main__":
    main()
