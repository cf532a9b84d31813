"""The running product (simulated exchange, ingestion, API) plus the Dash server,
for the browser tests, the screenshot and the browser benchmark.

Chromium comes from Debian (/usr/bin/chromium); no browser is ever downloaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Iterator, Sequence
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
        handle.stack.allow_origin(server.url)
        yield RunningDashboard(loop, handle, server)
    finally:
        if server is not None:
            server.stop()
        loop.close()


@contextlib.asynccontextmanager
async def _replay_stack(files: Sequence[str], speed: float, push_interval_s: float) -> AsyncIterator[Any]:
    from api.assembly import Stack
    from api.services import SourceInfo
    from config import load_settings

    settings = load_settings(environ={}, source="replay", replay_files=tuple(files), replay_speed=speed,
                             api_port=0, host="127.0.0.1", dashboard=False, push_interval_s=push_interval_s)
    names = ", ".join(os.path.basename(f) for f in files)
    stack = Stack(settings, SourceInfo("replay", f"REPLAY of {names}", "chosen by the test"), replay_files=files)
    try:
        await stack.start()
        yield stack
    finally:
        await stack.stop()


@contextlib.contextmanager
def running_replay_dashboard(
    files: Sequence[str], speed: float = 1.0, push_interval_s: float = 1.0, sync_timeout_s: float = 30.0
) -> Iterator[tuple[LoopThread, Any, DashboardServer]]:
    """The stack replaying ``files`` (``--source replay``) and the dashboard beside it:
    (loop, api.assembly.Stack, server). Returns once every book is in sync."""
    loop = LoopThread()
    server: DashboardServer | None = None
    try:
        stack = loop.enter(_replay_stack(files, speed, push_interval_s))

        async def synced() -> None:
            deadline = time.monotonic() + sync_timeout_s
            while not (stack.runtime.feeds and all(f.in_sync for f in stack.runtime.feeds.values())):
                if time.monotonic() > deadline:
                    raise AssertionError(f"replay not in sync within {sync_timeout_s:.0f} s")
                await asyncio.sleep(0.05)

        loop.run(synced(), timeout=sync_timeout_s + 5)
        app = create_app(stack.api_url, list(stack.runtime.feeds), stack.source.label)
        server = DashboardServer(app, "127.0.0.1", 0)
        server.start()
        stack.allow_origin(server.url)
        yield loop, stack, server
    finally:
        if server is not None:
            server.stop()
        loop.close()


def launch_chromium(playwright: Any, extra_args: Sequence[str] = ()) -> Any:
    """Headless Debian Chromium through Playwright (sync API)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *extra_args])
