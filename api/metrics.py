"""``GET /metrics``: Prometheus text format, collected from live state on each scrape.

Names follow Prometheus's conventions, as ``promtool check metrics`` checks them
(tests/api/test_metrics_lint.py checks the same rules): base units (seconds, bytes)
named in full, ``_total`` on counters only, HELP and TYPE on every family."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from api.services import Services
from data_ingestion.monitor import LATENCY_BUCKETS_S
from data_ingestion.recorder import RECORDER_STATES, recorder_status
from orderbook.sequence_validator import TRUSTED_STATES


class _Collector:
    def __init__(self, services: Services) -> None:
        self.services = services

    def collect(self) -> Iterator[Metric]:
        runtime = self.services.runtime
        hub = self.services.hub
        counters: dict[str, tuple[str, Any]] = {
            "liq_messages": ("websocket messages received", lambda f: f.monitor.messages),
            "liq_depth_events": ("depth events processed", lambda f: f.monitor.depth_events),
            "liq_gaps": ("pu gaps detected", lambda f: f.validator.counters.gaps),
            "liq_resyncs": ("resyncs (in sync -> resyncing)", lambda f: f.validator.counters.resyncs),
            "liq_reconnects": ("websocket reconnects", lambda f: f.monitor.reconnects),
            "liq_snapshots_requested": ("REST snapshots requested", lambda f: f.validator.counters.snapshots_requested),
            "liq_book_ticker_checks": ("bookTicker cross-checks made", lambda f: f.ticker_check.checks),
            "liq_book_ticker_failures": ("bookTicker cross-checks failed", lambda f: f.ticker_check.failures),
        }
        for name, (doc, get) in counters.items():
            fam = CounterMetricFamily(name, doc, labels=["symbol"])
            for sym, feed in runtime.feeds.items():
                fam.add_metric([sym], float(get(feed)))
            yield fam
        in_sync = GaugeMetricFamily("liq_in_sync", "1 when the book is in sync", labels=["symbol"])
        lag = GaugeMetricFamily(
            "liq_exchange_lag_seconds", "mean local receive time minus exchange event time E, recent depth events",
            labels=["symbol"],
        )
        levels = GaugeMetricFamily("liq_book_levels", "levels held", labels=["symbol", "side"])
        hist = HistogramMetricFamily(
            "liq_processing_latency_seconds", "decode + sync + apply + features per depth message", labels=["symbol"]
        )
        for sym, feed in runtime.feeds.items():
            in_sync.add_metric([sym], 1.0 if feed.sync_info()["state"] in TRUSTED_STATES else 0.0)
            lags = list(feed.monitor.lag_ms)
            if lags:
                lag.add_metric([sym], sum(lags) / len(lags) / 1000.0)
            levels.add_metric([sym, "bid"], float(len(feed.book.bids)))
            levels.add_metric([sym, "ask"], float(len(feed.book.asks)))
            m = feed.monitor
            cumulative = 0
            buckets = []
            for bound, count in zip((*LATENCY_BUCKETS_S, float("inf")), m.latency_buckets, strict=True):
                cumulative += count
                buckets.append(("+Inf" if bound == float("inf") else repr(bound), float(cumulative)))
            hist.add_metric([sym], buckets, m.latency_sum_s)
        yield in_sync
        yield lag
        yield levels
        yield hist
        yield from _context_metrics(runtime.feeds)
        clients = GaugeMetricFamily("liq_ws_clients", "websocket clients connected", labels=["symbol"])
        by_symbol = hub.clients_by_symbol()
        for sym in runtime.feeds:
            clients.add_metric([sym], float(by_symbol.get(sym, 0)))
        yield clients
        st = hub.stats
        yield CounterMetricFamily("liq_frames_dropped", "frames dropped for slow clients", value=st.frames_dropped)
        yield CounterMetricFamily("liq_ws_clients_refused", "websocket clients refused", value=st.clients_refused)
        yield GaugeMetricFamily("liq_process_rss_bytes", "resident set size of this process",
                                value=round(runtime.process.rss_mb() * 1024 * 1024))
        yield from _recorder_metrics(recorder_status(runtime.recorder))
        yield from _serving_metrics(self.services)
        yield from _screener_metrics(self.services)
        if self.services.alerting is not None:
            yield from _alerting_metrics(self.services.alerting.status())


def _context_metrics(feeds: dict[str, Any]) -> Iterator[Metric]:
    """Per symbol and context stream (forceOrder, markPrice, the openInterest polls)."""
    mono = time.monotonic_ns()
    messages = CounterMetricFamily("liq_stream_messages", "liquidation and mark price messages, open interest "
                                   "polls answered", labels=["symbol", "stream"])
    malformed = CounterMetricFamily("liq_stream_malformed", "context stream messages that did not decode or "
                                    "held bad numbers: counted and skipped", labels=["symbol", "stream"])
    skipped = CounterMetricFamily("liq_open_interest_polls_skipped", "open interest polls not sent: the REST "
                                  "weight budget was kept for snapshots", labels=["symbol"])
    age = GaugeMetricFamily("liq_stream_last_message_age_seconds", "seconds since the stream's last message",
                            labels=["symbol", "stream"])
    for sym, feed in feeds.items():
        for name, st in feed.context.items():
            messages.add_metric([sym, name], float(st.messages))
            malformed.add_metric([sym, name], float(st.malformed))
            if st.last_mono_ns:
                age.add_metric([sym, name], (mono - st.last_mono_ns) / 1e9)
        skipped.add_metric([sym], float(feed.context["openInterest"].skipped))
    yield messages
    yield malformed
    yield skipped
    yield age


def _serving_metrics(services: Services) -> Iterator[Metric]:
    """What the serving limits did (api/ws.py, api/limits.py, api/origins.py), the
    restarts of long-lived tasks and the metric history's writes."""
    st = services.hub.stats
    yield CounterMetricFamily("liq_ws_clients_evicted", "websocket clients closed by the server: stalled, too slow "
                              "or sending too much", value=st.clients_evicted)
    yield CounterMetricFamily("liq_origins_refused", "requests and websocket handshakes from pages of another origin",
                              value=st.origins_refused + services.origins.refused)
    refused = CounterMetricFamily("liq_connections_closed", "API connections closed by a limit",
                                  labels=["reason"])
    limits = services.limits
    if limits is not None:
        refused.add_metric(["over_cap"], limits.refused_over_cap)
        refused.add_metric(["header_timeout"], limits.closed_header_timeout)
        refused.add_metric(["upgrade_too_long"], limits.refused_upgrade_too_long)
    yield refused
    restarts = CounterMetricFamily("liq_task_restarts", "long-lived tasks restarted after dying", labels=["task"])
    for name, count in sorted(services.runtime.tasks.restarts.items()):
        restarts.add_metric([name], count)
    yield restarts
    if services.history is not None:
        yield CounterMetricFamily("liq_history_rows_written", "frame rows written to the metric history",
                                  value=services.history.rows_written)
        yield CounterMetricFamily("liq_history_errors", "metric history write errors", value=services.history.errors)


def _screener_metrics(services: Services) -> Iterator[Metric]:
    """The screener's streams (data_ingestion/market.py) and its 1 Hz frame."""
    market, pub = services.market, services.screener
    if market is None or pub is None:
        return
    state = market.state
    messages = CounterMetricFamily("liq_screener_messages", "screener stream values received (array elements "
                                   "one by one)", labels=["stream"])
    malformed = CounterMetricFamily("liq_screener_malformed", "screener stream values that did not decode or held "
                                    "bad numbers: counted and skipped", labels=["stream"])
    for kind in sorted(set(state.messages) | set(state.malformed)):
        messages.add_metric([kind], float(state.messages[kind]))
        malformed.add_metric([kind], float(state.malformed[kind]))
    yield messages
    yield malformed
    yield GaugeMetricFamily("liq_screener_symbols", "symbols the screener watches", value=len(state.symbols))
    yield GaugeMetricFamily("liq_screener_connections", "screener websocket connections open",
                            value=sum(1 for c in market.connections if c.connected))
    p50 = pub.status()["build_ms_p50"]
    if p50 is not None:
        yield GaugeMetricFamily("liq_screener_frame_build_seconds", "median time to build the screener's rows "
                                "(last 10 minutes)", value=p50 / 1000)
_DELIVERY_COUNTERS = {
    "sent": "alerts delivered (2xx)",
    "failed": "delivery attempts that failed (error, timeout, 4xx, 5xx, 429)",
    "retried": "delivery attempts made again after a failure",
    "dead_letters": "alerts given up: a 4xx other than 429, or too long undelivered",
    "dropped": "alerts dropped from a full destination queue (the oldest waiting)",
    "rate_limited": "sends that waited for the destination's rate limit",
    "throttled": "429 answers from the receiver",
}


def _alerting_metrics(st: dict[str, Any]) -> Iterator[Metric]:
    """Per destination name (never its URL), and per rule."""
    dests = st["destinations"]
    for key, doc in _DELIVERY_COUNTERS.items():
        fam = CounterMetricFamily(f"liq_alert_deliveries_{key}", doc, labels=["destination"])
        for name, d in dests.items():
            fam.add_metric([name], float(d[key]))
        yield fam
    queued = GaugeMetricFamily("liq_alert_delivery_queued", "alerts waiting for a destination (and being sent)",
                               labels=["destination"])
    for name, d in dests.items():
        queued.add_metric([name], float(d["queued"]))
    yield queued
    matched = CounterMetricFamily("liq_alert_rule_matches", "notifications made by a rule", labels=["rule"])
    cooled = CounterMetricFamily("liq_alert_rule_cooldowns", "matches of a rule held back by its cooldown",
                                 labels=["rule"])
    for name, c in st["by_rule"].items():
        matched.add_metric([name], float(c["matched"]))
        cooled.add_metric([name], float(c["cooldown"]))
    yield matched
    yield cooled
    yield CounterMetricFamily("liq_alert_intake_dropped", "frame digests dropped from the full intake of the rules",
                              value=st["intake_dropped"])


def _recorder_metrics(rec: dict[str, Any]) -> Iterator[Metric]:
    state = GaugeMetricFamily("liq_recorder_state", "1 for the recorder's state", labels=["state"])
    for name in RECORDER_STATES:
        state.add_metric([name], 1.0 if rec["state"] == name else 0.0)
    yield state
    yield GaugeMetricFamily("liq_recorder_segments_open", "segment files open", value=rec["segments_open"])
    yield CounterMetricFamily("liq_recorder_lines_written_total", "raw messages recorded",
                              value=rec["lines_written"])
    yield CounterMetricFamily("liq_recorder_lines_dropped_total", "raw messages not recorded (write errors, paused)",
                              value=rec["lines_dropped"])
    yield CounterMetricFamily("liq_recorder_errors_total", "recorder write errors", value=rec["errors"])
    yield GaugeMetricFamily("liq_recorder_disk_bytes", "bytes of the segments and indexes in the data directory",
                            value=rec["bytes_on_disk"])


def prometheus_text(services: Services) -> tuple[bytes, str]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(services))  # type: ignore[arg-type]
    return generate_latest(registry), CONTENT_TYPE_LATEST
