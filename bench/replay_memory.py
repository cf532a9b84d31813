"""Replay memory against the ratio of price to tick.

Records the simulated market for a high-priced symbol (about 50,000 at a 0.1 tick),
a low-priced one (about 0.001 at a 1e-7 tick) and BTCUSDT for the same simulated
time, removes the filters line from each capture (so the tick must be inferred,
as for another tool's capture), then replays each file in a fresh process and
reads its RSS once the replay has finished.

    python -m bench.replay_memory [--seconds 120]
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from config import SymbolSpec
from data_ingestion.recording import segments_of

SYMBOLS: dict[str, tuple[SymbolSpec, float]] = {
    "btcusdt": (SymbolSpec(0.1, 0.001, 1, 3, 20), 97_000.0),
    "hiusdt": (SymbolSpec(0.1, 0.001, 1, 3, 10), 50_000.0),
    "lousdt": (SymbolSpec(0.0000001, 1.0, 7, 0, 10), 0.001),
}


async def _record(directory: Path, seconds: float, speed: float) -> None:
    from api.assembly import Stack
    from api.services import SourceInfo
    from config import load_settings
    from exchange_sim import SimConfig, SimExchange

    specs = {s: spec for s, (spec, _mid) in SYMBOLS.items()}
    sim = SimExchange(SimConfig(symbols=tuple(SYMBOLS), speed=speed, warmup_s=30.0, symbol_specs=specs,
                                mid_prices={s: mid for s, (_spec, mid) in SYMBOLS.items()}))
    urls = await sim.start("127.0.0.1", 0, 0)
    settings = load_settings(environ={}, source="sim", symbols=tuple(SYMBOLS), rest_base_url=urls.rest_base_url,
                             ws_public_url=urls.ws_public_url, ws_market_url=urls.ws_market_url, api_port=0,
                             dashboard=False, record_dir=str(directory), symbol_specs={})
    stack = Stack(settings, SourceInfo("sim", "SIMULATED market", "replay memory benchmark"))
    try:
        await stack.start()
        await asyncio.sleep(seconds / speed)
    finally:
        await stack.stop()
        await sim.stop()


def _strip_filters(segments: list[Path]) -> Path:
    """The segments of one symbol as one capture without its filters lines."""
    out = segments[0].with_name("nofilters_" + segments[0].name)
    with gzip.open(out, "wb") as fout:
        for path in segments:
            with gzip.open(path, "rb") as fin:
                for line in fin:
                    if b'{"symbolFilters"' not in line:
                        fout.write(line)
    return out


async def _replay_one(path: str) -> dict[str, Any]:
    import psutil

    from api.assembly import Stack
    from api.services import SourceInfo
    from config import load_settings

    settings = load_settings(environ={}, source="replay", replay_files=(path,), replay_speed=0.0, api_port=0,
                             dashboard=False, symbol_specs={})
    stack = Stack(settings, SourceInfo("replay", "REPLAY", "replay memory benchmark"), replay_files=[path])
    await stack.start()
    try:
        while not (stack.runtime.replay and stack.runtime.replay.finished):
            await asyncio.sleep(0.05)
        publisher = stack.publisher
        assert publisher is not None
        for _ in range(200):  # frames over the final book: heatmap, profile, detectors
            publisher.tick()
        feed = next(iter(stack.runtime.feeds.values()))
        return {"rss_mb": round(psutil.Process().memory_info().rss / 2**20, 1), "tick": feed.spec.tick_size,
                "messages": stack.runtime.replay.messages if stack.runtime.replay else 0,
                "in_sync": feed.in_sync}
    finally:
        await stack.stop()


def bench_replay_memory(seconds: float = 120.0, speed: float = 4.0) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        asyncio.run(_record(directory, seconds, speed))
        out: dict[str, Any] = {}
        for sym in SYMBOLS:
            capture = _strip_filters(segments_of(directory, sym))
            run = subprocess.run([sys.executable, "-m", "bench.replay_memory", "--one", str(capture)],
                                 capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parent.parent)
            res = json.loads(run.stdout.strip().splitlines()[-1])
            for key, value in res.items():
                out[f"{sym}.{key}"] = value
        base = out["btcusdt.rss_mb"]
        for sym in ("hiusdt", "lousdt"):
            out[f"{sym}.rss_vs_btcusdt"] = round(out[f"{sym}.rss_mb"] / base, 3)
        return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.replay_memory", description=__doc__)
    p.add_argument("--seconds", type=float, default=120.0, help="simulated seconds recorded per symbol")
    p.add_argument("--one", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one:
        print(json.dumps(asyncio.run(_replay_one(args.one))))
        return 0
    for key, value in bench_replay_memory(args.seconds).items():
        print(f"{key:<28} {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
