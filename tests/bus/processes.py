"""The cluster as real processes: a standalone simulated exchange, and main.py in
any role on free loopback ports, as an operator would start them.

Every wait is for a condition (a log line, /health, a frame), never for a duration;
the ceilings only turn a hang into a failure."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from typing import Any

import httpx
import websockets.sync.client as ws_sync
from websockets.exceptions import ConnectionClosed

from tests.conftest import REPO
from tests.waiting import CEILING_S, wait_until_sync

LAUNCH_ATTEMPTS = 5


def free_ports(n: int, consecutive: bool = False) -> list[int]:
    """``n`` ports free right now (all bound at once, then released); consecutive
    ones when asked (the simulated exchange serves websockets on its port + 1)."""
    for _ in range(50):
        socks = [socket.socket() for _ in range(n)]
        try:
            socks[0].bind(("127.0.0.1", 0))
            first = int(socks[0].getsockname()[1])
            for i, s in enumerate(socks[1:], start=1):
                s.bind(("127.0.0.1", first + i if consecutive else 0))
            return [int(s.getsockname()[1]) for s in socks]
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError(f"no {n} free ports")


class Process:
    """A child process with its stderr (and stdout) lines kept."""

    def __init__(self, cmd: list[str], env: dict[str, str] | None = None) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("LIQ_")}
        self.env.update(env or {})
        self.lines: list[str] = []
        self.popen = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True, env=self.env)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.append(line)

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def has(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def wait_line(self, text: str, what: str = "") -> None:
        def seen() -> bool:
            assert self.popen.poll() is None or self.has(text), f"exited early:\n{self.log[-3000:]}"
            return self.has(text)

        wait_until_sync(seen, CEILING_S, what or repr(text))

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def sigkill(self) -> None:
        if self.alive:
            self.popen.kill()
        self.popen.wait(CEILING_S)

    def stop(self) -> None:
        """SIGINT (as Ctrl-C); SIGKILL if it does not exit."""
        if self.alive:
            self.popen.send_signal(signal.SIGINT)
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._reader.join(5)


class SimExchange(Process):
    """``python -m exchange_sim`` on two consecutive free ports (REST, websockets)."""

    def __init__(self, symbols: str = "btcusdt,ethusdt") -> None:
        self.port, _ws = free_ports(2, consecutive=True)
        super().__init__([sys.executable, "-m", "exchange_sim", "--port", str(self.port), "--symbols", symbols,
                          "--warmup", "5"])
        self.url = f"http://127.0.0.1:{self.port}"

        def answers() -> bool:
            assert self.alive, f"the simulated exchange exited:\n{self.log[-3000:]}"
            try:
                return httpx.get(f"{self.url}/fapi/v1/ping", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until_sync(answers, CEILING_S, "the simulated exchange to answer")


class Node(Process):
    """``python main.py --role ROLE`` on free ports. Started once ``ready`` is in its
    log (by default the line saying the API serves); launched again on new ports when
    one was taken in between."""

    def __init__(self, role: str, bus: str, name: str, *args: str, env: dict[str, str] | None = None,
                 dashboard: bool = False, ready: str = " API: http") -> None:
        self.role, self.name = role, name
        for _attempt in range(LAUNCH_ATTEMPTS):
            self.api_port, self.dash_port = free_ports(2)
            dash = ["--dash-port", str(self.dash_port)] if dashboard else ["--no-dashboard"]
            if role == "ingest" and "--data-dir" not in args:
                dash.append("--no-history")  # nodes of one test would share ./data (and the repository's)
            super().__init__([sys.executable, "main.py", "--role", role, "--bus", bus, "--node", name,
                              "--api-port", str(self.api_port), *dash, *args], env=env)
            wait_until_sync(lambda: self.has(ready) or not self.alive, CEILING_S, f"{name} to start")
            if self.has(ready):
                break
            self._reader.join(5)
            if self.popen.returncode == 2 and "not available" in self.log:
                continue  # a port was taken between choosing it and binding it
            raise AssertionError(f"{name} exited with {self.popen.returncode}:\n{self.log[-3000:]}")
        self.base = f"http://127.0.0.1:{self.api_port}"
        self.ws_base = f"ws://127.0.0.1:{self.api_port}"

    def health(self) -> dict[str, Any]:
        assert self.alive, f"{self.name} exited:\n{self.log[-3000:]}"
        return httpx.get(f"{self.base}/health", timeout=10).json()

    def wait_health(self, predicate: Any, what: str) -> dict[str, Any]:
        last: dict[str, Any] = {}

        def reached() -> bool:
            nonlocal last
            try:
                last = self.health()
            except httpx.HTTPError:
                return False
            return bool(predicate(last))

        try:
            wait_until_sync(reached, CEILING_S, f"{self.name}: {what}", poll_s=0.2)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last /health: {json.dumps(last)[:3000]}") from None
        return last


def state_of(health: dict[str, Any], symbol: str) -> str | None:
    return health.get("sync", {}).get(symbol, {}).get("state")


class FrameWatcher:
    """A websocket client of ``/ws/<symbol>`` in a thread, keeping every message."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.messages: list[dict[str, Any]] = []
        self.closed = False
        self.error: BaseException | None = None
        self._ws: Any = None
        self._open = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        if not self._open.wait(CEILING_S) or self.error is not None:
            raise AssertionError(f"could not open {url}: {self.error!r}")

    def _read(self) -> None:
        try:
            with ws_sync.connect(self.url, max_size=None, open_timeout=CEILING_S) as ws:
                self._ws = ws
                self._open.set()
                while True:
                    self.messages.append(json.loads(ws.recv()))
        except (ConnectionClosed, OSError) as exc:
            self.error = self.error or exc
        finally:
            self.closed = True
            self._open.set()

    @property
    def frames(self) -> list[dict[str, Any]]:
        return [m for m in list(self.messages) if m.get("type") == "frame"]

    def every_frame(self) -> list[dict[str, Any]]:
        """The frames of the history message, then the ones pushed since."""
        history = [f for m in list(self.messages) if m.get("type") == "history" for f in m["frames"]]
        return history + self.frames

    def history(self) -> dict[str, Any]:
        """The first message: the history the server sends on connect."""
        wait_until_sync(lambda: bool(self.messages) or self.closed, CEILING_S, f"the history of {self.url}",
                        poll_s=0.05)
        assert self.messages, f"{self.url} closed before sending its history: {self.error!r}"
        return self.messages[0]

    def wait_frame(self, predicate: Any, what: str, after: int = 0) -> dict[str, Any]:
        """The first frame from index ``after`` on that satisfies ``predicate``."""
        found: list[dict[str, Any]] = []

        def seen() -> bool:
            for f in self.frames[after:]:
                if predicate(f):
                    found.append(f)
                    return True
            assert not self.closed, f"the websocket closed while waiting for {what}"
            return False

        wait_until_sync(seen, CEILING_S, what, poll_s=0.05)
        return found[0]

    def close(self) -> None:
        if self._ws is not None:
            self._ws.close()
        self._thread.join(5)
