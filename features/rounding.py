"""Rounding at the edge: numbers keep full precision everywhere in the process and are
rounded once, when a frame or an API answer is written as JSON.

Sums and differences of floats parsed from decimal strings carry noise in their last
bits (``-10.823999999999998`` for an OFI of -10.824). Each number of a frame says how
it is written through a :class:`Rule` attached to its field (``Annotated[float,
..., QTY]``); docs/frames.md shows the rule of every field, generated from the same
annotations. The rules depend on the symbol only through its :class:`Decimals`: the
tick's and the lot's decimals.
"""

from __future__ import annotations

import functools
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
from msgspec import Struct

from config import SymbolSpec

SIGNIFICANT_DIGITS = 4  # ratios, bps, multiples
DERIVED_PRICE_EXTRA = 2  # microprice, VWAP and other computed prices: two decimals more than the tick
QUOTE_DECIMALS = 2  # amounts in the quote asset (USDT)
TIME_DECIMALS = 6  # seconds since the epoch, to the microsecond
DURATION_DECIMALS = 3  # durations in seconds, to the millisecond


@dataclass(frozen=True, slots=True)
class Decimals:
    """The decimals of a symbol's price tick and quantity step (lot)."""

    price: int
    qty: int

    @classmethod
    def of(cls, spec: SymbolSpec) -> Decimals:
        return cls(spec.price_decimals, spec.qty_decimals)


@dataclass(frozen=True, slots=True)
class Rule:
    """How one kind of number is written."""

    kind: str
    doc: str  # the rule in words, for docs/frames.md


PRICE = Rule("price", "price decimals")
DERIVED_PRICE = Rule("derived_price", f"price decimals + {DERIVED_PRICE_EXTRA}")
QTY = Rule("qty", "lot decimals")
QUOTE = Rule("quote", f"{QUOTE_DECIMALS} decimals (USDT)")
RATIO = Rule("ratio", f"{SIGNIFICANT_DIGITS} significant digits")
TIME = Rule("time", f"{TIME_DECIMALS} decimals (µs)")
DURATION = Rule("duration", f"{DURATION_DECIMALS} decimals (ms)")
AS_GIVEN = Rule("as_given", "as the feed monitor rounds them (see /health)")


@dataclass(frozen=True, slots=True)
class Pair:
    """A rule per position of a two-number list, e.g. ``[price, qty]`` levels."""

    first: Rule
    second: Rule

    @property
    def doc(self) -> str:
        return f"{self.first.doc}, {self.second.doc}"


How = Rule | Pair | type[Struct]


def _sig(x: float) -> float:
    return float(f"{x:.{SIGNIFICANT_DIGITS}g}") + 0.0


def _decimals(n: int) -> Callable[[float], float]:
    def fn(x: float) -> float:
        return round(x, n) + 0.0  # + 0.0: no "-0.0" in the JSON

    return fn


def _same(x: float) -> float:
    return x


@functools.lru_cache(maxsize=64)
def rounders(dec: Decimals) -> dict[str, Callable[[float], float]]:
    """One function per rule kind, for a symbol's decimals."""
    return {
        "price": _decimals(dec.price),
        "derived_price": _decimals(dec.price + DERIVED_PRICE_EXTRA),
        "qty": _decimals(dec.qty),
        "quote": _decimals(QUOTE_DECIMALS),
        "ratio": _sig,
        "time": _decimals(TIME_DECIMALS),
        "duration": _decimals(DURATION_DECIMALS),
        "as_given": _same,
    }


def _struct_in(hint: Any) -> type[Struct] | None:
    """The Struct type a field holds (itself, optional, in a list or as dict values)."""
    if isinstance(hint, type) and issubclass(hint, Struct):
        return hint
    for arg in typing.get_args(hint):
        found = _struct_in(arg)
        if found is not None:
            return found
    return None


def _rule_in(hint: Any) -> Rule | Pair | None:
    """A Rule or Pair in ``Annotated`` metadata, at the top or in a union member
    (``Annotated[float, PRICE] | None``); containers carry theirs at the top."""
    if typing.get_origin(hint) is Annotated:
        base, *extras = typing.get_args(hint)
        for extra in extras:
            if isinstance(extra, Rule | Pair):
                return extra
        return _rule_in(base)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        for arg in typing.get_args(hint):
            found = _rule_in(arg)
            if found is not None:
                return found
    return None


def rule_of(hint: Any) -> How | None:
    """The rounding of a field from its type hint: its Rule or Pair, else the Struct it
    holds (rounded field by field), else None (not a number)."""
    found = _rule_in(hint)
    if found is not None:
        return found
    return _struct_in(hint)


@functools.cache
def plan(cls: type[Struct]) -> tuple[tuple[str, How], ...]:
    """(field, rounding) of every field of ``cls`` that holds numbers."""
    hints = typing.get_type_hints(cls, include_extras=True)
    out = []
    for name in cls.__struct_fields__:
        how = rule_of(hints[name])
        if how is not None:
            out.append((name, how))
    return tuple(out)


def _apply_rule(value: Any, fn: Callable[[float], float], fns: Mapping[str, Callable[[float], float]]) -> Any:
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, float | int):
        return fn(value)
    if isinstance(value, list):
        return [_apply_rule(v, fn, fns) for v in value]
    if isinstance(value, tuple):
        return tuple(_apply_rule(v, fn, fns) for v in value)
    if isinstance(value, dict):
        return {k: _apply_rule(v, fn, fns) for k, v in value.items()}
    if isinstance(value, Struct):  # one rule for every number inside (e.g. {bid, ask} prices)
        changes = {name: _apply_rule(getattr(value, name), fn, fns) for name in value.__struct_fields__}
        return msgspec.structs.replace(value, **changes)
    return value


def _apply(value: Any, how: How, fns: Mapping[str, Callable[[float], float]]) -> Any:
    if value is None:
        return None
    if isinstance(how, Rule):
        return _apply_rule(value, fns[how.kind], fns)
    if isinstance(how, Pair):
        f1, f2 = fns[how.first.kind], fns[how.second.kind]
        return [(f1(a), f2(b)) for a, b in value]
    if isinstance(value, list):
        return [_round_struct(v, fns) for v in value]
    if isinstance(value, dict):
        return {k: _round_struct(v, fns) for k, v in value.items()}
    return _round_struct(value, fns)


def _round_struct(obj: Any, fns: Mapping[str, Callable[[float], float]]) -> Any:
    cls: type[Struct] = type(obj)
    changes = {name: _apply(getattr(obj, name), how, fns) for name, how in plan(cls)}
    return msgspec.structs.replace(obj, **changes) if changes else obj


S = typing.TypeVar("S", bound=Struct)


def rounded(obj: S, dec: Decimals) -> S:
    """A copy of ``obj`` with every number written by its field's rule; ``obj`` itself
    (and whatever it shares with the process's state) is not touched."""
    result: S = _round_struct(obj, rounders(dec))
    return result


def doc_of(hint: Any) -> str:
    """The rounding of a field in words, for docs/frames.md ('' when not a number or a struct)."""
    how = rule_of(hint)
    if how is None:
        return ""
    if isinstance(how, Rule | Pair):
        return how.doc
    return "per field, below" if plan(how) else ""


def round_mapping(values: Mapping[str, Any], rules: Mapping[str, Rule], dec: Decimals) -> dict[str, Any]:
    """A copy of ``values`` with each key named in ``rules`` written by its rule (for
    answers built as dicts)."""
    fns = rounders(dec)
    return {k: _apply_rule(v, fns[rules[k].kind], fns) if k in rules else v for k, v in values.items()}
