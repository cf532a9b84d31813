"""Names on the bus, shards and the --bus URL: pure functions."""

from __future__ import annotations

import pytest

from bus.connection import parse_bus_url
from bus.errors import BusUnavailable
from bus.subjects import is_token, parse_shard, shard_symbols

MARKET = ("solusdt", "btcusdt", "xrpusdt", "ethusdt", "bnbusdt")


def test_shards_split_the_sorted_symbols_without_overlap() -> None:
    shards = [shard_symbols(MARKET, f"{i}/3") for i in (1, 2, 3)]
    assert shards == [("bnbusdt", "solusdt"), ("btcusdt", "xrpusdt"), ("ethusdt",)]
    assert sorted(s for shard in shards for s in shard) == sorted(MARKET)
    assert shard_symbols(("ethusdt", "btcusdt"), "1/2") == ("btcusdt",)  # the given order does not matter
    assert shard_symbols(("btcusdt", "ethusdt"), "2/2") == ("ethusdt",)


@pytest.mark.parametrize("text", ["0/2", "3/2", "1", "a/b", "1/0", "/2", ""])
def test_a_bad_shard_says_what_is_expected(text: str) -> None:
    with pytest.raises(ValueError, match="--shard must be i/n"):
        parse_shard(text)


def test_bus_urls_are_checked_before_any_connection() -> None:
    assert parse_bus_url("nats://10.0.0.2:4222") == ["nats://10.0.0.2:4222"]
    assert parse_bus_url("nats://a:4222, nats://b:4222") == ["nats://a:4222", "nats://b:4222"]
    for bad, why in [("10.0.0.2:4222", "must be nats://"), ("http://h:4222", "must be nats://"),
                     ("nats://h", "no port"), ("nats://h:99999", "not a URL"), ("nats://h:4222/x", "path"),
                     ("", "give the NATS server")]:
        with pytest.raises(BusUnavailable, match=why):
            parse_bus_url(bad)


def test_tokens_exclude_what_a_subject_cannot_hold() -> None:
    assert is_token("btcusdt") and is_token("ingest-1") and is_token("1000pepeusdt")
    for bad in ("a.b", "a*", ">", "a b", "", "x" * 65):
        assert not is_token(bad)
