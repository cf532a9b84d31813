"""Recorder benchmark: disk per symbol per hour and CPU per message, at the real
recordings' message rate.

Every line of ../shared/data/binance-usdm's BTCUSDT and ETHUSDT recordings (about
345 s each, every stream the product records: depth, bookTicker, trades, snapshots)
goes through :class:`data_ingestion.recorder.Recorder` with its receive time, a
flush at each recorded second as the runtime does, into a temporary data directory.
Twice: without checkpoints, and with a checkpoint of the whole rebuilt book (every
level, as the audit's sync rules rebuild it) at the head of each member, once a
minute. Disk per hour is the segments' bytes (indexes included) over the recorded
span; CPU is the process time of the write loop (flushes and member closes, fsync
included) over the messages, best of ``--runs``; the checkpoints' own building is
done beforehand and not counted (it is the provider's cost, not the recorder's).

    python -m bench.recorder [--runs 3] [--level 6]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config import DEFAULT_SYMBOL_SPECS
from data_ingestion.audit import SymbolAudit
from data_ingestion.recorder import COMPRESS_LEVEL, MINUTE_NS, Recorder
from data_ingestion.recording import BookCheckpointLine, read_recording, symbol_of

REPO = Path(__file__).resolve().parent.parent
RECORDINGS = REPO.parent / "shared" / "data" / "binance-usdm"
FILES = {"btcusdt": RECORDINGS / "btcusdt_20240808.gz", "ethusdt": RECORDINGS / "ethusdt_20240808.gz"}


@dataclass(slots=True)
class Capture:
    symbol: str
    lines: list[tuple[int, bytes]]  # (receive ns, raw json) in file order
    checkpoints: dict[int, bytes]  # index of the message opening a member -> the checkpoint before it
    source_bytes: int  # the original file's size

    @property
    def span_s(self) -> float:
        return (self.lines[-1][0] - self.lines[0][0]) / 1e9


def load(symbol: str, path: Path) -> Capture:
    """The recording in memory, and the book's checkpoint at each minute boundary of
    its receive times (rebuilt through the audit's sync rules)."""
    spec = DEFAULT_SYMBOL_SPECS[symbol]
    audit = SymbolAudit.create(symbol, spec.tick_size)
    lines: list[tuple[int, bytes]] = []
    checkpoints: dict[int, bytes] = {}
    minute = None
    for msg in read_recording([path]):
        if symbol_of(msg) not in (None, symbol):
            continue
        if msg.ts_recv_ns // MINUTE_NS != minute:
            minute = msg.ts_recv_ns // MINUTE_NS
            checkpoints[len(lines)] = checkpoint_of(audit, spec.price_decimals, spec.qty_decimals)
        lines.append((msg.ts_recv_ns, msg.raw))
        audit.on_message(msg)
    return Capture(symbol, lines, checkpoints, path.stat().st_size)


def checkpoint_of(audit: SymbolAudit, price_decimals: int, qty_decimals: int) -> bytes:
    book = audit.book
    bids = [(f"{book.price(k):.{price_decimals}f}", f"{q:.{qty_decimals}f}") for k, q in reversed(book.bids.items())]
    asks = [(f"{book.price(k):.{price_decimals}f}", f"{q:.{qty_decimals}f}") for k, q in book.asks.items()]
    return BookCheckpointLine(symbol=audit.symbol.upper(), last_update_id=book.last_update_id, event_time_ms=0,
                              bids=bids, asks=asks).encode()


def record(capture: Capture, with_checkpoints: bool, level: int) -> dict[str, float]:
    """One pass of the capture through a recorder; CPU and wall time of the loop, bytes written."""
    with tempfile.TemporaryDirectory(prefix="liq-bench-rec-") as tmp:
        rec = Recorder(tmp, compresslevel=level)
        current = {"i": 0}
        if with_checkpoints:
            rec.set_checkpoint_provider(lambda _sym: capture.checkpoints.get(current["i"]))
        sym = capture.symbol
        write = rec.write
        last_second = None
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for i, (ts, raw) in enumerate(capture.lines):
            current["i"] = i
            write(sym, ts, raw)
            if ts // 1_000_000_000 != last_second:
                last_second = ts // 1_000_000_000
                rec.flush()
        rec.close()
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        size = sum(p.stat().st_size for p in (Path(tmp) / "raw").rglob("*") if p.is_file())
        members = sum(1 for p in (Path(tmp) / "raw").rglob("*.idx") for _ in p.open())
    return {"cpu_s": cpu, "wall_s": wall, "bytes": size, "members": members}


def bench_recorder(runs: int = 3, level: int = COMPRESS_LEVEL) -> dict[str, Any]:
    out: dict[str, Any] = {"compress_level": level}
    for symbol, path in FILES.items():
        capture = load(symbol, path)
        n = len(capture.lines)
        out[f"{symbol}.messages_per_s"] = round(n / capture.span_s, 1)
        out[f"{symbol}.original_mb_per_h"] = round(capture.source_bytes / capture.span_s * 3600 / 1e6, 1)
        for label, with_cp in (("plain", False), ("checkpoints", True)):
            best = min((record(capture, with_cp, level) for _ in range(runs)), key=lambda r: r["cpu_s"])
            out[f"{symbol}.{label}.mb_per_h"] = round(best["bytes"] / capture.span_s * 3600 / 1e6, 1)
            out[f"{symbol}.{label}.cpu_us_per_msg"] = round(best["cpu_s"] / n * 1e6, 2)
            out[f"{symbol}.{label}.cpu_pct_of_core"] = round(100 * best["cpu_s"] / capture.span_s, 2)
            out[f"{symbol}.{label}.members"] = best["members"]
        sizes = [len(c) for c in capture.checkpoints.values()]
        out[f"{symbol}.checkpoint_kb"] = round(max(sizes) / 1e3, 1)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.recorder", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=3, help="passes per case; the least CPU counts")
    p.add_argument("--level", type=int, default=COMPRESS_LEVEL, help="zlib compression level")
    args = p.parse_args(argv)
    for key, value in bench_recorder(args.runs, args.level).items():
        print(f"{key:<40} {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
