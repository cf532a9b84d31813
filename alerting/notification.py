"""One alert as it is sent: what happened, where, by which rule, and the link that
opens the dashboard at that symbol and moment; and its body in each format."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from alerting.rules import Format


@dataclass(frozen=True, slots=True)
class Notification:
    symbol: str
    kind: str  # the rule kind: wall, layering, exhaustion, liquidation_burst, spread_blowout, depth_collapse
    status: str  # born, grown, ..., removed, ended
    rule: str
    ts_ms: int  # when it happened (the detector sample, the frame or the screener row)
    link: str
    destinations: tuple[str, ...]
    side: str | None = None
    price: float | None = None
    size: float | None = None
    notional: float | None = None  # USDT
    distance_bps: float | None = None
    alert_id: str | None = None
    detail: str = ""  # what the numbers mean for this kind, in words
    values: dict[str, float | None] = field(default_factory=dict)  # kind-specific figures (spread_bps, ...)
    created_mono_ns: int = field(default_factory=time.monotonic_ns)  # when the rule matched

    @property
    def time_iso(self) -> str:
        return iso_ms(self.ts_ms)

    def as_dict(self) -> dict[str, Any]:
        """The generic JSON body."""
        return {
            "symbol": self.symbol, "kind": self.kind, "status": self.status, "side": self.side,
            "price": self.price, "size": self.size, "notional": self.notional, "distance_bps": self.distance_bps,
            "rule": self.rule, "time": self.time_iso, "ts_ms": self.ts_ms, "alert_id": self.alert_id,
            "values": self.values, "link": self.link, "text": self.text(),
        }

    def text(self) -> str:
        """One line a person reads in a chat."""
        head = f"{self.symbol.upper()} {self.kind.replace('_', ' ')} {self.status}"
        parts = [head]
        if self.side:
            parts.append(self.side)
        if self.size is not None and self.price is not None:
            parts.append(f"{_num(self.size)} @ {_num(self.price)}")
        elif self.price is not None:
            parts.append(f"@ {_num(self.price)}")
        if self.notional is not None:
            parts.append(f"({_num(self.notional, 0)} USDT)")
        if self.distance_bps is not None:
            parts.append(f"{self.distance_bps:.1f} bps from mid")
        if self.detail:
            parts.append(self.detail)
        return f"{' '.join(parts)} - rule {self.rule} - {self.time_iso} - {self.link}"


def _num(v: float, decimals: int | None = None) -> str:
    if decimals is not None:
        return f"{v:,.{decimals}f}"
    return f"{v:,.8f}".rstrip("0").rstrip(".") if abs(v) < 1000 else f"{v:,.2f}".rstrip("0").rstrip(".")


def iso_ms(ts_ms: int) -> str:
    """ISO 8601 UTC to the millisecond, as the dashboard's ``t`` parameter reads it."""
    dt = datetime.fromtimestamp(ts_ms / 1000, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts_ms % 1000:03d}Z"


def dashboard_link(base_url: str, symbol: str, ts_ms: int) -> str:
    """``<base>/?symbol=<s>&t=<ISO 8601 UTC>`` (dashboard/assets/81-url.js reads both)."""
    return f"{base_url.rstrip('/')}/?symbol={quote(symbol)}&t={iso_ms(ts_ms)}"


def body_of(n: Notification, fmt: Format, chat_id: str | None = None) -> dict[str, Any]:
    """The JSON body a receiver of ``fmt`` expects."""
    if fmt == "slack":
        return {"text": n.text()}
    if fmt == "discord":
        return {"content": n.text()[:2000]}  # Discord's limit on a message
    if fmt == "telegram":
        return {"chat_id": chat_id, "text": n.text()[:4096], "disable_web_page_preview": True}
    return n.as_dict()
