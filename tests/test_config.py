"""config.py: the decimals a tick or step size needs, by hand."""

from __future__ import annotations

import pytest

from config import decimals_of, load_settings, parse_duration_s, parse_size_bytes


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


@pytest.mark.parametrize(("text", "seconds"), [("24h", 86400.0), ("90m", 5400.0), ("90min", 5400.0),
                                               ("3600s", 3600.0), ("2d", 172800.0), ("45", 45.0), ("1.5h", 5400.0)])
def test_retention_durations(text: str, seconds: float) -> None:
    assert parse_duration_s(text) == seconds


@pytest.mark.parametrize(("text", "size"), [("2GB", 2 * 10**9), ("500MB", 500 * 10**6), ("500mb", 500 * 10**6),
                                            ("1GiB", 2**30), ("1.5GB", 1_500_000_000), ("4096", 4096)])
def test_disk_budgets(text: str, size: int) -> None:
    assert parse_size_bytes(text) == size


@pytest.mark.parametrize("text", ["", "h", "24 hours", "-1h", "0", "2 weeks"])
def test_a_duration_that_is_not_one_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration_s(text)


@pytest.mark.parametrize("text", ["", "GB", "2 gigabytes", "0MB", "-5MB"])
def test_a_size_that_is_not_one_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_size_bytes(text)


def test_where_history_is_recorded() -> None:
    assert load_settings(environ={}).recording_dir == "./data"  # on by default
    assert load_settings(environ={"LIQ_HISTORY": "0"}).recording_dir == ""
    assert load_settings(environ={"LIQ_DATA_DIR": "/srv/liq"}).recording_dir == "/srv/liq"
    # --record DIR records into DIR, even with history off
    assert load_settings(environ={"LIQ_HISTORY": "0", "LIQ_RECORD_DIR": "/tmp/rec"}).recording_dir == "/tmp/rec"
