"""The screener page (/screener) in headless Chromium against a stand-in of the API's
screener endpoints (tests/dashboard/screener_standin.py: the contract's GET
/screener, /ws/screener and POST /focus, 320 symbols changing each second), and once
against the real stack on a simulated market of 20 symbols.

The oracle is what the stand-in served: the table's rows are its rows, its order is
the rows sorted in Python by the contract's rule (nulls last, ties by symbol), its
filters are the rows filtered in Python. Tests that compare an order freeze the
stand-in's market first (updates still arrive, with no row), so the page and the
oracle look at the same values. Against the real stack the oracles are the simulated
exchange's exchangeInfo, the API's GET /screener and its /health. Every wait is for
the page to show something.
"""

from __future__ import annotations

import json
import math
import os
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from typing import Any

import pytest

pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Browser, Page, sync_playwright  # noqa: E402

from dashboard.app import create_app  # noqa: E402
from dashboard.harness import CHROMIUM, launch_chromium, running_dashboard  # noqa: E402
from dashboard.server import DashboardServer  # noqa: E402
from tests.dashboard.contrast import contrast_failures, measure_contrast  # noqa: E402
from tests.dashboard.screener_standin import RunningStandIn, running_standin, sort_rows  # noqa: E402
from tests.stack import TEST_WARMUP_S  # noqa: E402
from tests.waiting import CEILING_S, wait_until_sync  # noqa: E402

pytestmark = pytest.mark.browser

if not os.path.exists(CHROMIUM):
    pytest.skip(f"no Chromium at {CHROMIUM} (make chromium)", allow_module_level=True)

CEILING_MS = int(CEILING_S * 1000)
N = 320
ORDER_JS = "() => Array.from(document.querySelectorAll('#scr-body tr')).map(r => r.dataset.symbol)"
CELL_JS = """([sym, col]) => document.querySelector(`#scr-body tr[data-symbol="${sym}"] [data-col="${col}"] .v`)
    ?.textContent ?? null"""
# Every row on screen once (rows are written only while on or near the screen).
SCROLL_THROUGH_JS = """async () => {
  const frame = () => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  for (let y = 0; y <= document.documentElement.scrollHeight; y += 400) { window.scrollTo(0, y); await frame(); }
  window.scrollTo(0, 0); await frame();
}"""
PHONE_COLUMNS = {"symbol", "mid", "spread_bps", "depth25", "imbalance20", "badges"}


@pytest.fixture(scope="module")
def standin() -> Iterator[RunningStandIn]:
    with running_standin(N) as rs:
        yield rs


@pytest.fixture(scope="module")
def dash_url(standin: RunningStandIn) -> Iterator[str]:
    app = create_app(standin.url, standin.standin.start_symbols, "SIMULATED (screener stand-in)")
    server = DashboardServer(app, "127.0.0.1", 0)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        chromium = launch_chromium(pw)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def market(standin: RunningStandIn) -> Iterator[RunningStandIn]:
    """The stand-in as every test may assume it: moving, focus set not full."""
    def reset() -> None:
        standin.standin.frozen = False
        standin.standin.focus_full = False
    standin.call(reset)
    yield standin
    standin.call(reset)


def open_screener(browser: Browser, dash_url: str, query: str = "", width: int = 1400,
                  height: int = 900) -> tuple[Page, list[str]]:
    """A new tab on the screener, once it holds every row and has applied an update."""
    errors: list[str] = []
    page = browser.new_page(viewport={"width": width, "height": height})
    page.set_default_timeout(CEILING_MS)
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
    page.goto(dash_url + "/screener" + query)
    page.wait_for_function("() => window.SCREENER?.debug().conn === 'connected' "
                           "&& SCREENER.debug().stats.updates >= 1")
    return page, errors


def freeze(market: RunningStandIn, page: Page) -> list[dict[str, Any]]:
    """Stop the market, wait until the page has applied an update sent after it (so it
    holds the frozen values), and return the rows served."""
    market.call(lambda: setattr(market.standin, "frozen", True))
    sent = market.call(lambda: market.standin.tick_no)
    n = page.evaluate("() => SCREENER.debug().stats.updates")
    page.wait_for_function(f"() => SCREENER.debug().stats.updates >= {n + 2}")
    assert market.call(lambda: market.standin.tick_no) == sent
    return list(market.call(market.standin.served))


def page_order(page: Page) -> list[str]:
    return list(page.evaluate(ORDER_JS))


def two_decimals_signed(x: float) -> set[str]:
    """How the page may write ``x`` to 2 decimals with its sign: its shortest decimal
    form rounded half up or half to even (the browser's number format rounds that form)."""
    out = set()
    for mode in (ROUND_HALF_UP, ROUND_HALF_EVEN):
        d = Decimal(repr(x)).quantize(Decimal("0.01"), rounding=mode)
        out.add(("+" if x > 0 else "") + f"{d:,.2f}")
    return out


def expected(rows: list[dict[str, Any]], key: str, order: str) -> list[str]:
    return [r["symbol"] for r in sort_rows(rows, key, order)]


def test_rows_rendered_equal_rows_served_with_their_values(browser: Browser, dash_url: str,
                                                           market: RunningStandIn) -> None:
    page, errors = open_screener(browser, dash_url)
    try:
        rows = freeze(market, page)
        assert len(rows) == N
        assert sorted(page_order(page)) == sorted(r["symbol"] for r in rows)
        assert page.text_content("#scr-count") == f"{N} symbols"
        # the default order: 24 h volume, largest first
        assert page_order(page) == expected(rows, "quote_volume_24h", "desc")
        # only the rows on screen are written: the others once scrolled into view
        assert page.evaluate("() => SCREENER.debug().dirty") > 0
        page.evaluate(SCROLL_THROUGH_JS)
        page.wait_for_function("() => SCREENER.debug().dirty === 0")
        cells = page.evaluate("""() => Array.from(document.querySelectorAll('#scr-body tr')).map(r => ({
            symbol: r.dataset.symbol, spread: r.querySelector('[data-col="spread_bps"] .v').textContent,
            imb: r.querySelector('[data-col="imbalance20"] .v').textContent,
            walls: r.querySelector('[data-col="walls"] .v').textContent,
            flags: r.querySelector('[data-col="badges"] .v').textContent, stale: r.classList.contains('stale')}))""")
        by_symbol = {r["symbol"]: r for r in rows}
        for c in cells:
            r = by_symbol[c["symbol"]]
            assert c["spread"] == ("\u2013" if r["spread_bps"] is None else f"{r['spread_bps']:,.2f}"), c
            assert c["imb"] in two_decimals_signed(r["imbalance20"]), c
            assert c["walls"] == str(r["walls"]), c
            # highlights in words, not colour alone
            assert ("NEW WALL" in c["flags"]) == bool(r["wall"] and r["wall"]["fresh"]), c
            assert ("LIQ BURST" in c["flags"]) == r["liq_burst"], c
            assert ("STALE" in c["flags"]) == r["stale"] == c["stale"], c
        assert any(r["wall"] and r["wall"]["fresh"] for r in rows) and any(r["liq_burst"] for r in rows)
        assert any(r["stale"] for r in rows)
        # sparklines: 60 points from GET /screener plus one a second since
        hist = page.evaluate("() => SCREENER.hist('btcusdt')")
        assert len(hist["spread"]) == 60 and len(hist["depth"]) == 60
        assert hist["spread"][-1] == by_symbol["btcusdt"]["spread_bps"]
        assert hist["depth"][-1] == by_symbol["btcusdt"]["depth25_bid"] + by_symbol["btcusdt"]["depth25_ask"]
        d = page.evaluate("() => SCREENER.debug()")
        assert 0 < d["inView"] < N   # sparklines drawn for the rows on screen only
        assert errors == []
    finally:
        page.close()


def test_sorting_by_two_columns_matches_sorting_the_served_rows(browser: Browser, dash_url: str,
                                                                market: RunningStandIn) -> None:
    page, _errors = open_screener(browser, dash_url)
    try:
        rows = freeze(market, page)
        assert any(r["spread_bps"] is None for r in rows)   # nulls present: they sort last both ways
        head = "#scr-head-row th[data-col='{}']"
        page.click(head.format("spread_bps") + " button")
        assert page_order(page) == expected(rows, "spread_bps", "desc")
        assert page.get_attribute(head.format("spread_bps"), "aria-sort") == "descending"
        assert "\u25bc" in page.inner_text(head.format("spread_bps"))
        assert page.get_attribute(head.format("quote_volume_24h"), "aria-sort") == "none"
        page.click(head.format("spread_bps") + " button")
        assert page_order(page) == expected(rows, "spread_bps", "asc")
        assert page.get_attribute(head.format("spread_bps"), "aria-sort") == "ascending"
        assert "\u25b2" in page.inner_text(head.format("spread_bps"))
        assert page_order(page)[-1] in {r["symbol"] for r in rows if r["spread_bps"] is None}
        page.click(head.format("funding_rate") + " button")
        assert page_order(page) == expected(rows, "funding_rate", "desc")
        page.click(head.format("symbol") + " button")
        assert page_order(page) == sorted(r["symbol"] for r in rows)
        assert "sort=symbol&order=asc" in page.url
    finally:
        page.close()


def test_filters_match_the_served_rows_filtered(browser: Browser, dash_url: str, market: RunningStandIn) -> None:
    page, _errors = open_screener(browser, dash_url)
    try:
        rows = freeze(market, page)
        order = expected(rows, "quote_volume_24h", "desc")
        by_symbol = {r["symbol"]: r for r in rows}

        def shown(pred: Any) -> list[str]:
            return [s for s in order if pred(by_symbol[s])]

        page.fill("#scr-q", "x1")
        assert page_order(page) == shown(lambda r: "x1" in r["symbol"])
        page.fill("#scr-q", "")
        page.fill("#scr-min-volume", "1e10")
        assert page_order(page) == shown(lambda r: r["quote_volume_24h"] >= 1e10)
        assert 0 < len(page_order(page)) < N
        page.check("#scr-walls")
        assert page_order(page) == shown(lambda r: r["quote_volume_24h"] >= 1e10 and r["wall"] is not None)
        page.fill("#scr-min-volume", "")
        page.uncheck("#scr-walls")
        page.check("#scr-liq")
        want = shown(lambda r: r["liq5m_buy"] + r["liq5m_sell"] > 0 or r["liq_burst"])
        assert page_order(page) == want and 0 < len(want) < N
        assert page.text_content("#scr-count") == f"{len(want)} of {N} symbols"
        # a minimum volume that is not a number: said, marked, not applied
        page.uncheck("#scr-liq")
        page.fill("#scr-min-volume", "lots")
        assert page.get_attribute("#scr-min-volume", "aria-invalid") == "true"
        assert "not applied" in page.inner_text("#scr-filter-msg")
        assert len(page_order(page)) == N
    finally:
        page.close()


def test_live_updates_change_cells_add_and_remove_rows(browser: Browser, dash_url: str,
                                                       market: RunningStandIn) -> None:
    page, _errors = open_screener(browser, dash_url, "?q=usdt&sort=symbol&order=asc")
    try:
        market.call(lambda: market.standin.set_fields("ethusdt", spread_bps=42.42, stale=True))
        page.wait_for_function(f"() => ({CELL_JS})(['ethusdt', 'spread_bps']) === '42.42'")
        assert "STALE" in page.evaluate(CELL_JS, ["ethusdt", "badges"])
        assert page.evaluate("() => document.querySelector('#scr-body tr[data-symbol=ethusdt]')"
                             ".classList.contains('stale')")
        writes = page.evaluate("() => SCREENER.debug().stats")
        # changed rows only: the stand-in sends about half the rows each second
        assert writes["rowsApplied"] < (writes["updates"] + 2) * N
        market.call(lambda: market.standin.remove("x003usdt"))
        page.wait_for_function("() => !document.querySelector('#scr-body tr[data-symbol=x003usdt]')")
        market.call(lambda: market.standin.add("newcoinusdt"))
        page.wait_for_function("() => !!document.querySelector('#scr-body tr[data-symbol=newcoinusdt]')")
        assert page.evaluate("() => SCREENER.debug().rows") == market.call(lambda: len(market.standin.symbols))
    finally:
        market.call(lambda: market.standin.set_fields("ethusdt", stale=False))
        page.close()


def test_reconnects_after_the_socket_drops_and_reads_the_rows_again(browser: Browser, dash_url: str,
                                                                      market: RunningStandIn) -> None:
    page, _errors = open_screener(browser, dash_url)
    try:
        before = page.evaluate("() => SCREENER.debug().stats")
        assert before["gets"] == 1 and before["snapshots"] == 1
        assert market.call(market.standin.drop_clients) >= 1
        page.wait_for_function("() => SCREENER.debug().stats.snapshots === 2 && SCREENER.debug().conn === 'connected'")
        after = page.evaluate("() => SCREENER.debug()")
        assert after["stats"]["gets"] == 2 and after["rows"] == market.call(lambda: len(market.standin.symbols))
        n = after["stats"]["updates"]
        page.wait_for_function(f"() => SCREENER.debug().stats.updates > {n}")   # updates flow again
    finally:
        page.close()


def test_click_promotes_and_opens_the_full_dashboard_at_that_symbol(browser: Browser, dash_url: str,
                                                                    market: RunningStandIn) -> None:
    page, errors = open_screener(browser, dash_url, "?q=sol")
    try:
        page.wait_for_function("() => SCREENER.debug().order.join() === 'solusdt'")
        page.click("#scr-body tr[data-symbol=solusdt]")
        page.wait_for_url(dash_url + "/?symbol=solusdt*")
        assert ("solusdt", 200) in market.call(lambda: list(market.standin.posts))
        # solusdt was not in the page's start list: taken from GET /symbols
        page.wait_for_function("() => window.LIQ?.debug?.()?.symbol === 'solusdt'")
        page.wait_for_function("() => !!document.querySelector('#symbol input[value=solusdt]:checked')")
        assert page.inner_text("#symbol").count("SOLUSDT") == 1
        # its sync chip: the usual state of a book still syncing
        page.wait_for_function("() => document.querySelector('#sync-chips [data-symbol=solusdt]')"
                               "?.textContent === 'SOLUSDT awaiting snapshot'")
        assert "symbol=solusdt" in page.url
        # the link back to the screener, and another promoted there by the keyboard: / and arrows, Enter
        page.click("#screener-link")
        page.wait_for_function("() => window.SCREENER?.debug().conn === 'connected'")
        page.keyboard.press("/")
        assert page.evaluate("() => document.activeElement.id") == "scr-q"
        page.keyboard.type("avax")
        assert page.input_value("#scr-q") == "avax"   # '/' and letters typed, no shortcut fired
        page.wait_for_function("() => SCREENER.debug().order.join() === 'avaxusdt'")
        page.keyboard.press("Escape")
        page.keyboard.press("ArrowDown")
        assert page.evaluate("() => document.activeElement.dataset.symbol") == "avaxusdt"
        page.keyboard.press("Enter")
        page.wait_for_url(dash_url + "/?symbol=avaxusdt*")
        page.wait_for_function("() => window.LIQ?.debug?.()?.symbol === 'avaxusdt'")
        # both promoted symbols in the switcher now
        page.wait_for_function("() => !!document.querySelector('#symbol input[value=solusdt]')")
        assert ("avaxusdt", 200) in market.call(lambda: list(market.standin.posts))
    finally:
        page.close()


def test_a_full_focus_set_is_a_message_and_no_navigation(browser: Browser, dash_url: str,
                                                         market: RunningStandIn) -> None:
    page, _errors = open_screener(browser, dash_url, "?q=doge")
    try:
        market.call(lambda: setattr(market.standin, "focus_full", True))
        page.wait_for_function("() => SCREENER.debug().order.join() === 'dogeusdt'")
        page.click("#scr-body tr[data-symbol=dogeusdt]")
        page.wait_for_selector("#scr-message:not([hidden])")
        text = page.inner_text("#scr-message")
        assert "DOGEUSDT" in text and "focus set is full" in text
        assert page.get_attribute("#scr-message", "role") == "alert"
        assert ("dogeusdt", 409) in market.call(lambda: list(market.standin.posts))
        assert "/screener" in page.url
        assert page.evaluate("() => SCREENER.debug().promoting") is None   # may be tried again
    finally:
        page.close()


def test_sort_and_filters_round_trip_through_the_url(browser: Browser, dash_url: str,
                                                     market: RunningStandIn) -> None:
    query = "?sort=spread_bps&order=asc&q=x&min_volume=1e7&walls=1"
    page, _errors = open_screener(browser, dash_url, query)
    try:
        rows = freeze(market, page)
        assert page.input_value("#scr-q") == "x"
        assert page.input_value("#scr-min-volume") == "1e7"
        assert page.is_checked("#scr-walls") and not page.is_checked("#scr-liq")
        assert page.get_attribute("#scr-head-row th[data-col='spread_bps']", "aria-sort") == "ascending"
        want = [s for s in expected(rows, "spread_bps", "asc")
                if "x" in s and next(r for r in rows if r["symbol"] == s)["quote_volume_24h"] >= 1e7
                and next(r for r in rows if r["symbol"] == s)["wall"] is not None]
        assert page_order(page) == want and want
        assert page.url.endswith(query)
        page.click("#scr-head-row th[data-col='depth25'] button")
        page.uncheck("#scr-walls")
        page.check("#scr-liq")
        url = page.url
        assert url.endswith("?sort=depth25&order=desc&q=x&min_volume=1e7&liq=1")
        page.reload()
        page.wait_for_function("() => SCREENER.debug().stats.updates >= 1")
        assert page.url == url
        assert page.get_attribute("#scr-head-row th[data-col='depth25']", "aria-sort") == "descending"
        assert page.is_checked("#scr-liq") and not page.is_checked("#scr-walls")
    finally:
        page.close()


def test_phone_shows_the_key_columns_without_overflow(browser: Browser, dash_url: str,
                                                      market: RunningStandIn) -> None:
    page, errors = open_screener(browser, dash_url, width=390, height=844)
    try:
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
        assert page.evaluate("() => document.querySelector('.scr-table').scrollWidth") <= page.evaluate(
            "() => document.querySelector('.scr-wrap').clientWidth")
        shown = page.evaluate("""() => Array.from(document.querySelectorAll('#scr-head-row th'))
            .filter(th => th.offsetWidth > 0).map(th => th.dataset.col)""")
        assert set(shown) == PHONE_COLUMNS
        # touch targets: the sort buttons and the back link at least 40 px high
        heights = page.evaluate("""() => Array.from(document.querySelectorAll('#scr-head-row th button, #scr-back'))
            .filter(b => b.offsetWidth > 0).map(b => b.getBoundingClientRect().height)""")
        assert min(heights) >= 40
        assert errors == []
    finally:
        page.close()


# Each badge's box against the table's visible box (the scrolling box's client area:
# what its overflow does not clip) and against its own cell.
BADGE_BOXES_JS = """() => {
  const wrap = document.querySelector('.scr-wrap').getBoundingClientRect();
  const box = document.querySelector('.scr-wrap');
  const right = wrap.left + box.clientLeft + box.clientWidth;
  return Array.from(document.querySelectorAll('#scr-body tr')).filter(tr => tr.offsetHeight > 0).map(tr => {
    const td = tr.querySelector('[data-col="badges"]').getBoundingClientRect();
    return {symbol: tr.dataset.symbol, left: wrap.left + box.clientLeft, right: right,
      td: [td.left, td.right, td.top, td.bottom],
      badges: Array.from(tr.querySelectorAll('[data-col="badges"] .flag')).map(b => {
        const r = b.getBoundingClientRect();
        return {text: b.textContent, box: [r.left, r.right, r.top, r.bottom], width: b.scrollWidth,
                inner: b.clientWidth};
      })};
  });
}"""


@pytest.mark.parametrize(("width", "height"), [(1400, 900), (1024, 768), (390, 844)])
def test_every_badge_lies_inside_the_tables_visible_box(browser: Browser, dash_url: str, market: RunningStandIn,
                                                        width: int, height: int) -> None:
    page, errors = open_screener(browser, dash_url, width=width, height=height)
    try:
        # Frozen at a second whose rows include one with two badges or more (the
        # stand-in's flags come and go with the second): the widest flags cells.
        def frozen_with_two_badges() -> bool:
            if any(badge_count(r) >= 2 for r in freeze(market, page)):
                return True
            market.call(lambda: setattr(market.standin, "frozen", False))
            return False
        wait_until_sync(frozen_with_two_badges, what="a second with a row of two badges", poll_s=0.5)
        page.evaluate(SCROLL_THROUGH_JS)
        page.wait_for_function("() => SCREENER.debug().dirty === 0")
        rows = page.evaluate(BADGE_BOXES_JS)
        assert len(rows) == N
        assert max(len(r["badges"]) for r in rows) >= 2
        assert badges_outside(rows) == []
        assert page.evaluate("() => document.documentElement.scrollWidth") <= width
        assert errors == []
    finally:
        page.close()


def badge_count(r: dict[str, Any]) -> int:
    """The badges of a served row (the page's badgeList)."""
    return sum((bool(r["wall"] and r["wall"]["fresh"]), r["liq_burst"], r["stale"], r["focus"]))


def badges_outside(rows: list[dict[str, Any]]) -> list[str]:
    """The badges of BADGE_BOXES_JS's rows not wholly inside the table's visible box
    and their cell, or with their own text cut."""
    outside = []
    for r in rows:
        for b in r["badges"]:
            left, right, top, bottom = b["box"]
            td_left, td_right, td_top, td_bottom = r["td"]
            inside = (left >= r["left"] - 0.5 and right <= r["right"] + 0.5 and left >= td_left - 0.5
                      and right <= td_right + 0.5 and top >= td_top - 0.5 and bottom <= td_bottom + 0.5
                      and b["width"] <= b["inner"])  # and its own text not cut
            if not inside:
                outside.append(f"{r['symbol']} {b['text']}: {b['box']} in cell {r['td']}, "
                               f"visible {r['left']}..{r['right']}")
    return outside


def test_contrast_and_named_controls(browser: Browser, dash_url: str, market: RunningStandIn) -> None:
    page, _errors = open_screener(browser, dash_url)
    try:
        failures = contrast_failures(measure_contrast(page, "#scr-root"))
        assert failures == [], "\n".join(failures)
        unnamed = page.evaluate("""() => Array.from(document.querySelectorAll('#scr-root input, #scr-root button'))
            .filter(e => !(e.labels?.length || e.getAttribute('aria-label'))).map(e => e.outerHTML.slice(0, 80))""")
        assert unnamed == []
    finally:
        page.close()


def test_main_page_links_to_the_screener(browser: Browser, dash_url: str, market: RunningStandIn) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(CEILING_MS)
    try:
        page.goto(dash_url + "/?symbol=ethusdt")
        page.wait_for_function("() => window.LIQ?.debug?.()?.symbol === 'ethusdt'")
        assert page.get_attribute("#screener-link", "href") == "/screener"
        page.click("#screener-link")
        page.wait_for_function("() => window.SCREENER?.debug().rows > 0")
        page.click("#scr-back")
        page.wait_for_function("() => window.LIQ?.debug?.()?.symbol === 'btcusdt'")
    finally:
        page.close()


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=CEILING_S) as resp:
        return json.loads(resp.read())


def price_texts(x: float) -> set[str]:
    """How the page writes a mid: 4 significant digits (1 to 8 decimals), from its
    shortest decimal form rounded half up or half to even (see two_decimals_signed)."""
    decimals = min(8, max(1, 4 - math.floor(math.log10(abs(x) or 1))))
    return {f"{Decimal(repr(x)).quantize(Decimal(1).scaleb(-decimals), rounding=mode):,.{decimals}f}"
            for mode in (ROUND_HALF_UP, ROUND_HALF_EVEN)}


def test_real_stack_rows_sort_and_a_click_opens_a_synced_full_book(browser: Browser) -> None:
    """The page on the real stack (simulated exchange of 20 symbols, the screener, one
    start symbol): a row per TRADING USDT perpetual of exchangeInfo, figures equal to
    GET /screener's, sorted by symbol, and a click on a symbol that has no full book
    gives it one, in sync on the full dashboard and in /health."""
    with running_dashboard(("btcusdt",), push_interval_s=1.0, screener=True, sim_market="20",
                           sim_config={"warmup_s": TEST_WARMUP_S}) as rd:
        info = get_json(rd.stack.settings.rest_base_url + "/fapi/v1/exchangeInfo")
        trading = {s["symbol"].lower() for s in info["symbols"] if s["status"] == "TRADING"
                   and s["contractType"] == "PERPETUAL" and s["quoteAsset"] == "USDT"}
        assert len(trading) == 20 and "btcusdt" in trading
        errors: list[str] = []
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.set_default_timeout(CEILING_MS)
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
        try:
            page.goto(rd.url + "/screener")
            page.wait_for_function(f"() => SCREENER.debug().rows === {len(trading)} "
                                   "&& SCREENER.debug().conn === 'connected' && SCREENER.debug().stats.updates >= 1")
            served = get_json(rd.api_url + "/screener?limit=1000")
            assert {r["symbol"] for r in served["rows"]} == trading == set(page_order(page))
            assert served["count"] == len(trading)
            assert page.text_content("#scr-count") == f"{len(trading)} symbols"
            assert "FOCUS" in page.evaluate(CELL_JS, ["btcusdt", "badges"])
            page.evaluate(SCROLL_THROUGH_JS)
            page.wait_for_function("() => SCREENER.debug().dirty === 0")
            boxes = page.evaluate(BADGE_BOXES_JS)
            assert len(boxes) == len(trading) and badges_outside(boxes) == []

            head = "#scr-head-row th[data-col='symbol']"
            page.click(head + " button")
            assert page.get_attribute(head, "aria-sort") == "ascending"
            assert page_order(page) == sorted(trading)
            symbol = next(s for s in page_order(page) if s != "btcusdt")
            assert "FOCUS" not in page.evaluate(CELL_JS, [symbol, "badges"])

            # its mid as the API serves it: both follow the market, so they are read
            # until they show the same second's value
            def same_mid() -> bool:
                shown = page.evaluate(CELL_JS, [symbol, "mid"])
                mid = next(r["mid"] for r in get_json(rd.api_url + f"/screener?q={symbol}")["rows"]
                           if r["symbol"] == symbol)
                return mid is not None and shown in price_texts(mid)
            wait_until_sync(same_mid, what=f"{symbol}'s mid on the page equal to GET /screener's")

            page.click(f"#scr-body tr[data-symbol='{symbol}']")
            page.wait_for_url(rd.url + f"/?symbol={symbol}*")
            page.wait_for_function(f"() => window.LIQ?.debug?.()?.symbol === '{symbol}'")
            page.wait_for_function(f"() => document.querySelector('#sync-chips [data-symbol=\"{symbol}\"]')"
                                   f"?.textContent === '{symbol.upper()} in sync'")
            assert get_json(rd.api_url + "/health")["sync"][symbol]["state"] == "synced"
            assert symbol in rd.loop.call(lambda: list(rd.stack.stack.runtime.feeds))

            # an alert's link to a symbol without a full book (a spread alert of the
            # screener's rows), with a moment it has no history for: the page promotes
            # it, shows it in sync and says it goes live; a symbol the screener does
            # not list is refused, said, and no other symbol is shown
            other = next(s for s in sorted(trading) if s not in {"btcusdt", symbol})
            assert other not in rd.loop.call(lambda: list(rd.stack.stack.runtime.feeds))
            hour_ago = datetime.fromtimestamp(time.time() - 3600, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            page.goto(rd.url + f"/?symbol={other}&t={hour_ago}")
            page.wait_for_function(f"() => window.LIQ?.debug?.()?.symbol === '{other}'")
            page.wait_for_function(f"() => document.querySelector('#sync-chips [data-symbol=\"{other}\"]')"
                                   f"?.textContent === '{other.upper()} in sync'")
            page.wait_for_function("() => document.querySelector('#view-state').textContent.includes('showing live')")
            assert page.evaluate("() => LIQ.debug().view.paused") is False
            assert f"symbol={other}" in page.url
            assert get_json(rd.api_url + "/health")["sync"][other]["state"] == "synced"

            page.goto(rd.url + "/?symbol=nosuchusdt")
            page.wait_for_function("() => document.querySelector('#liq-root')?.dataset.refused === 'nosuchusdt'")
            said = page.text_content("#view-state") or ""
            assert "cannot open NOSUCHUSDT" in said and "not a symbol the screener lists" in said
            assert page.evaluate("() => LIQ.debug().symbol") is None
            assert page.evaluate("() => LIQ.debug().conn") in {"idle", "disconnected"}
            assert [e for e in errors if "404" not in e] == []
        finally:
            page.close()
