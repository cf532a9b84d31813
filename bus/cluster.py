"""``make cluster``: the roles of issue 18 on one machine, each its own process.

    python -m bus.cluster [--symbols btcusdt,ethusdt] [--port-offset 0] [--logs DIR]

Starts a NATS server with JetStream (port 4222), one standalone simulated exchange
(9100, websockets 9101), two ingest nodes each owning half the symbols (--shard 1/2
and 2/2; their own APIs on 8101, 8102) and two API nodes with their dashboards
(8001 + 8051, 8002 + 8052), each page given both API nodes. Prints the URLs, then
runs until Ctrl-C, which stops every process (API nodes first). Kill any node
meanwhile (``kill -9``) to watch the others carry on: each process's log is in
``--logs`` (warnings and errors are also echoed here). ``--port-offset N`` adds N
to every port.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bus.nats_server import NatsServer

REPO = Path(__file__).resolve().parent.parent
READY_TIMEOUT_S = 120.0


class Child:
    """One process of the cluster; its output goes to ``log`` (and its warnings to our stdout)."""

    def __init__(self, name: str, cmd: list[str], log: Path, ready: str, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.ready_text = ready
        self.ready = threading.Event()
        self.log = log
        env = {k: v for k, v in os.environ.items() if not k.startswith("LIQ_")} | (env or {})
        # Its own session: Ctrl-C in the terminal reaches this script only, which then
        # stops the processes in order (API nodes, ingest nodes, the exchange, NATS).
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env=env, start_new_session=True)
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        with open(self.log, "a") as out:
            for line in self.proc.stdout:
                out.write(line)
                out.flush()
                if self.ready_text in line:
                    self.ready.set()
                if " WARNING " in line or " ERROR " in line or line.startswith("error:"):
                    sys.stdout.write(f"[{self.name}] {line}")
                    sys.stdout.flush()
        self.ready.set()  # exited: nothing more to wait for

    def wait_ready(self) -> None:
        if not self.ready.wait(READY_TIMEOUT_S) or self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} did not start (exit code {self.proc.poll()}); see {self.log}")

    def interrupt(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)

    def wait(self, timeout: float) -> None:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bus.cluster", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--symbols", default="btcusdt,ethusdt", help="the simulated market (default btcusdt,ethusdt)")
    parser.add_argument("--port-offset", type=int, default=0, help="added to every port (default 0)")
    parser.add_argument("--logs", default=None, help="directory of the processes' logs (default: a new temp dir)")
    args = parser.parse_args(argv)
    off = args.port_offset
    py = sys.executable
    logs = Path(args.logs) if args.logs else Path(tempfile.mkdtemp(prefix="liq-cluster-"))
    logs.mkdir(parents=True, exist_ok=True)
    nats = NatsServer(logs / "jetstream", port=4222 + off, log_file=logs / "nats.log", own_session=True)
    children: list[Child] = []
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        nats.start()
        sim_port = 9100 + off
        sim_url = f"http://127.0.0.1:{sim_port}"
        sim = Child("exchange", [py, "-m", "exchange_sim", "--port", str(sim_port), "--symbols", args.symbols],
                    logs / "exchange.log", "rest_base_url")
        children.append(sim)
        sim.wait_ready()
        ingest = [Child(f"ingest-{i}", [py, "main.py", "--role", "ingest", "--bus", nats.url, "--node", f"ingest-{i}",
                                        "--symbols", args.symbols, "--shard", f"{i}/2", "--source", "sim",
                                        "--sim-url", sim_url, "--api-port", str(8100 + i + off),
                                        "--data-dir", f"data/ingest-{i}"],  # each node records on its own
                        logs / f"ingest-{i}.log", " API: http") for i in (1, 2)]
        children += ingest
        for child in ingest:
            child.wait_ready()
        api_urls = [f"http://127.0.0.1:{8000 + i + off}" for i in (1, 2)]
        api = [Child(f"api-{i}", [py, "main.py", "--role", "api", "--bus", nats.url, "--node", f"api-{i}",
                                  "--api-port", str(8000 + i + off), "--dash-port", str(8050 + i + off),
                                  "--api-urls", ",".join(api_urls)],
                     logs / f"api-{i}.log", " API: http") for i in (1, 2)]
        children += api
        for child in api:
            child.wait_ready()
        print(f"""
cluster up (logs in {logs}):
  NATS (JetStream)   {nats.url}
  simulated exchange {sim_url}
  ingest-1           http://127.0.0.1:{8101 + off}/health   (shard 1/2)
  ingest-2           http://127.0.0.1:{8102 + off}/health   (shard 2/2)
  api-1              {api_urls[0]}/health   dashboard http://127.0.0.1:{8051 + off}/
  api-2              {api_urls[1]}/health   dashboard http://127.0.0.1:{8052 + off}/
Ctrl-C stops them all.""", flush=True)
        exited: set[str] = set()
        while not stop.wait(1.0):
            for child in children:
                if child.proc.poll() is not None and child.name not in exited:
                    exited.add(child.name)
                    print(f"[{child.name}] exited with {child.proc.returncode}", flush=True)
        return 0
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        print("stopping the cluster", flush=True)
        for group in (children[3:], children[1:3], children[:1]):  # API nodes, ingest nodes, the exchange
            for child in group:
                child.interrupt()
            deadline = time.monotonic() + 10
            for child in group:
                child.wait(max(0.1, deadline - time.monotonic()))
        nats.stop()


if __name__ == "__main__":
    raise SystemExit(main())
