"""One public trade as the features and the rolling state see it."""

from __future__ import annotations

from dataclasses import dataclass

BUY = "buy"
SELL = "sell"


@dataclass(frozen=True, slots=True)
class Trade:
    ts_ns: int  # local receive time of the trade, integer ns
    price: float
    qty: float
    side: str  # aggressor: "buy" (lifted an ask) or "sell" (hit a bid)
    # aggTrade ``nq``: the quantity without fills against RPI orders (sent by Binance
    # since late 2025; None when absent). Every feature uses ``qty``, all that traded.
    nq: float | None = None

    def __post_init__(self) -> None:
        if self.side not in (BUY, SELL):
            raise ValueError(f"trade side must be 'buy' or 'sell', got {self.side!r}")

    def to_dict(self) -> dict[str, float | str]:
        """Frame form: ``{ts (seconds since the epoch), price, qty, side}``, plus
        ``nq`` when the exchange sent it."""
        out: dict[str, float | str] = {"ts": self.ts_ns / 1e9, "price": self.price, "qty": self.qty,
                                       "side": self.side}
        if self.nq is not None:
            out["nq"] = self.nq
        return out
