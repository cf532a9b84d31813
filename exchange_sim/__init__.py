"""A simulated Binance USDT-M futures exchange speaking the real protocol on loopback.

See docs/exchange_sim.md. Entry points: :class:`SimExchange` (in-process) and
``python -m exchange_sim`` (standalone).
"""

from exchange_sim.episodes import Episode
from exchange_sim.exchange import SimExchange, SimUrls
from exchange_sim.faults import FAULT_PARAMS, FaultError
from exchange_sim.market import TruthUnavailable
from exchange_sim.settings import SimConfig
from exchange_sim.venue import TrueBook, UnknownSymbol

__all__ = [
    "FAULT_PARAMS",
    "Episode",
    "FaultError",
    "SimConfig",
    "SimExchange",
    "SimUrls",
    "TrueBook",
    "TruthUnavailable",
    "UnknownSymbol",
]
