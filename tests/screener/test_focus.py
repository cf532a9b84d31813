"""Promotion and release: POST /focus/{symbol} gives a screener symbol a full-depth
exact book (equal to the exchange's true book once in sync), served like a start
symbol; the set is bounded (409 when every member is watched); a promoted symbol
nobody watches for --focus-idle seconds is released: its book, sockets and tasks
stopped. Start symbols are never released."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import orjson
import psutil
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from data_ingestion.recording import DEPTH, ReadStats, index_path, read_index, read_recording, segments_of
from exchange_sim.protocol import StreamKey
from tests.stack import book_mismatches, running_stack
from tests.waiting import wait_until


async def test_promote_to_a_synced_full_book_then_release_after_idle() -> None:
    async with running_stack(symbols=("btcusdt",), screener=True, sim_market="20", sim_config={"warmup_s": 5.0},
                             focus_max=3, focus_idle_s=2.0) as h:
        focus = h.stack.focus
        assert focus is not None
        # Idle time stands still until the release is what is tested (a loaded machine
        # must not release a symbol between its promotion and its first client).
        frozen = time.monotonic()
        focus.clock = lambda: frozen
        runtime = h.stack.runtime
        await wait_until(lambda: h.stack.screener is not None and h.stack.screener.frames > 0, what="a screener frame")
        async with httpx.AsyncClient(base_url=h.api_url) as c:
            r = await c.post("/focus/ethusdt", headers={"origin": "https://elsewhere.example"})
            assert r.status_code == 403 and "ethusdt" not in runtime.feeds  # another site's page starts nothing
            r = await c.post("/focus/nosuchusdt")
            assert r.status_code == 404 and "nosuchusdt" in r.json()["error"]
            r = await c.post("/focus/ETHUSDT")
            assert r.status_code == 200
            body = r.json()
            assert body["symbol"] == "ethusdt" and body["state"] in ("syncing", "synced")
            assert body["focus"] == ["btcusdt", "ethusdt"]
            assert "ethusdt" in (await c.get("/symbols")).json()["symbols"]
            await h.wait_synced(symbols=("ethusdt",))
            again = (await c.post("/focus/ethusdt")).json()  # idempotent
            assert again == {"symbol": "ethusdt", "state": "synced", "focus": ["btcusdt", "ethusdt"]}
            h.sim.pause()
            try:
                await h.settled("ethusdt")
                assert book_mismatches(h.feed("ethusdt"), h.sim) == []
            finally:
                h.leave_clean()
            assert (await c.get("/book/ethusdt", params={"depth": "5"})).status_code == 200
            screener = h.stack.screener
            assert screener is not None
            await wait_until(lambda: any(r["symbol"] == "ethusdt" and r["focus"] for r in screener.rows),
                             what="the ethusdt row marked focus")

            assert (await c.post("/focus/solusdt")).status_code == 200  # the set is full now: 3
            async with connect(h.ws_url + "/ws/ethusdt") as eth, connect(h.ws_url + "/ws/solusdt") as sol:
                assert orjson.loads(await eth.recv())["type"] == "history"
                assert orjson.loads(await sol.recv())["type"] == "history"
                r = await c.post("/focus/xrpusdt")
                assert r.status_code == 409 and "full" in r.json()["error"]
                assert sorted(runtime.feeds) == ["btcusdt", "ethusdt", "solusdt"]
            # nobody watches them now: released after 2 s; the start symbol stays
            focus.clock = time.monotonic
            depth_key = StreamKey("ethusdt", "depth", 100)
            await wait_until(lambda: focus.releases == 2, what="both promoted symbols released")
            assert focus.promoted == [] and sorted(runtime.feeds) == ["btcusdt"]
            assert h.stack.publisher is not None
            assert "ethusdt" not in h.stack.publisher.buffers and "ethusdt" not in h.stack.features
            await wait_until(lambda: not h.sim.hub.has(depth_key), what="ethusdt's depth stream closed")
            assert not [t for t in runtime.tasks.running if "ethusdt" in t or "solusdt" in t]
            assert not [c.name for c in runtime.connections if "ethusdt" in c.name]
            assert (await c.get("/symbols")).json()["symbols"] == ["btcusdt"]
            async with connect(h.ws_url + "/ws/ethusdt") as ws:
                with pytest.raises(ConnectionClosed):
                    await ws.recv()
                assert ws.close_code == 1008
            # promoted again, it syncs again
            assert (await c.post("/focus/xrpusdt")).status_code == 200
            await h.wait_synced(symbols=("xrpusdt",))


def open_files() -> set[str]:
    """The files this process holds open now (the recorder writes in the test's process)."""
    return {os.path.realpath(f.path) for f in psutil.Process().open_files()}


async def test_a_released_symbol_s_segment_is_closed_complete_at_once(tmp_path: Path) -> None:
    async with running_stack(symbols=("btcusdt",), screener=True, sim_market="20", sim_config={"warmup_s": 5.0},
                             focus_idle_s=1.0, record_dir=str(tmp_path)) as h:
        focus = h.stack.focus
        recorder = h.stack.runtime.recorder
        assert focus is not None and recorder is not None
        frozen = time.monotonic()
        focus.clock = lambda: frozen  # not released before it has recorded something
        await wait_until(lambda: h.stack.screener is not None and h.stack.screener.frames > 0, what="a screener frame")
        async with httpx.AsyncClient(base_url=h.api_url) as c:
            assert (await c.post("/focus/ethusdt")).status_code == 200
        await h.wait_synced(symbols=("ethusdt",))
        recorder.flush()
        [segment] = segments_of(tmp_path, "ethusdt")
        path = os.path.realpath(segment)
        # While promoted the segment is written into: open, its member unfinished (a
        # reader of the file as it is finds it cut short).
        assert path in open_files()
        before = ReadStats()
        depth_before = sum(m.kind == DEPTH for m in read_recording([segment], before, report=False))
        assert depth_before > 0 and before.truncated == 1

        focus.clock = time.monotonic
        await wait_until(lambda: focus.releases == 1, what="ethusdt released")
        # Released: nothing of it is open any more and the file is complete.
        assert path not in open_files() and os.path.realpath(index_path(segment)) not in open_files()
        assert recorder.status()["segments_open"] == 2  # btcusdt and the market's: still recording
        assert segments_of(tmp_path, "ethusdt") == [segment]
        after = ReadStats()
        messages = list(read_recording([segment], after, report=False))
        assert after.truncated == 0 and after.truncated_files == []
        assert sum(m.kind == DEPTH for m in messages) >= depth_before
        # indexed to its last byte: every line of the file in a closed member
        entries = read_index(segment)
        assert entries and entries[-1].offset + entries[-1].length == segment.stat().st_size
        assert sum(e.lines for e in entries) == after.lines
