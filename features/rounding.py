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
import math
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
    """How one kind of number is written. ``held`` marks numbers that are at the rule's
    decimals by construction (the book's tick prices, the exchange's quantities parsed
    from its decimal strings): written as they are, no work spent on them."""

    kind: str
    doc: str  # the rule in words, for docs/frames.md
    held: bool = False


PRICE = Rule("price", "price decimals")
DERIVED_PRICE = Rule("derived_price", f"price decimals + {DERIVED_PRICE_EXTRA}")
QTY = Rule("qty", "lot decimals")
QUOTE = Rule("quote", f"{QUOTE_DECIMALS} decimals (USDT)")
RATIO = Rule("ratio", f"{SIGNIFICANT_DIGITS} significant digits")
TIME = Rule("time", f"{TIME_DECIMALS} decimals (µs)")
DURATION = Rule("duration", f"{DURATION_DECIMALS} decimals (ms)")
AS_GIVEN = Rule("as_given", "as the feed monitor rounds them (see /health)", held=True)
# The book's prices are its integer tick keys written at the tick's decimals, its and
# the trades' quantities the exchange's decimal strings parsed: already exact.
BOOK_PRICE = Rule("price", "price decimals (the book's tick prices, as held)", held=True)
EXCHANGE_QTY = Rule("qty", "lot decimals (the exchange's quantities, as received)", held=True)
EXCHANGE_PRICE = Rule("price", "price decimals (the exchange's prices, as received)", held=True)


@dataclass(frozen=True, slots=True)
class Pair:
    """A rule per position of a two-number list, e.g. ``[price, qty]`` levels."""

    first: Rule
    second: Rule

    @property
    def doc(self) -> str:
        return f"{self.first.doc}, {self.second.doc}"


How = Rule | Pair | type[Struct]


_POW10 = [10.0**n for n in range(0, 309)]  # 1e0 .. 1e308
# Below this the scaled value carries at least 10 bits of fraction: its rounding to an
# integer is the decimal rounding of x, short of values within 1e-3 of a tie.
_EXACT_BELOW = 2.0**42


def _decimals(n: int) -> Callable[[float], float]:
    """Round to ``n`` decimals: the nearest integer of x * 10**n, divided back. The
    quotient of two exact doubles is the double nearest that decimal, so it prints as
    the short decimal (61800.154), and it is several times cheaper than round(x, n),
    which goes through a decimal conversion (used where x * 10**n is too large for the
    product to keep the fraction: epoch seconds to the microsecond). round() gives an
    int, so -0.0 becomes 0.0."""
    scale = _POW10[n]

    def fn(x: float) -> float:
        y = x * scale
        if -_EXACT_BELOW < y < _EXACT_BELOW:
            return round(y) / scale
        return round(x, n) + 0.0

    return fn


def _sig(x: float) -> float:
    """Round to SIGNIFICANT_DIGITS significant digits, the same way."""
    if x == 0.0 or x != x or x in (math.inf, -math.inf):
        return x + 0.0
    mag = abs(x)
    if mag < 1e-300:
        return 0.0
    n = SIGNIFICANT_DIGITS - 1 - math.floor(math.log10(mag))
    if n >= 0:
        scale = _POW10[n]
        return round(x * scale) / scale
    scale = _POW10[-n]
    return float(round(x / scale) * scale)


def _same(x: float) -> float:
    return x


def places(kind: str, dec: Decimals) -> int | None:
    """Decimal places of a rule kind for a symbol; None for the kinds that are not
    a number of decimals (significant digits, as given)."""
    return {
        "price": dec.price,
        "derived_price": dec.price + DERIVED_PRICE_EXTRA,
        "qty": dec.qty,
        "quote": QUOTE_DECIMALS,
        "time": TIME_DECIMALS,
        "duration": DURATION_DECIMALS,
    }.get(kind)


@functools.lru_cache(maxsize=64)
def rounders(dec: Decimals) -> dict[str, Callable[[float], float]]:
    """One function per rule kind, for a symbol's decimals."""
    out: dict[str, Callable[[float], float]] = {"ratio": _sig, "as_given": _same}
    for kind in ("price", "derived_price", "qty", "quote", "time", "duration"):
        n = places(kind, dec)
        assert n is not None
        out[kind] = _decimals(n)
    return out


def _list_rounder(n: int) -> Callable[[list[float]], list[float]]:
    """:func:`_decimals` over a list, inline (no call per number)."""
    scale, limit = _POW10[n], _EXACT_BELOW

    def fn(values: list[float]) -> list[float]:
        return [round(y) / scale if -limit < (y := x * scale) < limit else round(x, n) + 0.0 for x in values]

    return fn


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


def _base(hint: Any) -> Any:
    """The type under ``Annotated`` and ``| None``."""
    if typing.get_origin(hint) is Annotated:
        return _base(typing.get_args(hint)[0])
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return _base(args[0]) if len(args) == 1 else hint
    return hint


Apply = Callable[[Any], Any]


def _rule_applier(hint: Any, kind: str, dec: Decimals) -> Apply:
    """One rule over every number a field of type ``hint`` holds."""
    fn = rounders(dec)[kind]
    base = _base(hint)
    origin = typing.get_origin(base)
    if origin is list:
        n = places(kind, dec)
        if n is not None:
            many = _list_rounder(n)
            return lambda v: None if v is None else many(v)
        return lambda v: None if v is None else [fn(x) for x in v]
    if origin is dict:
        return lambda v: None if v is None else {k: fn(x) for k, x in v.items()}
    if isinstance(base, type) and issubclass(base, Struct):
        hints = typing.get_type_hints(base, include_extras=True)
        inner = [(name, _rule_applier(hints[name], kind, dec)) for name in base.__struct_fields__]
        return lambda v: None if v is None else msgspec.structs.replace(
            v, **{name: f(getattr(v, name)) for name, f in inner})
    return lambda v: None if v is None else fn(v)


def _applier(hint: Any, how: How, dec: Decimals) -> Apply | None:
    fns = rounders(dec)
    if isinstance(how, Rule):
        if how.held:
            return None
        return _rule_applier(hint, how.kind, dec)
    if isinstance(how, Pair):
        if how.first.held and how.second.held:
            return None
        f1, f2 = fns[how.first.kind], fns[how.second.kind]
        return lambda v: None if v is None else [(f1(a), f2(b)) for a, b in v]
    struct_fn = _struct_rounder(how, dec)
    origin = typing.get_origin(_base(hint))
    if origin is list:
        return lambda v: None if v is None else [struct_fn(x) for x in v]
    if origin is dict:
        return lambda v: None if v is None else {k: struct_fn(x) for k, x in v.items()}
    return lambda v: None if v is None else struct_fn(v)


@functools.lru_cache(maxsize=256)
def _struct_rounder(cls: type[Struct], dec: Decimals) -> Apply:
    """A function that returns a rounded copy of a ``cls``, compiled once per symbol's
    decimals: one applier per field, no type checks per number."""
    hints = typing.get_type_hints(cls, include_extras=True)
    fields = [(name, f) for name, how in plan(cls) if (f := _applier(hints[name], how, dec)) is not None]
    if not fields:
        return lambda obj: obj
    replace = msgspec.structs.replace

    def apply(obj: Any) -> Any:
        return replace(obj, **{name: f(getattr(obj, name)) for name, f in fields})

    return apply


S = typing.TypeVar("S", bound=Struct)


def rounded(obj: S, dec: Decimals) -> S:
    """A copy of ``obj`` with every number written by its field's rule; ``obj`` itself
    (and whatever it shares with the process's state) is not touched."""
    cls: type[Struct] = type(obj)
    result: S = _struct_rounder(cls, dec)(obj)
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
