"""``/history/{symbol}/...``: what the metric history (history/store.py) holds.

* ``coverage``: the time ranges with an in-sync book, and the gaps with their reason;
* ``metrics?from=&to=&fields=&step=``: frame scalars (the book's, the depth bands,
  and the derivatives context: mark, funding, open interest, liquidations), averaged
  per step, at most a few thousand points, gaps left out (never interpolated), a
  figure unknown at the time null;
* ``alerts?from=&to=``: every alert raised in the range, oldest first;
* ``book?at=&depth=``: the book as it was at that moment, rebuilt from the raw
  recording (history/seek.py), 404 with the covered ranges when nothing was
  recorded then.

``coverage`` and ``book`` list under ``truncated`` the raw segments cut short (by
a crash; read up to their last complete line); the segments this process is
writing are not among them.

Times are seconds since the epoch (decimals allowed). Reads run in a worker thread
on their own SQLite connection: a long range never holds up ingestion.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Query

from api.errors import ApiError
from api.rest import parse_count, parse_number
from api.services import Services
from config import SymbolSpec
from history.seek import book_at, covered_ranges, members_of, truncated_of
from history.store import HistoryStore

DEFAULT_SPAN_S = 3600.0
DEFAULT_FIELDS = ("mid_price", "spread", "microprice", "imbalance", "ofi")


def add_history_routes(app: FastAPI, services: Services) -> None:
    def store_for(symbol: str) -> tuple[HistoryStore, str]:
        store = services.history
        if store is None:
            raise ApiError(404, "history is off in this process (it records unless started with --no-history)")
        sym = symbol.lower()
        if sym not in services.runtime.feeds and sym not in store.symbols():
            known = ", ".join(sorted(set(services.runtime.feeds) | set(store.symbols())))
            raise ApiError(404, f"no history of {symbol!r}; recorded: {known}")
        return store, sym

    def time_range(start: str | None, end: str | None, default_span: float) -> tuple[float, float]:
        hi = parse_number("to", end) if end is not None else time.time()
        lo = parse_number("from", start) if start is not None else hi - default_span
        if not lo < hi:
            raise ApiError(422, f"from must be before to, got from={lo:g} to={hi:g}")
        return lo, hi

    def raw_dir() -> Path:
        directory = services.settings.recording_dir
        if not directory or services.source.kind == "replay":
            raise ApiError(404, "nothing is recorded in this process (it records unless started with --no-history)")
        return Path(directory)

    def writing() -> Collection[Path]:
        """The segments this process is writing (their last member is not cut short)."""
        recorder = services.runtime.recorder
        return recorder.open_paths if recorder is not None else ()

    def spec_of(symbol: str) -> SymbolSpec:
        sym = symbol.lower()
        spec = services.runtime.specs.get(sym)
        if spec is None:
            try:
                spec = services.settings.spec(sym)
            except KeyError:
                raise ApiError(404, f"no history of {symbol!r}: its tick size is unknown here") from None
        return spec

    @app.get("/history/{symbol}/book", summary="The book at a recorded moment, rebuilt from the raw recording")
    async def book(
        symbol: str,
        at: Annotated[str, Query(description="seconds since the epoch")],
        depth: Annotated[str | None, Query(description="levels a side, 1 to 100000; all when omitted")] = None,
    ) -> dict[str, Any]:
        moment = parse_number("at", at)
        levels = None if depth is None else parse_count(depth, "depth", 1, 100_000)
        directory = raw_dir()
        sym = symbol.lower()
        spec = spec_of(sym)
        found = await asyncio.to_thread(book_at, directory, sym, spec, moment, levels, writing())
        if found is None:
            ranges = await asyncio.to_thread(lambda: covered_ranges(members_of(directory, sym, writing())))
            shown = ", ".join(f"{a:.0f}-{b:.0f}" for a, b in ranges[-5:]) or "none"
            raise ApiError(404, f"no recorded book of {sym} at {moment:.3f}; recorded: {shown}")
        return found.as_dict()

    @app.get("/history/{symbol}/coverage", summary="Time ranges with an in-sync book, and the gaps with their reason")
    async def coverage(
        symbol: str,
        start: Annotated[str | None, Query(alias="from", description="seconds since the epoch")] = None,
        end: Annotated[str | None, Query(alias="to", description="seconds since the epoch")] = None,
    ) -> dict[str, Any]:
        store, sym = store_for(symbol)
        lo = parse_number("from", start) if start is not None else None
        hi = parse_number("to", end) if end is not None else None
        body = await asyncio.to_thread(store.coverage, sym, lo, hi)
        directory = services.settings.recording_dir
        members = await asyncio.to_thread(members_of, Path(directory), sym, writing()) if directory else []
        body["book_ranges"] = covered_ranges(members)
        body["truncated"] = truncated_of(members)
        return body

    @app.get("/history/{symbol}/metrics", summary="Frame scalars over time, downsampled, gaps left out")
    async def metrics(
        symbol: str,
        start: Annotated[str | None, Query(alias="from", description="epoch seconds; default to - 1 h")] = None,
        end: Annotated[str | None, Query(alias="to", description="seconds since the epoch; default now")] = None,
        fields: Annotated[str | None, Query(description="comma-separated columns; default "
                                            + ",".join(DEFAULT_FIELDS))] = None,
        step: Annotated[str | None, Query(description="seconds per point (raised to keep at most 3000)")] = None,
    ) -> dict[str, Any]:
        store, sym = store_for(symbol)
        lo, hi = time_range(start, end, DEFAULT_SPAN_S)
        names = [f.strip() for f in fields.split(",") if f.strip()] if fields is not None else list(DEFAULT_FIELDS)
        if not names:
            raise ApiError(422, "fields: give at least one field")
        unknown = [f for f in names if f not in store.fields]
        if unknown:
            raise ApiError(422, f"unknown field(s) {', '.join(unknown)}; known: {', '.join(store.fields)}")
        step_s = parse_number("step", step) if step is not None else None
        if step_s is not None and not 0 < step_s < 1e9:
            raise ApiError(422, f"step must be a positive number of seconds, got {step!r}")
        return await asyncio.to_thread(store.series, sym, lo, hi, names, step_s)

    @app.get("/history/{symbol}/alerts", summary="Alerts raised in a time range, oldest first")
    async def alerts(
        symbol: str,
        start: Annotated[str | None, Query(alias="from", description="epoch seconds; default to - 24 h")] = None,
        end: Annotated[str | None, Query(alias="to", description="seconds since the epoch; default now")] = None,
    ) -> dict[str, Any]:
        store, sym = store_for(symbol)
        lo, hi = time_range(start, end, 24 * 3600.0)
        found = await asyncio.to_thread(store.alerts, sym, lo, hi)
        return {"symbol": sym, "from": lo, "to": hi, "alerts": found}
