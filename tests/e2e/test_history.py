"""History as a user meets it: ``python main.py`` records into its data directory;
kill -9 and a restart lose nothing that was on disk; a second process on the same
directory, or a data directory that cannot be one, is refused in one line with exit
code 2 before anything starts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from data_ingestion.recording import CHECKPOINT, FILTERS, ReadStats, read_index, read_recording, segments_of
from tests.conftest import REPO
from tests.e2e.test_main import Proc, assert_stopped_cleanly
from tests.waiting import CEILING_S, wait_until_sync

SYMS = ("btcusdt", "ethusdt")


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    for p in started:
        p.kill()


def recorded(data_dir: Path, stats: ReadStats | None = None) -> dict[str, list[tuple[int, bytes]]]:
    """(receive ns, raw) of every message recorded, per symbol, in order."""
    stats = stats if stats is not None else ReadStats()
    return {sym: [(m.ts_recv_ns, m.raw) for m in read_recording(segments_of(data_dir, sym), stats)
                  if m.kind not in (FILTERS, CHECKPOINT)] for sym in SYMS}


def test_kill_9_then_a_restart_keeps_everything_that_was_on_disk(procs: list[Proc], tmp_path: Path) -> None:
    data = tmp_path / "data"
    args = ("--source", "sim", "--no-dashboard", "--data-dir", str(data))
    first = Proc(*args)
    procs.append(first)
    first.wait_health("healthy")
    wait_until_sync(lambda: all(len(v) > 200 for v in recorded(data).values()), CEILING_S, "messages on disk")
    on_disk = recorded(data)  # read while it runs: what a crash must not take away
    first.popen.send_signal(signal.SIGKILL)
    first.popen.wait()

    stats = ReadStats()
    after_kill = recorded(data, stats)
    assert stats.garbage == 0
    for sym in SYMS:
        assert after_kill[sym][: len(on_disk[sym])] == on_disk[sym]
    killed = {p: p.read_bytes() for sym in SYMS for p in segments_of(data, sym)}

    second = Proc(*args)  # the same directory: the lock died with the first process
    procs.append(second)
    second.wait_health("healthy")
    wait_until_sync(lambda: all(len(v) > len(after_kill[s]) + 200 for s, v in recorded(data).items()),
                    CEILING_S, "the second run's messages on disk")
    assert_stopped_cleanly(*second.interrupt())

    stats = ReadStats()
    final = recorded(data, stats)
    assert stats.garbage == 0 and stats.truncated <= len(SYMS)  # only the killed run's last members
    assert {p: p.read_bytes() for p in killed} == killed  # never written into again
    for sym in SYMS:
        assert final[sym][: len(after_kill[sym])] == after_kill[sym]
        new = [p for p in segments_of(data, sym) if p not in killed]
        assert new
        for p in new:  # closed cleanly: complete, indexed to the last byte
            entries = read_index(p)
            assert entries and entries[-1].offset + entries[-1].length == p.stat().st_size


def test_a_second_process_on_the_same_data_directory_exits_2_in_one_line(procs: list[Proc], tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = Proc("--source", "sim", "--no-dashboard", "--data-dir", str(data))
    procs.append(first)
    first.wait_health("healthy")
    proc = subprocess.run(
        [sys.executable, "main.py", "--source", "sim", "--no-dashboard", "--api-port", "0", "--data-dir", str(data)],
        cwd=REPO, capture_output=True, text=True, timeout=CEILING_S,
        env={k: v for k, v in os.environ.items() if not k.startswith("LIQ_")},
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert str(data) in lines[0] and "another process" in lines[0] and f"pid {first.popen.pid}" in lines[0]
    assert "simulated exchange up" not in proc.stderr  # refused before anything started
    assert_stopped_cleanly(*first.interrupt())


@pytest.mark.parametrize("flag", ["--data-dir", "--record"])
@pytest.mark.parametrize("kind", ["a file", "under a file"])
def test_a_data_directory_that_cannot_be_one_exits_2_in_one_line(tmp_path: Path, flag: str, kind: str) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    path = a_file if kind == "a file" else a_file / "data"
    proc = subprocess.run(
        [sys.executable, "main.py", "--source", "sim", "--no-dashboard", "--api-port", "0", flag, str(path)],
        cwd=REPO, capture_output=True, text=True, timeout=CEILING_S,
        env={k: v for k, v in os.environ.items() if not k.startswith("LIQ_")},
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith("error: data directory") and str(path) in lines[0] and flag in lines[0]
