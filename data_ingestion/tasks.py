"""Every background task starts here: named, referenced, its failure logged; a
long-lived one restarted when it dies; and the event loop's own error reports
logged once per interval, not once per occurrence."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger("tasks")

RESTART_BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0)  # after the 1st, 2nd, ... failure in a row


class TaskRegistry:
    """Keeps a reference to each task (so none is garbage-collected mid-flight),
    logs any exception it dies with, and cancels and awaits them all at shutdown.

    ``spawn`` is for work that ends (a replay, a one-off); ``supervise`` for work
    that must run as long as the process (a connection, the publisher, a monitor):
    when it dies it is logged with its traceback and started again after a backoff,
    and the restarts are counted (``/health``), so no part of the process is ever
    silently gone."""

    def __init__(self, backoff_s: tuple[float, ...] = RESTART_BACKOFF_S) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self.failures: list[tuple[str, BaseException]] = []
        self.restarts: dict[str, int] = {}
        self.backoff_s = backoff_s

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def supervise(self, factory: Callable[[], Coroutine[Any, Any, Any]], name: str) -> asyncio.Task[Any]:
        """Run ``factory()`` as task ``name``; each time it raises, log it and run a
        fresh ``factory()`` after a backoff (a run that lasted a minute resets it)."""
        return self.spawn(self._keep_running(factory, name), name=name)

    async def _keep_running(self, factory: Callable[[], Coroutine[Any, Any, Any]], name: str) -> None:
        in_a_row = 0
        while True:
            started = time.monotonic()
            try:
                await factory()
                return  # finished its work
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.failures.append((name, exc))
                if time.monotonic() - started > 60.0:
                    in_a_row = 0
                delay = self.backoff_s[min(in_a_row, len(self.backoff_s) - 1)]
                in_a_row += 1
                self.restarts[name] = self.restarts.get(name, 0) + 1
                log.error("task %s died: %r; restarting in %g s (restart %d)", name, exc, delay,
                          self.restarts[name], exc_info=exc)
                await asyncio.sleep(delay)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self.failures.append((task.get_name(), exc))
            log.error("task %s died: %r", task.get_name(), exc, exc_info=exc)

    @property
    def running(self) -> list[str]:
        return sorted(t.get_name() for t in self._tasks if not t.done())

    async def cancel_all(self, wait_s: float = 3.0) -> None:
        tasks = [t for t in self._tasks if not t.done()]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=wait_s)


class LoopErrorLog:
    """An event-loop exception handler that logs each kind of report (its message)
    once per ``interval_s``, with a count of the ones held back. Out of descriptors,
    asyncio reports every failed ``accept``; one line per interval says as much."""

    def __init__(self, interval_s: float = 10.0, clock: Callable[[], float] = time.monotonic,
                 logger: logging.Logger | None = None) -> None:
        self.interval_s = interval_s
        self.clock = clock
        self.log = logger or logging.getLogger("asyncio")
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}
        self.reports = 0

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        self.reports += 1
        message = str(context.get("message") or "event loop error")
        exc = context.get("exception")
        key = f"{message}|{type(exc).__name__ if exc is not None else ''}"
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last < self.interval_s:
            self._held[key] = self._held.get(key, 0) + 1
            return
        held = self._held.pop(key, 0)
        self._last[key] = now
        more = f" ({held} more like this in the last {now - last:.0f} s)" if held and last is not None else ""
        detail = f": {exc!r}" if exc is not None else ""
        self.log.error("%s%s%s", message, detail, more, exc_info=exc if held == 0 and last is None else None)


def install_loop_error_log(loop: asyncio.AbstractEventLoop, interval_s: float = 10.0) -> LoopErrorLog:
    handler = LoopErrorLog(interval_s)
    loop.set_exception_handler(handler)
    return handler
