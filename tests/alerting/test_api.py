"""Alert rules in a running stack: GET/PUT /alerts/rules (422s that change nothing,
the rules file saved), /health and /metrics, no secret in any answer, and the
simulated exchange's labelled wall episode delivered to a receiver on loopback."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from alerting.rules import REPO_ROOT, load_file
from bench.webhook_receiver import WebhookReceiver
from tests.api import promlint
from tests.stack import StackHandle, running_stack

pytestmark = pytest.mark.asyncio(loop_scope="module")

SECRET = "xoxb-SECRET-4f1c2a9e"
ENV = "LIQ_TEST_ALERT_HOOK"


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def rx() -> AsyncIterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    await receiver.start()
    yield receiver
    await receiver.stop()


@pytest.fixture(scope="module")
def rules_file(tmp_path_factory: pytest.TempPathFactory, rx: WebhookReceiver) -> Path:
    d = tmp_path_factory.mktemp("alerts")
    secret_file = d / "slack-url"
    secret_file.write_text(rx.url(f"/slack/{SECRET}") + "\n")
    os.environ[ENV] = rx.url(f"/hook/{SECRET}")
    path = d / "alerts.json"
    path.write_text(json.dumps({
        "destinations": {
            "hook": {"url_env": ENV, "rate_per_s": 100, "burst": 50},
            "chat": {"url_file": str(secret_file), "format": "slack", "rate_per_s": 100, "burst": 50},
        },
        "rules": [{"name": "btc-walls", "kind": "wall", "symbols": ["btcusdt"], "min_notional": 0,
                   "cooldown_s": 0, "destinations": ["hook", "chat"]}],
    }))
    return path


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def h(rules_file: Path) -> AsyncIterator[StackHandle]:
    try:
        async with running_stack(symbols=("btcusdt", "ethusdt"), push_interval_s=0.2, alerts_file=str(rules_file),
                                 alerts_dashboard_url="http://dash.example:8050") as handle:
            await handle.wait_synced()
            yield handle
    finally:
        os.environ.pop(ENV, None)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def http(h: StackHandle) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=h.api_url, timeout=60) as client:
        yield client


def no_secret(text: str) -> None:
    assert SECRET not in text
    assert "/hook/" not in text and "/slack/" not in text


async def test_the_labelled_wall_episode_reaches_the_receivers(h: StackHandle, rx: WebhookReceiver) -> None:
    episode = await h.sim.inject_wall("btcusdt", side="bid", distance_ticks=2, multiple=25.0, duration_s=12.0)
    price = float(episode.prices[0])

    def ours() -> list[dict[str, Any]]:
        return [b for b in rx.bodies(f"/hook/{SECRET}") if b["side"] == "bid" and b["price"] == price]

    await h.wait_for(lambda: bool(ours()), what=f"the wall at {price} delivered")
    [body] = ours()
    assert (body["symbol"], body["kind"], body["status"], body["rule"]) == ("btcusdt", "wall", "born", "btc-walls")
    assert body["size"] > 0 and abs(body["notional"] - price * body["size"]) <= 0.01 * body["notional"]
    assert body["distance_bps"] > 0 and body["alert_id"].startswith("btcusdt-")
    assert body["link"] == f"http://dash.example:8050/?symbol=btcusdt&t={body['time']}"
    # The same alert in the stack's own list, by its id.
    held = [a for a in h.stack.features["btcusdt"].alert_list() if a.id == body["alert_id"]]
    assert held and held[0].type == "WALL" and held[0].price == price
    await h.wait_for(lambda: any(body["link"] in b["text"] for b in rx.bodies(f"/slack/{SECRET}")),
                     what="the Slack-format copy")
    assert all(b["symbol"] == "btcusdt" for b in rx.bodies(f"/hook/{SECRET}"))  # the symbol filter


async def test_get_rules_wins_over_the_symbol_route_and_shows_no_secret(http: httpx.AsyncClient) -> None:
    r = await http.get("/alerts/rules")
    assert r.status_code == 200
    doc = r.json()
    no_secret(r.text)
    assert doc["file"] == "alerts.json" and doc["dashboard_url"] == "http://dash.example:8050"
    assert [x["name"] for x in doc["rules"]] == ["btc-walls"] and doc["rules"][0]["kind"] == "wall"
    assert doc["destinations"]["hook"]["url_env"] == ENV and doc["destinations"]["hook"]["format_in_use"] == "generic"
    assert doc["destinations"]["chat"]["format"] == "slack"
    sym = await http.get("/alerts/btcusdt?min_notional=0")  # the symbol route still answers
    assert sym.status_code == 200 and sym.json()["symbol"] == "btcusdt"


@pytest.mark.parametrize(("body", "field"), [
    ({"rules": [{"name": "x", "kind": "wall", "min_notional": -5}]}, "rules[0].min_notional"),
    ({"rules": [{"name": "x", "kind": "walls"}]}, "rules[0].kind"),
    ({"rules": [{"name": "x", "kind": "wall", "max_distanse_bps": 3}]}, "max_distanse_bps"),
    ({"rules": [{"name": "x", "kind": "wall", "destinations": ["nowhere"]}]}, "rules[0].destinations"),
    ({"rules": [{"name": "x", "kind": "depth_collapse"}]}, "drop_pct"),
    ({"rules": [{"name": "x", "kind": "spread_blowout"}]}, "min_spread_bps or median_multiple"),
    ({"rules": [{"name": "x", "kind": "wall"}, {"name": "x", "kind": "layering"}]}, "rules[1].name"),
    ({"rules": [], "destinations": {"d": {"url_env": "LIQ_TEST_NOT_SET"}}}, "destinations.d.url_env"),
    ({"rules": [], "destinations": {"d": {"url": "ftp://x/y"}}}, "destinations.d.url"),
    ({"rules": [], "destinations": {"d": {"url_file": "/nonexistent/secret"}}}, "destinations.d.url_file"),
    ({"rules": [], "destinations": {"d": {"format": "telegram", "token_env": ENV}}}, "destinations.d.chat_id"),
    ([1, 2], "body"),
])
async def test_a_bad_rule_set_is_a_422_naming_the_field_and_changes_nothing(
        http: httpx.AsyncClient, rules_file: Path, body: Any, field: str) -> None:
    before_file = rules_file.read_text()
    before = (await http.get("/alerts/rules")).json()
    r = await http.put("/alerts/rules", json=body)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert field in detail and "\n" not in detail and detail.endswith("the rules in force are unchanged")
    no_secret(detail)
    assert (await http.get("/alerts/rules")).json() == before and rules_file.read_text() == before_file


async def test_an_inline_secret_url_is_a_422_when_the_rules_file_is_inside_the_repository(
        http: httpx.AsyncClient, h: StackHandle, rules_file: Path) -> None:
    alerting = h.stack.alerting
    assert alerting is not None
    repo_dir = Path(tempfile.mkdtemp(prefix=".test-alerts-", dir=REPO_ROOT))
    kept = alerting.path
    body = {"rules": [], "destinations": {"d": {"url": f"https://hooks.slack.com/services/T/B/{SECRET}"}}}
    try:
        alerting.path = str(repo_dir / "alerts.json")   # as if --alerts named a file in the repository
        before = (await http.get("/alerts/rules")).json()
        r = await http.put("/alerts/rules", json=body)
        assert r.status_code == 422, r.text
        detail = r.json()["detail"]
        assert detail.startswith("destinations.d.url: a webhook URL with a path, query or credentials is a secret")
        assert "\n" not in detail and detail.endswith("the rules in force are unchanged")
        no_secret(detail)
        assert not (repo_dir / "alerts.json").exists()
        assert (await http.get("/alerts/rules")).json() == before
    finally:
        alerting.path = kept
        shutil.rmtree(repo_dir)


async def test_bad_json_is_a_422(http: httpx.AsyncClient) -> None:
    r = await http.put("/alerts/rules", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["detail"].startswith("body: not valid JSON")


async def test_a_body_too_large_is_a_413(http: httpx.AsyncClient) -> None:
    r = await http.put("/alerts/rules", content=b" " * (256 * 1024 + 1), headers={"content-type": "application/json"})
    assert r.status_code == 413 and "at most 262144 bytes" in r.json()["detail"]


async def test_put_replaces_the_rules_and_saves_them(http: httpx.AsyncClient, rules_file: Path,
                                                     h: StackHandle) -> None:
    new = {"rules": [{"name": "eth-spread", "kind": "spread_blowout", "symbols": ["ethusdt"], "min_spread_bps": 50,
                      "destinations": ["hook"]},
                     {"name": "btc-walls", "kind": "wall", "symbols": ["btcusdt"], "min_notional": 0,
                      "cooldown_s": 0, "destinations": ["hook", "chat"]}]}
    r = await http.put("/alerts/rules", json=new)  # no "destinations": the current ones are kept
    assert r.status_code == 200, r.text
    no_secret(r.text)
    assert [x["name"] for x in r.json()["rules"]] == ["eth-spread", "btc-walls"]
    saved = load_file(rules_file)
    assert [x.name for x in saved.rules] == ["eth-spread", "btc-walls"]
    assert saved.destinations["hook"].url_env == ENV  # the secret's source, never its value
    no_secret(rules_file.read_text())
    # GET's answer PUT back as it is (URLs shown redacted are kept) changes nothing.
    doc = (await http.get("/alerts/rules")).json()
    again = await http.put("/alerts/rules", json=doc)
    assert again.status_code == 200 and again.json() == doc
    assert h.stack.alerting is not None and set(h.stack.alerting.workers) == {"hook", "chat"}


async def test_health_and_metrics_show_destinations_by_name_only(http: httpx.AsyncClient,
                                                                 rx: WebhookReceiver) -> None:
    await _wait_sent(http)
    health = await http.get("/health")
    no_secret(health.text)
    block = health.json()["alerting"]
    assert block["rules"] >= 1 and block["file"] == "alerts.json" and block["intake_dropped"] == 0
    hook = block["destinations"]["hook"]
    assert hook["url"] == f"http://127.0.0.1:{rx.port}" and hook["format"] == "generic"
    assert hook["sent"] >= 1 and hook["dead_letters"] == 0 and hook["queue_bound"] == 1000
    assert {"queued", "failed", "retried", "dropped", "rate_limited", "throttled", "last_error"} <= set(hook)
    metrics = await http.get("/metrics")
    no_secret(metrics.text)
    assert 'liq_alert_deliveries_sent_total{destination="hook"}' in metrics.text
    assert 'liq_alert_deliveries_dead_letters_total{destination="chat"} 0.0' in metrics.text
    assert 'liq_alert_rule_matches_total{rule="btc-walls"}' in metrics.text
    assert promlint.check(metrics.text) == []  # promtool's rules, with the alerting families filled


async def _wait_sent(http: httpx.AsyncClient) -> None:
    from tests.waiting import wait_until

    async def sent() -> bool:
        return bool((await http.get("/health")).json()["alerting"]["destinations"]["hook"]["sent"])

    await wait_until(sent, what="a delivery counted")


async def test_a_failing_alert_tap_costs_no_frame(h: StackHandle, caplog: pytest.LogCaptureFixture) -> None:
    publisher = h.stack.publisher
    assert publisher is not None
    tap = publisher.alert_tap

    def broken(_frame: Any) -> None:
        raise RuntimeError("a bug in the rules")

    published = h.stack.hub.stats.frames_published
    publisher.alert_tap = broken
    try:
        await h.wait_for(lambda: h.stack.hub.stats.frames_published >= published + 4, what="frames still published")
    finally:
        publisher.alert_tap = tap
    assert "handing the frame to the alert rules failed; the frame goes on" in caplog.text


async def test_a_failing_destination_put_over_the_api_leaves_no_secret_in_the_logs(
        http: httpx.AsyncClient, rx: WebhookReceiver, h: StackHandle, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    rx.route(f"/down/{SECRET}", status=500)
    rx.route(f"/gone/{SECRET}", status=403)
    body = {"destinations": {"down": {"url": rx.url(f"/down/{SECRET}"), "backoff_initial_s": 0.01,
                                      "backoff_max_s": 0.05},
                             "gone": {"url": rx.url(f"/gone/{SECRET}")}},
            "rules": [{"name": "all-walls", "kind": "wall", "cooldown_s": 0, "destinations": ["down", "gone"]}]}
    r = await http.put("/alerts/rules", json=body)
    assert r.status_code == 200, r.text
    no_secret(r.text)
    await h.sim.inject_wall("ethusdt", side="ask", distance_ticks=2, multiple=25.0, duration_s=8.0)
    alerting = h.stack.alerting
    assert alerting is not None
    await h.wait_for(lambda: alerting.workers["down"].counters.failed >= 3
                     and alerting.workers["gone"].counters.dead_letters >= 1, what="failures on both destinations")
    health = await http.get("/health")
    no_secret(health.text)
    assert health.json()["alerting"]["destinations"]["gone"]["last_error"] == "HTTP 403"
    assert "not delivered to gone: HTTP 403" in caplog.text and "alerts to down: HTTP 500" in caplog.text
    assert SECRET not in caplog.text and "/down/" not in caplog.text and "/gone/" not in caplog.text
