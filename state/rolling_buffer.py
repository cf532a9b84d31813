"""The last ``buffer_seconds`` of frames of one symbol, in a ring buffer.

One frame per tick; the deque's maxlen is buffer_seconds / push_interval_s, so memory
is bounded by construction and does not grow with uptime. The encoded bytes of each
frame are kept next to it when the caller has them, so the history message is built
by joining bytes, not by encoding 180 frames again for every new client.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import orjson


def frames_for(buffer_seconds: float, push_interval_s: float) -> int:
    """Number of frames that cover ``buffer_seconds`` at one frame per push interval
    (180 s at 1 s -> 180; at 0.1 s -> 1800, despite 180 / 0.1 = 1799.99...)."""
    if not buffer_seconds > 0 or not push_interval_s > 0:
        raise ValueError(
            f"buffer_seconds and push_interval_s must be positive, got {buffer_seconds!r}, {push_interval_s!r}"
        )
    ratio = buffer_seconds / push_interval_s
    nearest = round(ratio)
    return max(1, nearest if math.isclose(ratio, nearest, rel_tol=1e-9) else math.ceil(ratio))


class FrameBuffer:
    """Ring buffer of the frames of one symbol, oldest first, kept encoded.

    Only the JSON bytes are kept (about 8 KB a frame, where the same frame as Python
    dicts and floats weighs several times that): the history message is their join,
    and reading a frame back decodes it."""

    __slots__ = ("symbol", "_items", "_history")

    def __init__(self, symbol: str, buffer_seconds: float = 180.0, push_interval_s: float = 1.0) -> None:
        self.symbol = symbol.lower()
        self._items: deque[bytes] = deque(maxlen=frames_for(buffer_seconds, push_interval_s))
        self._history: bytes | None = None  # the history message of the current contents, once built

    @property
    def maxlen(self) -> int:
        return self._items.maxlen or 0

    def __len__(self) -> int:
        return len(self._items)

    def append(self, frame: Any, encoded: bytes | None = None) -> None:
        """Keep ``frame`` (as ``encoded`` when the caller already has its orjson bytes);
        the oldest drops out when full."""
        self._items.append(encoded if encoded is not None else orjson.dumps(frame))
        self._history = None

    def clear(self) -> None:
        self._items.clear()
        self._history = None

    def latest(self) -> dict[str, Any] | None:
        return orjson.loads(self._items[-1]) if self._items else None

    def frames(self) -> list[dict[str, Any]]:
        """The buffered frames, oldest first (decoded)."""
        return [orjson.loads(item) for item in self._items]

    def encoded_frames(self) -> list[bytes]:
        """Encoded bytes of every buffered frame, oldest first."""
        return list(self._items)

    def history_message(self) -> bytes:
        """``{"type": "history", "symbol": .., "frames": [..]}`` as bytes, built by
        joining the stored encodings."""
        head = orjson.dumps({"type": "history", "symbol": self.symbol})[:-1]  # drop the closing }
        return head + b',"frames":[' + b",".join(self._items) + b"]}"

    def history_bytes(self) -> bytes:
        """:meth:`history_message`, built once per tick and shared by every client that
        connects before the next frame (a burst of connections costs one join, not one
        each, and no client keeps its own copy: it is written to each from this one
        object, a fragment at a time as the client takes it)."""
        if self._history is None:
            self._history = self.history_message()
        return self._history
