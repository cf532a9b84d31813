"""Memory given back once a crowd of clients has gone.

Each websocket client costs buffers while it is connected (its transport's write
buffer alone can reach 64 KB, and the history message is written through it).
When hundreds leave at once, Python frees those blocks but glibc's allocator keeps
the pages in its arenas: the process's RSS stays at its peak although the memory is
free. The same happens, more slowly, with what every second leaves behind (frames
encoded, history messages, snapshots). ``malloc_trim(0)`` hands the free pages of
every arena back to the system. It is called here, off the event loop (ctypes
releases the GIL during the call), when at least ``min_left`` clients have left since
the last look (looked at every ``interval_s``), and otherwise once every
``every_s``. Elsewhere than glibc it does nothing.

A connection also leaves reference cycles behind (its protocol, transport, task and
queues point at each other): about 17 KB each, which only a full collection frees,
and Python runs one rarely (300 stalled clients gone left 5 MB of them for minutes).
So when a crowd has left, a full ``gc.collect()`` runs first, on the event loop:
start-up's objects are frozen out of collections (``gc.freeze`` in the assembly),
so it walks only what was made since, tens of milliseconds, and only after a
crowd has left, never on the periodic trim. It waits ``settle_s`` first: a client
counted as gone has its connection closed, or aborted a second later, only then, and
a collection run before that finds its cycles still alive.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import logging
import time
from collections.abc import Callable

from api.hub import FrameHub

log = logging.getLogger(__name__)


def _malloc_trim() -> Callable[[], object] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        fn = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_size_t]
    fn.restype = ctypes.c_int
    return lambda: fn(0)


class HeapTrimmer:
    """Calls ``malloc_trim`` after clients have left (see the module's text)."""

    def __init__(self, hub: FrameHub, interval_s: float = 5.0, min_left: int = 20, every_s: float = 60.0,
                 trim: Callable[[], object] | None = None, collect: Callable[[], int] = gc.collect,
                 settle_s: float = 2.0) -> None:
        self.hub = hub
        self.interval_s = interval_s
        self.min_left = min_left
        self.every_s = every_s
        self.trims = 0
        self.collections = 0
        self.settle_s = settle_s
        self.last_collect_ms: float | None = None
        self._collect = collect
        self._trim = trim if trim is not None else _malloc_trim()
        self._left_seen = 0

    def left_since(self) -> int:
        """Clients gone since the last trim (or the start)."""
        st = self.hub.stats
        return st.clients_total - self.hub.client_count - self._left_seen

    async def run(self) -> None:
        if self._trim is None:
            return
        since = 0.0
        while True:
            await asyncio.sleep(self.interval_s)
            since += self.interval_s
            left = self.left_since()
            if left >= self.min_left or since >= self.every_s:
                self._left_seen += left
                since = 0.0
                if left >= self.min_left:
                    await asyncio.sleep(self.settle_s)  # their connections finish closing
                    t0 = time.perf_counter()
                    found = self._collect()
                    self.collections += 1
                    self.last_collect_ms = (time.perf_counter() - t0) * 1000.0
                    log.info("%d clients left: a full collection freed %d objects in %.0f ms",
                             left, found, self.last_collect_ms)
                await asyncio.to_thread(self._trim)
                self.trims += 1
