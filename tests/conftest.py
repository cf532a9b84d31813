"""Shared test fixtures: where the real recordings are."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
# Not LIQ_DATA_DIR: that one is the product's data directory (--data-dir).
DATA_DIR = Path(os.environ.get("LIQ_TEST_RECORDINGS", REPO.parent / "shared" / "data" / "binance-usdm"))
BTC_FILE = DATA_DIR / "btcusdt_20240808.gz"
ETH_FILE = DATA_DIR / "ethusdt_20240808.gz"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The files holding a browser or slow test first, each file's tests in their own
    order. `make test` runs two workers that take whole files (`-n 2 --dist loadfile`)
    in this order: the long files start early and the short ones fill the end."""
    heavy = {item.path for item in items if item.get_closest_marker("browser") or item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in heavy)  # stable


@pytest.fixture(scope="session")
def btc_file() -> Path:
    assert BTC_FILE.exists(), f"real recording missing: {BTC_FILE}"
    return BTC_FILE


@pytest.fixture(scope="session")
def eth_file() -> Path:
    assert ETH_FILE.exists(), f"real recording missing: {ETH_FILE}"
    return ETH_FILE


class FrameSchemaCheck:
    """Every frame the suite's in-process publishers encode is validated against the
    JSON Schema generated from features.frame.Frame (the one served at
    /schema/frame.json); failures are kept and fail the session."""

    def __init__(self) -> None:
        import jsonschema_rs

        from features.frame import json_schema

        self.validator = jsonschema_rs.validator_for(json_schema())
        self.checked = 0
        self.failures: list[str] = []

    def check(self, encoded: bytes) -> None:
        import orjson

        self.checked += 1
        errors = [e.message for e in self.validator.iter_errors(orjson.loads(encoded))]
        if errors and len(self.failures) < 20:
            self.failures.append("; ".join(errors[:3]))


@pytest.fixture(scope="session", autouse=True)
def frames_follow_the_schema() -> Iterator[FrameSchemaCheck]:
    import api.publisher

    check = FrameSchemaCheck()
    original = api.publisher.encode_frame

    def encode_and_check(frame: Any, *args: Any) -> bytes:
        encoded = original(frame, *args)
        check.check(encoded)
        return encoded

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(api.publisher, "encode_frame", encode_and_check)
        yield check
    assert not check.failures, f"{len(check.failures)} frame(s) of {check.checked} break the schema: {check.failures}"
