"""``python main.py --help`` as a new user reads it: no "(default: None)" noise, and
every flag names the environment variable that sets the same thing.

The variable of each flag is checked twice: it appears in the flag's help, and setting
it really gives the same settings as passing the flag (so the help cannot name a
variable that does nothing, or the wrong one).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.conftest import REPO

# flag -> (the flag's arguments, its variable, the variable's value); one sample each
FLAGS: dict[str, tuple[list[str], str, str]] = {
    "--source": (["sim"], "LIQ_SOURCE", "sim"),
    "--symbols": (["solusdt,xrpusdt"], "LIQ_SYMBOLS", "solusdt,xrpusdt"),
    "--replay": (["a.gz", "b.gz"], "LIQ_REPLAY_FILES", "a.gz,b.gz"),
    "--speed": (["3"], "LIQ_REPLAY_SPEED", "3"),
    "--record": (["/tmp/rec"], "LIQ_RECORD_DIR", "/tmp/rec"),
    "--data-dir": (["/tmp/liq-data"], "LIQ_DATA_DIR", "/tmp/liq-data"),
    "--no-history": ([], "LIQ_HISTORY", "0"),
    "--retain": (["90m"], "LIQ_RETAIN_S", "5400"),
    "--max-disk": (["500MB"], "LIQ_MAX_DISK_BYTES", "500000000"),
    "--host": (["0.0.0.0"], "LIQ_HOST", "0.0.0.0"),
    "--api-port": (["8123"], "LIQ_API_PORT", "8123"),
    "--dash-port": (["8124"], "LIQ_DASH_PORT", "8124"),
    "--no-dashboard": ([], "LIQ_DASHBOARD", "0"),
    "--cadence": (["0.5"], "LIQ_PUSH_INTERVAL_S", "0.5"),
    "--sim-url": (["http://127.0.0.1:9000"], "LIQ_SIM_URL", "http://127.0.0.1:9000"),
    "--sim-speed": (["2"], "LIQ_SIM_SPEED", "2"),
    "--open-interest-poll": (["30"], "LIQ_OPEN_INTEREST_POLL_S", "30"),
    "--no-derivatives": ([], "LIQ_DERIVATIVES_STREAMS", "0"),
    "--seed": (["7"], "LIQ_SIM_SEED", "7"),
    "--no-screener": ([], "LIQ_SCREENER", "0"),
    "--focus-max": (["3"], "LIQ_FOCUS_MAX", "3"),
    "--focus-idle": (["30"], "LIQ_FOCUS_IDLE_S", "30"),
    "--sim-market": (["5"], "LIQ_SIM_MARKET", "5"),
    "--alerts": (["/tmp/liq-rules.json"], "LIQ_ALERTS_FILE", "/tmp/liq-rules.json"),
    "--alerts-link": (["http://desk.example:8050"], "LIQ_ALERTS_DASHBOARD_URL", "http://desk.example:8050"),
    "--log-level": (["debug"], "LIQ_LOG_LEVEL", "debug"),
    "--log-file": (["/tmp/liq.log"], "LIQ_LOG_FILE", "/tmp/liq.log"),
    "--allow-origin": (["https://desk.example"], "LIQ_ALLOW_ORIGINS", "https://desk.example"),
    "--forwarded-allow-ips": (["10.0.0.1"], "LIQ_FORWARDED_ALLOW_IPS", "10.0.0.1"),
    "--role": (["api"], "LIQ_ROLE", "api"),
    "--bus": (["nats://10.0.0.2:4222"], "LIQ_BUS_URL", "nats://10.0.0.2:4222"),
    "--shard": (["1/2"], "LIQ_SHARD", "1/2"),
    "--node": (["ingest-1"], "LIQ_NODE_NAME", "ingest-1"),
    "--api-urls": (["http://10.0.0.3:8000,http://10.0.0.4:8000"], "LIQ_API_URLS",
                   "http://10.0.0.3:8000,http://10.0.0.4:8000"),
}
NO_VARIABLE = {"-h", "--help"}
# Flags that set what is already the default (their variable is checked through their --no- twin).
SAME_AS_DEFAULT = {"--screener": "LIQ_SCREENER"}


def help_text() -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIQ_")}
    env["COLUMNS"] = "100"
    proc = subprocess.run([sys.executable, "main.py", "--help"], cwd=REPO, capture_output=True, text=True,
                          timeout=30, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    return proc.stdout


def flag_helps(text: str) -> dict[str, str]:
    """Each option's help, its wrapped lines joined: {"--source": "where the books ..."}."""
    options = text.split("options:", 1)[1]
    entries: dict[str, list[str]] = {}
    current: list[str] = []
    for line in options.splitlines():
        m = re.match(r"^  (-[\w-]+)(?:, (--[\w-]+))?", line)
        if m:
            current = []
            for flag in filter(None, m.groups()):
                entries[flag] = current
            rest = line[m.end():]
            # "  --flag METAVAR   help..." on one line, or the help on the next lines
            parts = re.split(r"\s{2,}", rest, maxsplit=1)
            if len(parts) == 2:
                current.append(parts[1])
        elif line.strip():
            current.append(line.strip())
    return {flag: " ".join(lines) for flag, lines in entries.items()}


def test_help_has_no_default_none() -> None:
    text = help_text()
    assert "default: None" not in text, text
    assert "(default:" not in text, "argparse's own default suffix is back:\n" + text


def test_every_flag_names_its_variable() -> None:
    helps = flag_helps(help_text())
    assert set(helps) == set(FLAGS) | NO_VARIABLE | set(SAME_AS_DEFAULT), f"flags in --help: {sorted(helps)}"
    named = {flag: variable for flag, (_args, variable, _value) in FLAGS.items()} | SAME_AS_DEFAULT
    missing = [f"{flag}: {variable} not in {helps[flag]!r}" for flag, variable in named.items()
               if not re.search(rf"\b{variable}\b", helps[flag])]
    assert not missing, "\n".join(missing)
    # flags with a default say it (the ones without one, like --record, have none)
    for flag in ("--source", "--symbols", "--speed", "--host", "--api-port", "--dash-port", "--cadence",
                 "--sim-speed", "--seed", "--log-level", "--data-dir", "--retain", "--max-disk"):
        assert "default " in helps[flag], f"{flag}: {helps[flag]!r}"


@pytest.mark.parametrize("flag", sorted(FLAGS))
def test_each_variable_does_what_its_flag_does(flag: str) -> None:
    sys.path.insert(0, str(REPO))
    from config import load_settings
    from main import build_parser, settings_from_args

    args, variable, value = FLAGS[flag]
    by_flag = settings_from_args(build_parser().parse_args([flag, *args]), environ={})
    by_variable = load_settings(environ={variable: value})
    defaults = load_settings(environ={})
    assert by_flag != defaults, f"{flag} {args} changed nothing"
    assert by_flag == by_variable, f"{flag} {args} and {variable}={value} give different settings"
