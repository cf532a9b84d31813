"""Every background task starts here: named, referenced, its failure logged."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger("tasks")


class TaskRegistry:
    """Keeps a reference to each task (so none is garbage-collected mid-flight),
    logs any exception it dies with, and cancels and awaits them all at shutdown."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self.failures: list[tuple[str, BaseException]] = []

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

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
