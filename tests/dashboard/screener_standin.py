"""A stand-in of the API's screener endpoints, for the screener page's browser tests.

It keeps the screener contract (README, "The screener page"): ``GET /screener``
(sort, order, limit, min_volume, q; 422 with ``{"error": ...}`` on a bad parameter),
``/ws/screener`` (a ``snapshot``, then an ``update`` a second with the changed rows
and the removed symbols) and ``POST /focus/{symbol}`` (200, 404, 409 when told the
focus set is full), plus what the full dashboard asks of the API when a promoted
symbol opens there: ``GET /symbols`` (start symbols and promoted ones), ``GET
/health`` (a promoted symbol awaiting its snapshot) and ``/ws/{symbol}`` (accepted,
silent). It is test code only: the product's API serves the real thing.

Rows come from a deterministic generator: symbol i's fields are functions of i and of
the tick t (one a second), half of the rows change each tick, some fields are null
(missing values sort last), some rows carry a fresh wall, a liquidation burst, or are
stale. A test may freeze the market (ticks still send updates, with no row), set
fields of a row, add or remove symbols, and read what was served and posted. (The
documentation's captures of the page come from the real stack: ``make
screenshot-screener``.)
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

import uvicorn
from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse
from starlette.middleware.cors import CORSMiddleware

from dashboard.background_loop import LoopThread
from embedded_server import EmbeddedServer, bind_socket, start_serving, stop_serving

HIST = 60
NAMES = ("btc", "eth", "sol", "bnb", "xrp", "doge", "ada", "avax", "link", "dot", "ltc", "trx", "matic", "uni",
         "atom", "etc", "fil", "apt", "arb", "op", "near", "inj", "sui", "sei", "tia", "wld", "pepe", "ordi",
         "1000shib", "1000bonk", "aave", "mkr", "crv", "ldo", "gala", "sand", "mana", "axs", "ftm", "rune")
NUMERIC = ("ts", "mid", "spread_bps", "depth10_bid", "depth10_ask", "depth25_bid", "depth25_ask", "imbalance20",
           "walls", "liq5m_buy", "liq5m_sell", "funding_rate", "quote_volume_24h", "change_24h_pct")
SORT_KEYS = frozenset(NUMERIC) | {"symbol"}


def symbol_names(n: int) -> list[str]:
    """``n`` symbols: real-looking names first, then x001usdt, x002usdt, ..."""
    names = [f"{b}usdt" for b in NAMES[:n]]
    names += [f"x{i:03d}usdt" for i in range(1, n - len(names) + 1)]
    return names


def make_row(i: int, symbol: str, t: int, now_ms: int) -> dict[str, Any]:
    """Symbol ``i``'s row at tick ``t`` (the fields of the contract's ROW, rounded)."""
    wave = 0.75 * math.sin(t * 0.15 + i) + 0.25 * math.sin(t * 0.9 + 2 * i)
    base = 10.0 ** ((i * 7) % 9 - 3) * (1 + (i % 13) / 13)
    mid = base * (1 + 0.002 * wave)
    spread = None if i % 31 == 7 else round(0.4 + (i % 17) * 0.6 + 0.3 * (1 + wave), 2)
    d10b = round(20_000 * (1 + i % 11) * (1.2 + wave), 0)
    d10a = round(18_000 * (1 + i % 7) * (1.2 - 0.5 * wave), 0)
    d25b = round(d10b * 2.6, 0)
    d25a = round(d10a * 2.4, 0)
    bid20, ask20 = 100 + (i % 9) * 10 + 20 * wave, 120 + (i % 5) * 12
    wall = None
    walls = 0
    if i % 5 == 0:
        walls = 1 + i % 3
        age = float((t + i) % 120)
        side = "bid" if i % 10 == 0 else "ask"
        distance = round(3 + (i % 8) * 1.5, 2)
        size = round(40 * (1 + i % 4), 3)
        wall = {"side": side, "price": round(mid * (1 - distance / 1e4 if side == "bid" else 1 + distance / 1e4), 6),
                "size": size, "notional": round(size * mid, 2), "distance_bps": distance, "age_s": age,
                "fresh": age < 60}
    liq_buy = round(5_000.0 * (i % 4), 2) if i % 7 == 0 else 0.0
    liq_sell = round(7_500.0 * (1 + i % 3), 2) if i % 7 == 0 else 0.0
    return {
        "symbol": symbol, "ts": now_ms, "mid": round(mid, 8), "spread_bps": spread,
        "depth10_bid": d10b, "depth10_ask": d10a, "depth25_bid": d25b, "depth25_ask": d25a,
        "imbalance20": round((bid20 - ask20) / (bid20 + ask20), 4), "wall": wall, "walls": walls,
        "liq5m_buy": liq_buy, "liq5m_sell": liq_sell, "liq_burst": i % 21 == 0 and t % 20 < 10,
        "funding_rate": None if i % 29 == 5 else round(0.0001 * ((i % 9) - 3), 6),
        "quote_volume_24h": round(1e5 * 1.6 ** (i % 37), 0), "change_24h_pct": round(((i * 37) % 200 - 100) / 9, 2),
        "focus": i < 2, "stale": i % 23 == 11,
    }


class ScreenerStandIn:
    """The market of ``n`` symbols (the first ``start`` are the start symbols) and the
    stand-in's API app. Every method runs on the stand-in's loop (use :meth:`call`)."""

    def __init__(self, n: int = 320, start: int = 2, focus_max: int = 10) -> None:
        self.symbols = symbol_names(n)
        self.start_symbols = self.symbols[:start]
        self.index = {s: i for i, s in enumerate(self.symbols)}
        self.focus_max = focus_max
        self.tick_no = 0
        self.frozen = False
        self.focus_full = False
        self.overrides: dict[str, dict[str, Any]] = {}
        self.rows: dict[str, dict[str, Any]] = {}
        self.hist: dict[str, tuple[deque[float | None], deque[float | None]]] = {}
        self.focus: list[str] = []
        self.posts: list[tuple[str, int]] = []
        self.clients: set[asyncio.Queue[dict[str, Any]]] = set()
        self.pending_removed: list[str] = []
        self.pending_changed: set[str] = set()
        now = int(time.time() * 1000)
        for s in self.symbols:
            self.rows[s] = self._generated(s, 0, now)
            self.hist[s] = (deque([None] * HIST, HIST), deque([None] * HIST, HIST))
        for t in range(-HIST + 1, 1):   # a full minute of history at start
            for s in self.symbols:
                r = self._generated(s, t, now)
                self._push(s, r)
        self.app = self._build_app()

    # --- the market -----------------------------------------------------------------

    def _generated(self, symbol: str, t: int, now_ms: int) -> dict[str, Any]:
        row = make_row(self.index[symbol], symbol, t, now_ms)
        row.update(self.overrides.get(symbol, {}))
        return row

    def _push(self, symbol: str, row: dict[str, Any]) -> None:
        spread_h, depth_h = self.hist[symbol]
        spread_h.append(row["spread_bps"])
        bid, ask = row["depth25_bid"], row["depth25_ask"]
        depth_h.append(None if bid is None or ask is None else bid + ask)

    def tick(self) -> dict[str, Any]:
        """One second: half of the rows change (unless frozen); every client gets the update."""
        now = int(time.time() * 1000)
        if not self.frozen:
            self.tick_no += 1
            for s in self.symbols:
                if (self.index[s] + self.tick_no) % 2 == 0:
                    self.rows[s] = self._generated(s, self.tick_no, now)
                    self.pending_changed.add(s)
        for s in self.symbols:
            self._push(s, self.rows[s])
        msg = {"type": "update", "ts": now, "rows": [self.rows[s] for s in sorted(self.pending_changed)],
               "removed": list(self.pending_removed)}
        self.pending_changed.clear()
        self.pending_removed.clear()
        for q in self.clients:
            q.put_nowait(msg)
        return msg

    def set_fields(self, symbol: str, **fields: Any) -> None:
        """Fix fields of ``symbol``'s row (kept across ticks); sent with the next update."""
        self.overrides.setdefault(symbol, {}).update(fields)
        self.rows[symbol].update(fields)
        self.pending_changed.add(symbol)

    def remove(self, symbol: str) -> None:
        self.symbols.remove(symbol)
        del self.rows[symbol], self.hist[symbol]
        self.pending_changed.discard(symbol)
        self.pending_removed.append(symbol)

    def add(self, symbol: str) -> None:
        self.index.setdefault(symbol, len(self.index))
        self.symbols.append(symbol)
        self.hist[symbol] = (deque([None] * HIST, HIST), deque([None] * HIST, HIST))
        self.rows[symbol] = self._generated(symbol, self.tick_no, int(time.time() * 1000))
        self.pending_changed.add(symbol)

    def drop_clients(self) -> int:
        """Close every /ws/screener socket (as a restarting API would); how many."""
        for q in self.clients:
            q.put_nowait({"type": "close"})
        return len(self.clients)

    def served(self) -> list[dict[str, Any]]:
        """Every row as now (without histories), in no particular order."""
        return [dict(self.rows[s]) for s in self.symbols]

    # --- the API ----------------------------------------------------------------------

    def _build_app(self) -> FastAPI:
        app = FastAPI()
        # the stand-in's page and tests come from other loopback ports: any origin may read
        app.add_middleware(CORSMiddleware, allow_origins=["*"], allow_methods=["GET", "POST"])

        def error(status: int, text: str) -> JSONResponse:
            return JSONResponse({"error": text}, status_code=status)

        @app.get("/screener")
        async def screener(request: Request) -> JSONResponse:
            q = request.query_params
            sort = q.get("sort", "quote_volume_24h")
            order = q.get("order", "desc")
            if sort not in SORT_KEYS:
                return error(422, f"unknown sort key {sort!r}; known: {', '.join(sorted(SORT_KEYS))}")
            if order not in ("asc", "desc"):
                return error(422, f"order is asc or desc, got {order!r}")
            try:
                limit = int(q.get("limit", "500"))
            except ValueError:
                return error(422, "limit is a whole number from 1 to 1000")
            if not 1 <= limit <= 1000:
                return error(422, f"limit is from 1 to 1000, got {limit}")
            try:
                min_volume = float(q.get("min_volume", "0"))
            except ValueError:
                return error(422, "min_volume is a plain number of USDT")
            if not math.isfinite(min_volume) or min_volume < 0:
                return error(422, "min_volume is a finite number >= 0")
            sub = q.get("q", "").lower()
            rows = [r for r in self.served() if sub in r["symbol"]
                    and (min_volume <= 0 or (r["quote_volume_24h"] or 0) >= min_volume)]
            rows = sort_rows(rows, sort, order)
            count = len(rows)
            out = []
            for r in rows[:limit]:
                spread_h, depth_h = self.hist[r["symbol"]]
                out.append({**r, "spread_hist": list(spread_h), "depth25_hist": list(depth_h)})
            return JSONResponse({"ts": int(time.time() * 1000), "count": count, "rows": out})

        @app.websocket("/ws/screener")
        async def ws_screener(ws: WebSocket) -> None:
            await ws.accept()
            queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
            self.clients.add(queue)

            async def pump() -> None:
                await ws.send_json({"type": "snapshot", "ts": int(time.time() * 1000), "rows": self.served()})
                while True:
                    msg = await queue.get()
                    if msg.get("type") == "close":
                        await ws.close(1011, "the stand-in dropped its clients")
                        return
                    await ws.send_json(msg)

            sender = asyncio.get_running_loop().create_task(pump())
            try:
                while (await ws.receive())["type"] != "websocket.disconnect":
                    pass
            except (WebSocketDisconnect, RuntimeError):
                pass
            finally:
                self.clients.discard(queue)
                sender.cancel()
                with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError, OSError):
                    await sender

        @app.post("/focus/{symbol}")
        async def focus(symbol: str) -> JSONResponse:
            s = symbol.lower()
            if s not in self.rows:
                self.posts.append((s, 404))
                return error(404, f"{s} is not listed by the screener")
            if s not in self.focus and s not in self.start_symbols and (
                    self.focus_full or len(self.focus) >= self.focus_max):
                self.posts.append((s, 409))
                return error(409, f"the focus set is full ({self.focus_max} symbols, all watched); "
                                  "close one of them or wait for one to be released")
            if s not in self.focus and s not in self.start_symbols:
                self.focus.append(s)
            self.posts.append((s, 200))
            return JSONResponse({"symbol": s, "state": "syncing", "focus": list(self.focus)})

        @app.get("/symbols")
        async def symbols() -> dict[str, Any]:
            return {"symbols": self.start_symbols + [s for s in self.focus if s not in self.start_symbols]}

        @app.get("/health")
        async def health() -> dict[str, Any]:
            sync = {s: {"state": "synced"} for s in self.start_symbols}
            sync.update({s: {"state": "awaiting_snapshot", "reason": "promoted by the screener"} for s in self.focus})
            return {"status": "ok", "source": {"kind": "sim", "label": "SIMULATED (screener stand-in)", "reason": ""},
                    "sync": sync}

        @app.websocket("/ws/{symbol}")
        async def ws_symbol(ws: WebSocket, symbol: str) -> None:
            await ws.accept()   # the book is still syncing: nothing to send
            with contextlib.suppress(WebSocketDisconnect, RuntimeError):
                while True:
                    await ws.receive_text()

        return app


def sort_rows(rows: list[dict[str, Any]], key: str, order: str) -> list[dict[str, Any]]:
    """The contract's order: by ``key`` (nulls last whatever the order), ties by symbol."""
    present = [r for r in rows if r.get(key) is not None]
    missing = [r for r in rows if r.get(key) is None]
    present.sort(key=lambda r: r["symbol"])
    present.sort(key=lambda r: r[key], reverse=order == "desc")
    missing.sort(key=lambda r: r["symbol"])
    return present + missing


class RunningStandIn:
    """The stand-in served on a loopback port from a loop thread, ticking once a second."""

    def __init__(self, n: int = 320) -> None:
        self.loop = LoopThread("screener-standin")
        self.standin: ScreenerStandIn = self.loop.run(self._make(n))
        sock = bind_socket("127.0.0.1", 0)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.standin.app, log_level="warning", lifespan="off", ws="websockets-sansio",
                                timeout_graceful_shutdown=2)
        self.server = EmbeddedServer(config)
        self.task = self.loop.run(start_serving(self.server, sock, "screener-standin"))
        self.ticker = self.loop.run(self._start_ticker())

    @staticmethod
    async def _make(n: int) -> ScreenerStandIn:
        return ScreenerStandIn(n)

    async def _start_ticker(self) -> asyncio.Task[None]:
        async def run() -> None:
            while True:
                await asyncio.sleep(1.0)   # the screener's cadence: one update a second
                self.standin.tick()
        return asyncio.get_running_loop().create_task(run())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def call(self, fn: Any) -> Any:
        return self.loop.call(fn)

    def close(self) -> None:
        async def stop() -> None:
            self.ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.ticker
            await stop_serving(self.server, self.task)
        self.loop.run(stop())
        self.loop.close()


@contextlib.contextmanager
def running_standin(n: int = 320) -> Iterator[RunningStandIn]:
    rs = RunningStandIn(n)
    try:
        yield rs
    finally:
        rs.close()

