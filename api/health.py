"""``GET /health``: status, uptime, memory, connections, the source, and per symbol
its sync state and monitoring. 200 when healthy or degraded, 503 when no book is
in sync."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from api.services import Services
from data_ingestion.recorder import recorder_status
from orderbook.sequence_validator import TRUSTED_STATES


def add_health_routes(app: FastAPI, services: Services) -> None:
    """``GET /health`` on ``app``."""

    @app.get("/health", summary="Status, uptime, memory, connections, per-symbol sync and monitoring")
    async def health() -> JSONResponse:
        body = health_body(services)
        code = 503 if body["status"] == "unhealthy" else 200
        return JSONResponse(body, status_code=code)


def health_body(services: Services) -> dict[str, Any]:
    runtime = services.runtime
    mono = time.monotonic_ns()
    per_symbol: dict[str, Any] = {}
    monitoring: dict[str, Any] = {}
    good = 0
    for sym, feed in runtime.feeds.items():
        info = feed.sync_info(mono)
        ok = info["state"] in TRUSTED_STATES
        good += ok
        per_symbol[sym] = {**info, "in_sync": ok}
        monitoring[sym] = feed.feed_info(mono)
    n = len(runtime.feeds)
    if n and good == n:
        status = "healthy"
    elif good:
        status = "degraded"
    else:
        status = "unhealthy"
    proc = runtime.process.summary()
    body: dict[str, Any] = {
        "status": status,
        "connections": services.hub.client_count,
        "symbols": list(runtime.feeds),
        "uptime_seconds": round(time.monotonic() - services.started_mono, 1),
        "memory_mb": proc["rss_mb"],
        "memory": proc,
        "source": services.source.as_dict(),
        "exchange": {
            "rest_base_url": services.settings.rest_base_url,
            "ws_public_url": services.settings.ws_public_url,
            "ws_market_url": services.settings.ws_market_url,
        }
        if services.source.kind != "replay"
        else None,
        "sync": per_symbol,
        "monitoring": monitoring,
        "exchange_connections": [
            {"name": c.name, "connected": c.connected, "connects": c.connects, "stale_closes": c.stale_closes,
             "malformed_messages": c.malformed, "pings_sent": c.pings_sent, "pongs_received": c.pongs_received,
             "subscribe_errors": c.subscribe_errors, "refused": c.refused}
            for c in runtime.connections
        ],
    }
    if runtime.rest is not None:
        b = runtime.rest.budget
        body["rest_weight"] = {"used_1m": b.used, "limit_1m": b.limit, "rate_limited": b.rate_limited,
                               "waits": b.waits, "requests": b.requests,
                               "low_priority_limit_1m": b.low_priority_limit, "low_priority_skipped": b.low_skipped}
    body["tasks"] = {"running": len(runtime.tasks.running), "restarts": dict(runtime.tasks.restarts)}
    body["recorder"] = recorder_status(runtime.recorder)
    if services.market is not None and services.screener is not None:
        body["screener"] = {**services.market.status(), **services.screener.status()}
        if services.focus is not None:
            body["screener"]["focus"] = services.focus.status()
    # whether GET /history/... and /ws/{symbol}?from= have anything to serve (a page asks here first)
    body["history"] = {"on": services.history is not None}
    if services.alerting is not None:
        body["alerting"] = services.alerting.status()
    if runtime.replay is not None:
        replay = runtime.replay.as_dict()
        # File names, not paths: /health is readable by any client of the API.
        replay["files"] = [Path(str(f)).name for f in runtime.replay.files]
        body["replay"] = replay
    return body
