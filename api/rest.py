"""The REST endpoints about the books and the server: ``/symbols``, ``/stats``,
``/book/{symbol}``, ``/simulate/{symbol}``, ``/alerts/{symbol}``, ``/metrics``.

Every endpoint validates its input and answers a bad request with a 4xx and a
message saying what is wrong; a book that is not in sync answers 503 with the
reason (see api/errors.py). Numbers in the query take plain decimal or exponent
notation only (``2.5``, ``2.5e5``). Numbers in the answers are rounded where the
JSON is written, by the rules of docs/frames.md ("Rounding").
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from fastapi import FastAPI, Query
from fastapi.responses import PlainTextResponse, Response

from api.errors import ApiError
from api.metrics import prometheus_text
from api.services import Services
from config import decimals_of
from data_ingestion.feed import SymbolFeed
from features.alerts import KINDS, AlertsAnswer, group_by_price, select
from features.engine import SymbolFeatures
from features.frame import encoder
from features.liquidity_detection import WALL_REMOVED
from features.market_impact import BookUnavailable, ImpactError
from features.rounding import DERIVED_PRICE, PRICE, QTY, QUOTE, RATIO, Decimals, Rule, round_mapping, rounded
from orderbook.sequence_validator import TRUSTED_STATES

MAX_CURVE_POINTS = 50
# Plain decimal or exponent notation: 2, -2.5, .5, 2.5e5. Not 0x10, 1_000, nan or inf.
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NOT_FINITE = {"nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"}

# How /simulate's numbers are written (docs/frames.md, "Rounding"); quantities at the
# lot's decimals, or the size's own when it has more (the last fill is what remains of it).
IMPACT_ROUNDING: dict[str, Rule] = {
    "quantity_filled": QTY, "vwap": DERIVED_PRICE, "best_price": PRICE, "worst_price": PRICE,
    "slippage": DERIVED_PRICE, "slippage_bps": RATIO, "impact_bps": RATIO,
}
FILL_ROUNDING: dict[str, Rule] = {"price": PRICE, "qty": QTY, "cumulative_qty": QTY, "cumulative_cost": QUOTE}


def add_rest_routes(app: FastAPI, services: Services) -> None:
    """``/symbols``, ``/stats``, ``/book/{symbol}``, ``/simulate/{symbol}``, ``/alerts/{symbol}`` and
    ``/metrics`` on ``app``."""
    s = services.settings
    runtime = services.runtime

    def feed_of(symbol: str) -> SymbolFeed:
        feed = runtime.feeds.get(symbol.lower())
        if feed is None:
            known = ", ".join(sorted(runtime.feeds))
            raise ApiError(404, f"unknown symbol {symbol!r}; served: {known}")
        return feed

    def features_of(feed: SymbolFeed) -> SymbolFeatures:
        """The features of a feed of this process (the frame source that builds the frames
        here holds them; an API node has no local feed, so feed_of already said 404)."""
        held: dict[str, SymbolFeatures] | None = getattr(services.publisher, "features", None)
        if held is None or feed.symbol not in held:
            raise ApiError(503, f"{feed.symbol}: no features in this process")
        return held[feed.symbol]

    @app.get("/symbols", summary="The symbols served")
    async def symbols() -> dict[str, Any]:
        return {"symbols": services.served_symbols()}

    @app.get("/stats", summary="Burst protection: clients per symbol, frames dropped, clients refused")
    async def stats() -> dict[str, Any]:
        hub = services.hub
        st = hub.stats
        return {
            "clients": hub.client_count,
            "clients_by_symbol": {sym: hub.clients_by_symbol().get(sym, 0) for sym in services.served_symbols()},
            "clients_total": st.clients_total,
            "clients_refused": st.clients_refused,
            "frames_published": st.frames_published,
            "frames_dropped": st.frames_dropped,
            "frames_direct": st.frames_direct,
            # Frames built here, and of them those built on their symbol's depth event
            # (null on an API node of the bus, which builds none).
            "frames_built": getattr(services.publisher, "frames_built", None),
            "frames_on_event": getattr(services.publisher, "frames_on_event", None),
            "slow_clients": [
                {"symbol": sub.symbol, "remote": sub.remote, "dropped": sub.dropped, "sent": sub.sent}
                for sub in hub.subscribers()
                if sub.dropped
            ],
            "clients_evicted": st.clients_evicted,
            "origins_refused": st.origins_refused + services.origins.refused,
            "connections": connection_stats(services),
            "limits": {
                "max_clients": hub.max_clients,
                "max_clients_per_address": hub.max_per_address,
                "queue_frames": hub.queue_capacity,
                "stall_timeout_s": s.ws_stall_timeout_s,
                "client_messages_per_s": s.ws_client_msgs_per_s,
                "max_connections": services.limits.max_connections if services.limits else None,
                "header_timeout_s": s.header_timeout_s,
            },
            "frame_build_ms": {k: round(v, 3) for k, v in services.publisher.build_ms_last.items()},
            "frame_bytes": dict(services.publisher.frame_bytes_last),
        }

    @app.get("/book/{symbol}", summary="The rebuilt book: last update id, sync state, N levels a side")
    async def book(
        symbol: str,
        depth: Annotated[str | None, Query(description="levels a side, 1 to 100000; all when omitted")] = None,
    ) -> dict[str, Any]:
        levels = None if depth is None else parse_count(depth, "depth", 1, 100_000)
        feed = feed_of(symbol)
        info = require_in_sync(feed)
        n = levels if levels is not None else max(len(feed.book.bids), len(feed.book.asks))
        bids, asks = feed.book.top(n)
        band = feed.book.snapshot_band
        return {
            "symbol": feed.symbol,
            "last_update_id": feed.book.last_update_id,
            "state": info["state"],
            "bid_levels_total": len(feed.book.bids),
            "ask_levels_total": len(feed.book.asks),
            "snapshot_band": None
            if band is None
            else {
                "bid_low": feed.book.price(band.bid_low),
                "bid_high": feed.book.price(band.bid_high),
                "ask_low": feed.book.price(band.ask_low),
                "ask_high": feed.book.price(band.ask_high),
            },
            "bids": [[p, q] for p, q in bids],
            "asks": [[p, q] for p, q in asks],
        }

    @app.get("/simulate/{symbol}", summary="Market-impact walk of the whole local book")
    async def simulate(
        symbol: str,
        side: Annotated[str, Query(description="buy (eats asks) or sell (eats bids)")],
        size: Annotated[str | None, Query(description="order size in base asset, e.g. 1.5")] = None,
        sizes: Annotated[
            str | None, Query(description="comma-separated sizes for a slippage curve, e.g. 0.1,1,5,10")
        ] = None,
    ) -> dict[str, Any]:
        feed = feed_of(symbol)
        side_l = side.strip().lower()
        if side_l not in ("buy", "sell"):
            raise ApiError(422, f"side must be 'buy' or 'sell', got {side!r}")
        if (size is None) == (sizes is None):
            raise ApiError(422, "give exactly one of size=X or sizes=X,Y,...")
        impact = services.impact
        assert impact is not None
        if size is not None:
            value = parse_size(size, s.impact_max_size)
            values = [value]
        else:
            assert sizes is not None
            parts = [p for p in sizes.split(",") if p.strip()]
            if not parts:
                raise ApiError(422, "sizes: give at least one size")
            if len(parts) > MAX_CURVE_POINTS:
                raise ApiError(422, f"sizes: at most {MAX_CURVE_POINTS} sizes")
            values = [parse_size(p, s.impact_max_size) for p in parts]
        require_in_sync(feed)  # bad input first (422), then the book's state (503)
        spec = features_of(feed).spec
        dec = Decimals(spec.price_decimals, max([spec.qty_decimals, *(decimals_of(v) for v in values)]))
        try:
            if size is not None:
                result = impact.walk(feed.book, side_l, value, in_sync=feed.in_sync)
                body = round_mapping(result.to_dict(), IMPACT_ROUNDING, dec)
                body["fills"] = [round_mapping(f, FILL_ROUNDING, dec) for f in body["fills"]]
                return {**body, "last_update_id": feed.book.last_update_id}
            points = impact.curve(feed.book, side_l, values, in_sync=feed.in_sync)
            return {
                "symbol": feed.symbol,
                "side": side_l,
                "last_update_id": feed.book.last_update_id,
                "curve": [round_mapping(p.to_dict(), IMPACT_ROUNDING, dec) for p in points],
            }
        except BookUnavailable as exc:
            raise ApiError(503, str(exc)) from None
        except ImpactError as exc:
            raise ApiError(422, str(exc)) from None

    @app.get("/alerts/{symbol}", summary="Alerts over their life, grouped by price, most significant first")
    async def alerts(
        symbol: str,
        since: Annotated[str | None, Query(description="seconds since the epoch: only alerts whose state is newer "
                                                       "(ts > since)")] = None,
        min_notional: Annotated[str | None, Query(description="USDT: only alerts whose peak notional reached it; "
                                                              "default the dashboard's (alert_min_notional_usdt), "
                                                              "0 for all")] = None,
        kind: Annotated[str | None, Query(description="comma-separated: WALL, LAYERING, EXHAUSTION (all when "
                                                      "omitted)")] = None,
    ) -> Response:
        feed = feed_of(symbol)
        since_v = None if since is None else parse_number("since", since, minimum=0.0)
        floor = s.alert_min_notional_usdt if min_notional is None else parse_number(
            "min_notional", min_notional, minimum=0.0)
        kinds = parse_kinds(kind)
        features = features_of(feed)
        dec = Decimals.of(features.spec)
        # Rounded first, then filtered, ordered and grouped: exactly what a page that
        # reads the frames sees and does.
        held = [rounded(a, dec) for a in features.alert_list()]
        chosen = select(held, since_v, floor, kinds)
        answer = AlertsAnswer(
            symbol=feed.symbol, since=since_v, min_notional=floor, default_min_notional=s.alert_min_notional_usdt,
            kinds=list(kinds), total=len(held), shown=len(chosen), groups=group_by_price(chosen),
        )
        return Response(encoder.encode(rounded(answer, dec)), media_type="application/json")

    @app.get("/metrics", summary="Prometheus text format", response_class=PlainTextResponse)
    async def metrics() -> Response:
        body, content_type = prometheus_text(services)
        return Response(body, media_type=content_type)


def connection_stats(services: Services) -> dict[str, int]:
    """What the connection limits of api/limits.py refused or closed since start."""
    limits = services.limits
    if limits is None:
        return {}
    return {
        "refused_over_cap": limits.refused_over_cap,
        "closed_header_timeout": limits.closed_header_timeout,
        "refused_upgrade_too_long": limits.refused_upgrade_too_long,
    }


def require_in_sync(feed: SymbolFeed) -> dict[str, Any]:
    """The feed's sync info when its book can be served; else ApiError 503 with the
    reason. A quiet book (in sync, its connection alive, nothing changed lately) is
    served; a stale one (its connection silent past the liveness ping's deadline) is
    not: /health counts it as out of sync, and events may be missing from it."""
    info = feed.sync_info()
    state = info["state"]
    if state in TRUSTED_STATES:
        return info
    if state == "stale":
        why = f"no message from the exchange for {info['last_message_age_s']} s and no answer to a ping"
    else:
        why = info["reason"] or "waiting for a snapshot"
    raise ApiError(503, f"{feed.symbol}: book not in sync ({state}: {why})")


def parse_number(name: str, raw: str, minimum: float | None = None) -> float:
    """A finite number in plain decimal or exponent notation (surrounding spaces
    allowed), at least ``minimum``; else ApiError 422 saying why."""
    text = raw.strip()
    if text.lower() in _NOT_FINITE:
        raise ApiError(422, f"{name} must be finite, got {raw!r}")
    if not _NUMBER.fullmatch(text):
        raise ApiError(422, f"{name} must be a number in decimal or exponent notation (e.g. 2.5 or 2.5e5), "
                            f"got {raw!r}")
    value = float(text)
    if not math.isfinite(value):
        raise ApiError(422, f"{name} must be finite, got {raw!r}")
    if minimum is not None and value < minimum:
        raise ApiError(422, f"{name} must be at least {minimum:g}, got {raw!r}")
    return value + 0.0  # -0 is 0


_COUNT = re.compile(r"[0-9]+")


def parse_count(raw: str, what: str, low: int, high: int) -> int:
    """``raw`` as a whole number in [low, high] written in ASCII digits, else ApiError 422."""
    text = raw.strip()
    if not _COUNT.fullmatch(text):
        raise ApiError(422, f"{what} must be a whole number from {low} to {high}, got {raw!r}")
    value = int(text)
    if not low <= value <= high:
        raise ApiError(422, f"{what} must be from {low} to {high}, got {value}")
    return value


MIN_SIZE = 1e-12  # a size is written back to its own decimals: below this it has too many to mean anything


def parse_size(raw: str, max_size: float) -> float:
    """A finite size from ``MIN_SIZE`` to ``max_size``, or ApiError 422 saying why."""
    value = parse_number("size", raw)
    if value <= 0:
        raise ApiError(422, f"size must be positive, got {raw!r}")
    if value < MIN_SIZE:
        raise ApiError(422, f"size {value:g} is below the minimum {MIN_SIZE:g}")
    if value > max_size:
        raise ApiError(422, f"size {value:g} is above the maximum {max_size:g}")
    return value


def parse_kinds(raw: str | None) -> tuple[str, ...]:
    """The alert kinds of a ``kind=`` list (any case), in the documented order; all when omitted."""
    if raw is None:
        return KINDS
    parts = [p.strip() for p in raw.split(",") if p.strip()]
    if not parts:
        raise ApiError(422, f"kind: give at least one of {', '.join(KINDS)}")
    for part in parts:
        if part.upper() == WALL_REMOVED:
            raise ApiError(422, "kind: WALL_REMOVED is no alert of its own: a removed wall is the last state of "
                                "its WALL alert (kind=WALL)")
        if part.upper() not in KINDS:
            raise ApiError(422, f"kind must be among {', '.join(KINDS)} (comma-separated), got {part!r}")
    asked = {p.upper() for p in parts}
    return tuple(k for k in KINDS if k in asked)
