"""kill -9 of a process recording, then a restart into the same directory: nothing
flushed before the kill is lost, the killed run's files are never written into
again, and everything of the second run reads back.

The child is a real process driving the Recorder as the runtime does: messages,
and a flush every few of them (the runtime's one-second cadence). After each flush
it prints how many messages it has written, so the parent knows a lower bound of
what must survive without timing anything."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from data_ingestion.recorder import HOUR_NS
from data_ingestion.recording import FILTERS, ReadStats, read_index, read_recording, segments_of
from tests.conftest import REPO

SYM = "btcusdt"
START_NS = 1_764_201_600 * 1_000_000_000 - 60 * 1_000_000_000  # a minute before an hour boundary
STEP_NS = 250_000_000  # four messages a "second"

CHILD = """
import sys
from data_ingestion.recorder import Recorder
from data_ingestion.recording import SymbolFiltersLine

data_dir, first, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rec = Recorder(data_dir)
rec.set_filters("btcusdt", SymbolFiltersLine(symbol="BTCUSDT", tick_size="0.1", step_size="0.001",
                                             price_decimals=1, qty_decimals=3).encode())
i = first
while count < 0 or i < first + count:
    rec.write("btcusdt", {start} + i * {step}, b'{{"stream":"btcusdt@test","data":{{"i":%d}}}}' % i)
    i += 1
    if i % 4 == 0:  # a second of messages
        rec.flush()
        print(i, flush=True)  # every message before i is in the files
rec.close()
print("closed", flush=True)
"""


def child(data_dir: Path, first: int, count: int) -> subprocess.Popen[str]:
    code = CHILD.format(start=START_NS, step=STEP_NS)
    return subprocess.Popen([sys.executable, "-c", code, str(data_dir), str(first), str(count)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})


def numbers(data_dir: Path, stats: ReadStats) -> list[int]:
    """The ``i`` of every message read back, in order."""
    out = []
    for m in read_recording(segments_of(data_dir, SYM), stats):
        if m.kind != FILTERS:
            assert m.ts_recv_ns == START_NS + m.data["i"] * STEP_NS  # type: ignore[index]
            out.append(m.data["i"])  # type: ignore[index]
    return out


def test_kill_9_loses_nothing_flushed_and_a_restart_writes_its_own_segments(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = child(data_dir, 0, -1)  # runs until killed
    assert first.stdout is not None
    flushed = 0
    for line in first.stdout:
        flushed = int(line)
        if flushed >= 16_000:  # past the hour boundary (message 240): two segments, many members
            break
    assert flushed >= 16_000, first.stderr.read() if first.stderr else ""
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert first.returncode == -signal.SIGKILL

    stats = ReadStats()
    run1 = numbers(data_dir, stats)
    assert run1 == list(range(len(run1)))  # complete lines only, in order, none missing
    assert len(run1) >= flushed  # everything flushed before the kill is there
    assert stats.garbage == 0 and stats.truncated <= 1  # at most the member being written was cut
    killed = {p: p.read_bytes() for p in segments_of(data_dir, SYM)}
    assert len(killed) >= 2

    # The restart: the next messages, into the same directory, closed cleanly.
    second = child(data_dir, len(run1), 8_000)
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0 and out.rstrip().endswith("closed"), err

    assert {p: p.read_bytes() for p in killed} == killed  # the killed run's files untouched
    new = [p for p in segments_of(data_dir, SYM) if p not in killed]
    assert new and all(p.name > max(k.name for k in killed) for p in new)
    stats = ReadStats()
    both = numbers(data_dir, stats)
    assert both == list(range(len(run1) + 8_000))
    assert stats.garbage == 0 and stats.truncated <= 1
    assert not any(t.startswith(tuple(p.name for p in new)) for t in stats.truncated_files)
    for p in new:  # the second run's segments are complete and fully indexed
        entries = read_index(p)
        assert entries[0].offset == 0 and entries[-1].offset + entries[-1].length == p.stat().st_size
        assert all(e.t1_ns < (e.t0_ns // HOUR_NS + 1) * HOUR_NS for e in entries)
