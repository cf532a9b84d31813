"""The rules file: JSON and TOML, saved back in its own format, secrets' sources
checked at load (present, outside the repository) and never their values shown."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from alerting.rules import REPO_ROOT, RulesError, load_file, public_document, redact, save_file
from alerting.rules import parse as parse_doc

TOML = """
[destinations.ops]
url_env = "LIQ_TEST_OPS_HOOK"
rate_per_s = 2.0

[destinations.tg]
format = "telegram"
token_file = "{token_file}"
chat_id = "-1001"

[[rules]]
name = "big-walls"
kind = "wall"
symbols = ["BTCUSDT", "ethusdt"]
min_notional = 1000000.0
max_distance_bps = 20.0
cooldown_s = 300.0
destinations = ["ops", "tg"]

[[rules]]
name = "thin"
kind = "depth_collapse"
drop_pct = 60.0
window_s = 30.0
"""


def test_a_toml_file_loads_and_is_saved_back_as_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIQ_TEST_OPS_HOOK", "https://hooks.slack.com/services/T1/B2/secretpart")
    token = tmp_path / "tg-token"
    token.write_text("123456:ABCsecret\n")
    path = tmp_path / "alerts.toml"
    path.write_text(TOML.format(token_file=token))
    rules = load_file(path)
    assert [r.name for r in rules.rules] == ["big-walls", "thin"]
    assert rules.rules[0].symbols == ["btcusdt", "ethusdt"] and rules.rules[1].symbols == "all"
    shown = json.dumps(public_document(rules))
    assert "secretpart" not in shown and "ABCsecret" not in shown
    assert public_document(rules)["destinations"]["ops"]["format_in_use"] == "slack"  # by the URL's host
    save_file(path, rules)
    assert load_file(path) == rules and path.read_text().startswith("[destinations.")


def test_a_json_file_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "alerts.json"
    path.write_text(json.dumps({"destinations": {"d": {"url": "https://example.com/hook/abc"}},
                                "rules": [{"name": "l", "kind": "liquidation_burst", "min_notional": 5e5,
                                           "destinations": ["d"]}]}))
    rules = load_file(path)
    save_file(path, rules)
    assert load_file(path) == rules
    assert public_document(rules)["destinations"]["d"]["url"] == "https://example.com"


def test_saving_keeps_the_files_mode_and_a_new_file_is_the_owners(tmp_path: Path) -> None:
    rules = parse_doc({"rules": [{"name": "w", "kind": "wall"}]})
    old = tmp_path / "old.json"
    old.write_text("{}")
    old.chmod(0o640)
    save_file(old, rules)
    new = tmp_path / "new.toml"
    save_file(new, rules)
    assert (old.stat().st_mode & 0o777, new.stat().st_mode & 0o777) == (0o640, 0o600)
    assert load_file(old) == rules == load_file(new)


def test_errors_name_the_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "alerts.toml"
    path.write_text('[[rules]]\nname = "x"\nkind = "wall"\ncooldown_s = -1\n')
    with pytest.raises(RulesError, match=r"alerts.toml: rules\[0\].cooldown_s: Expected `float` >= 0"):
        load_file(path)
    path.write_text("[[rules]\n")
    with pytest.raises(RulesError, match="alerts.toml: not valid TOML"):
        load_file(path)


def test_a_secret_file_inside_the_repository_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "alerts.json"
    inside = REPO_ROOT / "README.md"
    path.write_text(json.dumps({"destinations": {"d": {"url_file": str(inside)}}}))
    with pytest.raises(RulesError, match=r"destinations.d.url_file: a secret file must be outside the repository"):
        load_file(path)


@pytest.fixture
def repo_dir() -> Iterator[Path]:
    """A directory inside the repository, removed after the test."""
    d = Path(tempfile.mkdtemp(prefix=".test-alerts-", dir=REPO_ROOT))
    try:
        yield d
    finally:
        shutil.rmtree(d)


def test_an_inline_secret_url_in_a_rules_file_inside_the_repository_is_refused(
        tmp_path: Path, repo_dir: Path) -> None:
    hook = "https://hooks.slack.com/services/T0/B0/SECRETxyz"
    for url in (hook, "https://receiver.example/?token=SECRETxyz", "https://user:SECRETxyz@receiver.example"):
        path = repo_dir / "alerts.json"
        path.write_text(json.dumps({"destinations": {"d": {"url": url}}}))
        with pytest.raises(RulesError, match=r"alerts.json: destinations.d.url: a webhook URL with a path, query "
                                             r"or credentials is a secret and the rules file is inside the "
                                             r"repository .*: use url_env or url_file$") as caught:
            load_file(path)
        assert "SECRETxyz" not in str(caught.value)
        # the same file outside the repository is allowed, as documented
        outside = tmp_path / "alerts.json"
        outside.write_text(path.read_text())
        assert load_file(outside).destinations["d"].url == url
    # a bare host carries no secret (a Telegram destination's API base, say)
    path = repo_dir / "bare.toml"
    path.write_text('[destinations.tg]\nformat = "telegram"\nurl = "https://api.telegram.org/"\n'
                    'token_env = "LIQ_TEST_TG"\nchat_id = "1"\n')
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LIQ_TEST_TG", "1:abc")
        assert load_file(path).destinations["tg"].url == "https://api.telegram.org/"


def test_an_inline_secret_url_inside_the_repository_stops_the_start(repo_dir: Path) -> None:
    from config import load_settings
    from main import UsageError, check_settings

    path = repo_dir / "alerts.json"
    path.write_text(json.dumps({"destinations": {"d": {"url": "https://discord.com/api/webhooks/1/SECRETxyz"}}}))
    with pytest.raises(UsageError, match=r"^--alerts: .*alerts.json: destinations.d.url: .*inside the repository"
                                         r"[^\n]*$") as caught:
        check_settings(load_settings(environ={}, alerts_file=str(path)))
    assert "SECRETxyz" not in str(caught.value)


def test_redact_keeps_scheme_host_and_port() -> None:
    assert redact("https://hooks.slack.com/services/T/B/x?y=1") == "https://hooks.slack.com"
    assert redact("http://[::1]:8080/a/b") == "http://[::1]:8080"
    assert redact("user:pass@nowhere") == "(not a URL)"


def test_a_bad_rules_file_stops_the_start_with_one_line(tmp_path: Path) -> None:
    from config import load_settings
    from main import UsageError, check_settings

    path = tmp_path / "alerts.json"
    path.write_text(json.dumps({"rules": [{"name": "x", "kind": "wall", "destinations": ["slack"]}]}))
    with pytest.raises(UsageError, match=r"^--alerts: .*alerts.json: rules\[0\].destinations: no destination named"):
        check_settings(load_settings(environ={}, alerts_file=str(path)))
    check_settings(load_settings(environ={}, alerts_file=str(tmp_path / "new.json")))  # created by the first PUT
    with pytest.raises(UsageError, match="--alerts-link must be an http"):
        check_settings(load_settings(environ={}, alerts_dashboard_url="dash:8050"))


def test_the_readmes_example_is_a_valid_rule_set(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    text = (REPO_ROOT / "README.md").read_text()
    block = text.split("# alerts.toml\n", 1)[1].split("```", 1)[0]
    # Its secrets where it says they are: a variable and two files (here under tmp_path).
    monkeypatch.setenv("DESK_SLACK_HOOK", "https://hooks.slack.com/services/T/B/x")
    for name, value in (("pager-url", "https://pager.example/hook/x"), ("telegram-token", "1:abc")):
        (tmp_path / name).write_text(value)
    path = tmp_path / "alerts.toml"
    path.write_text(block.replace("/etc/liq/", f"{tmp_path}/"))
    rules = load_file(path)
    assert [r.kind_name for r in rules.rules] == ["wall", "spread_blowout"]
    assert {n: d["format_in_use"] if "format_in_use" in d else d["format"]
            for n, d in public_document(rules)["destinations"].items()} == {
        "desk": "slack", "pager": "generic", "tg": "telegram"}
