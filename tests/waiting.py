"""Waiting for a condition, never for a duration.

A test that needs something to have happened polls for it, with a ceiling that is
only there to turn a hang into a failure: on a loaded machine the condition comes
later, the test still passes. The ceiling is generous on purpose; a passing test
never waits for it.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable

CEILING_S = 60.0  # default ceiling of every wait: minutes would also do, seconds would not
POLL_S = 0.02


async def wait_until(
    predicate: Callable[[], bool | Awaitable[bool]], timeout: float = CEILING_S, what: str = ""
) -> None:
    """Poll ``predicate`` (plain or async) until true; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what or predicate}")
        await asyncio.sleep(POLL_S)


def wait_until_sync(predicate: Callable[[], bool], timeout: float = CEILING_S, what: str = "",
                    poll_s: float = 0.1) -> None:
    """The same for synchronous tests (threads, subprocesses)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what or predicate}")
        time.sleep(poll_s)
