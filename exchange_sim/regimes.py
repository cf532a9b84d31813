"""Calm and volatile periods, shared by every symbol of a market.

Real crypto markets alternate quiet stretches (the standard deviation of one-second
mid changes near 0.1 bps) with busy ones (about 1.3 bps on the Binance recordings of
../shared/data/binance-usdm), and they do it together across symbols. A
:class:`Regime` holds that state as a level between 0 (calm) and 1 (volatile) over
simulated time; each market turns the level into its own volatility and activity
(:meth:`exchange_sim.profiles.MarketParams.multipliers`).

The level only depends on the random generator and on simulated time, never on how
often it is read, so every symbol reading one Regime sees the same periods and the
same seed gives the same periods.
"""

from __future__ import annotations

import random

MODES = ("auto", "calm", "volatile")
CALM = 0.0
VOLATILE = 1.0


class Regime:
    """The market's calm/volatile level at any simulated time (non-decreasing reads).

    ``auto`` starts volatile (a first impression of a busy market: ``first_s`` seconds
    from ``start_ms``, and before it), then alternates a calm period of ``calm_s``
    seconds (uniform in the range) and a volatile one of ``volatile_s``, each change
    ramped over ``ramp_s`` seconds; ``calm`` and ``volatile`` stay put."""

    def __init__(
        self,
        mode: str,
        rng: random.Random,
        start_ms: int,
        calm_s: tuple[float, float] = (120.0, 300.0),
        volatile_s: tuple[float, float] = (60.0, 180.0),
        ramp_s: float = 10.0,
        first_s: tuple[float, float] = (120.0, 180.0),
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"regime must be one of {', '.join(MODES)}, got {mode!r}")
        self.mode = mode
        self._rng = rng
        self._calm_s = calm_s
        self._volatile_s = volatile_s
        self._ramp_ms = int(ramp_s * 1000)
        self.volatile = mode != "calm"
        self._from = VOLATILE if self.volatile else CALM
        self._changed_ms = -(2**62)  # no ramp at the start
        self._until_ms = start_ms + int(rng.uniform(*first_s) * 1000) if mode == "auto" else 2**62
        self._level = self._from

    def _duration_ms(self) -> int:
        lo, hi = self._volatile_s if self.volatile else self._calm_s
        return int(self._rng.uniform(lo, hi) * 1000)

    def level(self, now_ms: int) -> float:
        """0 (calm) .. 1 (volatile) at simulated ``now_ms``."""
        while now_ms >= self._until_ms:
            self._from = self._level_at(self._until_ms)
            self._changed_ms = self._until_ms
            self.volatile = not self.volatile
            self._until_ms += self._duration_ms()
        self._level = self._level_at(now_ms)
        return self._level

    def _level_at(self, now_ms: int) -> float:
        target = VOLATILE if self.volatile else CALM
        elapsed = now_ms - self._changed_ms
        if elapsed >= self._ramp_ms:
            return target
        return self._from + (target - self._from) * max(0.0, elapsed) / self._ramp_ms

    @property
    def name(self) -> str:
        """What the market is doing now: ``calm``, ``volatile`` or ``changing``."""
        if self._level >= VOLATILE:
            return "volatile"
        if self._level <= CALM:
            return "calm"
        return "changing"
