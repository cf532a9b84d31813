"""Webhook deliveries: one worker per destination, each with its own bounded queue,
HTTP client, token bucket and counters, so a receiver that hangs or fails costs
nothing but its own queue.

A send is retried on a connection error, a timeout, a 5xx or a 429, after an
exponential backoff with full jitter (a random delay between 0 and
``min(backoff_max_s, backoff_initial_s * 2**attempt)``; a 429's Retry-After is
honoured instead). Another 4xx (or a 3xx: redirects are not followed) is a dead
letter at once, and so is an alert still not delivered ``give_up_after_s`` after it
was queued. The URL is a secret: it is never logged nor put in an error message;
errors are described by their type or HTTP status alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import random
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import httpx
import msgspec

from alerting.notification import Notification, body_of
from alerting.rules import Destination, Format, redact, resolve_secret
from data_ingestion.tasks import TaskRegistry

log = logging.getLogger("alerting")

_JSON = {"content-type": "application/json"}
RECENT_DEAD_LETTERS = 10  # the latest ones kept for /health


@dataclass(slots=True)
class DeliveryCounters:
    sent: int = 0
    failed: int = 0  # attempts that did not deliver (error, timeout, 4xx, 5xx, 429)
    retried: int = 0  # attempts made again after a failure
    dead_letters: int = 0  # alerts given up: a 4xx other than 429, or give_up_after_s passed
    dropped: int = 0  # alerts dropped from a full queue (the oldest waiting)
    rate_limited: int = 0  # sends that waited for the destination's token bucket
    throttled: int = 0  # 429 answers from the receiver


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up; time from ``clock``."""

    def __init__(self, rate: float, burst: int, clock: Any = time.monotonic) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.clock = clock
        self.last = clock()

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now

    def wait_s(self) -> float:
        """Seconds until a token is there (0: one is there now)."""
        self._refill()
        return 0.0 if self.tokens >= 1.0 else (1.0 - self.tokens) / self.rate

    def take(self) -> None:
        self._refill()
        self.tokens -= 1.0


def retry_after_s(value: str | None) -> float | None:
    """A Retry-After header in seconds: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class _Retry(Exception):
    def __init__(self, reason: str, delay_s: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay_s = delay_s


class _Dead(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class DestinationWorker:
    """The deliveries to one destination, in order, by one task."""

    def __init__(self, name: str, dest: Destination, rng: random.Random | None = None) -> None:
        self.name = name
        self.dest = dest
        url, fmt, chat_id = resolve_secret(name, dest)
        self._url = url  # the secret: only ever handed to the HTTP client
        self.format: Format = fmt
        self._chat_id = chat_id
        self.shown_url = redact(url)
        self.queue: deque[tuple[Notification, float]] = deque()  # (alert, monotonic time queued)
        self.bound = dest.queue
        self.counters = DeliveryCounters()
        self.bucket = TokenBucket(dest.rate_per_s, dest.burst)
        self.rng = rng or random.Random()
        self.last_error: str | None = None
        self.last_error_ts: float | None = None
        self.last_sent_ts: float | None = None
        self.in_flight: Notification | None = None
        self.recent_dead: deque[dict[str, Any]] = deque(maxlen=RECENT_DEAD_LETTERS)
        self._ready = asyncio.Event()
        self._failing = False
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None

    def __repr__(self) -> str:  # never the URL
        return f"DestinationWorker({self.name!r}, {self.format}, {self.shown_url})"

    # --- the producer's side: never waits -------------------------------------------
    def offer(self, n: Notification) -> None:
        if len(self.queue) >= self.bound:
            self.queue.popleft()
            self.counters.dropped += 1
            if self.counters.dropped == 1 or self.counters.dropped % 100 == 0:
                log.warning("alerts to %s: queue full (%d); the oldest dropped (%d so far)", self.name,
                            self.bound, self.counters.dropped)
        self.queue.append((n, time.monotonic()))
        self._ready.set()

    # --- the worker ------------------------------------------------------------------
    def start(self, tasks: TaskRegistry | None = None) -> None:
        """Run the worker under ``tasks`` (the process's supervisor; a registry of its
        own when none is given): a worker that dies is logged with its traceback,
        counted and started again after a backoff, never silently gone."""
        timeout = httpx.Timeout(self.dest.timeout_s)
        self._client = httpx.AsyncClient(timeout=timeout, follow_redirects=False,
                                         limits=httpx.Limits(max_connections=2, max_keepalive_connections=1))
        self._task = (tasks or TaskRegistry()).supervise(self._run, name=f"alerts-to-{self.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._client is not None:
            await self._client.aclose()

    def take_queue(self) -> list[tuple[Notification, float]]:
        """What waits (and what was being sent), for the worker that takes this one's place."""
        waiting = list(self.queue)
        if self.in_flight is not None:
            waiting.insert(0, (self.in_flight, time.monotonic()))
        self.queue.clear()
        return waiting

    def adopt(self, waiting: list[tuple[Notification, float]]) -> None:
        for item in waiting[-self.bound:]:
            self.queue.append(item)
        self.counters.dropped += max(0, len(waiting) - self.bound)
        if self.queue:
            self._ready.set()

    async def _run(self) -> None:
        while True:
            while not self.queue:
                self._ready.clear()
                await self._ready.wait()
            n, queued = self.queue.popleft()
            self.in_flight = n
            try:
                await self._deliver(n, queued)
            except Exception as exc:  # the worker dies and is restarted; this alert is not sent again
                self._dead_letter(n, f"the delivery worker failed ({type(exc).__name__})")
                raise
            finally:
                self.in_flight = None

    async def _deliver(self, n: Notification, queued_mono: float) -> None:
        body = msgspec.json.encode(body_of(n, self.format, self._chat_id))
        attempt = 0
        while True:
            wait = self.bucket.wait_s()
            if wait > 0:
                self.counters.rate_limited += 1
                await asyncio.sleep(wait)
            self.bucket.take()
            try:
                await self._post(body)
            except _Dead as dead:
                self._dead_letter(n, dead.reason)
                return
            except _Retry as retry:
                self.counters.failed += 1
                self._note_error(retry.reason)
                backoff = min(self.dest.backoff_max_s, self.dest.backoff_initial_s * 2 ** min(attempt, 30))
                delay = retry.delay_s if retry.delay_s is not None else self.rng.uniform(0.0, backoff)
                if time.monotonic() + delay - queued_mono > self.dest.give_up_after_s:
                    self._dead_letter(n, f"{retry.reason}; gave up after {self.dest.give_up_after_s:g} s")
                    return
                if not self._failing:
                    self._failing = True
                    log.warning("alerts to %s: %s; retrying with backoff (the other destinations are not held up)",
                                self.name, retry.reason)
                attempt += 1
                self.counters.retried += 1
                await asyncio.sleep(delay)
                continue
            self.counters.sent += 1
            self.last_sent_ts = time.time()
            if self._failing:
                self._failing = False
                log.info("alerts to %s: delivering again", self.name)
            return

    async def _post(self, body: bytes) -> None:
        assert self._client is not None
        try:
            resp = await self._client.post(self._url, content=body, headers=_JSON)
        except httpx.TimeoutException as exc:
            raise _Retry(f"timeout ({type(exc).__name__})") from None
        except httpx.HTTPError as exc:
            raise _Retry(f"no answer ({type(exc).__name__})") from None
        status = resp.status_code
        if 200 <= status < 300:
            return
        if status == 429:
            self.counters.throttled += 1
            raise _Retry("HTTP 429 (rate limited by the receiver)", retry_after_s(resp.headers.get("retry-after")))
        if status >= 500 or status == 408:
            raise _Retry(f"HTTP {status}")
        raise _Dead(f"HTTP {status}")

    def _note_error(self, reason: str) -> None:
        self.last_error = reason
        self.last_error_ts = time.time()

    def _dead_letter(self, n: Notification, reason: str) -> None:
        self.counters.failed += 1
        self.counters.dead_letters += 1
        self._note_error(reason)
        self.recent_dead.append({"symbol": n.symbol, "kind": n.kind, "status": n.status, "rule": n.rule,
                                 "time": n.time_iso, "alert_id": n.alert_id, "reason": reason})
        log.warning("%s: alert %s (rule %s) not delivered to %s: %s; counted as a dead letter", n.symbol,
                    n.kind, n.rule, self.name, reason)

    def status(self) -> dict[str, Any]:
        """For /health: by name, the URL reduced to scheme and host."""
        c = self.counters
        return {
            "format": self.format, "url": self.shown_url, "queued": len(self.queue) + (self.in_flight is not None),
            "queue_bound": self.bound, "sent": c.sent, "failed": c.failed, "retried": c.retried,
            "dead_letters": c.dead_letters, "dropped": c.dropped, "rate_limited": c.rate_limited,
            "throttled": c.throttled, "last_error": self.last_error,
            "last_error_age_s": None if self.last_error_ts is None else round(time.time() - self.last_error_ts, 1),
            "last_sent_age_s": None if self.last_sent_ts is None else round(time.time() - self.last_sent_ts, 1),
            "recent_dead_letters": list(self.recent_dead),
        }


class RedactUrls(logging.Filter):
    """On the ``httpx`` logger: its request lines show the URL reduced to scheme and host."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(a, httpx.URL) for a in record.args):
            record.args = tuple(redact(str(a)) if isinstance(a, httpx.URL) else a for a in record.args)
        return True


_FILTER = RedactUrls()


def install_log_redaction() -> None:
    """Once per process: no webhook URL in httpx's own log lines."""
    logger = logging.getLogger("httpx")
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
