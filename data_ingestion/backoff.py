"""Exponential reconnect backoff with jitter and a cap."""

from __future__ import annotations

import random


class Backoff:
    """1 s doubling to a 30 s cap by default, +/- ``jitter`` share of random spread
    so that many clients do not reconnect in step; ``reset`` after a connection
    has delivered data."""

    def __init__(
        self,
        initial: float = 1.0,
        cap: float = 30.0,
        factor: float = 2.0,
        jitter: float = 0.2,
        rng: random.Random | None = None,
    ) -> None:
        if initial <= 0 or cap < initial or factor < 1 or not 0 <= jitter < 1:
            raise ValueError("backoff: need 0 < initial <= cap, factor >= 1, 0 <= jitter < 1")
        self.initial, self.cap, self.factor, self.jitter = initial, cap, factor, jitter
        self._rng = rng or random.Random()
        self._base = initial
        self.attempts = 0

    def next_delay(self) -> float:
        """The delay before the next attempt; grows until the cap."""
        base = self._base
        self._base = min(self.cap, self._base * self.factor)
        self.attempts += 1
        spread = base * self.jitter
        return min(self.cap, max(0.0, base + self._rng.uniform(-spread, spread)))

    def reset(self) -> None:
        self._base = self.initial
        self.attempts = 0
