"""main.py as a new user runs it: a fresh process on free ports."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets.sync.client as ws_sync

from data_ingestion.audit import audit_files
from tests.conftest import REPO


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Proc:
    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.api_port, self.dash_port = free_port(), free_port()
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("LIQ_")}
        full_env.update(env or {})
        self.popen = subprocess.Popen(
            [sys.executable, "main.py", "--api-port", str(self.api_port), "--dash-port", str(self.dash_port), *args],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full_env,
        )
        self.base = f"http://127.0.0.1:{self.api_port}"

    def wait_health(self, status: str = "healthy", timeout: float = 20.0) -> dict:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            assert self.popen.poll() is None, f"main.py exited early: {self.popen.communicate()[1][-2000:]}"
            try:
                last = httpx.get(f"{self.base}/health", timeout=2).json()
                if last["status"] == status:
                    return last
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"not {status} within {timeout} s; last /health: {last}")

    def interrupt(self, timeout: float = 5.0) -> tuple[int, float, str]:
        t0 = time.monotonic()
        self.popen.send_signal(signal.SIGINT)
        try:
            _out, err = self.popen.communicate(timeout=timeout + 5)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            raise
        return self.popen.returncode, time.monotonic() - t0, err

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.communicate()


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    for p in started:
        p.kill()


def test_new_user_runs_the_simulated_market(procs: list[Proc]) -> None:
    p = Proc("--source", "sim")
    procs.append(p)
    health = p.wait_health("healthy", 20)
    assert health["source"]["kind"] == "sim"
    with ws_sync.connect(f"ws://127.0.0.1:{p.api_port}/ws/btcusdt", max_size=None, open_timeout=5) as ws:
        first = json.loads(ws.recv(timeout=5))
        assert first["type"] == "history"
        frame = json.loads(ws.recv(timeout=5))
        assert frame["type"] == "frame" and frame["symbol"] == "btcusdt"
        assert frame["mid_price"] is not None and frame["bid_levels"]
    sim = httpx.get(f"{p.base}/simulate/btcusdt", params={"side": "buy", "size": "1"}, timeout=5)
    assert sim.status_code == 200 and sim.json()["quantity_filled"] == 1.0
    page = httpx.get(f"http://127.0.0.1:{p.dash_port}/", timeout=5)
    assert page.status_code == 200
    # The dashboard renders in headless Chromium: ladder rows with live prices, no console errors.
    from playwright.sync_api import sync_playwright

    from dashboard.harness import launch_chromium

    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            tab = browser.new_page(viewport={"width": 1400, "height": 900})
            errors: list[str] = []
            tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            tab.goto(f"http://127.0.0.1:{p.dash_port}/")
            tab.wait_for_function(
                "document.querySelectorAll('#ladder [data-side=\"bid\"]').length === 10", timeout=20_000
            )
            assert "SIMULATED" in tab.inner_text("body")
            assert errors == []
        finally:
            browser.close()
    code, took, err = p.interrupt()
    assert code == 0, err[-2000:]
    assert took < 5.0
    assert "Traceback" not in err


def test_auto_falls_back_to_the_simulated_market(procs: list[Proc]) -> None:
    # Port 9 on loopback refuses at once: Binance unreachable, deterministically.
    p = Proc("--source", "auto", "--no-dashboard", env={"LIQ_REST_BASE_URL": "http://127.0.0.1:9"})
    procs.append(p)
    health = p.wait_health("healthy", 25)
    assert health["source"]["kind"] == "sim"
    assert "auto" in health["source"]["reason"] and "SIMULATED" in health["source"]["reason"]
    code, _took, err = p.interrupt()
    assert code == 0 and "Traceback" not in err
    assert "showing the SIMULATED market" in err  # said in the log too


def test_replay_at_full_speed_ends_with_the_audit_book(procs: list[Proc], btc_file: Path) -> None:
    audit = audit_files([str(btc_file)])["btcusdt"]
    p = Proc("--source", "replay", "--replay", str(btc_file), "--speed", "0", "--no-dashboard")
    procs.append(p)
    deadline = time.monotonic() + 60
    while True:
        try:
            health = httpx.get(f"{p.base}/health", timeout=2).json()
            if health.get("replay", {}).get("finished"):
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "replay did not finish"
        time.sleep(0.2)
    assert health["source"]["kind"] == "replay" and health["status"] == "healthy"
    book = httpx.get(f"{p.base}/book/btcusdt", timeout=10).json()
    assert book["last_update_id"] == audit.book.last_update_id
    assert len(book["bids"]) == len(audit.book.bids) and len(book["asks"]) == len(audit.book.asks)
    expected_bids = [[audit.book.price(k), q] for k, q in reversed(audit.book.bids.items())]
    assert book["bids"] == expected_bids
    code, _took, err = p.interrupt()
    assert code == 0 and "Traceback" not in err


def test_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "main.py", "--source", "sim", "--api-port", str(port), "--no-dashboard"],
            cwd=REPO, capture_output=True, text=True, timeout=30,
        )
    assert proc.returncode == 2
    assert f"API port {port}" in proc.stderr and "not available" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_help_documents_every_flag() -> None:
    proc = subprocess.run([sys.executable, "main.py", "--help"], cwd=REPO, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0
    for flag in ("--source", "--symbols", "--replay", "--speed", "--record", "--host", "--api-port", "--dash-port",
                 "--no-dashboard", "--cadence", "--log-level", "--log-file", "--sim-url"):
        assert flag in proc.stdout
    assert "LIQ_SOURCE" in proc.stdout
