"""The dashboard on a replay (``--source replay``) of the real BTCUSDT recording, in
headless Chromium: the banner says what is true ("replaying", then "replay
finished", never "live" or "connected"), the lag is labelled as the recording's,
and the page stays readable on the replay banner.

The recording spans 345 s; played at 8x it lasts about 43 s: long enough to see the
page while it plays even on a busy 2-core machine (where starting the stack and
loading the page can take 16 s), short enough to wait for its end.
"""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Page, sync_playwright  # noqa: E402

from dashboard.harness import CHROMIUM, launch_chromium, running_replay_dashboard  # noqa: E402
from tests.dashboard.contrast import contrast_failures, measure_contrast  # noqa: E402

pytestmark = pytest.mark.browser

if not os.path.exists(CHROMIUM):
    pytest.skip(f"no Chromium at {CHROMIUM} (make chromium)", allow_module_level=True)

SPEED = 8.0
LIQ = "window.dash_clientside.liq"


@pytest.fixture(scope="module")
def replay_env(btc_file: Path) -> Iterator[tuple[Any, Any, Any]]:
    with running_replay_dashboard([str(btc_file)], speed=SPEED, push_interval_s=0.5) as env:
        yield env


@pytest.fixture(scope="module")
def replay_page(replay_env: tuple[Any, Any, Any]) -> Iterator[tuple[Page, list[str]]]:
    _loop, _stack, server = replay_env
    errors: list[str] = []
    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
        page.goto(server.url)
        page.wait_for_function(f"() => {LIQ}?.debug().seq != null", timeout=60_000)
        yield page, errors
        browser.close()


def health(stack: Any) -> dict[str, Any]:
    with urllib.request.urlopen(stack.api_url + "/health", timeout=5) as resp:
        return dict(json.loads(resp.read()))


def status(page: Page) -> str:
    return str(page.get_attribute("#liq-root", "data-status"))


def test_replay_says_replaying_then_replay_finished(
    replay_env: tuple[Any, Any, Any], replay_page: tuple[Page, list[str]]
) -> None:
    _loop, stack, _server = replay_env
    page, errors = replay_page
    assert not health(stack)["replay"]["finished"], "the replay ended before the page was up; lower SPEED"

    # While it plays
    page.wait_for_function("() => document.getElementById('liq-root')?.dataset.status === 'replaying'",
                           timeout=60_000)
    assert page.inner_text("#conn-status") == "replaying"
    assert page.get_attribute("#liq-root", "data-conn") == "connected"  # the socket itself
    frame = page.evaluate(f"() => {LIQ}.lastFrame()")
    assert frame["replay"] == {"finished": False}
    page.wait_for_function("() => document.getElementById('banner').classList.contains('banner-replay')")
    assert page.inner_text("#src-badge").startswith("REPLAY of btcusdt_20240808.gz")
    # the lag of a replay is the recording's (receive time minus event time, as recorded)
    lag_label = page.inner_text("#feed .fkey[data-field=lag_ms]")
    assert lag_label == "recording lag ms", lag_label
    assert page.inner_text("#feed .fval[data-field=lag_ms]") not in ("", "\u2013")
    # the age line says which recorded moment is on screen: 8 August 2024, UTC
    page.wait_for_function(
        "() => /recorded 2024-08-08 [0-9:]{8} UTC/.test(document.getElementById('update-age').textContent)"
    )
    banner = page.inner_text("#banner")
    assert "live" not in banner.lower() and "connected" not in banner.lower(), banner

    # At the end: /health says finished, and so does the page, from the frames
    page.wait_for_function("() => document.getElementById('liq-root')?.dataset.status === 'finished'",
                           timeout=120_000)
    assert page.inner_text("#conn-status") == "replay finished"
    assert health(stack)["replay"]["finished"] is True
    assert page.evaluate(f"() => {LIQ}.lastFrame().replay") == {"finished": True}
    assert page.inner_text("#feed .fkey[data-field=lag_ms]") == "recording lag ms"
    # the books stay: the ladder and the impact panel still show the last recorded book
    assert page.inner_text("#m-mid") not in ("", "\u2013")
    page.wait_for_function("() => document.getElementById('impact-result').dataset.status === 'ok'",
                           timeout=60_000)
    assert errors == [], errors


def test_replay_page_is_readable(replay_page: tuple[Page, list[str]]) -> None:
    page, _errors = replay_page
    measured = measure_contrast(page)
    assert any(m["element"] == "span#src-badge" for m in measured)
    failures = contrast_failures(measured)
    assert not failures, "text under 4.5:1 contrast:\n" + "\n".join(failures)
