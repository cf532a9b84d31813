"""SimExchange: the simulated venue (venue.py) behind its REST and websocket servers.

    sim = SimExchange(SimConfig(symbols=("btcusdt", "ethusdt"), seed=1, speed=1.0))
    urls = await sim.start(host="127.0.0.1", port=0)
    ...  # point the client at urls.rest_base_url / ws_public_url / ws_market_url
    await sim.stop()

Everything runs in the caller's event loop: the market clock, the REST side (uvicorn,
embedded) and the websocket side.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import uvicorn

from embedded_server import EmbeddedServer, bind_socket, start_serving, stop_serving, url_host
from exchange_sim.rest import build_app
from exchange_sim.settings import SimConfig
from exchange_sim.venue import Venue
from exchange_sim.ws import WebsocketServer

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SimUrls:
    """Base URLs matching the client's settings fields."""

    rest_base_url: str
    ws_public_url: str
    ws_market_url: str
    ws_base_url: str  # unrouted (legacy) base: <base>/ws/<stream>, <base>/stream?streams=


class SimExchange(Venue):
    """A simulated Binance USDT-M futures exchange on loopback: the venue, served."""

    def __init__(self, config: SimConfig | None = None) -> None:
        super().__init__(config)
        self.ws_server = WebsocketServer(self.cfg, self.hub, self.symbols, lambda: self.restricted_location)
        self._rest_server: uvicorn.Server | None = None
        self._rest_task: asyncio.Task[None] | None = None
        self.urls: SimUrls | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 0, ws_port: int | None = None) -> SimUrls:
        """Start the REST and websocket listeners and the market clock. ``port`` 0
        picks free ports; ``ws_port`` defaults to ``port + 1`` (or free when 0)."""
        if ws_port is None:
            ws_port = port + 1 if port else 0
        sock = bind_socket(host, port)
        rest_port = sock.getsockname()[1]
        config = uvicorn.Config(build_app(self), log_level="warning", lifespan="off", access_log=False)
        self._rest_server = EmbeddedServer(config)
        self._rest_task = await start_serving(self._rest_server, sock, name="sim-rest")
        real_ws_port = await self.ws_server.start(host, ws_port)
        self.start_clock()
        shown = url_host(host)
        self.urls = SimUrls(
            rest_base_url=f"http://{shown}:{rest_port}",
            ws_public_url=f"ws://{shown}:{real_ws_port}/public",
            ws_market_url=f"ws://{shown}:{real_ws_port}/market",
            ws_base_url=f"ws://{shown}:{real_ws_port}",
        )
        log.info("simulated exchange up: %s", self.urls)
        return self.urls

    async def stop(self) -> None:
        """Close every connection with a close frame and stop both servers."""
        await self.stop_clock()
        await self.ws_server.stop()
        if self._rest_server is not None and self._rest_task is not None:
            await stop_serving(self._rest_server, self._rest_task)
            self._rest_server = None
            self._rest_task = None
