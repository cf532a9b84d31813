"""Where a symbol's tick and lot come from: exchangeInfo, a recording's filters
line, or, failing both, inference from the prices it printed. Never a guess: a
symbol does not run with a made-up 1e-8 tick."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from config import SymbolSpec
from data_ingestion.recording import SymbolFiltersLine
from data_ingestion.rest import SymbolFilters
from orderbook.tick_inference import infer_step

log = logging.getLogger("specs")

DEFAULT_BIN_TICKS = 10  # heatmap / profile bin of a symbol without a configured one


def _with_bin_of(symbol: str, tick: float, step: float, pdec: int, qdec: int, configured: SymbolSpec | None,
                 source: str) -> SymbolSpec:
    """A spec at ``tick``; the configured heatmap bin keeps its width in price."""
    if configured is None:
        return SymbolSpec(tick, step, pdec, qdec, DEFAULT_BIN_TICKS)
    if (configured.tick_size, configured.lot_size) != (tick, step):
        log.warning("%s: %s says tick %g, step %g; configured tick %g, step %g: using the %s's",
                    symbol, source, tick, step, configured.tick_size, configured.lot_size, source)
    bin_ticks = max(1, round(configured.heatmap_bin_ticks * configured.tick_size / tick))
    return SymbolSpec(tick, step, pdec, qdec, bin_ticks)


def spec_from_filters(symbol: str, f: SymbolFilters, configured: SymbolSpec | None) -> SymbolSpec:
    """The exchange's filters as a spec; a warning where they differ from the configured ones."""
    return _with_bin_of(symbol, f.tick_size, f.step_size, f.price_decimals, f.qty_decimals, configured,
                        "exchangeInfo")


def spec_from_line(line: SymbolFiltersLine, configured: SymbolSpec | None) -> SymbolSpec:
    symbol = line.symbol.lower()
    return _with_bin_of(symbol, float(line.tick_size), float(line.step_size), line.price_decimals,
                        line.qty_decimals, configured, "recording's filters line")


def spec_inferred(symbol: str, prices: Iterable[str], qtys: Iterable[str],
                  configured: SymbolSpec | None) -> SymbolSpec | None:
    """The tick and step the printed strings show (logged), or None without prices."""
    tick = infer_step(prices)
    if tick is None:
        return None
    step = infer_step(qtys)
    if step is None:
        step_size, qdec, shown = 10.0 ** -3, 3, "0.001 (no quantities seen)"
    else:
        step_size, qdec, shown = step.step, step.decimals, step.describe()
    log.info("%s: tick inferred from the prices: %s; step: %s", symbol, tick.describe(), shown)
    return _with_bin_of(symbol, tick.step, step_size, tick.decimals, qdec, configured, "inference")


def filters_line(symbol: str, spec: SymbolSpec, f: SymbolFilters | None, source: str) -> SymbolFiltersLine:
    """The line the recorder writes at the head of each file of ``symbol``."""
    return SymbolFiltersLine(
        symbol=symbol.upper(),
        tick_size=f"{spec.tick_size:.{spec.price_decimals}f}",
        step_size=f"{spec.lot_size:.{spec.qty_decimals}f}",
        price_decimals=spec.price_decimals,
        qty_decimals=spec.qty_decimals,
        price_precision=f.price_precision if f is not None else None,
        quantity_precision=f.quantity_precision if f is not None else None,
        source=source,
    )
