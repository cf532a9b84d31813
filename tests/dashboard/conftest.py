"""What the browser test modules share: one stack with its Dash server (``dash_env``)
and one headless Chromium (``chromium``).

Each is started by the first module that asks for it and kept for the next module
only when the next test uses it too; it is stopped as soon as the next test does
not (so nothing runs beside the replay tests, which start their own). Each module
still gets its own pages and browser contexts, and each test re-establishes what it
assumes of the stack (no fault, the market running, the API serving, the books in
sync) in its own ``page`` fixture, so no module depends on another or on their order.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.stack import TEST_WARMUP_S

PUSH_S = 0.5  # the stack's frame cadence in every browser module

_kept: dict[str, tuple[contextlib.ExitStack, Any]] = {}
_next_item: list[pytest.Item | None] = [None]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    _next_item[0] = nextitem  # read by the kept fixtures' teardown below
    yield


def pytest_sessionfinish(session: pytest.Session) -> None:
    while _kept:
        _kept.popitem()[1][0].close()


def _kept_value(name: str, start: Callable[[contextlib.ExitStack], Any]) -> Iterator[Any]:
    """The kept ``name`` (started with ``start`` if none runs), then stopped unless
    the next test asks for ``name`` too."""
    if name not in _kept:
        resources = contextlib.ExitStack()
        try:
            _kept[name] = (resources, start(resources))
        except BaseException:
            resources.close()
            raise
    yield _kept[name][1]
    nxt = _next_item[0]
    if nxt is None or name not in getattr(nxt, "fixturenames", ()):
        _kept.pop(name)[0].close()


def _start_dashboard(resources: contextlib.ExitStack) -> Any:
    from dashboard.harness import running_dashboard

    return resources.enter_context(running_dashboard(push_interval_s=PUSH_S, sim_config={"warmup_s": TEST_WARMUP_S}))


def _start_chromium(resources: contextlib.ExitStack) -> Any:
    from playwright.sync_api import sync_playwright

    from dashboard.harness import launch_chromium

    pw = resources.enter_context(sync_playwright())
    browser = launch_chromium(pw)
    resources.callback(browser.close)
    return browser


@pytest.fixture(scope="module")
def dash_env() -> Iterator[Any]:
    """The stack (simulated exchange, ingestion, API) and the Dash server beside it
    (dashboard.harness.RunningDashboard), frames every PUSH_S."""
    yield from _kept_value("dash_env", _start_dashboard)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Debian's headless Chromium through Playwright (a playwright Browser)."""
    yield from _kept_value("chromium", _start_chromium)
