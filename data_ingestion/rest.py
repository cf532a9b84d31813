"""REST calls toward the exchange: depth snapshots, exchangeInfo, ping, open interest.

Every request goes through one :class:`WeightBudget` per process, so that a resync
storm over many symbols cannot get the IP banned: it reads the
``X-MBX-USED-WEIGHT-1M`` header, keeps under a share of the 2,400-a-minute budget,
and honours ``Retry-After`` on 429 (rate limited) and 418 (banned).

Snapshots have priority: they wait for the budget, while an open-interest poll never
waits. A poll is sent only when no snapshot is waiting, the exchange has not asked
us to back off, and the minute's weight stays under ``low_priority_share`` of the
limit; otherwise it is skipped (counted) and the next poll tries again. So at least
the rest of the limit is always left to snapshots.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import httpx
import orjson

from config import decimals_of
from wire.binance import (
    DEPTH_WEIGHT,
    OPEN_INTEREST_WEIGHT,
    WEIGHT_HEADER,
    DecodeError,
    DepthSnapshot,
    OpenInterest,
    open_interest_decoder,
    snapshot_decoder,
)

log = logging.getLogger("rest")


class RestError(Exception):
    """A REST call failed; ``retry_after`` (seconds) when the exchange said when."""

    def __init__(self, message: str, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class RestrictedLocation(RestError):
    """HTTP 451: Binance serves no one from this location. Retrying cannot help."""


class WeightBudget:
    """Local view of the IP's request weight for the current minute."""

    def __init__(
        self,
        budget_1m: int = 2400,
        safety: float = 0.5,
        clock: Callable[[], float] = time.time,
        low_priority_share: float = 0.5,
    ) -> None:
        self.limit = int(budget_1m * safety)
        self.low_priority_limit = int(self.limit * low_priority_share)
        self.waiting = 0  # priority requests (snapshots) waiting for the budget right now
        self.low_skipped = 0  # low-priority requests not sent to leave the budget to snapshots
        self._clock = clock
        self._minute = int(clock() // 60)
        self.used = 0
        self.blocked_until = 0.0  # from Retry-After
        self.requests = 0
        self.waits = 0
        self.rate_limited = 0  # 429 / 418 answers seen

    def _roll(self) -> None:
        minute = int(self._clock() // 60)
        if minute != self._minute:
            self._minute = minute
            self.used = 0

    def delay_for(self, weight: int) -> float:
        """Seconds to wait before spending ``weight``; 0 when it may go now."""
        now = self._clock()
        if now < self.blocked_until:
            return self.blocked_until - now
        self._roll()
        if self.used + weight > self.limit:
            return 60.0 - (now % 60.0) + 0.05
        return 0.0

    def may_spend_low(self, weight: int) -> bool:
        """Whether a low-priority request (an open-interest poll) may go now: never
        while a priority request waits or the exchange said to back off, and only
        within ``low_priority_share`` of the limit. It never waits: False means skip."""
        now = self._clock()
        if self.waiting or now < self.blocked_until:
            return False
        self._roll()
        return self.used + weight <= self.low_priority_limit

    def spend(self, weight: int) -> None:
        self._roll()
        self.used += weight
        self.requests += 1

    def observe(self, headers: httpx.Headers, status: int) -> float | None:
        """Read the exchange's view of the used weight and any Retry-After."""
        header = headers.get(WEIGHT_HEADER)  # httpx headers are case-insensitive
        if header is not None:
            try:
                self._roll()
                self.used = max(self.used, int(header))
            except ValueError:
                pass
        if status in (418, 429):
            self.rate_limited += 1
            try:
                retry = float(headers.get("retry-after", "60"))
            except ValueError:
                retry = 60.0
            retry = max(1.0, retry)
            self.blocked_until = max(self.blocked_until, self._clock() + retry)
            return retry
        return None


class RestClient:
    """Thin async client of the exchange's REST API."""

    def __init__(self, base_url: str, budget: WeightBudget, timeout_s: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.budget = budget
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout_s, connect=min(5.0, timeout_s)),
            headers={"User-Agent": "liquidity-dashboard/1"},
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def _get(self, path: str, params: dict[str, Any], weight: int) -> Any:
        body = await self._get_bytes(path, params, weight)
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            raise RestError(f"GET {path}: body is not JSON", 200) from None

    async def _get_bytes(self, path: str, params: dict[str, Any], weight: int, low_priority: bool = False) -> bytes:
        """The body of a 200 answer; RestError (RestrictedLocation for 451) otherwise.
        A priority request waits for the budget; a low-priority one has been let
        through by :meth:`WeightBudget.may_spend_low` already."""
        budget = self.budget
        if not low_priority:
            delay = budget.delay_for(weight)
            if delay > 0:
                budget.waiting += 1
                try:
                    while delay > 0:
                        budget.waits += 1
                        log.info("rest: waiting %.1f s for the request weight budget (%s)", delay, path)
                        await asyncio.sleep(delay)
                        delay = budget.delay_for(weight)
                finally:
                    budget.waiting -= 1
        budget.spend(weight)
        try:
            resp = await self._client.get(path, params=params)
        except httpx.HTTPError as exc:
            raise RestError(f"GET {path} failed: {type(exc).__name__}: {exc}") from None
        retry = self.budget.observe(resp.headers, resp.status_code)
        if resp.status_code == 451:
            raise RestrictedLocation(restricted_message(resp.content), 451)
        if resp.status_code != 200:
            detail = resp.text[:200]
            raise RestError(f"GET {path} -> HTTP {resp.status_code}: {detail}", resp.status_code, retry)
        return resp.content

    async def depth_snapshot(self, symbol: str, limit: int = 1000) -> tuple[DepthSnapshot, bytes]:
        """The typed snapshot and its raw bytes as received (for the recorder). A body
        that does not decode (ids not integers, levels not strings...) is a RestError."""
        weight = DEPTH_WEIGHT.get(limit)
        if weight is None:
            raise ValueError(f"{symbol}: snapshot limit must be one of {sorted(DEPTH_WEIGHT)}")
        raw = await self._get_bytes("/fapi/v1/depth", {"symbol": symbol.upper(), "limit": limit}, weight)
        try:
            return snapshot_decoder.decode(raw), raw
        except DecodeError as exc:
            raise RestError(f"{symbol}: malformed snapshot body ({exc})") from None

    async def open_interest(self, symbol: str) -> tuple[OpenInterest, bytes] | None:
        """The typed open interest and its raw body; None when the budget is kept for
        snapshots (the poll is skipped, never delayed). A body that does not decode is
        a RestError."""
        if not self.budget.may_spend_low(OPEN_INTEREST_WEIGHT):
            self.budget.low_skipped += 1
            return None
        raw = await self._get_bytes("/fapi/v1/openInterest", {"symbol": symbol.upper()}, OPEN_INTEREST_WEIGHT,
                                    low_priority=True)
        try:
            return open_interest_decoder.decode(raw), raw
        except DecodeError as exc:
            raise RestError(f"{symbol}: malformed open interest body ({exc})") from None

    async def exchange_info(self) -> dict[str, Any]:
        body = await self._get("/fapi/v1/exchangeInfo", {}, 1)
        if not isinstance(body, dict):
            raise RestError("exchangeInfo body is not an object")
        return body

    async def ping(self) -> bool:
        await self._get("/fapi/v1/ping", {}, 1)
        return True


class SymbolFilters(NamedTuple):
    """One symbol's exchangeInfo entry, as far as the book needs it."""

    tick_size: float
    step_size: float
    price_decimals: int
    qty_decimals: int
    status: str  # TRADING, SETTLING, PENDING_TRADING, ...
    price_precision: int | None = None  # exchangeInfo's pricePrecision / quantityPrecision
    quantity_precision: int | None = None


def symbol_filters(info: dict[str, Any]) -> dict[str, SymbolFilters]:
    """symbol -> its PRICE_FILTER.tickSize, LOT_SIZE.stepSize (and the decimals
    those strings carry) and its status, from an exchangeInfo body."""
    out: dict[str, SymbolFilters] = {}
    for sym in info.get("symbols", []):
        try:
            filters = {f["filterType"]: f for f in sym["filters"]}
            tick_s = filters["PRICE_FILTER"]["tickSize"]
            step_s = filters["LOT_SIZE"]["stepSize"]
            pp, qp = sym.get("pricePrecision"), sym.get("quantityPrecision")
            out[sym["symbol"].lower()] = SymbolFilters(
                float(tick_s), float(step_s), decimals_of(tick_s), decimals_of(step_s), str(sym.get("status", "?")),
                pp if type(pp) is int else None, qp if type(qp) is int else None,
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            continue
    return out


def restricted_message(body: bytes) -> str:
    """The one line to show for an HTTP 451 body (``{"code":0,"msg":"Service
    unavailable from a restricted location ..."}``)."""
    try:
        msg = orjson.loads(body).get("msg")
    except (orjson.JSONDecodeError, AttributeError):
        msg = None
    detail = msg if isinstance(msg, str) and msg else body[:200].decode("utf-8", "replace").strip()
    return f"Binance refuses this location (HTTP 451): {detail}" if detail else \
        "Binance refuses this location (HTTP 451)"
