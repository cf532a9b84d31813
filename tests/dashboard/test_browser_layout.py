"""The dashboard at three screen sizes, its address and its keyboard, in headless
Chromium against the real stack (simulated exchange, ingestion, API) on loopback.

One stack, one browser and one page for the module. Every test opens the address it
needs in that page (at the size it needs, with this browser's saved panel choice
cleared), so none depends on another or on their order. Waits are for the page to
show something, with a generous ceiling; nothing is timed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Page, sync_playwright  # noqa: E402

from dashboard.harness import CHROMIUM, RunningDashboard, launch_chromium, running_dashboard  # noqa: E402
from tests.dashboard.contrast import contrast_failures, measure_contrast  # noqa: E402
from tests.waiting import CEILING_S  # noqa: E402

pytestmark = pytest.mark.browser

if not os.path.exists(CHROMIUM):
    pytest.skip(f"no Chromium at {CHROMIUM} (make chromium)", allow_module_level=True)

PUSH_S = 0.5
CEILING_MS = int(CEILING_S * 1000)
LIQ = "window.dash_clientside.liq"
LIQ_STATE = "window.LIQ.state"
SIZES = {"desktop": (1400, 900), "tablet": (1024, 768), "phone": (390, 844)}
ALL_PANELS = ["ladder", "heatmap", "depth", "alerts", "surface", "impact", "feed"]
# the 3D surface is off by default below 1200 px
DEFAULT_PANELS = {
    "desktop": ALL_PANELS,
    "tablet": [p for p in ALL_PANELS if p != "surface"],
    "phone": [p for p in ALL_PANELS if p != "surface"],
}

# Boxes of the page's blocks (page coordinates) and whether each is displayed.
BOXES_JS = """() => {
  const blocks = ['#banner', '#symbol', '#view-controls', '#metrics']
    .concat(Array.from(document.querySelectorAll('section[data-panel]')).map(s => '#' + s.id));
  return blocks.map(sel => {
    const n = document.querySelector(sel);
    const r = n.getBoundingClientRect();
    return { sel: sel, x: r.left + window.scrollX, y: r.top + window.scrollY, w: r.width, h: r.height,
             shown: n.offsetParent !== null && r.width > 0 && r.height > 0 };
  });
}"""

# What each panel has drawn so far: counters that grow when it is drawn again.
MARKS_JS = """() => {
  const s = window.dash_clientside.liq.debug().stats.panels;
  const rev = (id) => { const d = document.getElementById(id); return d && d.layout ? d.layout.datarevision || 0 : 0; };
  return {
    ladder: Number(document.getElementById('ladder').dataset.seq || 0),
    heatmap: rev('heatmap'), depth: rev('depth'), surface: rev('surface'),
    feed: (s.feed || {}).calls || 0, metrics: (s.metrics || {}).calls || 0,
    impact: Number(document.getElementById('impact-result').dataset.updatedAt || 0),
  };
}"""

# Every control a user can operate, and the name assistive technology gives it.
CONTROL_NAMES_JS = """() => {
  const nameOf = (n) => {
    const by = n.getAttribute('aria-labelledby');
    if (by) return by.split(/\\s+/).map(id => (document.getElementById(id) || {}).textContent || '').join(' ').trim();
    if (n.getAttribute('aria-label')) return n.getAttribute('aria-label').trim();
    if (n.id) { const l = document.querySelector('label[for="' + n.id + '"]'); if (l) return l.textContent.trim(); }
    const wrap = n.closest('label');
    if (wrap) return wrap.textContent.trim();
    return (n.textContent || n.getAttribute('title') || '').trim();
  };
  const controls = document.querySelectorAll(
    'button, summary, input, select, textarea, [role=listbox], [role=dialog], dialog, section[data-panel]');
  return Array.from(controls).filter(n => !n.closest('.js-plotly-plot'))
    .map(n => ({ what: n.tagName.toLowerCase() + (n.id ? '#' + n.id : '') + (n.type ? '[' + n.type + ']' : ''),
                 name: nameOf(n) }));
}"""


@pytest.fixture(scope="module")
def dash_env() -> Iterator[RunningDashboard]:
    with running_dashboard(push_interval_s=PUSH_S) as rd:
        yield rd


@pytest.fixture(scope="module")
def module_page(dash_env: RunningDashboard) -> Iterator[tuple[Page, list[str]]]:
    errors: list[str] = []
    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(CEILING_MS)
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
            yield page, errors
        finally:
            browser.close()


@pytest.fixture
def page(module_page: tuple[Page, list[str]], dash_env: RunningDashboard) -> Page:
    """The module's page, on no address yet; the stack with no fault or injected episode."""
    handle = dash_env.stack
    dash_env.loop.call(handle.leave_clean)
    dash_env.loop.run(handle.wait_synced(), timeout=None)
    page_, errors = module_page
    page_.emulate_media(reduced_motion="no-preference")
    errors.clear()
    return page_


def open_view(page: Page, env: RunningDashboard, query: str = "", size: str = "desktop") -> None:
    """Open the dashboard at ``query`` in a window of ``size``, with no saved panel
    choice, and wait until it shows frames."""
    width, height = SIZES[size]
    page.set_viewport_size({"width": width, "height": height})
    if page.url.startswith(env.url):  # else the module's first address: nothing saved yet
        page.evaluate("() => window.localStorage.clear()")
    page.goto(env.url + "/" + query)
    page.wait_for_function(f"() => {LIQ}?.debug().seq != null")
    page.wait_for_function("() => document.getElementById('liq-root')?.dataset.conn === 'connected'")


def debug(page: Page) -> dict[str, Any]:
    return dict(page.evaluate(f"() => {LIQ}.debug()"))


def view(page: Page) -> dict[str, Any]:
    return dict(debug(page)["view"])


def query_of(page: Page) -> dict[str, list[str]]:
    return parse_qs(urlsplit(page.url).query, keep_blank_values=True)


def shown_panels(page: Page) -> list[str]:
    return list(page.evaluate(
        "() => Array.from(document.querySelectorAll('section[data-panel]'))"
        ".filter(s => s.offsetParent !== null).map(s => s.dataset.panel)"
    ))


def overlaps(a: dict[str, float], b: dict[str, float], eps: float = 0.5) -> bool:
    return (a["x"] < b["x"] + b["w"] - eps and b["x"] < a["x"] + a["w"] - eps
            and a["y"] < b["y"] + b["h"] - eps and b["y"] < a["y"] + a["h"] - eps)


def wait_all_grow(page: Page, names: list[str]) -> None:
    before = page.evaluate(MARKS_JS)
    page.wait_for_function(
        f"([names, before]) => {{ const now = ({MARKS_JS})(); return names.every(n => now[n] > before[n]); }}",
        arg=[names, before],
    )


# ---------------------------------------------------------------- layout


@pytest.mark.parametrize("size", list(SIZES))
def test_each_size_fits_the_screen_and_every_panel_it_shows_updates(
    size: str, page: Page, dash_env: RunningDashboard, module_page: tuple[Page, list[str]]
) -> None:
    open_view(page, dash_env, size=size)
    width, _height = SIZES[size]
    assert page.get_attribute("#liq-root", "data-size") == size
    assert shown_panels(page) == DEFAULT_PANELS[size]
    assert query_of(page)["panels"] == [",".join(DEFAULT_PANELS[size])]
    page.wait_for_function(
        "() => ['heatmap', 'depth'].every(id => document.getElementById(id)?._fullLayout)"
    )

    # no sideways scrolling, no block over another, every block inside the page's width
    assert page.evaluate("() => document.documentElement.scrollWidth") <= width
    boxes = [b for b in page.evaluate(BOXES_JS) if b["shown"]]
    assert {b["sel"] for b in boxes} >= {"#banner", "#symbol", "#view-controls", "#metrics"}
    for i, a in enumerate(boxes):
        assert a["x"] >= 0 and a["x"] + a["w"] <= width + 0.5, a
        for b in boxes[i + 1:]:
            assert not overlaps(a, b), (a, b)
    # every figure inside its own panel, drawn at the size of its box
    figures = page.evaluate(
        """() => ['heatmap', 'depth', 'surface'].map(id => document.getElementById(id))
             .filter(d => d.offsetParent !== null && d._fullLayout).map(d => {
               const p = d.closest('section').getBoundingClientRect();
               const s = d.querySelector('.main-svg').getBoundingClientRect();
               return { id: d.id, inside: s.left >= p.left - 1 && s.right <= p.right + 1 && s.top >= p.top - 1
                          && s.bottom <= p.bottom + 1, drawn: d._fullLayout.width, box: d.clientWidth }; })"""
    )
    for fig in figures:
        assert fig["inside"] and abs(fig["drawn"] - fig["box"]) <= 2, fig
    # no metric cut short ("0.1 (0....")
    clipped = page.evaluate(
        "() => Array.from(document.querySelectorAll('.metric .v')).filter(v => v.scrollWidth > v.clientWidth)"
        ".map(v => v.id + ': ' + v.textContent)"
    )
    assert clipped == []

    # the panels shown update; the ones below the fold once scrolled into view
    wait_all_grow(page, ["ladder", "heatmap", "depth", "feed", "metrics"])
    page.locator("#panel-impact").scroll_into_view_if_needed()
    wait_all_grow(page, ["impact"])
    if "surface" in DEFAULT_PANELS[size]:
        page.locator("#panel-surface").scroll_into_view_if_needed()
        wait_all_grow(page, ["surface"])
    else:
        assert page.evaluate("() => document.getElementById('surface').data === undefined"), "drawn while hidden"
    # the alerts panel counts the alerts that reach its minimum-notional filter (50 at most)
    page.wait_for_function(
        """() => {
            const box = document.getElementById('alerts');
            if (!box.dataset.minNotional) return false;
            const min = Number(box.dataset.minNotional);
            const reach = window.LIQ.data.alerts.filter(a => (a.peak_notional || 0) >= min).length;
            return document.getElementById('alerts-count').textContent === String(Math.min(50, reach));
        }""")
    page.evaluate("() => window.scrollTo(0, 0)")

    if size == "phone":
        check_phone_layout(page, boxes, width)
    assert module_page[1] == [], module_page[1]


def check_phone_layout(page: Page, boxes: list[dict[str, Any]], width: int) -> None:
    """One column: banner and sync state, the metrics, the ladder, the heatmap at full
    width, then the rest; every control at least 40 px each way."""
    y = {b["sel"]: b["y"] for b in boxes}
    assert y["#banner"] < y["#metrics"] < y["#panel-ladder"] < y["#panel-heatmap"]
    assert all(y["#panel-heatmap"] < y[s] for s in y if s.startswith("#panel-") and s not in (
        "#panel-ladder", "#panel-heatmap"))
    heat = next(b for b in boxes if b["sel"] == "#panel-heatmap")
    assert heat["w"] >= width - 10, heat
    assert "BTCUSDT" in page.inner_text("#banner") and "ETHUSDT" in page.inner_text("#banner")  # sync chips
    page.click("#panel-menu-button")  # the menu's options are controls too
    try:
        # every visible control: a radio button or check box is the label around it
        controls = page.evaluate(
            """() => Array.from(document.querySelectorAll(
                   'button, summary, a[href], input, select, textarea, .dash-input-container,'
                   + ' .symbols label, .sides label, .panel-toggles label'))
                 .filter(n => !(n.matches('input[type=radio], input[type=checkbox]') && n.closest('label')))
                 .filter(n => n.offsetParent !== null)
                 .map(n => ({ id: n.id, what: n.tagName.toLowerCase() + ' ' + (n.id || n.className) + ' '
                                + n.textContent.trim().slice(0, 20),
                              w: n.getBoundingClientRect().width, h: n.getBoundingClientRect().height }))"""
        )
        assert {"alerts-min-notional", "impact-size", "pause", "panel-menu-button"} <= {c["id"] for c in controls}
        small = [c for c in controls if c["w"] < 40 or c["h"] < 40]
        assert small == [], small
    finally:
        page.keyboard.press("Escape")
    assert page.evaluate("() => !document.getElementById('panel-menu').open")


def test_a_hidden_panel_is_not_drawn_gives_its_room_and_is_remembered(
    page: Page, dash_env: RunningDashboard
) -> None:
    open_view(page, dash_env)
    heat_before = page.locator("#panel-heatmap").bounding_box()
    assert heat_before is not None
    page.click("#panel-menu-button")
    for label in ("DOM ladder", "Depth curve", "Alerts"):
        page.click(f"#panel-toggles label:has-text('{label}')")
    page.keyboard.press("Escape")
    page.wait_for_function("() => document.getElementById('panel-ladder').hidden")
    assert shown_panels(page) == ["heatmap", "surface", "impact", "feed"]
    assert query_of(page)["panels"] == ["heatmap,surface,impact,feed"]
    assert page.evaluate("() => JSON.parse(localStorage.getItem('liq.hiddenPanels')).hidden") == [
        "ladder", "depth", "alerts"]
    # the heatmap takes the room (and its figure follows its box); nothing is drawn for the hidden ones
    heat_after = page.locator("#panel-heatmap").bounding_box()
    assert heat_after is not None and heat_after["width"] > heat_before["width"] + 500, (heat_before, heat_after)
    page.wait_for_function(
        "() => Math.abs(document.getElementById('heatmap')._fullLayout.width"
        " - document.getElementById('heatmap').clientWidth) <= 2"
    )
    hidden_before = page.evaluate(MARKS_JS)
    wait_all_grow(page, ["metrics", "heatmap"])
    wait_all_grow(page, ["metrics"])
    hidden_after = page.evaluate(MARKS_JS)
    assert hidden_after["ladder"] == hidden_before["ladder"] and hidden_after["depth"] == hidden_before["depth"]

    # kept in this browser: the plain address opens with the same panels
    page.goto(dash_env.url + "/")
    page.wait_for_function(f"() => {LIQ}?.debug().seq != null")
    assert shown_panels(page) == ["heatmap", "surface", "impact", "feed"]
    # a link's panels win over the saved choice, and do not replace it
    page.goto(dash_env.url + "/?panels=ladder,heatmap")
    page.wait_for_function(f"() => {LIQ}?.debug().seq != null")
    assert shown_panels(page) == ["ladder", "heatmap"]
    assert page.evaluate("() => JSON.parse(localStorage.getItem('liq.hiddenPanels')).hidden") == [
        "ladder", "depth", "alerts"]

    # shown again: drawn at once, from what the page holds (paused here, so no frame can draw it)
    page.click("#pause")
    page.wait_for_function("() => document.getElementById('liq-root')?.dataset.paused === '1'")
    assert page.evaluate("() => document.getElementById('depth').data === undefined")
    page.click("#panel-menu-button")
    page.click("#panel-toggles label:has-text('Depth curve')")
    page.keyboard.press("Escape")
    page.wait_for_function("() => document.getElementById('depth')?.data?.length === 2")
    assert shown_panels(page) == ["ladder", "heatmap", "depth"]
    mid = page.evaluate("() => window.dash_clientside.liq.lastFrame().mid_price")
    bids_top = page.evaluate("() => Math.max(...document.getElementById('depth').data[0].x)")
    assert bids_top < mid  # the paused frame's book
    page.click("#pause")


# ---------------------------------------------------------------- the address


def test_a_copied_link_opens_the_same_view(page: Page, dash_env: RunningDashboard) -> None:
    link = "?symbol=ethusdt&panels=ladder,heatmap,alerts,impact&side=sell&size=20&min=125000&speed=5"
    open_view(page, dash_env, link, size="phone")
    page.wait_for_function("() => document.getElementById('ladder')?.dataset.symbol === 'ethusdt'")
    assert page.is_checked("#symbol input[value=ethusdt]")
    prices = page.evaluate(
        "() => Array.from(document.querySelectorAll('#ladder .lrow')).map(r => Number(r.dataset.price))")
    assert all(1_000 < p < 10_000 for p in prices), prices
    assert shown_panels(page) == ["ladder", "heatmap", "alerts", "impact"]
    page.wait_for_function(
        """() => { const r = document.getElementById('impact-result').dataset;
                   return r.status === 'ok' && r.side === 'sell' && r.size === '20'; }"""
    )
    assert page.input_value("#impact-size") == "20"
    # the alerts filter and the history's speed (no history here: kept for when there is)
    page.wait_for_function("() => document.getElementById('alerts').dataset.minNotional === '125000'")
    assert page.input_value("#alerts-min-notional") == "125000"
    assert view_options(page) == {"min": 125000, "speed": 5}
    # the link's filter applies without replacing this browser's own for the symbol
    assert page.evaluate("() => localStorage.getItem('liq.alerts.minNotional.ethusdt')") is None
    assert urlsplit(page.url).query == link[1:]  # the page writes the same address back

    # the address as it stands, opened again after a visit elsewhere: the same view
    copied = page.url
    open_view(page, dash_env, size="desktop")
    assert debug(page)["symbol"] == "btcusdt" and shown_panels(page) == ALL_PANELS
    assert view_options(page) == {"min": None, "speed": 1} and not {"min", "speed"} & set(query_of(page))
    page.goto(copied)
    page.wait_for_function("() => document.getElementById('ladder')?.dataset.symbol === 'ethusdt'")
    assert shown_panels(page) == ["ladder", "heatmap", "alerts", "impact"]
    assert debug(page)["impact"]["side"] == "sell" and debug(page)["impact"]["size"] == 20
    assert view_options(page) == {"min": 125000, "speed": 5}

    # changed on the page: the address follows (an empty filter is the default again)
    page.fill("#alerts-min-notional", "90000")
    page.wait_for_function("() => new URLSearchParams(location.search).get('min') === '90000'")
    page.fill("#alerts-min-notional", "")
    page.wait_for_function("() => !new URLSearchParams(location.search).has('min')")
    page.evaluate("() => window.LIQ.timeline.setSpeed(2)")
    assert query_of(page)["speed"] == ["2"]
    # values out of range are dropped, not applied
    open_view(page, dash_env, "?symbol=ethusdt&min=-5&speed=3", size="desktop")
    assert view_options(page) == {"min": None, "speed": 1} and not {"min", "speed"} & set(query_of(page))


def view_options(page: Page) -> dict[str, Any]:
    """The alerts panel's typed filter (None: the API's default) and the history's speed."""
    return dict(page.evaluate(f"() => ({{ min: {LIQ_STATE}.alertFilter.own, speed: {LIQ_STATE}.timeline.speed }})"))


def test_a_paused_view_is_a_link_to_its_moment(page: Page, dash_env: RunningDashboard) -> None:
    open_view(page, dash_env)
    page.keyboard.press("Space")
    page.wait_for_function("() => document.getElementById('liq-root')?.dataset.paused === '1'")
    moment = view(page)["moment"]
    t = query_of(page)["t"][0]
    assert abs(datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp() - moment) < 0.001, (t, moment)
    shown_seq = page.get_attribute("#ladder", "data-seq")

    copied = page.url
    open_view(page, dash_env)
    page.goto(copied)
    page.wait_for_function("() => document.getElementById('liq-root')?.dataset.paused === '1'")
    assert abs(view(page)["moment"] - moment) < 0.001
    assert page.get_attribute("#ladder", "data-seq") == shown_seq  # the very frame shown when the link was made
    assert query_of(page)["t"] == [t]
    assert "paused at" in page.inner_text("#view-state")
    # frozen while frames keep coming (they are kept, not drawn)
    page.wait_for_function(f"() => {LIQ}.debug().view.held >= 3")
    assert page.get_attribute("#ladder", "data-seq") == shown_seq
    assert str(debug(page)["seq"]) == shown_seq

    # a moment the API no longer holds: said so, and live
    open_view(page, dash_env, "?symbol=btcusdt&t=2001-01-01T00:00:00Z")
    page.wait_for_function("() => /older than the last 180 s: showing live/.test("
                           "document.getElementById('view-state').textContent)")
    assert view(page)["paused"] is False
    assert "t" not in query_of(page)


def test_back_and_forward_move_between_symbols(page: Page, dash_env: RunningDashboard) -> None:
    open_view(page, dash_env)
    page.click("label:has-text('ETHUSDT')")
    page.wait_for_function("() => document.getElementById('ladder')?.dataset.symbol === 'ethusdt'")
    assert query_of(page)["symbol"] == ["ethusdt"]
    page.keyboard.press("1")
    page.wait_for_function("() => document.getElementById('ladder')?.dataset.symbol === 'btcusdt'")

    page.go_back()
    page.wait_for_function("() => document.getElementById('ladder')?.dataset.symbol === 'ethusdt'")
    assert query_of(page)["symbol"] == ["ethusdt"] and page.is_checked("#symbol input[value=ethusdt]")
    page.go_back()
    page.wait_for_function("() => document.getElementById('ladder')?.dataset.symbol === 'btcusdt'")
    assert query_of(page)["symbol"] == ["btcusdt"] and page.is_checked("#symbol input[value=btcusdt]")
    page.go_forward()
    page.wait_for_function("() => document.getElementById('ladder')?.dataset.symbol === 'ethusdt'")
    assert query_of(page)["symbol"] == ["ethusdt"]
    assert page.evaluate(f"() => {LIQ}.debug().conn") in ("connecting", "connected")


# ---------------------------------------------------------------- the keyboard


def test_each_shortcut_does_its_job(page: Page, dash_env: RunningDashboard) -> None:
    open_view(page, dash_env)
    # 1-9: the symbols of the switcher
    page.keyboard.press("2")
    page.wait_for_function("() => document.getElementById('ladder')?.dataset.symbol === 'ethusdt'")
    page.keyboard.press("9")  # no ninth symbol: nothing happens
    page.keyboard.press("1")
    page.wait_for_function("() => document.getElementById('ladder')?.dataset.symbol === 'btcusdt'")

    # ?: the sheet, closed by ? again, or by Escape (the focus then back on its button)
    page.keyboard.press("?")
    page.wait_for_function("() => document.getElementById('shortcut-sheet')?.open === true")
    rows = page.inner_text("#shortcut-sheet table")
    for key in ("1", "9", "?", "L", "Space", "\u2190", "\u2192", "I"):
        assert key in rows, key
    page.keyboard.press("?")
    page.wait_for_function("() => !document.getElementById('shortcut-sheet').open")
    page.click("#shortcuts-open")
    page.wait_for_function("() => document.getElementById('shortcut-sheet').open")
    page.keyboard.press("Escape")
    page.wait_for_function("() => !document.getElementById('shortcut-sheet').open")
    assert page.evaluate("() => document.activeElement.id") == "shortcuts-open"

    # I: the impact size field, its text selected
    page.evaluate("() => document.activeElement.blur()")
    page.keyboard.press("i")
    assert page.evaluate("() => document.activeElement.id") == "impact-size"
    page.evaluate("() => document.activeElement.blur()")

    # space: the view frozen while frames keep coming; space again: caught up
    page.keyboard.press(" ")
    page.wait_for_function("() => document.getElementById('liq-root')?.dataset.paused === '1'")
    frozen = page.get_attribute("#ladder", "data-seq")
    assert page.inner_text("#pause") == "Play"
    page.wait_for_function(f"() => {LIQ}.debug().view.held >= 2")
    assert page.get_attribute("#ladder", "data-seq") == frozen
    page.keyboard.press(" ")
    page.wait_for_function(
        "(s) => document.getElementById('liq-root').dataset.paused === '0'"
        " && Number(document.getElementById('ladder').dataset.seq) >= Number(s) + 2",
        arg=frozen,
    )
    assert "t" not in query_of(page) and page.inner_text("#pause") == "Pause"

    # space and the arrows keep their own job on a focused control: the button is
    # pressed once (not paused twice), the arrows move between the symbol radio buttons
    page.focus("#pause")
    page.keyboard.press(" ")
    page.wait_for_function("() => document.getElementById('liq-root').dataset.paused === '1'")
    page.keyboard.press(" ")
    page.wait_for_function("() => document.getElementById('liq-root').dataset.paused === '0'")
    page.focus("#symbol input[value=btcusdt]")
    page.keyboard.press("ArrowRight")
    page.wait_for_function("() => document.getElementById('ladder')?.dataset.symbol === 'ethusdt'")
    page.keyboard.press("1")
    page.wait_for_function("() => document.getElementById('ladder')?.dataset.symbol === 'btcusdt'")

    # L: back to live from a pause, and the heatmap's time axis on the newest data
    page.click("#pause")
    page.wait_for_function("() => document.getElementById('liq-root').dataset.paused === '1'")
    page.evaluate("() => Plotly.relayout('heatmap', {'xaxis.range': [Date.now() - 170000, Date.now() - 160000]})")
    page.evaluate("() => document.activeElement.blur()")
    page.keyboard.press("l")
    page.wait_for_function(
        "() => document.getElementById('liq-root').dataset.paused === '0'"
        " && document.getElementById('heatmap').layout.xaxis.autorange === true"
    )


def test_arrows_step_through_the_alerts_in_time_order(page: Page, dash_env: RunningDashboard) -> None:
    sim = dash_env.stack.sim
    for side in ("bid", "ask"):  # two alerts at least, planned for longer than the test
        dash_env.loop.run(sim.inject_wall("btcusdt", side=side, distance_ticks=3, multiple=25.0, duration_s=120.0))
    open_view(page, dash_env)
    page.wait_for_function("() => document.querySelectorAll('#alerts .alert').length >= 2")
    page.keyboard.press("Space")  # a still list to step through
    page.wait_for_function("() => document.getElementById('liq-root')?.dataset.paused === '1'")
    times = sorted(page.evaluate(
        "() => Array.from(document.querySelectorAll('#alerts .alert')).map(a => Number(a.dataset.ts))"))

    def selected() -> float:
        return float(page.evaluate(
            "() => { const s = document.querySelectorAll('#alerts .alert.selected');"
            " if (s.length !== 1 || s[0].getAttribute('aria-current') !== 'true') return NaN;"
            " return Number(s[0].dataset.ts); }"
        ))

    page.keyboard.press("ArrowLeft")  # the first press: the newest
    assert selected() == times[-1]
    assert page.evaluate("() => document.activeElement.classList.contains('selected')")
    page.keyboard.press("ArrowLeft")
    assert selected() == times[-2]
    page.keyboard.press("ArrowRight")
    assert selected() == times[-1]
    page.keyboard.press("ArrowRight")  # already the newest: stays
    assert selected() == times[-1]
    page.keyboard.press("Space")
    page.wait_for_function("() => document.getElementById('liq-root')?.dataset.paused === '0'")


def test_no_shortcut_fires_while_typing_in_a_field(page: Page, dash_env: RunningDashboard) -> None:
    open_view(page, dash_env)
    page.evaluate(
        """() => { const t = document.createElement('input'); t.type = 'text'; t.id = 'scratch-field';
                   t.setAttribute('aria-label', 'scratch'); document.getElementById('liq-root').prepend(t); }"""
    )
    try:
        for field in ("#impact-size", "#scratch-field"):
            page.fill(field, "")
            page.focus(field)
            for key in ("2", "?", "l", "i", " ", "ArrowLeft", "ArrowRight", "Escape"):
                page.keyboard.press(key)
            assert page.evaluate("() => document.activeElement.id") == field[1:]
            state = page.evaluate(
                f"""() => ({{ symbol: {LIQ}.debug().symbol, paused: {LIQ}.debug().view.paused,
                             sheet: Boolean(document.getElementById('shortcut-sheet')?.open),
                             selected: {LIQ}.debug().view.selectedAlert }})"""
            )
            assert state == {"symbol": "btcusdt", "paused": False, "sheet": False, "selected": None}, (field, state)
            assert "2" in page.input_value(field)
        assert page.input_value("#scratch-field").startswith("2?li ")  # every key reached the field
    finally:
        page.evaluate("() => document.getElementById('scratch-field')?.remove()")


# ---------------------------------------------------------------- accessibility


def test_every_control_is_named_and_readable_on_a_phone(page: Page, dash_env: RunningDashboard) -> None:
    open_view(page, dash_env, size="phone")
    page.wait_for_function("() => document.getElementById('impact-result').dataset.status === 'ok'")
    page.click("#panel-menu-button")
    page.keyboard.press("?")
    page.wait_for_function("() => document.getElementById('shortcut-sheet')?.open")
    try:
        unnamed = [c["what"] for c in page.evaluate(CONTROL_NAMES_JS) if not c["name"]]
        assert unnamed == [], unnamed
        failures = contrast_failures(measure_contrast(page, "#shortcut-sheet"))
        assert not failures, "\n".join(failures)
    finally:
        page.keyboard.press("Escape")
    page.wait_for_function("() => !document.getElementById('shortcut-sheet').open")
    page.evaluate("() => { document.getElementById('panel-menu').open = true; }")
    measured = measure_contrast(page)
    assert {"Pause", "Panels", "?", "DOM ladder", "size"} <= {m["text"] for m in measured}
    failures = contrast_failures(measured)
    assert not failures, "text under 4.5:1 contrast:\n" + "\n".join(failures)
    page.keyboard.press("Escape")


def test_bid_and_ask_are_told_apart_without_colour(page: Page, dash_env: RunningDashboard) -> None:
    open_view(page, dash_env)
    # the trades, painted over the heatmap: buys pointing up, sells down
    page.wait_for_function("() => document.getElementById('heatmap-trades')?.dataset.buyShape")
    shapes = page.evaluate("() => Object.assign({}, document.getElementById('heatmap-trades').dataset)")
    assert (shapes["buyShape"], shapes["sellShape"]) == ("triangle-up", "triangle-down")
    # the liquidations, in the heatmap's figure: longs and shorts by shape, neither a trade's
    page.wait_for_function("() => (document.getElementById('heatmap').data || []).length > 1")
    liq = page.evaluate(
        """() => Object.fromEntries(document.getElementById('heatmap').data
                 .filter(t => /liquidated$/.test(t.name)).map(t => [t.name, t.marker.symbol]))"""
    )
    assert set(liq) == {"longs liquidated", "shorts liquidated"}, liq
    assert liq["longs liquidated"] != liq["shorts liquidated"], liq
    assert all("diamond" in s and "triangle" not in s for s in liq.values()), liq
    # the ladder: asks above the mid row, bids below, each side captioned
    layout = page.evaluate(
        """() => { const rows = Array.from(document.querySelectorAll('#ladder > *'));
                   return rows.map(r => r.classList.contains('lcap') ? r.textContent
                                   : r.classList.contains('lmid') ? 'mid' : r.dataset.side); }"""
    )
    assert layout[0].startswith("asks") and layout[-1].startswith("bids")
    assert layout[1:-1] == ["ask"] * 10 + ["mid"] + ["bid"] * 10
    # metrics: a move has an arrow, a positive value its sign
    page.wait_for_function(
        "() => /^[\u25b2\u25bc] /.test(document.getElementById('m-micro').textContent)"
        " && /^[+-]/.test(document.getElementById('m-imb').textContent)"
    )
    for ident in ("m-micro", "m-imb", "m-ofi"):
        # text and class read at one moment: a frame in between would change both
        text, cls = page.evaluate("(id) => { const e = document.getElementById(id);"
                                  " return [e.innerText, e.className]; }", ident)
        if "up" in cls.split():
            assert re.match(r"^(\u25b2 |\+)", text), (ident, text)
        if "down" in cls.split():
            assert re.match(r"^(\u25bc |-)", text), (ident, text)


def test_reduced_motion_is_respected(page: Page, dash_env: RunningDashboard) -> None:
    open_view(page, dash_env)
    transition = "() => getComputedStyle(document.getElementById('pause')).transitionDuration"
    assert page.evaluate(transition) != "0s"
    assert page.evaluate(f"() => {LIQ}.dom.scrollBehaviour()") == "smooth"
    page.emulate_media(reduced_motion="reduce")
    assert page.evaluate(transition) == "0s"
    assert page.evaluate(f"() => {LIQ}.dom.scrollBehaviour()") == "auto"
