"""Names on the bus, and which symbols a shard takes.

One subject per kind and symbol (or node), so that a consumer takes what it needs
with a wildcard and JetStream keeps one stream per kind:

    liq.frame.<symbol>   one encoded frame per tick, exactly the bytes /ws/<symbol> sends
    liq.alert.<symbol>   each alert of a frame, on its own
    liq.health.<node>    a node's health, once a second
    liq.ask.<symbol>     request/reply to the symbol's owner (/book, /simulate)
"""

from __future__ import annotations

import re
from collections.abc import Sequence

FRAME_PREFIX = "liq.frame."
ALERT_PREFIX = "liq.alert."
HEALTH_PREFIX = "liq.health."
ASK_PREFIX = "liq.ask."

# A JetStream stream per kind keeps the last RETENTION_S: a new API node reads a
# symbol's history from the frames stream, and the nodes' last health from the
# health stream, not from a cache of its own.
FRAMES_STREAM = "LIQ_FRAMES"
ALERTS_STREAM = "LIQ_ALERTS"
HEALTH_STREAM = "LIQ_HEALTH"
STREAMS = {FRAMES_STREAM: FRAME_PREFIX, ALERTS_STREAM: ALERT_PREFIX, HEALTH_STREAM: HEALTH_PREFIX}
RETENTION_S = 180.0

LEASE_BUCKET = "liq-owners"  # key: symbol; value: bus.messages.Lease

# One token of a subject (and a valid key-value key): no dots, wildcards or spaces.
_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}")


def is_token(text: str) -> bool:
    return bool(_TOKEN.fullmatch(text))


def frame_subject(symbol: str) -> str:
    return FRAME_PREFIX + symbol


def alert_subject(symbol: str) -> str:
    return ALERT_PREFIX + symbol


def health_subject(node: str) -> str:
    return HEALTH_PREFIX + node


def ask_subject(symbol: str) -> str:
    return ASK_PREFIX + symbol


def last_token(subject: str) -> str:
    """``liq.frame.btcusdt`` -> ``btcusdt``."""
    return subject.rsplit(".", 1)[-1]


def parse_shard(text: str) -> tuple[int, int]:
    """``"2/3"`` -> (2, 3); ValueError saying what is wrong otherwise."""
    head, sep, tail = text.strip().partition("/")
    try:
        index, count = int(head), int(tail)
    except ValueError:
        raise ValueError(f"--shard must be i/n (for example 1/2), got {text!r}") from None
    if not sep or count < 1 or not 1 <= index <= count:
        raise ValueError(f"--shard must be i/n with 1 <= i <= n, got {text!r}")
    return index, count


def shard_symbols(symbols: Sequence[str], shard: str) -> tuple[str, ...]:
    """The symbols shard ``i/n`` owns: every n-th of the sorted list, from the i-th.
    Each symbol falls in exactly one shard whatever the order it was given in."""
    index, count = parse_shard(shard)
    return tuple(sorted(set(symbols))[index - 1 :: count])
