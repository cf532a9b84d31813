"""SymbolFeatures on a book rebuilt from the real BTCUSDT recording."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import orjson
import pytest

from config import Settings
from data_ingestion.recording import read_recording
from features.engine import SymbolFeatures
from features.frame import to_dict as frame_to_dict
from orderbook.book_state import BookState
from wire.binance import DepthSnapshot, DepthUpdate, Trade

S = 1_000_000_000
SYNCED = {"state": "synced", "reason": None, "last_update_id": 0, "last_message_age_s": 0.0}
FEED = {"messages_per_s": 10.0, "depth_events_per_s": 5.0, "lag_ms": 1.0}

FRAME_FIELDS = {
    "type", "symbol", "timestamp", "ts_event_ms", "seq", "sync",
    "best_bid", "best_ask", "mid_price", "spread", "spread_bps", "microprice",
    "imbalance", "imbalance_l1", "ofi", "ofi_levels", "depth_delta",
    "total_bid_volume", "total_ask_volume", "depth_weighted_price", "depth_weighted_mid",
    "slope", "cumulative_depth", "depth_bands", "bid_levels", "ask_levels", "walls",
    "alerts", "heatmap", "volume_profile", "trades", "feed", "replay", "history",
    "liquidations", "liquidation_stats", "mark", "open_interest",
}  # fmt: skip


def replay(recording: Path, seconds: float) -> tuple[BookState, SymbolFeatures, list[dict[str, Any]]]:
    """Rebuild the book from the snapshot and the diffs that follow it, feeding the
    engine and building a frame at each whole second of receive time."""
    book = BookState("btcusdt", 0.1)
    eng = SymbolFeatures("btcusdt", Settings())
    frames: list[dict[str, Any]] = []
    synced = False
    start_ns = next_frame_ns = 0
    for msg in read_recording([recording]):
        d = msg.data
        if isinstance(d, DepthSnapshot):
            book.apply_snapshot(d.last_update_id, d.bids, d.asks)
            synced = True
        elif isinstance(d, DepthUpdate) and synced:
            if d.final_update_id < book.last_update_id:
                continue  # older than the snapshot
            book.apply_diff(d.bids, d.asks, d.final_update_id)
            eng.on_depth_applied(book, msg.ts_recv_ns, d.event_time_ms)
            if not start_ns:
                start_ns = msg.ts_recv_ns
                next_frame_ns = (start_ns // S + 1) * S
        elif isinstance(d, Trade) and synced:
            eng.on_trade(msg.ts_recv_ns, float(d.price), float(d.qty), "sell" if d.buyer_is_maker else "buy")
        if start_ns and msg.ts_recv_ns >= next_frame_ns:
            frames.append(frame_to_dict(eng.build_frame(book, next_frame_ns, SYNCED, FEED)))
            next_frame_ns += S
            if next_frame_ns - start_ns > seconds * S:
                break
    return book, eng, frames


def walk_numbers(value: Any) -> list[float]:
    if isinstance(value, dict):
        return [x for v in value.values() for x in walk_numbers(v)]
    if isinstance(value, list):
        return [x for v in value for x in walk_numbers(v)]
    return [value] if isinstance(value, float) else []


def test_frames_from_a_real_recording_have_every_documented_field(btc_file: Path) -> None:
    book, eng, frames = replay(btc_file, seconds=8)
    assert len(frames) >= 8
    f = frames[-1]
    assert set(f) == FRAME_FIELDS
    assert [x["seq"] for x in frames] == list(range(1, len(frames) + 1))
    assert f["symbol"] == "btcusdt" and f["type"] == "frame"
    assert isinstance(f["ts_event_ms"], int) and f["timestamp"] == frames[0]["timestamp"] + len(frames) - 1
    assert 60_000 < f["best_bid"] < f["best_ask"] < 63_000
    assert f["mid_price"] == pytest.approx((f["best_bid"] + f["best_ask"]) / 2)
    assert -1 <= f["imbalance"] <= 1 and -1 <= f["imbalance_l1"] <= 1
    assert isinstance(f["ofi"], float) and len(f["ofi_levels"]) == 10
    assert f["ofi_levels"][0] == f["ofi"]
    assert isinstance(f["depth_delta"], float)
    assert len(f["bid_levels"]) == 50 and len(f["ask_levels"]) == 50
    assert f["bid_levels"][0] == [f["best_bid"], book.best_bid()[1]]  # type: ignore[index]
    assert len(f["cumulative_depth"]["bid"]) == 10
    assert f["cumulative_depth"]["bid"][-1] == pytest.approx(f["total_bid_volume"])
    bands = f["depth_bands"]
    assert list(bands["bid"]) == ["5", "10", "25", "50", "100"]
    assert bands["bid"]["100"] >= bands["bid"]["5"] > 0
    # BTCUSDT bins are 20 ticks of 0.1: 2.0 USDT.
    assert len(f["heatmap"]["sizes"]) == 120 and f["heatmap"]["bin_size"] == 2.0
    assert f["volume_profile"]["bin_size"] == 2.0
    assert sum(len(x["trades"]) for x in frames) > 0
    assert {t["side"] for x in frames for t in x["trades"]} <= {"buy", "sell"}
    assert f["feed"] == FEED and f["sync"] == SYNCED
    assert all(math.isfinite(x) for x in walk_numbers(f))
    # plain JSON: orjson encodes it and it reads back the same
    assert orjson.loads(orjson.dumps(frames)) == frames


def test_unsynced_frame_has_nulls_and_empty_levels(btc_file: Path) -> None:
    book, eng, _ = replay(btc_file, seconds=2)
    sync = {"state": "resyncing", "reason": "pu gap", "last_update_id": 1, "last_message_age_s": 0.5}
    f = frame_to_dict(eng.build_frame(book, 10**19, sync, FEED))
    assert set(f) == FRAME_FIELDS
    for key in ("best_bid", "best_ask", "mid_price", "spread", "spread_bps", "microprice", "imbalance",
                "imbalance_l1", "ofi", "ofi_levels", "depth_delta", "total_bid_volume",
                "total_ask_volume", "depth_weighted_mid", "heatmap"):  # fmt: skip
        assert f[key] is None, key
    assert f["bid_levels"] == [] and f["ask_levels"] == [] and f["walls"] == []
    # The alerts live when the book was lost end with it; none is live afterwards.
    assert all(not a["live"] and a["reason"] == "resync" for a in f["alerts"])
    assert all(not a.live for a in eng.alert_list())
    assert f["depth_weighted_price"] == {"bid": None, "ask": None}
    assert f["cumulative_depth"] == {"bid": [], "ask": []}
    assert f["sync"] == sync and f["feed"] == FEED
    orjson.dumps(f)
    # flow state was reset: the OFI restarts from the next applied event
    assert eng.ofi.ofi(10**19) is None


def test_engine_raises_alerts_into_the_frame_and_history() -> None:
    book = BookState("btcusdt", 0.1)
    bids = [(f"{100 - i * 0.1:.1f}", "1") for i in range(20)]
    asks = [(f"{100.1 + i * 0.1:.1f}", "9" if i < 4 else "1") for i in range(20)]  # 4 levels at 9x
    book.apply_snapshot(1, bids, asks)
    eng = SymbolFeatures("btcusdt", Settings())
    eng.on_depth_applied(book, 0)
    f = frame_to_dict(eng.build_frame(book, 5 * S, SYNCED, FEED))
    assert [(a["id"], a["type"], a["status"], a["live"]) for a in f["alerts"]] == [
        ("btcusdt-1", "LAYERING", "born", True)]
    assert [a.type for a in eng.last_detections] == ["LAYERING"]  # the detector's event behind it
    assert [a.id for a in eng.alert_list()] == ["btcusdt-1"] and len(eng.alert_history) == 1
    # A second frame in the same second does not sample again, and carries the live alert as it was.
    again = eng.build_frame(book, 5 * S + S // 2, SYNCED, FEED)
    assert eng.last_detections == [] and [a.status for a in again.alerts] == ["born"]
    # The book is lost: the next frame ends it.
    lost = eng.build_frame(book, 6 * S, {**SYNCED, "state": "resyncing"}, FEED)
    assert [(a.id, a.status, a.live, a.reason) for a in lost.alerts] == [("btcusdt-1", "ended", False, "resync")]


def test_a_new_snapshot_between_frames_resets_the_flow() -> None:
    book = BookState("btcusdt", 0.1)
    book.apply_snapshot(1, [("100.0", "1")], [("100.1", "1")])
    eng = SymbolFeatures("btcusdt", Settings())
    eng.on_depth_applied(book, 0)
    book.apply_diff([("100.0", "3")], [], 2)
    eng.on_depth_applied(book, S // 10)
    assert eng.ofi.ofi(S // 10) == 2.0  # 3 - 1 at the same bid price
    book.apply_snapshot(10, [("100.0", "50")], [("100.1", "1")])  # resync: not a flow of +47
    eng.on_depth_applied(book, S // 5)
    assert eng.ofi.ofi(S // 5) == 0.0
