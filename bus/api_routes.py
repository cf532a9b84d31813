"""The endpoints an API node answers from the bus, in place of the ones that read
local books (api/app.py puts these first):

* ``GET /health``: each symbol's state as its ingest node last sent it (or stale,
  with the reason), every node heard on the bus with its symbols and when it was
  last heard from, and the bus connection;
* ``GET /book/{symbol}`` and ``GET /simulate/{symbol}``: asked of the symbol's
  owner over request/reply; its status and body are passed on as they are (so
  4xx and 503s read as in one process), and 503 with the reason when no owner
  answers in time;
* ``GET /metrics``: the clients, the frames from the bus, the silent symbols.

``/ws``, ``/symbols``, ``/stats`` and ``/schema/frame.json`` are api/'s own.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from api.errors import ApiError
from orderbook.sequence_validator import TRUSTED_STATES

if TYPE_CHECKING:
    from bus.api_node import ApiNode, NodeView


def add_api_node_routes(app: FastAPI, node: ApiNode) -> None:
    @app.get("/health", summary="Status, per-symbol sync as the ingest nodes send it, every node on the bus")
    async def health() -> JSONResponse:
        body = health_body(node)
        return JSONResponse(body, status_code=503 if body["status"] == "unhealthy" else 200)

    async def ask(symbol: str, kind: str, request: Request) -> Response:
        sym = symbol.lower()
        if sym not in node.symbols():
            known = ", ".join(node.symbols())
            raise ApiError(404, f"unknown symbol {symbol!r}; served: {known}")
        reply = await node.ask_owner(sym, f"/{kind}/{sym}", list(request.query_params.multi_items()))
        return Response(reply.body, status_code=reply.status, media_type="application/json",
                        headers={"X-Liq-Node": reply.node})

    @app.get("/book/{symbol}", summary="The rebuilt book, from the ingest node that owns the symbol")
    async def book(
        symbol: str,
        request: Request,
        depth: Annotated[str | None, Query(description="levels a side, 1 to 100000; all when omitted")] = None,
    ) -> Response:
        return await ask(symbol, "book", request)

    @app.get("/simulate/{symbol}", summary="Market-impact walk, on the ingest node that owns the symbol")
    async def simulate(
        symbol: str,
        request: Request,
        side: Annotated[str, Query(description="buy (eats asks) or sell (eats bids)")],
        size: Annotated[str | None, Query(description="order size in base asset, e.g. 1.5")] = None,
        sizes: Annotated[
            str | None, Query(description="comma-separated sizes for a slippage curve, e.g. 0.1,1,5,10")
        ] = None,
    ) -> Response:
        return await ask(symbol, "simulate", request)

    @app.get("/metrics", summary="Prometheus text format", response_class=PlainTextResponse)
    async def metrics() -> Response:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Collector(node))  # type: ignore[arg-type]
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def _node_entry(view: NodeView, now: float, alive_within_s: float) -> dict[str, Any]:
    h = view.health
    heard = now - view.heard_mono
    entry: dict[str, Any] = {
        "node": h.node,
        "instance": h.instance,
        "last_heard_s": round(heard, 1),
        "last_heard_at": datetime.datetime.fromtimestamp(view.heard_wall, datetime.UTC).isoformat(
            timespec="milliseconds"),
        "alive": heard <= alive_within_s,
        "api_url": h.api_url,
        "started_at": h.started_at,
        "rss_mb": h.rss_mb,
    }
    if h.role == "ingest":
        entry.update({
            "symbols": view.owned(),
            "waiting_for": [s.symbol for s in h.symbols if not s.owned],
            "states": {s.symbol: s.state for s in h.symbols},
            "source": h.source.label if h.source is not None else None,
            "cadence_s": h.cadence_s,
            "frames_published": h.frames_published,
            "frames_not_sent": h.frames_not_sent,
        })
    else:
        entry["dashboard_url"] = h.dashboard_url
    return entry


def health_body(node: ApiNode) -> dict[str, Any]:
    now = time.monotonic()
    frames = node.frames
    per_symbol: dict[str, Any] = {}
    good = 0
    for sym in node.symbols():
        st = frames.symbol(sym)
        info = frames.sync_of(sym)
        ok = info["state"] in TRUSTED_STATES
        good += ok
        owner = node.directory.owner_of(sym)
        per_symbol[sym] = {
            **info,
            "in_sync": ok,
            "owner": owner.health.node if owner is not None else None,
            "last_frame_age_s": round(now - st.last_mono, 3) if st.last is not None else None,
            "frames_received": st.frames,
            "stale_frames_sent": st.stale_frames,
        }
    n = len(per_symbol)
    status = "healthy" if n and good == n else "degraded" if good else "unhealthy"
    proc = node.runtime.process.summary()
    limit = node.settings.bus_stale_after_s
    c = node.counters
    return {
        "status": status,
        "role": "api",
        "node": node.node,
        "connections": node.hub.client_count,
        "symbols": list(per_symbol),
        "uptime_seconds": round(time.time() - node.started_at, 1),
        "memory_mb": proc["rss_mb"],
        "memory": proc,
        "source": node.source.as_dict(),
        "sync": per_symbol,
        "ingest_nodes": [_node_entry(v, now, limit) for v in node.directory.of_role("ingest")],
        "api_nodes": [_node_entry(v, now, limit) for v in node.directory.of_role("api")],
        "bus": {
            **node.bus.status(),
            "frames_received": c.frames,
            "alerts_received": c.alerts,
            "health_received": c.health,
            "history_frames_read": c.history_frames,
            "history_read_s": c.history_load_s,
            "malformed": dict(c.malformed.counts),
            "malformed_last": c.malformed.last,
            "requests": dict(node.requests),
        },
        "tasks": {"running": len(node.tasks.running), "restarts": dict(node.tasks.restarts)},
    }


class _Collector:
    def __init__(self, node: ApiNode) -> None:
        self.node = node

    def collect(self) -> Iterator[Metric]:
        node = self.node
        now = time.monotonic()
        frames = CounterMetricFamily("liq_bus_frames", "frames received from the bus", labels=["symbol"])
        stale = GaugeMetricFamily("liq_bus_symbol_stale", "1 while no frame of the symbol arrives", labels=["symbol"])
        in_sync = GaugeMetricFamily("liq_in_sync", "1 when the book is in sync on its ingest node",
                                    labels=["symbol"])
        clients = GaugeMetricFamily("liq_ws_clients", "websocket clients connected", labels=["symbol"])
        by_symbol = node.hub.clients_by_symbol()
        for sym in node.symbols():
            st = node.frames.symbol(sym)
            frames.add_metric([sym], float(st.frames))
            stale.add_metric([sym], 1.0 if st.stale_since is not None else 0.0)
            in_sync.add_metric([sym], 1.0 if node.frames.sync_of(sym)["state"] in TRUSTED_STATES else 0.0)
            clients.add_metric([sym], float(by_symbol.get(sym, 0)))
        yield frames
        yield stale
        yield in_sync
        yield clients
        heard = GaugeMetricFamily("liq_bus_node_last_heard_seconds", "seconds since a node's last health",
                                  labels=["node", "role"])
        for view in node.directory.nodes.values():
            heard.add_metric([view.health.node, view.health.role], now - view.heard_mono)
        yield heard
        malformed = CounterMetricFamily("liq_bus_malformed", "bus messages skipped as malformed", labels=["kind"])
        for kind, count in node.counters.malformed.counts.items():
            malformed.add_metric([kind], float(count))
        yield malformed
        yield GaugeMetricFamily("liq_bus_connected", "1 while connected to the bus",
                                value=1.0 if node.bus.connected else 0.0)
        yield CounterMetricFamily("liq_bus_reconnects", "reconnections to the bus", value=node.bus.reconnects)
        hub = node.hub.stats
        yield CounterMetricFamily("liq_frames_dropped", "frames dropped for slow clients", value=hub.frames_dropped)
        yield CounterMetricFamily("liq_ws_clients_refused", "websocket clients refused", value=hub.clients_refused)
        yield GaugeMetricFamily("liq_process_rss_bytes", "resident set size",
                                value=node.runtime.process.rss_mb() * 1024 * 1024)
