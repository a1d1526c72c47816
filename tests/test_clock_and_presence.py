"""Wrong device clocks and silence on the real broker and database: an alarm event whose time lies
outside ingest's window is stored at its receive time and raised (never dead-lettered for its time
alone), telemetry outside it is dead-lettered with its reason and flags `clock_skew`; the presence
sweep marks a device offline after its own family's heartbeats, not 180 s × 2 for every family."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from harness import ServiceSet
from ingest_support import Msg, Publisher, register_fleet, wait_for

from alerts.config import AlertSettings
from alerts.service import AlertService
from devices import catalog, samples
from devices.contract import Channel, Decoded, DeviceRef, Family, topic
from ingest.config import IngestSettings
from ingest.service import IngestService, offline_rules
from storage.db import connect, connection
from storage.presence import mark_silent_offline
from yiju.settings import DatabaseSettings, MqttSettings, Settings

RESET = "2000-01-01T08:00:00+08:00"  # a detector whose real-time clock lost its battery


@pytest.fixture
def publisher(services: ServiceSet) -> Iterator[Publisher]:
    pub = Publisher(services.mqtt_url, f"pub-{uuid.uuid4().hex[:8]}")
    yield pub
    pub.close()


def test_alarm_event_with_a_reset_clock_is_stored_at_receipt_and_raised(
    services: ServiceSet, db_url: str, topic_prefix: str, publisher: Publisher
) -> None:
    fleet = register_fleet(db_url, per_family=1)
    smoke = fleet[Family.SMOKE_ALARM][0]
    settings = Settings(
        database=DatabaseSettings(url=db_url),
        mqtt=MqttSettings(url=services.mqtt_url, topic_prefix=topic_prefix, client_id=f"i-{topic_prefix}"),
        ingest=IngestSettings(metrics_port=0),
    )
    engine = AlertService(db_url, AlertSettings(tick_s=0.05))
    ingest = IngestService(settings, database_url=db_url, mqtt_url=services.mqtt_url, sink=engine)
    before = datetime.now(UTC)
    engine.start()
    ingest.start()
    try:
        wait_for(ingest.consumer.subscribed.is_set, 15, "ingest subscription")
        fire = samples.payload(Family.SMOKE_ALARM, Channel.EVENT, device=smoke, seq=7, ts=RESET, index=0)
        tele = samples.payload(Family.SMOKE_ALARM, Channel.TELEMETRY, device=smoke, seq=8, ts=RESET)
        publisher.publish(
            [
                Msg(topic(topic_prefix, "c1", smoke, Channel.EVENT), fire, 0, "device_events"),
                Msg(topic(topic_prefix, "c1", smoke, Channel.TELEMETRY), tele, 0, "dead_letters"),
            ]
        )
        publisher.wait_acked(2)

        def alarms() -> dict[str, tuple[datetime, dict[str, object]]]:
            with connection(db_url) as conn:
                rows = conn.execute("SELECT type, first_at, details FROM alarms").fetchall()
            return {r[0]: (r[1], r[2]) for r in rows}

        wait_for(lambda: {"fire_alarm", "clock_skew"} <= set(alarms()), 20, "fire_alarm and clock_skew")
    finally:
        ingest.stop()
        engine.stop()
    after = datetime.now(UTC)
    got = alarms()
    fire_at, fire_details = got["fire_alarm"]
    assert before <= fire_at <= after  # the receive time, not 2000
    assert fire_details["ts_from"] == "received_at" and fire_details["device_ts"] == RESET
    _, skew = got["clock_skew"]
    assert skew["reason"] == "timestamp_out_of_window" and skew["device_ts"].startswith("2000-01-01")  # type: ignore[union-attr]
    with connection(db_url) as conn:
        (ts, body) = conn.execute("SELECT ts, body FROM device_events WHERE kind = 'alarm'").fetchone()  # type: ignore[misc]
        dead = conn.execute("SELECT reason, detail FROM dead_letters").fetchall()
    assert before <= ts <= after and body["ts"] == RESET  # stored at receipt, the device's time kept
    assert [r[0] for r in dead] == ["timestamp_out_of_window"]  # telemetry: refused, with its reason
    assert "2000-01-01" in dead[0][1]


def test_presence_sweep_follows_each_familys_heartbeats(db_url: str) -> None:
    fleet = register_fleet(db_url, per_family=1)
    charger, smoke, gas = (fleet[f][0] for f in (Family.EBIKE_CHARGER, Family.SMOKE_ALARM, Family.GAS_ALARM))
    door = fleet[Family.ACCESS_DOOR][0]
    now = datetime.now(UTC)
    with connection(db_url) as conn:
        ids = dict(conn.execute("SELECT uid, id FROM devices").fetchall())
        for uid, silent_s, announced in (
            (charger, 361, None),  # 180 s × 2 (AP3000): offline
            (smoke, 361, None),  # hourly × 3: still online six minutes after its report
            (gas, 3 * 3600 + 1, None),  # hourly × 3: offline after three missed hours
            (door, 100, 30),  # announced 30 s × 3: offline after 90 s
        ):
            conn.execute(
                "INSERT INTO device_presence (device_id, online, status, last_seen, heartbeat_s) "
                "VALUES (%s, true, 'online', %s, %s)",
                (ids[uid], now - timedelta(seconds=silent_s), announced),
            )
        conn.commit()
    with connect(db_url, autocommit=True) as conn:
        gone = mark_silent_offline(conn, offline_rules(AlertSettings(), {}), now)
        assert sorted(gone) == sorted(ids[u] for u in (charger, gas, door))
        # a community that has its smoke alarms report every minute: offline after 3 min of silence
        cid = conn.execute("SELECT id FROM communities WHERE code = 'c1'").fetchone()[0]  # type: ignore[index]
        override = {"smoke_alarm": {"heartbeat_s": 60}}
        conn.execute(
            "UPDATE communities SET settings = %s WHERE id = %s", (json.dumps({"alerts": override}), cid)
        )
        assert mark_silent_offline(conn, offline_rules(AlertSettings(), {cid: override}), now) == [ids[smoke]]
        assert mark_silent_offline(conn, offline_rules(AlertSettings(), {cid: override}), now) == []


def test_engine_on_the_wall_clock_corrects_a_device_clock_behind(db_url: str) -> None:
    """A door 4 minutes behind, announcing a 1 s heartbeat (offline after 3 s of silence): online
    while it reports every second, offline 3 s after its last report arrived, not at once."""
    fleet = register_fleet(db_url, per_family=1)
    door = fleet[Family.ACCESS_DOOR][0]
    with connection(db_url) as conn:
        (door_id, community_id) = conn.execute(  # type: ignore[misc]
            "SELECT id, community_id FROM devices WHERE uid = %s", (door,)
        ).fetchone()
    ref = DeviceRef(door_id, door, "c1", community_id, Family.ACCESS_DOOR)
    behind = timedelta(minutes=4)
    engine = AlertService(db_url, AlertSettings(tick_s=0.05, state_flush_s=0.1))

    def send(seq: int, channel: Channel, fill: dict[str, object]) -> datetime:
        rx = datetime.now(UTC)
        ts = rx - behind
        doc = {**samples.envelope(Family.ACCESS_DOOR, device=door, seq=seq, ts=ts.isoformat()), **fill}
        body = catalog.decode(Family.ACCESS_DOOR, channel, json.dumps(doc))
        engine.submit(Decoded(ref, channel, ts, seq, rx, body, b""))
        return rx

    def offline() -> list[datetime]:
        with connection(db_url) as conn:
            rows = conn.execute("SELECT first_at FROM alarms WHERE type = 'device_offline'").fetchall()
        return [r[0] for r in rows]

    with engine:
        send(1, Channel.STATUS, {"state": "online", "heartbeat_s": 1})
        for seq in range(2, 9):
            last_rx = send(seq, Channel.TELEMETRY, {"data": samples.TELEMETRY[Family.ACCESS_DOOR]})
            time.sleep(0.5)  # a device reporting every half second: pacing the feed, not waiting for a result
        assert engine.wait_idle(10)
        assert offline() == []  # 4 min behind, yet online while it reports
        wait_for(lambda: bool(offline()), 15, "device_offline after 3 s of silence")
        noticed = datetime.now(UTC)
    (first_at,) = offline()
    assert first_at == last_rx - behind + timedelta(seconds=3)  # in the door's time, 3 s after its last
    assert noticed - last_rx < timedelta(seconds=3 + 2 + 3)  # decided after 3 s + 2 s grace, not 4 min
