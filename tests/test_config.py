"""config.py: the decimals a tick or step size needs, by hand."""

from __future__ import annotations

import pytest

from config import decimals_of


@pytest.mark.parametrize(
    ("tick", "decimals"),
    [
        ("0.10", 1),
        ("0.00100000", 3),
        ("1", 0),
        ("0.01", 2),
        ("0.25", 2),
        ("100", 0),
        (0.1, 1),
        (1e-8, 8),
        (0.5, 1),
        (0.01, 2),
        (25, 0),
        (1.0, 0),
    ],
)
def test_decimals_of_a_tick_given_as_exchange_string_or_number(tick: str | float, decimals: int) -> None:
    assert decimals_of(tick) == decimals


@pytest.mark.parametrize("tick", ["0", "-0.1", "abc", "", "nan", "inf", 0.0, float("nan")])
def test_decimals_of_refuses_what_is_not_a_positive_tick(tick: str | float) -> None:
    with pytest.raises(ValueError):
        decimals_of(tick)
