"""The screener's streams are recorded (``_market`` in the data directory, in the
recording format) and replaying them at the live frames' times rebuilds the live rows."""

from __future__ import annotations

from pathlib import Path

from data_ingestion.market import MARKET_RECORDING
from data_ingestion.recording import segments_of
from screener.market import MarketState
from screener.replay import replay_rows
from tests.stack import running_stack
from tests.waiting import wait_until


async def test_recorded_then_replayed_rows_equal_the_live_ones(tmp_path: Path) -> None:
    async with running_stack(symbols=("btcusdt",), screener=True, sim_market="20", sim_config={"warmup_s": 5.0},
                             record_dir=str(tmp_path)) as h:
        pub = h.stack.screener
        recorder = h.stack.runtime.recorder
        assert pub is not None and recorder is not None
        await wait_until(lambda: pub.frames >= 6 and any(r["liq5m_buy"] or r["liq5m_sell"] for r in pub.rows)
                         or pub.frames >= 30, what="six frames (and a liquidation, usually)")
        # Read in one step: the rows of the last frame and the times of every frame,
        # then everything received so far written out.
        live = [dict(r) for r in pub.rows]
        times = list(pub.frame_times_ns)
        focus = {r["symbol"] for r in live if r["focus"]}
        recorder.flush()
        segments = segments_of(tmp_path, MARKET_RECORDING)
        assert segments
        assert h.stack.market is not None
        state = MarketState(h.settings.screener_depth_suffix, h.stack.market.state.rules)
        replayed = replay_rows(segments, times, state, focus)
    assert len(live) == 20 and times[0] == min(times)
    assert all(r["mid"] is not None and r["funding_rate"] is not None for r in live)
    assert sum(r["walls"] for r in live) > 0
    assert replayed == live
