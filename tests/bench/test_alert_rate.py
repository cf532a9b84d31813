"""bench.alert_rate on the real recordings: its counts are the frames' own, and the
README reports what it computes."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from bench.alert_rate import rates, replay
from config import Settings
from tests.conftest import REPO

FLOOR = Settings().alert_min_notional_usdt
ROW = re.compile(r"(\d+): \**([0-9.]+) / min")


@pytest.fixture(scope="module")
def figures(btc_file: Path, eth_file: Path) -> dict[str, tuple[Any, dict[str, Any]]]:
    out = {}
    for path in (btc_file, eth_file):
        r = replay(path)
        out[r.symbol] = (r, rates(r, FLOOR))
    return out


@pytest.mark.parametrize("symbol", ["btcusdt", "ethusdt"])
def test_the_counts_are_the_frames_own(figures: dict[str, tuple[Any, dict[str, Any]]], symbol: str) -> None:
    r, x = figures[symbol]
    assert x["minutes"] == round(r.frames / 60, 2) and r.frames > 300  # 344 s in sync: one frame a second
    assert x["detector"] == {k: Counter(a.type for a in r.detections)[k]
                             for k in ("WALL", "WALL_REMOVED", "LAYERING", "EXHAUSTION")}
    assert x["detector_alerts"] == x["detector"]["WALL"] + x["detector"]["LAYERING"] + x["detector"]["EXHAUSTION"]
    assert x["alerts"] == len(r.alerts) <= x["detector_alerts"]
    assert x["alerts_filtered"] == sum(1 for a in r.alerts.values() if (a.peak_notional or 0) >= FLOOR)
    assert all(not a.live or a.ts == max(b.ts for b in r.alerts.values()) for a in r.alerts.values())


def test_the_readme_reports_what_the_script_computes(figures: dict[str, tuple[Any, dict[str, Any]]]) -> None:
    readme = (REPO / "README.md").read_text()
    assert "python -m bench.alert_rate" in readme
    for symbol, (r, x) in figures.items():
        row = next(ln for ln in readme.splitlines() if ln.startswith(f"| {symbol.upper()} | ") and "/ min" in ln)
        cells = [ROW.search(c) for c in row.split("|")[2:6]]
        assert all(cells), row
        counts = (sum(x["detector"].values()), x["detector_alerts"], x["alerts"], x["alerts_filtered"])
        for m, count in zip(cells, counts, strict=True):
            assert m is not None
            shown = m.group(2)
            decimals = len(shown.split(".")[1]) if "." in shown else 0
            per_min = count * 60 / r.frames
            assert (int(m.group(1)), float(shown)) == (count, round(per_min, decimals)), (symbol, row, per_min)
