"""A symbol's price tick and quantity step inferred from the strings it printed.

For recordings without a filters line (older ones, other tools' captures) and for
the live path while exchangeInfo cannot be reached. Binance prints every price of
a symbol with the same number of decimals (``"61800.20"``), and every price is a
multiple of the tick: the tick is the greatest common divisor of the prices seen,
in units of the last printed decimal, so never finer than what Binance prints.
With too few distinct prices a common divisor can be a multiple of the true tick
(three prices 100.0, 100.5, 101.0 on a 0.1 tick): then the finest printed step is
used, which can cost memory but never merges two prices into one key.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

# Fewer distinct prices than this: too few to trust a common divisor.
MIN_DISTINCT_PRICES = 50


@dataclass(frozen=True, slots=True)
class InferredStep:
    step: float
    decimals: int  # decimals the step needs ("0.10" -> 1)
    printed_decimals: int  # decimals the strings carried ("61800.20" -> 2)
    samples: int  # distinct non-zero values seen
    from_divisor: bool  # True: the common divisor; False: the finest printed step

    def describe(self) -> str:
        how = "common divisor" if self.from_divisor else "finest printed step (too few values to trust a divisor)"
        return f"{self.step:.{self.decimals}f} ({how} of {self.samples} values printed with " \
               f"{self.printed_decimals} decimals)"


def infer_step(values: Iterable[str], min_distinct: int = MIN_DISTINCT_PRICES) -> InferredStep | None:
    """The step of decimal strings (prices or quantities); None when none is usable."""
    parsed: set[tuple[int, int]] = set()  # (integer digits without the dot, decimals)
    for text in values:
        if not isinstance(text, str) or not text or text[0] == "-":
            continue
        whole, _, frac = text.partition(".")
        digits = whole + frac
        if not digits.isdigit():
            continue
        n = int(digits)
        if n:
            parsed.add((n, len(frac)))
    if not parsed:
        return None
    printed = max(d for _n, d in parsed)
    units = {n * 10 ** (printed - d) for n, d in parsed}
    divisor = 0
    for u in units:
        divisor = math.gcd(divisor, u)
    from_divisor = len(units) >= min_distinct
    if not from_divisor:
        divisor = 1
    zeros = 0
    while divisor % 10 == 0 and zeros < printed:
        divisor //= 10
        zeros += 1
    decimals = printed - zeros
    step = divisor * 10.0**-decimals
    return InferredStep(round(step, decimals), decimals, printed, len(units), from_divisor)
