"""The Dash app and its server without a browser: layout, config, clean stop."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from typing import Any

import pytest

from dashboard.app import ASSETS, PANELS, PLOTLY_ROUTE, create_app
from dashboard.server import DashboardServer


def _find(component: Any, ident: str) -> Any:
    if getattr(component, "id", None) == ident:
        return component
    children = getattr(component, "children", None)
    if children is None:
        return None
    for child in children if isinstance(children, list) else [children]:
        found = _find(child, ident)
        if found is not None:
            return found
    return None


def test_layout_carries_the_api_url_symbols_and_every_panel() -> None:
    app = create_app("http://127.0.0.1:9999/", ["BTCUSDT", "ethusdt"], "SIMULATED market")
    config = _find(app.layout, "liq-config")
    assert config.data == {
        "api_url": "http://127.0.0.1:9999",
        "symbols": ["btcusdt", "ethusdt"],
        "source_label": "SIMULATED market",
    }
    switcher = _find(app.layout, "symbol")
    assert [o["value"] for o in switcher.options] == ["btcusdt", "ethusdt"]
    for ident in ("banner", "ladder", "heatmap", "depth", "surface", "alerts", "impact-result", "impact-curve",
                  "feed", "metrics"):
        assert _find(app.layout, ident) is not None, ident


def test_every_panel_is_named_hideable_and_in_the_panel_menu() -> None:
    app = create_app("http://127.0.0.1:9999", ["btcusdt"])
    menu = _find(app.layout, "panel-toggles")
    names = [name for name, _label in PANELS]
    assert [o["value"] for o in menu.options] == names
    assert menu.value == names  # the page then applies the link, the saved choice or the screen's default
    for name in names:
        section = _find(app.layout, "panel-" + name)
        props = section.to_plotly_json()["props"]
        assert props["data-panel"] == name
        assert _find(app.layout, props["aria-labelledby"]) is not None, name
    for ident in ("pause", "shortcuts-open", "panel-menu", "view-state", "timeline", "tl-track", "tl-live", "tl-speed",
                  "hist-badge"):
        assert _find(app.layout, ident) is not None, ident
    assert '<html lang="en">' in app.index_string


def test_no_symbols_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one symbol"):
        create_app("http://127.0.0.1:1", [])


def test_server_serves_page_script_and_plotly_then_stops_and_frees_the_port() -> None:
    server = DashboardServer(create_app("http://127.0.0.1:9999", ["btcusdt"]), "127.0.0.1", 0)
    server.start()
    try:
        with urllib.request.urlopen(server.url + "/", timeout=5) as resp:
            assert resp.status == 200
            page = resp.read().decode()
        # every page script is listed, in file-name order: that order is the load order;
        # the screener page's own files are not
        scripts = sorted(p.name for p in ASSETS.glob("*.js") if not p.name.startswith("screener"))
        positions = [page.index("/assets/" + name) for name in scripts]
        assert positions == sorted(positions)
        assert "screener.js" not in page and "screener.css" not in page
        with urllib.request.urlopen(server.url + PLOTLY_ROUTE, timeout=5) as resp:
            assert b"plotly" in resp.read(2000).lower()
        with urllib.request.urlopen(server.url + "/_dash-layout", timeout=5) as resp:
            layout = json.loads(resp.read())
        assert layout["props"]["data-api-url"] == "http://127.0.0.1:9999"
        with urllib.request.urlopen(server.url + "/assets/00-core.js", timeout=5) as resp:
            assert b"dash_clientside" in resp.read()
    finally:
        server.stop()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(server.url + "/", timeout=2)
    with socket.socket() as s:  # the port is free again
        s.bind(("127.0.0.1", server.port))


def test_screener_page_served_with_its_scripts_and_the_api_url_escaped() -> None:
    api = 'http://127.0.0.1:9999/"><script>'
    server = DashboardServer(create_app(api, ["btcusdt"]), "127.0.0.1", 0)
    server.start()
    try:
        with urllib.request.urlopen(server.url + "/screener", timeout=5) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/html")
            page = resp.read().decode()
        positions = [page.index(f'src="/assets/{name}"') for name in ("00-core.js", "82-keys.js", "screener.js")]
        assert positions == sorted(positions)
        assert 'data-api-url="http://127.0.0.1:9999/&quot;&gt;&lt;script&gt;"' in page
        assert "<script>\"" not in page
        with urllib.request.urlopen(server.url + "/assets/screener.js", timeout=5) as resp:
            assert b"SCREENER" in resp.read()
        with urllib.request.urlopen(server.url + "/_dash-layout", timeout=5) as resp:
            assert '"href": "/screener"' in json.dumps(json.loads(resp.read()))
    finally:
        server.stop()
