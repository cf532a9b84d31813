"""Settings of the simulated exchange, defaults in one place."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from config import DEFAULT_SYMBOL_SPECS, SymbolSpec

# Symbols without a configured spec trade at this generic tick/lot and price.
GENERIC_SPEC = SymbolSpec(0.01, 0.01, 2, 2, 20)
GENERIC_MID_PRICE = 100.0
DEFAULT_MID_PRICES: dict[str, float] = {"btcusdt": 97_000.0, "ethusdt": 3_500.0}


@dataclass(frozen=True, slots=True)
class SimConfig:
    """Everything the simulated exchange can be told at start."""

    symbols: tuple[str, ...] = ("btcusdt", "ethusdt")
    seed: int = 1
    speed: float = 1.0  # simulated seconds per wall second
    start_ms: int | None = None  # simulated clock at start; None = wall clock now
    warmup_s: float = 60.0  # simulated seconds run before serving (book shape, undo log)
    truth_window_s: float = 60.0  # how far back /sim/book?update_id= can rebuild
    weight_budget_1m: int = 2400
    ping_interval_s: float = 180.0
    pong_timeout_s: float = 600.0
    lifetime_s: float = 86_400.0
    max_streams: int = 1024  # per connection, as Binance allows
    max_client_msgs_per_s: int = 10
    send_queue: int = 20_000  # messages queued per connection before it is dropped as too slow
    # Calm and volatile periods: "auto" alternates them (the product), "calm" or
    # "volatile" holds one (tests that only need a quiet market ask for "calm").
    regime: str = "auto"
    episodes: bool = True
    wall_every_s: tuple[float, float] = (60.0, 120.0)
    layering_every_s: tuple[float, float] = (60.0, 120.0)
    withdrawal_every_s: tuple[float, float] = (60.0, 120.0)
    first_episode_after_s: tuple[float, float] = (20.0, 60.0)
    # Kinds of episode to run (None: every registered kind, see episodes.register) and
    # the seconds between two episodes of a kind without a <kind>_every_s field here.
    episode_kinds: tuple[str, ...] | None = None
    episode_every_s: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    episode_gap_s: float = 10.0  # quiet time between two episodes of one symbol
    # Answer every REST request and websocket handshake with HTTP 451, as Binance
    # does from a restricted location.
    restricted_location: bool = False
    # exchangeInfo status per symbol (TRADING when absent): SETTLING, BREAK, ...
    symbol_status: Mapping[str, str] = field(default_factory=dict)
    mid_prices: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_MID_PRICES))
    symbol_specs: Mapping[str, SymbolSpec] = field(default_factory=lambda: dict(DEFAULT_SYMBOL_SPECS))


def spec_for(cfg: SimConfig, symbol: str) -> SymbolSpec:
    """The tick/lot spec of ``symbol``: configured, else the contract table's, else
    the generic one."""
    from exchange_sim.contracts import BY_SYMBOL

    symbol = symbol.lower()
    spec = cfg.symbol_specs.get(symbol)
    if spec is not None:
        return spec
    contract = BY_SYMBOL.get(symbol)
    return contract.spec if contract is not None else GENERIC_SPEC


def mid_price_for(cfg: SimConfig, symbol: str) -> float:
    """The starting price of ``symbol``: configured, else the contract table's, else 100."""
    from exchange_sim.contracts import BY_SYMBOL

    symbol = symbol.lower()
    if symbol in cfg.mid_prices:
        return cfg.mid_prices[symbol]
    contract = BY_SYMBOL.get(symbol)
    return contract.price if contract is not None else GENERIC_MID_PRICE
