"""The screener's rows rebuilt from a recording of its streams (the ``_market``
pseudo-symbol of the data directory, data_ingestion/market.py): the same
:class:`MarketState` fed the same raw messages at their receive times gives the
same rows at the same frame times."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from data_ingestion.recording import read_recording
from features.rounding import Decimals
from screener.market import MarketState

SYMBOLS_LINE = b'{"screenerSymbols"'  # head of the line naming the watched symbols and their decimals


def symbols_line(symbols: dict[str, Decimals]) -> bytes:
    """The recording's line naming the watched symbols (at start and on each change):
    ``{"screenerSymbols": {"btcusdt": [price decimals, qty decimals], ...}}``."""
    return orjson.dumps({"screenerSymbols": {s: [d.price, d.qty] for s, d in sorted(symbols.items())}})


def apply_symbols_line(state: MarketState, payload: bytes) -> None:
    listed = orjson.loads(payload)["screenerSymbols"]
    for sym in list(state.symbols):
        if sym not in listed:
            state.drop(sym)
    for sym, (price, qty) in listed.items():
        state.watch(sym, Decimals(int(price), int(qty)))


def replay_rows(paths: Iterable[str | os.PathLike[str]], frame_times_ns: Sequence[int], state: MarketState,
                focus: Iterable[str] = ()) -> list[dict[str, Any]]:
    """Feed ``state`` the recorded messages and build the rows at each of
    ``frame_times_ns`` (each frame takes the messages received up to its time); the
    last frame's rows."""
    messages = iter(read_recording(paths, report=False))
    pending = next(messages, None)
    rows: list[dict[str, Any]] = []
    for t_ns in frame_times_ns:
        while pending is not None and pending.ts_recv_ns <= t_ns:
            if pending.raw.startswith(SYMBOLS_LINE):
                apply_symbols_line(state, pending.raw)
            else:
                state.on_raw(pending.raw, pending.ts_recv_ns)
            pending = next(messages, None)
        rows = state.rows(t_ns // 1_000_000, focus)
    return rows
