"""The Dash page: a static layout plus clientside JavaScript (assets/*.js).

The browser subscribes to ``ws://<api>/ws/<symbol>`` itself and draws every frame
in JavaScript; no server callback runs per tick. The API base URL reaches the page
at layout time in the ``liq-config`` store (and as ``data-api-url`` on the root).

The JavaScript is one file per panel plus core, connection and main files, all adding
to one namespace (``window.dash_clientside.liq``, also ``window.LIQ``). Dash serves
every ``.js`` in ``assets/`` as a plain script in file-name order, so the number
prefix of each name is its load order: ``00-core.js`` first, ``90-main.js`` last
(docs/dashboard.md lists them).

Every panel section carries ``data-panel`` (its short name, the one used in the URL
and the panel menu); the page's layout, URL and keyboard code find the panels by it.
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
from dashboard.screener import ASSETS_IGNORE, add_screener_route
from dashboard.screener import ROUTE as SCREENER_ROUTE

ASSETS = Path(__file__).resolve().parent / "assets"
PLOTLY_JS = Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"
PLOTLY_ROUTE = "/vendor/plotly.min.js"

# The panels a user can hide: short name (URL, panel menu, data-panel) and menu label.
PANELS: tuple[tuple[str, str], ...] = (
    ("ladder", "DOM ladder"),
    ("heatmap", "Heatmap and volume profile"),
    ("depth", "Depth curve"),
    ("alerts", "Alerts"),
    ("surface", "3D surface"),
    ("impact", "Market impact"),
    ("feed", "Feed health"),
)

# Dash's page template with the document's language declared (screen readers need it).
INDEX_STRING = """<!DOCTYPE html>
<html lang="en">
    <head>
        {%metas%}
        <title>{%title%}</title>
        {%favicon%}
        {%css%}
    </head>
    <body>
        {%app_entry%}
        <footer>
            {%config%}
            {%scripts%}
            {%renderer%}
        </footer>
    </body>
</html>"""


def _data(**attrs: str) -> dict[str, Any]:
    """``data-*`` attributes for an html component (``api_url`` -> ``data-api-url``)."""
    return {"data-" + k.replace("_", "-"): v for k, v in attrs.items()}


def _aria(**attrs: str) -> dict[str, Any]:
    """``aria-*`` attributes for an html component (``label`` -> ``aria-label``)."""
    return {"aria-" + k: v for k, v in attrs.items()}


def _metric(label: str, ident: str) -> html.Div:
    return html.Div([html.Span(label, className="k"), html.Span("\u2013", id=ident, className="v")], className="metric")


def _panel(title: str, body: Component, name: str, extra: html.Span | None = None,
           footer: Component | None = None) -> html.Section:
    """One panel: ``#panel-<name>``, named by its title for assistive technology."""
    ident = "panel-" + name
    head = [html.Span(title, id=ident + "-title")] + ([extra] if extra is not None else [])
    return html.Section(
        [html.Header(head), body] + ([footer] if footer is not None else []), id=ident, className="panel",
        **_aria(labelledby=ident + "-title"), **_data(panel=name),
    )


def _figure(ident: str, label: str) -> html.Div:
    """A Plotly figure's container, described for assistive technology."""
    return html.Div(id=ident, className="plot", role="figure", **_aria(label=label))


def _banner(source_label: str | None) -> html.Div:
    return html.Div(
        [
            html.Span(source_label or "source: asking the API\u2026", id="src-badge", className="badge src-unknown"),
            # shown while the page shows the recorded history (assets/15-timeline.js)
            html.Span("HISTORY", id="hist-badge", className="badge src-history", hidden=True),
            html.Span("", id="src-reason", className="reason"),
            html.Span(id="sync-chips", className="chips"),
            html.Span("connecting\u2026", id="conn-status", className="conn conn-connecting"),
            # "paused at ..." while the view is frozen (space / the Pause button), else empty
            html.Span("", id="view-state", className="view-state", role="status"),
            html.Span("no data yet", id="update-age", className="age"),
        ],
        id="banner",
        className="banner banner-unknown",
    )


def _timeline() -> html.Div:
    """The recorded history under the banner (assets/15-timeline.js): coverage, gaps and
    alert markers on a strip to click or drag, play / pause, speed, previous / next
    alert and Live. Hidden until the API says it has history."""

    def button(text: str, ident: str, label: str, keys: str | None = None) -> html.Button:
        extra = _aria(label=label, **({"keyshortcuts": keys} if keys else {}))
        return html.Button(text, id=ident, className="ctl tl-btn", type="button", title=label, **extra)

    controls = html.Div(
        [
            button("Live", "tl-live", "Back to live (L)", "L"),
            button("\u2039 alert", "tl-prev", "Previous alert (\u2190 in history)"),
            button("\u275a\u275a", "tl-play", "Pause (space)", "Space"),
            button("alert \u203a", "tl-next", "Next alert (\u2192 in history)"),
            html.Label(
                [
                    html.Span("speed", className="tl-key"),
                    html.Select(
                        [html.Option(f"{x}\u00d7", value=str(x)) for x in (1, 2, 5, 10)],
                        id="tl-speed", className="ctl tl-speed", **_aria(label="Playback speed"),
                    ),
                ],
                className="tl-speed-box",
            ),
        ],
        className="tl-controls",
        role="group",
        **_aria(label="Recorded history"),
    )
    track = html.Div(
        [
            html.Div(id="tl-bars", className="tl-bars"),
            html.Div(id="tl-marks", className="tl-marks"),
            html.Div(id="tl-cursor", className="tl-cursor tl-cursor-live"),
        ],
        id="tl-track",
        className="tl-track",
        role="slider",
        tabIndex="0",
        **_aria(label="Recorded time: click or drag to seek", valuetext="live"),
    )
    return html.Div(
        [
            controls,
            track,
            html.Div(
                [html.Span("live", id="tl-time", className="tl-time"),
                 html.Span("", id="tl-span", className="tl-span")],
                className="tl-info",
            ),
        ],
        id="timeline",
        className="timeline",
        hidden=True,
        **_data(available="unknown", mode="live"),
    )


def _view_controls() -> html.Div:
    """Pause / back to live, the panel menu and the shortcut sheet: one group that the
    keyboard shortcuts mirror (assets/82-keys.js)."""
    menu = html.Details(
        [
            html.Summary("Panels", id="panel-menu-button", className="ctl", title="Show or hide panels"),
            dcc.Checklist(
                id="panel-toggles",
                options=[{"label": label, "value": name} for name, label in PANELS],
                value=[name for name, _label in PANELS],
                className="panel-toggles",
            ),
        ],
        id="panel-menu",
        className="panel-menu",
    )
    return html.Div(
        [
            # "Pause" while the view follows the data, "Play" while it is frozen
            html.Button("Pause", id="pause", className="ctl", type="button", title="Pause or play the view (space)",
                        **_aria(keyshortcuts="Space")),
            menu,
            html.A("Screener", id="screener-link", className="ctl", href=SCREENER_ROUTE,
                   title="Every watched symbol in one table (the screener)"),
            html.Button("?", id="shortcuts-open", className="ctl", type="button", title="Keyboard shortcuts (?)",
                        **_aria(label="Keyboard shortcuts", keyshortcuts="?")),
        ],
        id="view-controls",
        className="view-controls",
        role="group",
        **_aria(label="View"),
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
            _metric("mark", "m-mark"),
            _metric("index", "m-index"),
            _metric("basis", "m-basis"),
            _metric("funding \u00b7 next", "m-funding"),
            _metric("open interest \u00b7 5m", "m-oi"),
        ],
        id="metrics",
        className="metrics",
    )
    return html.Div([switcher, _view_controls(), metrics], className="toolbar")


def _main_grid() -> html.Div:
    return html.Div(
        [
            _panel("DOM ladder (top 10)", html.Div(id="ladder", className="ladder"), "ladder"),
            _panel(
                "Liquidity heatmap, trades, best bid/ask \u00b7 volume profile (180 s)",
                _figure("heatmap", "Liquidity heatmap: time across, price up, colour = resting size; trades as "
                                   "triangles, up = buy, down = sell; liquidations as diamonds, filled = longs, "
                                   "tall and open = shorts; open "
                                   "interest as a dotted line at the top; volume profile at the right"),
                "heatmap",
                footer=html.Div(
                    [html.Span("liquidations", className="k", title="at most one a second per symbol is sent: "
                                                                     "a lower bound"),
                     html.Span("none in the last 180 s", id="liq-tape", className="tape-items")],
                    className="liq-tape", role="log", **_aria(label="Liquidation tape, newest first"),
                ),
            ),
            html.Div(
                [
                    _panel("Depth curve (50 levels a side)",
                           _figure("depth", "Depth curve: cumulative size, bids left of mid, asks right"), "depth"),
                    _panel(
                        "Alerts",
                        html.Div(id="alerts", className="alerts"),
                        "alerts",
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
            html.Label("size", htmlFor="impact-size", className="size-label"),
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
                    _figure("impact-curve", "Impact curve: slippage and impact in bps against order size"),
                ],
                className="impact-body",
            ),
        ],
        className="impact-wrap",
    )
    return _panel("Market impact (walks the whole local book, live)", body, "impact")


def _lower_grid() -> html.Div:
    return html.Div(
        [
            _panel("Liquidity surface (time \u00d7 price \u00d7 size, redrawn every 5 s)",
                   _figure("surface", "3D liquidity surface: seconds ago, price and resting size"), "surface"),
            _impact_panel(),
            _panel("Feed health", html.Div(id="feed", className="feed"), "feed"),
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
        assets_ignore=ASSETS_IGNORE,
        title="Order book liquidity",
        update_title="",
        external_scripts=[PLOTLY_ROUTE],
        serve_locally=True,
    )
    guard_dash_endpoints(app)
    app.index_string = INDEX_STRING
    add_screener_route(app.server, api_url, app.get_asset_url(""))

    @app.server.route(PLOTLY_ROUTE)
    def _plotly_js() -> Response:
        return send_file(PLOTLY_JS, mimetype="application/javascript", max_age=86400)

    config = {"api_url": api_url, "symbols": symbols, "source_label": source_label}
    app.layout = html.Div(
        [
            dcc.Store(id="liq-config", data=config),
            dcc.Store(id="liq-active"),
            dcc.Store(id="liq-impact-done"),
            dcc.Store(id="liq-panels-done"),
            _banner(source_label),
            _timeline(),
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
    # The panel menu: the page sets it from the URL, the browser's saved choice or the
    # screen size, so only the user's own changes come through here.
    app.clientside_callback(
        ClientsideFunction(namespace="liq", function_name="panelMenu"),
        Output("liq-panels-done", "data"),
        Input("panel-toggles", "value"),
        prevent_initial_call=True,
    )
    app.clientside_callback(
        ClientsideFunction(namespace="liq", function_name="impact"),
        Output("liq-impact-done", "data"),
        Input("impact-run", "n_clicks"),
        Input("impact-size", "n_submit"),
        Input("impact-side", "value"),
        State("impact-size", "value"),
        # nothing to do on load, and a link's side (set by the page) must not be undone
        prevent_initial_call=True,
    )
    return app
