"""The members of a data directory as a seek finds them: indexed members, the
unindexed tail of a segment still written (its span and checkpoint read from the
file), an index kept between calls yet followed as it grows, a segment removed by
retention forgotten; the tail of a segment cut short (and not written by this
process) marked and logged once."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from data_ingestion.recorder import Recorder
from data_ingestion.recording import BookCheckpointLine, index_path, segments_of
from history.seek import members_of, truncated_of

SYM = "btcusdt"
HOUR_NS = 3_600 * 1_000_000_000
START_NS = 1_764_201_600 * 1_000_000_000  # a whole UTC hour


def _checkpoint(u: int) -> bytes:
    return BookCheckpointLine(symbol="BTCUSDT", last_update_id=u, event_time_ms=0, bids=[("1.0", "1.0")],
                              asks=[("2.0", "1.0")]).encode()


def _write_seconds(rec: Recorder, first_ns: int, seconds: int) -> None:
    for i in range(seconds * 10):
        ts = first_ns + i * 100_000_000
        rec.write(SYM, ts, b'{"stream":"btcusdt@bookTicker","data":{"e":"bookTicker","u":%d,"b":"1.0","B":"1",'
                  b'"a":"2.0","A":"1"}}' % i)
    rec.flush()


def test_members_follow_the_index_as_it_grows_and_the_segments_that_go(tmp_path: Path) -> None:
    rec = Recorder(tmp_path, member_s=1.0)
    heads = iter(range(100, 200))
    rec.set_checkpoint_provider(lambda _symbol: _checkpoint(next(heads)))
    _write_seconds(rec, START_NS, 3)  # members of seconds 0 and 1 indexed, second 2 being written
    first = members_of(tmp_path, SYM)
    assert [m.length is None for m in first] == [False, False, True]
    tail = first[-1]
    assert tail.t0_ns == START_NS + 2 * 10**9 and tail.t1_ns == START_NS + 29 * 100_000_000
    assert [m.checkpoint_u for m in first] == [100, 101, 102]

    _write_seconds(rec, START_NS + 3 * 10**9, 2)  # the tail indexed, two more seconds
    grown = members_of(tmp_path, SYM)
    assert grown[:2] == first[:2] and len(grown) == 5
    assert grown[2].length is not None and grown[2].t1_ns == tail.t1_ns
    assert [m.checkpoint_u for m in grown] == [100, 101, 102, 103, 104]

    _write_seconds(rec, START_NS + HOUR_NS, 2)  # the next hour: a second segment
    rec.close()
    old, new = segments_of(tmp_path, SYM)
    assert {m.segment for m in members_of(tmp_path, SYM)} == {old, new}
    old.unlink()
    index_path(old).unlink()
    left = members_of(tmp_path, SYM)
    assert left and {m.segment for m in left} == {new}
    assert all(m.length is not None for m in left)


def test_the_tail_being_written_is_not_cut_and_a_cut_segment_is_reported_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rec = Recorder(tmp_path, member_s=1.0)
    _write_seconds(rec, START_NS, 3)  # the member of second 2 open, flushed, unfinished
    (live,) = segments_of(tmp_path, SYM)
    caplog.set_level(logging.WARNING)
    for _ in range(3):  # coverage polls, seeks, history clients
        members = members_of(tmp_path, SYM, rec.open_paths)
        assert members[-1].length is None and not members[-1].cut
        assert truncated_of(members) == []
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]

    # The same bytes under another run's name, no process writing them: what a kill -9 leaves.
    crashed = live.with_name(f"{SYM}_20251126T230000Z.gz")
    shutil.copyfile(live, crashed)
    shutil.copyfile(index_path(live), index_path(crashed))
    for _ in range(3):
        members = members_of(tmp_path, SYM, rec.open_paths)
        assert truncated_of(members) == [crashed.name]
        assert [m.cut for m in members if m.length is None] == [True, False]
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warned) == 1 and crashed.name in warned[0] and "cut short" in warned[0]
    rec.close()
