"""main.py as a new user runs it: a fresh process on free ports.

Every wait is for a condition (a log line, /health, the process's exit), with a
generous ceiling; nothing is timed."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets.sync.client as ws_sync
from websockets.exceptions import ConnectionClosed

from data_ingestion.audit import audit_files
from tests.conftest import REPO
from tests.stack import TEST_WARMUP_S
from tests.waiting import CEILING_S, wait_until_sync

LAUNCH_ATTEMPTS = 5


def candidate_ports(n: int) -> list[int]:
    """``n`` distinct ports free right now (all bound at once, then released). Another
    process may take one before main.py binds it: Proc then launches again."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


class Proc:
    """main.py in a subprocess on fresh ports. Started once its log says the API is up
    (its ports are then held by it); launched again on new ports when one was taken
    in between (main.py exits 2 saying the port is "not available"). History goes to
    a temporary data directory unless the arguments say where (never the repository's)."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self._data_dir: tempfile.TemporaryDirectory[str] | None = None
        if not {"--data-dir", "--no-history", "--record"} & set(args):
            self._data_dir = tempfile.TemporaryDirectory(prefix="liq-e2e-")
            args = (*args, "--data-dir", self._data_dir.name)
        self.args = args
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("LIQ_")}
        self.env["LIQ_SIM_WARMUP_S"] = str(TEST_WARMUP_S)  # no oracle here reads the market's past
        self.env.update(env or {})
        self.lines: list[str] = []
        for _attempt in range(LAUNCH_ATTEMPTS):
            self._launch()
            try:
                wait_until_sync(lambda: self.started or self.popen.poll() is not None, CEILING_S,
                                "main.py to start")
            except BaseException:
                self.kill()
                raise
            if self.started:
                return
            self._reader.join(10)
            if self.popen.returncode == 2 and "not available" in self.err:
                continue  # a port was taken between choosing it and binding it
            raise AssertionError(f"main.py exited with {self.popen.returncode}: {self.err[-2000:]}")
        raise AssertionError(f"no free ports in {LAUNCH_ATTEMPTS} launches: {self.err[-2000:]}")

    def _launch(self) -> None:
        self.api_port, self.dash_port = candidate_ports(2)
        self.lines = []
        self.popen = subprocess.Popen(
            [sys.executable, "main.py", "--api-port", str(self.api_port), "--dash-port", str(self.dash_port),
             *self.args],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=self.env,
        )
        self._reader = threading.Thread(target=self._read_stderr, args=(self.popen, self.lines), daemon=True)
        self._reader.start()
        self.base = f"http://127.0.0.1:{self.api_port}"

    @staticmethod
    def _read_stderr(popen: subprocess.Popen[str], lines: list[str]) -> None:
        assert popen.stderr is not None
        for line in popen.stderr:
            lines.append(line)

    @property
    def err(self) -> str:
        return "".join(self.lines)

    @property
    def started(self) -> bool:
        """The log line main.py writes once the API (and dashboard) are serving."""
        return any(" API: http" in line for line in self.lines)

    def wait_health(self, status: str = "healthy", timeout: float = CEILING_S) -> dict:
        last: dict | None = None

        def reached() -> bool:
            nonlocal last
            assert self.popen.poll() is None, f"main.py exited early: {self.err[-2000:]}"
            try:
                last = httpx.get(f"{self.base}/health", timeout=5).json()
            except httpx.HTTPError:
                return False
            return last["status"] == status

        try:
            wait_until_sync(reached, timeout, f"/health {status}", poll_s=0.2)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last /health: {last}") from None
        assert last is not None
        return last

    def interrupt(self) -> tuple[int, str]:
        """SIGINT, as Ctrl-C; (exit code, stderr) once it has exited."""
        self.popen.send_signal(signal.SIGINT)
        return self.wait_exit()

    def wait_exit(self, timeout: float = CEILING_S) -> tuple[int, str]:
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            raise
        self._reader.join(10)
        return self.popen.returncode, self.err

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()
        if self._data_dir is not None:
            self._data_dir.cleanup()
            self._data_dir = None


def assert_stopped_cleanly(code: int, err: str) -> None:
    """Exit 0 after main.py's own clean stop, within its own shutdown budget."""
    assert code == 0, err[-2000:]
    assert "stopped cleanly" in err, err[-2000:]
    assert "shutdown took too long" not in err, err[-2000:]
    assert "Traceback" not in err, err[-2000:]


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    for p in started:
        p.kill()


def test_new_user_runs_the_simulated_market(procs: list[Proc]) -> None:
    p = Proc("--source", "sim")
    procs.append(p)
    health = p.wait_health("healthy")
    assert health["source"]["kind"] == "sim"
    with ws_sync.connect(f"ws://127.0.0.1:{p.api_port}/ws/btcusdt", max_size=None, open_timeout=CEILING_S) as ws:
        first = json.loads(ws.recv(timeout=CEILING_S))
        assert first["type"] == "history"
        frame = json.loads(ws.recv(timeout=CEILING_S))
        assert frame["type"] == "frame" and frame["symbol"] == "btcusdt"
        assert frame["mid_price"] is not None and frame["bid_levels"]
        sim = httpx.get(f"{p.base}/simulate/btcusdt", params={"side": "buy", "size": "1"}, timeout=CEILING_S)
        assert sim.status_code == 200 and sim.json()["quantity_filled"] == 1.0
        page = httpx.get(f"http://127.0.0.1:{p.dash_port}/", timeout=CEILING_S)
        assert page.status_code == 200
        # Ctrl-C with a client connected: it is handed a close frame, the process
        # stops by itself (not by its shutdown timeout) and exits 0.
        p.popen.send_signal(signal.SIGINT)
        with pytest.raises(ConnectionClosed):
            while True:
                ws.recv(timeout=CEILING_S)
        assert ws.close_code == 1001 and ws.close_reason == "server shutting down"
    code, err = p.wait_exit()
    assert_stopped_cleanly(code, err)


@pytest.mark.browser
def test_new_user_sees_the_dashboard_in_chromium(procs: list[Proc]) -> None:
    """The dashboard renders in headless Chromium: ladder rows with live prices, no console errors."""
    pytest.importorskip("playwright.sync_api")
    from playwright.sync_api import sync_playwright

    from dashboard.harness import CHROMIUM, launch_chromium

    if not os.path.exists(CHROMIUM):
        pytest.skip(f"no Chromium at {CHROMIUM} (make chromium)")
    p = Proc("--source", "sim")
    procs.append(p)
    p.wait_health("healthy")
    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            tab = browser.new_page(viewport={"width": 1400, "height": 900})
            errors: list[str] = []
            tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            tab.goto(f"http://127.0.0.1:{p.dash_port}/", timeout=CEILING_S * 1000)
            tab.wait_for_function(
                "document.querySelectorAll('#ladder [data-side=\"bid\"]').length === 10",
                timeout=CEILING_S * 1000,
            )
            assert "SIMULATED" in tab.inner_text("body")
            assert errors == []
        finally:
            browser.close()
    code, err = p.interrupt()
    assert_stopped_cleanly(code, err)


def test_auto_falls_back_to_the_simulated_market(procs: list[Proc]) -> None:
    # Port 9 on loopback refuses at once: Binance unreachable, deterministically.
    p = Proc("--source", "auto", "--no-dashboard", env={"LIQ_REST_BASE_URL": "http://127.0.0.1:9"})
    procs.append(p)
    health = p.wait_health("healthy")
    assert health["source"]["kind"] == "sim"
    assert "auto" in health["source"]["reason"] and "SIMULATED" in health["source"]["reason"]
    code, err = p.interrupt()
    assert_stopped_cleanly(code, err)
    assert "showing the SIMULATED market" in err  # said in the log too


def test_replay_at_full_speed_ends_with_the_audit_book(procs: list[Proc], btc_file: Path) -> None:
    audit = audit_files([str(btc_file)])["btcusdt"]
    p = Proc("--source", "replay", "--replay", str(btc_file), "--speed", "0", "--no-dashboard")
    procs.append(p)
    health: dict = {}

    def finished() -> bool:
        nonlocal health
        assert p.popen.poll() is None, f"main.py exited early: {p.err[-2000:]}"
        try:
            health = httpx.get(f"{p.base}/health", timeout=5).json()
        except httpx.HTTPError:
            return False
        return bool(health.get("replay", {}).get("finished"))

    wait_until_sync(finished, 120, "the replay to finish", poll_s=0.2)
    assert health["source"]["kind"] == "replay" and health["status"] == "healthy"
    assert health["replay"]["files"] == [btc_file.name]  # a name, not the path on this machine
    book = httpx.get(f"{p.base}/book/btcusdt", timeout=CEILING_S).json()
    assert book["last_update_id"] == audit.book.last_update_id
    assert len(book["bids"]) == len(audit.book.bids) and len(book["asks"]) == len(audit.book.asks)
    expected_bids = [[audit.book.price(k), q] for k, q in reversed(audit.book.bids.items())]
    assert book["bids"] == expected_bids
    code, err = p.interrupt()
    assert_stopped_cleanly(code, err)


def test_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "main.py", "--source", "sim", "--api-port", str(port), "--no-dashboard", "--no-history"],
            cwd=REPO, capture_output=True, text=True, timeout=CEILING_S,
        )
    assert proc.returncode == 2
    assert f"API port {port}" in proc.stderr and "not available" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_help_documents_every_flag() -> None:
    proc = subprocess.run([sys.executable, "main.py", "--help"], cwd=REPO, capture_output=True, text=True,
                          timeout=CEILING_S)
    assert proc.returncode == 0
    for flag in ("--source", "--symbols", "--replay", "--speed", "--record", "--host", "--api-port", "--dash-port",
                 "--no-dashboard", "--cadence", "--log-level", "--log-file", "--sim-url", "--data-dir", "--no-history",
                 "--retain", "--max-disk"):
        assert flag in proc.stdout
    assert "LIQ_SOURCE" in proc.stdout
