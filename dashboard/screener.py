"""The screener page, ``/screener`` on the dashboard's server: every symbol the API
watches in one sortable, filterable table, live.

The page is plain HTML served by the Dash app's Flask server (no Dash layout: it has
no Dash component and no callback); its script (``assets/screener.js``) reads the
API's ``GET /screener`` once, then follows ``/ws/screener`` and draws every change
into the table itself. A click on a row promotes the symbol (``POST /focus/<symbol>``)
and opens it in the full dashboard (``/?symbol=<symbol>``).

``assets/screener.*`` are kept out of the main page by the app's ``assets_ignore``
(see :data:`ASSETS_IGNORE`); Dash's assets route still serves them to this page.
"""

from __future__ import annotations

import html

from flask import Flask, Response

ROUTE = "/screener"
# The files of assets/ that only the screener page loads (Dash adds every other .js and
# .css of the folder to the main page).
ASSETS_IGNORE = r"^screener"
# What the screener page loads from assets/: the shared helpers and shortcuts' typing
# test, then its own script.
SCRIPTS = ("00-core.js", "82-keys.js", "screener.js")
STYLES = ("style.css", "screener.css")

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Screener \u00b7 Order book liquidity</title>
{styles}
</head>
<body>
<div id="scr-root" data-api-url="{api_url}" data-conn="idle">
  <header class="scr-head">
    <a class="ctl" href="/" id="scr-back" title="The full dashboard">\u2190 Dashboard</a>
    <h1 id="scr-title">Screener</h1>
    <span id="scr-conn" class="conn conn-connecting" role="status">connecting\u2026</span>
    <span id="scr-count" class="muted" aria-live="polite"></span>
    <span id="scr-age" class="age">no data yet</span>
  </header>
  <form id="scr-filters" class="scr-filters" role="search" aria-label="Filter the table">
    <label class="scr-field"><span>symbol</span>
      <input id="scr-q" type="search" autocomplete="off" spellcheck="false" placeholder="e.g. eth"
             aria-keyshortcuts="/"></label>
    <label class="scr-field"><span>min 24 h volume (USDT)</span>
      <input id="scr-min-volume" type="text" inputmode="decimal" autocomplete="off" placeholder="e.g. 1e7"
             aria-describedby="scr-filter-msg"></label>
    <label class="scr-check"><input id="scr-walls" type="checkbox"> walls only</label>
    <label class="scr-check"><input id="scr-liq" type="checkbox"> liquidations only</label>
    <span id="scr-filter-msg" class="scr-msg" role="status"></span>
  </form>
  <div id="scr-message" class="scr-message" role="alert" hidden></div>
  <p class="scr-keys muted"><kbd>/</kbd> filter \u00b7 <kbd>\u2191</kbd> <kbd>\u2193</kbd> move between rows \u00b7
    <kbd>Enter</kbd> or a click opens the symbol in the full dashboard \u00b7 a column's header sorts by it</p>
  <div class="scr-wrap">
    <table id="scr-table" class="scr-table" aria-labelledby="scr-title" aria-describedby="scr-count">
      <thead><tr id="scr-head-row"></tr></thead>
      <tbody id="scr-body"></tbody>
    </table>
  </div>
</div>
{scripts}
</body>
</html>
"""


def page_html(api_url: str, assets_prefix: str = "/assets/") -> str:
    """The screener page for the API at ``api_url``."""
    styles = "\n".join(f'<link rel="stylesheet" href="{assets_prefix}{name}">' for name in STYLES)
    scripts = "\n".join(f'<script src="{assets_prefix}{name}"></script>' for name in SCRIPTS)
    return PAGE.format(api_url=html.escape(api_url, quote=True), styles=styles, scripts=scripts)


def add_screener_route(server: Flask, api_url: str, assets_prefix: str = "/assets/") -> None:
    """Serve the screener page at :data:`ROUTE` on ``server`` (the Dash app's)."""
    body = page_html(api_url, assets_prefix)

    @server.route(ROUTE)
    def _screener() -> Response:
        return Response(body, mimetype="text/html")
