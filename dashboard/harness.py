"""The running product (simulated exchange, ingestion, API) plus the Dash server,
for the browser tests, the screenshot and the browser benchmark.

Chromium comes from Debian (/usr/bin/chromium); no browser is ever downloaded.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from dashboard.app import create_app
from dashboard.background_loop import LoopThread
from dashboard.server import DashboardServer
from sim_stack import StackHandle, running_stack

CHROMIUM = os.environ.get("LIQ_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
)


@dataclass
class RunningDashboard:
    """What a browser test needs: the stack (sim, API), its loop, the page URL."""

    loop: LoopThread
    stack: StackHandle
    server: DashboardServer

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def api_url(self) -> str:
        return self.stack.api_url


@contextlib.contextmanager
def running_dashboard(
    symbols: Sequence[str] = ("btcusdt", "ethusdt"), push_interval_s: float = 1.0, **overrides: Any
) -> Iterator[RunningDashboard]:
    """Start the simulated stack on a background loop and the dashboard beside it."""
    loop = LoopThread()
    server: DashboardServer | None = None
    try:
        handle = loop.enter(running_stack(symbols=tuple(symbols), push_interval_s=push_interval_s, **overrides))
        loop.run(handle.wait_synced())
        app = create_app(handle.api_url, list(symbols), handle.stack.source.label)
        server = DashboardServer(app, "127.0.0.1", 0)
        server.start()
        yield RunningDashboard(loop, handle, server)
    finally:
        if server is not None:
            server.stop()
        loop.close()


def launch_chromium(playwright: Any, extra_args: Sequence[str] = ()) -> Any:
    """Headless Debian Chromium through Playwright (sync API)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *extra_args])
