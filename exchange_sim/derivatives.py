"""What a perpetual contract publishes beside its book: mark and index price, funding,
24-hour statistics and liquidations. A plausible simple model, enough for the
``markPrice``, ``miniTicker`` and ``forceOrder`` streams to look like Binance's:

- the premium of the contract over its index is a mean-reverting value near +0.5
  bps (a few bps either way); the index is the mid without it, the mark price the
  index plus the premium smoothed over half a minute;
- the funding rate is Binance's formula on that premium: the premium plus the
  interest rate (0.01 % per 8 hours), the difference clamped to +/-0.05 %, the whole
  clamped to +/-0.75 %; funding is due at 00:00, 08:00 and 16:00 UTC;
- the 24-hour statistics start from figures drawn once (the day's open, high, low
  and volume before the run) and follow the trades of the run;
- a liquidation is a forced IOC order the market executes against its book
  (market.py); the stream carries the latest of each symbol once a second;
- open interest moves with the trades: each trade opens positions (the interest
  grows by its quantity) or closes them (it shrinks by it), opening a little more
  likely while the interest is below its level of the day before the run and less
  above it; a liquidation only closes (its filled quantity).
"""

from __future__ import annotations

import math
import random
from collections import deque
from typing import Any

from exchange_sim.market import Liquidation, StepOutput, SymbolMarket

FUNDING_EVERY_MS = 8 * 3600 * 1000
INTEREST = 0.0001  # per funding period
_PREMIUM_MEAN_BPS = 0.5
_PREMIUM_STD_BPS = 2.0
_PREMIUM_TAU_S = 120.0
_MARK_SMOOTH_S = 30.0
# A contract as busy as BTCUSDT trades about this much a day (quote currency).
_DAY_NOTIONAL = 1.5e10
# Open interest against a day's volume (BTCUSDT: about 80,000 BTC open for 150,000 traded).
_OI_OVER_DAY_VOLUME = 0.55
# How strongly the open interest is pulled back to its level: the chance that a trade
# opens is 0.5 + this x (level - interest) / level.
_OI_PULL = 5.0


def _fixed(value: float, decimals: int = 8) -> str:
    return f"{value:.{decimals}f}"


class ContractStats:
    """Mark price, funding, 24 h statistics and the last liquidation of one symbol."""

    def __init__(self, market: SymbolMarket, activity: float, rng: random.Random, start_ms: int) -> None:
        self.market = market
        self.rng = rng
        price = market.mid_ticks() * market.spec.tick_size
        self.premium_bps = _PREMIUM_MEAN_BPS
        self.mark_premium_bps = _PREMIUM_MEAN_BPS
        self.premium_sum = 0.0  # premium x seconds since the last funding time
        self.premium_seconds = 0
        self._funding_period = start_ms // FUNDING_EVERY_MS
        self.last_rate = INTEREST
        # The day before the run: open, high and low around today's price, volume by activity.
        swing = 0.03 * (market.params.walk_bps / 1.05)
        self.open = price * math.exp(rng.gauss(0.0, swing))
        self.high = max(self.open, price) * (1.0 + rng.uniform(0.002, 2 * swing))
        self.low = min(self.open, price) * (1.0 - rng.uniform(0.002, 2 * swing))
        self.quote_volume = _DAY_NOTIONAL * activity * rng.uniform(0.6, 1.4)
        self.base_volume = self.quote_volume / price
        self.last_price = price
        self.traded = False  # since the last mini ticker
        self.liquidation: Liquidation | None = None  # the latest, not yet published
        self.published_liquidations: deque[int] = deque(maxlen=1024)  # order times (T) of those sent
        self._last_second = start_ms // 1000
        # Open interest, in lots; its own generator (drawn from the state, not from it),
        # so the premium and the 24 h figures stay what they were for a seed.
        self.oi_rng = random.Random(f"{market.symbol}:open-interest:{rng.getstate()[1][0]}")
        lot = market.spec.lot_size
        self.oi_level_lots = max(1.0, _OI_OVER_DAY_VOLUME * self.base_volume / lot)
        self.open_interest_lots = self.oi_level_lots * self.oi_rng.uniform(0.95, 1.05)
        self.open_interest_time_ms = start_ms

    # ------------------------------------------------------------ updates
    def on_step(self, out: StepOutput) -> None:
        """Trades and liquidations of one engine batch."""
        if out.trades:
            tick, lot = self.market.spec.tick_size, self.market.spec.lot_size
            for trade in out.trades:
                price = trade.tick * tick
                qty = trade.lots * lot
                self.base_volume += qty
                self.quote_volume += qty * price
                if price > self.high:
                    self.high = price
                if price < self.low:
                    self.low = price
            self.last_price = out.trades[-1].tick * tick
            self.traded = True
            self._move_open_interest(out)
        if out.liquidations:
            self.liquidation = out.liquidations[-1]
            for liq in out.liquidations:
                self.open_interest_lots = max(0.0, self.open_interest_lots - liq.filled_lots)
            self.open_interest_time_ms = out.time_ms

    def _move_open_interest(self, out: StepOutput) -> None:
        """Each trade opens or closes its quantity of positions."""
        rnd = self.oi_rng.random
        level = self.oi_level_lots
        oi = self.open_interest_lots
        for trade in out.trades:
            p_open = min(0.9, max(0.1, 0.5 + _OI_PULL * (level - oi) / level))
            oi = oi + trade.lots if rnd() < p_open else max(0.0, oi - trade.lots)
        self.open_interest_lots = oi
        self.open_interest_time_ms = out.time_ms

    def advance(self, now_ms: int) -> None:
        """Move the premium on by the simulated seconds since the last call."""
        second = now_ms // 1000
        rng = self.rng
        decay = math.exp(-1.0 / _PREMIUM_TAU_S)
        kick = _PREMIUM_STD_BPS * math.sqrt(1.0 - decay * decay)
        smooth = math.exp(-1.0 / _MARK_SMOOTH_S)
        while self._last_second < second:
            self._last_second += 1
            self.premium_bps = _PREMIUM_MEAN_BPS + (self.premium_bps - _PREMIUM_MEAN_BPS) * decay + rng.gauss(0.0, kick)
            self.mark_premium_bps = self.mark_premium_bps * smooth + self.premium_bps * (1.0 - smooth)
            period = self._last_second * 1000 // FUNDING_EVERY_MS
            if period != self._funding_period:
                self._funding_period = period
                self.premium_sum = 0.0
                self.premium_seconds = 0
            self.premium_sum += self.premium_bps
            self.premium_seconds += 1

    # ------------------------------------------------------------ figures
    def index_price(self) -> float:
        mid = self.market.mid_ticks() * self.market.spec.tick_size
        return mid / (1.0 + self.premium_bps / 1e4)

    def mark_price(self) -> float:
        return self.index_price() * (1.0 + self.mark_premium_bps / 1e4)

    def funding_rate(self) -> float:
        """Binance's formula: average premium + clamp(interest - premium, +/-0.05 %),
        clamped to +/-0.75 %."""
        premium = (self.premium_sum / self.premium_seconds if self.premium_seconds else self.premium_bps) / 1e4
        rate = premium + min(0.0005, max(-0.0005, INTEREST - premium))
        return min(0.0075, max(-0.0075, rate))

    # ------------------------------------------------------------ events
    def mark_price_event(self, now_ms: int) -> dict[str, Any]:
        """markPriceUpdate: e, E, s, p (mark), i (index), P (estimated settle price), r, T."""
        index = self.index_price()
        return {
            "e": "markPriceUpdate",
            "E": now_ms,
            "s": self.market.symbol.upper(),
            "p": _fixed(self.mark_price()),
            "i": _fixed(index),
            "P": _fixed(index),
            "r": _fixed(self.funding_rate()),
            "T": (now_ms // FUNDING_EVERY_MS + 1) * FUNDING_EVERY_MS,
        }

    def mini_ticker_event(self, now_ms: int) -> dict[str, Any]:
        """24hrMiniTicker: e, E, s, c (last), o (open), h, l, v (base volume), q (quote volume)."""
        m = self.market
        price = m.spec.price_decimals
        return {
            "e": "24hrMiniTicker",
            "E": now_ms,
            "s": m.symbol.upper(),
            "c": _fixed(self.last_price, price),
            "o": _fixed(self.open, price),
            "h": _fixed(self.high, price),
            "l": _fixed(self.low, price),
            "v": _fixed(self.base_volume, m.spec.qty_decimals),
            "q": _fixed(self.quote_volume, 2),
        }

    def open_interest_body(self) -> dict[str, Any]:
        """GET /fapi/v1/openInterest: openInterest (base asset), symbol, time (ms of the
        last change)."""
        m = self.market
        return {
            "openInterest": m.qty_str(round(self.open_interest_lots)),
            "symbol": m.symbol.upper(),
            "time": self.open_interest_time_ms,
        }

    def force_order_event(self, now_ms: int) -> dict[str, Any] | None:
        """forceOrder of the latest liquidation not yet published (then forgotten):
        e, E, o{s, S, o, f, q, p, ap, X, l, z, T}."""
        liq = self.liquidation
        if liq is None:
            return None
        self.liquidation = None
        self.published_liquidations.append(liq.time_ms)
        m = self.market
        return {
            "e": "forceOrder",
            "E": now_ms,
            "o": {
                "s": m.symbol.upper(),
                "S": "BUY" if liq.is_buy else "SELL",
                "o": "LIMIT",
                "f": "IOC",
                "q": m.qty_str(liq.lots),
                "p": m.price_str(liq.limit_tick),
                "ap": _fixed(liq.avg_tick * m.spec.tick_size, m.spec.price_decimals + 2),
                "X": "FILLED" if liq.filled_lots == liq.lots else "EXPIRED",
                "l": m.qty_str(liq.last_fill_lots),
                "z": m.qty_str(liq.filled_lots),
                "T": liq.time_ms,
            },
        }
