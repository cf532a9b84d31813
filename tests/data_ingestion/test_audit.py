"""The audit on the real Binance recordings: the oracle of exact reconstruction."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

from data_ingestion.audit import audit_files, main
from data_ingestion.recording import DEPTH, ReadStats, read_recording
from tests.conftest import REPO


def test_btcusdt_recording_rebuilds_exactly(btc_file: Path) -> None:
    audit = audit_files([str(btc_file)])["btcusdt"]
    s = audit.summary()
    assert s["book_ticker_checks"] == 629
    assert s["mismatches"] == 0
    assert s["gaps"] == 0 and s["state"] == "synced"
    assert s["depth_events"] == 6551
    assert s["applied"] + s["dropped_before_sync"] == 6551
    # Full depth: far beyond the 1,000-level snapshot.
    assert s["bid_levels"] > 4000 and s["ask_levels"] > 4000


def test_ethusdt_recording_rebuilds_exactly(eth_file: Path) -> None:
    s = audit_files([str(eth_file)])["ethusdt"].summary()
    assert s["book_ticker_checks"] == 551
    assert s["mismatches"] == 0
    assert s["gaps"] == 0 and s["state"] == "synced"


def _lines(path: Path) -> list[bytes]:
    with gzip.open(path, "rb") as fh:
        return fh.readlines()


def _rewrite(src: Path, dst: Path, keep) -> None:
    with gzip.open(src, "rb") as fin, gzip.open(dst, "wb") as fout:
        for i, line in enumerate(fin):
            out = keep(i, line)
            if out is not None:
                fout.write(out)


def test_a_missing_depth_event_is_reported_as_a_gap(btc_file: Path, tmp_path: Path) -> None:
    # Remove the 200th depth event: the pu chain breaks there.
    count = {"depth": 0}

    def keep(_i: int, line: bytes):
        if b"depthUpdate" in line:
            count["depth"] += 1
            if count["depth"] == 200:
                return None
        return line

    broken = tmp_path / "btc_missing_event.gz"
    _rewrite(btc_file, broken, keep)
    s = audit_files([str(broken)])["btcusdt"].summary()
    assert s["gaps"] == 1 and s["resyncs"] == 1
    assert s["state"] == "resyncing"  # no later snapshot: honestly out of sync
    assert s["mismatches"] == 0  # no check was made against a book known to be wrong
    assert main([str(broken)]) == 3


def test_a_wrong_level_is_caught_as_a_mismatch(btc_file: Path, tmp_path: Path) -> None:
    # Change the quantity of the best bid in a depth event that a bookTicker names:
    # the check right after that event must fail.
    tickers: dict[int, str] = {}
    for line in _lines(btc_file):
        if b"bookTicker" in line:
            data = json.loads(line.split(b" ", 1)[1])["data"]
            tickers[data["u"]] = data["b"]
    state = {"done": False}

    def keep(_i: int, line: bytes):
        if state["done"] or b"depthUpdate" not in line:
            return line
        ts, raw = line.split(b" ", 1)
        msg = json.loads(raw)
        data = msg["data"]
        best = tickers.get(data["u"])
        for level in data["b"]:
            if best is not None and level[0] == best and float(level[1]) > 0:
                level[1] = f"{float(level[1]) + 1.0:.3f}"
                state["done"] = True
                return ts + b" " + json.dumps(msg, separators=(",", ":")).encode() + b"\n"
        return line

    corrupted = tmp_path / "btc_corrupted.gz"
    _rewrite(btc_file, corrupted, keep)
    assert state["done"]
    audit = audit_files([str(corrupted)])["btcusdt"]
    assert audit.mismatches > 0
    assert audit.first_mismatch is not None
    assert main([str(corrupted)]) == 1


def test_a_recording_split_at_a_day_boundary_reads_as_one_stream(btc_file: Path, tmp_path: Path) -> None:
    lines = _lines(btc_file)
    half = len(lines) // 2
    first, second = tmp_path / "part1.gz", tmp_path / "part2"  # second one plain text
    with gzip.open(first, "wb") as fh:
        fh.writelines(lines[:half])
    second.write_bytes(b"".join(lines[half:]))
    s = audit_files([str(first), str(second)])["btcusdt"].summary()
    assert s["book_ticker_checks"] == 629 and s["mismatches"] == 0


def test_garbage_lines_are_counted_not_fatal(tmp_path: Path, btc_file: Path) -> None:
    lines = _lines(btc_file)[:3000]
    lines.insert(10, b"this is not a message\n")
    lines.insert(20, b"123 {not json\n")
    lines.insert(30, b"456 [1,2,3]\n")
    path = tmp_path / "garbage.gz"
    with gzip.open(path, "wb") as fh:
        fh.writelines(lines)
    stats = ReadStats()
    kinds = [m.kind for m in read_recording([path], stats)]
    assert stats.garbage == 3 and stats.first_garbage == "this is not a message"
    assert kinds.count(DEPTH) > 0


def test_audit_command_prints_one_json_summary_per_symbol(btc_file: Path, eth_file: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "data_ingestion.audit", str(btc_file), str(eth_file)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    by_symbol = {r["symbol"]: r for r in rows}
    assert by_symbol["btcusdt"]["book_ticker_checks"] == 629
    assert by_symbol["ethusdt"]["book_ticker_checks"] == 551
    assert all(r["mismatches"] == 0 for r in rows)
    assert "Traceback" not in proc.stderr


def test_audit_command_on_a_missing_file_says_so(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "data_ingestion.audit", str(tmp_path / "nope.gz")],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2
    assert "cannot read" in proc.stderr and "Traceback" not in proc.stderr
