"""The last ``buffer_seconds`` of frames of one symbol, in a ring buffer.

One frame per tick; the deque's maxlen is buffer_seconds / push_interval_s, so memory
is bounded by construction and does not grow with uptime. The encoded bytes of each
frame are kept next to it when the caller has them, so the history message is built
by joining bytes, not by encoding 180 frames again for every new client.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(frozen=True, slots=True)
class BufferedFrame:
    frame: dict[str, Any]
    encoded: bytes | None  # orjson bytes of ``frame`` when the caller encoded it


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
    """Ring buffer of the frames of one symbol, oldest first."""

    __slots__ = ("symbol", "_items")

    def __init__(self, symbol: str, buffer_seconds: float = 180.0, push_interval_s: float = 1.0) -> None:
        self.symbol = symbol.lower()
        self._items: deque[BufferedFrame] = deque(maxlen=frames_for(buffer_seconds, push_interval_s))

    @property
    def maxlen(self) -> int:
        return self._items.maxlen or 0

    def __len__(self) -> int:
        return len(self._items)

    def append(self, frame: dict[str, Any], encoded: bytes | None = None) -> None:
        """Keep ``frame`` (and its encoded bytes, if given); the oldest drops out when full."""
        self._items.append(BufferedFrame(frame, encoded))

    def clear(self) -> None:
        self._items.clear()

    def latest(self) -> dict[str, Any] | None:
        return self._items[-1].frame if self._items else None

    def frames(self) -> list[dict[str, Any]]:
        """The buffered frames, oldest first."""
        return [item.frame for item in self._items]

    def encoded_frames(self) -> list[bytes]:
        """Encoded bytes of every buffered frame, oldest first (frames stored without
        bytes are encoded now with orjson)."""
        return [item.encoded if item.encoded is not None else orjson.dumps(item.frame) for item in self._items]

    def history_message(self) -> bytes:
        """``{"type": "history", "symbol": .., "frames": [..]}`` as bytes, built by
        joining the stored encodings."""
        head = orjson.dumps({"type": "history", "symbol": self.symbol})[:-1]  # drop the closing }
        return head + b',"frames":[' + b",".join(self.encoded_frames()) + b"]}"
