"""Errors of the bus roles that main.py turns into one line and exit code 2.

Kept apart from the rest of the package so that main.py can name them without
importing the NATS client."""

from __future__ import annotations


class BusUnavailable(Exception):
    """``--bus`` is malformed, or no NATS server with JetStream answers there."""
