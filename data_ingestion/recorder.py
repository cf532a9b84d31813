"""Every raw message recorded into a data directory, so that no crash, full disk or
second process can lose or damage what was already written.

Layout and format (docs/recording.md)::

    <data_dir>/.lock                                   held (flock) by the one process recording here
    <data_dir>/history.sqlite                          the metric history (history/store.py), counted here
    <data_dir>/raw/<symbol>/<symbol>_<YYYYMMDD>T<HHMMSS>Z.gz       a segment: one per symbol, run and UTC hour
    <data_dir>/raw/<symbol>/<symbol>_<YYYYMMDD>T<HHMMSS>Z.gz.idx   its index: a JSON line per closed member

A segment is a multi-member gzip file. A member holds the lines of one UTC minute
(by receive time) and starts with the symbol's filters line and, when a provider
gives one, a checkpoint of its book, so that each member can be read on its own.
Lines are the recording format, ``<receive time ns> <raw json>``: replay and the
audit read segments like any recording.

Why it cannot lose or damage data:

- Each run opens new segment files (``O_EXCL``): nothing is ever appended behind a
  member that a killed process left cut short.
- Every second (:meth:`Recorder.flush`) the open members are sync-flushed to the
  operating system: a kill -9 loses at most the last second. A closed member is
  fsynced before its index line is written.
- A write error (a full disk) truncates the segment back to its last good flush,
  finishes the member there (so the file stays a valid gzip file), closes every
  segment, and pauses: messages are dropped and counted, and a new segment is tried
  every ``retry_s`` seconds. Nothing broken is written and recording resumes by itself.
- A second process is refused the data directory (a non-blocking ``flock``).

Per message, :meth:`Recorder.write` only appends the line to the current member's
compressor (and a buffer written out every 64 KiB of compressed data): no system
call of its own.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import re
import struct
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config import Settings
from data_ingestion.recording import (
    HISTORY_DB_FILES,
    LOCK_FILE,
    RAW_DIR,
    IndexEntry,
    checkpoint_update_id,
    index_path,
    segment_name,
    symbol_dir,
)

log = logging.getLogger("recorder")

RECORDING = "recording"
PAUSED = "paused"  # after a write error, until a retry succeeds
OFF = "off"  # not recording (history off, a replay, or closed)
RECORDER_STATES = (RECORDING, PAUSED, OFF)

MINUTE_NS = 60_000_000_000
HOUR_NS = 3_600_000_000_000
WRITE_CHUNK = 1 << 16  # compressed bytes held before they are written out
COMPRESS_LEVEL = 6  # zlib's default: level 9 costs more CPU for a few % of disk (bench/recorder.py)
# A final, empty deflate block (fixed Huffman codes): appended after a sync flush it
# ends the deflate stream, so a member cut back to its last flush can be finished.
_FINAL_EMPTY_BLOCK = b"\x03\x00"
_SEGMENT_FILE = re.compile(r"^[a-z0-9_]+_\d{8}T\d{6}Z\.gz$")

CheckpointProvider = Callable[[str], "bytes | None"]

# Every byte of a segment goes out, and every cut back is made, through these two
# calls (the tests put a full disk behind them).
write_fd = os.write
truncate_fd = os.ftruncate


class RecorderError(Exception):
    """The data directory cannot be recorded into (said in one line)."""


class DataDirLocked(RecorderError):
    """Another process records into the data directory."""


class _Segment:
    """One open segment file of a symbol and its current gzip member."""

    __slots__ = (
        "symbol", "path", "fd", "idx_fd", "pos", "buf", "segment_end_ns",
        "comp", "member_offset", "member_end_ns", "t0_ns", "t1_ns", "lines", "messages", "crc", "size",
        "checkpoint_u", "flushed_lines", "good_offset", "good_crc", "good_size", "good_lines", "good_messages",
        "good_t1_ns",
    )

    def __init__(self, symbol: str, path: Path, fd: int, segment_end_ns: int) -> None:
        self.symbol = symbol
        self.path = path
        self.fd = fd
        self.idx_fd: int | None = None
        self.pos = 0  # bytes handed to the operating system
        self.buf = bytearray()  # compressed bytes not yet written
        self.segment_end_ns = segment_end_ns  # the next UTC hour: a message from then on opens a new segment
        self.comp: Any = None  # zlib compressor of the open member; None between members
        self.member_offset = 0
        self.member_end_ns = 0  # the next UTC minute: a message from then on opens a new member
        self.t0_ns = self.t1_ns = 0
        self.lines = 0  # lines of the member, head lines included
        self.messages = 0  # raw messages of the member
        self.crc = 0  # CRC-32 and length of the member's uncompressed data (its gzip trailer)
        self.size = 0
        self.checkpoint_u: int | None = None
        self.flushed_lines = 0
        # The member as of its last successful flush: where a failed write is cut back to.
        self.good_offset = self.good_crc = self.good_size = self.good_lines = self.good_messages = 0
        self.good_t1_ns = 0

    def append(self, line: bytes, ts_ns: int) -> None:
        """Compress one line into the member (OSError when writing out fails)."""
        out = self.comp.compress(line)
        self.crc = zlib.crc32(line, self.crc)
        self.size += len(line)
        self.lines += 1
        self.t1_ns = ts_ns
        if out:
            self.buf += out
            if len(self.buf) >= WRITE_CHUNK:
                self.drain()

    def drain(self) -> None:
        """Hand every buffered byte to the operating system (short writes retried)."""
        buf = self.buf
        while buf:
            n = write_fd(self.fd, buf)
            del buf[:n]
            self.pos += n

    def sync_flush(self) -> bool:
        """Flush the member so that everything compressed so far can be read back; note
        it as the last good point. False when there was nothing new."""
        if self.comp is None or self.flushed_lines == self.lines:
            return False
        self.buf += self.comp.flush(zlib.Z_SYNC_FLUSH)
        self.drain()
        self.flushed_lines = self.lines
        self._mark_good()
        return True

    def _mark_good(self) -> None:
        self.good_offset, self.good_crc, self.good_size = self.pos, self.crc, self.size
        self.good_lines, self.good_messages, self.good_t1_ns = self.lines, self.messages, self.t1_ns


@dataclass(slots=True)
class RetentionResult:
    """What one retention sweep removed."""

    removed: list[Path]
    bytes_removed: int
    bytes_on_disk: int  # segments and indexes left, and the metric database


class Recorder:
    """Raw messages of every symbol into segments under ``data_dir`` (see the module
    docstring). Refuses, with :class:`RecorderError`, a path that is not a writable
    directory, and with :class:`DataDirLocked` a directory another process records into.

    ``retain_s`` and ``max_disk_bytes`` bound what :meth:`enforce_retention` keeps
    (the metric database next to the segments counts in the disk budget);
    ``clock`` (monotonic seconds) paces the retries after a write error."""

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        retain_s: float = 24 * 3600.0,
        max_disk_bytes: int = 2_000_000_000,
        retry_s: float = 5.0,
        compresslevel: int = COMPRESS_LEVEL,
        clock: Callable[[], float] = time.monotonic,
        member_s: float = 60.0,
    ) -> None:
        self.directory = Path(data_dir)
        self._directory_name = self.directory.resolve().name  # "data" for ./data or /srv/x/data
        # A gzip member (and a checkpoint) per this many seconds of receive time, on
        # its boundaries: 60 s, a UTC minute; tests use a second or two.
        self.member_ns = int(member_s * 1e9) if member_s > 0 else MINUTE_NS
        self.retain_s = retain_s
        self.max_disk_bytes = max_disk_bytes
        self.retry_s = retry_s
        self.compresslevel = compresslevel
        self.clock = clock
        self._lock_fd: int | None = _lock_data_dir(self.directory)
        self._segments: dict[str, _Segment] = {}
        # The segments being written, kept until each is finished: their last member is
        # unfinished by design, not cut short. A set, so that a reader in another thread
        # (history/seek.py) can ask about one path at any time.
        self.open_paths: set[Path] = set()
        self._filters: dict[str, bytes] = {}  # symbol -> its filters line (JSON)
        self._checkpoint: CheckpointProvider | None = None
        self._checkpoint_warned: set[str] = set()
        self.state = RECORDING
        self.lines_written = 0  # raw messages in the files (counted as they are flushed)
        self.lines_dropped = 0  # raw messages lost: while paused, or not yet flushed at a write error
        self.errors = 0  # write errors, failed retries included
        self.last_error: str | None = None
        self.segments_opened = 0
        self._retry_at = 0.0
        self._paused_at: float | None = None  # clock() when the current pause began
        self._dropped_at_pause = 0
        self._last_retry_log = 0.0
        # bytes of the files not open: as of the last sweep, plus the segments closed since
        self._closed_bytes = self._disk_usage()

    # --- set-up -----------------------------------------------------------------------
    def set_filters(self, symbol: str, line: bytes) -> None:
        """The symbol's filters line (SymbolFiltersLine JSON), written at the head of
        every member, so that a reader knows the tick without guessing."""
        self._filters[symbol.lower()] = line

    def set_checkpoint_provider(self, provider: CheckpointProvider | None) -> None:
        """``provider(symbol)`` returns the JSON of a :class:`~data_ingestion.recording.BookCheckpointLine`
        of the symbol's current book (or None when it has none to give, e.g. out of
        sync); it is called as each member opens, before the member's first message,
        and its line is written second in the member, stamped with that message's time."""
        self._checkpoint = provider

    # --- the hot path -------------------------------------------------------------------
    def write(self, symbol: str, ts_ns: int, raw: bytes | str) -> None:
        """Record one raw message of ``symbol`` received at ``ts_ns`` (epoch ns)."""
        seg = self._segments.get(symbol)
        if seg is None or ts_ns >= seg.member_end_ns:
            seg = self._member_for(symbol, ts_ns)
            if seg is None:
                self.lines_dropped += 1
                return
        if isinstance(raw, str):
            raw = raw.encode()
        seg.messages += 1
        try:
            seg.append(b"%d %s\n" % (ts_ns, raw), ts_ns)
        except OSError as exc:  # this message is lost with the member's unflushed ones
            self._fail(symbol, exc)

    # --- members and segments -------------------------------------------------------------
    def _member_for(self, symbol: str, ts_ns: int) -> _Segment | None:
        """The segment of ``symbol`` with a member open for ``ts_ns``: a new member at
        a minute boundary, a new segment at an hour boundary or when none is open.
        None while paused (or closed), or when opening failed (then paused)."""
        if self.state != RECORDING:
            return None
        seg = self._segments.get(symbol)
        try:
            if seg is not None:
                if ts_ns >= seg.segment_end_ns:
                    self._close_segment(seg)
                    seg = None
                else:
                    self._close_member(seg)
            if seg is None:
                seg = self._open_segment(symbol, ts_ns)
            self._open_member(seg, ts_ns)
        except OSError as exc:
            self._fail(symbol, exc)
            return None
        return seg

    def _open_segment(self, symbol: str, ts_ns: int) -> _Segment:
        directory = symbol_dir(self.directory, symbol)
        directory.mkdir(exist_ok=True)
        start_s = ts_ns // 1_000_000_000
        # A name taken (a restart within the same second) moves the name on by a second:
        # an existing file is never written into.
        for later in range(3600):
            path = directory / segment_name(symbol, start_s + later)
            if index_path(path).exists():
                continue
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            except FileExistsError:
                continue
            break
        else:
            raise OSError(errno.EEXIST, f"no free segment name in {directory}")
        seg = _Segment(symbol, path, fd, (ts_ns // HOUR_NS + 1) * HOUR_NS)
        self._segments[symbol] = seg
        self.open_paths.add(path)
        self.segments_opened += 1
        log.info("%s: recording to %s", symbol, path)
        return seg

    def _open_member(self, seg: _Segment, ts_ns: int) -> None:
        seg.comp = zlib.compressobj(self.compresslevel, zlib.DEFLATED, 31)  # 31: gzip header and trailer
        seg.member_offset = seg.pos
        seg.member_end_ns = (ts_ns // self.member_ns + 1) * self.member_ns
        seg.t0_ns = seg.t1_ns = ts_ns
        seg.lines = seg.messages = seg.size = seg.flushed_lines = 0
        seg.crc = 0
        seg.checkpoint_u = None
        seg._mark_good()
        filters = self._filters.get(seg.symbol)
        if filters is not None:
            seg.append(b"%d %s\n" % (ts_ns, filters), ts_ns)
        checkpoint = self._checkpoint_line(seg.symbol)
        if checkpoint is not None:
            body, seg.checkpoint_u = checkpoint
            seg.append(b"%d %s\n" % (ts_ns, body), ts_ns)

    def _checkpoint_line(self, symbol: str) -> tuple[bytes, int] | None:
        provider = self._checkpoint
        if provider is None:
            return None
        try:
            body = provider(symbol)
        except Exception as exc:  # a faulty provider must not stop the recording
            self._warn_checkpoint(symbol, f"the checkpoint provider failed: {exc!r}")
            return None
        if body is None:
            return None
        u = checkpoint_update_id(body) if b"\n" not in body else None
        if u is None:
            self._warn_checkpoint(symbol, f"not a checkpoint line, not written: {body[:120]!r}")
            return None
        return body, u

    def _warn_checkpoint(self, symbol: str, what: str) -> None:
        if symbol not in self._checkpoint_warned:
            self._checkpoint_warned.add(symbol)
            log.error("%s: %s (said once)", symbol, what)

    def _close_member(self, seg: _Segment) -> None:
        """Finish the member (gzip trailer), fsync, and append its index line."""
        if seg.comp is None:
            return
        seg.buf += seg.comp.flush(zlib.Z_FINISH)
        seg.drain()
        os.fsync(seg.fd)
        seg.comp = None  # only now: until the trailer is on disk, a failure cuts the member back
        before = seg.good_messages
        seg._mark_good()
        self.lines_written += seg.good_messages - before
        self._append_index(seg, IndexEntry(seg.member_offset, seg.pos - seg.member_offset, seg.t0_ns, seg.t1_ns,
                                           seg.lines, seg.checkpoint_u))

    def _append_index(self, seg: _Segment, entry: IndexEntry) -> None:
        if seg.idx_fd is None:
            seg.idx_fd = os.open(index_path(seg.path), os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        line = memoryview(entry.encode() + b"\n")
        while line:
            line = line[write_fd(seg.idx_fd, line):]
        os.fsync(seg.idx_fd)

    def _close_segment(self, seg: _Segment) -> None:
        """Finish its member and close it (on OSError it stays open, for :meth:`_salvage`)."""
        self._close_member(seg)
        self._segments.pop(seg.symbol, None)
        self.open_paths.discard(seg.path)
        self._close_fds(seg)
        self._closed_bytes += seg.pos + _size(index_path(seg.path))

    @staticmethod
    def _close_fds(seg: _Segment) -> None:
        for fd in (seg.fd, seg.idx_fd):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        seg.idx_fd = None

    # --- errors: cut back, pause, resume ------------------------------------------------------
    def _fail(self, symbol: str, exc: OSError) -> None:
        """A write failed: every open segment is left readable and complete up to its
        last good flush, and recording pauses until the next retry."""
        self.errors += 1
        self.last_error = f"{symbol}: {exc.strerror or exc}"
        for seg in list(self._segments.values()):
            self._salvage(seg)
        self.state = PAUSED
        now = self.clock()
        self._retry_at = now + self.retry_s
        if self._paused_at is not None:  # a retry failed
            if now - self._last_retry_log >= 60.0:
                self._last_retry_log = now
                log.warning("recording still paused: %s (%d messages dropped so far); retrying every %g s",
                            self.last_error, self.lines_dropped - self._dropped_at_pause, self.retry_s)
            return
        self._paused_at = self._last_retry_log = now
        self._dropped_at_pause = self.lines_dropped
        log.error("recording paused: %s; the segments are cut back to their last good flush and closed, "
                  "messages are dropped and counted, and a new segment is tried every %g s",
                  self.last_error, self.retry_s)

    def _salvage(self, seg: _Segment) -> None:
        """Cut ``seg`` back to the end of its member's last good flush, finish the member
        there (a final empty deflate block and the gzip trailer of what was flushed),
        index it, close the files; what was not flushed is counted as dropped. When the
        disk takes not even those 10 bytes, the file stays cut exactly at the flush:
        every reader reads it up to there (and reports it cut short)."""
        self._segments.pop(seg.symbol, None)
        open_member = seg.comp is not None
        seg.comp = None
        seg.buf.clear()
        end = seg.pos
        if open_member:
            self.lines_dropped += seg.messages - seg.good_messages
            end = seg.good_offset  # the member's start when nothing of it was flushed
            try:
                truncate_fd(seg.fd, end)
                if seg.good_lines:
                    os.lseek(seg.fd, end, os.SEEK_SET)
                    seg.pos = end
                    seg.buf += _FINAL_EMPTY_BLOCK + struct.pack("<II", seg.good_crc, seg.good_size & 0xFFFFFFFF)
                    try:
                        seg.drain()
                        os.fsync(seg.fd)
                    except OSError:
                        seg.buf.clear()
                        truncate_fd(seg.fd, end)
                        raise
                    end = seg.pos
                    self._append_index(seg, IndexEntry(seg.member_offset, end - seg.member_offset, seg.t0_ns,
                                                       seg.good_t1_ns, seg.good_lines, seg.checkpoint_u))
            except OSError as exc:
                log.warning("%s: %s left cut at its last flush (%s); readers read it up to there", seg.symbol,
                            seg.path.name, exc.strerror or exc)
        self._close_fds(seg)
        self.open_paths.discard(seg.path)
        if end == 0 and not index_path(seg.path).exists():
            with contextlib.suppress(OSError):
                seg.path.unlink()
        else:
            self._closed_bytes += end

    def flush(self) -> None:
        """Called every second: sync-flush the open members (a crash then loses at most
        the last second); while paused, try again once ``retry_s`` has passed."""
        if self.state == PAUSED:
            if self.clock() >= self._retry_at:
                self.state = RECORDING  # the next message of each symbol opens a new segment
            return
        flushed = False
        for symbol, seg in list(self._segments.items()):
            before = seg.good_messages
            try:
                if seg.sync_flush():
                    flushed = True
                    self.lines_written += seg.good_messages - before
            except OSError as exc:
                self._fail(symbol, exc)
                return
        if self._paused_at is not None and flushed:  # written again since the pause
            log.info("recording resumed after %.0f s paused; %d messages dropped meanwhile",
                     self.clock() - self._paused_at, self.lines_dropped - self._dropped_at_pause)
            self._paused_at = None

    def close_symbol(self, symbol: str) -> None:
        """Finish ``symbol``'s member and segment now: a symbol no longer watched (a
        released focus symbol) gets no message that would close them at its next
        hour, so its segment is made complete, indexed and closed at once. A later
        message of the symbol opens a new segment. A write error here is one like any
        other: the segments are salvaged and recording pauses."""
        seg = self._segments.get(symbol.lower())
        if seg is None:
            return
        try:
            self._close_segment(seg)
        except OSError as exc:
            self._fail(seg.symbol, exc)
        else:
            log.info("%s: %s closed (the symbol is no longer recorded)", seg.symbol, seg.path.name)

    def close(self) -> None:
        """Finish every member and segment, then give the data directory up."""
        for seg in list(self._segments.values()):
            try:
                self._close_segment(seg)
            except OSError as exc:
                self.errors += 1
                self.last_error = f"{seg.symbol}: {exc.strerror or exc}"
                self._salvage(seg)
        self.state = OFF
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the lock
            self._lock_fd = None

    # --- retention --------------------------------------------------------------------------
    def enforce_retention(self, now_s: float | None = None) -> RetentionResult:
        """Remove the segments (and their indexes) last written more than ``retain_s``
        ago, then the oldest ones while everything takes more than ``max_disk_bytes``.
        Oldest first means by start time, across symbols; open segments stay.
        Everything is the segments, their indexes and the metric database
        (history.sqlite and its WAL files): the database is never removed here (its
        rows are bounded by its own retention, ``--retain``), so it is raw segments
        that make room for it."""
        now = time.time() if now_s is None else now_s
        open_paths = {seg.path for seg in self._segments.values()}
        found: list[tuple[str, str, Path, int, float]] = []  # (start stamp, symbol, path, bytes, mtime)
        database = self._database_bytes()
        total = database
        raw = self.directory / RAW_DIR
        for sym_entry in _scandir(raw):
            if not sym_entry.is_dir():
                continue
            for entry in _scandir(Path(sym_entry.path)):
                if not _SEGMENT_FILE.match(entry.name):
                    continue
                path = Path(entry.path)
                try:
                    st = entry.stat()
                except FileNotFoundError:
                    continue
                size = st.st_size + _size(index_path(path))
                total += size
                if path not in open_paths:
                    stamp = entry.name.rsplit("_", 1)[1]
                    found.append((stamp, sym_entry.name, path, size, st.st_mtime))
        found.sort()
        cutoff = now - self.retain_s
        removed: list[Path] = []
        freed = old = 0
        for _stamp, _sym, path, size, mtime in found:
            too_old = mtime < cutoff
            if not too_old and total <= self.max_disk_bytes:
                continue
            try:
                path.unlink()
                index_path(path).unlink(missing_ok=True)
            except OSError as exc:
                log.warning("retention: cannot remove %s: %s", path, exc.strerror or exc)
                continue
            removed.append(path)
            total -= size
            freed += size
            old += too_old
        self._closed_bytes = total - database - self._open_bytes()
        if removed:
            log.info("retention: %d segments removed (%.1f MB): %d last written more than %s ago, %d over the "
                     "disk budget of %s", len(removed), freed / 1e6, old, format_duration(self.retain_s),
                     len(removed) - old, format_size(self.max_disk_bytes))
        return RetentionResult(removed, freed, total)

    def _database_bytes(self) -> int:
        """Bytes of the metric database and its WAL files in the data directory."""
        return sum(_size(self.directory / name) for name in HISTORY_DB_FILES)

    def _disk_usage(self) -> int:
        """Bytes of the segments and indexes under the data directory."""
        total = 0
        for sym_entry in _scandir(self.directory / RAW_DIR):
            if sym_entry.is_dir():
                for entry in _scandir(Path(sym_entry.path)):
                    with contextlib.suppress(FileNotFoundError):
                        total += entry.stat().st_size
        return total

    # --- state --------------------------------------------------------------------------------
    @property
    def bytes_on_disk(self) -> int:
        """Segments, indexes and the metric database: what ``max_disk_bytes`` bounds."""
        return self._closed_bytes + self._open_bytes() + self._database_bytes()

    def _open_bytes(self) -> int:
        """Bytes of the open segments and of their indexes (which grow a line a member)."""
        return sum(seg.pos + _size(index_path(seg.path)) for seg in self._segments.values())

    def status(self) -> dict[str, Any]:
        """What /health shows under ``recorder``: the data directory by its name alone
        (``data``), never its path, which says where the machine keeps things."""
        return {
            "state": self.state,
            "directory": self._directory_name,
            "segments_open": len(self._segments),
            "lines_written": self.lines_written,
            "lines_dropped": self.lines_dropped,
            "errors": self.errors,
            "last_error": self.last_error,
            "bytes_on_disk": self.bytes_on_disk,
            "retain_s": self.retain_s,
            "max_disk_bytes": self.max_disk_bytes,
        }


def recorder_status(recorder: Recorder | None) -> dict[str, Any]:
    """The recorder's status, or the same keys saying it is off."""
    if recorder is not None:
        return recorder.status()
    return {"state": OFF, "directory": None, "segments_open": 0, "lines_written": 0, "lines_dropped": 0,
            "errors": 0, "last_error": None, "bytes_on_disk": 0, "retain_s": None, "max_disk_bytes": None}


def open_recorder(settings: Settings) -> Recorder | None:
    """The recorder the settings ask for (history on, or ``--record DIR``), its data
    directory checked and locked; None when recording is off or for a replay.
    Raises :class:`RecorderError` with a one-line reason."""
    directory = settings.recording_dir
    if not directory or settings.source == "replay":
        return None
    return Recorder(directory, settings.retain_s, settings.max_disk_bytes, settings.recorder_retry_s,
                    member_s=settings.checkpoint_interval_s)


def _lock_data_dir(directory: Path) -> int:
    """Check that ``directory`` is (or can be made) a writable directory and take its
    lock; the descriptor holding the lock. One-line RecorderError otherwise."""
    if directory.exists() and not directory.is_dir():
        raise RecorderError(f"data directory {directory}: not a directory")
    try:
        (directory / RAW_DIR).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RecorderError(f"data directory {directory}: cannot create it ({exc.strerror or exc})") from None
    lock_path = directory / LOCK_FILE
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise RecorderError(f"data directory {directory}: not writable ({exc.strerror or exc})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode("ascii", "replace").strip()
        os.close(fd)
        pid = f" (pid {holder})" if holder.isdigit() else ""
        raise DataDirLocked(f"data directory {directory} is being recorded into by another process{pid}; "
                            "stop it, or choose another directory") from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        probe = directory / RAW_DIR / f".probe-{os.getpid()}"
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644))
        probe.unlink()
    except OSError as exc:
        os.close(fd)
        raise RecorderError(f"data directory {directory}: not writable ({exc.strerror or exc})") from None
    return fd


def _scandir(path: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(path) as it:
            return list(it)
    except (FileNotFoundError, NotADirectoryError):
        return []


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def format_duration(seconds: float) -> str:
    """24 h, 90 min, 45 s: how retention is said in the log."""
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


def format_size(n: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:g} {unit}"
    return f"{n:g} B"
