"""Reading what a crash leaves: a segment or a real recording cut at any byte is read
up to its last complete line and reported, by the reader, the audit and a replay,
never failing. And the real recordings re-recorded into segments (checkpoint lines
at every member head) audit exactly like the originals."""

from __future__ import annotations

import gzip
import itertools
import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from data_ingestion.audit import audit_files
from data_ingestion.recorder import Recorder
from data_ingestion.recording import (
    BOOK_KINDS,
    CHECKPOINT,
    DEPTH,
    FILTERS,
    BookCheckpointLine,
    ReadStats,
    read_index,
    read_member,
    read_member_until,
    read_recording,
    segments_of,
)
from tests.conftest import REPO
from tests.data_ingestion.test_record_replay import replay_books

SYM = "btcusdt"
START_NS = 1_764_201_600 * 1_000_000_000 + 15 * 1_000_000_000


def _messages(paths: list[Path], stats: ReadStats) -> list[tuple[int, bytes]]:
    return [(m.ts_recv_ns, m.raw) for m in read_recording(paths, stats) if m.kind not in (FILTERS, CHECKPOINT)]


def test_a_segment_cut_at_any_byte_reads_up_to_its_last_complete_line(tmp_path: Path) -> None:
    rec = Recorder(tmp_path / "data")
    written: list[tuple[int, bytes]] = []
    flushed: list[tuple[int, int]] = []  # (file size after a flush, messages flushed by then)
    segment: Path | None = None
    for i in range(2400):  # ten a second for four minutes: five members
        ts = START_NS + i * 10**8
        raw = b'{"stream":"btcusdt@test","data":{"i":%d,"pad":"%s"}}' % (i, b"%x" % (i * 2654435761 % 2**32))
        rec.write(SYM, ts, raw)
        written.append((ts, raw))
        if (i + 1) % 10 == 0:
            rec.flush()
            segment = segment or segments_of(tmp_path / "data", SYM)[0]
            flushed.append((segment.stat().st_size, i + 1))
    rec.close()
    assert segment is not None
    data = segment.read_bytes()
    entries = read_index(segment)
    assert len(entries) == 5
    boundaries = {e.offset + e.length for e in entries}
    cuts = set(range(1, len(data), len(data) // 89)) | {1, 2, 9, 10, 11, len(data) - 1}
    for e in entries:
        cuts |= {e.offset + 1, e.offset + 12, e.offset + e.length - 4, e.offset + e.length}  # header, trailer
    cut_dir = tmp_path / "cut"
    cut_dir.mkdir()
    for cut in sorted(cuts):
        cut_file = cut_dir / segment.name
        cut_file.write_bytes(data[:cut])
        stats = ReadStats()
        got = _messages([cut_file], stats)
        assert got == written[: len(got)], cut  # a prefix: nothing invented, nothing reordered
        assert stats.garbage == 0, cut
        saved = max((n for size, n in flushed if size <= cut), default=0)
        assert len(got) >= saved, f"cut at {cut}: {len(got)} messages read, {saved} had been flushed"
        assert stats.truncated == (0 if cut in boundaries else 1), cut
        if stats.truncated:
            assert stats.truncated_files[0].startswith(segment.name)
        for e in entries:  # members read alone through the index, the one cut included
            if e.offset < cut:
                lines = list(read_member(cut_file, e.offset, e.length))
                whole = e.offset + e.length <= cut
                assert len(lines) == e.lines if whole else len(lines) <= e.lines  # (a cut trailer loses no line)


@pytest.fixture(scope="module")
def btc_cut(btc_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real BTCUSDT recording cut at 60 % of its bytes, as a crash leaves a file."""
    data = btc_file.read_bytes()
    path = tmp_path_factory.mktemp("cut") / btc_file.name
    path.write_bytes(data[: len(data) * 6 // 10])
    return path


def test_the_real_recording_cut_short_reads_to_its_last_complete_line(btc_file: Path, tmp_path: Path) -> None:
    full = [(m.ts_recv_ns, m.kind) for m in read_recording([btc_file])]
    data = btc_file.read_bytes()
    for share in (0.1, 0.5, 0.9):
        cut = tmp_path / btc_file.name
        cut.write_bytes(data[: int(len(data) * share)])
        stats = ReadStats()
        got = [(m.ts_recv_ns, m.kind) for m in read_recording([cut], stats)]
        assert got == full[: len(got)] and 0 < len(got) < len(full)
        assert stats.truncated == 1 and stats.garbage == 0
    with pytest.raises(EOFError), gzip.open(cut, "rb") as fh:  # what the readers used to do with such a file
        fh.read()


def test_the_audit_of_a_file_cut_short_exits_0_and_says_so(btc_cut: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "data_ingestion.audit", str(btc_cut)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["mismatches"] == 0 and summary["book_ticker_checks"] > 100
    assert len(summary["truncated_files"]) == 1 and "cut short" in summary["truncated_files"][0]
    assert "read up to its last complete line" in proc.stderr


def test_the_audit_of_a_file_with_nothing_readable_exits_2(btc_file: Path, tmp_path: Path) -> None:
    stub = tmp_path / btc_file.name
    stub.write_bytes(btc_file.read_bytes()[:100])  # the gzip header and a few bytes
    proc = subprocess.run([sys.executable, "-m", "data_ingestion.audit", str(stub)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert json.loads(proc.stdout)["error"] == "no stream messages found"


async def test_a_replay_of_a_file_cut_short_finishes_healthy(btc_cut: Path) -> None:
    stack = await replay_books([str(btc_cut)], (SYM,))
    try:
        assert stack.runtime.feeds[SYM].in_sync
        async with httpx.AsyncClient(base_url=stack.api_url) as http:
            resp = await http.get("/health")
        body = resp.json()
        assert resp.status_code == 200 and body["status"] == "healthy"
        assert body["replay"]["finished"] is True and body["replay"]["truncated_files"] == 1
        assert body["recorder"]["state"] == "off"
    finally:
        await stack.stop()


def test_the_real_recording_re_recorded_into_segments_audits_like_the_original(
    btc_file: Path, tmp_path: Path
) -> None:
    """Every line of the real file through the recorder (members at its minute
    boundaries, a checkpoint line at each head): the audit and a read give what the
    original gives."""
    rec = Recorder(tmp_path)
    heads = 0

    def checkpoint(symbol: str) -> bytes:
        nonlocal heads
        heads += 1
        return BookCheckpointLine(symbol="BTCUSDT", last_update_id=heads, event_time_ms=0, bids=[("1.0", "1.0")],
                                  asks=[("2.0", "1.0")]).encode()

    rec.set_checkpoint_provider(checkpoint)
    last_second = None
    original = list(read_recording([btc_file]))
    for msg in original:
        rec.write(SYM, msg.ts_recv_ns, msg.raw)
        if msg.ts_recv_ns // 10**9 != last_second:
            last_second = msg.ts_recv_ns // 10**9
            rec.flush()
    rec.close()
    segments = segments_of(tmp_path, SYM)
    stats = ReadStats()
    again = [m for m in read_recording(segments, stats) if m.kind != CHECKPOINT]
    assert [(m.ts_recv_ns, m.raw) for m in again] == [(m.ts_recv_ns, m.raw) for m in original]
    assert stats.by_kind[CHECKPOINT] == heads == sum(len(read_index(s)) for s in segments) > 1
    audit = audit_files([str(s) for s in segments])[SYM].summary()
    assert audit["book_ticker_checks"] == 629 and audit["mismatches"] == 0 and audit["state"] == "synced"


def test_a_member_read_until_a_moment_gives_its_book_lines_and_the_time_of_every_line(
    btc_file: Path, tmp_path: Path
) -> None:
    """The first 6,000 lines of the real recording (depth, bookTicker, trade, a
    snapshot) in ten-second members, with a bookTicker line and a depth line that do
    not decode: read until a moment, a member gives what read_member gives received
    up to the first line after that moment, book kinds only; the bookTicker and
    trade lines only give their receive time, so the undecodable bookTicker is not
    seen and the undecodable depth line is."""
    rec = Recorder(tmp_path, member_s=10.0)
    rec.set_checkpoint_provider(lambda _symbol: BookCheckpointLine(
        symbol="BTCUSDT", last_update_id=7, event_time_ms=0, bids=[("1.0", "1.0")], asks=[("2.0", "1.0")]).encode())
    bad_ticker = b'{"stream":"btcusdt@bookTicker","data":{"e":"bookTicker","u":"x"}}'
    bad_depth = b'{"stream":"btcusdt@depth@0ms","data":{"e":"depthUpdate","u":1}}'
    for i, msg in enumerate(itertools.islice(read_recording([btc_file]), 6000)):
        rec.write(SYM, msg.ts_recv_ns, msg.raw)
        if i in (1000, 4000):
            rec.write(SYM, msg.ts_recv_ns, bad_ticker)
            rec.write(SYM, msg.ts_recv_ns, bad_depth)
    rec.close()
    members = [(seg, e) for seg in segments_of(tmp_path, SYM) for e in read_index(seg)]
    assert len(members) >= 3
    for seg, e in members:
        whole = list(read_member(seg, e.offset, e.length))
        for until in (e.t0_ns - 1, e.t0_ns, (e.t0_ns + e.t1_ns) // 2, e.t1_ns - 1, e.t1_ns):
            stats = ReadStats()
            part = read_member_until(seg, e.offset, e.length, until, BOOK_KINDS, stats)
            before = list(itertools.takewhile(lambda m: m.ts_recv_ns <= until, whole))  # noqa: B023
            assert part.messages == [m for m in before if m.kind in BOOK_KINDS]
            assert part.first_ts_ns == (before[0].ts_recv_ns if before else None)
            assert part.last_ts_ns == (before[-1].ts_recv_ns if before else None)
            assert part.passed == (len(before) < len(whole))
            assert set(stats.by_kind) <= BOOK_KINDS | {FILTERS}
        part = read_member_until(seg, e.offset, e.length, e.t1_ns, frozenset({CHECKPOINT}))
        assert [m.kind for m in part.messages] == [CHECKPOINT] and part.last_ts_ns == e.t1_ns
    stats = ReadStats()
    for seg, e in members:
        read_member_until(seg, e.offset, e.length, e.t1_ns, BOOK_KINDS, stats)
    assert stats.garbage == 2 and stats.by_kind[DEPTH] > 100  # the two bad depth lines; bad tickers unseen
