"""main.py's roles at the edges: a bad or unreachable --bus is one line and exit
code 2, a NATS server without JetStream is refused, and the default role never
loads the NATS client."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bus.nats_server import find_nats_server, free_port
from tests.conftest import REPO
from tests.waiting import CEILING_S


def test_an_unreachable_bus_is_one_line_and_exit_code_2() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIQ_")} | {"LIQ_BUS_CONNECT_TIMEOUT_S": "1"}
    proc = subprocess.run([sys.executable, "main.py", "--role", "api", "--bus", f"nats://127.0.0.1:{free_port()}",
                           "--api-port", "0", "--no-dashboard"], cwd=REPO, capture_output=True, text=True,
                          timeout=CEILING_S, env=env)
    assert proc.returncode == 2, proc.stderr
    assert "no NATS server answered within 1 s" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


@pytest.mark.parametrize("args, says", [
    (["--role", "ingest", "--bus", "127.0.0.1:4222"], "--bus must be nats://HOST:PORT"),
    (["--role", "api", "--bus", "nats://127.0.0.1"], "has no port"),
    (["--role", "api"], "--role api needs --bus"),
    (["--bus", "nats://127.0.0.1:4222"], "--bus and --shard are for --role ingest or api"),
    (["--role", "ingest", "--bus", "nats://127.0.0.1:4222", "--shard", "3/2"], "--shard must be i/n"),
    (["--role", "api", "--bus", "nats://127.0.0.1:4222", "--node", "a.b"], "not a valid node name"),
])
def test_a_bad_bus_setting_is_one_line_and_exit_code_2(args: list[str], says: str,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    import main

    assert main.main([*args, "--api-port", "0", "--no-dashboard"]) == 2
    err = capsys.readouterr().err
    assert says in err and len(err.strip().splitlines()) == 1, err


def test_a_nats_server_without_jetstream_is_refused_in_one_line() -> None:
    port = free_port()
    server = subprocess.Popen([find_nats_server(), "-a", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LIQ_")} | {"LIQ_BUS_CONNECT_TIMEOUT_S": "10"}
        proc = subprocess.run([sys.executable, "main.py", "--role", "api", "--bus", f"nats://127.0.0.1:{port}",
                               "--api-port", "0", "--no-dashboard"], cwd=REPO, capture_output=True, text=True,
                              timeout=CEILING_S, env=env)
    finally:
        server.kill()
        server.wait()
    assert proc.returncode == 2 and "no JetStream" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_the_default_role_never_loads_the_nats_client() -> None:
    code = ("import sys, main, sim_stack, api.assembly, dashboard.app\n"
            "assert not [m for m in sys.modules if m == 'nats' or m.startswith('nats.')], 'nats imported'\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=CEILING_S)
    assert proc.returncode == 0, proc.stderr
