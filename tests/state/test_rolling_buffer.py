"""Ring buffer of frames: bounded by construction, history built from stored bytes."""

from __future__ import annotations

import sys
import tracemalloc

import orjson

from state.rolling_buffer import FrameBuffer, frames_for


def frame(i: int) -> dict[str, object]:
    return {"type": "frame", "symbol": "btcusdt", "timestamp": float(i), "seq": i, "bid_levels": [[1.0, 2.0]] * 5}


def test_length_follows_buffer_seconds_and_push_interval() -> None:
    assert frames_for(180.0, 1.0) == 180
    assert frames_for(180.0, 0.1) == 1800  # not 1799 from 180 / 0.1 = 1799.99..
    assert frames_for(180.0, 0.7) == 258  # ceil(257.14)


def test_after_three_times_its_length_exactly_180_seconds_remain_and_memory_is_flat() -> None:
    buf = FrameBuffer("btcusdt", 180.0, 1.0)
    tracemalloc.start()
    for i in range(3 * 180):
        f = frame(i)
        buf.append(f, orjson.dumps(f))
    assert len(buf) == 180
    times = [f["timestamp"] for f in buf.frames()]
    assert times[0] == 360.0 and times[-1] == 539.0  # 180 frames, one a second
    size_before = sys.getsizeof(buf._items)
    before, _ = tracemalloc.get_traced_memory()
    for i in range(540, 540 + 3 * 180):
        f = frame(i)
        buf.append(f, orjson.dumps(f))
    after, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(buf) == 180
    # a deque holds its items in 64-slot blocks: a full ring spans at most one block more
    assert sys.getsizeof(buf._items) <= size_before + 64 * 8 + 16
    assert after - before < 16 * 1024  # replaced frames are freed: no growth


def test_history_message_joins_stored_bytes() -> None:
    buf = FrameBuffer("btcusdt", 3.0, 1.0)
    for i in range(5):
        buf.append(frame(i), orjson.dumps(frame(i)) if i % 2 else None)
    msg = orjson.loads(buf.history_message())
    assert msg["type"] == "history" and msg["symbol"] == "btcusdt"
    assert [f["seq"] for f in msg["frames"]] == [2, 3, 4]
    assert buf.latest() == frame(4)
    buf.clear()
    assert orjson.loads(buf.history_message())["frames"] == [] and buf.latest() is None
