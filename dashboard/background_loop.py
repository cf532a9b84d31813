"""An asyncio event loop in a daemon thread, so synchronous code (Playwright's sync
API, the screenshot and benchmark tools) can run the async stack beside it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    """Owns one event loop running in a background thread until :meth:`close`."""

    def __init__(self, name: str = "dashboard-loop") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._contexts: list[AbstractAsyncContextManager[Any]] = []
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = 60.0) -> T:
        """Run ``coro`` on the loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Callable[[], T], timeout: float | None = 10.0) -> T:
        """Call a plain function on the loop's thread (objects owned by the loop)."""

        async def _call() -> T:
            return fn()

        return self.run(_call(), timeout)

    def enter(self, context: AbstractAsyncContextManager[T], timeout: float | None = 60.0) -> T:
        """Enter an async context manager on the loop; :meth:`close` exits it."""
        value = self.run(context.__aenter__(), timeout)
        self._contexts.append(context)
        return value

    def close(self, timeout: float = 30.0) -> None:
        """Exit entered contexts (last first), then stop the loop and join the thread."""
        while self._contexts:
            context = self._contexts.pop()
            self.run(context.__aexit__(None, None, None), timeout)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self.loop.close()
