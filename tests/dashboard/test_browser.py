"""The dashboard in headless Chromium against the real stack (simulated exchange,
ingestion, API) on loopback. One stack and one browser per module.

No test depends on another or on their order: the console check loads a page of its
own, and every other test gets the shared page only once the market runs with no
fault, the API serves, the page is live on BTCUSDT and frames are flowing. Waits are
for the page or the stack to show something, with a generous ceiling.
"""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Browser, Page, sync_playwright  # noqa: E402

from dashboard.harness import CHROMIUM, RunningDashboard, launch_chromium, running_dashboard  # noqa: E402
from tests.waiting import CEILING_S  # noqa: E402

pytestmark = pytest.mark.browser

if not os.path.exists(CHROMIUM):
    pytest.skip(f"no Chromium at {CHROMIUM} (make chromium)", allow_module_level=True)

PUSH_S = 0.5
CEILING_MS = int(CEILING_S * 1000)
LIQ = "window.dash_clientside.liq"
LADDER_JS = """() => Array.from(document.querySelectorAll('#ladder .lrow')).map(r => ({
    side: r.dataset.side, price: r.dataset.price === '' ? null : Number(r.dataset.price),
    qty: Number(r.dataset.qty), wall: r.dataset.wall === '1', cls: r.className}))"""


@pytest.fixture(scope="module")
def dash_env() -> Iterator[RunningDashboard]:
    with running_dashboard(push_interval_s=PUSH_S) as rd:
        yield rd


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        chromium = launch_chromium(pw)
        try:
            yield chromium
        finally:
            chromium.close()


def open_page(browser: Browser, env: RunningDashboard) -> tuple[Page, list[str]]:
    """A new tab on the dashboard, collecting console errors, once it has a frame."""
    errors: list[str] = []
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(CEILING_MS)
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
    page.goto(env.url)
    page.wait_for_function(f"() => {LIQ}?.debug().seq != null")
    return page, errors


@pytest.fixture(scope="module")
def shared_page(browser: Browser, dash_env: RunningDashboard) -> Iterator[Page]:
    page, _errors = open_page(browser, dash_env)
    yield page
    page.close()


def stack_ready(env: RunningDashboard) -> None:
    """No fault, the market running, the API serving, both books in sync."""
    handle = env.stack
    env.loop.call(handle.leave_clean)
    if handle.stack.api.server.should_exit:  # an API stop left behind
        env.loop.run(handle.stack.start_api_again())
    env.loop.run(handle.wait_synced(), timeout=None)


@pytest.fixture
def page(shared_page: Page, dash_env: RunningDashboard) -> Page:
    """The shared page, with what every test may assume re-established whatever the
    test before it did (or failed to undo)."""
    stack_ready(dash_env)
    shared_page.wait_for_function("() => document.getElementById('liq-root').dataset.conn === 'live'")
    if shared_page.get_attribute("#ladder", "data-symbol") != "btcusdt":
        shared_page.click("label:has-text('BTCUSDT')")
        shared_page.wait_for_function("() => document.getElementById('ladder').dataset.symbol === 'btcusdt'")
    shared_page.evaluate("() => window.scrollTo(0, 0)")  # as loaded (a click may have scrolled it)
    seq = debug(shared_page)["seq"]
    shared_page.wait_for_function(f"() => {LIQ}.debug().seq > {seq}")  # frames flowing
    return shared_page


def api_get(env: RunningDashboard, path: str) -> Any:
    with urllib.request.urlopen(env.api_url + path, timeout=CEILING_S) as resp:
        return json.loads(resp.read())


def ladder(page: Page) -> list[dict[str, Any]]:
    return list(page.evaluate(LADDER_JS))


def debug(page: Page) -> dict[str, Any]:
    return dict(page.evaluate(f"() => {LIQ}.debug()"))


def test_page_loads_without_console_errors_and_every_panel_renders(
    browser: Browser, dash_env: RunningDashboard
) -> None:
    stack_ready(dash_env)
    page, errors = open_page(browser, dash_env)  # a page of its own: its console from the start
    try:
        check_every_panel(page, errors)
    finally:
        page.close()


def check_every_panel(page: Page, errors: list[str]) -> None:
    # the 3D surface is drawn right after the history and then every 5 s
    page.wait_for_function(
        """() => ['heatmap', 'depth', 'surface'].every(id => {
                   const d = document.getElementById(id); return d && d.data && d.data.length; })""",
    )
    heat_types = page.evaluate("() => document.getElementById('heatmap').data.map(t => t.name + ':' + t.type)")
    assert {"resting size:heatmap", "volume profile:bar", "best bid:scattergl", "best ask:scattergl",
            "buys:scattergl", "sells:scattergl"} <= set(heat_types)
    assert page.evaluate("() => document.getElementById('surface').data[0].type") == "surface"
    rows = ladder(page)
    assert [r["side"] for r in rows].count("bid") == 10 and [r["side"] for r in rows].count("ask") == 10
    assert all(r["price"] is not None for r in rows)
    for ident in ("m-mid", "m-spread", "m-micro", "m-imb", "m-ofi", "m-bidvol", "m-askvol"):
        assert page.inner_text(f"#{ident}") not in ("", "\u2013"), ident
    assert page.inner_text("#feed [data-field=messages_per_s]") not in ("", "\u2013")
    assert "BTCUSDT" in page.inner_text("#sync-chips") and "ETHUSDT" in page.inner_text("#sync-chips")
    assert page.get_attribute("#liq-root", "data-conn") == "live"
    page.wait_for_function("() => /updated [0-9.]+ s ago/.test(document.getElementById('update-age').textContent)")
    assert errors == [], errors


def test_main_panels_fit_a_1400x900_window(page: Page) -> None:
    for ident in ("banner", "metrics", "panel-ladder", "panel-heatmap", "panel-depth", "panel-alerts"):
        box = page.locator(f"#{ident}").bounding_box()
        assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= 900 + 1, (ident, box)


def test_banner_says_simulated(page: Page) -> None:
    page.wait_for_function("() => document.getElementById('banner').classList.contains('banner-sim')")
    assert "SIMULATED" in page.inner_text("#src-badge")
    assert "src-sim" in (page.get_attribute("#src-badge", "class") or "")


def test_ladder_matches_the_book_endpoint_then_moves(dash_env: RunningDashboard, page: Page) -> None:
    handle = dash_env.stack
    # A frozen market, and the feed holding the last event sent: the next frame and
    # /book show one update id, with nothing in flight that could move it.
    dash_env.loop.call(handle.sim.pause)
    try:
        dash_env.loop.run(handle.settled("btcusdt"), timeout=None)
        book = api_get(dash_env, "/book/btcusdt?depth=10")
        page.wait_for_function(
            f"() => document.getElementById('ladder').dataset.lastUpdateId === '{book['last_update_id']}'"
        )
        rows = ladder(page)
        book = api_get(dash_env, "/book/btcusdt?depth=10")
        assert str(book["last_update_id"]) == page.get_attribute("#ladder", "data-last-update-id")
    finally:
        dash_env.loop.call(handle.sim.resume)
    bids = [[r["price"], r["qty"]] for r in rows if r["side"] == "bid"]
    asks = sorted(([r["price"], r["qty"]] for r in rows if r["side"] == "ask"), key=lambda lv: lv[0])
    assert bids == book["bids"]
    assert asks == book["asks"]

    before = (debug(page)["seq"], [r["qty"] for r in rows], page.inner_text("#m-mid"))
    page.wait_for_function(
        f"""([seq, qtys]) => {{
              const rows = Array.from(document.querySelectorAll('#ladder .lrow'));
              return {LIQ}.debug().seq > seq + 2 && rows.some((r, i) => Number(r.dataset.qty) !== qtys[i]);
           }}""",
        arg=[before[0], before[1]],
    )


def test_symbol_switch_changes_data_without_reload(page: Page) -> None:
    page.evaluate("() => { window.__sameDocument = true; }")
    assert ladder(page)[0]["price"] > 50_000
    page.click("label:has-text('ETHUSDT')")
    page.wait_for_function(
        """() => { const l = document.getElementById('ladder');
                   const bestBid = Number(document.querySelector('#ladder .lrow.bid').dataset.price);
                   return l.dataset.symbol === 'ethusdt' && bestBid < 10000; }""",
    )
    prices = [r["price"] for r in ladder(page)]
    assert all(1_000 < p < 10_000 for p in prices), prices
    assert page.evaluate("() => window.__sameDocument === true"), "the page was reloaded"
    heat_y = page.evaluate("() => document.getElementById('heatmap').data[0].y")
    assert heat_y and max(heat_y) < 10_000
    page.click("label:has-text('BTCUSDT')")
    page.wait_for_function("() => Number(document.querySelector('#ladder .lrow.bid').dataset.price) > 50000")
    assert page.evaluate("() => window.__sameDocument === true")


def test_injected_wall_is_highlighted_on_the_ladder_and_alerted(dash_env: RunningDashboard, page: Page) -> None:
    sim = dash_env.stack.sim
    # Planned for two minutes (not timed: the page only has to see it while it stands).
    episode = dash_env.loop.run(
        sim.inject_wall("btcusdt", side="bid", distance_ticks=2, multiple=25.0, duration_s=120.0)
    )
    price = float(episode.prices[0])
    page.wait_for_function(
        """(price) => Array.from(document.querySelectorAll('#ladder .lrow.wall')).some(
               r => r.dataset.side === 'bid' && Math.abs(Number(r.dataset.price) - price) < 1e-6)""",
        arg=price,
    )
    page.wait_for_function(
        """(price) => Array.from(document.querySelectorAll('#alerts .alert[data-type=WALL]')).some(
               a => a.dataset.side === 'bid' && Math.abs(Number(a.dataset.price) - price) < 1e-6)""",
        arg=price,
    )
    colour = page.evaluate(
        "(p) => getComputedStyle(Array.from(document.querySelectorAll('#ladder .lrow.wall'))"
        ".find(r => Number(r.dataset.price) === p).querySelector('.lbar')).backgroundColor",
        price,
    )
    assert colour == "rgb(255, 152, 0)", colour  # orange


def test_impact_calculator_shows_vwap_and_errors(page: Page) -> None:
    page.fill("#impact-size", "2.5")
    page.click("#impact-run")
    page.wait_for_function("() => document.getElementById('impact-result').dataset.status === 'ok'")
    text = page.inner_text("#impact-result")
    assert "VWAP" in text and "levels consumed" in text
    page.wait_for_function(
        "() => { const d = document.getElementById('impact-curve'); return d.data && d.data[0].x.length >= 5; }"
    )
    page.fill("#impact-size", "-1")
    page.click("#impact-run")
    page.wait_for_function("() => document.getElementById('impact-result').dataset.status === 'error'")
    assert "positive" in page.inner_text("#impact-result")


def test_page_reconnects_by_itself_after_the_api_restarts(dash_env: RunningDashboard, page: Page) -> None:
    stack = dash_env.stack.stack
    dash_env.loop.run(stack.stop_api())
    try:
        page.wait_for_function("() => document.getElementById('liq-root').dataset.conn === 'reconnecting'")
        assert "reconnecting" in page.inner_text("#conn-status")
    finally:
        dash_env.loop.run(stack.start_api_again())
    page.wait_for_function("() => document.getElementById('liq-root').dataset.conn === 'live'")
    seq = debug(page)["seq"]
    page.wait_for_function(f"() => {LIQ}.debug().seq > {seq}")
