"""The Dash page: a static layout plus clientside JavaScript (assets/*.js).

The browser subscribes to ``ws://<api>/ws/<symbol>`` itself and draws every frame
in JavaScript; no server callback runs per tick. The API base URL reaches the page
at layout time in the ``liq-config`` store (and as ``data-api-url`` on the root).

The JavaScript is one file per panel plus core, connection and main files, all adding
to one namespace (``window.dash_clientside.liq``, also ``window.LIQ``). Dash serves
every ``.js`` in ``assets/`` as a plain script in file-name order, so the number
prefix of each name is its load order: ``00-core.js`` first, ``90-main.js`` last
(docs/dashboard.md lists them).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import plotly
from dash import ClientsideFunction, Dash, Input, Output, State, dcc, html
from dash.development.base_component import Component
from flask import Response, send_file

from dashboard.request_guard import guard_dash_endpoints

ASSETS = Path(__file__).resolve().parent / "assets"
PLOTLY_JS = Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"
PLOTLY_ROUTE = "/vendor/plotly.min.js"


def _data(**attrs: str) -> dict[str, Any]:
    """``data-*`` attributes for an html component (``api_url`` -> ``data-api-url``)."""
    return {"data-" + k.replace("_", "-"): v for k, v in attrs.items()}


def _metric(label: str, ident: str) -> html.Div:
    return html.Div([html.Span(label, className="k"), html.Span("\u2013", id=ident, className="v")], className="metric")


def _panel(title: str, body: Component, ident: str, extra: html.Span | None = None) -> html.Section:
    head = [html.Span(title)] + ([extra] if extra is not None else [])
    return html.Section([html.Header(head), body], id=ident, className="panel")


def _banner(source_label: str | None) -> html.Div:
    return html.Div(
        [
            html.Span(source_label or "source: asking the API\u2026", id="src-badge", className="badge src-unknown"),
            html.Span("", id="src-reason", className="reason"),
            html.Span(id="sync-chips", className="chips"),
            html.Span("connecting\u2026", id="conn-status", className="conn conn-connecting"),
            html.Span("no data yet", id="update-age", className="age"),
        ],
        id="banner",
        className="banner banner-unknown",
    )


def _toolbar(symbols: Sequence[str]) -> html.Div:
    switcher = dcc.RadioItems(
        id="symbol",
        options=[{"label": s.upper(), "value": s} for s in symbols],
        value=symbols[0],
        inline=True,
        className="symbols",
    )
    metrics = html.Div(
        [
            _metric("mid", "m-mid"),
            _metric("spread", "m-spread"),
            _metric("microprice", "m-micro"),
            _metric("imbalance", "m-imb"),
            _metric("OFI 1 s", "m-ofi"),
            _metric("bid vol", "m-bidvol"),
            _metric("ask vol", "m-askvol"),
        ],
        id="metrics",
        className="metrics",
    )
    return html.Div([switcher, metrics], className="toolbar")


def _main_grid() -> html.Div:
    return html.Div(
        [
            _panel("DOM ladder (top 10)", html.Div(id="ladder", className="ladder"), "panel-ladder"),
            _panel(
                "Liquidity heatmap, trades, best bid/ask \u00b7 volume profile (180 s)",
                html.Div(id="heatmap", className="plot"),
                "panel-heatmap",
            ),
            html.Div(
                [
                    _panel("Depth curve (50 levels a side)", html.Div(id="depth", className="plot"), "panel-depth"),
                    _panel(
                        "Alerts",
                        html.Div(id="alerts", className="alerts"),
                        "panel-alerts",
                        html.Span("0", id="alerts-count", className="count"),
                    ),
                ],
                className="rightcol",
            ),
        ],
        className="main-grid",
    )


def _impact_panel() -> html.Section:
    form = html.Div(
        [
            dcc.RadioItems(
                id="impact-side",
                options=[{"label": "buy", "value": "buy"}, {"label": "sell", "value": "sell"}],
                value="buy",
                inline=True,
                className="sides",
            ),
            # Empty until the first frame: the page then fills in the symbol's default size
            # (about 100k USDT at mid) and keeps the panel updated without a click.
            dcc.Input(id="impact-size", type="number", value=None, step="any", className="size",
                      placeholder="size", n_submit=0),
            html.Button("Simulate", id="impact-run", n_clicks=0, className="run"),
        ],
        className="impact-form",
    )
    body = html.Div(
        [
            form,
            html.Div(
                [
                    html.Div(id="impact-result", className="impact-result", **_data(status="idle")),
                    html.Div(id="impact-curve", className="plot"),
                ],
                className="impact-body",
            ),
        ],
        className="impact-wrap",
    )
    return _panel("Market impact (walks the whole local book, live)", body, "panel-impact")


def _lower_grid() -> html.Div:
    return html.Div(
        [
            _panel("Liquidity surface (time \u00d7 price \u00d7 size, redrawn every 5 s)",
                   html.Div(id="surface", className="plot"), "panel-surface"),
            _impact_panel(),
            _panel("Feed health", html.Div(id="feed", className="feed"), "panel-feed"),
        ],
        className="lower-grid",
    )


def create_app(api_url: str, symbols: Sequence[str], source_label: str | None = None) -> Dash:
    """The dashboard page for the API at ``api_url`` (``http://host:port``)."""
    if not symbols:
        raise ValueError("the dashboard needs at least one symbol")
    symbols = [s.lower() for s in symbols]
    api_url = api_url.rstrip("/")
    app = Dash(
        __name__,
        assets_folder=str(ASSETS),
        title="Order book liquidity",
        update_title="",
        external_scripts=[PLOTLY_ROUTE],
        serve_locally=True,
    )
    guard_dash_endpoints(app)

    @app.server.route(PLOTLY_ROUTE)
    def _plotly_js() -> Response:
        return send_file(PLOTLY_JS, mimetype="application/javascript", max_age=86400)

    config = {"api_url": api_url, "symbols": symbols, "source_label": source_label}
    app.layout = html.Div(
        [
            dcc.Store(id="liq-config", data=config),
            dcc.Store(id="liq-active"),
            dcc.Store(id="liq-impact-done"),
            _banner(source_label),
            _toolbar(symbols),
            _main_grid(),
            _lower_grid(),
        ],
        id="liq-root",
        **_data(api_url=api_url),
    )
    app.clientside_callback(
        ClientsideFunction(namespace="liq", function_name="start"),
        Output("liq-active", "data"),
        Input("liq-config", "data"),
        Input("symbol", "value"),
    )
    app.clientside_callback(
        ClientsideFunction(namespace="liq", function_name="impact"),
        Output("liq-impact-done", "data"),
        Input("impact-run", "n_clicks"),
        Input("impact-size", "n_submit"),
        Input("impact-side", "value"),
        State("impact-size", "value"),
    )
    return app
