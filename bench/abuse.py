"""``make abuse``: the serving side under abuse, one scenario per item of issue 12.

Each scenario starts ``python main.py --source sim --cadence 1`` in its own process
(free loopback ports, its log in ``bench/results/abuse-logs/``, the descriptor soft
limit at 1,024 as on the machine where the issue was measured), lets it settle,
attacks it in bounded loops on loopback only, and watches it all along from a
separate process: an honest ``/ws/btcusdt`` reader, an honest ``/health`` poller
(10 a second) and the server's RSS and thread count. One table, a row per scenario,
every figure against its target:

- RSS before / peak / after: "after" is sampled for up to 30 s once the attack is
  over, until it is within 10 % of "before"; the seconds that took are shown;
- the longest gap between frames at the honest reader (1 frame/s): at most 1.5 s;
- ``/health`` latency p50 / p99 during the attack (a failed request counts as 5 s):
  p99 at most 250 ms;
- resyncs caused (``/health`` before and after): none;
- the scenario's own limit held (each scenario's docstring says what that means).

Attackers bind source addresses 127.0.0.2 and up (the whole of 127/8 is loopback)
so that the per-address websocket limit does not hide a missing global one; the
honest clients use 127.0.0.1.

The two crowd scenarios (stalled-ws, reading-ws) attack a server whose 180 s
buffers are full (``--warm``, 200 s by default), so that the RSS after the attack
is compared with a steady one.

    python -m bench.abuse [--only NAME[,NAME]] [--scale 0.1] [--warm S] [--list] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import psutil
import websockets

from config import Settings

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"

# Targets (issue 12, on a 2-core machine).
GAP_TARGET_S = 1.5
HEALTH_P99_TARGET_MS = 250.0
RSS_BACK_WITHIN = 0.10
RSS_BACK_DEADLINE_S = 30.0

NOFILE_SOFT = 1024  # the server's descriptor soft limit, as where the issue was measured
HEALTH_TIMEOUT_S = 5.0  # a /health request that fails counts as this long
HEALTH_EVERY_S = 0.1
SETTLE_S = 3.0  # baseline RSS is the median over this window just before the attack
WATCH_AFTER_S = 3.0  # frames and RSS are watched at least this long after an attack
READY_CEILING_S = 90.0
# The crowd scenarios take their baseline once the server's frame and trade buffers
# (Settings.buffer_seconds, 180 s) are full: before that the RSS of a server with no
# client at all climbs (118 to 130 MB between its 10th and 120th second), which an
# "after" 60 s later would charge to the attack.
BUFFERS_FULL_S = Settings().buffer_seconds + 20.0
PER_ADDRESS = 90  # attackers per source address, under the default per-address limit of 100


# --- the server under test -----------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``python main.py --source sim --cadence 1`` in its own process, its log in a file."""

    def __init__(self, log_path: Path, nofile_soft: int, env: dict[str, str] | None = None) -> None:
        self.api_port, self.dash_port = free_port(), free_port()
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()

        def limit_descriptors() -> None:
            _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(nofile_soft, hard), hard))

        self.proc = subprocess.Popen(
            [sys.executable, "main.py", "--source", "sim", "--cadence", "1", "--api-port", str(self.api_port),
             "--dash-port", str(self.dash_port), "--log-level", "info"],
            cwd=REPO, stdout=self._log, stderr=subprocess.STDOUT, preexec_fn=limit_descriptors,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
        self.pid = self.proc.pid
        self.api = f"http://127.0.0.1:{self.api_port}"
        self.dash = f"http://127.0.0.1:{self.dash_port}"

    def rss_mb(self) -> float:
        return float(psutil.Process(self.pid).memory_info().rss) / 2**20

    def uptime_s(self) -> float:
        return time.time() - psutil.Process(self.pid).create_time()

    def log_size(self) -> int:
        return self.log_path.stat().st_size

    def log_since(self, offset: int) -> str:
        with open(self.log_path, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")

    async def wait_ready(self, http: httpx.AsyncClient) -> None:
        """Until /health says every book is in sync and the dashboard answers."""
        deadline = time.monotonic() + READY_CEILING_S
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with code {self.proc.returncode}; see {self.log_path}")
            try:
                h = (await http.get(f"{self.api}/health")).json()
                if h["status"] == "healthy" and (await http.get(f"{self.dash}/")).status_code == 200:
                    return
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server was not healthy within {READY_CEILING_S:.0f} s; see {self.log_path}")
            await asyncio.sleep(0.5)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


async def resyncs(http: httpx.AsyncClient, api: str) -> int | None:
    """Resyncs of every symbol so far, from /health (None if it does not answer within 30 s)."""
    deadline = time.monotonic() + 30.0
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
            h = (await http.get(f"{api}/health")).json()
            return sum(int(m["resyncs"]) for m in h["monitoring"].values())
        await asyncio.sleep(0.5)
    return None


# --- the honest observer, in its own process ---------------------------------------------


async def observe(api_port: int, pid: int) -> dict[str, Any]:
    """Read /ws/btcusdt, poll /health and sample the server's RSS until SIGTERM; print
    "ready" once the first frame is in, then the samples as one JSON line."""
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    frames: list[float] = []
    health: list[tuple[float, float, str]] = []  # (start, latency ms, status or error)
    rss: list[tuple[float, float, int]] = []  # (time, MB, threads)
    reconnects = 0
    proc = psutil.Process(pid)

    async def reader() -> None:
        nonlocal reconnects
        while not stop.is_set():
            try:
                async with websockets.connect(f"ws://127.0.0.1:{api_port}/ws/btcusdt", max_size=None,
                                              open_timeout=HEALTH_TIMEOUT_S) as ws:
                    async for msg in ws:
                        if isinstance(msg, str) and msg.startswith('{"type":"frame"'):
                            if not frames:
                                print("ready", flush=True)
                            frames.append(time.monotonic())
            except (OSError, TimeoutError, websockets.WebSocketException):
                pass
            reconnects += 1
            await asyncio.sleep(0.2)

    async def poller() -> None:
        async with httpx.AsyncClient(timeout=HEALTH_TIMEOUT_S) as http:
            while not stop.is_set():
                t0 = time.monotonic()
                try:
                    status = str((await http.get(f"http://127.0.0.1:{api_port}/health")).status_code)
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                health.append((t0, 1000 * (time.monotonic() - t0), status))
                await asyncio.sleep(max(0.0, HEALTH_EVERY_S - (time.monotonic() - t0)))

    async def sampler() -> None:
        while not stop.is_set():
            with contextlib.suppress(psutil.Error):
                rss.append((time.monotonic(), proc.memory_info().rss / 2**20, proc.num_threads()))
            await asyncio.sleep(0.2)

    tasks = [asyncio.create_task(t()) for t in (reader, poller, sampler)]
    await stop.wait()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {"frames": frames, "health": health, "rss": rss, "reconnects": reconnects}


class Observer:
    """The observer process (``python -m bench.abuse --observe API_PORT PID``)."""

    def __init__(self, server: Server) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.abuse", "--observe", str(server.api_port), str(server.pid)],
            cwd=REPO, stdout=subprocess.PIPE, text=True,
        )

    async def ready(self) -> None:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(self.proc.stdout.readline), READY_CEILING_S)
        if line.strip() != "ready":
            raise RuntimeError(f"the observer did not start: {line!r}")

    def stop(self) -> dict[str, Any]:
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=30)
        return dict(json.loads(out.strip().splitlines()[-1]))


# --- raw websocket and TCP clients --------------------------------------------------------


def sources(n: int, first: int = 2, per_address: int = PER_ADDRESS) -> list[str]:
    """Loopback source addresses for ``n`` attackers, ``per_address`` each."""
    return [f"127.0.0.{first + i // per_address}" for i in range(n)]


async def tcp_connect(port: int, source: str = "127.0.0.1", rcvbuf: int | None = None,
                      timeout: float = 10.0) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.bind((source, 0))
        sock.setblocking(False)
        await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port)), timeout)
        return await asyncio.open_connection(sock=sock)
    except BaseException:
        sock.close()
        raise


@dataclass
class RawWs:
    """A websocket client that speaks the protocol by hand, to misbehave at will."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    status: int  # of the handshake response; 0 when there was none
    head: bytes

    def close(self) -> None:
        self.writer.transport.abort()

    async def next_frame(self) -> tuple[int, bytes]:
        """(opcode, payload) of the server's next frame; IncompleteReadError at EOF."""
        b0, b1 = await self.reader.readexactly(2)
        n = b1 & 0x7F
        if n == 126:
            n = int.from_bytes(await self.reader.readexactly(2), "big")
        elif n == 127:
            n = int.from_bytes(await self.reader.readexactly(8), "big")
        if b1 & 0x80:
            await self.reader.readexactly(4)
        return b0 & 0x0F, await self.reader.readexactly(n)

    async def outcome(self, within: float) -> str:
        """How the server ended this connection within ``within`` s: "1008" (a close
        code), "closed" (EOF or reset without a close frame), or "open"."""
        try:
            async with asyncio.timeout(within):
                while True:
                    opcode, payload = await self.next_frame()
                    if opcode == 8:
                        return str(int.from_bytes(payload[:2], "big")) if len(payload) >= 2 else "closed"
        except TimeoutError:
            return "open"
        except (asyncio.IncompleteReadError, OSError):
            return "closed"


async def open_ws(port: int, path: str, headers: Sequence[tuple[str, str]] = (), source: str = "127.0.0.1",
                  rcvbuf: int | None = None, timeout: float = 10.0) -> RawWs:
    """Connect and send an upgrade request for ``path`` (sent as given: quote it first)."""
    reader, writer = await tcp_connect(port, source, rcvbuf, timeout)
    key = base64.b64encode(os.urandom(16)).decode()
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers)
    writer.write((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n").encode())
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        status = int(head.split(b" ", 2)[1])
    except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError, ValueError, IndexError):
        head, status = b"", 0
    return RawWs(reader, writer, status, head)


def client_frame(payload: bytes, opcode: int = 1) -> bytes:
    """One masked client frame (payload under 126 bytes)."""
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked


async def gather_bounded(factories: Sequence[Callable[[], Awaitable[Any]]], concurrency: int = 200) -> list[Any]:
    """Run the coroutines ``factories`` make, at most ``concurrency`` at once; exceptions are returned."""
    gate = asyncio.Semaphore(concurrency)

    async def one(make: Callable[[], Awaitable[Any]]) -> Any:
        async with gate:
            return await make()

    return list(await asyncio.gather(*(one(f) for f in factories), return_exceptions=True))


async def read_until_closed(reader: asyncio.StreamReader, within: float) -> tuple[bytes, float | None]:
    """What the server sends until it closes (and after how many seconds), or None if
    it is still open after ``within`` s."""
    t0 = time.monotonic()
    data = b""
    try:
        async with asyncio.timeout(within):
            while chunk := await reader.read(65536):
                data += chunk[: max(0, 4096 - len(data))]
    except TimeoutError:
        return data, None
    except OSError:
        pass
    return data, time.monotonic() - t0


# --- scenarios ---------------------------------------------------------------------------------


@dataclass
class Context:
    server: Server
    http: httpx.AsyncClient
    scale: float
    rss_before_mb: float
    threads_before: int
    clients_before: int = 0  # websocket clients before the attack: the honest reader

    def count(self, n: int) -> int:
        return max(1, round(n * self.scale))

    async def clients(self) -> int | None:
        with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
            return int((await self.http.get(f"{self.server.api}/stats")).json()["clients"])
        return None


@dataclass
class Verdict:
    held: bool
    detail: str


async def stalled_readers(ctx: Context) -> Verdict:
    """300 clients complete the /ws/btcusdt handshake with 4 KB receive buffers and never
    read, held up to 30 s. Holds when the server closes every one of them (1008 or 1013, or
    drops the connection) and its client count is back to what it was, within the hold."""
    n = ctx.count(300)
    made = await gather_bounded([partial(open_ws, ctx.server.api_port, "/ws/btcusdt", source=s, rcvbuf=4096)
                                 for s in sources(n)])
    clients = [c for c in made if isinstance(c, RawWs)]
    accepted = [c for c in clients if c.status == 101]
    peak = 0
    back_after: float | None = None
    t0 = time.monotonic()
    while time.monotonic() - t0 < 30.0:
        count = await ctx.clients()
        if count is not None:
            peak = max(peak, count)
            if count <= ctx.clients_before:
                back_after = time.monotonic() - t0
                break
        await asyncio.sleep(0.5)
    outcomes = await asyncio.gather(*(c.outcome(5.0) for c in accepted))
    for c in clients:
        c.close()
    codes = {k: outcomes.count(k) for k in sorted(set(outcomes))}
    closed = sum(v for k, v in codes.items() if k in ("1008", "1013", "closed"))
    held = bool(accepted) and closed == len(accepted) and back_after is not None
    back = f"back to {ctx.clients_before} after {back_after:.0f} s" if back_after is not None else "never back"
    return Verdict(held, f"{len(accepted)}/{n} handshaken; ended by the server: {closed} ({codes}); "
                         f"clients {peak} at most, {back}")


async def reading_clients(ctx: Context) -> Verdict:
    """400 clients read /ws/btcusdt (history, then frames) for 20 s, once the history
    message is at least 300 KB. Holds when the server's memory per client, (RSS with them
    all connected - before) / clients, stays under 128 KB: kilobytes, not a history each."""
    n = ctx.count(400)
    stop = asyncio.Event()
    got_history: list[int] = []

    async def reader(source: str) -> None:
        async with websockets.connect(f"ws://127.0.0.1:{ctx.server.api_port}/ws/btcusdt", max_size=None,
                                      open_timeout=30, local_addr=(source, 0)) as ws:
            got_history.append(len(await ws.recv()))
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ws.recv(), 1.0)

    tasks = [asyncio.create_task(reader(s)) for s in sources(n)]
    t0 = time.monotonic()
    while len(got_history) < n and time.monotonic() - t0 < 60 and not all(t.done() for t in tasks):
        await asyncio.sleep(0.2)
    peak = ctx.server.rss_mb()
    t1 = time.monotonic()
    while time.monotonic() - t1 < 20.0:
        peak = max(peak, ctx.server.rss_mb())
        await asyncio.sleep(0.25)
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    connected = len(got_history)
    per_client_kb = 1024 * (peak - ctx.rss_before_mb) / max(1, connected)
    history_kb = statistics.median(got_history) / 1024 if got_history else 0.0
    held = connected == n and per_client_kb < 128
    return Verdict(held, f"{connected}/{n} reading; history {history_kb:.0f} KB each; "
                         f"server +{peak - ctx.rss_before_mb:.0f} MB = {per_client_kb:.0f} KB a client")


async def idle_connections(ctx: Context) -> Verdict:
    """1,100 TCP connections to the API port that never send a byte, against a descriptor
    soft limit of 1,024 (both scaled with --scale, never under 256), held up to 30 s. Holds
    when the server closes every one (an idle timeout, or refused over a connection cap)
    within the hold and its log grows by less than 1 MB (no accept traceback per attempt)."""
    n = round(nofile_soft(ctx.scale) * 1100 / 1024)
    log_at = ctx.server.log_size()
    made = await gather_bounded([partial(tcp_connect, ctx.server.api_port, s, timeout=10.0)
                                 for s in sources(n, per_address=100)], concurrency=300)
    conns = [c for c in made if isinstance(c, tuple)]
    ends = await asyncio.gather(*(read_until_closed(r, 30.0) for r, _w in conns))
    for _r, w in conns:
        w.transport.abort()
    closed = [t for _d, t in ends if t is not None]
    refused_fast = sum(1 for t in closed if t < 1.0)
    log = ctx.server.log_since(log_at)
    grew_mb = len(log.encode()) / 2**20
    emfile = log.count("Too many open files")
    held = len(closed) == len(conns) and grew_mb < 1.0
    slowest = f", the last after {max(closed):.1f} s" if closed else ""
    return Verdict(held, f"{len(conns)}/{n} connected; closed by the server {len(closed)} ({refused_fast} within "
                         f"1 s{slowest}); log +{grew_mb:.2f} MB, 'Too many open files' x{emfile}")


async def dashboard_burst(ctx: Context) -> Verdict:
    """1,000 connections to the dashboard port held 3 s, then 2,000 half-open requests (a
    head that never ends) held until the server closes them (at most 20 s). Holds when the
    server's thread count never grows by more than 4, the held connections over the
    connection cap are answered (503) or closed within the 3 s, every half-open request is
    closed within the hold, and the page loads for an honest client afterwards."""
    port = ctx.server.dash_port
    threads_peak = ctx.threads_before
    stop_sampling = asyncio.Event()

    async def sample_threads() -> None:
        nonlocal threads_peak
        proc = psutil.Process(ctx.server.pid)
        while not stop_sampling.is_set():
            with contextlib.suppress(psutil.Error):
                threads_peak = max(threads_peak, proc.num_threads())
            await asyncio.sleep(0.1)

    sampler = asyncio.create_task(sample_threads())
    n_held, n_half = ctx.count(1000), ctx.count(2000)
    made = await gather_bounded([partial(tcp_connect, port, s) for s in sources(n_held, per_address=250)], 300)
    held_conns = [c for c in made if isinstance(c, tuple)]
    answers = [asyncio.create_task(r.read(1)) for r, _w in held_conns]  # done: answered (503) or closed
    await asyncio.sleep(3.0)
    answered = sum(1 for a in answers if a.done())
    for a in answers:
        a.cancel()
    for _r, w in held_conns:
        w.transport.abort()

    async def half_open(source: str) -> float | None:
        r, w = await tcp_connect(port, source)
        try:
            w.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: abuse\r\n")
            _data, after = await read_until_closed(r, 20.0)
            return after
        finally:
            w.transport.abort()

    ends = await gather_bounded([partial(half_open, s) for s in sources(n_half, per_address=250)], 2100)
    closed = sum(1 for e in ends if isinstance(e, float))
    stop_sampling.set()
    await sampler
    page = (await ctx.http.get(f"{ctx.server.dash}/")).status_code
    grew = threads_peak - ctx.threads_before
    over_cap = max(0, len(held_conns) - Settings().dash_max_connections)
    held = grew <= 4 and answered >= over_cap and closed == n_half and page == 200
    return Verdict(held, f"{len(held_conns)}/{n_held} held ({answered} answered or closed within 3 s); "
                         f"half-open closed {closed}/{n_half}; threads +{grew}; page afterwards {page}")


async def message_flood(ctx: Context) -> Verdict:
    """Clients of /ws/btcusdt sending small text messages as fast as they can: one for 10 s,
    then four at once for 10 s. Holds when every flooder is closed with 1008 within its phase."""

    async def flooder(source: str, seconds: float) -> tuple[str, int, float]:
        ws = await open_ws(ctx.server.api_port, "/ws/btcusdt", source=source)
        if ws.status != 101:
            ws.close()
            return f"http {ws.status}", 0, 0.0
        batch = client_frame(b"x") * 256
        sent = 0
        t0 = time.monotonic()
        ending = asyncio.create_task(ws.outcome(seconds + 5.0))
        try:
            while time.monotonic() - t0 < seconds and not ending.done():
                ws.writer.write(batch)
                await ws.writer.drain()
                await asyncio.sleep(0)  # let the server's close frame be read
                sent += 256
        except OSError:
            pass
        elapsed = time.monotonic() - t0
        if not ending.done():  # the phase is over and the server has not closed it
            ending.cancel()
            ws.close()
            return "open", sent, elapsed
        return await ending, sent, elapsed

    phases = []
    for k in (1, 4):
        results = await asyncio.gather(*(flooder(f"127.0.0.{2 + i}", 10.0) for i in range(k)),
                                       return_exceptions=True)
        phases.append((k, [r if isinstance(r, tuple) else (type(r).__name__, 0, 0.0) for r in results]))
    held = all(code == "1008" for _k, rs in phases for code, _s, _t in rs)
    parts = []
    for k, rs in phases:
        rate = sum(s for _c, s, _t in rs) / max(1e-9, max(t for _c, _s, t in rs))
        parts.append(f"{k} flooder(s): {rate / 1000:.0f}k msgs/s sent, ended {[c for c, _s, _t in rs]}")
    return Verdict(held, "; ".join(parts))


BAD_SYMBOLS = {  # label: the symbol in the path
    "\u00e9 x60": quote("\u00e9" * 60, safe=""),
    "\u20ac x50": quote("\u20ac" * 50, safe=""),
    "emoji x40": quote("\U0001f600" * 40, safe=""),
    "a x300": "a" * 300,
    "btc\u00e9usdt x20": quote("btc\u00e9usdt" * 20, safe=""),
    "%C3 (cut UTF-8)": "%C3",
}


async def long_symbol(ctx: Context) -> Verdict:
    """Websocket handshakes on /ws/ + a long multibyte or otherwise bad symbol ("é" x 60,
    "€" x 50, emoji, "a" x 300, a truncated UTF-8 escape), 20 rounds. Holds when every one is
    closed with 1008 (or refused with a 4xx before the upgrade), never a 500 or silence."""
    rounds = ctx.count(20)
    results: dict[str, dict[str, int]] = {label: {} for label in BAD_SYMBOLS}
    for _ in range(rounds):
        for label, sym in BAD_SYMBOLS.items():
            ws = await open_ws(ctx.server.api_port, "/ws/" + sym, source="127.0.0.2")
            if ws.status == 101:
                outcome = await ws.outcome(5.0)
            else:
                outcome = f"http {ws.status}" if ws.status else "no answer"
            ws.close()
            results[label][outcome] = results[label].get(outcome, 0) + 1
    held = all(k == "1008" or k.startswith("http 4") for seen in results.values() for k in seen)
    shown = ", ".join(f"{label}: {seen}" for label, seen in results.items())
    return Verdict(held, f"{rounds * len(BAD_SYMBOLS)} handshakes; {shown}")


async def forwarded_spoof(ctx: Context) -> Verdict:
    """150 websocket clients of /ws/btcusdt from 127.0.0.1 (the per-address limit + 50; at a
    smaller --scale, + 10 at least), each with a different X-Forwarded-For: uvicorn trusts
    forwarded headers from 127.0.0.1 unless told otherwise. Holds when no more are accepted
    than the per-address limit leaves beside the honest reader, also on 127.0.0.1."""
    limit = int((await ctx.http.get(f"{ctx.server.api}/stats")).json()["limits"]["max_clients_per_address"])
    n = limit + max(10, ctx.count(50))
    open_ones: list[RawWs] = []
    accepted = refused = other = 0
    for i in range(n):
        ws = await open_ws(ctx.server.api_port, "/ws/btcusdt", source="127.0.0.1",
                           headers=[("X-Forwarded-For", f"10.1.{i // 250}.{i % 250 + 1}")])
        open_ones.append(ws)
        if ws.status != 101:
            other += 1
            continue
        try:
            opcode, payload = await asyncio.wait_for(ws.next_frame(), 10.0)
        except (TimeoutError, asyncio.IncompleteReadError, OSError):
            other += 1
            continue
        if opcode == 8:
            refused += 1
        else:
            accepted += 1
    for ws in open_ones:
        ws.close()
    room = limit - ctx.clients_before
    held = accepted <= room
    return Verdict(held, f"{n} spoofed: accepted {accepted} (room for {room}: limit {limit} an address, "
                         f"{ctx.clients_before} honest), refused {refused}, other {other}")


async def foreign_origin(ctx: Context) -> Verdict:
    """200 websocket handshakes and 200 REST requests (GET /health and CORS preflights)
    with Origin: https://evil.example; the dashboard's own origin as the control. Holds when
    every foreign handshake gets 403, no REST answer grants the foreign origin (or *), and
    the dashboard's origin is still allowed on /ws and on REST."""
    n = ctx.count(200)
    evil, own = "https://evil.example", f"http://127.0.0.1:{ctx.server.dash_port}"
    ws_status: dict[int, int] = {}
    for _ in range(n):
        ws = await open_ws(ctx.server.api_port, "/ws/btcusdt", headers=[("Origin", evil)], source="127.0.0.2")
        ws_status[ws.status] = ws_status.get(ws.status, 0) + 1
        ws.close()
    granted = 0
    for i in range(n):
        if i % 2:
            resp = await ctx.http.get(f"{ctx.server.api}/health", headers={"Origin": evil})
        else:
            resp = await ctx.http.options(f"{ctx.server.api}/health", headers={
                "Origin": evil, "Access-Control-Request-Method": "GET"})
        if resp.headers.get("access-control-allow-origin") in ("*", evil):
            granted += 1
    own_ws = await open_ws(ctx.server.api_port, "/ws/btcusdt", headers=[("Origin", own)], source="127.0.0.2")
    own_ws.close()
    own_rest = (await ctx.http.get(f"{ctx.server.api}/health", headers={"Origin": own})).headers.get(
        "access-control-allow-origin")
    held = ws_status == {403: n} and granted == 0 and own_ws.status == 101 and own_rest in (own, "*")
    return Verdict(held, f"foreign /ws handshakes {ws_status}; foreign REST answers granting it {granted}/{n}; "
                         f"own origin: /ws {own_ws.status}, REST allow-origin {own_rest!r}")


NUMBER_CASES = [  # (path and query, must be 4xx)
    ("/simulate/btcusdt?side=buy&size=1_000", True),
    ("/simulate/btcusdt?side=buy&size=" + quote("\u0661\u0660"), True),  # Arabic-Indic 10
    ("/simulate/btcusdt?side=buy&size=" + quote("\uff11"), True),  # fullwidth 1
    ("/simulate/btcusdt?side=buy&size=" + quote("\u0967"), True),  # Devanagari 1
    ("/simulate/btcusdt?side=buy&sizes=1,1_0", True),
    ("/book/btcusdt?depth=1_0", True),
    ("/book/btcusdt?depth=" + quote("\u0661"), True),
    ("/simulate/btcusdt?side=buy&size=1e0", False),  # controls: plain and exponent notation
    ("/simulate/btcusdt?side=buy&size=0.5", False),
]
DASH_BAD = [  # (method, path, body, content type)
    ("POST", "/_dash-update-component", b"{not json", "application/json"),
    ("POST", "/_dash-update-component", b"[]", "application/json"),
    ("POST", "/_dash-update-component", b"{}", "application/json"),
    ("POST", "/_dash-update-component", b'{"output": "nope.data", "inputs": []}', "application/json"),
    ("POST", "/_dash-update-component", b'{"output": "x"}', "text/plain"),
    ("GET", "/_dash-component-suites/dash/nothere.js", b"", ""),
    ("GET", "/_dash-component-suites/nopkg/x.js", b"", ""),
]


async def bad_input(ctx: Context) -> Verdict:
    """20 rounds of: a websocket upgrade on a 9 KB path (answered 414, or closed, within
    5 s: not silence), numbers that are not plain decimal or exponent notation (size=1_000,
    sizes=1,1_0, depth=1_0, Arabic-Indic, fullwidth, Devanagari digits: 4xx; 1e0 and 0.5 as
    controls: 200), and bad requests to the Dash endpoints (4xx). Holds when every answer
    is as said and the server logs no traceback meanwhile."""
    rounds = ctx.count(20)
    log_at = ctx.server.log_size()
    long_path: dict[str, int] = {}
    numbers_wrong: list[str] = []
    dash_wrong: list[str] = []
    for _ in range(rounds):
        ws = await open_ws(ctx.server.api_port, "/ws/" + "a" * 9000, source="127.0.0.2", timeout=5.0)
        if ws.status == 101:
            key = await ws.outcome(5.0)
        elif ws.status:
            key = f"http {ws.status}"
        else:
            _data, after = await read_until_closed(ws.reader, 0.1)  # the head wait already took 5 s
            key = "closed" if after is not None else "no answer, open"
        ws.close()
        long_path[key] = long_path.get(key, 0) + 1
        for path, must_refuse in NUMBER_CASES:
            code = (await ctx.http.get(ctx.server.api + path)).status_code
            if (400 <= code < 500) != must_refuse:
                numbers_wrong.append(f"{path.split('?')[1]} -> {code}")
        for method, path, body, ctype in DASH_BAD:
            headers = {"Content-Type": ctype} if ctype else {}
            code = (await ctx.http.request(method, ctx.server.dash + path, content=body, headers=headers)).status_code
            if not 400 <= code < 500:
                dash_wrong.append(f"{method} {path} -> {code}")
    tracebacks = ctx.server.log_since(log_at).count("Traceback")
    long_ok = all(k in ("1008", "closed") or k.startswith("http 4") for k in long_path)
    held = long_ok and not numbers_wrong and not dash_wrong and tracebacks == 0
    return Verdict(held, f"long /ws path {long_path}; numbers wrong {sorted(set(numbers_wrong)) or 'none'}; "
                         f"Dash not 4xx {sorted(set(dash_wrong)) or 'none'}; tracebacks in the log {tracebacks}")


@dataclass(frozen=True)
class Scenario:
    name: str
    item: int  # of issue 12
    attack: Callable[[Context], Awaitable[Verdict]]
    min_history_bytes: int = 0  # wait until a new client's history message is this large
    warm: bool = False  # take the baseline once the server's buffers are full (BUFFERS_FULL_S)


SCENARIOS = [
    Scenario("stalled-ws", 1, stalled_readers, warm=True),
    Scenario("reading-ws", 2, reading_clients, min_history_bytes=300_000, warm=True),
    Scenario("idle-tcp", 3, idle_connections),
    Scenario("dash-burst", 4, dashboard_burst),
    Scenario("ws-flood", 5, message_flood),
    Scenario("long-symbol", 6, long_symbol),
    Scenario("xff-spoof", 7, forwarded_spoof),
    Scenario("foreign-origin", 8, foreign_origin),
    Scenario("bad-input", 9, bad_input),
]


def nofile_soft(scale: float) -> int:
    return max(256, round(NOFILE_SOFT * min(1.0, scale)))


# --- one scenario, measured ----------------------------------------------------------------


@dataclass
class Row:
    name: str
    item: int
    rss_before_mb: float = 0.0
    rss_peak_mb: float = 0.0
    rss_after_mb: float = 0.0
    rss_after_s: float | None = None  # None: not back within the deadline
    gap_s: float | None = None
    health_p50_ms: float | None = None
    health_p99_ms: float | None = None
    health_failed: int = 0
    resyncs: int | None = None
    held: bool = False
    detail: str = ""
    reader_reconnects: int = 0
    attack_s: float = 0.0
    error: str = ""
    passed: dict[str, bool] = field(default_factory=dict)

    def judge(self) -> None:
        self.passed = {
            "rss": self.rss_after_s is not None,
            "gap": self.gap_s is not None and self.gap_s <= GAP_TARGET_S,
            "health": self.health_p99_ms is not None and self.health_p99_ms <= HEALTH_P99_TARGET_MS,
            "resyncs": self.resyncs == 0,
            "limit": self.held,
        }

    @property
    def ok(self) -> bool:
        return not self.error and all(self.passed.values())


def longest_gap(frames: Sequence[float], start: float, end: float) -> float | None:
    """The longest time without a frame over [start, end] (None: no frame at all)."""
    before = [t for t in frames if t < start]
    inside = [t for t in frames if start <= t <= end]
    points = ([before[-1]] if before else []) + inside
    if not points:
        return None
    gaps = [b - a for a, b in zip(points, points[1:], strict=False)]
    gaps.append(end - points[-1])
    if not before:
        gaps.append(points[0] - start)
    return max(gaps)


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def run_scenario(sc: Scenario, scale: float, log_dir: Path, warm_s: float = BUFFERS_FULL_S) -> Row:
    row = Row(sc.name, sc.item)
    server = Server(log_dir / f"{sc.name}.log", nofile_soft(scale))
    observer: Observer | None = None
    try:
        async with httpx.AsyncClient(timeout=HEALTH_TIMEOUT_S) as http:
            await server.wait_ready(http)
            if sc.min_history_bytes:
                await wait_for_history(server, sc.min_history_bytes)
            if sc.warm:
                await asyncio.sleep(max(0.0, warm_s - server.uptime_s()))
            observer = Observer(server)
            await observer.ready()
            samples = []
            for _ in range(round(SETTLE_S / 0.25)):
                samples.append(server.rss_mb())
                await asyncio.sleep(0.25)
            before = statistics.median(samples)
            ctx = Context(server, http, scale, before, psutil.Process(server.pid).num_threads())
            ctx.clients_before = await ctx.clients() or 0
            resyncs_before = await resyncs(http, server.api)
            t_attack = time.monotonic()
            verdict = await sc.attack(ctx)
            t_end = time.monotonic()
            t_watched = t_end + WATCH_AFTER_S
            after, after_s = before, None
            while time.monotonic() - t_end < RSS_BACK_DEADLINE_S:
                after = server.rss_mb()
                if after <= before * (1 + RSS_BACK_WITHIN):
                    after_s = time.monotonic() - t_end
                    break
                await asyncio.sleep(0.5)
            await asyncio.sleep(max(0.0, t_watched - time.monotonic()))
            t_recovered = time.monotonic()
            resyncs_after = await resyncs(http, server.api)
        seen = observer.stop()
        observer = None
        rss_in = [mb for t, mb, _threads in seen["rss"] if t_attack <= t <= t_recovered]
        during = [(lat, status) for t, lat, status in seen["health"] if t_attack <= t <= t_end]
        latencies = [lat if status == "200" else HEALTH_TIMEOUT_S * 1000 for lat, status in during]
        row.rss_before_mb, row.rss_peak_mb = before, max([before, after, *rss_in])
        row.rss_after_mb, row.rss_after_s = after, after_s
        row.gap_s = longest_gap(seen["frames"], t_attack, t_recovered)
        if latencies:
            row.health_p50_ms, row.health_p99_ms = percentile(latencies, 0.5), percentile(latencies, 0.99)
        row.health_failed = sum(1 for _lat, status in during if status != "200")
        row.resyncs = (resyncs_after - resyncs_before
                       if resyncs_after is not None and resyncs_before is not None else None)
        row.held, row.detail = verdict.held, verdict.detail
        row.reader_reconnects = int(seen["reconnects"])
        row.attack_s = t_end - t_attack
    except Exception as exc:  # one scenario's failure is a row, not the end of the run
        row.error = f"{type(exc).__name__}: {exc}"
    finally:
        if observer is not None:
            with contextlib.suppress(Exception):
                observer.stop()
        server.stop()
    row.judge()
    return row


async def wait_for_history(server: Server, min_bytes: int) -> None:
    """Until a new /ws/btcusdt client's first message (the history) is ``min_bytes`` long."""
    deadline = time.monotonic() + 300.0
    while time.monotonic() < deadline:
        async with websockets.connect(f"ws://127.0.0.1:{server.api_port}/ws/btcusdt", max_size=None) as ws:
            if len(await ws.recv()) >= min_bytes:
                return
        await asyncio.sleep(5.0)
    raise RuntimeError(f"the history never reached {min_bytes} bytes")


# --- the table -----------------------------------------------------------------------------------


def _mark(ok: bool) -> str:
    return "ok" if ok else "FAIL"


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def format_table(rows: Sequence[Row]) -> str:
    """One line per scenario, each figure followed by ok or FAIL against its target, then
    what each scenario's limit check saw."""
    head = ["scenario", "#", "RSS MB before/peak/after (s)", "frame gap s", "/health p50/p99 ms", "resyncs",
            "limit", "all"]
    lines = []
    for r in rows:
        if r.error:
            lines.append([r.name, str(r.item), "error", "", "", "", "", "FAIL"])
            continue
        after_s = f"{r.rss_after_s:.0f}" if r.rss_after_s is not None else f"{RSS_BACK_DEADLINE_S:.0f}+"
        failed = f" ({r.health_failed} failed)" if r.health_failed else ""
        lines.append([
            r.name, str(r.item),
            f"{r.rss_before_mb:.0f}/{r.rss_peak_mb:.0f}/{r.rss_after_mb:.0f} ({after_s}) {_mark(r.passed['rss'])}",
            f"{_num(r.gap_s, '.2f')} {_mark(r.passed['gap'])}",
            f"{_num(r.health_p50_ms, '.0f')}/{_num(r.health_p99_ms, '.0f')}{failed} {_mark(r.passed['health'])}",
            f"{_num(r.resyncs, 'd')} {_mark(r.passed['resyncs'])}",
            _mark(r.passed["limit"]),
            _mark(r.ok),
        ])
    widths = [max(len(x) for x in col) for col in zip(head, *lines, strict=False)]
    out = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in [head, *lines]]
    out.append("")
    out.append(f"targets: RSS back within {RSS_BACK_WITHIN:.0%} of before within {RSS_BACK_DEADLINE_S:.0f} s; "
               f"frame gap <= {GAP_TARGET_S} s at 1 frame/s; /health p99 <= {HEALTH_P99_TARGET_MS:.0f} ms; "
               "no resync; the limit held")
    for r in rows:
        out.append(f"  {r.name}: {r.error or r.detail}"
                   + (f"; honest reader reconnected {r.reader_reconnects}x" if r.reader_reconnects else ""))
    return "\n".join(out)


# --- command line -------------------------------------------------------------------------------------


def raise_own_descriptor_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.abuse", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", default="", help="comma-separated scenario names (see --list)")
    p.add_argument("--scale", type=float, default=1.0, help="multiplies every count of clients and rounds")
    p.add_argument("--list", action="store_true", help="name the scenarios and exit")
    p.add_argument("--warm", type=float, default=BUFFERS_FULL_S, metavar="S",
                   help="the crowd scenarios attack a server at least S seconds old, its buffers full "
                        f"(default {BUFFERS_FULL_S:.0f})")
    p.add_argument("--json", default=str(RESULTS / "abuse.json"))
    p.add_argument("--log-dir", default=str(RESULTS / "abuse-logs"), help="one server log per scenario")
    p.add_argument("--observe", nargs=2, type=int, metavar=("API_PORT", "PID"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.observe:
        result = asyncio.run(observe(*args.observe))
        print(json.dumps(result), flush=True)
        return 0
    if args.list:
        for sc in SCENARIOS:
            doc = " ".join((sc.attack.__doc__ or "").split())
            print(f"{sc.name:15} item {sc.item}: {doc}")
        return 0
    wanted = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(wanted) - {s.name for s in SCENARIOS})
    if unknown:
        p.error(f"unknown scenario(s) {', '.join(unknown)}; see --list")
    if not args.scale > 0:
        p.error("--scale must be positive")
    chosen = [s for s in SCENARIOS if not wanted or s.name in wanted]
    raise_own_descriptor_limit()
    rows = []
    for sc in chosen:
        print(f">> {sc.name} (item {sc.item})", flush=True)
        row = asyncio.run(run_scenario(sc, args.scale, Path(args.log_dir), args.warm))
        print(f"   {'error: ' + row.error if row.error else row.detail}", flush=True)
        rows.append(row)
    print()
    print(format_table(rows))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"scale": args.scale, "rows": [asdict(r) for r in rows]}, indent=2))
    return 0 if all(r.ok for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
