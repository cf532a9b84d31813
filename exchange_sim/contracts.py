"""A table of plausible Binance USDT-M perpetual contracts for a simulated market of
many symbols (``--market N``): names, prices, tick and lot sizes, and how busy each
one is.

The first rows carry prices, ticks and lots close to Binance's own (late 2024); the
long tail has real-looking names with prices drawn once from the name and filters
derived from the price the way Binance sets them (a tick of about 1/10,000 to
1/100,000 of the price, a lot worth a few USDT at most). Activity falls with the
rank as on the real exchange: BTCUSDT and ETHUSDT carry most of the traffic, the
next ten a few to thirty percent of BTCUSDT's, and the tail updates every few
seconds.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from config import SymbolSpec, decimals_of
from exchange_sim.profiles import CALIBRATED, MarketParams, scaled


@dataclass(frozen=True, slots=True)
class Contract:
    symbol: str  # lower case, as in stream names
    price: float
    tick: float
    lot: float
    activity: float  # relative to BTCUSDT (1.0)
    vol_factor: float  # volatility relative to BTCUSDT's

    @property
    def spec(self) -> SymbolSpec:
        return SymbolSpec(self.tick, self.lot, decimals_of(self.tick), decimals_of(self.lot), 20)


# name, price, tick, lot, volatility factor (the most traded contracts)
_MAJORS: tuple[tuple[str, float, float, float, float], ...] = (
    ("btcusdt", 97_000.0, 0.1, 0.001, 1.0),
    ("ethusdt", 3_500.0, 0.01, 0.001, 1.0),
    ("solusdt", 240.0, 0.01, 1.0, 1.4),
    ("xrpusdt", 2.4, 0.0001, 0.1, 1.6),
    ("dogeusdt", 0.40, 0.00001, 1.0, 1.7),
    ("bnbusdt", 690.0, 0.01, 0.01, 1.1),
    ("suiusdt", 4.2, 0.0001, 0.1, 2.0),
    ("1000pepeusdt", 0.022, 0.0000001, 1.0, 2.2),
    ("adausdt", 1.05, 0.0001, 1.0, 1.6),
    ("linkusdt", 24.0, 0.001, 0.01, 1.5),
    ("wifusdt", 3.1, 0.0001, 0.1, 2.4),
    ("avaxusdt", 48.0, 0.001, 1.0, 1.6),
    ("ltcusdt", 120.0, 0.01, 0.001, 1.4),
    ("trxusdt", 0.26, 0.00001, 1.0, 1.2),
    ("dotusdt", 9.0, 0.001, 0.1, 1.6),
    ("bchusdt", 520.0, 0.01, 0.001, 1.5),
    ("nearusdt", 6.8, 0.001, 1.0, 1.8),
    ("ordiusdt", 45.0, 0.001, 0.1, 2.2),
    ("1000shibusdt", 0.027, 0.000001, 1.0, 1.7),
    ("uniusdt", 15.0, 0.001, 1.0, 1.8),
    ("aptusdt", 12.0, 0.0001, 0.1, 1.8),
    ("arbusdt", 1.0, 0.0001, 0.1, 1.9),
    ("opusdt", 2.5, 0.0001, 0.1, 1.9),
    ("filusdt", 6.5, 0.001, 0.1, 1.8),
    ("etcusdt", 35.0, 0.001, 0.01, 1.6),
    ("atomusdt", 8.5, 0.001, 0.01, 1.6),
    ("injusdt", 28.0, 0.001, 0.1, 2.0),
    ("aaveusdt", 350.0, 0.01, 0.1, 1.8),
    ("tiausdt", 7.0, 0.0001, 1.0, 2.1),
    ("enausdt", 1.1, 0.0001, 1.0, 2.4),
)

# The long tail: real-looking contract names, in order of decreasing activity.
_TAIL = (
    "hbarusdt", "xlmusdt", "tonusdt", "renderusdt", "fetusdt", "wldusdt", "seiusdt", "stxusdt", "ondousdt",
    "taousdt", "crvusdt", "ldousdt", "1000bonkusdt", "jupusdt", "pendleusdt", "grtusdt", "imxusdt", "algousdt",
    "vetusdt", "galausdt", "sandusdt", "manausdt", "axsusdt", "apeusdt", "chzusdt", "dydxusdt", "mkrusdt",
    "runeusdt", "egldusdt", "kasusdt", "pythusdt", "strkusdt", "notusdt", "peopleusdt", "1000flokiusdt",
    "1000satsusdt", "1000luncusdt", "1inchusdt", "achusdt", "aevousdt", "agldusdt", "aiusdt", "aliceusdt",
    "alphausdt", "altusdt", "ankrusdt", "api3usdt", "arusdt", "arkmusdt", "arpausdt", "astrusdt", "atausdt",
    "auctionusdt", "axlusdt", "bakeusdt", "bandusdt", "batusdt", "belusdt", "bicousdt", "bigtimeusdt",
    "blurusdt", "bntusdt", "bomeusdt", "bsvusdt", "c98usdt", "cakeusdt", "celousdt", "celrusdt", "cfxusdt",
    "chrusdt", "ckbusdt", "combousdt", "compusdt", "cotiusdt", "ctkusdt", "ctsiusdt", "cyberusdt", "darusdt",
    "dashusdt", "dentusdt", "dgbusdt", "duskusdt", "dymusdt", "eduusdt", "enjusdt", "ensusdt", "ethfiusdt",
    "flmusdt", "flowusdt", "fxsusdt", "gasusdt", "glmusdt", "gmtusdt", "gmxusdt", "gtcusdt", "hftusdt",
    "highusdt", "hookusdt", "hotusdt", "icpusdt", "icxusdt", "idusdt", "ilvusdt", "iostusdt", "iotausdt",
    "iotxusdt", "jasmyusdt", "joeusdt", "jtousdt", "kavausdt", "keyusdt", "kncusdt", "ksmusdt", "leverusdt",
    "linausdt", "listausdt", "loomusdt", "lptusdt", "lqtyusdt", "lrcusdt", "magicusdt", "mantausdt",
    "maskusdt", "mavusdt", "memeusdt", "mewusdt", "minausdt", "movrusdt", "mtlusdt", "myrousdt", "neousdt",
    "nfpusdt", "nknusdt", "nmrusdt", "ntrnusdt", "ognusdt", "omusdt", "omniusdt", "oneusdt", "ongusdt",
    "ontusdt", "orbsusdt", "oxtusdt", "phbusdt", "pixelusdt", "polyxusdt", "portalusdt", "powrusdt", "qntusdt",
    "qtumusdt", "rareusdt", "rdntusdt", "reefusdt", "rezusdt", "rifusdt", "rlcusdt", "roninusdt", "roseusdt",
    "rsrusdt", "rvnusdt", "sagausdt", "sfpusdt", "sklusdt", "snxusdt", "spellusdt", "ssvusdt", "steemusdt",
    "stgusdt", "stmxusdt", "storjusdt", "stptusdt", "sunusdt", "superusdt", "sushiusdt", "sxpusdt", "synusdt",
    "sysusdt", "thetausdt", "tlmusdt", "tnsrusdt", "tokenusdt", "trbusdt", "turbousdt", "tusdt", "twtusdt",
    "umausdt", "unfiusdt", "ustcusdt", "vanryusdt", "voxelusdt", "waxpusdt", "woousdt", "wusdt", "xaiusdt",
    "xemusdt", "xmrusdt", "xtzusdt", "xvgusdt", "xvsusdt", "yggusdt", "zecusdt", "zenusdt",
    "zetausdt", "zilusdt", "zkusdt", "zrousdt", "zrxusdt", "popcatusdt", "neirousdt", "eigenusdt", "goatusdt",
    "moodengusdt", "pnutusdt", "actusdt", "hmstrusdt", "catiusdt", "dogsusdt", "scrusdt", "cowusdt",
    "grassusdt", "driftusdt", "swellusdt", "virtualusdt", "kaiausdt", "polusdt", "santosusdt", "lumiausdt",
    "morphousdt", "chillguyusdt", "theusdt", "meusdt", "moveusdt", "penguusdt", "usualusdt", "aixbtusdt",
    "cgptusdt", "hiveusdt", "degousdt", "raysolusdt", "biousdt", "fartcoinusdt", "griffainusdt", "zerebrousdt",
    "aliusdt", "sonicusdt", "swarmsusdt", "cookieusdt", "dusdt", "promptusdt", "solvusdt", "trumpusdt",
    "vineusdt", "animeusdt", "berausdt", "layerusdt", "kaitousdt", "ipusdt", "shellusdt", "gpsusdt", "redusdt",
    "brettusdt", "vthousdt", "banusdt", "aktusdt", "mubarakusdt", "tstusdt", "bmtusdt", "formusdt",
    "partiusdt", "initusdt", "babyusdt", "wctusdt", "hyperusdt", "kmnousdt", "sxtusdt", "awusdt", "haedalusdt",
    "humausdt", "sophusdt", "resolvusdt", "homeusdt", "spkusdt", "newtusdt", "hushusdt", "saharausdt",
    "crossusdt", "ainusdt", "toshiusdt", "erausdt", "treeusdt", "naorisusdt", "townsusdt", "proveusdt",
)


def _tail_filters(price: float) -> tuple[float, float]:
    """Tick and lot as Binance sets them for a contract at ``price``: about five
    significant digits of price, a lot worth a few USDT at most."""
    tick = 10.0 ** (math.floor(math.log10(price)) - 4)
    lot = 1.0 if price < 10 else 0.1 if price < 100 else 0.01 if price < 1000 else 0.001
    return float(f"{tick:.10g}"), lot


def _activity(rank: int) -> float:
    """Activity of the contract at ``rank`` (1 = BTCUSDT): measured-like shares for the
    first ones, then a power law down to about 1/2,000 of BTCUSDT at rank 300."""
    head = {1: 1.0, 2: 0.85, 3: 0.32, 4: 0.26, 5: 0.22, 6: 0.18, 7: 0.15, 8: 0.13, 9: 0.12, 10: 0.1}
    if rank in head:
        return head[rank]
    return max(0.0004, 0.1 * (rank / 10.0) ** -1.6)


def _build() -> tuple[Contract, ...]:
    rows: list[Contract] = []
    seen: set[str] = set()
    for name, price, tick, lot, vol in _MAJORS:
        seen.add(name)
        rows.append(Contract(name, price, tick, lot, _activity(len(rows) + 1), vol))
    for name in _TAIL:
        if name in seen:
            continue
        seen.add(name)
        rng = random.Random(name)  # each name's price, whatever the table's order
        price = float(f"{math.exp(rng.uniform(math.log(0.004), math.log(60.0))):.4g}")
        tick, lot = _tail_filters(price)
        rows.append(Contract(name, price, tick, lot, _activity(len(rows) + 1), rng.uniform(1.8, 3.0)))
    return tuple(rows)


CONTRACTS: tuple[Contract, ...] = _build()
BY_SYMBOL: dict[str, Contract] = {c.symbol: c for c in CONTRACTS}
# A symbol the table does not know: a modest contract.
UNKNOWN_ACTIVITY = 0.2
UNKNOWN_VOL = 1.5


def market_symbols(n: int) -> tuple[str, ...]:
    """The ``n`` most active contracts of the table, most active first."""
    if not 1 <= n <= len(CONTRACTS):
        raise ValueError(f"a simulated market has 1 to {len(CONTRACTS)} symbols, got {n}")
    return tuple(c.symbol for c in CONTRACTS[:n])


def parse_market(text: str) -> tuple[str, ...]:
    """``--market``: a count (the most active N contracts of the table) or a
    comma-separated list of symbols; empty gives none."""
    text = text.strip()
    if not text:
        return ()
    if text.isdigit():
        return market_symbols(int(text))
    symbols = tuple(dict.fromkeys(s.strip().lower() for s in text.split(",") if s.strip()))
    if not symbols:
        raise ValueError(f"--market: expected a count or symbols, got {text!r}")
    return symbols


def with_market(focus: tuple[str, ...], market: str) -> tuple[str, ...]:
    """``focus`` symbols first, then those of ``market`` (see parse_market), once each."""
    return tuple(dict.fromkeys((*(s.lower() for s in focus), *parse_market(market))))


def params_for(symbol: str) -> MarketParams:
    """The order-flow profile of ``symbol``: measured for BTCUSDT and ETHUSDT, scaled
    from BTCUSDT's by the contract's activity and volatility for the others."""
    symbol = symbol.lower()
    if symbol in CALIBRATED:
        return CALIBRATED[symbol]
    contract = BY_SYMBOL.get(symbol)
    if contract is None:
        return scaled(UNKNOWN_ACTIVITY, UNKNOWN_VOL)
    return scaled(contract.activity, contract.vol_factor)
