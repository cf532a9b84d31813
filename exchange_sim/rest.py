"""The REST side: Binance's /fapi/v1 endpoints (with weight accounting and
Binance-shaped errors) and the simulator's /sim control and truth endpoints."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from exchange_sim.faults import FaultError
from exchange_sim.market import TruthUnavailable
from exchange_sim.protocol import snapshot_body
from exchange_sim.venue import SymbolState, Venue
from wire.binance import DEPTH_WEIGHT, OPEN_INTEREST_WEIGHT, WEIGHT_HEADER

log = logging.getLogger(__name__)

# Binance's answer from a restricted location (HTTP 451), as its users report it.
RESTRICTED_MSG = ("Service unavailable from a restricted location according to 'b. Eligibility' in "
                  "https://www.binance.com/en/terms. Please contact customer service if you believe you "
                  "received this message in error.")


class WeightTracker:
    """Request weight used per client IP in the current wall-clock minute."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self._used: dict[str, tuple[int, int]] = {}  # ip -> (minute, weight)

    def used(self, ip: str) -> int:
        minute, weight = self._used.get(ip, (0, 0))
        return weight if minute == int(time.time() // 60) else 0

    def charge(self, ip: str, weight: int) -> tuple[bool, int]:
        """(allowed, used after); over budget the request is refused and not counted."""
        minute = int(time.time() // 60)
        used = self.used(ip)
        if used + weight > self.budget:
            return False, used
        self._used[ip] = (minute, used + weight)
        return True, used + weight

    @staticmethod
    def seconds_to_next_minute() -> int:
        return max(1, math.ceil(60 - time.time() % 60))


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


def _binance_error(status: int, code: int, msg: str, used: int, extra: dict[str, str] | None = None) -> Response:
    return _json(status, {"code": code, "msg": msg}, {WEIGHT_HEADER: str(used), **(extra or {})})


def build_app(venue: Venue) -> Starlette:
    """The Starlette app serving ``venue``."""
    weights = WeightTracker(venue.cfg.weight_budget_1m)

    def ip_of(request: Request) -> str:
        return request.client.host if request.client else "?"

    def charge(request: Request, weight: int) -> tuple[Response | None, int]:
        ok, used = weights.charge(ip_of(request), weight)
        if ok:
            return None, used
        retry = weights.seconds_to_next_minute()
        log.info("client %s over the weight budget (%d/min); 429", ip_of(request), weights.budget)
        return _binance_error(
            429, -1003, f"Too many requests; current limit of IP is {weights.budget} requests per minute.",
            used, {"Retry-After": str(retry)},
        ), used

    def symbol_state(symbol: str, used: int) -> SymbolState | Response:
        """The venue's state of ``symbol``, or Binance's 400 for a missing or unknown one."""
        if not symbol:
            return _binance_error(400, -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, "
                                  "or malformed.", used)
        state = venue.symbols.get(symbol.lower())
        if state is None:
            return _binance_error(400, -1121, "Invalid symbol.", used)
        return state

    async def ping(request: Request) -> Response:
        refused, used = charge(request, 1)
        return refused or _json(200, {}, {WEIGHT_HEADER: str(used)})

    async def server_time(request: Request) -> Response:
        refused, used = charge(request, 1)
        now = venue.now_ms
        return refused or _json(200, {"serverTime": now}, {WEIGHT_HEADER: str(used)})

    async def exchange_info(request: Request) -> Response:
        refused, used = charge(request, 1)
        if refused:
            return refused
        if venue.exchange_info_down:
            return _binance_error(503, -1001, "Internal error; unable to process your request. Please try again.",
                                  used)
        symbols = []
        for name, state in venue.symbols.items():
            spec = state.market.spec
            base = name.upper().removesuffix("USDT")
            symbols.append({
                "symbol": name.upper(), "pair": name.upper(), "contractType": "PERPETUAL",
                "status": venue.symbol_status.get(name, "TRADING"),
                "baseAsset": base, "quoteAsset": "USDT", "marginAsset": "USDT",
                "pricePrecision": spec.price_decimals, "quantityPrecision": spec.qty_decimals,
                "filters": [
                    {"filterType": "PRICE_FILTER", "minPrice": f"{spec.tick_size:.{max(2, spec.price_decimals)}f}",
                     "maxPrice": "10000000", "tickSize": f"{spec.tick_size:.{max(2, spec.price_decimals)}f}"},
                    {"filterType": "LOT_SIZE", "minQty": f"{spec.lot_size:.{spec.qty_decimals}f}",
                     "maxQty": "1000", "stepSize": f"{spec.lot_size:.{spec.qty_decimals}f}"},
                ],
            })
        body = {
            "timezone": "UTC",
            "serverTime": venue.now_ms,
            "rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
                            "limit": weights.budget}],
            "exchangeFilters": [],
            "symbols": symbols,
        }
        return _json(200, body, {WEIGHT_HEADER: str(used)})

    async def depth(request: Request) -> Response:
        q = request.query_params
        raw_limit = q.get("limit", "500")
        try:
            limit = int(raw_limit)
        except ValueError:
            return _binance_error(400, -1100, "Illegal characters found in parameter 'limit'; "
                                  "legal range is '^[0-9]{1,20}$'.", weights.used(ip_of(request)))
        refused, used = charge(request, DEPTH_WEIGHT.get(limit, 2))
        if refused:
            return refused
        if limit not in DEPTH_WEIGHT:
            return _binance_error(400, -1130, "Data sent for parameter 'limit' is not valid.", used)
        state = symbol_state(q.get("symbol", ""), used)
        if isinstance(state, Response):
            return state
        f = state.faults
        if (p := f.take_snapshot_fault("snapshot_418")) is not None:
            return _binance_error(418, -1003, "Way too many requests; IP banned by the simulated fault.", used,
                                  {"Retry-After": str(p["retry_after"])})
        if (p := f.take_snapshot_fault("snapshot_429")) is not None:
            return _binance_error(429, -1003, "Too many requests (simulated fault).", used,
                                  {"Retry-After": str(p["retry_after"])})
        if (p := f.take_snapshot_fault("snapshot_5xx")) is not None:
            return _binance_error(p["status"], -1001, "Internal error; unable to process your request. "
                                  "Please try again.", used)
        stale = f.take_snapshot_fault("snapshot_stale")
        delay = f.take_snapshot_fault("snapshot_delay")
        market = state.market
        uid, bids, asks = venue.snapshot_book(state.symbol, stale["age_s"] if stale else None)
        body = orjson.dumps(snapshot_body(market, uid, bids, asks, limit, market.now_ms))
        if delay is not None:
            await asyncio.sleep(delay["seconds"])
        return Response(body, media_type="application/json", headers={WEIGHT_HEADER: str(used)})

    async def open_interest(request: Request) -> Response:
        refused, used = charge(request, OPEN_INTEREST_WEIGHT)
        if refused:
            return refused
        state = symbol_state(request.query_params.get("symbol", ""), used)
        if isinstance(state, Response):
            return state
        return _json(200, state.stats.open_interest_body(), {WEIGHT_HEADER: str(used)})

    def error(status: int, msg: str) -> Response:
        return _json(status, {"error": msg})

    async def sim_book(request: Request) -> Response:
        symbol = request.query_params.get("symbol", "")
        raw = request.query_params.get("update_id")
        try:
            update_id = int(raw) if raw not in (None, "") else None
        except ValueError:
            return error(400, f"update_id must be an integer, got {raw!r}")
        if symbol.lower() not in venue.symbols:
            return error(404, f"unknown symbol {symbol!r}; trading {sorted(venue.symbols)}")
        try:
            book = venue.true_book(symbol, update_id)
        except TruthUnavailable as exc:
            return error(410 if exc.too_old else 404, str(exc))
        return _json(200, book.to_json())

    async def sim_episodes(request: Request) -> Response:
        symbol = request.query_params.get("symbol") or None
        if symbol and symbol.lower() not in venue.symbols:
            return error(404, f"unknown symbol {symbol!r}; trading {sorted(venue.symbols)}")
        return _json(200, [e.to_json() for e in venue.episodes(symbol)])

    async def body_of(request: Request) -> dict[str, Any]:
        try:
            data = orjson.loads(await request.body() or b"{}")
        except orjson.JSONDecodeError as exc:
            raise FaultError(f"body is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise FaultError("body must be a JSON object")
        return data

    async def sim_faults(request: Request) -> Response:
        if request.method == "GET":
            return _json(200, venue.faults())
        try:
            data = await body_of(request)
            symbol = data.get("symbol")
            if symbol is not None and (not isinstance(symbol, str) or symbol.lower() not in venue.symbols):
                return error(404, f"unknown symbol {symbol!r}; trading {sorted(venue.symbols)}")
            if data.get("clear"):
                venue.clear_faults(symbol)
                return _json(200, {"cleared": symbol or "all"})
            fault = data.get("fault")
            if not isinstance(fault, str):
                raise FaultError('body needs "fault" (a name) and "symbol", or {"clear": true}')
            if symbol is None:
                raise FaultError('body needs "symbol"')
            params = data.get("params", {})
            if not isinstance(params, dict):
                raise FaultError('"params" must be a JSON object')
            extra = set(data) - {"symbol", "fault", "params", "clear"}
            if extra:
                raise FaultError(f"unknown field(s) {sorted(extra)}")
            applied = venue.set_fault(symbol, fault, **params)
        except FaultError as exc:
            return error(400, str(exc))
        return _json(200, {"symbol": symbol.lower(), "fault": fault, "params": applied})

    async def sim_pause(request: Request) -> Response:
        venue.pause()
        return _json(200, {"paused": True})

    async def sim_resume(request: Request) -> Response:
        venue.resume()
        return _json(200, {"paused": False})

    async def sim_inject(request: Request) -> Response:
        try:
            data = await body_of(request)
            symbol = data.pop("symbol", None)
            if not isinstance(symbol, str) or symbol.lower() not in venue.symbols:
                return error(404, f"unknown symbol {symbol!r}; trading {sorted(venue.symbols)}")
            kind = data.pop("kind", "wall")
            if kind != "wall":
                raise FaultError(f"only kind 'wall' can be injected, got {kind!r}")
            allowed = {"side", "distance_ticks", "multiple", "duration_s", "end_mode"}
            if set(data) - allowed:
                raise FaultError(f"unknown field(s) {sorted(set(data) - allowed)}; known: {sorted(allowed)}")
            for key in ("distance_ticks", "multiple", "duration_s"):
                if key in data and (isinstance(data[key], bool) or not isinstance(data[key], int | float)):
                    raise FaultError(f"{key} must be a number, got {data[key]!r}")
            if "distance_ticks" in data:
                data["distance_ticks"] = int(data["distance_ticks"])
            label = await venue.inject_wall(symbol, **data)
        except FaultError as exc:
            return error(400, str(exc))
        return _json(200, label.to_json())

    def binance(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        """An exchange endpoint: from a restricted location Binance answers 451."""

        async def guarded(request: Request) -> Response:
            if venue.restricted_location:
                return _json(451, {"code": 0, "msg": RESTRICTED_MSG})
            return await handler(request)

        return guarded

    routes = [
        Route("/fapi/v1/ping", binance(ping)),
        Route("/fapi/v1/time", binance(server_time)),
        Route("/fapi/v1/exchangeInfo", binance(exchange_info)),
        Route("/fapi/v1/depth", binance(depth)),
        Route("/fapi/v1/openInterest", binance(open_interest)),
        Route("/sim/book", sim_book),
        Route("/sim/episodes", sim_episodes),
        Route("/sim/faults", sim_faults, methods=["GET", "POST"]),
        Route("/sim/pause", sim_pause, methods=["POST"]),
        Route("/sim/resume", sim_resume, methods=["POST"]),
        Route("/sim/inject", sim_inject, methods=["POST"]),
    ]
    return Starlette(routes=routes)
