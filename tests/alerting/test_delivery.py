"""Webhook deliveries against real HTTP receivers on loopback: bodies per format, a
receiver that fails then recovers, one that hangs, one that is slow, 429 with
Retry-After, dead letters, the queue bound; no secret in the logs."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest

from alerting.delivery import DestinationWorker, TokenBucket, install_log_redaction, retry_after_s
from alerting.notification import Notification, dashboard_link
from alerting.rules import Destination, format_of
from bench.webhook_receiver import WebhookReceiver
from data_ingestion.tasks import TaskRegistry
from tests.waiting import wait_until

SECRET = "T0KEN-s3cr3t-0123456789"
TS_MS = 1_780_000_000_250
FAST = {"backoff_initial_s": 0.01, "backoff_max_s": 0.05, "rate_per_s": 1000.0, "burst": 100}


@pytest.fixture
async def rx() -> AsyncIterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    await receiver.start()
    yield receiver
    await receiver.stop()


@pytest.fixture
async def workers() -> AsyncIterator[list[DestinationWorker]]:
    started: list[DestinationWorker] = []
    yield started
    for w in started:
        await w.stop()


def worker(started: list[DestinationWorker], name: str, **fields: Any) -> DestinationWorker:
    w = DestinationWorker(name, Destination(**fields))
    w.start()
    started.append(w)
    return w


def note(i: int = 0, symbol: str = "btcusdt") -> Notification:
    ts = TS_MS + i * 1000
    return Notification(symbol=symbol, kind="wall", status="born", rule="big-walls", ts_ms=ts,
                        link=dashboard_link("http://127.0.0.1:8050", symbol, ts), destinations=("x",), side="bid",
                        price=64_000.5, size=12.5, notional=800_006.25, distance_bps=3.2, alert_id=f"{symbol}-{i}")


def test_format_chosen_by_setting_then_by_host() -> None:
    assert format_of(Destination(url="https://hooks.slack.com/services/T/B/x"), "https://hooks.slack.com/x/y") == \
        "slack"
    assert format_of(Destination(), "https://discord.com/api/webhooks/1/abc") == "discord"
    assert format_of(Destination(), "https://discord.com/other") == "generic"
    assert format_of(Destination(), "https://api.telegram.org/botX/sendMessage") == "telegram"
    assert format_of(Destination(), "https://example.com/hook") == "generic"
    assert format_of(Destination(format="discord"), "https://example.com/hook") == "discord"


async def test_bodies_per_format(rx: WebhookReceiver, workers: list[DestinationWorker],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_TG_TOKEN", SECRET)
    ws = [worker(workers, "gen", url=rx.url("/gen"), **FAST),
          worker(workers, "slack", url=rx.url("/slack"), format="slack", **FAST),
          worker(workers, "discord", url=rx.url("/discord"), format="discord", **FAST),
          worker(workers, "tg", url=rx.url(""), token_env="TEST_TG_TOKEN", chat_id=-100123, **FAST)]
    for w in ws:
        w.offer(note())
    tg_path = f"/bot{SECRET}/sendMessage"
    await wait_until(lambda: all(len(rx.delivered(p)) == 1 for p in ("/gen", "/slack", "/discord", tg_path)),
                     what="one delivery to each receiver")
    # The receiver reads the body before it answers; the worker counts once it has the answer.
    await wait_until(lambda: all(w.counters.sent == 1 for w in ws), what="each worker counting its delivery")
    link = "http://127.0.0.1:8050/?symbol=btcusdt&t=2026-05-28T20:26:40.250Z"
    [gen] = rx.bodies("/gen")
    assert gen == {"symbol": "btcusdt", "kind": "wall", "status": "born", "side": "bid", "price": 64_000.5,
                   "size": 12.5, "notional": 800_006.25, "distance_bps": 3.2, "rule": "big-walls",
                   "time": "2026-05-28T20:26:40.250Z", "ts_ms": TS_MS, "alert_id": "btcusdt-0", "values": {},
                   "link": link, "text": gen["text"]}
    text = ("BTCUSDT wall born bid 12.5 @ 64,000.5 (800,006 USDT) 3.2 bps from mid - rule big-walls - "
            f"2026-05-28T20:26:40.250Z - {link}")
    assert gen["text"] == text
    assert rx.bodies("/slack") == [{"text": text}]
    assert rx.bodies("/discord") == [{"content": text}]
    assert rx.bodies(tg_path) == [{"chat_id": "-100123", "text": text, "disable_web_page_preview": True}]
    assert ws[3].format == "telegram" and SECRET not in json.dumps(ws[3].status()) and SECRET not in repr(ws[3])
    assert all(w.status()["sent"] == 1 and w.status()["failed"] == 0 for w in ws)


async def test_a_receiver_failing_then_recovering_loses_nothing_within_the_queue_bound(
        rx: WebhookReceiver, workers: list[DestinationWorker]) -> None:
    rx.route("/flaky", status=500)
    w = worker(workers, "flaky", url=rx.url("/flaky"), queue=50, **FAST)
    for i in range(30):
        w.offer(note(i))
    await wait_until(lambda: rx.attempts["/flaky"] >= 5, what="five failed attempts")
    assert rx.delivered("/flaky") == [] and w.counters.dead_letters == 0
    rx.route("/flaky", status=200)
    await wait_until(lambda: len(rx.delivered("/flaky")) == 30, what="all 30 alerts once the receiver recovered")
    await wait_until(lambda: w.counters.sent == 30, what="the worker counting the 30")
    assert [b["alert_id"] for b in rx.bodies("/flaky")] == [f"btcusdt-{i}" for i in range(30)]  # in order, once
    st = w.status()
    assert st["sent"] == 30 and st["dead_letters"] == 0 and st["dropped"] == 0 and st["queued"] == 0
    assert st["retried"] >= 4 and st["failed"] == st["retried"] and st["last_error"] == "HTTP 500"


async def test_a_hanging_receiver_costs_only_its_own_queue(rx: WebhookReceiver,
                                                           workers: list[DestinationWorker]) -> None:
    rx.route("/hang", hang=True)
    hang = worker(workers, "hang", url=rx.url("/hang"), timeout_s=0.5, **FAST)
    ok = worker(workers, "ok", url=rx.url("/ok"), **FAST)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    tick_task = asyncio.create_task(ticker())
    try:
        for i in range(10):
            hang.offer(note(i))
            ok.offer(note(i))
        await wait_until(lambda: len(rx.delivered("/ok")) == 10, what="the healthy receiver's 10 alerts")
        assert hang.counters.sent == 0 and hang.status()["queued"] >= 9  # still on its first alert
        seen = ticks
        await wait_until(lambda: hang.counters.failed >= 2, what="two attempts on the hanging receiver timed out")
        assert hang.last_error == "timeout (ReadTimeout)" and ticks > seen  # the loop kept running meanwhile
        assert ok.counters.failed == 0
    finally:
        tick_task.cancel()


async def test_a_slow_receiver_gets_everything_in_order_without_holding_up_the_others(
        rx: WebhookReceiver, workers: list[DestinationWorker]) -> None:
    rx.route("/slow", delay_s=0.5)
    slow = worker(workers, "slow", url=rx.url("/slow"), timeout_s=5.0, **FAST)
    ok = worker(workers, "ok", url=rx.url("/ok"), **FAST)
    for i in range(4):
        slow.offer(note(i))
        ok.offer(note(i))
    await wait_until(lambda: len(rx.delivered("/ok")) == 4, what="the fast receiver's alerts")
    assert len(rx.delivered("/slow")) < 4  # at 0.5 s each, the slow one is still at it
    await wait_until(lambda: len(rx.delivered("/slow")) == 4, what="the slow receiver's alerts")
    assert [b["alert_id"] for b in rx.bodies("/slow")] == [f"btcusdt-{i}" for i in range(4)]
    assert slow.counters.failed == 0 and slow.counters.retried == 0


async def test_429_is_retried_after_its_retry_after(rx: WebhookReceiver, workers: list[DestinationWorker]) -> None:
    rx.route("/busy", then=[(429, "1")])
    w = worker(workers, "busy", url=rx.url("/busy"), **FAST)  # backoff at most 0.05 s: the 1 s is Retry-After's
    w.offer(note())
    await wait_until(lambda: len(rx.delivered("/busy")) == 1, what="the alert after the 429")
    await wait_until(lambda: w.counters.sent == 1, what="the worker counting it")
    first, second = [r for r in rx.received if r.path == "/busy"]
    assert first.status == 429 and second.status == 200
    assert second.mono_ns - first.mono_ns >= 1_000_000_000
    st = w.status()
    assert (st["throttled"], st["retried"], st["sent"], st["dead_letters"]) == (1, 1, 1, 0)
    assert st["last_error"] == "HTTP 429 (rate limited by the receiver)"


async def test_a_delivery_worker_that_dies_is_restarted_and_counted(rx: WebhookReceiver,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    tasks = TaskRegistry(backoff_s=(0.0,))
    fields: dict[str, Any] = {"url": rx.url("/x"), **FAST}
    w = DestinationWorker("x", Destination(**fields))
    w.start(tasks)
    try:
        # A body that cannot be encoded stands for a bug in a send: the worker dies on it.
        broken = replace(note(0), values={"spread_bps": complex(1, 1)})  # type: ignore[dict-item]
        with caplog.at_level(logging.ERROR, logger="tasks"):
            w.offer(broken)
            w.offer(note(1))
            await wait_until(lambda: len(rx.delivered("/x")) == 1, what="the next alert sent by the restarted worker")
        await wait_until(lambda: w.counters.sent == 1, what="the worker counting it")
        assert tasks.restarts == {"alerts-to-x": 1} and tasks.running == ["alerts-to-x"]
        assert [b["alert_id"] for b in rx.bodies("/x")] == ["btcusdt-1"]
        assert w.counters.dead_letters == 1 and w.last_error == "the delivery worker failed (TypeError)"
        died = [r for r in caplog.records if "task alerts-to-x died" in r.getMessage()]
        assert len(died) == 1 and died[0].exc_info is not None  # with its traceback
    finally:
        await w.stop()
    assert tasks.running == []


def test_retry_after_in_seconds_or_as_a_date() -> None:
    assert retry_after_s("3") == 3.0 and retry_after_s(None) is None and retry_after_s("soon") is None
    assert retry_after_s("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past: now


async def test_another_4xx_is_a_dead_letter_at_once(rx: WebhookReceiver, workers: list[DestinationWorker]) -> None:
    rx.route("/gone", status=404)
    w = worker(workers, "gone", url=rx.url("/gone"), **FAST)
    w.offer(note(0))
    w.offer(note(1))
    await wait_until(lambda: w.counters.dead_letters == 2, what="two dead letters")
    assert rx.attempts["/gone"] == 2 and w.counters.retried == 0 and w.last_error == "HTTP 404"
    assert w.status()["recent_dead_letters"] == [
        {"symbol": "btcusdt", "kind": "wall", "status": "born", "rule": "big-walls", "time": note(i).time_iso,
         "alert_id": f"btcusdt-{i}", "reason": "HTTP 404"} for i in range(2)]


async def test_an_alert_undelivered_past_give_up_after_s_is_a_dead_letter(
        rx: WebhookReceiver, workers: list[DestinationWorker]) -> None:
    rx.route("/down", status=503)
    w = worker(workers, "down", url=rx.url("/down"), give_up_after_s=0.2, **FAST)
    w.offer(note())
    await wait_until(lambda: w.counters.dead_letters == 1, what="a dead letter")
    assert w.last_error is not None and w.last_error.startswith("HTTP 503; gave up after 0.2 s")


async def test_a_full_queue_drops_its_oldest(rx: WebhookReceiver, workers: list[DestinationWorker]) -> None:
    rx.route("/hang", hang=True)
    w = worker(workers, "hang", url=rx.url("/hang"), queue=3, timeout_s=30.0, **FAST)
    w.offer(note(0))
    await wait_until(lambda: rx.attempts["/hang"] == 1, what="the first alert on its way")
    for i in range(1, 10):
        w.offer(note(i))
    assert w.counters.dropped == 6 and [n.alert_id for n, _ in w.queue] == ["btcusdt-7", "btcusdt-8", "btcusdt-9"]
    assert w.status()["queued"] == 4


async def test_the_rate_limit_spaces_sends(rx: WebhookReceiver, workers: list[DestinationWorker]) -> None:
    w = worker(workers, "rl", url=rx.url("/rl"), rate_per_s=10.0, burst=2, backoff_initial_s=0.01)
    offered_ns = time.monotonic_ns()  # no token is taken before this
    for i in range(6):
        w.offer(note(i))
    await wait_until(lambda: len(rx.delivered("/rl")) == 6, what="six alerts")
    # Two tokens at once, then one per 100 ms: the sixth is sent 400 ms after the first
    # token at the earliest, and received after it was sent (unlimited, all six take a
    # few milliseconds on loopback).
    assert rx.delivered("/rl")[-1].mono_ns - offered_ns >= (6 - 2) / 10 * 1e9
    assert [b["alert_id"] for b in rx.bodies("/rl")] == [f"btcusdt-{i}" for i in range(6)]


def test_token_bucket() -> None:
    now = [0.0]
    b = TokenBucket(rate=2.0, burst=3, clock=lambda: now[0])
    for _ in range(3):
        assert b.wait_s() == 0.0
        b.take()
    assert b.wait_s() == 0.5
    now[0] = 0.5
    assert b.wait_s() == 0.0
    now[0] = 100.0
    b.take()
    assert b.tokens == 2.0  # refilled to the burst, not beyond


async def test_no_secret_in_the_logs(rx: WebhookReceiver, workers: list[DestinationWorker],
                                     caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    install_log_redaction()
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("TEST_TG_TOKEN", SECRET)
    rx.route(f"/hook/{SECRET}/bad", status=400)
    rx.route(f"/hook/{SECRET}/flaky", then=[(500, None), (429, "0")])
    ws = [worker(workers, "good", url=rx.url(f"/hook/{SECRET}/good"), **FAST),
          worker(workers, "bad", url=rx.url(f"/hook/{SECRET}/bad"), **FAST),
          worker(workers, "flaky", url=rx.url(f"/hook/{SECRET}/flaky"), **FAST),
          worker(workers, "tg", url=rx.url(""), token_env="TEST_TG_TOKEN", chat_id=1, **FAST),
          worker(workers, "refused", url="http://127.0.0.1:9/hook/" + SECRET, **FAST, give_up_after_s=0.3)]
    for w in ws:
        w.offer(note())
    await wait_until(lambda: sum(w.counters.sent + w.counters.dead_letters for w in ws) == 5,
                     what="every alert delivered or dead")
    assert [w.counters.sent for w in ws] == [1, 0, 1, 1, 0]
    assert "HTTP Request: POST http://127.0.0.1" in caplog.text  # httpx's own line, its URL redacted
    assert SECRET not in caplog.text
    assert all(SECRET not in json.dumps(w.status()) for w in ws)
