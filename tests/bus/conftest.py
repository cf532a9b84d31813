"""A real NATS server with JetStream for the bus tests, on a free loopback port with
its store in a temporary directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bus.nats_server import NatsServer, find_nats_server


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    try:
        find_nats_server()
    except FileNotFoundError as exc:
        pytest.fail(str(exc))  # requirements-dev.txt installs it: its absence is a broken set-up
    server = NatsServer(tmp_path / "jetstream", log_file=tmp_path / "nats.log").start()
    try:
        yield server
    finally:
        server.stop()
