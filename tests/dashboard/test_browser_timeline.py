"""The timeline of the recorded history, in headless Chromium against the real stack.

One data directory recorded by two runs with a stop between them (the stop is a gap),
the second run serving the dashboard; one browser and one page for the module. Every
test opens the address it needs, so none depends on another or on their order. Waits
are for the page to show something, with a generous ceiling; nothing is timed.
"""

from __future__ import annotations

import asyncio
import json
import os
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Page, sync_playwright  # noqa: E402

from dashboard.harness import CHROMIUM, RunningDashboard, launch_chromium, running_dashboard  # noqa: E402
from sim_stack import running_stack  # noqa: E402
from tests.dashboard.contrast import contrast_failures, measure_contrast  # noqa: E402
from tests.waiting import CEILING_S  # noqa: E402

pytestmark = pytest.mark.browser

if not os.path.exists(CHROMIUM):
    pytest.skip(f"no Chromium at {CHROMIUM} (make chromium)", allow_module_level=True)

PUSH_S = 0.5
SYM = "btcusdt"
CEILING_MS = int(CEILING_S * 1000)
LIQ = "window.dash_clientside.liq"
HISTORY_BG = "rgb(36, 26, 10)"  # --history-bg
LADDER_JS = """() => Array.from(document.querySelectorAll('#ladder .lrow')).map(r => ({
    side: r.dataset.side, price: Number(r.dataset.price), qty: Number(r.dataset.qty)}))"""
# the second run's own range: seconds of it recorded before the page is opened
RUN2_RECORDED_S = 6


def recording_options(data: Path) -> dict[str, Any]:
    return {"push_interval_s": PUSH_S, "history": True, "data_dir": str(data), "checkpoint_interval_s": 2.0}


async def first_run(data: Path) -> None:
    """Record about 20 s in sync with a wall injected on the exchange (an alert to step
    to), then stop: the time until the next run is a gap."""
    async with running_stack(**recording_options(data)) as h:
        await h.wait_synced()
        store = h.stack.history
        assert store is not None
        start = store.rows_written
        await h.wait_for(lambda: store.rows_written >= start + 2 * 8, what="8 s recorded")
        await h.sim.inject_wall(SYM, side="bid", distance_ticks=2, multiple=25.0, duration_s=10.0)
        await h.wait_for(lambda: store.alerts_written >= 1, what="an alert recorded")
        await h.wait_for(lambda: store.rows_written >= start + 2 * 20, what="20 s recorded")
        await asyncio.to_thread(store.flush)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDashboard]:
    data = tmp_path_factory.mktemp("data")
    asyncio.run(first_run(data))
    with running_dashboard(**recording_options(data)) as rd:
        history = rd.stack.stack.history
        assert history is not None
        rd.loop.run(rd.stack.wait_for(lambda: history.rows_written >= 2 * 2 * RUN2_RECORDED_S,
                                      what="the second run recording"), timeout=None)
        yield rd


@pytest.fixture(scope="module")
def module_page(env: RunningDashboard) -> Iterator[tuple[Page, list[str]]]:
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
def page(module_page: tuple[Page, list[str]], env: RunningDashboard) -> Iterator[Page]:
    page_, errors = module_page
    env.loop.call(env.stack.leave_clean)
    errors.clear()
    yield page_
    assert errors == [], errors


def api_get(env: RunningDashboard, path: str) -> Any:
    with urllib.request.urlopen(env.api_url + path, timeout=CEILING_S) as resp:
        return json.loads(resp.read())


def coverage(env: RunningDashboard) -> dict[str, Any]:
    return dict(api_get(env, f"/history/{SYM}/coverage"))


def first_run_moment(env: RunningDashboard, into: float = 10.0) -> float:
    """A moment ``into`` seconds into the first run's in-sync range."""
    first = coverage(env)["ranges"][0]
    assert first[1] - first[0] > into + 4, first
    return float(first[0] + into)


def open_view(page: Page, env: RunningDashboard, query: str = "", size: tuple[int, int] = (1400, 900),
              min_notional: str | None = None) -> None:
    """The dashboard at ``query``, live or history, once it shows the timeline."""
    page.set_viewport_size({"width": size[0], "height": size[1]})
    if page.url.startswith(env.url):
        page.evaluate("() => window.localStorage.clear()")
        if min_notional is not None:
            page.evaluate(f"() => localStorage.setItem('liq.alerts.minNotional.{SYM}', '{min_notional}')")
    page.goto(env.url + "/" + query)
    page.wait_for_function(f"() => {LIQ}?.debug().timeline.available === true")
    page.wait_for_function("() => document.getElementById('liq-root').dataset.conn !== 'connecting'")


def timeline(page: Page) -> dict[str, Any]:
    return dict(page.evaluate(f"() => {LIQ}.debug().timeline"))


def wait_history(page: Page, state: str) -> None:
    page.wait_for_function(f"() => document.getElementById('liq-root').dataset.history === '{state}'")


def click_at(page: Page, moment: float) -> None:
    """Click the timeline's strip where it draws ``moment``."""
    box = page.locator("#tl-track").bounding_box()
    assert box is not None
    lo = float(page.get_attribute("#timeline", "data-from") or 0)
    hi = float(page.get_attribute("#timeline", "data-to") or 0)
    x = box["x"] + (moment - lo) / (hi - lo) * box["width"]
    page.mouse.click(x, box["y"] + box["height"] / 2)


def seconds_per_pixel(page: Page) -> float:
    box = page.locator("#tl-track").bounding_box()
    assert box is not None
    lo = float(page.get_attribute("#timeline", "data-from") or 0)
    hi = float(page.get_attribute("#timeline", "data-to") or 0)
    return (hi - lo) / box["width"]


def utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def url_moment(page: Page) -> float | None:
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(page.url).query)
    if "t" not in query:
        return None
    return datetime.fromisoformat(query["t"][0].replace("Z", "+00:00")).timestamp()


def in_history_banner(page: Page) -> None:
    """HISTORY on a banner of its own colour, never "connected"."""
    assert page.get_attribute("#liq-root", "data-status") == "history"
    assert page.is_visible("#hist-badge") and page.inner_text("#hist-badge") == "HISTORY"
    assert "connected" not in page.inner_text("#conn-status")
    assert page.evaluate("() => getComputedStyle(document.getElementById('banner')).backgroundColor") == HISTORY_BG


# ---------------------------------------------------------------- coverage and gaps


def test_the_timeline_draws_the_coverage_and_the_stop_between_runs_as_a_gap(page: Page, env: RunningDashboard) -> None:
    open_view(page, env)
    cov = coverage(env)
    stops = [g for g in cov["gaps"] if g["reason"] == "no data (not running)"]
    assert len(cov["ranges"]) >= 2 and stops, cov
    page.wait_for_function("(n) => document.querySelectorAll('#tl-bars .tl-range').length >= n", arg=len(cov["ranges"]))
    # one reading (the strip is redrawn as its span grows with the clock)
    ranges, gaps = page.evaluate("""() => ['.tl-range', '.tl-gap'].map(sel =>
        Array.from(document.querySelectorAll('#tl-bars ' + sel)).map(n => {
          const r = n.getBoundingClientRect(); return {from: Number(n.dataset.from), to: Number(n.dataset.to),
          reason: n.dataset.reason, cls: n.className, left: r.left, right: r.right}; }))""")
    # the API's ranges, the last one running on to now while this run records it
    assert [r["from"] for r in ranges] == [r[0] for r in cov["ranges"]]
    assert ranges[0]["to"] == cov["ranges"][0][1]
    stop = stops[0]
    drawn = [g for g in gaps if g["reason"] == "no data (not running)"]
    assert [(g["from"], g["to"]) for g in drawn] == [(g["from"], g["to"]) for g in stops]
    assert "tl-gap-off" in drawn[0]["cls"]
    # drawn as a gap: between the two runs' bars, no bar over it
    assert ranges[0]["to"] <= stop["from"] < stop["to"] <= ranges[1]["from"]
    assert ranges[0]["right"] <= drawn[0]["left"] + 1 and drawn[0]["right"] <= ranges[1]["left"] + 1
    assert not any(r["left"] < drawn[0]["right"] - 1 and drawn[0]["left"] + 1 < r["right"] for r in ranges)
    # alert markers where the API says alerts were
    alerts = api_get(env, f"/history/{SYM}/alerts?from={cov['ranges'][0][0] - 60}")["alerts"]
    marks = page.evaluate(f"() => {LIQ}.timeline.marks().map(m => m.t)")
    assert alerts and marks
    born = {round(a["born_ts"], 3) for a in alerts}
    assert {round(t, 3) for t in marks} <= born
    # live: the cursor at the right end, the banner as before
    assert timeline(page)["mode"] == "live" and page.inner_text("#tl-time") == "live"
    assert page.get_attribute("#liq-root", "data-status") == "connected"
    assert page.is_hidden("#hist-badge")


# ---------------------------------------------------------------- seek, play, live


def test_seeking_shows_history_then_play_advances_and_live_returns(page: Page, env: RunningDashboard) -> None:
    open_view(page, env)
    target = first_run_moment(env)
    click_at(page, target)
    wait_history(page, "playing")
    tol = 4 * seconds_per_pixel(page) + 0.05   # where the click landed, to a few pixels
    state = timeline(page)
    assert abs(state["from"] - target) <= tol, (state, target, tol)
    in_history_banner(page)

    # paused: the socket closed, the moment held
    page.keyboard.press("Space")
    wait_history(page, "paused")
    assert page.get_attribute("#liq-root", "data-conn") == "stopped"
    assert page.get_attribute("#liq-root", "data-paused") == "1"
    frame = page.evaluate(f"() => {LIQ}.lastFrame()")
    moment = frame["history"]["time"]
    assert moment >= state["from"] - 0.0011 and frame["history"]["finished"] is False  # from, to the millisecond
    assert frame["timestamp"] == pytest.approx(moment)
    in_history_banner(page)
    assert utc(moment) in page.inner_text("#conn-status")
    assert url_moment(page) == pytest.approx(moment, abs=0.0011)
    # the ladder shows the book of that moment, as GET /history/{symbol}/book rebuilds it
    book = api_get(env, f"/history/{SYM}/book?at={moment!r}&depth=10")
    assert book["in_sync"] and book["last_update_id"] == frame["sync"]["last_update_id"]
    assert int(page.get_attribute("#ladder", "data-last-update-id") or 0) == book["last_update_id"]
    rows = page.evaluate(LADDER_JS)
    assert [[r["price"], r["qty"]] for r in rows if r["side"] == "bid"] == book["bids"]
    assert sorted([r["price"], r["qty"]] for r in rows if r["side"] == "ask") == book["asks"]

    # play: the recorded time moves on from there
    page.click("#tl-play")
    wait_history(page, "playing")
    page.wait_for_function(f"(t) => {LIQ}.debug().timeline.time > t + 1", arg=moment)
    assert page.get_attribute("#liq-root", "data-status") == "history"

    # Live: the plain socket again, frames without history, the banner as before
    page.click("#tl-live")
    page.wait_for_function("() => document.getElementById('liq-root').dataset.status === 'connected'")
    seq = page.evaluate(f"() => {LIQ}.debug().seq")
    page.wait_for_function(f"(s) => {LIQ}.debug().seq > s", arg=seq)
    assert page.evaluate(f"() => {LIQ}.lastFrame().history") is None
    assert timeline(page)["mode"] == "live" and url_moment(page) is None
    assert page.is_hidden("#hist-badge")
    assert page.evaluate("() => document.getElementById('banner').classList.contains('banner-history')") is False


def test_a_link_older_than_the_last_180_s_opens_that_moment_from_the_recording(
    page: Page, env: RunningDashboard
) -> None:
    target = first_run_moment(env, into=6.0)
    iso = datetime.fromtimestamp(target, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    open_view(page, env, f"?symbol={SYM}&speed=5&t={iso}")
    wait_history(page, "paused")
    state = timeline(page)
    assert state["time"] == pytest.approx(round(target, 3), abs=0.0011), (state, target)
    # the link's speed: chosen in the strip, and what play asks for
    assert state["speed"] == 5 and page.input_value("#tl-speed") == "5"
    assert urllib.parse.parse_qs(urllib.parse.urlsplit(page.url).query)["speed"] == ["5"]
    in_history_banner(page)
    assert "paused at " + utc(state["time"]) in page.inner_text("#view-state")
    assert url_moment(page) == pytest.approx(state["time"], abs=0.0011)
    page.click("#tl-play")
    page.wait_for_function(f"() => {LIQ}.lastFrame()?.history?.speed === 5")


def test_played_across_the_stop_to_where_the_recording_ends(page: Page, env: RunningDashboard) -> None:
    """At 10x from just before the stop: the stop is passed over (no frame inside it),
    the second run plays, and at the recording's end the banner says so, not retried."""
    open_view(page, env)
    page.select_option("#tl-speed", "10")
    stop = next(g for g in coverage(env)["gaps"] if g["reason"] == "no data (not running)")
    page.evaluate("() => { window.__historyTimes = []; }")
    page.evaluate(f"(t) => {LIQ}.timeline.seek(t)", stop["from"] - 2)
    page.wait_for_function(
        f"() => {{ const t = {LIQ}.debug().timeline; if (t.time !== null) window.__historyTimes.push(t.time);"
        " return document.getElementById('liq-root').dataset.history === 'finished'; }",
        polling=50)
    state = timeline(page)
    assert state["speed"] == 10 and state["finished"] is True and state["time"] > stop["to"]
    seen = page.evaluate("() => window.__historyTimes")
    assert not [t for t in seen if stop["from"] + 2 < t < stop["to"] - 1], seen
    # the socket's end is told when its close arrives, which may follow the last frame's drawing
    page.wait_for_function("() => document.getElementById('liq-root').dataset.conn === 'closed'")
    assert "the recording ends here" in page.inner_text("#conn-status")
    in_history_banner(page)


# ---------------------------------------------------------------- keyboard


def test_keyboard_space_arrows_and_l_in_history(page: Page, env: RunningDashboard) -> None:
    open_view(page, env, min_notional="0")   # every alert a marker, whatever its notional
    page.wait_for_function(f"() => {LIQ}.timeline.marks().length > 0")
    marks = page.evaluate(f"() => {LIQ}.timeline.marks().map(m => m.t)")
    start = coverage(env)["ranges"][0][0]
    # Home on the focused strip: the first recorded moment, played
    page.focus("#tl-track")
    page.keyboard.press("Home")
    wait_history(page, "playing")
    page.keyboard.press("Space")
    wait_history(page, "paused")
    here = timeline(page)["time"]
    assert here >= start - 1
    later = [t for t in marks if t > here + 0.5]
    assert later, (marks, here)

    # → (the strip not focused): the next alert, still paused, shown from its very time
    page.evaluate("() => document.activeElement.blur()")
    page.keyboard.press("ArrowRight")
    # (the socket is opened from the moment to the millisecond)
    page.wait_for_function(
        f"(t) => Math.abs({LIQ}.debug().timeline.time - t) < 0.0011"
        " && document.getElementById('liq-root').dataset.history === 'paused'",
        arg=later[0])
    assert page.evaluate(f"() => {LIQ}.lastFrame().history.time") == pytest.approx(later[0], abs=0.0011)
    # ← the one before it, if any; else nothing moves
    earlier = [t for t in marks if t < later[0] - 0.5]
    page.keyboard.press("ArrowLeft")
    if earlier:
        page.wait_for_function(f"(t) => Math.abs({LIQ}.debug().timeline.time - t) < 0.0011", arg=earlier[-1])
        wait_history(page, "paused")
    else:
        assert timeline(page)["time"] == pytest.approx(later[0], abs=0.0011)
    # space plays, space pauses
    page.keyboard.press("Space")
    wait_history(page, "playing")
    page.keyboard.press("Space")
    wait_history(page, "paused")
    # L: live
    page.keyboard.press("L")
    page.wait_for_function("() => document.getElementById('liq-root').dataset.status === 'connected'")
    assert timeline(page)["mode"] == "live"
    assert page.get_attribute("#liq-root", "data-history") == "live"


# ---------------------------------------------------------------- phone


def test_on_a_phone_the_timeline_fits_its_controls_are_touch_sized_and_text_is_readable(
    page: Page, env: RunningDashboard
) -> None:
    open_view(page, env, size=(390, 844))
    page.evaluate(f"(t) => {LIQ}.timeline.seek(t)", first_run_moment(env))
    wait_history(page, "playing")
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    boxes = page.evaluate("""() => Array.from(document.querySelectorAll(
        '#timeline button, #timeline select, #tl-track')).map(n => {
        const r = n.getBoundingClientRect(); return {id: n.id, w: r.width, h: r.height, right: r.right}; })""")
    assert len(boxes) == 6, boxes
    for b in boxes:
        assert b["w"] >= 40 and b["h"] >= 40 and b["right"] <= 390, b
    in_history_banner(page)
    failures = contrast_failures(measure_contrast(page))
    assert not failures, "text under 4.5:1 contrast:\n" + "\n".join(failures)
    page.click("#tl-live")
    page.wait_for_function("() => document.getElementById('liq-root').dataset.status === 'connected'")
