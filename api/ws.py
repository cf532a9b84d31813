"""``/ws/{symbol}``: one websocket client, its ``history`` message then one frame
per tick, until either side closes.

How a client ends, and the close code it gets:

* an unknown symbol, or any other path under ``/ws``: 1008 with the reason;
* a page of another origin: 403 at the handshake (see api/origins.py);
* beyond the hub's limits: 1013;
* a client that sends more than it may (it has nothing to say beyond control
  frames; ``ws_client_msgs_per_s``, burst of twice that): 1008;
* a client whose frame waits ``ws_stall_timeout_s`` to be written, or whose
  connection delivers nothing for that long while bytes wait for it (it stopped
  reading: the kernel's buffers would hold minutes of frames before a write
  waited), or that keeps dropping frames that long (it reads too slowly): 1008,
  then its connection is aborted if the close frame cannot be written either, so
  its slot and buffers are freed within seconds whatever the peer does;
* every client at shutdown: 1001.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, WebSocket
from starlette.websockets import WebSocketDisconnect, WebSocketState

from api.errors import ApiError
from api.hub import FrameHub, LimitExceeded, Subscriber
from api.limits import (
    ABORT_EXTENSION,
    OUTSTANDING_EXTENSION,
    STOP_READING_EXTENSION,
    WRITE_FRAME_EXTENSION,
    WRITE_MESSAGE_EXTENSION,
    extension,
)
from api.rest import parse_number
from api.services import Services
from features.frame import json_schema

CLOSE_REASON_MAX_BYTES = 123  # RFC 6455: a close frame's payload is at most 125 bytes, 2 of them the code
CLOSE_WAIT_S = 1.0  # how long a close frame may wait to be written before the connection is aborted


def close_reason(text: str, limit: int = CLOSE_REASON_MAX_BYTES) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes, on a character boundary."""
    raw = text.encode("utf-8")
    if len(raw) <= limit:
        return text
    return raw[:limit].decode("utf-8", errors="ignore")


class StallWatch:
    """Whether a client still takes what is written to it. It has made progress when
    its connection holds nothing unacknowledged, or when more has left for it than
    ever before (characters written, a lower bound of the bytes, minus the bytes
    outstanding); it is stalled when neither happened for ``stall_s``. Checked after
    each write, so at the frame cadence: one system call a frame."""

    def __init__(self, outstanding: Callable[[], int | None] | None, stall_s: float, now: float) -> None:
        self.outstanding = outstanding
        self.stall_s = stall_s
        self.written = 0
        self.delivered = 0
        self.since = now

    def stalled_after(self, chars: int, now: float) -> bool:
        """Count ``chars`` more written (at monotonic time ``now``); True when the
        client made no progress for ``stall_s``."""
        self.written += chars
        if self.outstanding is None:
            return False
        waiting = self.outstanding()
        if waiting is None:
            return False
        delivered = self.written - waiting
        if waiting == 0 or delivered > self.delivered:
            self.delivered = max(self.delivered, delivered)
            self.since = now
            return False
        return now - self.since > self.stall_s


def add_ws_routes(app: FastAPI, services: Services) -> None:
    """``/ws/{symbol}`` on ``app``, and ``/schema/frame.json``: the JSON Schema of the
    frames it pushes, generated from features.frame.Frame."""
    frame_schema = json_schema()

    @app.get("/schema/frame.json", summary="JSON Schema of the frames pushed on /ws/{symbol}")
    async def schema_frame() -> dict[str, Any]:
        return frame_schema

    @app.websocket("/ws/{symbol}")
    async def ws_frames(websocket: WebSocket, symbol: str) -> None:
        if "from" in websocket.query_params:
            await serve_history(services, websocket, symbol)
        else:
            await serve_subscriber(services, websocket, symbol)

    @app.websocket("/ws")
    @app.websocket("/ws/")
    @app.websocket("/ws/{symbol}/{rest:path}")
    async def ws_bad_path(websocket: WebSocket) -> None:
        if await _origin_refused(services, websocket):
            return
        await websocket.accept()
        known = ", ".join(sorted(services.served_symbols()))
        await websocket.close(code=1008, reason=close_reason(f"use /ws/<symbol>; served: {known}"))


async def _origin_refused(services: Services, websocket: WebSocket) -> bool:
    """Refuse (HTTP 403 at the handshake) a page of an origin that is not allowed."""
    if services.origins.allows(websocket.headers.get("origin"), websocket.headers.get("host")):
        return False
    services.hub.stats.origins_refused += 1
    await websocket.close(code=1008)  # before accept: the server answers 403
    return True


async def serve_subscriber(services: Services, websocket: WebSocket, symbol: str) -> None:
    """One websocket client: history, then frames, until either side closes."""
    if await _origin_refused(services, websocket):
        return
    sym = symbol.lower()
    await websocket.accept()
    if sym not in services.served_symbols():
        known = ", ".join(sorted(services.served_symbols()))
        await websocket.close(code=1008, reason=close_reason(f"unknown symbol {symbol!r}; served: {known}"))
        return
    # The history message is shared by every client of this tick and not kept here
    # once written: a client pins no more than its queue of shared frames.
    await serve_subscription(services, websocket, sym, services.publisher.buffers[sym].history_bytes, lossless=False)


async def serve_subscription(services: Services, websocket: WebSocket, key: str, first: Callable[[], bytes],
                             lossless: bool) -> None:
    """Serve an accepted websocket its subscription to ``key`` of the hub: ``first()``
    (UTF-8 text shared by the clients of a tick, taken with the subscription, so what
    is queued follows it; written paced, a fragment at a time), then each message
    published, until either side closes. The limits (1013), the per-client message
    budget, the stall watch (1008) and the close or abort are the same for every
    subscription. A ``lossless`` stream (updates that carry changes only) is written
    through its queue and ends with 1013 at its first dropped message; the others are
    written straight from the hub while the client keeps up."""
    hub = services.hub
    remote = websocket.client.host if websocket.client else "unknown"
    try:
        sub = hub.subscribe(key, remote)
    except LimitExceeded as exc:
        await websocket.close(code=1013, reason=close_reason(str(exc)))
        return
    hub.active_handlers += 1
    settings = services.settings
    stall_s = settings.ws_stall_timeout_s
    stalled = f"not reading: nothing taken for {stall_s:g} s"
    reader: asyncio.Future[None] | None = None
    try:
        # A client that stopped reading is closed once nothing has left for it for the
        # stall time, whatever the kernel's buffers could still take.
        watch = StallWatch(extension(websocket.scope, OUTSTANDING_EXTENSION), stall_s, time.monotonic())
        payload = first()
        write_message = extension(websocket.scope, WRITE_MESSAGE_EXTENSION)
        async with asyncio.timeout(stall_s):
            if write_message is None:
                await websocket.send_text(payload.decode())
            elif not await write_message(payload):
                return  # closed while it was written
        watch.stalled_after(len(payload), time.monotonic())
        del payload
        # The reader notices the client leaving (or talking too much) and closes the
        # subscription, which wakes this loop.
        reader = asyncio.ensure_future(_drain_client(websocket, hub, sub, settings.ws_client_msgs_per_s))
        if not lossless:
            # From now on the hub writes frames straight to the connection while it keeps
            # up; this loop sends what had to be queued (the first message was still
            # going out, or the connection's buffer was full), one task step per frame.
            sub.direct = _direct_writer(websocket, sub, watch)
        while True:
            message = await sub.next_message()
            if message is None:
                break
            if lossless and sub.dropped:  # one update lost leaves the client's copy wrong
                sub.evict(1013, "too slow: an update was dropped; reconnect for a fresh snapshot")
                break
            sub.sending = True
            try:
                async with asyncio.timeout(stall_s):
                    await websocket.send_text(message)
            finally:
                sub.sending = False
            sub.sent += 1
            if watch.stalled_after(len(message), time.monotonic()):
                sub.evict(1008, stalled)
                break
    except TimeoutError:
        sub.evict(1008, f"not reading: a message waited {stall_s:g} s to be written")
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass
    finally:
        sub.direct = None
        if reader is not None:
            reader.cancel()
        hub.unsubscribe(sub)
        if sub.evicted is not None:
            hub.stats.clients_evicted += 1
            hub.stats.last_eviction = sub.evicted[1]
            await _close_or_abort(websocket, *sub.evicted, abort=extension(websocket.scope, ABORT_EXTENSION))
        elif hub.closing and websocket.application_state is WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await websocket.close(code=1001, reason="server shutting down")
        hub.active_handlers -= 1


def _direct_writer(websocket: WebSocket, sub: Subscriber, watch: StallWatch) -> Callable[[bytes, int], bool] | None:
    """The hub's direct path to this client (None when the server cannot write frames
    directly): the frame written at once, then the same stall check as a queued send."""
    write = extension(websocket.scope, WRITE_FRAME_EXTENSION)
    if write is None:
        return None

    def direct(frame: bytes, chars: int) -> bool:
        if not write(frame):
            return False
        if watch.stalled_after(chars, time.monotonic()):
            sub.evict(1008, f"not reading: nothing taken for {watch.stall_s:g} s")
        return True

    return direct


async def serve_history(services: Services, websocket: WebSocket, symbol: str) -> None:
    """``/ws/{symbol}?from=<epoch s>&speed=<x>``: frames rebuilt from the recording from
    that moment on, paced at ``speed`` (default 1, 0 as fast as the client reads,
    at most 100), each marked with its ``history`` state; an empty ``history`` message
    first, as on the live path. Ends with close 1000 after the last recorded frame."""
    if await _origin_refused(services, websocket):
        return
    from history.seek import history_frames  # the live path does not need it

    hub = services.hub
    sym = symbol.lower()
    await websocket.accept()
    params = websocket.query_params
    problem = None
    start = speed = 0.0
    try:
        start = parse_number("from", params.get("from", ""))
        speed = parse_number("speed", params.get("speed", "1"))
        if not 0 <= speed <= 100:
            problem = f"speed must be from 0 to 100, got {speed:g}"
    except ApiError as exc:
        problem = exc.detail
    directory = services.settings.recording_dir
    spec = services.runtime.specs.get(sym)
    if problem is None and (not directory or services.source.kind == "replay"):
        problem = "nothing is recorded in this process"
    if problem is None and spec is None:
        problem = f"unknown symbol {symbol!r}; served: {', '.join(sorted(services.runtime.feeds))}"
    if problem is not None:
        await websocket.close(code=1008, reason=close_reason(problem))
        return
    assert spec is not None
    if hub.history_clients >= services.settings.max_history_clients:
        hub.stats.clients_refused += 1
        await websocket.close(code=1013, reason=close_reason(
            f"too many history clients (limit {services.settings.max_history_clients})"))
        return
    hub.history_clients += 1
    hub.active_handlers += 1
    remote = websocket.client.host if websocket.client else "unknown"
    sub = Subscriber(sym, remote, 1)  # not in the hub: carries the reader's verdict
    stall_s = services.settings.ws_stall_timeout_s
    reader = asyncio.ensure_future(_drain_client(websocket, hub, sub, services.settings.ws_client_msgs_per_s))
    recorder = services.runtime.recorder
    frames = history_frames(Path(directory), sym, spec, services.settings, start, speed,
                            writing=recorder.open_paths if recorder is not None else ())
    sent = 0
    try:
        async with asyncio.timeout(stall_s):
            await websocket.send_text(f'{{"type":"history","symbol":"{sym}","frames":[]}}')
        watch = StallWatch(extension(websocket.scope, OUTSTANDING_EXTENSION), stall_s, time.monotonic())
        async for encoded in frames:
            if sub.closed or hub.closing:
                break
            async with asyncio.timeout(stall_s):
                await websocket.send_text(encoded.decode())
            sent += 1
            if watch.stalled_after(len(encoded), time.monotonic()):
                raise TimeoutError
        else:
            if sent == 0:
                sub.evict(1008, f"nothing recorded for {sym} at or after {start:.0f}")
            else:
                sub.evict(1000, "end of the recording")
    except TimeoutError:
        sub.evict(1008, f"not reading: a frame waited {stall_s:g} s to be written")
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass
    finally:
        await frames.aclose()
        reader.cancel()
        if sub.evicted is not None:
            if sub.evicted[0] != 1000:
                hub.stats.clients_evicted += 1
                hub.stats.last_eviction = sub.evicted[1]
            await _close_or_abort(websocket, *sub.evicted, abort=extension(websocket.scope, ABORT_EXTENSION))
        elif hub.closing and websocket.application_state is WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await websocket.close(code=1001, reason="server shutting down")
        hub.history_clients -= 1
        hub.active_handlers -= 1


async def _close_or_abort(websocket: WebSocket, code: int, reason: str, abort: Callable[[], None] | None) -> None:
    """Close with ``code``; if the close frame cannot be written within a second (the
    client is not reading), drop the connection and its buffered bytes. Once the close
    frame is written, nothing more is read from the client (a flooder is not parsed
    while its close reply is awaited) and the connection is dropped a second later."""
    closed = False
    if websocket.application_state is WebSocketState.CONNECTED:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(CLOSE_WAIT_S):
                await websocket.close(code=code, reason=close_reason(reason))
                closed = True
    if abort is None:
        return
    if not closed:
        abort()
        return
    stop_reading = extension(websocket.scope, STOP_READING_EXTENSION)
    if stop_reading is not None:
        stop_reading()
    asyncio.get_running_loop().call_later(CLOSE_WAIT_S, abort)


async def _drain_client(websocket: WebSocket, hub: FrameHub, sub: Subscriber, per_second: float) -> None:
    """Read (and drop) what the client sends; when it goes away, end its subscription.
    A token bucket (``per_second``, burst of twice that) bounds what it may send: a
    client over it is ended with 1008 and nothing more is read from it."""
    burst = max(1.0, 2 * per_second)
    tokens, last = burst, time.monotonic()
    try:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
            while True:
                msg = await websocket.receive()
                if msg.get("type") == "websocket.disconnect":
                    return
                now = time.monotonic()
                tokens = min(burst, tokens + (now - last) * per_second)
                last = now
                if tokens < 1.0:
                    sub.evict(1008, f"too many messages: a client may send {per_second:g}/s on this socket")
                    return
                tokens -= 1.0
    finally:
        hub.unsubscribe(sub)
