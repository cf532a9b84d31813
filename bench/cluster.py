"""Cluster benchmark (``make bench-cluster``): what the bus costs, beside one process.

Every part is its own process on this machine, as ``make cluster`` runs them: a
NATS server (JetStream), one standalone simulated exchange, and either one process
(``--role all``, reading the same exchange through ``--sim-url``) or two ingest
shards and two API nodes. The websocket clients run in four processes spawned
by this one (``CLIENT_WORKERS``; one per 100 clients below 400), so that their own
reading does not queue up into the lags. Figures:

    bus_frames_per_s        frames published on liq.frame.* per second, counted by a
                            NATS subscriber here (the simulated market at --cadence)
    intake_frames_per_s     capacity: real frames blasted on one subject as fast as this
                            process can publish, as received and handled by an API node
    lag (one / two / single) delivery lag to websocket clients (--lag-clients of them),
                            p50 and p99: exchange event -> client (the last depth event the
                            frame shows, timed when its ingest node received it: E plus the
                            feed's measured lag), and frame built -> client (the part the
                            bus can change). A frame is built once per tick, so event ->
                            client includes the wait for the tick (up to 100 ms, the depth
                            stream's interval)
    fanout                  --clients clients spread over the two API nodes (or all on the
                            single process) at 1 frame/s: p99 lag, frames delivered
    cpu_pct, rss_mb         each process over the fan-out window (% of one core)
    history_s               a process started afresh until a client gets a history
                            message with frames: an API node reads it from the stream,
                            one process builds its first frame

    python -m bench.cluster [--clients 1000] [--lag-clients 100] [--seconds 30] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import socket
import sys
import tempfile
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
import msgspec
import orjson
import psutil
import websockets

from bus.cluster import Child
from bus.connection import flush_all
from bus.nats_server import NatsServer, free_port

CLIENTS_PER_ADDRESS = 50  # under the per-address limit (100): clients spread over 127.0.0.x
CONNECT_BATCH = 50
CLIENT_WORKERS = 4  # client processes of a run (2 a core here)
CLIENTS_PER_WORKER = 100
SYMBOLS = ("btcusdt", "ethusdt")


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return round(s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))], 2)


class Procs:
    """The processes of one run, by name."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.children: dict[str, Child] = {}
        self.pids: dict[str, int] = {}

    def start(self, name: str, cmd: list[str], ready: str, env: dict[str, str] | None = None) -> Child:
        child = Child(name, cmd, self.logs / f"{name}.log", ready, env=env)
        self.children[name] = child
        self.pids[name] = child.proc.pid
        return child

    def stop(self, names: Sequence[str] | None = None) -> None:
        for name in list(names or self.children):
            child = self.children.pop(name, None)
            if child is not None:
                child.interrupt()
                child.wait(15)
                self.pids.pop(name, None)


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def node_cmd(role: str, name: str, port: int, bus: str | None, *extra: str) -> list[str]:
    cmd = [sys.executable, "main.py", "--role", role, "--api-port", str(port), "--no-dashboard", *extra]
    if role != "api":
        cmd.append("--no-history")  # the benchmark measures the fan-out, and its nodes would share ./data
    if bus:
        cmd += ["--bus", bus, "--node", name]
    return cmd


async def wait_healthy(url: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=10) as http:
        while True:
            with contextlib.suppress(httpx.HTTPError, ValueError):
                if (await http.get(f"{url}/health")).json()["status"] == "healthy":
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} not healthy within {timeout:g} s")
            await asyncio.sleep(0.2)


async def time_to_history(ws_url: str, started: float, timeout: float = 120.0) -> tuple[float, int]:
    """Seconds from ``started`` until ``ws_url`` sends a history with frames, and how many."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            async with websockets.connect(ws_url, max_size=None, open_timeout=5) as ws:
                first = orjson.loads(await ws.recv())
                if first.get("type") == "history" and first.get("frames"):
                    return round(time.monotonic() - started, 2), len(first["frames"])
        except (OSError, websockets.exceptions.WebSocketException, TimeoutError):
            pass
        await asyncio.sleep(0.05)
    raise RuntimeError(f"no history from {ws_url} within {timeout:g} s")


class StampSync(msgspec.Struct):
    state: str


class StampFeed(msgspec.Struct):
    lag_ms: float | None = None  # the ingest node's receive time minus the exchange's E, recent mean


class Stamp(msgspec.Struct):
    """What a client reads of a frame: its times and sync state (the rest is skipped)."""

    timestamp: float
    sync: StampSync
    ts_event_ms: int | None = None
    feed: StampFeed = msgspec.field(default_factory=StampFeed)


async def _clients(jobs: Sequence[tuple[str, str]], conn: Connection) -> None:
    """One worker's clients: connect them in batches, say so, measure between the
    parent's "measure" and "stop", send the lags."""
    decoder = msgspec.json.Decoder(Stamp)
    measuring = {"on": False}
    done = asyncio.Event()
    event_lags: list[float] = []
    frame_lags: list[float] = []
    connected = [asyncio.Event() for _ in jobs]

    async def client(url: str, local: str, ready: asyncio.Event) -> None:
        async with websockets.connect(url, max_size=None, local_addr=(local, 0), open_timeout=60,
                                      compression=None) as ws:
            first = await ws.recv(decode=False)
            assert first.startswith(b'{"type":"history"'), first[:40]
            ready.set()
            while not done.is_set():
                raw = await ws.recv(decode=False)
                now = time.time()
                if not measuring["on"]:
                    continue
                frame = decoder.decode(raw)
                if frame.sync.state not in ("synced", "quiet"):
                    continue
                frame_lags.append((now - frame.timestamp) * 1000)
                if frame.ts_event_ms and frame.feed.lag_ms is not None:
                    # The event as its ingest node received it: E on the node's clock.
                    event_lags.append(now * 1000 - frame.ts_event_ms - frame.feed.lag_ms)

    tasks: list[asyncio.Task[None]] = []
    try:
        # Viewers arrive in batches, each once the previous one has its history (up to
        # 180 frames, about 1.4 MB each): a ramp, not a stampede.
        for start in range(0, len(jobs), CONNECT_BATCH):
            for i in range(start, min(len(jobs), start + CONNECT_BATCH)):
                tasks.append(asyncio.create_task(client(*jobs[i], connected[i])))
            batch = connected[start:start + CONNECT_BATCH]
            await asyncio.wait_for(asyncio.gather(*(e.wait() for e in batch)), 120)
            for t in tasks:
                if t.done():
                    t.result()
    except BaseException as exc:
        conn.send(f"error: {sum(e.is_set() for e in connected)} of {len(jobs)} connected ({exc!r})")
        raise
    conn.send("connected")
    loop = asyncio.get_running_loop()
    command: asyncio.Queue[str] = asyncio.Queue()
    loop.add_reader(conn.fileno(), lambda: command.put_nowait(conn.recv()))
    assert await command.get() == "measure"
    me = psutil.Process()
    cpu0 = me.cpu_times()
    measuring["on"] = True
    assert await command.get() == "stop"
    measuring["on"] = False
    cpu1 = me.cpu_times()
    done.set()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    conn.send({"event_lags": event_lags, "frame_lags": frame_lags,
               "cpu_s": cpu1.user + cpu1.system - cpu0.user - cpu0.system})


def _client_worker(jobs: list[tuple[str, str]], conn: Connection) -> None:
    with contextlib.suppress(BaseException):
        asyncio.run(_clients(jobs, conn))
    conn.close()


async def clients_run(ws_bases: Sequence[str], n: int, seconds: float,
                      pids: dict[str, int] | None = None) -> dict[str, Any]:
    """``n`` clients spread over ``ws_bases`` and the symbols, in worker processes
    (one Python process cannot read 1,000 frames a second without adding its own
    queueing to the lag); the lags over ``seconds``, and the CPU and RSS of ``pids``
    over that window."""
    jobs = [(f"{ws_bases[i % len(ws_bases)]}/ws/{SYMBOLS[(i // len(ws_bases)) % len(SYMBOLS)]}",
             f"127.0.0.{2 + i // CLIENTS_PER_ADDRESS}") for i in range(n)]
    workers = max(1, min(CLIENT_WORKERS, n // CLIENTS_PER_WORKER))
    ctx = multiprocessing.get_context("spawn")
    pipes = []
    procs = []
    for w in range(workers):
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_client_worker, args=(jobs[w::workers], child), daemon=True)
        proc.start()
        pipes.append(parent)
        procs.append(proc)
    try:
        for answer in await asyncio.gather(*(asyncio.to_thread(p.recv) for p in pipes)):
            if answer != "connected":
                raise RuntimeError(f"clients: {answer}")
        await asyncio.sleep(2.0)  # the history messages settle
        watched = {name: psutil.Process(pid) for name, pid in (pids or {}).items()}
        cpu0 = {name: p.cpu_times() for name, p in watched.items()}
        for p in pipes:
            p.send("measure")
        t0 = time.monotonic()
        await asyncio.sleep(seconds)
        for p in pipes:
            p.send("stop")
        wall = time.monotonic() - t0
        cpu = {name: round((p.cpu_times().user + p.cpu_times().system - cpu0[name].user - cpu0[name].system)
                           / wall * 100, 1) for name, p in watched.items()}
        rss = {name: round(p.memory_info().rss / 2**20, 1) for name, p in watched.items()}
        results = await asyncio.gather(*(asyncio.to_thread(p.recv) for p in pipes))
    finally:
        for proc in procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
    ev = [x for r in results for x in r["event_lags"]]
    fr = [x for r in results for x in r["frame_lags"]]
    return {
        "clients": n, "nodes": len(ws_bases), "seconds": round(wall, 1), "client_processes": workers,
        "frames_delivered": len(fr),
        "event_lag_p50_ms": _pct(ev, 0.5), "event_lag_p99_ms": _pct(ev, 0.99),
        "frame_lag_p50_ms": _pct(fr, 0.5), "frame_lag_p99_ms": _pct(fr, 0.99), "frame_lag_max_ms": _pct(fr, 1.0),
        "cpu_pct": cpu, "rss_mb": rss,
        "bench_clients_cpu_pct": round(sum(r["cpu_s"] for r in results) / wall * 100, 1),
    }


async def bus_rate(nats_url: str, seconds: float) -> float:
    import nats

    nc = await nats.connect(nats_url)
    count = 0

    async def on_frame(_msg: Any) -> None:
        nonlocal count
        count += 1

    await nc.subscribe("liq.frame.*", cb=on_frame)
    await asyncio.sleep(seconds)
    await nc.close()
    return round(count / seconds, 2)


async def intake_capacity(nats_url: str, api_url: str, ws_base: str, frames: int) -> dict[str, Any]:
    """Blast ``frames`` copies of a real frame on liq.frame.blastusdt; how fast the API
    node takes them in (its frames_received), and how fast this process sent them."""
    import nats

    async with websockets.connect(f"{ws_base}/ws/btcusdt", max_size=None) as ws:
        await ws.recv()  # history
        sample = await ws.recv()
    raw = sample.encode() if isinstance(sample, str) else sample
    data = raw.replace(b'"symbol":"btcusdt"', b'"symbol":"blastusdt"', 1)
    nc = await nats.connect(nats_url, pending_size=64 * 2**20)
    async with httpx.AsyncClient(timeout=10) as http:
        t0 = time.monotonic()
        for _ in range(frames):
            await nc.publish("liq.frame.blastusdt", data)
        await flush_all(nc)
        sent_s = time.monotonic() - t0
        received = 0
        last_change = time.monotonic()
        while time.monotonic() - last_change < 3.0 and received < frames:
            health = (await http.get(f"{api_url}/health")).json()
            now = health["sync"].get("blastusdt", {}).get("frames_received", 0)
            if now != received:
                received, last_change = now, time.monotonic()
            await asyncio.sleep(0.05)
        took = last_change - t0
    await nc.close()
    return {"frames_sent": frames, "frame_bytes": len(data), "publisher_frames_per_s": round(frames / sent_s),
            "api_node_received": received, "intake_frames_per_s": round(received / took) if took > 0 else None}


async def bench(args: argparse.Namespace, logs: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"clients": args.clients, "lag_clients": args.lag_clients, "seconds": args.seconds}
    nats = NatsServer(logs / "jetstream", log_file=logs / "nats.log").start()
    procs = Procs(logs)
    limit = str(max(1000, 2 * args.clients))
    env = {"LIQ_MAX_WS_CLIENTS": limit, "LIQ_MAX_CONNECTIONS": limit, "LIQ_PUSH_INTERVAL_S": str(args.cadence)}
    try:
        sim_port = free_port()
        while not port_free(sim_port + 1):  # its websockets on port + 1
            sim_port = free_port()
        sim_url = f"http://127.0.0.1:{sim_port}"
        procs.start("exchange", [sys.executable, "-m", "exchange_sim", "--port", str(sim_port), "--symbols",
                                 ",".join(SYMBOLS)], "rest_base_url").wait_ready()
        src = ["--source", "sim", "--sim-url", sim_url, "--symbols", ",".join(SYMBOLS)]

        # --- one process -----------------------------------------------------------------
        port = free_port()
        started = time.monotonic()
        procs.start("single", node_cmd("all", "single", port, None, *src), " API: http", env)
        out["single_history_s"], _ = await time_to_history(f"ws://127.0.0.1:{port}/ws/btcusdt", started)
        await wait_healthy(f"http://127.0.0.1:{port}")
        print("single process up; measuring", flush=True)
        out["single_lag"] = await clients_run([f"ws://127.0.0.1:{port}"], args.lag_clients, args.seconds,
                                              {"single": procs.pids["single"]})
        out["single_fanout"] = await clients_run([f"ws://127.0.0.1:{port}"], args.clients, args.seconds,
                                                 {"single": procs.pids["single"], "exchange": procs.pids["exchange"]})
        procs.stop(["single"])

        # --- the cluster -----------------------------------------------------------------
        for i in (1, 2):
            procs.start(f"ingest-{i}", node_cmd("ingest", f"ingest-{i}", free_port(), nats.url, *src,
                                                "--shard", f"{i}/2"), " API: http", env)
        for i in (1, 2):
            procs.children[f"ingest-{i}"].wait_ready()
        api_ports = [free_port(), free_port()]
        for i, p in enumerate(api_ports, start=1):
            procs.start(f"api-{i}", node_cmd("api", f"api-{i}", p, nats.url), " API: http", env)
        for i, p in enumerate(api_ports, start=1):
            procs.children[f"api-{i}"].wait_ready()
            await wait_healthy(f"http://127.0.0.1:{p}")
        print("cluster up; measuring", flush=True)
        apis = [f"ws://127.0.0.1:{p}" for p in api_ports]
        out["bus_frames_per_s"] = await bus_rate(nats.url, min(10.0, args.seconds))
        out["lag_one_api"] = await clients_run(apis[:1], args.lag_clients, args.seconds)
        out["lag_two_api"] = await clients_run(apis, args.lag_clients, args.seconds)
        every = dict(procs.pids)
        every["nats-server"] = nats.proc.pid if nats.proc else 0
        out["fanout_two_api"] = await clients_run(apis, args.clients, args.seconds, every)

        # --- a new API node: history from the stream ----------------------------------------
        port = free_port()
        started = time.monotonic()
        procs.start("api-3", node_cmd("api", "api-3", port, nats.url), " API: http", env)
        out["api_history_s"], out["api_history_frames"] = await time_to_history(
            f"ws://127.0.0.1:{port}/ws/btcusdt", started)
        async with httpx.AsyncClient(timeout=10) as http:
            out["api_history_read_s"] = (await http.get(f"http://127.0.0.1:{port}/health")).json()["bus"][
                "history_read_s"]
        procs.stop(["api-3"])

        out["intake"] = await intake_capacity(nats.url, f"http://127.0.0.1:{api_ports[0]}", apis[0], args.blast)
        return out
    finally:
        procs.stop([n for n in procs.children if n.startswith("api")])
        procs.stop()
        nats.stop()


def table(res: dict[str, Any]) -> str:
    rows = [("figure", "one process (--role all)", "bus: 2 ingest + 2 API nodes")]

    def lag(r: dict[str, Any]) -> str:
        return (f"{r['event_lag_p50_ms']} / {r['event_lag_p99_ms']} ms (built->client {r['frame_lag_p50_ms']} / "
                f"{r['frame_lag_p99_ms']})")

    rows.append(("frames through the bus /s (market at cadence)", "-", f"{res['bus_frames_per_s']}"))
    intake = res["intake"]
    rows.append((f"API node intake, {intake['frame_bytes']} B frames /s", "-",
                 f"{intake['intake_frames_per_s']} ({intake['api_node_received']} of {intake['frames_sent']}; "
                 f"this publisher {intake['publisher_frames_per_s']}/s)"))
    rows.append((f"lag event->client p50/p99, {res['lag_clients']} clients, 1 API node", lag(res["single_lag"]),
                 lag(res["lag_one_api"])))
    rows.append(("the same over 2 API nodes", "-", lag(res["lag_two_api"])))
    s, c = res["single_fanout"], res["fanout_two_api"]
    rows.append((f"{res['clients']} clients at 1 frame/s: lag p50/p99", lag(s), lag(c)))
    rows.append(("  frames delivered (max built->client lag)", f"{s['frames_delivered']} ({s['frame_lag_max_ms']} ms)",
                 f"{c['frames_delivered']} ({c['frame_lag_max_ms']} ms)"))
    for name in sorted(set(s["cpu_pct"]) | set(c["cpu_pct"])):
        rows.append((f"  {name}: CPU % of a core / RSS MB",
                     f"{s['cpu_pct'][name]} / {s['rss_mb'][name]}" if name in s["cpu_pct"] else "-",
                     f"{c['cpu_pct'][name]} / {c['rss_mb'][name]}" if name in c["cpu_pct"] else "-"))
    rows.append((f"  the clients ({c['client_processes']} processes): CPU %", str(s["bench_clients_cpu_pct"]),
                 str(c["bench_clients_cpu_pct"])))
    rows.append(("start -> history with frames", f"{res['single_history_s']} s (first frame)",
                 f"{res['api_history_s']} s ({res['api_history_frames']} frames; stream read "
                 f"{res['api_history_read_s']} s)"))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [" | ".join(cell.ljust(widths[i]) for i, cell in enumerate(r)) for r in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cluster", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=1000, help="fan-out clients (default 1000)")
    parser.add_argument("--lag-clients", type=int, default=100, help="clients of the lag runs (default 100)")
    parser.add_argument("--seconds", type=float, default=30, help="each measuring window (default 30)")
    parser.add_argument("--cadence", type=float, default=1.0, help="push interval of every node, s")
    parser.add_argument("--blast", type=int, default=10_000, help="frames of the intake capacity run")
    parser.add_argument("--json", default=str(Path(__file__).parent / "results" / "cluster.json"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="liq-bench-cluster-") as tmp:
        res = asyncio.run(bench(args, Path(tmp)))
    res["machine"] = {"cores": os.cpu_count(), "date": time.strftime("%Y-%m-%d"),
                      "python": sys.version.split()[0], "load_avg_1m": round(os.getloadavg()[0], 2)}
    print(table(res))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(res, indent=2))
    print(f"written: {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
