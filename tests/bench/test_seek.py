"""bench.seek on a few simulated minutes in ten-second members: the recording it
builds is what a live run records (a snapshot, depth events in an unbroken
U/u/pu chain, a checkpoint at each member head once the feed is in sync), every
book sought equals the book rebuilt from the start of the recording, the check
catches a book that is not, and a second run reuses the build."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.seek import (
    BUILD_FILE,
    SYMBOL,
    check_against_rebuild,
    compare,
    draw_moments,
    main,
    rebuilt_from_start,
    run,
    seek_all,
)
from config import DEFAULT_SYMBOL_SPECS
from data_ingestion.recording import SNAPSHOT, ReadStats, read_recording, segments_of
from history.seek import members_of
from wire.binance import DepthUpdate

HOURS = 100 / 3600  # a hundred simulated seconds
MEMBER_S = 10.0
SEED = 3
SPEC = DEFAULT_SYMBOL_SPECS[SYMBOL]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("seek")
    figures = run(data_dir, HOURS, seeks=4, checks=4, seed=SEED, member_s=MEMBER_S)
    assert figures["reused_build"] is False and figures["checked_equal"] == figures["checked"] == 4
    return data_dir


def test_the_build_is_a_recording_as_a_live_run_makes_it(built: Path) -> None:
    stats = ReadStats()
    messages = list(read_recording(segments_of(built, SYMBOL), stats))
    assert stats.garbage == 0 and stats.truncated == 0 and stats.by_kind[SNAPSHOT] == 1
    depth = [m.data for m in messages if isinstance(m.data, DepthUpdate)]
    assert len(depth) >= 950  # ten a second
    assert all(b.prev_final_update_id == a.final_update_id for a, b in zip(depth, depth[1:], strict=False))
    times = [m.ts_recv_ns for m in messages]
    assert times == sorted(times) and (times[-1] - times[0]) / 1e9 == pytest.approx(100, abs=0.5)
    members = members_of(built, SYMBOL)
    assert len(members) >= 10
    assert members[0].checkpoint_u is None  # the feed was not in sync yet
    assert all(m.checkpoint_u is not None for m in members[1:])


def test_every_sought_book_equals_the_book_rebuilt_from_the_start(built: Path) -> None:
    members = members_of(built, SYMBOL)
    checkpointed = [m for m in members if m.checkpoint_u is not None]
    moments = draw_moments(members, 6, SEED + 1)
    moments += [checkpointed[1].t0_ns / 1e9, checkpointed[2].t1_ns / 1e9, members[-1].t1_ns / 1e9]
    sought = seek_all(built, moments, SPEC)
    assert all(b.state == "synced" and b.events_applied > 0 for b in sought.books[:6])
    comparisons = check_against_rebuild(built, sought.books, SPEC)
    assert [c.what for c in comparisons] == [""] * len(moments)
    assert all(c.equal and min(c.levels) > 1000 for c in comparisons)


def test_the_check_sees_a_book_that_is_not_the_one_at_its_moment(built: Path) -> None:
    members = members_of(built, SYMBOL)
    a, b = sorted(draw_moments(members, 2, SEED + 2))
    books = seek_all(built, [a], SPEC).books
    rebuilt = rebuilt_from_start(built, [b], SPEC)
    (wrong,) = compare(books, {a: rebuilt[b]})
    assert not wrong.equal and "update id" in wrong.what


def test_a_second_run_reuses_the_build(built: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--out", str(built), "--hours", str(HOURS), "--member-s", str(MEMBER_S), "--seed", str(SEED)]
    assert main([*args, "--seeks", "3", "--check", "1"]) == 0
    out = capsys.readouterr().out
    assert "reused_build                     True" in out
    assert "1 of 1 books equal to the rebuild from the start" in out
    assert (built / BUILD_FILE).exists()
    with pytest.raises(SystemExit, match="holds a build of"):
        main(["--out", str(built), "--hours", "1", "--member-s", str(MEMBER_S), "--seed", str(SEED)])
