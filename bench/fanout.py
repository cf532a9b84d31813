"""Fan-out benchmark: many websocket clients on ``/ws/{symbol}``.

The server (simulated exchange + ingestion + publisher + API, as ``main.py`` runs
them) is started in a subprocess, so the clients' own work does not share its CPU;
the clients run in this process. Figures over the measured window:

    frames_delivered       frames received by all clients together
    frames_expected        clients x ticks in the window (what "no loss" would give)
    lag_p50_ms, lag_p99_ms, lag_max_ms
                           client receive wall time minus the frame's ``timestamp``
                           (same machine, same clock)
    client_seq_gaps        frames a client never saw (seq gaps); 0 when all keep up
    server_frames_dropped  frames the server dropped for slow clients (/stats)
    server_cpu_pct         server process CPU, % of one core, with the clients
    server_cpu_idle_pct    the same before the clients connect (ingestion + sim)

    python -m bench.fanout [--clients 200] [--seconds 60] [--cadence 1.0]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
import websockets

REPO = Path(__file__).resolve().parent.parent
CLIENTS_PER_ADDRESS = 50  # under the default per-address limit (100): spread over 127.0.0.x


# --- the server (subprocess) ---------------------------------------------------------


async def _serve(symbols: Sequence[str], cadence_s: float, max_clients: int) -> None:
    from sim_stack import running_stack

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with running_stack(
        tuple(symbols), source_reason="fan-out benchmark", push_interval_s=cadence_s,
        sim_config={"regime": "volatile"},  # the busier market
        max_ws_clients=max(max_clients, 500), log_level="warning",
    ) as h:
        print(f"READY {h.api_url}", flush=True)
        await stop.wait()


def _start_server(symbols: Sequence[str], cadence_s: float, clients: int) -> tuple[subprocess.Popen[str], str]:
    cmd = [sys.executable, "-m", "bench.fanout", "--serve", "--symbols", ",".join(symbols),
           "--cadence", str(cadence_s), "--clients", str(clients)]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"benchmark server exited with {proc.wait()}")
        if line.startswith("READY "):
            return proc, line.split()[1]
    proc.kill()
    raise RuntimeError("benchmark server did not start within 60 s")


def _stop_server(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# --- the clients (this process) -------------------------------------------------------


class _Client:
    __slots__ = ("frames", "gaps", "lags", "last_seq", "history")

    def __init__(self) -> None:
        self.frames = 0
        self.gaps = 0
        self.lags: list[float] = []
        self.last_seq: int | None = None
        self.history = False


async def _client(url: str, local_host: str, measuring: dict[str, bool], out: _Client,
                  connected: asyncio.Event, done: asyncio.Event) -> None:
    async with websockets.connect(url, max_size=None, local_addr=(local_host, 0), open_timeout=30) as ws:
        first = orjson.loads(await ws.recv())
        assert first["type"] == "history", first.get("type")
        out.history = True
        connected.set()
        while not done.is_set():
            raw = await ws.recv()
            now = time.time()
            frame = orjson.loads(raw)
            seq = frame["seq"]
            if measuring["on"]:
                out.frames += 1
                out.lags.append((now - frame["timestamp"]) * 1000.0)
                if out.last_seq is not None and seq != out.last_seq + 1:
                    out.gaps += seq - out.last_seq - 1
            out.last_seq = seq


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


async def _run_clients(api_url: str, pid: int, clients: int, symbols: Sequence[str], seconds: float,
                       cadence_s: float, idle_s: float) -> dict[str, Any]:
    server = psutil.Process(pid)
    ws_base = api_url.replace("http://", "ws://")
    async with httpx.AsyncClient(base_url=api_url, timeout=10) as http:
        deadline = time.monotonic() + 60
        while (await http.get("/health")).json()["status"] != "healthy":
            assert time.monotonic() < deadline, "books not in sync within 60 s"
            await asyncio.sleep(0.2)
        # Idle CPU: ingestion, the simulated exchange and the publisher, no clients.
        c0, t0 = server.cpu_times(), time.monotonic()
        await asyncio.sleep(idle_s)
        c1, t1 = server.cpu_times(), time.monotonic()
        idle_cpu = (c1.user + c1.system - c0.user - c0.system) / (t1 - t0) * 100

        measuring = {"on": False}
        done = asyncio.Event()
        states = [_Client() for _ in range(clients)]
        events = [asyncio.Event() for _ in range(clients)]
        tasks = []
        for i in range(clients):
            sym = symbols[i % len(symbols)]
            local = f"127.0.0.{2 + i // CLIENTS_PER_ADDRESS}"
            tasks.append(asyncio.create_task(_client(f"{ws_base}/ws/{sym}", local, measuring, states[i],
                                                     events[i], done)))
            if i % 20 == 19:
                await asyncio.sleep(0.05)  # a burst, not a stampede
        waiter = asyncio.gather(*(e.wait() for e in events))
        await asyncio.wait_for(waiter, 60)
        failed = [t for t in tasks if t.done()]
        if failed:
            failed[0].result()
        # Let the history messages settle, then measure.
        await asyncio.sleep(2 * cadence_s)
        dropped0 = (await http.get("/stats")).json()["frames_dropped"]
        measuring["on"] = True
        c0, t0 = server.cpu_times(), time.monotonic()
        await asyncio.sleep(seconds)
        c1, t1 = server.cpu_times(), time.monotonic()
        measuring["on"] = False
        stats = (await http.get("/stats")).json()
        done.set()
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(BaseException):
                await t
    lags = [x for s in states for x in s.lags]
    wall = t1 - t0
    return {
        "clients": clients,
        "symbols": len(symbols),
        "seconds": round(wall, 1),
        "cadence_s": cadence_s,
        "frames_delivered": sum(s.frames for s in states),
        "frames_expected": int(clients * wall / cadence_s),
        "lag_p50_ms": round(_percentile(lags, 0.50), 2),
        "lag_p99_ms": round(_percentile(lags, 0.99), 2),
        "lag_max_ms": round(max(lags), 2) if lags else float("nan"),
        "client_seq_gaps": sum(s.gaps for s in states),
        "server_frames_dropped": stats["frames_dropped"] - dropped0,
        "server_cpu_pct": round((c1.user + c1.system - c0.user - c0.system) / wall * 100, 1),
        "server_cpu_idle_pct": round(idle_cpu, 1),
        "frame_bytes": stats["frame_bytes"],
        "frame_build_ms": stats["frame_build_ms"],
    }


def bench_fanout(
    clients: int = 200,
    symbols: Sequence[str] = ("btcusdt", "ethusdt"),
    seconds: float = 60,
    cadence_s: float = 1.0,
    idle_s: float = 5.0,
) -> dict[str, Any]:
    """Start the server in a subprocess, connect ``clients`` websocket clients spread
    over ``symbols``, measure for ``seconds``; the figures (see the module doc)."""
    proc, api_url = _start_server(symbols, cadence_s, clients)
    try:
        return asyncio.run(_run_clients(api_url, proc.pid, clients, symbols, seconds, cadence_s, idle_s))
    finally:
        _stop_server(proc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fanout", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--symbols", default="btcusdt,ethusdt")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--cadence", type=float, default=1.0, help="push interval, s")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # the server subprocess
    args = parser.parse_args(argv)
    symbols = [s for s in args.symbols.split(",") if s]
    if args.serve:
        asyncio.run(_serve(symbols, args.cadence, args.clients))
        return 0
    res = bench_fanout(args.clients, symbols, args.seconds, args.cadence)
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        for key, value in res.items():
            print(f"{key:<24} {value}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
