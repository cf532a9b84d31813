"""Order flow imbalance over a rolling window (../shared/docs/metrics.md, "Order flow
imbalance").

Cont, Kukanov & Stoikov (2014, "The Price Impact of Order Book Events", Journal of
Financial Econometrics 12(1)): for consecutive best-quote states n-1 -> n,

    e_n =  [Pb_n >= Pb_(n-1)] * Qb_n  -  [Pb_n <= Pb_(n-1)] * Qb_(n-1)
         - [Pa_n <= Pa_(n-1)] * Qa_n  +  [Pa_n >= Pa_(n-1)] * Qa_(n-1)

and Xu, Gould & Howison (2019, "Multi-level order-flow imbalance in a limit order
book", Market Microstructure and Liquidity 4) apply the same formula to the m-th best
level, m = 1..N.

Book source: the states are the local book right after each *applied depth event*
(``@depth@100ms`` merges the engine's events, so these are samples of the true
event stream; the bookTicker stream would give every best-quote change). A level
missing from a side (book shallower than m) is read as price -inf on the bid side /
+inf on the ask side with quantity 0, so a level appearing adds its quantity and a
level disappearing removes it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

Level = tuple[float, float]  # (price or integer tick key, qty), best first

_MISSING_BID = (float("-inf"), 0.0)
_MISSING_ASK = (float("inf"), 0.0)


def level_ofi(prev_bid: Level, bid: Level, prev_ask: Level, ask: Level) -> float:
    """e_n of Cont, Kukanov & Stoikov (2014) for one level, from (price, qty) pairs."""
    pb0, qb0 = prev_bid
    pb1, qb1 = bid
    pa0, qa0 = prev_ask
    pa1, qa1 = ask
    e = 0.0
    if pb1 >= pb0:
        e += qb1
    if pb1 <= pb0:
        e -= qb0
    if pa1 <= pa0:
        e -= qa1
    if pa1 >= pa0:
        e += qa0
    return e


def multi_level_ofi(
    prev_bids: Sequence[Level],
    prev_asks: Sequence[Level],
    bids: Sequence[Level],
    asks: Sequence[Level],
    levels: int,
) -> list[float]:
    """e_n at each of the levels 1..``levels`` (Xu, Gould & Howison 2019)."""
    out = []
    for m in range(levels):
        out.append(
            level_ofi(
                prev_bids[m] if m < len(prev_bids) else _MISSING_BID,
                bids[m] if m < len(bids) else _MISSING_BID,
                prev_asks[m] if m < len(prev_asks) else _MISSING_ASK,
                asks[m] if m < len(asks) else _MISSING_ASK,
            )
        )
    return out


class OfiTracker:
    """Rolling OFI, multi-level OFI and depth delta of one symbol.

    Feed :meth:`on_book` with the top ``levels`` of each side after every applied
    depth event; read the sums with a query time. An event belongs to the window
    when ``ts_ns > now_ns - window``. The hot path only appends the state to a
    deque (and drops states that left the window); the e_n are computed when the
    sums are read, once per frame, from the same consecutive states, so the values
    are those of a per-event computation without its per-event cost and without
    the drift of a running float sum.
    """

    __slots__ = ("levels", "window_ns", "_states")

    def __init__(self, levels: int = 10, window_s: float = 1.0) -> None:
        if levels < 1:
            raise ValueError(f"OFI needs at least one level, got {levels}")
        if not window_s > 0:
            raise ValueError(f"OFI window must be positive, got {window_s!r}")
        self.levels = levels
        self.window_ns = round(window_s * 1e9)
        # (ts, top bids, top asks) of each state, oldest first. The first entry is the
        # base: the last state at or before the window start (the predecessor of the
        # first event in the window, and the reference of depth_delta).
        self._states: deque[tuple[int, Sequence[Level], Sequence[Level]]] = deque()

    def reset(self) -> None:
        """Forget every state (after a resync the next state has no predecessor)."""
        self._states.clear()

    @property
    def has_state(self) -> bool:
        return bool(self._states)

    def on_book(self, ts_ns: int, bids: Sequence[Level], asks: Sequence[Level]) -> None:
        """Record the book state after one applied depth event (top levels, best first)."""
        states = self._states
        states.append((ts_ns, bids, asks))
        start = ts_ns - self.window_ns
        while len(states) >= 2 and states[1][0] <= start:
            states.popleft()

    def _evict(self, now_ns: int) -> None:
        start = now_ns - self.window_ns
        states = self._states
        while len(states) >= 2 and states[1][0] <= start:
            states.popleft()

    def _sums(self, now_ns: int) -> list[float]:
        self._evict(now_ns)
        start = now_ns - self.window_ns
        n = self.levels
        sums = [0.0] * n
        states = self._states
        for i in range(1, len(states)):
            ts, bids, asks = states[i]
            if ts <= start:
                continue
            _, prev_bids, prev_asks = states[i - 1]
            e = multi_level_ofi(prev_bids, prev_asks, bids, asks, n)
            for m in range(n):
                sums[m] += e[m]
        return sums

    def ofi(self, now_ns: int) -> float | None:
        """Sum of level-1 e_n over the window ending at ``now_ns``, base asset; None
        before the first state."""
        if not self.has_state:
            return None
        return self._sums(now_ns)[0]

    def ofi_levels(self, now_ns: int) -> list[float] | None:
        """Multi-level OFI: the windowed sum of e_n at each level 1..N."""
        if not self.has_state:
            return None
        return self._sums(now_ns)

    def depth_delta(self, now_ns: int) -> float | None:
        """Change over the window of (total_bid_volume - total_ask_volume) of the top
        N: the latest state minus the last state at or before ``now_ns - window``.
        None until a state that old exists (the change over a shorter history
        would not be a 1 s change)."""
        if not self.has_state:
            return None
        self._evict(now_ns)
        states = self._states
        base_ts, base_bids, base_asks = states[0]
        if base_ts > now_ns - self.window_ns:
            return None
        _, bids, asks = states[-1]
        n = self.levels
        latest = sum(q for _, q in bids[:n]) - sum(q for _, q in asks[:n])
        base = sum(q for _, q in base_bids[:n]) - sum(q for _, q in base_asks[:n])
        return latest - base
