"""The metrics linter (tests/api/promlint.py) finds what promtool finds, on hand-written
expositions; the live /metrics is checked with it in test_endpoints.py."""

from __future__ import annotations

import pytest

from tests.api.promlint import check

GOOD = """\
# HELP liq_gaps_total pu gaps detected
# TYPE liq_gaps_total counter
liq_gaps_total{symbol="btcusdt"} 0.0
# HELP liq_exchange_lag_seconds mean lag
# TYPE liq_exchange_lag_seconds gauge
liq_exchange_lag_seconds{symbol="btcusdt"} -1.27
# HELP liq_processing_latency_seconds per message
# TYPE liq_processing_latency_seconds histogram
liq_processing_latency_seconds_bucket{le="0.001",symbol="btcusdt"} 3.0
liq_processing_latency_seconds_bucket{le="+Inf",symbol="btcusdt"} 4.0
liq_processing_latency_seconds_count{symbol="btcusdt"} 4.0
liq_processing_latency_seconds_sum{symbol="btcusdt"} 0.002
# HELP liq_process_rss_bytes resident set size
# TYPE liq_process_rss_bytes gauge
liq_process_rss_bytes 1.048576e+08
"""


def family(name: str, kind: str, sample: str | None = None, help_line: bool = True) -> str:
    lines = [f"# HELP {name} some help"] if help_line else []
    lines += [f"# TYPE {name} {kind}", sample or f"{name} 1.0"]
    return "\n".join(lines) + "\n"


def test_a_clean_exposition_has_no_problem() -> None:
    assert check(GOOD) == []


CASES = [
    # The line promtool printed for this project's /metrics before it was fixed.
    (family("liq_exchange_lag_ms", "gauge"),
     "liq_exchange_lag_ms: metric names should not contain abbreviated units"),
    (family("liq_snapshot_kb", "gauge"), "metric names should not contain abbreviated units"),
    (family("liq_uptime_s", "gauge"), "metric names should not contain abbreviated units"),
    (family("liq_lag_milliseconds", "gauge"), "use base unit 'seconds' instead of 'milliseconds'"),
    (family("liq_memory_megabytes", "gauge"), "use base unit 'bytes' instead of 'megabytes'"),
    (family("liq_time_in_sync_pct", "gauge"), "ratio from 0 to 1"),
    (family("liq_messages", "counter"), 'counter metrics should have "_total" suffix'),
    (family("liq_clients_total", "gauge"), 'non-counter metrics should not have "_total" suffix'),
    (family("liq_books_gauge", "gauge"), "metric name should not include type 'gauge'"),
    (family("liq:lag_seconds", "gauge"), "should not contain ':'"),
    (family("liq_lagSeconds", "gauge"), "'snake_case' not 'camelCase'"),
    (family("liq_x", "gauge", 'liq_x{bookSide="bid"} 1'), "label names should be written in 'snake_case'"),
    (family("liq_x", "gauge", 'liq_x{le="1"} 1'), 'should not have "le" label'),
    (family("liq_things_bucket", "gauge"), 'should not have "_bucket" suffix'),
    (family("liq_last_timestamp_seconds", "counter", "liq_last_timestamp_seconds 1"),
     'non-gauge metrics should not have "_timestamp_seconds" suffix'),
    (family("liq_x", "gauge", help_line=False), "liq_x: no help text"),
    ("# HELP liq_x help\nliq_x 1\n", "liq_x: no TYPE line"),
    (family("liq_x", "gauge", "liq_x{0bad=\"v\"} 1"), "invalid label name '0bad'"),
    (family("liq_x", "gauge", "liq_x{symbol=btcusdt} 1"), "bad labels"),
    (family("liq_x", "gauge", "liq_x one"), "is not a number"),
]


@pytest.mark.parametrize(("text", "problem"), CASES, ids=[problem for _, problem in CASES])
def test_each_rule_finds_its_problem(text: str, problem: str) -> None:
    problems = check(text)
    assert any(problem in p for p in problems), problems
