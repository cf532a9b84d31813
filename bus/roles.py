"""main.py's way into the bus roles: settings completed for a role, and the node
that runs in place of the one-process App."""

from __future__ import annotations

import os
import socket
from typing import Any

from bus.connection import parse_bus_url
from bus.errors import BusUnavailable
from bus.subjects import is_token, shard_symbols
from config import Settings

ROLES = ("all", "ingest", "api")


def prepare(s: Settings) -> Settings:
    """``s`` checked and completed for ``s.role`` (ingest or api): the shard's
    symbols, a node name, no dashboard on an ingest node. ValueError or
    BusUnavailable saying what is wrong."""
    if not s.bus_url:
        raise ValueError(f"--role {s.role} needs --bus nats://HOST:PORT")
    parse_bus_url(s.bus_url)
    changes: dict[str, Any] = {}
    if s.shard:
        if s.role != "ingest":
            raise ValueError("--shard is for --role ingest")
        changes["symbols"] = shard_symbols(s.symbols, s.shard)
        if not changes["symbols"]:
            raise ValueError(f"--shard {s.shard}: no symbol falls in this shard of {', '.join(s.symbols)}")
    for sym in changes.get("symbols", s.symbols):
        if not is_token(sym):
            raise ValueError(f"--symbols: {sym!r} cannot be named on the bus (letters, digits, _ and - only)")
    name = s.node_name or f"{s.role}-{socket.gethostname().split('.')[0]}-{os.getpid()}"
    if not is_token(name):
        raise ValueError(f"--node: {name!r} is not a valid node name (letters, digits, _ and - only, at most 64)")
    changes["node_name"] = name
    if s.role == "ingest":
        changes["dashboard"] = False  # pages are served by API nodes
        if s.source == "replay":
            raise ValueError("--role ingest reads an exchange (--source auto, binance or sim), not a replay")
    for url in s.api_urls:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"--api-urls: {url!r} is not an http(s) URL")
    return s.replace(**changes)


def node_for(s: Settings, app: Any) -> Any:
    """The node of ``s.role``: an ingest node runs ``app`` (main.App) with its leases
    and publications; an API node needs no App."""
    if s.role == "ingest":
        from bus.ingest_node import IngestNode

        return IngestNode(s, app)
    if s.role == "api":
        from bus.api_node import ApiNode

        return ApiNode(s)
    raise BusUnavailable(f"unknown role {s.role!r}")
