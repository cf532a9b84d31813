"""One typed settings object for the whole process.

Defaults live here and nowhere else. Every field can be overridden by an
environment variable named ``LIQ_<FIELD>`` (upper case), for example
``LIQ_SYMBOLS=btcusdt,solusdt`` or ``LIQ_PUSH_INTERVAL_S=0.1``; the CLI in
``main.py`` overrides both. Read once at start with :func:`load_settings`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

ENV_PREFIX = "LIQ_"


@dataclass(frozen=True, slots=True)
class SymbolSpec:
    """Exchange filters of one symbol: price tick and quantity step, with the
    decimals used to format them the way Binance does."""

    tick_size: float
    lot_size: float
    price_decimals: int
    qty_decimals: int
    heatmap_bin_ticks: int  # width of one heatmap / volume-profile price bin, in ticks


def decimals_of(tick: str | float) -> int:
    """Decimals a tick (or step) size needs, from the exchange's string or a number:
    "0.10" -> 1, "0.00100000" -> 3, "1" -> 0, 0.1 -> 1, 1e-8 -> 8, 25 -> 0.
    A float is read as its shortest repr, so 0.1 is 0.1, not 0.1000000000000000055."""
    text = tick.strip() if isinstance(tick, str) else repr(float(tick))
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"tick size must be a number, got {tick!r}") from None
    if not value.is_finite() or value <= 0:
        raise ValueError(f"tick size must be positive, got {tick!r}")
    return max(0, -int(value.normalize().as_tuple().exponent))


# Real filters of the default symbols (GET /fapi/v1/exchangeInfo). Unknown symbols
# get theirs from exchangeInfo at start-up.
DEFAULT_SYMBOL_SPECS: dict[str, SymbolSpec] = {
    "btcusdt": SymbolSpec(0.1, 0.001, 1, 3, 20),  # 2 USDT bins: 120 bins span +/- 120 USDT
    "ethusdt": SymbolSpec(0.01, 0.001, 2, 3, 10),  # 0.1 USDT bins: +/- 6 USDT
}


@dataclass(frozen=True, slots=True)
class Settings:
    # --- what to watch and from where ---------------------------------------
    symbols: tuple[str, ...] = ("btcusdt", "ethusdt")
    source: str = "auto"  # auto | binance | sim | replay
    rest_base_url: str = "https://fapi.binance.com"
    ws_public_url: str = "wss://fstream.binance.com/public"
    ws_market_url: str = "wss://fstream.binance.com/market"
    depth_stream_suffix: str = "@depth@100ms"
    snapshot_limit: int = 1000
    auto_probe_timeout_s: float = 3.0
    sim_url: str = ""  # use a simulated exchange running elsewhere (http://host:port)
    sim_seed: int = 1
    sim_speed: float = 1.0
    # Symbols the in-process simulated exchange serves besides ``symbols``: a count
    # (its most active contracts) or a comma-separated list.
    sim_market: str = ""
    # The in-process simulated exchange also runs liquidation bursts (a labelled episode
    # kind off by default in the simulator itself; the tests that need them ask for them).
    sim_liquidation_bursts: bool = True
    # Simulated seconds the in-process simulated exchange runs before it serves (its book
    # starts whole; the warm-up gives it its steady shape and a minute of history). The
    # tests that start main.py set less (LIQ_SIM_WARMUP_S): their oracles need no past.
    sim_warmup_s: float = 60.0
    replay_files: tuple[str, ...] = ()
    replay_speed: float = 1.0

    # --- history: every raw message recorded (data_ingestion/recorder.py) ------------
    history: bool = True  # record into data_dir (sim_stack.running_stack turns it off for tests)
    data_dir: str = "./data"
    record_dir: str = ""  # --record DIR: record into DIR, even with history off
    retain_s: float = 24 * 3600.0  # segments last written longer ago are removed...
    max_disk_bytes: int = 2_000_000_000  # ...and the oldest ones while the data directory holds more
    recorder_retry_s: float = 5.0  # after a write error (a full disk), a new segment is tried this often
    retention_interval_s: float = 60.0
    # A gzip member per this many seconds of a segment, each headed by a checkpoint of
    # the whole book: the most a seek into history decompresses and applies.
    checkpoint_interval_s: float = 60.0

    # --- network behaviour ----------------------------------------------------
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 30.0
    backoff_factor: float = 2.0
    backoff_jitter: float = 0.2  # +/- share of the delay
    # Liveness: after ``stale_after_s`` with no frame on a connection, ping it; only a
    # pong missing for ``pong_timeout_s`` (or a closed socket) makes it stale and
    # reconnects it. A symbol that is merely silent on a live connection is "quiet".
    stale_after_s: float = 5.0
    pong_timeout_s: float = 10.0
    ws_ping_interval_s: float = 20.0  # keepalive ping of the websocket library
    ws_ping_timeout_s: float = 60.0  # its pong timeout (a spurious one costs a full resync)
    stream_silence_warn_s: float = 30.0  # log once per stream that has sent nothing this long
    max_streams_per_connection: int = 1024  # Binance's figure
    ws_url_max_chars: int = 2000  # streams beyond this URL length are added by SUBSCRIBE
    # bookTicker cross-check: resync after this many consecutive mismatches (the
    # depth stream leaves out RPI orders; whether bookTicker does is not documented).
    ticker_mismatches_to_resync: int = 2
    ticker_check_count_only: bool = False  # count and log mismatches, never resync
    ws_max_message_bytes: int = 8 * 1024 * 1024
    http_timeout_s: float = 10.0
    rest_weight_budget_1m: int = 2400
    rest_weight_safety: float = 0.5  # never use more than this share of the budget
    first_snapshot_min_buffered: int = 2
    # --- derivatives context: liquidations, mark price and funding, open interest ---
    derivatives_streams: bool = True  # subscribe <symbol>@forceOrder and <symbol>@markPrice@1s
    open_interest_poll_s: float = 10.0  # GET /fapi/v1/openInterest this often, at low priority; 0: never

    # --- features (../shared/docs/metrics.md) ---------------------------------
    top_n: int = 10
    detector_levels: int = 20
    median_window_s: float = 30.0
    wall_multiple: float = 5.0
    wall_min_age_s: float = 5.0
    layering_multiple: float = 8.0
    layering_min_levels: int = 4
    layering_min_churn: float = 0.6
    layering_cooldown_s: float = 30.0
    exhaustion_depth_ratio: float = 0.5
    exhaustion_spread_multiple: float = 2.0
    exhaustion_window_s: float = 15.0
    ofi_window_s: float = 1.0
    # Alerts over their life (docs/metrics.md, "Alerts"): the detectors' events
    # folded into one alert per wall, layering run or exhaustion episode.
    alert_size_step: float = 1.5  # grown / shrunk: size x or / this factor since the last reported size
    alert_move_bps: float = 5.0  # a pulled wall re-posted within this distance is the same wall, moved
    alert_move_window_s: float = 2.0  # ... when the new level appeared at most this long before the pull
    alert_return_s: float = 10.0  # ... or, once it qualifies, when it was pulled at most this long ago
    alert_score_half_bps: float = 10.0  # score = notional / (1 + distance_bps / this)
    # Default of the minimum-notional filter (dashboard, GET /alerts): see README, "Alerts".
    alert_min_notional_usdt: float = 350_000.0
    depth_bands_bps: tuple[float, ...] = (5.0, 10.0, 25.0, 50.0, 100.0)
    # Derivatives context (docs/metrics.md, "Derivatives context").
    mark_stale_after_s: float = 10.0  # mark price, index, funding shown null once the last update is this old
    # A liquidation burst: forced orders on one side worth at least this much (USDT,
    # a lower bound: Binance sends the latest liquidation per symbol per second)
    # within the window; its liquidity response is then measured on the side it hit.
    liquidation_burst_notional_usdt: float = 100_000.0
    liquidation_burst_window_s: float = 5.0
    liquidation_refill_share: float = 0.9  # refilled: depth back to this share of the depth before
    liquidation_burst_watch_s: float = 120.0  # after this, a burst not refilled ends "not yet refilled"
    impact_max_size: float = 1e9

    # --- the screener: the whole market on the light streams (README "Screener") -----
    screener: bool = True  # on for live and simulated sources (a replay has no market streams)
    screener_depth_suffix: str = "@depth20@500ms"  # the partial book stream of every symbol
    screener_refresh_s: float = 300.0  # exchangeInfo read again this often: symbols added, dropped
    # A row's largest wall is flagged NEW WALL (fresh) when younger than 60 s and at least
    # this x the median top-20 size of its side (docs/metrics.md, "Screener").
    screener_wall_flag_multiple: float = 100.0
    focus_max: int = 10  # symbols with a full-depth book at once, start symbols included
    focus_idle_s: float = 300.0  # a promoted symbol without /ws/{symbol} client this long is released
    # --- alert rules and notifications (alerting/, README "Alert rules and notifications") ---
    alerts_file: str = ""  # --alerts FILE: the rules and destinations (JSON or TOML); PUT /alerts/rules saves there
    alerts_dashboard_url: str = ""  # base of the link in each alert; default the dashboard's own address
    alerts_intake_queue: int = 10_000  # frame digests waiting for the rules; beyond, dropped (counted)

    # --- rolling state and push -------------------------------------------------
    buffer_seconds: float = 180.0
    push_interval_s: float = 1.0
    # A live symbol's frame waits up to this long after the tick for its next depth
    # event and is built on it, showing the freshest book (0: built at the tick).
    frame_align_s: float = 0.12
    heatmap_bins: int = 120  # price bins in one heatmap column (centred on mid)
    frame_levels: int = 50  # levels a side carried in each frame (ladder, depth curve)

    # --- servers ------------------------------------------------------------------
    host: str = "127.0.0.1"
    api_port: int = 8000
    dash_port: int = 8050
    dashboard: bool = True
    max_ws_clients: int = 500
    max_ws_clients_per_ip: int = 100
    ws_client_queue: int = 4
    max_history_clients: int = 8  # /ws/{symbol}?from=...: each rebuilds frames from the recording
    # A websocket client whose frame waits this long to be written (it stopped
    # reading), or that keeps dropping frames this long, is closed (1008) and, if the
    # close frame cannot be written either, aborted: its slot and buffers are freed.
    ws_stall_timeout_s: float = 10.0
    ws_client_msgs_per_s: float = 10.0  # what a client may send on /ws (burst: twice that); over it: 1008
    # Open TCP connections to the API, HTTP and websocket together (also capped below
    # the descriptor limit); one over is answered 503 and closed at once.
    max_connections: int = 1000
    header_timeout_s: float = 10.0  # a request's headers must be complete this long after the connection opens
    keepalive_idle_s: float = 5.0  # an idle keep-alive HTTP connection is closed after this
    # Browser origins allowed to read the API besides the dashboard's own and same
    # origin ("*": any page).
    allow_origins: tuple[str, ...] = ()
    # Addresses of proxies whose X-Forwarded-For / X-Forwarded-Proto are believed
    # (comma-separated, "*" any); empty: the headers are ignored, the peer address counts.
    forwarded_allow_ips: str = ""
    # The dashboard's server (dashboard/pooled_server.py): worker threads, connections
    # open at once (beyond: 503), seconds a request may take to arrive.
    dash_workers: int = 8
    dash_max_connections: int = 64
    dash_request_timeout_s: float = 5.0
    log_level: str = "info"
    log_file: str = ""

    # --- past one process: roles on a NATS JetStream bus (bus/, README "Several machines") ---
    role: str = "all"  # all (one process, no bus) | ingest | api
    bus_url: str = ""  # nats://host:port of the NATS server, for --role ingest and api
    shard: str = ""  # "i/n": an ingest node takes every n-th of the sorted symbols, from the i-th (1-based)
    node_name: str = ""  # this node's name on the bus; default <role>-<host>-<pid>
    api_urls: tuple[str, ...] = ()  # further API nodes the dashboard page moves to when its socket drops
    lease_ttl_s: float = 5.0  # a symbol's owner that stops renewing loses it after this
    bus_stale_after_s: float = 3.0  # an API node shows a symbol stale after this long without its frames
    bus_request_timeout_s: float = 2.0  # /book and /simulate asked of the owning ingest node
    bus_connect_timeout_s: float = 5.0  # the first connection to the bus; later ones are retried for ever
    bus_replicas: int = 1  # copies of each stream and of the lease bucket: 3 on a 3-server NATS cluster

    symbol_specs: Mapping[str, SymbolSpec] = field(
        default_factory=lambda: dict(DEFAULT_SYMBOL_SPECS)
    )

    @property
    def recording_dir(self) -> str:
        """Where raw messages are recorded: ``record_dir`` when given, else ``data_dir``
        with history on; "" when nothing is recorded."""
        if self.record_dir:
            return self.record_dir
        return self.data_dir if self.history else ""

    def spec(self, symbol: str) -> SymbolSpec:
        """The filters of ``symbol``; a clear KeyError when it is not configured."""
        try:
            return self.symbol_specs[symbol.lower()]
        except KeyError:
            raise KeyError(f"{symbol}: no tick/lot size configured") from None

    def replace(self, **changes: object) -> Settings:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


_DURATION_UNITS = {"s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_SIZE_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12, "kib": 2**10, "mib": 2**20,
               "gib": 2**30, "tib": 2**40}


def parse_duration_s(text: str) -> float:
    """Seconds of "24h", "90m", "3600s", "2d" or a bare number of seconds; ValueError otherwise."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*", text.lower())
    if m is None or m[2] not in ("", *_DURATION_UNITS):
        raise ValueError(f"not a duration: {text!r} (examples: 24h, 90m, 3600s, 2d)")
    value = float(m[1]) * _DURATION_UNITS.get(m[2], 1.0)
    if value <= 0:
        raise ValueError(f"a duration must be positive, got {text!r}")
    return value


def parse_size_bytes(text: str) -> int:
    """Bytes of "2GB", "500MB", "1.5GiB" or a bare number of bytes (kB, MB, GB are
    powers of 1000; KiB, MiB, GiB of 1024); ValueError otherwise."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*", text.lower())
    if m is None or m[2] not in ("", *_SIZE_UNITS):
        raise ValueError(f"not a size: {text!r} (examples: 2GB, 500MB, 1GiB)")
    value = int(float(m[1]) * _SIZE_UNITS.get(m[2], 1))
    if value <= 0:
        raise ValueError(f"a size must be positive, got {text!r}")
    return value


def _convert(raw: str, annotation: object, name: str) -> object:
    """Turn one environment string into the field's type, or raise ValueError."""
    origin = typing.get_origin(annotation)
    if annotation is bool:
        low = raw.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{name}: expected a boolean, got {raw!r}")
    if annotation is int:
        return int(raw)
    if annotation is float:
        return float(raw)
    if annotation is str:
        return raw
    if origin is tuple:
        (item_type, _ellipsis) = typing.get_args(annotation)
        parts = [p.strip() for p in raw.split(",") if p.strip()]
        return tuple(_convert(p, item_type, name) for p in parts)
    if origin in (Mapping, dict) or annotation is Mapping:
        data = json.loads(raw)
        return {k.lower(): SymbolSpec(**v) for k, v in data.items()}
    raise ValueError(f"{name}: unsupported type {annotation!r}")


def env_overrides(environ: Mapping[str, str] | None = None) -> dict[str, object]:
    """The fields set through ``LIQ_*`` environment variables, converted."""
    env = os.environ if environ is None else environ
    hints = typing.get_type_hints(Settings, globalns=globals(), localns={"SymbolSpec": SymbolSpec})
    out: dict[str, object] = {}
    for f in dataclasses.fields(Settings):
        key = ENV_PREFIX + f.name.upper()
        if key in env:
            out[f.name] = _convert(env[key], hints[f.name], key)
    return out


def load_settings(environ: Mapping[str, str] | None = None, **cli: object) -> Settings:
    """Defaults, then environment, then explicit keyword overrides (the CLI)."""
    values = env_overrides(environ)
    values.update({k: v for k, v in cli.items() if v is not None})
    if "symbols" in values:
        raw_symbols: typing.Iterable[object] = values["symbols"]  # type: ignore[assignment]
        values["symbols"] = tuple(str(s).lower() for s in raw_symbols)
    return Settings(**values)  # type: ignore[arg-type]


__all__ = [
    "ENV_PREFIX", "DEFAULT_SYMBOL_SPECS", "Settings", "SymbolSpec", "decimals_of", "load_settings", "env_overrides",
    "parse_duration_s", "parse_size_bytes",
]
