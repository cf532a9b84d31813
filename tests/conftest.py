"""Shared test fixtures: where the real recordings are."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("LIQ_DATA_DIR", REPO.parent / "shared" / "data" / "binance-usdm"))
BTC_FILE = DATA_DIR / "btcusdt_20240808.gz"
ETH_FILE = DATA_DIR / "ethusdt_20240808.gz"


@pytest.fixture(scope="session")
def btc_file() -> Path:
    assert BTC_FILE.exists(), f"real recording missing: {BTC_FILE}"
    return BTC_FILE


@pytest.fixture(scope="session")
def eth_file() -> Path:
    assert ETH_FILE.exists(), f"real recording missing: {ETH_FILE}"
    return ETH_FILE
