"""``/ws/{symbol}``: one websocket client, its ``history`` message then one frame
per tick, until either side closes. An unknown symbol is closed with 1008, a client
beyond the hub's limits with 1013, every client with 1001 at shutdown."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from fastapi import FastAPI, WebSocket
from starlette.websockets import WebSocketDisconnect, WebSocketState

from api.hub import FrameHub, LimitExceeded, Subscriber
from api.services import Services
from features.frame import json_schema


def add_ws_routes(app: FastAPI, services: Services) -> None:
    """``/ws/{symbol}`` on ``app``, and ``/schema/frame.json``: the JSON Schema of the
    frames it pushes, generated from features.frame.Frame."""
    frame_schema = json_schema()

    @app.get("/schema/frame.json", summary="JSON Schema of the frames pushed on /ws/{symbol}")
    async def schema_frame() -> dict[str, Any]:
        return frame_schema

    @app.websocket("/ws/{symbol}")
    async def ws_frames(websocket: WebSocket, symbol: str) -> None:
        await serve_subscriber(services, websocket, symbol)


async def serve_subscriber(services: Services, websocket: WebSocket, symbol: str) -> None:
    """One websocket client: history, then frames, until either side closes."""
    hub = services.hub
    sym = symbol.lower()
    await websocket.accept()
    if sym not in services.runtime.feeds:
        known = ", ".join(sorted(services.runtime.feeds))
        await websocket.close(code=1008, reason=f"unknown symbol {symbol!r}; served: {known}"[:120])
        return
    remote = websocket.client.host if websocket.client else "unknown"
    try:
        sub = hub.subscribe(sym, remote)
    except LimitExceeded as exc:
        await websocket.close(code=1013, reason=str(exc)[:120])
        return
    hub.active_handlers += 1
    reader: asyncio.Future[None] | None = None
    try:
        history = services.publisher.buffers[sym].history_message().decode()
        await websocket.send_text(history)
        # The reader notices the client leaving and closes the subscription, which
        # wakes this loop: one task step per frame sent, no task made per frame.
        reader = asyncio.ensure_future(_drain_client(websocket, hub, sub))
        while True:
            message = await sub.next_message()
            if message is None:
                break
            await websocket.send_text(message)
            sub.sent += 1
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass
    finally:
        if reader is not None:
            reader.cancel()
        hub.unsubscribe(sub)
        if hub.closing and websocket.application_state is WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await websocket.close(code=1001, reason="server shutting down")
        hub.active_handlers -= 1


async def _drain_client(websocket: WebSocket, hub: FrameHub, sub: Subscriber) -> None:
    """Read (and ignore) what the client sends; when it goes away, end its subscription."""
    try:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
            while True:
                msg = await websocket.receive()
                if msg.get("type") == "websocket.disconnect":
                    return
    finally:
        hub.unsubscribe(sub)
