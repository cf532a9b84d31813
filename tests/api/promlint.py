"""The checks of ``promtool check metrics`` (Prometheus's promlint), in Python, for the
text exposition format; plus two of this project's: every family has a TYPE line, and
no percentage in a name (ratios are 0..1).

promlint's rules, as client_golang's prometheus/testutil/promlint applies them:
HELP present; counters end in ``_total`` and nothing else does; no abbreviated unit
as a name part (``_ms``, ``_s``, ``_kb``, ...); base units (``seconds`` not
``milliseconds``, ``bytes`` not ``kilobytes``); no metric type in the name; no ``:``;
snake_case names and label names; ``_bucket``, ``_count``, ``_sum``, ``le`` and
``quantile`` only where histograms and summaries use them; ``_timestamp_seconds``
only on gauges. Names and label names must also be valid at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
CAMEL_CASE = re.compile(r"[a-z][A-Z]")
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")

# promlint's lists (validations/units.go).
UNIT_ABBREVIATIONS = ("s", "ms", "us", "ns", "sec", "b", "kb", "mb", "gb", "tb", "pb", "m", "h", "d")
UNITS = {
    "amperes": "amperes", "bytes": "bytes", "celsius": "celsius", "grams": "grams", "joules": "joules",
    "kelvin": "kelvin", "meters": "meters", "metres": "metres", "seconds": "seconds", "volts": "volts",
    "minutes": "seconds", "hours": "seconds", "days": "seconds", "weeks": "seconds", "kelvins": "kelvin",
    "fahrenheit": "celsius", "rankine": "celsius", "inches": "meters", "yards": "meters", "miles": "meters",
    "bits": "bytes", "calories": "joules", "pounds": "grams", "ounces": "grams",
}
UNIT_PREFIXES = ("pico", "nano", "micro", "milli", "centi", "deci", "deca", "hecto", "kilo", "kibi", "mega",
                 "mibi", "giga", "gibi", "tera", "tebi", "peta", "pebi")
TYPE_WORDS = ("counter", "gauge", "histogram", "summary", "gauge_histogram")
# This project's: a share is a ratio from 0 to 1, never a percentage.
PERCENT_WORDS = ("pct", "percent", "percentage")

_SAMPLE = re.compile(r"(?P<name>[^\s{]+)(?:\{(?P<labels>.*)\})?\s+(?P<value>\S+)(?:\s+(?P<ts>-?\d+))?")
_LABEL = re.compile(r'\s*(?P<name>[^=\s]+)\s*=\s*"(?P<value>(?:[^"\\]|\\.)*)"\s*,?')


@dataclass
class Family:
    name: str
    type: str | None = None
    help: str | None = None
    samples: list[tuple[str, dict[str, str], float]] = field(default_factory=list)


def parse(text: str) -> tuple[list[Family], list[str]]:
    """The families of a text exposition, and what does not parse."""
    families: dict[str, Family] = {}
    problems: list[str] = []

    def family(name: str) -> Family:
        if name not in families:
            families[name] = Family(name)
        return families[name]

    def owner(sample: str) -> Family:
        for suffix in ("_bucket", "_count", "_sum"):
            base = sample.removesuffix(suffix)
            if base != sample and families.get(base) and families[base].type in ("histogram", "summary"):
                return families[base]
        return family(sample)

    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            parts = line[1:].strip().split(None, 2)
            if len(parts) >= 2 and parts[0] == "HELP":
                fam = family(parts[1])
                if fam.help is not None:
                    problems.append(f"{parts[1]}: second HELP line (line {number})")
                fam.help = parts[2] if len(parts) > 2 else ""
            elif len(parts) >= 2 and parts[0] == "TYPE":
                fam = family(parts[1])
                kind = parts[2].strip() if len(parts) > 2 else ""
                if kind not in TYPES:
                    problems.append(f"{parts[1]}: unknown type {kind!r} (line {number})")
                if fam.type is not None or fam.samples:
                    problems.append(f"{parts[1]}: TYPE after its samples or twice (line {number})")
                fam.type = kind
            continue
        m = _SAMPLE.fullmatch(line)
        if m is None:
            problems.append(f"line {number} does not parse: {raw!r}")
            continue
        labels: dict[str, str] = {}
        rest = m.group("labels") or ""
        pos = 0
        while pos < len(rest):
            lm = _LABEL.match(rest, pos)
            if lm is None:
                problems.append(f"line {number}: bad labels {rest!r}")
                break
            labels[lm.group("name")] = lm.group("value")
            pos = lm.end()
        try:
            value = float(m.group("value"))
        except ValueError:
            problems.append(f"line {number}: value {m.group('value')!r} is not a number")
            continue
        owner(m.group("name")).samples.append((m.group("name"), labels, value))
    return list(families.values()), problems


def lint_family(fam: Family) -> list[str]:
    """promlint's problems with one family (and this project's two)."""
    name, kind = fam.name, fam.type or "untyped"
    out: list[str] = []
    if fam.help is None:
        out.append("no help text")
    if fam.type is None:
        out.append("no TYPE line")
    if not METRIC_NAME.fullmatch(name):
        out.append("invalid metric name")
    if ":" in name:
        out.append("metric names should not contain ':'")
    if CAMEL_CASE.search(name):
        out.append("metric names should be written in 'snake_case' not 'camelCase'")
    label_names = {label for _, labels, _ in fam.samples for label in labels}
    for label in sorted(label_names):
        if not LABEL_NAME.fullmatch(label) or label.startswith("__"):
            out.append(f"invalid label name {label!r}")
        if CAMEL_CASE.search(label):
            out.append("label names should be written in 'snake_case' not 'camelCase'")
    total = name.endswith("_total")
    if kind == "counter" and not total:
        out.append('counter metrics should have "_total" suffix')
    if kind not in ("counter", "untyped") and total:
        out.append('non-counter metrics should not have "_total" suffix')
    low = name.lower()
    parts = low.split("_")
    for abbreviation in UNIT_ABBREVIATIONS:
        if f"_{abbreviation}_" in low or low.endswith(f"_{abbreviation}"):
            out.append("metric names should not contain abbreviated units")
            break
    for part in parts:
        base = UNITS.get(part) or next(
            (UNITS[part[len(p):]] for p in UNIT_PREFIXES if part.startswith(p) and part[len(p):] in UNITS), None)
        if base is not None and base != part:
            out.append(f"use base unit {base!r} instead of {part!r}")
    if any(word in parts for word in PERCENT_WORDS):
        out.append("metric names should not hold percentages: use a ratio from 0 to 1")
    for word in TYPE_WORDS:
        if f"_{word}_" in low or low.endswith(f"_{word}"):
            out.append(f"metric name should not include type '{word}'")
    if kind != "untyped":
        if kind != "histogram" and name.endswith("_bucket"):
            out.append('non-histogram metrics should not have "_bucket" suffix')
        if kind not in ("histogram", "summary") and name.endswith(("_count", "_sum")):
            out.append('non-histogram and non-summary metrics should not have "_count" or "_sum" suffix')
        if kind != "histogram" and "le" in label_names:
            out.append('non-histogram metrics should not have "le" label')
        if kind != "summary" and "quantile" in label_names:
            out.append('non-summary metrics should not have "quantile" label')
        if kind != "gauge" and name.endswith("_timestamp_seconds"):
            out.append('non-gauge metrics should not have "_timestamp_seconds" suffix')
    return out


def check(text: str) -> list[str]:
    """Every problem of an exposition, as ``name: problem``; empty when it is clean."""
    families, problems = parse(text)
    for fam in families:
        problems += [f"{fam.name}: {p}" for p in lint_family(fam)]
    return problems
