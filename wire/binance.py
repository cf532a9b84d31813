"""Binance USDT-M market data as typed structs, decoded once where bytes enter,
and the protocol facts the client and the simulated exchange share.

Field names say what a value is; Binance's one-letter keys are the encoded names
(``first_update_id`` is ``U``). Decoding validates types: a message whose ids are
not integers, whose levels are not ``[price, qty]`` strings or that lacks a required
field raises :class:`msgspec.ValidationError`, and the caller counts it as
malformed and skips it. Fields Binance adds later are ignored. Prices and
quantities stay strings, as sent: the book turns a price string into one integer
tick key, and floats are only made for display and metrics.
"""

from __future__ import annotations

from typing import Literal, Union

import msgspec
from msgspec import Struct, field

Level = tuple[str, str]  # [price, quantity], both decimal strings

# Protocol facts both sides rely on: the client (data_ingestion/) and the simulated
# exchange (exchange_sim/) read them from here, so the two cannot drift apart.
# Request weight of GET /fapi/v1/depth by ``limit``; no other limit is accepted.
DEPTH_WEIGHT: dict[int, int] = {5: 2, 10: 2, 20: 2, 50: 2, 100: 5, 500: 10, 1000: 20}
# Response header carrying the IP's request weight used in the current minute.
WEIGHT_HEADER = "X-MBX-USED-WEIGHT-1M"


class DepthUpdate(Struct, tag_field="e", tag="depthUpdate", frozen=True, gc=False):
    """``<symbol>@depth@100ms`` (diff depth)::

    {"e":"depthUpdate","E":1723161256299,"T":1723161256298,"s":"BTCUSDT",
     "U":5123107832006,"u":5123107837557,"pu":5123107831937,
     "b":[["61800.20","2.909"],...],"a":[["61800.30","0.000"],...]}
    """

    first_update_id: int = field(name="U")
    final_update_id: int = field(name="u")
    prev_final_update_id: int = field(name="pu")  # ``u`` of the previous event: the continuity check
    bids: list[Level] = field(name="b")
    asks: list[Level] = field(name="a")
    event_time_ms: int = field(name="E", default=0)
    transaction_time_ms: int = field(name="T", default=0)
    symbol: str = field(name="s", default="")  # upper case, as Binance sends it


class BookTicker(Struct, tag_field="e", tag="bookTicker", frozen=True, gc=False):
    """``<symbol>@bookTicker`` (real time)::

    {"e":"bookTicker","u":5123107839020,"s":"BTCUSDT","b":"61800.20","B":"2.507",
     "a":"61800.30","A":"2.510","T":1723161256313,"E":1723161256313}
    """

    update_id: int = field(name="u")  # equals a depth event's u when that event set this top
    bid_price: str = field(name="b")
    bid_qty: str = field(name="B")
    ask_price: str = field(name="a")
    ask_qty: str = field(name="A")
    event_time_ms: int = field(name="E", default=0)
    transaction_time_ms: int = field(name="T", default=0)
    symbol: str = field(name="s", default="")


class AggTrade(Struct, tag_field="e", tag="aggTrade", frozen=True, gc=False):
    """``<symbol>@aggTrade``::

    {"e":"aggTrade","E":..,"s":"BTCUSDT","a":<agg id>,"p":"61800.30","q":"0.006",
     "nq":"0.006","f":<first trade id>,"l":<last trade id>,"T":<trade time>,"m":false}
    """

    price: str = field(name="p")
    qty: str = field(name="q")
    buyer_is_maker: bool = field(name="m")  # true: the SELLER was the aggressor
    trade_time_ms: int = field(name="T", default=0)
    # Quantity without fills against RPI orders (sent since late 2025).
    qty_without_rpi: str | None = field(name="nq", default=None)
    agg_id: int = field(name="a", default=0)
    first_trade_id: int = field(name="f", default=0)
    last_trade_id: int = field(name="l", default=0)
    event_time_ms: int = field(name="E", default=0)
    symbol: str = field(name="s", default="")


class Trade(Struct, tag_field="e", tag="trade", frozen=True, gc=False):
    """``<symbol>@trade`` (one per trade; in the shared recordings)::

    {"e":"trade","E":..,"T":..,"s":"BTCUSDT","t":5266583935,"p":"61800.30","q":"0.006",
     "X":"MARKET","m":false}
    """

    price: str = field(name="p")
    qty: str = field(name="q")
    buyer_is_maker: bool = field(name="m")
    trade_time_ms: int = field(name="T", default=0)
    trade_id: int = field(name="t", default=0)
    order_type: str = field(name="X", default="")  # MARKET, LIQUIDATION, ...
    event_time_ms: int = field(name="E", default=0)
    symbol: str = field(name="s", default="")
    qty_without_rpi: str | None = field(name="nq", default=None)


class DepthSnapshot(Struct, frozen=True, gc=False):
    """``GET /fapi/v1/depth`` body::

    {"lastUpdateId":1027024,"E":..,"T":..,"bids":[["4.00000000","431.00000000"]],"asks":[...]}
    """

    last_update_id: int = field(name="lastUpdateId")
    bids: list[Level]
    asks: list[Level]
    event_time_ms: int = field(name="E", default=0)
    transaction_time_ms: int = field(name="T", default=0)


class ForceOrderDetail(Struct, frozen=True, gc=False):
    """The ``o`` object of a forceOrder: the liquidation order."""

    symbol: str = field(name="s")
    side: Literal["BUY", "SELL"] = field(name="S")  # SELL closes a long: it sells into the bids
    qty: str = field(name="q")  # original quantity
    price: str = field(name="p")  # the order's price (its bankruptcy price)
    avg_price: str = field(name="ap")  # average price of its fills
    status: str = field(name="X")  # FILLED, EXPIRED, ...
    last_filled_qty: str = field(name="l")
    filled_qty: str = field(name="z")  # accumulated filled quantity
    trade_time_ms: int = field(name="T")
    order_type: str = field(name="o", default="")  # LIMIT
    time_in_force: str = field(name="f", default="")  # IOC


class ForceOrder(Struct, tag_field="e", tag="forceOrder", frozen=True, gc=False):
    """``<symbol>@forceOrder`` (on /market): at most the latest liquidation of the
    symbol in each 1000 ms, so counts and sums built on it are lower bounds::

    {"e":"forceOrder","E":1568014460893,"o":{"s":"BTCUSDT","S":"SELL","o":"LIMIT","f":"IOC",
     "q":"0.014","p":"9910","ap":"9910","X":"FILLED","l":"0.014","z":"0.014","T":1568014460893}}

    Fields Binance adds (``ps``, ``st``, ...) are ignored.
    """

    order: ForceOrderDetail = field(name="o")
    event_time_ms: int = field(name="E", default=0)


class MarkPriceUpdate(Struct, tag_field="e", tag="markPriceUpdate", frozen=True, gc=False):
    """``<symbol>@markPrice@1s`` (on /market)::

    {"e":"markPriceUpdate","E":1562305380000,"s":"BTCUSDT","p":"11794.15000000","ap":"11794.15000000",
     "P":"11784.62659091","i":"11784.25641265","r":"0.00038167","T":1562306400000}

    ``r`` and ``T`` are empty / 0 for delivery contracts (no funding).
    """

    mark_price: str = field(name="p")
    index_price: str = field(name="i")
    estimated_settle_price: str = field(name="P")
    funding_rate: str = field(name="r")  # per funding interval (8 h on most perpetuals)
    next_funding_time_ms: int = field(name="T")
    event_time_ms: int = field(name="E", default=0)
    symbol: str = field(name="s", default="")


class OpenInterest(Struct, frozen=True, gc=False):
    """``GET /fapi/v1/openInterest?symbol=BTCUSDT`` body (weight 1)::

    {"openInterest":"10659.509","symbol":"BTCUSDT","time":1589437530011}
    """

    open_interest: str = field(name="openInterest")  # base asset
    symbol: str = ""
    time_ms: int = field(name="time", default=0)


class MiniTicker(Struct, tag_field="e", tag="24hrMiniTicker", frozen=True, gc=False):
    """``<symbol>@miniTicker`` and each element of ``!miniTicker@arr`` (on /market; the
    array carries only the symbols whose ticker changed, once a second)::

    {"e":"24hrMiniTicker","E":123456789,"s":"BTCUSDT","c":"0.0025","o":"0.0010",
     "h":"0.0025","l":"0.0010","v":"10000","q":"18"}
    """

    symbol: str = field(name="s")
    close_price: str = field(name="c")  # last price
    open_price: str = field(name="o")  # price 24 h ago
    high_price: str = field(name="h")
    low_price: str = field(name="l")
    base_volume: str = field(name="v")  # 24 h, base asset
    quote_volume: str = field(name="q")  # 24 h, quote asset (USDT)
    event_time_ms: int = field(name="E", default=0)


class RawStreamMessage(Struct, frozen=True, gc=False):
    """A combined-stream message whose ``data`` is decoded later, by the decoder of
    its stream (the market-wide streams carry arrays as well as single events)."""

    stream: str
    data: msgspec.Raw


StreamEvent = Union[DepthUpdate, BookTicker, AggTrade, Trade, ForceOrder, MarkPriceUpdate]  # noqa: UP007 - a runtime union for msgspec
TradeEvent = Union[AggTrade, Trade]  # noqa: UP007


class StreamMessage(Struct, frozen=True, gc=False):
    """A combined-stream message: ``{"stream":"btcusdt@depth@100ms","data":{...}}``."""

    stream: str
    data: StreamEvent


stream_message_decoder = msgspec.json.Decoder(StreamMessage)
event_decoder = msgspec.json.Decoder(StreamEvent)
snapshot_decoder = msgspec.json.Decoder(DepthSnapshot)
open_interest_decoder = msgspec.json.Decoder(OpenInterest)
# The screener's streams (screener/market.py): the envelope first, then per stream kind.
raw_stream_decoder = msgspec.json.Decoder(RawStreamMessage)
raw_array_decoder = msgspec.json.Decoder(list[msgspec.Raw])
depth_update_decoder = msgspec.json.Decoder(DepthUpdate)
book_ticker_decoder = msgspec.json.Decoder(BookTicker)
mark_price_decoder = msgspec.json.Decoder(MarkPriceUpdate)
mini_ticker_decoder = msgspec.json.Decoder(MiniTicker)
force_order_decoder = msgspec.json.Decoder(ForceOrder)

# Request weight of GET /fapi/v1/openInterest.
OPEN_INTEREST_WEIGHT = 1

DecodeError = (msgspec.ValidationError, msgspec.DecodeError)

__all__ = [
    "DEPTH_WEIGHT",
    "WEIGHT_HEADER",
    "AggTrade",
    "BookTicker",
    "DecodeError",
    "DepthSnapshot",
    "DepthUpdate",
    "ForceOrder",
    "ForceOrderDetail",
    "Level",
    "MarkPriceUpdate",
    "MiniTicker",
    "RawStreamMessage",
    "OPEN_INTEREST_WEIGHT",
    "OpenInterest",
    "StreamEvent",
    "StreamMessage",
    "Trade",
    "TradeEvent",
    "book_ticker_decoder",
    "depth_update_decoder",
    "event_decoder",
    "force_order_decoder",
    "mark_price_decoder",
    "mini_ticker_decoder",
    "raw_array_decoder",
    "raw_stream_decoder",
    "open_interest_decoder",
    "snapshot_decoder",
    "stream_message_decoder",
]
