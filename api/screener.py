"""The screener's endpoints: ``GET /screener`` (rows, sorted and filtered),
``/ws/screener`` (a snapshot, then once a second the rows that changed) and
``POST /focus/{symbol}`` (promote a symbol to a full-depth exact book), and the
publisher that builds the rows once a second (README "Screener").
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson
from fastapi import FastAPI, Query, Request, WebSocket
from fastapi.responses import JSONResponse, Response

from api.errors import ApiError
from api.hub import FrameHub
from api.rest import parse_count, parse_number
from screener.market import MarketState, changed_slim_rows
from screener.rows import SORT_KEYS

if TYPE_CHECKING:
    from api.services import Services

log = logging.getLogger("screener")

HUB_KEY = "!screener"  # the hub's subscribers of /ws/screener (no symbol has a "!")
DEFAULT_SORT = "quote_volume_24h"
DEFAULT_LIMIT = 500
MAX_LIMIT = 1000


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class ScreenerPublisher:
    """Builds every row once a second, keeps the last ones for GET /screener and
    pushes what changed to /ws/screener subscribers."""

    def __init__(self, state: MarketState, hub: FrameHub, focus: Callable[[], set[str]],
                 on_rows: Callable[[int, list[dict[str, Any]]], None] | None = None) -> None:
        self.state = state
        self.hub = hub
        self.focus = focus
        self.on_rows = on_rows  # each second's rows, for the alert rules over the whole market
        self.rows: list[dict[str, Any]] = []  # the last frame's rows, with their histories
        self.slim: dict[str, dict[str, Any]] = {}  # the same without histories, by symbol
        self.ts_ms = 0
        self.frames = 0
        self.build_ms: deque[float] = deque(maxlen=600)  # wall time of each frame
        self.build_cpu_ms: deque[float] = deque(maxlen=600)  # CPU time of each frame (this thread)
        self.frame_times_ns: deque[int] = deque(maxlen=3600)  # when each frame was built (replay checks)
        self._snapshot: tuple[int, bytes] | None = None  # (frame number, snapshot message)

    def tick(self, now_ns: int) -> None:
        t0 = time.perf_counter()
        c0 = time.thread_time()
        now_ms = now_ns // 1_000_000
        rows, slim = self.state.rows_and_slim(now_ms, self.focus())
        changed = changed_slim_rows(self.slim, slim)
        removed = sorted(set(self.slim) - {r["symbol"] for r in rows})
        self.rows = rows
        self.slim = {r["symbol"]: r for r in slim}
        self.ts_ms = now_ms
        self.frames += 1
        self.frame_times_ns.append(now_ns)
        self.hub.publish(HUB_KEY, orjson.dumps(
            {"type": "update", "ts": now_ms, "rows": changed, "removed": removed}).decode())
        if self.on_rows is not None:
            self.on_rows(now_ms, rows)
        self.build_ms.append((time.perf_counter() - t0) * 1000)
        self.build_cpu_ms.append((time.thread_time() - c0) * 1000)

    def snapshot_bytes(self) -> bytes:
        """The snapshot a new /ws/screener client starts from, built once per frame and
        shared by every client that connects before the next."""
        if self._snapshot is None or self._snapshot[0] != self.frames:
            self._snapshot = (self.frames, orjson.dumps(
                {"type": "snapshot", "ts": self.ts_ms, "rows": list(self.slim.values())}))
        return self._snapshot[1]

    async def run(self) -> None:
        """A frame at each whole second of the wall clock."""
        while True:
            now = time.time()
            await asyncio.sleep(1.0 - now % 1.0)
            self.tick(time.time_ns())

    def status(self) -> dict[str, Any]:
        wall, cpu = list(self.build_ms), list(self.build_cpu_ms)
        return {"frames": self.frames, "rows": len(self.rows), "build_ms_p50": percentile(wall, 0.5),
                "build_ms_p99": percentile(wall, 0.99), "build_cpu_ms_p50": percentile(cpu, 0.5),
                "build_cpu_ms_p99": percentile(cpu, 0.99)}


def select_rows(rows: list[dict[str, Any]], params: Any) -> tuple[int, list[dict[str, Any]]]:
    """(count before the limit, the rows to answer) for GET /screener's query; ApiError 422 on bad input."""
    sort = params.get("sort", DEFAULT_SORT)
    if sort not in SORT_KEYS:
        raise ApiError(422, f"sort must be one of {', '.join(SORT_KEYS)}, got {sort!r}")
    order = params.get("order", "desc")
    if order not in ("desc", "asc"):
        raise ApiError(422, f"order must be desc or asc, got {order!r}")
    limit = parse_count(params["limit"], "limit", 1, MAX_LIMIT) if "limit" in params else DEFAULT_LIMIT
    min_volume = parse_number("min_volume", params["min_volume"], minimum=0) if "min_volume" in params else 0.0
    q = params.get("q", "").lower()
    picked = [r for r in rows if (not q or q in r["symbol"])
              and (min_volume <= 0 or (r["quote_volume_24h"] is not None and r["quote_volume_24h"] >= min_volume))]
    present = [r for r in picked if r[sort] is not None]
    missing = [r for r in picked if r[sort] is None]
    present.sort(key=lambda r: r[sort], reverse=order == "desc")
    ordered = present + missing
    return len(ordered), ordered[:limit]


def error_response(exc: ApiError) -> JSONResponse:
    """The screener's 4xx: ``{"error": ...}`` (its contract), with the ``detail`` key the
    API's other errors carry."""
    return JSONResponse({"error": exc.detail, "detail": exc.detail}, status_code=exc.status)


def screener_off(services: Services) -> str:
    """Why this process serves no screener."""
    role = services.settings.role
    if role != "all":
        return f"the screener is off on this node (--role {role}): it runs in the one-process role (--role all)"
    return "the screener is off in this process (--no-screener, or a replay)"


def add_screener_routes(app: FastAPI, services: Services) -> None:
    def publisher() -> ScreenerPublisher:
        if services.screener is None:
            raise ApiError(404, screener_off(services))
        return services.screener

    @app.get("/screener", summary="One row per watched symbol: liquidity, walls, liquidations, funding, volume")
    async def screener(
        request: Request,
        sort: str | None = Query(None, description=f"a numeric row field or symbol (default {DEFAULT_SORT})"),
        order: str | None = Query(None, description="desc (default) or asc; rows without the value last"),
        limit: str | None = Query(None, description=f"1 to {MAX_LIMIT} (default {DEFAULT_LIMIT})"),
        min_volume: str | None = Query(None, description="minimum 24 h quote volume, USDT (default 0)"),
        q: str | None = Query(None, description="a substring of the symbol"),
    ) -> Any:
        # Declared for the OpenAPI document; read as given (strings) and checked by select_rows.
        del sort, order, limit, min_volume, q
        try:
            pub = publisher()
            count, rows = select_rows(pub.rows, request.query_params)
        except ApiError as exc:
            return error_response(exc)
        return Response(orjson.dumps({"ts": pub.ts_ms, "count": count, "rows": rows}), media_type="application/json")

    @app.post("/focus/{symbol}", summary="Promote a symbol of the screener to a full-depth exact book")
    async def focus(symbol: str, request: Request) -> Any:
        try:
            origin = request.headers.get("origin")
            if origin is not None and not services.origins.allows(origin, request.headers.get("host")):
                services.origins.refused += 1  # a page of another site must not start books here
                raise ApiError(403, f"origin {origin} may not promote symbols")
            pub = publisher()
            sym = symbol.lower()
            if sym not in pub.state.symbols and sym not in services.runtime.feeds:
                raise ApiError(404, f"{symbol!r} is not a symbol the screener lists")
            if services.focus is None:
                raise ApiError(404, "promotion is off in this process")
            return await services.focus.promote(sym)
        except ApiError as exc:
            return error_response(exc)

    @app.websocket("/ws/screener")
    async def ws_screener(websocket: WebSocket) -> None:
        await serve_screener(services, websocket)


async def serve_screener(services: Services, websocket: WebSocket) -> None:
    """A snapshot (rows without histories), then each second's update, as /ws/{symbol}
    serves frames: same origin rule, limits and close codes."""
    from api.ws import _origin_refused, close_reason, serve_subscription

    if await _origin_refused(services, websocket):
        return
    await websocket.accept()
    pub = services.screener
    if pub is None:
        await websocket.close(code=1008, reason=close_reason(screener_off(services)))
        return
    await serve_subscription(services, websocket, HUB_KEY, pub.snapshot_bytes, lossless=True)
