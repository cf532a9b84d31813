"""The dashboard in headless Chromium against the real stack (simulated exchange,
ingestion, API) on loopback. One stack and one browser per module.

No test depends on another or on their order: the console check loads a page of its
own, and every other test gets the shared page only once the market runs with no
fault, the API serves, the page is live on BTCUSDT and frames are flowing. Waits are
for the page or the stack to show something, with a generous ceiling.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Browser, Page, sync_playwright  # noqa: E402

from dashboard.app import create_app  # noqa: E402
from dashboard.harness import CHROMIUM, RunningDashboard, launch_chromium, running_dashboard  # noqa: E402
from dashboard.server import DashboardServer  # noqa: E402
from exchange_sim.protocol import StreamKey  # noqa: E402
from tests.dashboard.contrast import STATE_SWATCHES_JS, contrast_failures, measure_contrast  # noqa: E402
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
    assert handle.stack.api is not None
    if handle.stack.api.server.should_exit:  # an API stop left behind
        env.loop.run(handle.stack.start_api_again())
    env.loop.run(handle.wait_synced(), timeout=None)


@pytest.fixture
def page(shared_page: Page, dash_env: RunningDashboard) -> Page:
    """The shared page, with what every test may assume re-established whatever the
    test before it did (or failed to undo)."""
    stack_ready(dash_env)
    shared_page.wait_for_function("() => document.getElementById('liq-root')?.dataset.conn === 'connected'")
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
    page.wait_for_function(
        """() => ['heatmap', 'depth'].every(id => {
                   const d = document.getElementById(id); return d && d.data && d.data.length; })""",
    )
    heat_types = page.evaluate("() => document.getElementById('heatmap').data.map(t => t.name + ':' + t.type)")
    # no WebGL in the heatmap: its set-up alone was a long task of half a second
    assert {"resting size:heatmap", "volume profile:bar", "best bid:scatter", "best ask:scatter"} <= set(heat_types)
    # the trades painted over the plot area, buys and sells
    page.wait_for_function(
        """() => { const c = document.getElementById('heatmap-trades');
                   return c && Number(c.dataset.buys) > 0 && Number(c.dataset.sells) > 0; }""")
    # the 3D surface (below the fold) is drawn once it scrolls into view, then every 5 s
    page.locator("#panel-surface").scroll_into_view_if_needed()
    page.wait_for_function("() => document.getElementById('surface').data?.length > 0")
    assert page.evaluate("() => document.getElementById('surface').data[0].type") == "surface"
    # this stack records nothing: no timeline, the live page as it always was
    page.wait_for_function("() => document.getElementById('timeline').dataset.available === 'false'")
    assert page.is_hidden("#timeline") and page.is_hidden("#hist-badge")
    rows = ladder(page)
    assert [r["side"] for r in rows].count("bid") == 10 and [r["side"] for r in rows].count("ask") == 10
    assert all(r["price"] is not None for r in rows)
    for ident in ("m-mid", "m-spread", "m-micro", "m-imb", "m-ofi", "m-bidvol", "m-askvol"):
        assert page.inner_text(f"#{ident}") not in ("", "\u2013"), ident
    assert page.inner_text("#feed [data-field=messages_per_s]") not in ("", "\u2013")
    assert "BTCUSDT" in page.inner_text("#sync-chips") and "ETHUSDT" in page.inner_text("#sync-chips")
    assert page.get_attribute("#liq-root", "data-conn") == "connected"
    assert page.inner_text("#conn-status") == "connected"  # simulated data: never "live", never "replaying"
    page.wait_for_function("() => /updated [0-9.]+ s ago/.test(document.getElementById('update-age').textContent)")
    assert errors == [], errors


class SimulateRequests:
    """Every /simulate request the page makes, from the browser's network events:
    how many, and the most that were in flight at once. Playwright's sync API hands
    events over only while it is called, so wait with page.wait_for_timeout(), not
    time.sleep(), inside the block."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.count = 0
        self.max_in_flight = 0
        self._open: set[int] = set()  # requests seen starting and not yet ended
        self._lock = threading.Lock()

    def _start(self, request: Any) -> None:
        if "/simulate/" in request.url:
            with self._lock:
                self.count += 1
                self._open.add(id(request))
                self.max_in_flight = max(self.max_in_flight, len(self._open))

    def _end(self, request: Any) -> None:
        with self._lock:  # one that started before the block is not counted
            self._open.discard(id(request))

    def __enter__(self) -> SimulateRequests:
        self.page.on("request", self._start)
        self.page.on("requestfinished", self._end)
        self.page.on("requestfailed", self._end)
        return self

    def __exit__(self, *exc: object) -> None:
        self.page.remove_listener("request", self._start)
        self.page.remove_listener("requestfinished", self._end)
        self.page.remove_listener("requestfailed", self._end)


def test_impact_panel_shows_a_live_curve_without_any_click(browser: Browser, dash_env: RunningDashboard) -> None:
    # A page of its own, on which nothing is clicked: the panel fills itself from the first frames.
    stack_ready(dash_env)
    page, _errors = open_page(browser, dash_env)
    try:
        check_impact_without_click(page)
    finally:
        page.close()


def check_impact_without_click(page: Page) -> None:
    page.wait_for_function(
        """() => { const d = document.getElementById('impact-curve');
                   return d.data && d.data[0].x.length >= 5 && d.dataset.lastUpdateId; }""",
        timeout=60_000,
    )
    page.wait_for_function("() => document.getElementById('impact-result').dataset.status === 'ok'", timeout=60_000)
    result = page.inner_text("#impact-result")
    assert "VWAP" in result and "BTC (default size)" in result, result
    # BTCUSDT near 97,000: the default size is 1 BTC (about 100k USDT), the curve 0.1 .. 10 BTC
    assert page.input_value("#impact-size") == "1"
    sizes = page.evaluate("() => document.getElementById('impact-curve').data[0].x")
    assert math.isclose(min(sizes), 0.1) and math.isclose(max(sizes), 10.0), sizes
    slippage = page.evaluate("() => document.getElementById('impact-curve').data[0].y")
    assert all(y is not None and y >= 0 for y in slippage), slippage
    assert slippage == sorted(slippage), "slippage must not fall as the size grows"

    # Below the fold (1400x900) it is not refreshed: no request while nobody can see it.
    assert page.evaluate("() => window.scrollY") == 0
    page.wait_for_function(f"() => {LIQ}.debug().impact.visible === false", timeout=5_000)
    # and the walk drawn at load over: its second request (the curve) may still be
    # running when the first result shows, and is no refresh of an unseen panel
    page.wait_for_function(f"() => {LIQ}.debug().impact.visible === false && !{LIQ}.debug().impact.inFlight")
    with SimulateRequests(page) as unseen:
        page.wait_for_timeout(5_000)
    assert unseen.count == 0, unseen.count

    # On screen it keeps up with the book: a later walk of a later book, still without a
    # click, never more than one request at a time, at most one walk every 2 s.
    page.locator("#panel-impact").scroll_into_view_if_needed()
    try:
        check_live_impact(page)
    finally:
        page.evaluate("() => window.scrollTo(0, 0)")


def check_live_impact(page: Page) -> None:
    # Counting starts before the reference walk is read, at a moment no walk is in
    # flight: a walk already running when the count began would show only its second
    # request (the curve), and the later walk would be judged on a request short.
    with SimulateRequests(page) as seen:
        started = time.monotonic()
        page.wait_for_function(f"() => !{LIQ}.debug().impact.inFlight", timeout=60_000)
        first = page.evaluate(
            """() => { const c = document.getElementById('impact-curve').dataset;
                       const r = document.getElementById('impact-result').dataset;
                       return [c.lastUpdateId, c.updatedAt, r.lastUpdateId]; }"""
        )
        page.wait_for_function(
            """([curveId, curveAt, resultId]) => {
                   const c = document.getElementById('impact-curve').dataset;
                   const r = document.getElementById('impact-result').dataset;
                   return c.lastUpdateId !== curveId && Number(c.updatedAt) > Number(curveAt)
                          && r.lastUpdateId !== resultId; }""",
            arg=first,
            timeout=60_000,
        )
        page.wait_for_timeout(max(0.0, 8.0 - (time.monotonic() - started)) * 1000)
        elapsed = time.monotonic() - started
    assert seen.count >= 2, seen.count
    assert seen.max_in_flight == 1, seen.max_in_flight
    # two requests (the size, then the curve) per refresh, one refresh per 2 s at most,
    # plus the curve of a walk that ended as the count began; frames arrive every 0.5 s,
    # so polling per frame would make about 32 here
    assert seen.count <= 2 * (math.floor(elapsed / 2.0) + 1) + 1, (seen.count, elapsed)
    assert int(page.get_attribute("#impact-curve", "data-last-update-id") or 0) > int(first[0])


def test_every_visible_text_is_readable(page: Page) -> None:
    page.wait_for_function("() => document.getElementById('impact-result').dataset.status === 'ok'", timeout=60_000)
    measured = measure_contrast(page)
    assert len(measured) > 100, f"only {len(measured)} text elements found"
    texts = {m["text"] for m in measured}
    assert {"buy", "sell", "BTCUSDT", "VWAP"} <= texts, "the impact form or the switcher was not measured"
    failures = contrast_failures(measured)
    assert not failures, "text under 4.5:1 contrast:\n" + "\n".join(failures)


def test_every_state_the_page_can_show_is_readable(page: Page) -> None:
    """Banners of every source, every sync chip and connection state, ladder rows over
    full and empty bars, wall rows, every alert type, errors: drawn with the page's own
    classes in a scratch block, measured, then removed."""
    count = page.evaluate(STATE_SWATCHES_JS)
    try:
        assert count > 40
        measured = measure_contrast(page, "#contrast-swatches")
        assert len(measured) >= count, (len(measured), count)
        failures = contrast_failures(measured)
        assert not failures, "text under 4.5:1 contrast:\n" + "\n".join(failures)
    finally:
        page.evaluate("() => document.getElementById('contrast-swatches').remove()")


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


def set_min_notional(page: Page, text: str) -> None:
    """Type the alerts filter as a user would; empty is the default. The page keeps the
    number it read, in JavaScript's spelling ('50000' for Python's '50000.0'), so the
    kept value is compared as a number."""
    page.fill("#alerts-min-notional", text)
    page.wait_for_function(
        """(want) => { const kept = window.localStorage.getItem('liq.alerts.minNotional.btcusdt');
                       return want === null ? kept === null : kept !== null && Number(kept) === want; }""",
        arg=None if text == "" else float(text),
    )


def test_injected_wall_is_highlighted_on_the_ladder_and_alerted(dash_env: RunningDashboard, page: Page) -> None:
    sim = dash_env.stack.sim
    set_min_notional(page, "0")  # whatever its notional in the simulated market
    try:
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
                   a => a.dataset.side === 'bid' && a.dataset.live === '1'
                        && Math.abs(Number(a.dataset.price) - price) < 1e-6)""",
            arg=price,
        )
        colour = page.evaluate(
            "(p) => getComputedStyle(Array.from(document.querySelectorAll('#ladder .lrow.wall'))"
            ".find(r => Number(r.dataset.price) === p).querySelector('.lbar')).backgroundColor",
            price,
        )
        assert colour == "rgb(255, 152, 0)", colour  # orange
    finally:
        set_min_notional(page, "")


# The panel as the page drew it (groups, then their alerts, in document order), and
# GET /alerts for the filter the panel shows: fetched by the page, compared there.
PANEL_EQUALS_API_JS = """async () => {
    const box = document.getElementById('alerts');
    const min = box.dataset.minNotional;
    if (min === undefined) return false;
    const page = Array.from(box.querySelectorAll('.agroup')).map(g => [g.dataset.side, g.dataset.priceBin,
        Array.from(g.querySelectorAll('.alert')).map(a => a.dataset.id + ':' + a.dataset.status)]);
    const api = await (await fetch(window.LIQ.connection.apiUrl('/alerts/btcusdt?min_notional=' + min))).json();
    const theirs = api.groups.map(g => [g.side, g.price_bin === null ? '' : String(g.price_bin),
        g.alerts.map(a => a.id + ':' + a.status)]);
    window.__panelVsApi = {page: page, api: theirs, min: min};
    return JSON.stringify(page) === JSON.stringify(theirs) && page.length > 0;
}"""


def test_alert_panel_shows_what_the_api_shows_filtered_grouped_and_ordered(dash_env: RunningDashboard,
                                                                           page: Page) -> None:
    """With the market frozen (alerts settle), the panel's groups and their alerts, in
    order, equal GET /alerts with the same filter: at 0 (every alert), then at the
    lowest peak notional above 0 held, which hides at least the smallest one."""
    handle = dash_env.stack
    page.wait_for_function(f"() => {LIQ}.debug().alerts >= 2")
    dash_env.loop.call(handle.sim.pause)
    try:
        set_min_notional(page, "0")
        page.wait_for_function(PANEL_EQUALS_API_JS)
        held = page.evaluate("() => Array.from(window.LIQ.data.alerts)")
        floor = min(a["peak_notional"] or 0.0 for a in held if (a["peak_notional"] or 0.0) > 0) + 0.01
        set_min_notional(page, repr(floor))
        page.wait_for_function(PANEL_EQUALS_API_JS)
        hidden = page.inner_text("#alerts .ahidden")
        assert hidden.endswith("below it") and int(hidden.split()[0]) >= 1, hidden  # the smallest at least
        shown = page.evaluate("() => Array.from(document.querySelectorAll('#alerts .alert')).map(a => Number("
                              "window.LIQ.data.alertById.get(a.dataset.id).peak_notional))")
        assert shown and min(shown) >= floor
    finally:
        set_min_notional(page, "")
        dash_env.loop.call(handle.sim.resume)


def test_alert_filter_defaults_to_the_apis_and_is_kept_per_symbol_across_reloads(
    browser: Browser, dash_env: RunningDashboard
) -> None:
    stack_ready(dash_env)
    default = dash_env.stack.settings.alert_min_notional_usdt
    page, errors = open_page(browser, dash_env)  # a context of its own: empty storage
    try:
        page.wait_for_function(f"() => Number(document.getElementById('alerts').dataset.minNotional) === {default}")
        assert page.input_value("#alerts-min-notional") == ""
        assert page.get_attribute("#alerts-min-notional", "placeholder") == f"{default:g}"
        page.fill("#alerts-min-notional", "-5")  # refused: marked, not applied, not kept
        page.wait_for_function("() => document.getElementById('alerts-min-notional').classList.contains('invalid')")
        assert page.evaluate("() => window.localStorage.getItem('liq.alerts.minNotional.btcusdt')") is None
        set_min_notional(page, "125000")
        page.wait_for_function("() => document.getElementById('alerts').dataset.minNotional === '125000'")
        assert page.evaluate("() => new URLSearchParams(location.search).get('min')") == "125000"
        page.goto(dash_env.url)  # the plain address: the filter from this browser, not from a link's min=
        page.wait_for_function(f"() => {LIQ}?.debug().seq != null")
        page.wait_for_function("() => document.getElementById('alerts').dataset.minNotional === '125000'")
        assert page.input_value("#alerts-min-notional") == "125000"
        page.click("label:has-text('ETHUSDT')")  # its own filter: the default
        page.wait_for_function(f"() => document.getElementById('ladder').dataset.symbol === 'ethusdt' && "
                               f"Number(document.getElementById('alerts').dataset.minNotional) === {default}")
        assert page.input_value("#alerts-min-notional") == ""
        page.click("label:has-text('BTCUSDT')")
        page.wait_for_function("() => document.getElementById('ladder').dataset.symbol === 'btcusdt' && "
                               "document.getElementById('alerts').dataset.minNotional === '125000'")
        assert errors == [], errors
    finally:
        page.close()


def test_impact_calculator_shows_vwap_and_errors(page: Page) -> None:
    page.fill("#impact-size", "2.5")
    page.click("#impact-run")
    page.wait_for_function(
        """() => { const r = document.getElementById('impact-result');
                   return r.dataset.status === 'ok' && r.dataset.size === '2.5'; }""",
        timeout=60_000,
    )
    text = page.inner_text("#impact-result")
    assert "VWAP" in text and "levels consumed" in text and "2.500 BTC" in text
    page.wait_for_function(
        """() => { const d = document.getElementById('impact-curve');
                   return d.data && d.data[0].x.length >= 5 && d.data[0].x.includes(2.5); }""",
        timeout=60_000,
    )
    page.click("label:has-text('sell')")  # the side applies at once, no Simulate needed
    page.wait_for_function(
        """() => document.getElementById('impact-curve').dataset.side === 'sell'
                 && document.getElementById('impact-result').dataset.side === 'sell'""",
        timeout=60_000,
    )
    assert "sell 2.500 BTC" in page.inner_text("#impact-result")
    page.fill("#impact-size", "-1")
    page.click("#impact-run")
    page.wait_for_function("() => document.getElementById('impact-result').dataset.status === 'error'")
    assert "positive" in page.inner_text("#impact-result")


def test_a_symbol_the_api_refuses_is_shown_as_disconnected(dash_env: RunningDashboard, page: Page) -> None:
    """Close code 1008 (unknown symbol): retrying cannot help, so the page says
    "disconnected" with the server's reason instead of "reconnecting" forever."""
    app = create_app(dash_env.api_url, ["xrpusdt", "btcusdt"], "SIMULATED market")
    server = DashboardServer(app, "127.0.0.1", 0)
    server.start()
    dash_env.stack.stack.allow_origin(server.url)
    assert page.context.browser is not None
    context = page.context.browser.new_context(viewport={"width": 1400, "height": 900})
    other = context.new_page()
    try:
        other.goto(server.url)
        other.wait_for_function("() => document.getElementById('liq-root')?.dataset.conn === 'disconnected'",
                                timeout=60_000)
        status = other.inner_text("#conn-status")
        assert status.startswith("disconnected") and "unknown symbol 'xrpusdt'" in status, status
        other.click("label:has-text('BTCUSDT')")  # a served symbol connects as usual
        other.wait_for_function("() => document.getElementById('liq-root')?.dataset.status === 'connected'",
                                timeout=60_000)
        assert other.inner_text("#conn-status") == "connected"
    finally:
        context.close()
        server.stop()


def test_page_reconnects_by_itself_after_the_api_restarts(dash_env: RunningDashboard, page: Page) -> None:
    stack = dash_env.stack.stack
    dash_env.loop.run(stack.stop_api())
    try:
        page.wait_for_function("() => document.getElementById('liq-root')?.dataset.conn === 'reconnecting'")
        assert "reconnecting" in page.inner_text("#conn-status")
    finally:
        dash_env.loop.run(stack.start_api_again())
    page.wait_for_function("() => document.getElementById('liq-root')?.dataset.conn === 'connected'")
    assert page.inner_text("#conn-status") == "connected"
    seq = debug(page)["seq"]
    page.wait_for_function(f"() => {LIQ}.debug().seq > {seq}")


def test_derivatives_context_shows_in_the_metrics_bar_and_a_liquidation_on_the_heatmap(
        dash_env: RunningDashboard, page: Page) -> None:
    """Mark, index, basis, funding with its countdown and open interest in the metrics
    bar and the open interest as a line over the heatmap; a forceOrder sent by the
    exchange drawn on the heatmap as an outlined diamond (not a trade's triangle) and
    listed on the tape; forced sells over the burst threshold within its window raise a
    LIQUIDATION_BURST row in the alerts panel with its drain and refill figures."""
    for ident in ("m-mark", "m-index", "m-basis", "m-funding", "m-oi"):
        page.wait_for_function("(id) => !['', '\u2013'].includes(document.getElementById(id).textContent)", arg=ident)
    funding = page.text_content("#m-funding") or ""
    assert "%" in funding and re.search(r"\d+:\d\d:\d\d$", funding), funding  # the rate, then the countdown
    assert re.search(r"^[\d,.]+ (\u2013|[+-]?[\d.]+%)$", page.text_content("#m-oi") or "")  # interest, 5 min change
    sim = dash_env.stack.sim

    def send_liquidation() -> float:
        market = sim.state("btcusdt").market
        price = market.best_bid[0] * market.spec.tick_size
        order = {"s": "BTCUSDT", "S": "SELL", "o": "LIMIT", "f": "IOC", "q": "2.500", "p": f"{price - 50:.1f}",
                 "ap": f"{price:.1f}", "X": "FILLED", "l": "2.500", "z": "2.500", "T": market.now_ms}
        sim.hub.publish(StreamKey("btcusdt", "forceOrder"), json.dumps({"e": "forceOrder", "E": market.now_ms,
                                                                         "o": order}))
        return round(price, 1)

    price = dash_env.loop.call(send_liquidation)
    page.wait_for_function(
        """(price) => {
            const t = (document.getElementById('heatmap').data || []).find(x => x.name === 'longs liquidated');
            return t && t.y.some(y => Math.abs(y - price) < 1e-6);
        }""", arg=price)
    marker = page.evaluate("""() => {
        const t = document.getElementById('heatmap').data.find(x => x.name === 'longs liquidated');
        // trades are painted on the canvas over the plot, sells in the best ask's colour
        const trades = document.getElementById('heatmap-trades');
        const ask = document.getElementById('heatmap').data.find(x => x.name === 'best ask');
        return {symbol: t.marker.symbol, line: t.marker.line.width, colour: t.marker.color,
                tradeSymbol: trades.dataset.sellShape, tradeColour: ask.line.color};
    }""")
    assert marker["symbol"] == "diamond" and marker["line"] == 2 and marker["tradeSymbol"] == "triangle-down"
    assert marker["colour"] != marker["tradeColour"]
    # the simulated market liquidates too: wait for this one on the tape, not for any
    page.wait_for_function("() => Array.from(document.querySelectorAll('#liq-tape .liq[data-side=sell]'))"
                           ".some(x => x.textContent.startsWith('\u25bc long 2.500 @ '))")
    tape = page.evaluate("() => Array.from(document.querySelectorAll('#liq-tape .liq[data-side=sell]'))"
                         ".map(x => x.textContent)")
    assert any(t.startswith("\u25bc long 2.500 @ ") for t in tape), tape

    # the open interest: a line over the heatmap's time span, from the exchange's polls
    page.wait_for_function(
        "() => ((document.getElementById('heatmap').data || []).find(x => x.name === 'open interest') || {x: []})"
        ".x.length >= 1")

    # a burst: forced sells worth over the threshold (100,000 USDT within 5 s) and over
    # the panel's filter, sent at one exchange time. The liquidation above (and the
    # simulated market's own) may already have made a burst that these join, so its
    # alert is the one whose quantity grew by what was sent (a new one from nothing)
    floor = float(page.get_attribute("#alerts", "data-min-notional") or "0")
    total = 1.2 * max(100_000.0, floor)
    known = page.evaluate("() => Object.fromEntries(window.LIQ.data.alerts"
                          ".filter(a => a.type === 'LIQUIDATION_BURST' && a.burst).map(a => [a.id, a.burst.qty]))")

    def send_burst(count: int = 3) -> float:
        market = sim.state("btcusdt").market
        price = market.best_bid[0] * market.spec.tick_size
        qty = math.ceil(total / count / price * 1000) / 1000
        for _ in range(count):
            order = {"s": "BTCUSDT", "S": "SELL", "o": "LIMIT", "f": "IOC", "q": f"{qty:.3f}",
                     "p": f"{price - 50:.1f}", "ap": f"{price:.1f}", "X": "FILLED", "l": f"{qty:.3f}",
                     "z": f"{qty:.3f}", "T": market.now_ms}
            sim.hub.publish(StreamKey("btcusdt", "forceOrder"),
                            json.dumps({"e": "forceOrder", "E": market.now_ms, "o": order}))
        return qty * count

    sent_qty = dash_env.loop.call(send_burst)
    burst_id = page.wait_for_function(
        """([known, sent]) => {
            const rows = Array.from(document.querySelectorAll('#alerts .alert[data-type=LIQUIDATION_BURST]'));
            const grown = rows.find(r => { const a = window.LIQ.data.alertById.get(r.dataset.id);
                return a && a.burst && a.burst.qty >= (known[r.dataset.id] || 0) + sent - 0.001; });
            return grown ? grown.dataset.id : null; }""", arg=[known, sent_qty]).json_value()
    # read in one go: the panel redraws its rows when a frame changes an alert
    side, facts = page.evaluate(
        "(id) => { const a = document.querySelector(`#alerts .alert[data-id=\"${id}\"]`);"
        " return [a.dataset.side, a.innerText]; }", burst_id)
    assert side == "bid", (side, facts)  # forced sells hit the bids
    match = re.search(r"longs liquidated: (\d+) \u00d7, ([\d.,]+) \(at least\)", facts)
    assert match and int(match.group(1)) >= 3 and float(match.group(2).replace(",", "")) >= sent_qty - 0.001, facts
    for band in (10, 25):
        assert re.search(rf"{band} bps: drained (\d+%|\u2013), refill (not yet|[\d.]+ s)", facts), facts
