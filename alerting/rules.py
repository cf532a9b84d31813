"""Alert rules and destinations: the document of ``--alerts FILE`` and of
``GET/PUT /alerts/rules`` (README, "Alert rules and notifications").

A rule set is validated whole, by msgspec (types, bounds, unknown fields) and then by
the checks msgspec cannot make (names unique, destinations defined, a secret's
source present); the first problem is raised as :class:`RulesError`, one line naming
the field. Nothing here holds a secret: a destination says where its URL or token
comes from, :func:`resolve_secret` reads it when a delivery worker starts.
"""

from __future__ import annotations

import json
import os
import stat
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import msgspec
from msgspec import Meta, Struct

Status = Literal["born", "grown", "shrunk", "moved", "returned", "refired", "removed", "ended"]
Format = Literal["generic", "slack", "discord", "telegram"]

NonNegative = Annotated[float, Meta(ge=0)]
Positive = Annotated[float, Meta(gt=0)]
Name = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
Window = Annotated[float, Meta(ge=1, le=3600)]

TELEGRAM_API = "https://api.telegram.org"
MAX_RULES = 200
MAX_DESTINATIONS = 50


class RulesError(ValueError):
    """A rule set that cannot be used: one line naming the field."""


class Rule(Struct, kw_only=True, forbid_unknown_fields=True, tag_field="kind"):
    name: Name
    symbols: list[Annotated[str, Meta(min_length=1, max_length=40)]] | Literal["all"] = "all"
    cooldown_s: NonNegative = 60.0  # at most one alert of this rule and symbol this often
    destinations: list[Name] = msgspec.field(default_factory=list)
    # The changes of an alert's life that are sent (births only by default); the
    # computed kinds (spread_blowout, depth_collapse) only have births.
    events: Annotated[list[Status], Meta(min_length=1)] = msgspec.field(default_factory=lambda: ["born"])

    @property
    def kind_name(self) -> str:
        """wall, layering, ...: the tag the rule was written with."""
        return str(self.__struct_config__.tag)

    def applies_to(self, symbol: str) -> bool:
        return self.symbols == "all" or symbol in self.symbols


class WallRule(Rule, tag="wall"):
    min_notional: NonNegative = 0.0  # USDT
    max_distance_bps: Positive | None = None
    side: Literal["bid", "ask", "both"] = "both"


class LayeringRule(Rule, tag="layering"):
    min_notional: NonNegative = 0.0
    max_distance_bps: Positive | None = None
    min_levels: Annotated[int, Meta(ge=1)] = 1
    side: Literal["bid", "ask", "both"] = "both"


class ExhaustionRule(Rule, tag="exhaustion"):
    min_notional: NonNegative = 0.0
    side: Literal["bid", "ask", "both"] = "both"


class LiquidationBurstRule(Rule, tag="liquidation_burst"):
    min_notional: NonNegative = 0.0  # the burst's liquidated notional, USDT
    side: Literal["bid", "ask", "both"] = "both"  # the book side the forced orders hit


class SpreadBlowoutRule(Rule, tag="spread_blowout"):
    """The spread at or above ``min_spread_bps``, and/or at least ``median_multiple`` x
    its median over the last ``window_s`` (both must hold when both are given)."""

    min_spread_bps: Positive | None = None
    median_multiple: Annotated[float, Meta(gt=1)] | None = None
    window_s: Window = 300.0


class DepthCollapseRule(Rule, tag="depth_collapse"):
    """Depth within 25 bps of mid (both sides, USDT) ``drop_pct`` % or more below its
    highest over the last ``window_s``."""

    drop_pct: Annotated[float, Meta(gt=0, lt=100)]
    window_s: Window = 60.0
    min_depth_usdt: NonNegative = 0.0  # the window's high must reach this (ignores thin books)


AnyRule = WallRule | LayeringRule | ExhaustionRule | LiquidationBurstRule | SpreadBlowoutRule | DepthCollapseRule
KINDS = ("wall", "layering", "exhaustion", "liquidation_burst", "spread_blowout", "depth_collapse")
DETECTOR_KINDS = {"WALL": "wall", "LAYERING": "layering", "EXHAUSTION": "exhaustion",
                  "LIQUIDATION_BURST": "liquidation_burst"}


class Destination(Struct, kw_only=True, forbid_unknown_fields=True):
    """Where alerts are POSTed. Exactly one of ``url`` / ``url_env`` / ``url_file``
    (the webhook URL, a secret), except Telegram, whose token comes from
    ``token_env`` / ``token_file`` (``url`` then optional: the API base)."""

    format: Format | None = None  # default: by the URL's host, else generic
    url: str | None = None
    url_env: str | None = None
    url_file: str | None = None
    token_env: str | None = None  # Telegram bot token
    token_file: str | None = None
    chat_id: str | int | None = None  # Telegram
    queue: Annotated[int, Meta(ge=1, le=100_000)] = 1000  # alerts waiting; beyond, the oldest is dropped
    rate_per_s: Positive = 1.0  # token bucket: sustained sends a second...
    burst: Annotated[int, Meta(ge=1, le=1000)] = 5  # ...and how many may go at once
    timeout_s: Positive = 10.0  # per attempt: connect, write and read each
    backoff_initial_s: Positive = 0.5
    backoff_max_s: Positive = 30.0
    give_up_after_s: Positive = 900.0  # an alert still undelivered this long after it was queued: dead letter


class RuleSet(Struct, kw_only=True, forbid_unknown_fields=True):
    rules: list[AnyRule] = msgspec.field(default_factory=list)
    destinations: dict[Name, Destination] = msgspec.field(default_factory=dict)


EMPTY = RuleSet()


def format_of(dest: Destination, url: str | None) -> Format:
    """The body format: the setting, else the URL's host, else generic JSON."""
    if dest.format is not None:
        return dest.format
    if dest.token_env or dest.token_file:
        return "telegram"
    parts = urlsplit(url or "")
    host = (parts.hostname or "").lower()
    if host == "hooks.slack.com":
        return "slack"
    if host in ("discord.com", "discordapp.com") and parts.path.startswith("/api/webhooks"):
        return "discord"
    if host == "api.telegram.org":
        return "telegram"
    return "generic"


def redact(url: str | None) -> str | None:
    """A URL as it may be shown: scheme and host (and port) only."""
    if not url:
        return None
    parts = urlsplit(url)
    if not parts.scheme or not parts.hostname:
        return "(not a URL)"
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


def _read_secret_file(path: str, field: str) -> str:
    try:
        text = Path(path).expanduser().read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise RulesError(f"{field}: cannot read {path} ({exc.strerror or type(exc).__name__})") from None
    if not text:
        raise RulesError(f"{field}: {path} is empty")
    return text


def _from_env(name: str, field: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise RulesError(f"{field}: environment variable {name} is not set")
    return value


def resolve_secret(name: str, dest: Destination) -> tuple[str, Format, str | None]:
    """The URL to POST to, the body format and the Telegram chat, read from wherever
    the destination says. RulesError (naming the field, never the value) when missing."""
    where = f"destinations.{name}"
    if dest.url_env:
        url: str | None = _from_env(dest.url_env, f"{where}.url_env")
    elif dest.url_file:
        url = _read_secret_file(dest.url_file, f"{where}.url_file")
    else:
        url = dest.url
    fmt = format_of(dest, url)
    token = None
    if dest.token_env:
        token = _from_env(dest.token_env, f"{where}.token_env")
    elif dest.token_file:
        token = _read_secret_file(dest.token_file, f"{where}.token_file")
    if fmt == "telegram":
        if token is not None:
            url = f"{(url or TELEGRAM_API).rstrip('/')}/bot{token}/sendMessage"
        if dest.chat_id is None:
            raise RulesError(f"{where}.chat_id: a Telegram destination needs the chat to send to")
    if not url:
        raise RulesError(f"{where}: give one of url, url_env, url_file")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RulesError(f"{where}: the URL must be http:// or https:// with a host")
    return url, fmt, None if dest.chat_id is None else str(dest.chat_id)


def _secret_bearing(url: str) -> bool:
    """A webhook URL that carries its secret: a path or query beyond the host, or
    credentials (Slack, Discord and most receivers put the token in the path)."""
    parts = urlsplit(url)
    return bool(parts.path.strip("/") or parts.query or parts.fragment or parts.username or parts.password)


def _inside(path: str | Path, repo_root: Path | None) -> bool:
    return repo_root is not None and Path(path).expanduser().resolve().is_relative_to(repo_root)


def _check_secret_source(name: str, dest: Destination, repo_root: Path | None,
                         rules_file: str | Path | None = None) -> None:
    where = f"destinations.{name}"
    sources = [k for k in ("url", "url_env", "url_file") if getattr(dest, k)]
    tokens = [k for k in ("token_env", "token_file") if getattr(dest, k)]
    if len(sources) > 1:
        raise RulesError(f"{where}: give only one of url, url_env, url_file (got {', '.join(sources)})")
    if len(tokens) > 1:
        raise RulesError(f"{where}: give only one of token_env, token_file")
    if not sources and not tokens:
        raise RulesError(f"{where}: give one of url, url_env, url_file (or token_env / token_file for Telegram)")
    if dest.url is not None:
        parts = urlsplit(dest.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RulesError(f"{where}.url: must be http:// or https:// with a host")
        if rules_file is not None and _secret_bearing(dest.url) and _inside(rules_file, repo_root):
            raise RulesError(f"{where}.url: a webhook URL with a path, query or credentials is a secret and "
                             f"the rules file is inside the repository ({repo_root}): use url_env or url_file")
    for key in ("url_file", "token_file"):
        path = getattr(dest, key)
        if path and _inside(path, repo_root):
            raise RulesError(f"{where}.{key}: a secret file must be outside the repository ({repo_root})")
    resolve_secret(name, dest)  # present and well formed now, not at the first alert


REPO_ROOT = Path(__file__).resolve().parent.parent


def validate(rules: RuleSet, repo_root: Path | None = REPO_ROOT, rules_file: str | Path | None = None) -> RuleSet:
    """The checks msgspec cannot make; returns ``rules`` with symbols in lower case.
    ``rules_file``: where the rules are read from or written to (an inline secret URL
    is refused when it is inside ``repo_root``)."""
    if len(rules.rules) > MAX_RULES:
        raise RulesError(f"rules: at most {MAX_RULES} rules, got {len(rules.rules)}")
    if len(rules.destinations) > MAX_DESTINATIONS:
        raise RulesError(f"destinations: at most {MAX_DESTINATIONS}, got {len(rules.destinations)}")
    for name, dest in rules.destinations.items():
        _check_secret_source(name, dest, repo_root, rules_file)
    seen: set[str] = set()
    for i, rule in enumerate(rules.rules):
        where = f"rules[{i}]"
        if rule.name in seen:
            raise RulesError(f"{where}.name: {rule.name!r} is used by an earlier rule")
        seen.add(rule.name)
        for dest_name in rule.destinations:
            if dest_name not in rules.destinations:
                known = ", ".join(sorted(rules.destinations)) or "none defined"
                raise RulesError(f"{where}.destinations: no destination named {dest_name!r} ({known})")
        if isinstance(rule, SpreadBlowoutRule) and rule.min_spread_bps is None and rule.median_multiple is None:
            raise RulesError(f"{where}: spread_blowout needs min_spread_bps or median_multiple")
        if isinstance(rule, SpreadBlowoutRule | DepthCollapseRule) and rule.events != ["born"]:
            raise RulesError(f"{where}.events: {rule.kind_name} alerts only have births")
        if rule.symbols != "all":
            if not rule.symbols:
                raise RulesError(f"{where}.symbols: give symbols or \"all\"")
            rule.symbols = [s.lower() for s in rule.symbols]
    return rules


def _one_line(exc: msgspec.ValidationError | msgspec.DecodeError) -> str:
    """msgspec's message with its ``$.rules[0].x`` path as ``rules[0].x`` first."""
    text = str(exc).splitlines()[0]
    if " - at `$" in text:
        message, _, path = text.rpartition(" - at `$")
        return f"{path.rstrip('`').lstrip('.')}: {message}"
    return text


def parse(raw: bytes | dict[str, Any], repo_root: Path | None = REPO_ROOT,
          rules_file: str | Path | None = None) -> RuleSet:
    """A rule set from JSON bytes or an already parsed document (TOML); RulesError if bad."""
    try:
        if isinstance(raw, bytes | bytearray):
            rules = msgspec.json.decode(raw, type=RuleSet)
        else:
            rules = msgspec.convert(raw, type=RuleSet)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise RulesError(_one_line(exc)) from None
    return validate(rules, repo_root, rules_file)


def load_file(path: str | Path, repo_root: Path | None = REPO_ROOT) -> RuleSet:
    """The rule set of a ``.json`` or ``.toml`` file; RulesError naming the file and field."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise RulesError(f"{p}: cannot read ({exc.strerror or type(exc).__name__})") from None
    try:
        if p.suffix.lower() == ".toml":
            try:
                doc = tomllib.loads(data.decode("utf-8"))
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
                raise RulesError(f"not valid TOML ({str(exc).splitlines()[0]})") from None
            return parse(doc, repo_root, p)
        return parse(data, repo_root, p)
    except RulesError as exc:
        raise RulesError(f"{p}: {exc}") from None


def to_document(rules: RuleSet) -> dict[str, Any]:
    """The rule set as the file holds it (secrets' sources included, never read values)."""
    doc: dict[str, Any] = msgspec.to_builtins(rules)
    for dest in doc["destinations"].values():
        for key in [k for k, v in dest.items() if v is None]:
            del dest[key]
    return doc


def public_document(rules: RuleSet) -> dict[str, Any]:
    """The rule set as the API shows it: each destination by name, its URL reduced to
    scheme and host, where its secret comes from named but not read."""
    doc = to_document(rules)
    for name, dest in doc["destinations"].items():
        original = rules.destinations[name]
        if "url" in dest:
            dest["url"] = redact(original.url)
        if original.format is None:
            try:
                dest["format_in_use"] = resolve_secret(name, original)[1]
            except RulesError:
                dest["format_in_use"] = None
    return doc


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a valid TOML basic string
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"no TOML for {type(v).__name__}")


def to_toml(doc: dict[str, Any]) -> str:
    """The rule document in TOML (tomllib reads, it does not write): a table per
    destination, an array of tables for the rules."""
    lines: list[str] = []
    for name, dest in doc["destinations"].items():
        lines.append(f"[destinations.{json.dumps(name)}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in dest.items() if v is not None]
        lines.append("")
    for rule in doc["rules"]:
        lines.append("[[rules]]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in rule.items() if v is not None]
        lines.append("")
    return "\n".join(lines)


def save_file(path: str | Path, rules: RuleSet) -> None:
    """Write the rule set to ``path`` in its format (by suffix), atomically."""
    p = Path(path)
    doc = to_document(rules)
    text = to_toml(doc) if p.suffix.lower() == ".toml" else json.dumps(doc, indent=2) + "\n"
    # The file may hold a webhook URL: it keeps its mode, and a new one is the owner's alone.
    mode = stat.S_IMODE(p.stat().st_mode) if p.exists() else 0o600
    tmp = p.with_name(p.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, p)
