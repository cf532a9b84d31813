"""Faults that can be switched on per symbol at run time, and their validation.

Stream faults act on the symbol's depth events on their way out (so a drop leaves
a real ``pu`` break); connection faults act on every connection carrying the
symbol; snapshot faults act on ``GET /fapi/v1/depth`` for the symbol.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class FaultError(ValueError):
    """A fault request that makes no sense (unknown name, bad value...)."""


# name -> {param: (type, default, minimum, maximum)}; "count" faults are one-shot
# over the next K depth events, snapshot faults stay on until cleared (or count).
FAULT_PARAMS: dict[str, dict[str, tuple[type, Any, float | None, float | None]]] = {
    "drop": {"count": (int, 1, 1, 10_000)},
    "duplicate": {"count": (int, 1, 1, 10_000)},
    "reorder": {"count": (int, 1, 1, 10_000)},
    # The next K bookTickers carry a best bid quantity one lot too large, as if the
    # ticker saw orders the depth stream leaves out (RPI).
    "ticker_mismatch": {"count": (int, 1, 1, 100_000)},
    "malformed": {"kind": (str, "json", None, None), "count": (int, 1, 1, 1000)},
    "close": {"frame": (bool, True, None, None), "code": (int, 1000, 1000, 4999)},
    "silence": {"seconds": (float, 10.0, 0.0, 3600.0)},
    "rotate": {},
    "snapshot_429": {"retry_after": (int, 5, 0, 3600), "count": (int, 0, 0, 1_000_000)},
    "snapshot_418": {"retry_after": (int, 120, 0, 259_200), "count": (int, 0, 0, 1_000_000)},
    "snapshot_5xx": {"status": (int, 503, 500, 599), "count": (int, 0, 0, 1_000_000)},
    "snapshot_delay": {"seconds": (float, 2.0, 0.0, 120.0), "count": (int, 0, 0, 1_000_000)},
    "snapshot_stale": {"age_s": (float, 30.0, 0.1, 3600.0), "count": (int, 0, 0, 1_000_000)},
}
MALFORMED_KINDS = ("json", "fields")
SNAPSHOT_FAULTS = ("snapshot_429", "snapshot_418", "snapshot_5xx", "snapshot_delay", "snapshot_stale")
CONNECTION_FAULTS = ("close", "silence", "rotate")


def validate(name: str, params: dict[str, Any]) -> dict[str, Any]:
    """Check ``params`` of fault ``name`` and fill defaults; FaultError on nonsense."""
    if name not in FAULT_PARAMS:
        raise FaultError(f"unknown fault {name!r}; known: {', '.join(FAULT_PARAMS)}")
    spec = FAULT_PARAMS[name]
    unknown = set(params) - set(spec)
    if unknown:
        raise FaultError(f"fault {name!r}: unknown parameter(s) {sorted(unknown)}; known: {sorted(spec)}")
    out: dict[str, Any] = {}
    for key, (typ, default, lo, hi) in spec.items():
        value = params.get(key, default)
        if typ is bool:
            if not isinstance(value, bool):
                raise FaultError(f"fault {name!r}: {key} must be true or false, got {value!r}")
        elif typ is str:
            if not isinstance(value, str):
                raise FaultError(f"fault {name!r}: {key} must be a string, got {value!r}")
        else:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise FaultError(f"fault {name!r}: {key} must be a number, got {value!r}")
            if typ is int and value != int(value):
                raise FaultError(f"fault {name!r}: {key} must be an integer, got {value!r}")
            value = typ(value)
            if (lo is not None and value < lo) or (hi is not None and value > hi):
                raise FaultError(f"fault {name!r}: {key}={value} out of range [{lo}, {hi}]")
        out[key] = value
    if name == "malformed" and out["kind"] not in MALFORMED_KINDS:
        raise FaultError(f"fault 'malformed': kind must be one of {MALFORMED_KINDS}, got {out['kind']!r}")
    return out


@dataclass(slots=True)
class SymbolFaults:
    """Faults in force for one symbol."""

    drop: int = 0
    duplicate: int = 0
    reorder: int = 0
    ticker_mismatch: int = 0
    malformed: list[str] = field(default_factory=list)  # kinds still to send
    snapshot: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> params
    held: dict[str, str] = field(default_factory=dict)  # reorder: stream name -> held message

    def active(self) -> dict[str, Any]:
        """What is switched on, for GET /sim/faults."""
        out: dict[str, Any] = {}
        for name in ("drop", "duplicate", "reorder", "ticker_mismatch"):
            if getattr(self, name):
                out[name] = {"count": getattr(self, name)}
        if self.malformed:
            out["malformed"] = {"pending": list(self.malformed)}
        out.update({k: dict(v) for k, v in self.snapshot.items()})
        return out

    def take_snapshot_fault(self, name: str) -> dict[str, Any] | None:
        """The params of snapshot fault ``name`` if on; counts one use down."""
        params = self.snapshot.get(name)
        if params is None:
            return None
        if params.get("count"):
            params["count"] -= 1
            if params["count"] == 0:
                del self.snapshot[name]
        return params
