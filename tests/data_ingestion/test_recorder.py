"""The segment recorder on real files: members per minute, segments per hour, the
index, checkpoints at every member head, a restart never writing into an old file,
a full disk (an injected write error), two writers, bad paths, retention."""

from __future__ import annotations

import errno
import gzip
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import data_ingestion.recorder as recorder_module
from data_ingestion.recorder import (
    HOUR_NS,
    MINUTE_NS,
    PAUSED,
    RECORDING,
    DataDirLocked,
    Recorder,
    RecorderError,
)
from data_ingestion.recording import (
    CHECKPOINT,
    FILTERS,
    BookCheckpointLine,
    ReadStats,
    SymbolFiltersLine,
    decode_payload,
    index_path,
    read_index,
    read_member,
    read_recording,
    segment_name,
    segments_of,
)
from tests.stack import running_stack
from tests.waiting import wait_until

SYM = "btcusdt"
# 2025-11-26T23:59:30Z: thirty seconds before an hour (and a day) boundary.
START_NS = 1_764_201_600 * 1_000_000_000 - 30 * 1_000_000_000
FILTERS_LINE = SymbolFiltersLine(symbol="BTCUSDT", tick_size="0.1", step_size="0.001", price_decimals=1,
                                 qty_decimals=3).encode()


def message(i: int) -> bytes:
    return b'{"stream":"btcusdt@test","data":{"i":%d}}' % i


class FakeClock:
    """Monotonic seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingProvider:
    """A checkpoint provider: a one-level book whose update id is the number of
    messages written so far (so each member's checkpoint is known)."""

    def __init__(self) -> None:
        self.u = 0
        self.calls = 0

    def __call__(self, symbol: str) -> bytes:
        self.calls += 1
        return BookCheckpointLine(symbol=symbol.upper(), last_update_id=self.u, event_time_ms=0,
                                  bids=[("100.0", "1.5")], asks=[("100.1", "2.0")]).encode()


def messages_of(data_dir: Path, stats: ReadStats | None = None) -> list[tuple[int, bytes]]:
    """(ns, raw) of every message of SYM in the data directory, head lines left out."""
    return [(m.ts_recv_ns, m.raw) for m in read_recording(segments_of(data_dir, SYM), stats)
            if m.kind not in (FILTERS, CHECKPOINT)]


def write_span(rec: Recorder, first: int, count: int, step_ns: int, flush_every: int = 3,
               provider: CountingProvider | None = None) -> list[tuple[int, bytes]]:
    written = []
    for i in range(first, first + count):
        ts = START_NS + i * step_ns
        if provider is not None:
            provider.u = i
        rec.write(SYM, ts, message(i))
        written.append((ts, message(i)))
        if (i + 1) % flush_every == 0:
            rec.flush()
    return written


@pytest.fixture
def opened() -> Iterator[Callable[..., Recorder]]:
    """Recorders made by the test, closed at its end (their locks released)."""
    made: list[Recorder] = []

    def make(data_dir: Path, **kwargs: object) -> Recorder:
        rec = Recorder(data_dir, **kwargs)  # type: ignore[arg-type]
        made.append(rec)
        return rec

    yield make
    for rec in made:
        rec.close()


# --- layout, members, index, checkpoints ---------------------------------------------------------
def test_a_member_per_minute_a_segment_per_hour_and_the_index_matches_the_members(
    tmp_path: Path, opened: Callable[..., Recorder]
) -> None:
    rec = opened(tmp_path)
    rec.set_filters(SYM, FILTERS_LINE)
    provider = CountingProvider()
    rec.set_checkpoint_provider(provider)
    written = write_span(rec, 0, 1200, 7 * 10**9, provider=provider)  # 7 s apart: 2 h 20 min
    rec.close()

    segments = segments_of(tmp_path, SYM)
    firsts = [written[0][0]] + [ts for (prev, _), (ts, _) in zip(written, written[1:], strict=False)
                                if ts // HOUR_NS != prev // HOUR_NS]
    assert [p.name for p in segments] == [segment_name(SYM, ts // 10**9) for ts in firsts]
    assert segments[0].parent == tmp_path / "raw" / SYM

    members = 0
    for seg in segments:
        data = seg.read_bytes()
        entries = read_index(seg)
        assert entries and entries[0].offset == 0
        for a, b in zip(entries, entries[1:], strict=False):
            assert a.offset + a.length == b.offset  # members follow each other, nothing between
        assert entries[-1].offset + entries[-1].length == len(data)
        for e in entries:
            gzip.decompress(data[e.offset:e.offset + e.length])  # each member stands alone
            lines = list(read_member(seg, e.offset, e.length))
            assert len(lines) == e.lines
            assert lines[0].ts_recv_ns == e.t0_ns and lines[-1].ts_recv_ns == e.t1_ns
            # the head of every member: the filters line, then the checkpoint
            assert lines[0].kind == FILTERS and lines[1].kind == CHECKPOINT
            checkpoint = lines[1].data
            assert isinstance(checkpoint, BookCheckpointLine)
            assert checkpoint.last_update_id == e.checkpoint_u
            assert lines[1].ts_recv_ns == lines[2].ts_recv_ns  # stamped with the message that opened it
            first_i = int(lines[2].raw.split(b'"i":')[1].rstrip(b"}"))
            assert e.checkpoint_u == first_i  # the book as it was when the member opened
            assert len({m.ts_recv_ns // MINUTE_NS for m in lines}) == 1  # one UTC minute
            assert len(list(read_member(seg, e.offset))) == e.lines  # without a length: to the member's end
            members += 1
    assert members == provider.calls == len({ts // MINUTE_NS for ts, _ in written})
    stats = ReadStats()
    assert messages_of(tmp_path, stats) == written
    assert stats.garbage == 0 and stats.truncated == 0
    assert rec.lines_written == len(written) and rec.lines_dropped == 0


def test_a_checkpoint_provider_that_fails_or_returns_garbage_costs_only_its_line(
    tmp_path: Path, opened: Callable[..., Recorder]
) -> None:
    answers: list[object] = [ValueError("no book"), b'{"not":"a checkpoint"}', b"{\n}", None]

    def provider(symbol: str) -> bytes | None:
        answer = answers.pop(0) if answers else None
        if isinstance(answer, Exception):
            raise answer
        return answer  # type: ignore[return-value]

    rec = opened(tmp_path)
    rec.set_checkpoint_provider(provider)
    written = write_span(rec, 0, 300, MINUTE_NS // 2)
    rec.close()
    stats = ReadStats()
    assert messages_of(tmp_path, stats) == written
    assert stats.by_kind.get(CHECKPOINT, 0) == 0 and stats.garbage == 0
    assert all(e.checkpoint_u is None for seg in segments_of(tmp_path, SYM) for e in read_index(seg))


def test_checkpoint_line_round_trip() -> None:
    line = BookCheckpointLine(symbol="BTCUSDT", last_update_id=1415772332446, event_time_ms=1764201599987,
                              bids=[("96997.7", "1.599"), ("96997.6", "2.764")], asks=[("96997.8", "0.927")])
    encoded = line.encode()
    assert encoded.startswith(b'{"bookCheckpoint":{"symbol":"BTCUSDT","lastUpdateId":1415772332446,'
                              b'"E":1764201599987,"bids":[["96997.7","1.599"],')
    decoded = decode_payload(encoded)
    assert decoded is not None and decoded[0] == CHECKPOINT and decoded[2] == line


def test_a_restart_in_the_same_second_writes_a_new_file_and_never_into_the_old_one(
    tmp_path: Path, opened: Callable[..., Recorder]
) -> None:
    first = opened(tmp_path)
    run1 = write_span(first, 0, 50, 10**6)
    first.close()
    old = {p: p.read_bytes() for p in segments_of(tmp_path, SYM)}
    second = opened(tmp_path)
    run2 = write_span(second, 0, 50, 10**6)  # the same receive times: the same second
    second.close()
    segments = segments_of(tmp_path, SYM)
    assert len(segments) == 2 and segments[0] in old
    assert {p: p.read_bytes() for p in segments if p in old} == old
    assert segments[1].name == segment_name(SYM, START_NS // 10**9 + 1)  # the name moved on a second
    assert messages_of(tmp_path) == run1 + run2


# --- a full disk ---------------------------------------------------------------------------------------
class Disk:
    """The recorder's writes and cut-backs through a disk with ``free`` bytes left
    (None: room for everything). A write larger than what is left writes what fits,
    then the next one fails with ENOSPC, as a disk filling up mid-write does; a
    cut-back gives its bytes back."""

    def __init__(self) -> None:
        self.free: int | None = None
        self.refused = 0

    def write(self, fd: int, data: bytes | bytearray | memoryview) -> int:
        if self.free is None:
            return os.write(fd, data)
        if self.free == 0:
            self.refused += 1
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        n = os.write(fd, memoryview(data)[: self.free])
        self.free -= n
        return n

    def truncate(self, fd: int, length: int) -> None:
        freed = os.fstat(fd).st_size - length
        os.ftruncate(fd, length)
        if self.free is not None:
            self.free += max(0, freed)


@pytest.fixture
def disk(monkeypatch: pytest.MonkeyPatch) -> Disk:
    d = Disk()
    monkeypatch.setattr(recorder_module, "write_fd", d.write)
    monkeypatch.setattr(recorder_module, "truncate_fd", d.truncate)
    return d


def test_a_full_disk_pauses_drops_and_counts_writes_nothing_broken_and_resumes(
    tmp_path: Path, opened: Callable[..., Recorder], disk: Disk, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("INFO", logger="recorder")
    clock = FakeClock()
    rec = opened(tmp_path, retry_s=5.0, clock=clock)
    rec.set_filters(SYM, FILTERS_LINE)
    step = 10**8  # ten messages a second, flushed every third
    before = write_span(rec, 0, 3000, step)  # 5 minutes: several members, two segments

    disk.free = 700  # less than the next member's end: a short write, then ENOSPC
    during = []
    i = 3000
    while rec.state == RECORDING:
        during += write_span(rec, i, 1, step, flush_every=10**9)
        i += 1
    assert rec.state == PAUSED and rec.errors == 1 and "No space left" in (rec.last_error or "")
    assert rec.status()["segments_open"] == 0
    unflushed = rec.lines_dropped
    assert unflushed > 0  # what was compressed since the last flush is gone, and counted
    disk.free = 0  # filled again by someone else

    during += write_span(rec, i, 100, step, flush_every=10**9)  # paused: dropped and counted
    i += 100
    assert rec.lines_dropped == unflushed + 100
    for _ in range(3):  # retries while the disk is full fail quietly and leave no file behind
        clock.now += 5.0
        rec.flush()  # the retry is due: a new segment is tried...
        during += write_span(rec, i, 5, step, flush_every=10**9)
        i += 5
        rec.flush()  # ...and refused at its first flush
        assert rec.state == PAUSED
    assert rec.errors == 4 and disk.refused >= 4
    assert sum("recording paused" in r.message for r in caplog.records) == 1

    disk.free = None
    clock.now += 5.0
    rec.flush()
    after = write_span(rec, i, 300, step)
    assert rec.state == RECORDING and rec.status()["segments_open"] == 1
    assert any("recording resumed" in r.message for r in caplog.records)
    rec.close()

    stats = ReadStats()
    got = messages_of(tmp_path, stats)
    assert stats.garbage == 0 and stats.truncated == 0  # every file complete and valid
    for seg in segments_of(tmp_path, SYM):
        assert seg.stat().st_size > 0
        gzip.decompress(seg.read_bytes())  # CRCs and lengths right, to the last byte
        entries = read_index(seg)
        assert entries[-1].offset + entries[-1].length == seg.stat().st_size
    assert got[: len(before)] == before  # everything flushed before the disk filled
    assert got[len(before):] == after  # and everything after it came back; nothing unflushed
    assert rec.lines_written == len(got)
    assert rec.lines_written + rec.lines_dropped == len(before) + len(during) + len(after)


def test_when_the_disk_takes_not_even_the_trailer_the_segment_ends_at_its_last_flush(
    tmp_path: Path, opened: Callable[..., Recorder], disk: Disk
) -> None:
    rec = opened(tmp_path, clock=FakeClock())
    written = write_span(rec, 0, 30, 10**9, flush_every=1)  # all flushed, within one minute
    disk.free = 5
    rec.write(SYM, START_NS + 10 * MINUTE_NS, message(99))  # closing the member: refused after 5 bytes
    assert rec.state == PAUSED and rec.lines_dropped == 1
    rec.close()
    stats = ReadStats()
    assert messages_of(tmp_path, stats) == written  # every flushed line, nothing else
    assert stats.garbage == 0
    assert stats.truncated == 1  # cut at the flush, and said so
    assert read_index(segments_of(tmp_path, SYM)[0]) == []


# --- one writer per directory, bad paths ---------------------------------------------------------------
def test_a_second_recorder_on_the_same_directory_is_refused_in_one_clear_line(
    tmp_path: Path, opened: Callable[..., Recorder]
) -> None:
    first = opened(tmp_path)
    with pytest.raises(DataDirLocked) as refused:
        Recorder(tmp_path)
    text = str(refused.value)
    assert "\n" not in text and str(tmp_path) in text and f"pid {os.getpid()}" in text
    first.close()
    opened(tmp_path)  # free again once the first has closed


@pytest.mark.parametrize("kind", ["a file", "under a file", "in /proc"])
def test_a_path_that_cannot_be_a_data_directory_is_refused_in_one_line(tmp_path: Path, kind: str) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory")
    path = {"a file": a_file, "under a file": a_file / "data", "in /proc": Path("/proc/liq-no-such/data")}[kind]
    with pytest.raises(RecorderError) as refused:
        Recorder(path)
    assert "\n" not in str(refused.value) and str(path) in str(refused.value)


# --- retention -------------------------------------------------------------------------------------------
HOUR_START_NS = START_NS + 30 * 1_000_000_000  # on the hour


def segments_over_hours(rec: Recorder, hours: int) -> list[Path]:
    """A segment per hour (a message a minute), the last one left open."""
    for i in range(hours * 60):
        rec.write(SYM, HOUR_START_NS + i * MINUTE_NS, message(i))
    rec.flush()
    return segments_of(rec.directory, SYM)


def disk_bytes(data_dir: Path) -> int:
    return sum(p.stat().st_size for p in (data_dir / "raw").rglob("*") if p.is_file())


def test_retention_removes_segments_last_written_longer_ago_than_the_limit(
    tmp_path: Path, opened: Callable[..., Recorder]
) -> None:
    rec = opened(tmp_path, retain_s=3 * 3600.0)
    segments = segments_over_hours(rec, 6)
    assert len(segments) == 6
    now = 1_800_000_000.0
    for age_h, seg in zip(range(6, 0, -1), segments, strict=True):  # last written 6, 5, ... 1 h ago
        os.utime(seg, (now - age_h * 3600 + 60, now - age_h * 3600 + 60))
    os.utime(segments[-1], (now - 7 * 3600, now - 7 * 3600))  # the open one looks old: it stays anyway
    result = rec.enforce_retention(now_s=now)
    assert result.removed == segments[:3]  # 6, 5, 4 h old; 3 h less a minute stays
    assert segments_of(tmp_path, SYM) == segments[3:]
    assert not any(index_path(p).exists() for p in segments[:3])
    assert result.bytes_on_disk == disk_bytes(tmp_path) == rec.status()["bytes_on_disk"]


def test_retention_removes_the_oldest_segments_while_over_the_disk_budget(
    tmp_path: Path, opened: Callable[..., Recorder]
) -> None:
    rec = opened(tmp_path)
    segments = segments_over_hours(rec, 5)
    other = tmp_path / "raw" / "ethusdt" / segment_name("ethusdt", HOUR_START_NS // 10**9 + 2 * 3600 + 1)
    other.parent.mkdir()
    other.write_bytes(b"x" * 10)  # another symbol's segment, started in the third hour
    sizes = {p: p.stat().st_size + (index_path(p).stat().st_size if index_path(p).exists() else 0)
             for p in [*segments, other]}
    rec.max_disk_bytes = sum(sizes.values()) - sizes[segments[0]] - sizes[segments[1]]
    result = rec.enforce_retention()
    assert result.removed == segments[:2]  # the oldest first, until within the budget
    assert result.bytes_on_disk == rec.max_disk_bytes == disk_bytes(tmp_path)
    rec.max_disk_bytes = 1  # less than the open segment alone
    result = rec.enforce_retention()
    assert result.removed == [segments[2], other, segments[3]]  # by start time, whatever the symbol
    assert segments_of(tmp_path, SYM) == [segments[4]]  # the open one stays
    assert rec.status()["bytes_on_disk"] == disk_bytes(tmp_path)


def test_the_metric_database_counts_in_the_disk_budget_and_the_oldest_segments_make_room(
    tmp_path: Path, opened: Callable[..., Recorder]
) -> None:
    rec = opened(tmp_path)
    segments = segments_over_hours(rec, 4)
    sizes = [p.stat().st_size + index_path(p).stat().st_size for p in segments[:-1]]
    raw = disk_bytes(tmp_path)
    # The metric database and its write-ahead log, as large as the two oldest segments and a byte.
    (tmp_path / "history.sqlite").write_bytes(b"d" * (sizes[0] + 1))
    (tmp_path / "history.sqlite-wal").write_bytes(b"w" * sizes[1])
    database = sizes[0] + 1 + sizes[1]
    assert rec.status()["bytes_on_disk"] == raw + database  # the open segment's index included
    assert rec.enforce_retention().bytes_on_disk == raw + database == rec.status()["bytes_on_disk"]
    rec.max_disk_bytes = raw  # the segments alone would fit
    result = rec.enforce_retention()
    assert result.removed == segments[:3]  # two segments and a byte over: three go, oldest first
    assert (tmp_path / "history.sqlite").exists() and (tmp_path / "history.sqlite-wal").exists()
    assert result.bytes_on_disk == disk_bytes(tmp_path) + database == rec.status()["bytes_on_disk"]
    assert result.bytes_on_disk <= rec.max_disk_bytes


# --- in the running product ------------------------------------------------------------------------
async def test_a_full_disk_shows_in_health_and_metrics_and_recording_resumes_by_itself(
    tmp_path: Path, disk: Disk
) -> None:
    async with running_stack(symbols=(SYM,), history=True, data_dir=str(tmp_path), recorder_retry_s=0.2) as h:
        rec = h.stack.runtime.recorder
        assert rec is not None
        async with httpx.AsyncClient(base_url=h.api_url) as http:

            async def shown() -> dict[str, Any]:
                return (await http.get("/health")).json()["recorder"]

            await wait_until(lambda: rec.lines_written > 100, what="messages recorded")
            body = await shown()
            assert body["state"] == "recording" and body["directory"] == tmp_path.name  # its name, not its path
            assert body["segments_open"] == 1 and body["bytes_on_disk"] > 0 and body["errors"] == 0

            disk.free = 300  # the next flush fills the disk
            await wait_until(lambda: rec.state == PAUSED and rec.lines_dropped > 100, what="paused, dropping")
            body = await shown()
            assert body["state"] == "paused" and body["lines_dropped"] > 100 and body["errors"] >= 1
            assert "No space left" in body["last_error"] and body["segments_open"] == 0
            metrics = (await http.get("/metrics")).text
            assert 'liq_recorder_state{state="paused"} 1.0' in metrics
            assert "liq_recorder_lines_dropped_total" in metrics and "liq_recorder_disk_bytes" in metrics

            disk.free = None  # space again
            written = rec.lines_written
            await wait_until(lambda: rec.state == RECORDING and rec.lines_written > written + 100,
                             what="recording again")
            assert (await shown())["state"] == "recording"
            assert 'liq_recorder_state{state="recording"} 1.0' in (await http.get("/metrics")).text
    stats = ReadStats()
    kept = messages_of(tmp_path, stats)
    assert stats.garbage == 0 and stats.truncated == 0
    assert len(kept) == rec.lines_written
