"""Rounding at the edge: the rules of docs/frames.md on hand values, on a frame built
from the real BTCUSDT recording, and the frame itself left at full precision."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import msgspec
import orjson

from features.frame import (
    AlertEvent,
    BidAsk,
    Binned,
    Frame,
    FrameAlert,
    FrameWall,
    SyncInfo,
    TradePrint,
    encode,
    to_dict,
)
from features.rounding import QTY, RATIO, Decimals, round_mapping, rounded

BTC = Decimals(price=1, qty=3)
ETH = Decimals(price=2, qty=3)


def noisy_frame() -> Frame:
    """The float noise the issue quotes, and its kind everywhere else."""
    return Frame(
        symbol="btcusdt", timestamp=1795830276.1969974, ts_event_ms=1795830276101, seq=7,
        sync=SyncInfo(state="synced", last_message_age_s=0.00912345),
        best_bid=61800.1, best_ask=61800.2, mid_price=61800.149999999994, spread=0.09999999999854481,
        spread_bps=0.016181191314756413, microprice=61800.15361754229, imbalance=-0.2808691291214238,
        imbalance_l1=0.0, ofi=-10.823999999999998, ofi_levels=[-10.823999999999998, 7.9529999999999985],
        depth_delta=-0.0000000001, total_bid_volume=22.708000000000002, total_ask_volume=109.82300000000001,
        depth_weighted_price=BidAsk(bid=61799.812065554096, ask=61800.4965054678895),
        depth_weighted_mid=61800.15428551099, slope=BidAsk(bid=65.33379170840509, ask=191.96648972866913),
        bid_levels=[(61800.1, 1.196), (61800.0, 0.097)],
        walls=[FrameWall(side="bid", price=61800.0, size=10.868, multiple=167.19999999999999, age_s=6.000000001)],
        alerts=[FrameAlert(
            id="btcusdt-3", type="WALL", status="born", live=True, symbol="btcusdt", side="bid", price=61800.0,
            price_bin=30900, ts=1795830276.0, born_ts=1795830276.0, age_s=6.000000001, size=10.868000000000002,
            notional=671642.4000000001, peak_notional=671642.4000000001, distance_bps=0.024271,
            depth_share=0.4785937812, score=671626.0043290043, multiple=167.19999999999999,
            events=[AlertEvent(ts=1795830276.0, status="born", price=61800.0, size=10.868000000000002)])],
        heatmap=Binned(bin0=30899, bin_size=2.0, sizes=[1.9029999999999998, 0.0]),
        trades=[TradePrint(ts=1795830275.9392141, price=61800.1, qty=0.023, side="buy", nq=0.022)],
        feed={"lag_ms": 49.2},
    )


def test_the_issues_numbers_are_written_by_their_rules() -> None:
    f = to_dict(noisy_frame(), BTC)
    assert f["microprice"] == 61800.154  # price decimals (1) + 2
    assert f["ofi"] == -10.824 and f["ofi_levels"] == [-10.824, 7.953]  # lot decimals (3)
    assert f["total_bid_volume"] == 22.708 and f["total_ask_volume"] == 109.823
    assert f["mid_price"] == 61800.15 and f["spread"] == 0.1
    assert f["spread_bps"] == 0.01618 and f["imbalance"] == -0.2809  # 4 significant digits
    assert f["imbalance_l1"] == 0.0
    assert f["depth_delta"] == 0.0 and "-0.0" not in encode(noisy_frame(), BTC).decode()
    assert f["depth_weighted_price"] == {"bid": 61799.812, "ask": 61800.497}
    assert f["depth_weighted_mid"] == 61800.154
    assert f["slope"] == {"bid": 65.33, "ask": 192.0}
    # The book's levels are its tick prices and the exchange's quantities: at their
    # decimals already, written as held (test_a_frame_from_the_real_recording_... checks).
    assert f["bid_levels"] == [[61800.1, 1.196], [61800.0, 0.097]]
    assert f["timestamp"] == 1795830276.196997 and f["sync"]["last_message_age_s"] == 0.009
    assert f["walls"] == [{"side": "bid", "price": 61800.0, "size": 10.868, "multiple": 167.2, "age_s": 6.0}]
    assert f["heatmap"] == {"bin0": 30899, "bin_size": 2.0, "sizes": [1.903, 0.0]}
    assert f["trades"][0] == {"ts": 1795830275.939214, "price": 61800.1, "qty": 0.023, "side": "buy", "nq": 0.022}
    assert f["feed"] == {"lag_ms": 49.2}  # as the monitor wrote it
    a = f["alerts"][0]
    assert (a["size"], a["notional"], a["peak_notional"], a["score"]) == (10.868, 671642.4, 671642.4, 671626.0)
    assert (a["distance_bps"], a["depth_share"], a["multiple"], a["age_s"]) == (0.02427, 0.4786, 167.2, 6.0)
    assert a["events"] == [{"ts": 1795830276.0, "status": "born", "price": 61800.0, "size": 10.868}]


def test_decimals_follow_the_symbol() -> None:
    frame = noisy_frame()
    frame.microprice = 2681.2863033353635
    frame.spread = 2681.29 - 2681.28  # 0.010000000000218279
    eth = to_dict(frame, ETH)
    assert eth["microprice"] == 2681.2863 and eth["spread"] == 0.01


def test_the_frame_itself_keeps_full_precision() -> None:
    frame = noisy_frame()
    before = msgspec.json.encode(frame)
    encode(frame, BTC)
    assert msgspec.json.encode(frame) == before
    assert frame.microprice == 61800.15361754229 and frame.alerts[0].size == 10.868000000000002
    assert frame.trades[0].ts == 1795830275.9392141
    # Without decimals nothing is rounded (tests and tools that want the raw values).
    assert to_dict(frame)["ofi"] == -10.823999999999998


def test_rounding_twice_changes_nothing() -> None:
    once = rounded(noisy_frame(), BTC)
    assert msgspec.json.encode(rounded(once, BTC)) == msgspec.json.encode(once)


def test_round_mapping_rounds_only_the_named_keys() -> None:
    got = round_mapping({"qty": 0.0970000000000002, "bps": 0.01317548864279329, "size": 2.0000000001},
                        {"qty": QTY, "bps": RATIO}, BTC)
    assert got == {"qty": 0.097, "bps": 0.01318, "size": 2.0000000001}


def decimals_in(x: float) -> int:
    text = repr(x)
    assert "e" not in text, text
    return len(text.split(".")[1].rstrip("0")) if "." in text else 0


def test_a_frame_from_the_real_recording_has_no_float_noise(btc_file: Path) -> None:
    from bench.alert_rate import frames_of

    frames = []
    for frame, _feats in frames_of(btc_file):
        frames.append(orjson.loads(encode(frame, BTC)))
        if len(frames) == 20:
            break
    assert len(frames) == 20
    for f in frames:
        prices = [p for p, _ in f["bid_levels"] + f["ask_levels"]] + [f["best_bid"], f["best_ask"], f["spread"]]
        assert max(decimals_in(p) for p in prices) <= 1
        qtys = [q for _, q in f["bid_levels"] + f["ask_levels"]] + [f["ofi"], f["total_bid_volume"],
                                                                    f["total_ask_volume"], *f["heatmap"]["sizes"]]
        assert max(decimals_in(q) for q in qtys) <= 3
        for derived in (f["mid_price"], f["microprice"], f["depth_weighted_mid"], *f["depth_weighted_price"].values()):
            assert decimals_in(derived) <= 3
        for ratio in (f["imbalance"], f["spread_bps"], *f["slope"].values()):
            assert len(re.sub(r"^[-0.]+", "", repr(ratio)).replace(".", "")) <= 4, ratio
    # The noise was there before: the same numbers unrounded have more digits.
    raw: list[Any] = []
    for frame, _feats in frames_of(btc_file):
        raw.append(orjson.loads(encode(frame)))
        if len(raw) == 20:
            break
    assert any(decimals_in(f["microprice"]) > 3 for f in raw)
    assert any(decimals_in(q) > 3 for f in raw for q in f["heatmap"]["sizes"])


def test_large_and_small_magnitudes_keep_their_rule() -> None:
    frame = noisy_frame()
    # Beyond 2**42 once scaled, the decimals are taken by round() itself: 1.2e10 BTC at 3 decimals.
    frame.heatmap = Binned(bin0=0, bin_size=2.0, sizes=[12345678901.234567, 1.9029999999999998])
    frame.imbalance, frame.spread_bps = -0.000123456789, 123456.789
    frame.slope = BidAsk(bid=1.23456789e20, ask=-9.87654321e-12)
    f = to_dict(frame, BTC)
    assert f["heatmap"]["sizes"] == [12345678901.235, 1.903]
    assert (f["imbalance"], f["spread_bps"]) == (-0.0001235, 123500.0)
    assert f["slope"] == {"bid": 1.235e20, "ask": -9.877e-12}
