"""The detectors catch the simulated exchange's labelled episodes, end to end.

Five simulated minutes of both symbols with frequent episodes, run in-process by
bench.detector_score: the exchange's own depth aggregation and encoding, the real
SequenceValidator + BookState from a limit-1000 snapshot, SymbolFeatures with the
aggTrades, one frame per simulated second, alerts matched against the labels.

Recall is asserted over the labels the definitions of metrics.md can catch: walls the
background flow ate before resting > 6 s are not walls, and a layering episode that
falls wholly inside the detector's 30 s cooldown after an earlier (organic) same-side
alert must stay quiet by definition. Precision is asserted against the truth: an
alert must match a scripted episode or an organic event of the exchange's true book
(the background is as heavy-tailed as the real recordings, so organic walls and
layering are real and frequent; see bench/detector_score.py).
"""

from __future__ import annotations

from typing import Any

import pytest

from bench.detector_score import KINDS, score
from exchange_sim.settings import SimConfig

pytestmark = pytest.mark.slow

FREQUENT = SimConfig(
    wall_every_s=(20.0, 30.0),
    layering_every_s=(20.0, 30.0),
    withdrawal_every_s=(20.0, 30.0),
    first_episode_after_s=(5.0, 10.0),
    episode_gap_s=8.0,
)


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    return score(5.0, ("btcusdt", "ethusdt"), seed=7, sim_config=FREQUENT)


def test_the_client_stays_in_sync(report: dict[str, Any]) -> None:
    for symbol, sync in report["sync"].items():
        assert sync["state"] == "synced", symbol
        assert sync["gaps"] == 0 and sync["resyncs"] == 0, symbol


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_of_episode_is_caught(report: dict[str, Any], kind: str) -> None:
    k = report["kinds"][kind]
    assert k["labels"] >= 2, k
    assert k["labels"] - k["masked_by_cooldown"] >= 2, k
    assert k["recall_unmasked"] >= 0.8, (k, [m for m in report["misses"] if m["kind"] == kind])
    if kind != "layering":  # only layering has a cooldown that can mask an episode
        assert k["recall"] >= 0.8, k


@pytest.mark.parametrize("kind", KINDS)
def test_alerts_are_justified_by_the_true_book(report: dict[str, Any], kind: str) -> None:
    k = report["kinds"][kind]
    assert k["alerts"] >= k["caught"]
    assert k["precision_truth"] >= 0.7, (k, [a for a in report["false_alarms"] if a["type"] == k["alert"]])


def test_wall_removals_mostly_agree_with_how_the_wall_ended(report: dict[str, Any]) -> None:
    w = report["kinds"]["wall_removed"]
    assert w["removals_found"] >= 2
    assert w["agreement"] >= 0.7, w
