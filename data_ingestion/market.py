"""The whole market for the screener: every USDT-M perpetual in TRADING status, on
Binance's light streams only (no snapshot, no sync): one ``<symbol>@depth20@500ms``
partial book per symbol plus ``!bookTicker`` on the public route, and
``!markPrice@arr@1s``, ``!forceOrder@arr``, ``!miniTicker@arr`` on the market route.

The streams are sharded over connections of at most ``max_streams_per_connection``
streams (Binance: 1,024; the URL carries what fits, the rest goes in SUBSCRIBE
requests paced under Binance's 10 messages a second). The connections are
:class:`StreamConnection`'s: the same reconnect backoff, liveness probe and silence
watch. Symbols come from exchangeInfo, read again every ``screener_refresh_s``: a
symbol that leaves TRADING is unsubscribed and dropped (one log line), a new one is
subscribed. Every message is recorded under the pseudo-symbol ``_market``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection

from config import Settings
from data_ingestion.connection import STREAMS_PER_SUBSCRIBE, SUBSCRIBE_PACE_S, StreamConnection, url_and_overflow
from data_ingestion.feed import RawSink
from data_ingestion.rest import RestClient, RestError
from data_ingestion.tasks import TaskRegistry
from features.rounding import Decimals
from screener.market import ALL_MARKET_STREAMS, ENVELOPE, MarketState
from screener.replay import symbols_line

log = logging.getLogger("market")

MARKET_RECORDING = "_market"  # the recorder's pseudo-symbol of the screener's streams


def tradable_perpetuals(info: dict[str, Any]) -> dict[str, Decimals]:
    """symbol (lower case) -> its price and quantity decimals, for every USDT-quoted
    perpetual in TRADING status of an exchangeInfo body; entries that do not read
    are left out."""
    from data_ingestion.rest import symbol_filters

    filters = symbol_filters(info)
    out: dict[str, Decimals] = {}
    for sym in info.get("symbols", []):
        try:
            if (sym.get("contractType") != "PERPETUAL" or sym.get("quoteAsset") != "USDT"
                    or sym.get("status") != "TRADING"):
                continue
            f = filters[str(sym["symbol"]).lower()]
        except (KeyError, TypeError, AttributeError):
            continue
        out[str(sym["symbol"]).lower()] = Decimals(f.price_decimals, f.qty_decimals)
    return out


class MarketConnection(StreamConnection):
    """One combined-stream connection of the screener: its messages go to the
    :class:`MarketState` (decoded there, stream by stream), not to symbol feeds;
    streams can be added and removed while it runs."""

    def __init__(self, name: str, base_url: str, streams: list[str], settings: Settings, state: MarketState,
                 recorder: RawSink | None = None) -> None:
        super().__init__(name, base_url, {}, settings, recorder)
        self.base_url = base_url
        self.state = state
        self.streams: list[str] = list(streams)
        self.received = 0
        self._send_lock = asyncio.Lock()

    @property
    def room(self) -> int:
        return self.settings.max_streams_per_connection - len(self.streams)

    async def _session(self) -> tuple[bool, str]:
        # Each (re)connection asks for the streams wanted now.
        self.url, self.overflow = url_and_overflow(self.base_url, self.streams, self.settings.ws_url_max_chars)
        return await super()._session()

    async def _watch_streams(self) -> None:
        """No per-stream silence warnings: an idle symbol's partial book is quiet, and
        the liveness probe covers the connection."""
        await asyncio.Event().wait()

    def _dispatch(self, raw: str | bytes) -> None:
        recv_ns = time.time_ns()
        self.last_heard_mono_ns = time.monotonic_ns()
        if isinstance(raw, str) and raw.startswith('{"result"') or isinstance(raw, bytes) and raw.startswith(
                b'{"result"'):
            self._on_undecodable(raw)
            return
        self.received += 1
        if self.recorder is not None:
            self.recorder.write(MARKET_RECORDING, recv_ns, raw)
        before = self.state.malformed[ENVELOPE]
        self.state.on_raw(raw, recv_ns)
        if self.state.malformed[ENVELOPE] != before:  # maybe a reply to one of our requests
            try:
                obj = orjson.loads(raw)
            except orjson.JSONDecodeError:
                obj = None
            if isinstance(obj, dict) and self._on_reply(obj):
                self.state.malformed[ENVELOPE] -= 1

    async def change(self, subscribe: list[str], unsubscribe: list[str]) -> None:
        """Add and remove streams: now on the open socket (paced), and on every reconnection."""
        self.streams = [s for s in self.streams if s not in set(unsubscribe)] + [
            s for s in subscribe if s not in self.streams]
        ws = self._ws
        if ws is None:
            return
        async with self._send_lock:
            for method, names in (("UNSUBSCRIBE", unsubscribe), ("SUBSCRIBE", subscribe)):
                for i in range(0, len(names), STREAMS_PER_SUBSCRIBE):
                    await self._request(ws, method, names[i : i + STREAMS_PER_SUBSCRIBE])

    async def _request(self, ws: ClientConnection, method: str, params: list[str]) -> None:
        req_id = self._next_id
        self._next_id += 1
        self._pending_acks.add(req_id)
        try:
            await ws.send(orjson.dumps({"method": method, "params": params, "id": req_id}).decode())
        except Exception as exc:  # the socket went away: the next session asks for self.streams
            log.info("%s: %s not sent (%s); the reconnection will ask for the streams", self.name, method, exc)
        await asyncio.sleep(SUBSCRIBE_PACE_S)


class MarketWatch:
    """The screener's ingestion: the symbol list, the connections, the recording."""

    def __init__(self, settings: Settings, tasks: TaskRegistry, rest: RestClient, state: MarketState,
                 recorder: RawSink | None = None) -> None:
        self.settings = settings
        self.tasks = tasks
        self.rest = rest
        self.state = state
        self.recorder = recorder
        self.public: list[MarketConnection] = []
        self.market: MarketConnection | None = None
        self.refreshes = 0
        self.refresh_errors = 0
        self.dropped: list[str] = []  # symbols dropped on leaving TRADING, in order
        # told of each symbol dropped (the focus set releases its full-depth book if promoted)
        self.on_gone: Callable[[str], Awaitable[None]] | None = None

    @property
    def connections(self) -> list[MarketConnection]:
        return [*self.public, *([self.market] if self.market is not None else [])]

    async def start(self) -> None:
        """Read the symbol list, open the connections."""
        s = self.settings
        symbols = await self._symbols()
        for sym, dec in symbols.items():
            self.state.watch(sym, dec)
        self._record_symbols()
        public_streams = [*ALL_MARKET_STREAMS["public"], *(self.state.depth_stream(x) for x in sorted(symbols))]
        per_conn = s.max_streams_per_connection
        for i in range(0, len(public_streams), per_conn):
            self._add_public(public_streams[i : i + per_conn])
        self.market = MarketConnection("market-wide#0", s.ws_market_url, list(ALL_MARKET_STREAMS["market"]), s,
                                       self.state, self.recorder)
        self.tasks.supervise(self.market.run, name=f"ws:{self.market.name}")
        self.tasks.supervise(self._refresh_loop, name="screener-symbols")
        log.info("screener: %d symbols on %d public connection(s) and 1 market connection", len(symbols),
                 len(self.public))

    def _add_public(self, streams: list[str]) -> MarketConnection:
        conn = MarketConnection(f"screener#{len(self.public)}", self.settings.ws_public_url, streams,
                                self.settings, self.state, self.recorder)
        self.public.append(conn)
        self.tasks.supervise(conn.run, name=f"ws:{conn.name}")
        return conn

    async def _symbols(self) -> dict[str, Decimals]:
        info = await self.rest.exchange_info()
        return tradable_perpetuals(info)

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.screener_refresh_s)
            try:
                await self.refresh()
            except RestError as exc:
                self.refresh_errors += 1
                log.warning("screener: exchangeInfo refresh failed (%s); keeping the %d symbols watched", exc,
                            len(self.state.symbols))

    async def refresh(self) -> None:
        """Follow exchangeInfo: drop the symbols no longer in TRADING, add new ones."""
        symbols = await self._symbols()
        self.refreshes += 1
        gone = sorted(set(self.state.symbols) - set(symbols))
        new = sorted(set(symbols) - set(self.state.symbols))
        for sym in gone:
            log.warning("%s: no longer a TRADING USDT perpetual on exchangeInfo; dropped from the screener", sym)
            self.state.drop(sym)
            self.dropped.append(sym)
            stream = self.state.depth_stream(sym)
            for conn in self.public:
                if stream in conn.streams:
                    await conn.change([], [stream])
            if self.on_gone is not None:
                await self.on_gone(sym)
        for sym in new:
            self.state.watch(sym, symbols[sym])
            stream = self.state.depth_stream(sym)
            room = next((c for c in self.public if c.room > 0), None)
            if room is None:
                self._add_public([stream])
            else:
                await room.change([stream], [])
        if new:
            log.info("screener: %d new symbol(s): %s", len(new), ", ".join(new))
        if new or gone:
            self._record_symbols()

    def _record_symbols(self) -> None:
        """The watched symbols, as a line of the recording: a replay watches the same."""
        if self.recorder is not None:
            listed = {sym: latest.decimals for sym, latest in self.state.symbols.items()}
            self.recorder.write(MARKET_RECORDING, time.time_ns(), symbols_line(listed))

    def status(self) -> dict[str, Any]:
        """For /health: the connections, the messages and the malformed ones by kind."""
        return {
            "symbols": len(self.state.symbols),
            "connections": [{"name": c.name, "streams": len(c.streams), "connected": c.connected,
                             "connects": c.connects, "messages": c.received} for c in self.connections],
            "messages": dict(self.state.messages),
            "malformed": dict(self.state.malformed),
            "unwatched": self.state.unwatched,
            "refreshes": self.refreshes,
            "refresh_errors": self.refresh_errors,
            "dropped": list(self.dropped),
        }

    async def stop(self) -> None:
        await asyncio.gather(*(c.close() for c in self.connections), return_exceptions=True)
