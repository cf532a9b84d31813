"""The frame's one definition: docs/frames.md and the JSON Schema come from it."""

from __future__ import annotations

import jsonschema_rs
import orjson

from features.frame import Frame, SyncInfo, encode, json_schema, markdown_table, to_dict
from tests.conftest import REPO


def test_docs_frames_md_shows_the_generated_table() -> None:
    """docs/frames.md holds the table `python -m features.frame markdown` prints."""
    doc = (REPO / "docs" / "frames.md").read_text()
    assert markdown_table() in doc, "docs/frames.md is out of date: run python -m features.frame markdown"


def test_the_schema_accepts_a_frame_and_refuses_a_broken_one() -> None:
    validator = jsonschema_rs.validator_for(json_schema())
    frame = Frame(symbol="btcusdt", timestamp=1.5, ts_event_ms=None, seq=1, sync=SyncInfo(state="synced"))
    frame.bid_levels = [(100.0, 1.5)]
    body = orjson.loads(encode(frame))
    assert body["type"] == "frame" and body["bid_levels"] == [[100.0, 1.5]]
    assert validator.is_valid(body)
    for broken in ({**body, "seq": "one"}, {**body, "bid_levels": [[100.0]]}, {k: v for k, v in body.items()
                                                                               if k != "sync"},
                   {**body, "trades": [{"ts": 1.0, "price": 1.0, "qty": 1.0, "side": "up"}]}):
        assert not validator.is_valid(broken)


def test_a_frame_decodes_back_to_the_same_values() -> None:
    frame = Frame(symbol="ethusdt", timestamp=2.0, ts_event_ms=5, seq=3, sync=SyncInfo(state="quiet"),
                  mid_price=3500.05)
    assert to_dict(frame)["mid_price"] == 3500.05 and to_dict(frame)["sync"]["state"] == "quiet"


async def test_the_schema_is_served_and_the_pushed_frames_follow_it() -> None:
    import httpx
    import websockets

    from tests.stack import running_stack

    async with running_stack(symbols=("btcusdt",), push_interval_s=0.2) as h:
        await h.wait_synced()
        async with httpx.AsyncClient(base_url=h.api_url) as http:
            resp = await http.get("/schema/frame.json")
        assert resp.status_code == 200 and resp.json() == json_schema()
        validator = jsonschema_rs.validator_for(resp.json())
        async with websockets.connect(f"{h.ws_url}/ws/btcusdt", max_size=None) as ws:
            history = orjson.loads(await ws.recv())
            frames = [orjson.loads(await ws.recv()) for _ in range(3)]
        for frame in [*history["frames"], *frames]:
            assert validator.is_valid(frame), list(validator.iter_errors(frame))[:3]
        assert frames[-1]["sync"]["state"] == "synced" and frames[-1]["mid_price"] is not None
