"""The API's FastAPI application, composed from its parts: error handling
(api/errors.py), the origins allowed to read it from a browser (api/origins.py),
/health (api/health.py), the REST endpoints (api/rest.py) and the /ws/{symbol}
push (api/ws.py), all reading the same :class:`Services`."""

from __future__ import annotations

from fastapi import FastAPI

from alerting.routes import add_alert_rule_routes
from api.errors import install_error_handlers
from api.health import add_health_routes
from api.history import add_history_routes
from api.origins import OriginMiddleware
from api.rest import add_rest_routes
from api.screener import add_screener_routes
from api.services import Services
from api.ws import add_ws_routes


def create_app(services: Services) -> FastAPI:
    app = FastAPI(
        title="Order book liquidity dashboard API",
        version="1.0",
        description="Live L2 books of Binance USDT-M futures rebuilt from the depth stream, "
        "their microstructure metrics, liquidity alerts and a market-impact walk.",
    )
    app.add_middleware(OriginMiddleware, policy=services.origins)
    app.state.services = services
    install_error_handlers(app)
    if services.remote is not None:
        # An API node (--role api): the routes answered from the bus come first and
        # take the place of the ones of the same path that read local books.
        services.remote.add_routes(app)
    add_health_routes(app, services)
    if services.alerting is not None:
        add_alert_rule_routes(app, services.alerting)  # before /alerts/{symbol}, which would take "rules"
    add_rest_routes(app, services)
    add_history_routes(app, services)
    add_screener_routes(app, services)
    add_ws_routes(app, services)
    if services.remote is not None:
        drop_shadowed_routes(app)
    return app


def drop_shadowed_routes(app: FastAPI) -> None:
    """Remove each route that an earlier route of the same path and methods hides:
    it could never answer, and the OpenAPI document shows the one that does."""
    seen: set[tuple[str, frozenset[str]]] = set()
    kept = []
    for route in app.router.routes:
        path = getattr(route, "path", None)
        methods = frozenset(getattr(route, "methods", None) or ())
        if path is not None and methods:
            if (path, methods) in seen:
                continue
            seen.add((path, methods))
        kept.append(route)
    app.router.routes[:] = kept
