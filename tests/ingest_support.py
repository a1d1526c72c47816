"""Helpers for the ingest tests: a registered fleet, a QoS 1 publisher, waiting for rows."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from devices import samples
from devices.catalog import decode, points_of
from devices.contract import Channel, Family, topic
from devices.mqtt_wire import parse_mqtt_url
from storage.db import connection

COMMUNITY = "c1"


@dataclass(frozen=True)
class Msg:
    topic: str
    payload: bytes
    points: int  # points rows it yields if stored
    table: str  # telemetry | device_events | dead_letters


def register_fleet(db_url: str, per_family: int = 3, community: str = COMMUNITY) -> dict[Family, list[str]]:
    fleet: dict[Family, list[str]] = {}
    with connection(db_url) as conn:
        cid = conn.execute(
            "INSERT INTO communities (code, name) VALUES (%s, %s) "
            "ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name RETURNING id",
            (community, community),
        ).fetchone()[0]  # type: ignore[index]
        for family in Family:
            uids = [f"{community}-{family.value[:5]}-{i}" for i in range(per_family)]
            for uid in uids:
                conn.execute(
                    "INSERT INTO devices (uid, community_id, family) VALUES (%s, %s, %s)",
                    (uid, cid, family.value),
                )
            fleet[family] = uids
        conn.commit()
    return fleet


def good_messages(
    prefix: str, fleet: dict[Family, list[str]], count: int, *, start_seq: int = 1, community: str = COMMUNITY
) -> list[Msg]:
    """`count` valid messages cycling through devices, channels and event samples; ts near now."""
    devices = [(f, uid) for f, uids in fleet.items() for uid in uids]
    now = datetime.now(UTC) - timedelta(seconds=30)
    channels = (Channel.TELEMETRY, Channel.TELEMETRY, Channel.TELEMETRY, Channel.EVENT, Channel.COMMAND_ACK)
    out: list[Msg] = []
    for i in range(count):
        family, uid = devices[i % len(devices)]
        channel = channels[(i // len(devices)) % len(channels)]
        if channel is Channel.EVENT and not samples.EVENTS[family]:
            channel = Channel.TELEMETRY
        seq = start_seq + i
        ts = (now + timedelta(microseconds=i)).isoformat()
        kw = {"index": i % len(samples.EVENTS[family])} if channel is Channel.EVENT else {}
        payload = samples.payload(family, channel, device=uid, seq=seq, ts=ts, **kw)
        n_points = 0
        if channel is Channel.TELEMETRY:
            n_points = len(points_of(family, decode(family, channel, payload)))
        table = "telemetry" if channel is Channel.TELEMETRY else "device_events"
        out.append(Msg(topic(prefix, community, uid, channel), payload, n_points, table))
    return out


class Publisher:
    """QoS 1 publisher with a persistent session: unacknowledged messages are resent on reconnect."""

    def __init__(self, url: str, client_id: str) -> None:
        address = parse_mqtt_url(url)
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5
        )
        self.client.max_inflight_messages_set(500)
        self.client.max_queued_messages_set(0)
        self.client.reconnect_delay_set(1, 2)
        self.acked = 0
        self._lock = threading.Lock()
        self.client.on_publish = self._on_publish
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self.client.connect(address.host, address.port, keepalive=10, clean_start=False, properties=props)
        self.client.loop_start()

    def _on_publish(self, c: object, u: object, mid: int, rc: object, p: object) -> None:
        with self._lock:
            self.acked += 1

    def publish(self, msgs: Iterable[Msg], pace: Callable[[int], None] | None = None) -> int:
        n = 0
        for m in msgs:
            self.client.publish(m.topic, m.payload, qos=1)
            n += 1
            if pace:
                pace(n)
        return n

    def wait_acked(self, n: int, timeout_s: float = 60.0) -> None:
        wait_for(lambda: self.acked >= n, timeout_s, f"publisher acks ({self.acked}/{n})")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def wait_for(cond: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.1) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def counts(db_url: str) -> dict[str, int]:
    with connection(db_url) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM telemetry),"
            " (SELECT count(DISTINCT (device_id, ts, seq)) FROM telemetry),"
            " (SELECT count(*) FROM device_events), (SELECT count(*) FROM points),"
            " (SELECT count(*) FROM dead_letters)"
        ).fetchone()
    assert row is not None
    return {
        "telemetry": row[0],
        "telemetry_distinct": row[1],
        "events": row[2],
        "points": row[3],
        "dead_letters": row[4],
    }


def expected(msgs: list[Msg]) -> dict[str, int]:
    return {
        "telemetry": sum(1 for m in msgs if m.table == "telemetry"),
        "events": sum(1 for m in msgs if m.table == "device_events"),
        "points": sum(m.points for m in msgs),
    }


def wait_rows(db_url: str, msgs: list[Msg], timeout_s: float = 60.0, dead_letters: int = 0) -> dict[str, int]:
    want = expected(msgs)
    last: dict[str, int] = {}

    def done() -> bool:
        nonlocal last
        last = counts(db_url)
        return (
            last["telemetry"] >= want["telemetry"]
            and last["events"] >= want["events"]
            and last["dead_letters"] >= dead_letters
        )

    try:
        wait_for(done, timeout_s, "rows", interval_s=0.25)
    except AssertionError as exc:
        raise AssertionError(f"{exc}: have {last}, want {want} and {dead_letters} dead letters") from None
    return last
