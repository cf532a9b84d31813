"""The cluster as an operator runs it, every part a real process: a NATS server
(JetStream, a temporary store), one standalone simulated exchange, two ingest
nodes (the market in two shards) and two API nodes. Each failure of issue 18 is
caused for real (SIGKILL, a killed NATS server) and the test waits for what must
follow, on every API node, with no process but the failed one restarted.

The tests share the cluster and each leaves it whole (a killed node replaced), so
they pass in any order."""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from bus.nats_server import NatsServer
from tests.bus.processes import FrameWatcher, Node, SimExchange, state_of
from tests.waiting import CEILING_S, wait_until_sync

SYMBOLS = ("btcusdt", "ethusdt")
# A short lease, so that a replacement takes over soon after its owner is killed.
NODE_ENV = {"LIQ_LEASE_TTL_S": "2"}


@dataclass
class Cluster:
    nats: NatsServer
    sim: SimExchange
    ingest: dict[str, Node] = field(default_factory=dict)
    api: list[Node] = field(default_factory=list)
    extra: list[Node] = field(default_factory=list)

    def start_ingest(self, name: str, *args: str, ready: str = " API: http") -> Node:
        node = Node("ingest", self.nats.url, name, "--source", "sim", "--sim-url", self.sim.url, *args,
                    env=NODE_ENV, ready=ready)
        self.ingest[name] = node
        return node

    def start_api(self, name: str, *args: str, dashboard: bool = False) -> Node:
        node = Node("api", self.nats.url, name, *args, env=NODE_ENV, dashboard=dashboard)
        self.extra.append(node)
        return node

    def owner_of(self, symbol: str) -> Node:
        name = self.api[0].health()["sync"][symbol]["owner"]
        return self.ingest[name]

    def wait_all_synced(self) -> None:
        for api in self.api:
            api.wait_health(lambda h: all(state_of(h, s) == "synced" for s in SYMBOLS) and h["bus"]["connected"],
                            "every symbol in sync")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("cluster")
    nats = NatsServer(tmp / "jetstream", log_file=tmp / "nats.log").start()
    sim = SimExchange(",".join(SYMBOLS))
    c = Cluster(nats, sim)
    try:
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda i: c.start_ingest(f"ingest-{i}", "--symbols", ",".join(SYMBOLS), "--shard",
                                                   f"{i}/2"), (1, 2)))
            c.api = list(pool.map(lambda i: Node("api", nats.url, f"api-{i}", env=NODE_ENV), (1, 2)))
        c.wait_all_synced()
        yield c
    finally:
        for node in [*c.api, *c.extra, *c.ingest.values()]:
            node.sigkill()
        sim.sigkill()
        nats.stop()


def test_frames_reach_every_api_node_once_and_the_owner_answers_for_its_book(cluster: Cluster) -> None:
    health = cluster.api[1].health()
    assert health["role"] == "api" and health["status"] == "healthy"
    nodes = {n["node"]: n for n in health["ingest_nodes"]}
    assert nodes["ingest-1"]["symbols"] == ["btcusdt"] and nodes["ingest-2"]["symbols"] == ["ethusdt"]
    assert all(n["alive"] and n["last_heard_s"] < 10 for n in nodes.values())
    assert health["source"]["kind"] == "sim" and "SIMULATED" in health["source"]["label"]
    # Both API nodes pass on the very frame the owner published.
    watchers = [FrameWatcher(f"{api.ws_base}/ws/btcusdt") for api in cluster.api]
    try:
        for w in watchers:
            history = w.history()
            assert history["type"] == "history" and history["frames"]
        first = watchers[0].wait_frame(lambda f: f["sync"]["state"] == "synced", "a frame on api-1")
        wait_until_sync(lambda: any(f["seq"] == first["seq"] and f["timestamp"] == first["timestamp"]
                                    for f in watchers[1].every_frame()), CEILING_S, "the same frame on api-2")
        same = next(f for f in watchers[1].every_frame() if f["timestamp"] == first["timestamp"])
        assert same == first and first["mid_price"] is not None and first["bid_levels"]
    finally:
        for w in watchers:
            w.close()
    owner = cluster.owner_of("btcusdt")
    book = httpx.get(f"{cluster.api[0].base}/book/btcusdt", params={"depth": "3"}, timeout=CEILING_S)
    assert book.status_code == 200 and book.headers["x-liq-node"] == owner.name
    assert len(book.json()["bids"]) == 3 and book.json()["state"] in ("synced", "quiet")
    bad = httpx.get(f"{cluster.api[0].base}/simulate/ethusdt", params={"side": "buy", "size": "nan"},
                    timeout=CEILING_S)
    assert bad.status_code == 422 and bad.json() == {"detail": "size must be finite, got 'nan'"}


def test_a_killed_ingest_node_is_stale_everywhere_until_a_replacement_takes_over(cluster: Cluster) -> None:
    owner = cluster.owner_of("btcusdt")
    watchers = [FrameWatcher(f"{api.ws_base}/ws/btcusdt") for api in cluster.api]
    try:
        for watcher in watchers:
            watcher.wait_frame(lambda f: f["sync"]["state"] == "synced", "a btcusdt frame in sync")
        owner.sigkill()
        for api in cluster.api:
            api.wait_health(lambda h: state_of(h, "btcusdt") == "stale", "btcusdt stale")
        stales: list[dict[str, Any]] = []
        for api, watcher in zip(cluster.api, watchers, strict=True):
            stale = watcher.wait_frame(lambda f: f["sync"]["state"] == "stale", "a stale btcusdt frame")
            assert stale["mid_price"] is None and owner.name in stale["sync"]["reason"]
            frames = watcher.frames
            last_synced = [f for f in frames[:frames.index(stale)] if f["sync"]["state"] == "synced"][-1]
            # Within 5 s by the servers' clocks (the ingest node's last frame, the API
            # node's first stale one), however long this test's waits took.
            gap_s = stale["timestamp"] - last_synced["timestamp"]
            assert gap_s <= 5.0, f"{api.name}: stale {gap_s:.2f} s after the last frame in sync"
            stales.append(stale)
        book = httpx.get(f"{cluster.api[0].base}/book/btcusdt", timeout=CEILING_S)
        assert book.status_code == 503 and "btcusdt" in book.json()["detail"]
        assert state_of(cluster.api[0].health(), "ethusdt") == "synced"  # the other shard is untouched
        # A replacement takes the lapsed lease; frames resume on every API node by themselves.
        del cluster.ingest[owner.name]
        cluster.start_ingest("ingest-3", "--symbols", "btcusdt")
        for api in cluster.api:
            api.wait_health(lambda h: state_of(h, "btcusdt") == "synced" and h["sync"]["btcusdt"]["owner"]
                            == "ingest-3", "btcusdt in sync again, from ingest-3")
        for watcher, stale in zip(watchers, stales, strict=True):
            after = watcher.frames.index(stale) + 1
            watcher.wait_frame(lambda f: f["sync"]["state"] == "synced", "btcusdt frames again", after=after)
    finally:
        for watcher in watchers:
            watcher.close()
    assert all(api.alive for api in cluster.api)  # no API node restarted


def test_a_second_node_for_an_owned_symbol_waits_and_stops_cleanly_while_waiting(cluster: Cluster) -> None:
    owner = cluster.owner_of("ethusdt")
    second = Node("ingest", cluster.nats.url, "ingest-4", "--symbols", "ethusdt", "--source", "sim", "--sim-url",
                  cluster.sim.url, env=NODE_ENV, ready="owned by ingest node")
    try:
        assert f"ethusdt: owned by ingest node {owner.name}" in second.log and " API: http" not in second.log
        health = cluster.api[0].wait_health(
            lambda h: any(n["node"] == "ingest-4" and n["waiting_for"] == ["ethusdt"] for n in h["ingest_nodes"]),
            "ingest-4 listed as waiting for ethusdt")
        assert health["sync"]["ethusdt"]["owner"] == owner.name
        second.stop()  # Ctrl-C while it waits for the lease
        assert second.popen.returncode == 0 and "stopped cleanly" in second.log, second.log[-2000:]
    finally:
        second.sigkill()
    assert cluster.owner_of("ethusdt") is owner


def test_a_restarted_nats_server_costs_a_visible_gap_and_no_process_restart(cluster: Cluster) -> None:
    cluster.wait_all_synced()
    watcher = FrameWatcher(f"{cluster.api[0].ws_base}/ws/ethusdt")
    try:
        last = watcher.wait_frame(lambda f: f["sync"]["state"] == "synced", "an ethusdt frame")
        cluster.nats.kill()
        for api in cluster.api:
            api.wait_health(lambda h: not h["bus"]["connected"] and all(state_of(h, s) == "stale" for s in SYMBOLS),
                            "the bus lost and every symbol stale")
        stale = watcher.wait_frame(lambda f: f["sync"]["state"] == "stale", "a stale ethusdt frame",
                                   after=watcher.messages.index(last))
        assert "lost the bus" in stale["sync"]["reason"]
        cluster.nats.start()  # same port, same store
        cluster.wait_all_synced()
        resumed = watcher.wait_frame(lambda f: f["sync"]["state"] == "synced", "ethusdt frames again",
                                     after=watcher.messages.index(stale))
        # The frames built while the bus was down were never sent: their seqs are missing.
        assert resumed["seq"] > stale["seq"] + 1
    finally:
        watcher.close()
    for api in cluster.api:
        assert api.health()["bus"]["reconnects"] >= 1
    assert all(node.alive for node in [*cluster.api, *cluster.ingest.values()])


def test_a_killed_api_node_leaves_the_other_serving(cluster: Cluster) -> None:
    doomed = cluster.start_api("api-3")
    doomed_watcher = FrameWatcher(f"{doomed.ws_base}/ws/btcusdt")
    watcher = FrameWatcher(f"{cluster.api[1].ws_base}/ws/btcusdt")
    try:
        doomed_watcher.wait_frame(lambda f: True, "a frame on api-3")
        doomed.sigkill()
        seen = len(watcher.frames)
        watcher.wait_frame(lambda f: f["sync"]["state"] == "synced", "frames on api-2 after api-3 died", after=seen)
        assert cluster.api[1].health()["status"] == "healthy"
    finally:
        watcher.close()
        doomed_watcher.close()


@pytest.mark.browser
def test_the_page_moves_to_the_next_api_node_when_its_own_dies(cluster: Cluster) -> None:
    pytest.importorskip("playwright.sync_api")
    from playwright.sync_api import sync_playwright

    from dashboard.harness import CHROMIUM, launch_chromium

    if not os.path.exists(CHROMIUM):
        pytest.skip(f"no Chromium at {CHROMIUM} (make chromium)")
    survivor = cluster.api[1]
    doomed = cluster.start_api("api-4", "--api-urls", survivor.base, dashboard=True)
    # The survivor allows the doomed node's page as an origin once it has heard of it.
    survivor.wait_health(lambda h: any(n["node"] == "api-4" and n["dashboard_url"] for n in h["api_nodes"]),
                         "api-4 and its page known")
    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            tab = browser.new_page(viewport={"width": 1400, "height": 900})
            tab.goto(f"http://127.0.0.1:{doomed.dash_port}/", timeout=CEILING_S * 1000)
            tab.wait_for_function(
                "([base]) => window.LIQ && LIQ.state.session.apiBase === base && LIQ.debug().conn === 'connected'"
                " && LIQ.debug().seq !== null", arg=[doomed.base], timeout=CEILING_S * 1000)
            doomed.sigkill()
            tab.wait_for_function(
                "([base]) => LIQ.state.session.apiBase === base && LIQ.debug().conn === 'connected'"
                " && LIQ.lastFrame() && LIQ.lastFrame().timestamp > Date.now() / 1000 - 3",
                arg=[survivor.base], timeout=CEILING_S * 1000)
            assert "SIMULATED" in tab.inner_text("#banner")
        finally:
            browser.close()
