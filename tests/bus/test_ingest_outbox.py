"""An ingest node's outbox on a real NATS server: each frame goes once on
``liq.frame.<symbol>`` as its builder encoded it, and each of its alerts on
``liq.alert.<symbol>`` with the alert's content; a symbol not owned sends nothing."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from nats.aio.msg import Msg

from bus.connection import BusConnection
from bus.ingest_node import FrameOutbox
from bus.leases import Leases
from bus.nats_server import NatsServer
from bus.subjects import ALERT_PREFIX, FRAME_PREFIX
from features.frame import AlertEvent, Frame, FrameAlert, SyncInfo
from features.frame import encode as encode_frame
from tests.waiting import wait_until


def wall(n: int, price: float, size: float) -> FrameAlert:
    now = round(time.time(), 3)
    return FrameAlert(
        id=f"btcusdt-{n}", type="WALL", status="born", live=True, symbol="btcusdt", side="ask", price=price,
        price_bin=int(price // 2), ts=now, born_ts=now - 3, age_s=8.0, size=size, notional=price * size,
        peak_notional=price * size, distance_bps=0.5, depth_share=0.61, score=400_000.0, multiple=26.7,
        events=[AlertEvent(ts=now - 3, status="born", price=price, size=size)],
    )


def frame(symbol: str, seq: int, alerts: list[FrameAlert]) -> str:
    return encode_frame(Frame(
        symbol=symbol, timestamp=time.time(), ts_event_ms=int(time.time() * 1000) - 20, seq=seq, alerts=alerts,
        sync=SyncInfo(state="synced", reason="in sync", last_update_id=1000 + seq, last_message_age_s=0.01),
    )).decode()


async def test_a_frames_alerts_go_on_the_alert_subject_of_its_symbol(nats_server: NatsServer) -> None:
    ingest = BusConnection(nats_server.url, "ingest-t", connect_timeout_s=10)
    listener = BusConnection(nats_server.url, "listener", connect_timeout_s=10)
    await ingest.connect()
    await listener.connect()
    received: list[tuple[str, bytes]] = []

    async def keep(msg: Msg) -> None:
        received.append((msg.subject, msg.data))

    outbox_task: asyncio.Task[Any] | None = None
    try:
        await listener.nc.subscribe(FRAME_PREFIX + ">", cb=keep)
        await listener.nc.subscribe(ALERT_PREFIX + ">", cb=keep)
        await listener.sync()
        leases = Leases(ingest, "ingest-t", "instance-t", on_change=lambda symbol, owned: None)
        await leases.claim_all(["btcusdt"])
        outbox = FrameOutbox(ingest, leases)
        outbox_task = asyncio.create_task(outbox.run())
        alerts = [wall(1, 97000.5, 4.0), wall(2, 97010.0, 6.5)]
        with_alerts = frame("btcusdt", 1, alerts)

        outbox.offer("ethusdt", frame("ethusdt", 1, []))  # not owned: never sent
        outbox.offer("btcusdt", with_alerts)
        outbox.offer("btcusdt", frame("btcusdt", 2, []))

        await wait_until(lambda: len(received) >= 4, what="two frames and two alerts")
        await ingest.sync()
        await listener.sync()
        subjects = [subject for subject, _ in received]
        assert sorted(subjects) == ["liq.alert.btcusdt", "liq.alert.btcusdt", "liq.frame.btcusdt",
                                    "liq.frame.btcusdt"], subjects
        frames = [data for subject, data in received if subject == "liq.frame.btcusdt"]
        assert frames[0] == with_alerts.encode()  # the very bytes /ws sends
        sent = [orjson.loads(data) for subject, data in received if subject == "liq.alert.btcusdt"]
        # Each alert as the frame carries it, every field, in the frame's order.
        assert sent == orjson.loads(with_alerts)["alerts"]
        assert [a["id"] for a in sent] == ["btcusdt-1", "btcusdt-2"]
        assert sent[0]["price"] == 97000.5 and sent[0]["size"] == 4.0 and sent[0]["type"] == "WALL"
        assert sent[1]["events"][0]["size"] == 6.5
        assert (outbox.published, outbox.alerts_published, outbox.not_owned) == (2, 2, 1)
    finally:
        if outbox_task is not None:
            outbox_task.cancel()
        await listener.close()
        await ingest.close()
