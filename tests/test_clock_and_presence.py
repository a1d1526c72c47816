"""Wrong device clocks and silence on the real broker and database: an alarm event whose time lies
outside ingest's window is stored at its receive time and raised (never dead-lettered for its time
alone), telemetry outside it is dead-lettered with its reason and flags `clock_skew`; the presence
sweep marks a device offline after its own family's heartbeats, not 180 s × 2 for every family."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from harness import ServiceSet
from ingest_support import Msg, Publisher, register_fleet, wait_for

from alerts.config import AlertSettings
from alerts.service import AlertService
from devices import samples
from devices.contract import Channel, Family, topic
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
