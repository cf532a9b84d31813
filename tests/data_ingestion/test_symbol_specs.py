"""A symbol always runs at its real tick: from exchangeInfo, from a recording's
filters line, or inferred from the prices it printed; never a guessed 1e-8."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import pytest

from config import SymbolSpec, load_settings
from data_ingestion.audit import audit_files
from data_ingestion.recording import FILTERS, read_recording, scan_head, segments_of
from data_ingestion.rest import RestClient, WeightBudget
from data_ingestion.runtime import IngestionRuntime
from data_ingestion.tasks import TaskRegistry
from exchange_sim import SimConfig, SimExchange
from orderbook.tick_inference import infer_step
from tests.data_ingestion.test_record_replay import replay_books
from tests.stack import running_stack

# A symbol no default knows: a 1 USDT tick around 5,000 (the filters come from the exchange).
YFI: dict[str, Any] = {"symbol_specs": {"yfiusdt": SymbolSpec(1.0, 0.001, 0, 3, 10)},
                       "mid_prices": {"yfiusdt": 5_000.0}}


def test_infer_step_by_hand() -> None:
    btc = [f"{61800 + i / 10:.2f}" for i in range(100)]  # "61800.00", "61800.10", ... as Binance prints
    s = infer_step(btc)
    assert s is not None and (s.step, s.decimals, s.printed_decimals, s.from_divisor) == (0.1, 1, 2, True)
    s = infer_step([f"{i * 0.5:.2f}" for i in range(1, 100)])
    assert s is not None and (s.step, s.decimals) == (0.5, 1)
    s = infer_step([str(25 * i) for i in range(1, 100)])
    assert s is not None and (s.step, s.decimals) == (25.0, 0)
    s = infer_step([f"{0.001 + i * 1e-7:.7f}" for i in range(1, 100)])
    assert s is not None and (s.step, s.decimals) == (1e-7, 7)
    # Too few prices to trust a divisor: the finest printed step (never merges prices).
    s = infer_step(["100.0", "100.5", "101.0"])
    assert s is not None and (s.step, s.from_divisor) == (0.1, False)
    assert infer_step(["0.000", "abc", "-1"]) is None


async def test_a_recording_carries_its_filters_and_replays_at_that_tick(tmp_path: Path) -> None:
    async with running_stack(symbols=("yfiusdt",), sim_config=YFI, record_dir=str(tmp_path)) as h:
        await h.wait_synced()
        assert h.feed("yfiusdt").spec.tick_size == 1.0  # from exchangeInfo
        feed = h.feed("yfiusdt")
        applied = feed.validator.counters.events_applied
        # A bookTicker names a depth event only when that event's last change is at
        # the touch (about one event in ten): wait for one the live feed checked, so
        # the recording holds it too.
        await h.wait_for(lambda: feed.validator.counters.events_applied >= applied + 30
                         and feed.ticker_check.checks > 0, what="events and a bookTicker check")
    files = [str(p) for p in segments_of(tmp_path, "yfiusdt")]
    first = next(iter(read_recording(files)))
    assert first.kind == FILTERS and first.data.tick_size == "1" and first.data.source == "exchangeInfo"  # type: ignore[union-attr]
    assert scan_head(files[0]).filters is not None
    stack = await replay_books(files, ("yfiusdt",))
    try:
        feed = stack.runtime.feeds["yfiusdt"]
        assert feed.spec.tick_size == 1.0 and feed.book.tick_size == 1.0
        assert feed.in_sync and len(feed.book.bids) > 100
    finally:
        await stack.stop()
    audit = audit_files(files)["yfiusdt"]
    assert audit.book.tick_size == 1.0 and audit.mismatches == 0 and audit.checks > 0


def _renamed_copy(src: Path, dst: Path, old: str, new: str, lines: int) -> None:
    """The first ``lines`` of a real recording under another symbol's name (prices as
    Binance printed them), with no filters line: a capture by another tool."""
    with gzip.open(src, "rb") as fin, gzip.open(dst, "wb") as fout:
        for i, line in enumerate(fin):
            if i >= lines:
                break
            fout.write(line.replace(old.encode(), new.encode()).replace(old.upper().encode(), new.upper().encode()))


async def test_a_recording_without_filters_replays_at_the_inferred_tick(
    btc_file: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    copy = tmp_path / "zzzusdt_20240808.gz"
    _renamed_copy(btc_file, copy, "btcusdt", "zzzusdt", 20_000)
    caplog.set_level("INFO", logger="specs")
    stack = await replay_books([str(copy)], ("zzzusdt",))
    try:
        feed = stack.runtime.feeds["zzzusdt"]
        assert (feed.spec.tick_size, feed.spec.price_decimals, feed.spec.lot_size) == (0.1, 1, 0.001)
        assert feed.in_sync and feed.ticker_check.checks > 0 and feed.ticker_check.failures == 0
    finally:
        await stack.stop()
    assert "zzzusdt: tick inferred from the prices: 0.1 (common divisor" in caplog.text
    audit = audit_files([str(copy)])["zzzusdt"]
    assert audit.book.tick_size == 0.1 and audit.mismatches == 0 and audit.checks > 0


async def test_without_exchange_info_an_unknown_symbol_gets_its_tick_from_a_snapshot(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """exchangeInfo down for a moment at start: a configured symbol keeps its
    configured tick, an unknown one gets it from a snapshot's prices, not a guess."""
    caplog.set_level("INFO", logger="specs")
    sim = SimExchange(SimConfig(symbols=("btcusdt", "yfiusdt"), warmup_s=5.0, episodes=False, **YFI))
    urls = await sim.start(port=0)
    sim.exchange_info_down = True
    settings = load_settings(environ={}, symbols=("yfiusdt", "btcusdt"), rest_base_url=urls.rest_base_url)
    runtime = IngestionRuntime(settings, TaskRegistry())
    rest = RestClient(settings.rest_base_url, WeightBudget(2400, 0.5))
    try:
        await runtime._resolve_specs(rest)
    finally:
        await rest.close()
        await sim.stop()
    assert runtime.specs["yfiusdt"].tick_size == 1.0 and runtime.specs["yfiusdt"].lot_size == 0.001
    assert runtime.specs["btcusdt"] == settings.symbol_specs["btcusdt"]  # configured
    assert "yfiusdt: tick inferred from the prices: 1 (common divisor" in caplog.text
