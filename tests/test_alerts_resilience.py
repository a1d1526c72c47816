"""The engine service when things go wrong, on the real database and broker: PostgreSQL stopped in the
middle of an incident (outputs kept and written once it is back; counted when stopping with it down),
a full queue (back-pressure, nothing dropped), a crash (SIGKILL) before the rule state was written
(replayed from the stored messages on start), and a reading outside the physical range refused at the
edge (sensor_implausible, cleared after good reports)."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from ingest_support import Msg, Publisher, wait_for
from test_alerts_service import Feed, _seed

from alerts.config import AlertSettings
from alerts.service import AlertService, EngineEvent
from devices import samples
from devices.contract import Channel, Family, topic
from ingest.service import IngestService
from storage.db import connect
from yiju.embedded import PostgresServer
from yiju.settings import Settings

FAST = {"clock": "event", "tick_s": 0.05, "state_flush_s": 0.05}


def _hot_charger() -> dict[str, Any]:
    data = copy.deepcopy(samples.TELEMETRY[Family.EBIKE_CHARGER])
    for p in data["ports"]:
        if p["port"] == 4:
            p.update(port_temp_c=95.0)
    return data


def _alarms(url: str) -> list[tuple[str, str, str, int]]:
    with connect(url) as conn:
        rows = conn.execute(
            "SELECT d.uid, a.type, a.status, a.occurrences "
            "FROM alarms a JOIN devices d ON d.id = a.device_id ORDER BY a.id"
        ).fetchall()
    return [(r[0], r[1], r[2], r[3]) for r in rows]


def _count(url: str, table: str) -> int:
    with connect(url) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()  # fixed table names
    return 0 if row is None else int(row[0])


# ------------------------------------------------------------------------------- database outage


def test_outputs_evaluated_during_a_database_outage_are_written_when_it_returns(
    db_url: str, postgres_server: PostgresServer
) -> None:
    ids = _seed(db_url)
    service = AlertService(db_url, AlertSettings(**FAST))  # type: ignore[arg-type]
    with service:
        feed = Feed(service, ids)
        alarm = {"event": {"type": "alarm", "kind": "smoke"}}
        feed.send("smk", Family.SMOKE_ALARM, Channel.EVENT, 0, alarm)
        feed.send("smk2", Family.SMOKE_ALARM, Channel.EVENT, 0, alarm)  # two detectors: a confirmed fire
        assert service.wait_idle()
        assert sorted(a[:2] for a in _alarms(db_url)) == [("smk", "fire_alarm"), ("smk2", "fire_alarm")]
        postgres_server.stop()
        try:
            # mid-incident: the charger overheats for 40 s, the door never releases (linkage deadline)
            feed.send("chg", Family.EBIKE_CHARGER, Channel.TELEMETRY, 5, {"data": _hot_charger()})
            feed.send("chg", Family.EBIKE_CHARGER, Channel.TELEMETRY, 45, {"data": _hot_charger()})
            wait_for(lambda: service.stats.persist_retries >= 2, 20, "the engine retrying its writes")
        finally:
            postgres_server.start()
        assert service.wait_idle(30)
        wait_for(
            lambda: (
                {("chg", "charger_over_temperature"), ("door", "linkage_failed")}
                <= {a[:2] for a in _alarms(db_url)}
            ),
            30,
            "the outputs of the outage written",
        )
    assert service.stats.unwritten == 0 and service.stats.dropped == 0
    alarms = _alarms(db_url)
    assert sorted(a[:2] for a in alarms) == [
        ("chg", "charger_over_temperature"),
        ("door", "linkage_failed"),
        ("smk", "fire_alarm"),
        ("smk2", "fire_alarm"),
    ]  # each once


def test_stopping_with_the_database_down_counts_what_was_not_written(
    db_url: str, postgres_server: PostgresServer
) -> None:
    ids = _seed(db_url)
    service = AlertService(db_url, AlertSettings(**FAST))  # type: ignore[arg-type]
    service.start()
    feed = Feed(service, ids)
    assert service.wait_idle()
    postgres_server.stop()
    try:
        feed.send("smk", Family.SMOKE_ALARM, Channel.EVENT, 0, {"event": {"type": "alarm", "kind": "smoke"}})
        wait_for(lambda: service.stats.persist_retries >= 1, 20, "the engine retrying its write")
        t0 = time.monotonic()
        service.stop()
        assert time.monotonic() - t0 < 10
    finally:
        postgres_server.start()
    assert service.stats.unwritten >= 1  # the fire alarm
    assert _alarms(db_url) == []
    # after stop nothing is taken any more, and that is counted too
    dropped = service.stats.dropped
    feed.send("chg", Family.EBIKE_CHARGER, Channel.TELEMETRY, 5, {"data": _hot_charger()})
    assert service.stats.dropped == dropped + 1


# ------------------------------------------------------------------------------- back-pressure


def test_a_full_queue_holds_the_producer_back_instead_of_dropping(db_url: str) -> None:
    ids = _seed(db_url)
    gate = threading.Event()

    def slow_subscriber(event: EngineEvent) -> None:  # the worker blocks here, the queue fills up
        gate.wait(30)

    service = AlertService(db_url, AlertSettings(**{**FAST, "queue_size": 100}))  # type: ignore[arg-type]
    service.subscribe(slow_subscriber)
    with service:
        feed = Feed(service, ids)
        feed.send("smk", Family.SMOKE_ALARM, Channel.EVENT, 0, {"event": {"type": "alarm", "kind": "smoke"}})
        wait_for(service.intake.empty, 10, "the worker busy with the first message")
        door = samples.TELEMETRY[Family.ACCESS_DOOR]
        producer = threading.Thread(
            target=lambda: [
                feed.send("door", Family.ACCESS_DOOR, Channel.TELEMETRY, 1 + i * 0.01, {"data": door})
                for i in range(250)
            ]
        )
        producer.start()
        wait_for(lambda: service.stats.backpressure_waits >= 1, 10, "the producer held back")
        time.sleep(0.3)
        assert producer.is_alive() and feed.seq < 251  # still waiting for room
        gate.set()
        producer.join(30)
        assert not producer.is_alive()
        assert service.wait_idle(30)
    assert service.stats.dropped == 0
    assert service.stats.processed == 251


# ------------------------------------------------------------------------------- crash recovery

CHILD = textwrap.dedent(
    """
    import os, sys, time
    from alerts.config import AlertSettings
    from alerts.service import AlertService
    from ingest.service import IngestService
    from yiju.settings import Settings

    settings = Settings()
    # rule state never written behind: a crash loses every state change without outputs
    engine = AlertService(settings.database.url, settings.alerts.model_copy(
        update={"clock": "event", "state_flush_s": 3600.0}))
    url = settings.database.url
    ingest = IngestService(settings, database_url=url, mqtt_url=settings.mqtt.url, sink=engine)
    engine.start()
    ingest.start()
    while not ingest.consumer.subscribed.is_set():
        time.sleep(0.05)
    print("ready", flush=True)
    time.sleep(600)
    """
)


def _env(settings: Settings) -> dict[str, str]:
    assert settings.database.url and settings.mqtt.url
    env = {k: v for k, v in os.environ.items() if not k.startswith("YIJU_")}
    env.update(
        YIJU_DATABASE__URL=settings.database.url,
        YIJU_MQTT__URL=settings.mqtt.url,
        YIJU_MQTT__TOPIC_PREFIX=settings.mqtt.topic_prefix,
        YIJU_MQTT__CLIENT_ID=settings.mqtt.client_id,
    )
    return env


def _msg(prefix: str, uid: str, family: Family, channel: Channel, seq: int, ts: datetime, fill: Any) -> Msg:
    env = samples.envelope(family, device=uid, seq=seq, ts=ts.isoformat())
    env.update(fill)
    table = "telemetry" if channel is Channel.TELEMETRY else "device_events"
    return Msg(topic(prefix, "c1", uid, channel), json.dumps(env).encode(), 0, table)


def test_a_crash_before_the_state_was_written_is_recovered_by_replay(settings: Settings) -> None:
    url, prefix = settings.database.url, settings.mqtt.topic_prefix
    assert url and settings.mqtt.url
    ids = _seed(url)
    with connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO devices (uid, community_id, family) VALUES ('gas', %s, 'gas_alarm')",
            (ids["community"],),
        )
    t0 = datetime.now(UTC) - timedelta(minutes=5)
    hot = {"data": _hot_charger()}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD], env=_env(settings), stdout=subprocess.PIPE, text=True
    )
    pub = Publisher(settings.mqtt.url, f"pub-{prefix}")
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        first = [
            _msg(prefix, "chg", Family.EBIKE_CHARGER, Channel.TELEMETRY, 1, t0, hot),
            _msg(prefix, "chg", Family.EBIKE_CHARGER, Channel.TELEMETRY, 2, t0 + timedelta(seconds=10), hot),
            _msg(prefix, "gas", Family.GAS_ALARM, Channel.EVENT, 1, t0 + timedelta(seconds=10),
                 {"event": {"type": "high", "gas": "combustible", "lel_pct": 55.0}}),
        ]  # fmt: skip
        pub.publish(first)
        pub.wait_acked(3)
        # the gas alarm is written (with its device's state); the charger's 10 s of heat only in memory
        wait_for(lambda: [a[:2] for a in _alarms(url)] == [("gas", "gas_high_alarm")], 20, "the gas alarm")
        wait_for(lambda: _count(url, "telemetry") == 2, 20, "ingest committed the charger's reports")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        if child.stdout is not None:
            child.stdout.close()
    engine = AlertService(url, settings.alerts.model_copy(update={"clock": "event"}))
    ingest = IngestService(settings, database_url=url, mqtt_url=settings.mqtt.url, sink=engine)
    engine.start()
    ingest.start()
    try:
        assert engine.wait_idle(20)
        assert engine.stats.replayed >= 2  # the charger's two reports (the gas event is in its state)
        # 40 s after the heat began: confirmed only if the first 10 s were recovered
        pub.publish(
            [_msg(prefix, "chg", Family.EBIKE_CHARGER, Channel.TELEMETRY, 3, t0 + timedelta(seconds=40), hot)]
        )
        pub.wait_acked(4)
        wait_for(lambda: len(_alarms(url)) == 2, 20, "the over-temperature alarm")
        assert engine.wait_idle(20)
    finally:
        pub.close()
        ingest.stop()
        engine.stop()
    assert sorted(_alarms(url)) == [
        ("chg", "charger_over_temperature", "active", 1),
        ("gas", "gas_high_alarm", "active", 1),
    ]


# ------------------------------------------------------------------------------- implausible readings


def test_an_out_of_range_reading_is_a_dead_letter_and_a_sensor_implausible_alarm(settings: Settings) -> None:
    url, prefix = settings.database.url, settings.mqtt.topic_prefix
    assert url and settings.mqtt.url
    ids = _seed(url)
    with connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO devices (uid, community_id, family) VALUES ('gas', %s, 'gas_alarm')",
            (ids["community"],),
        )
    t0 = datetime.now(UTC) - timedelta(minutes=5)
    good = {"data": samples.TELEMETRY[Family.GAS_ALARM]}
    bad = {"data": {**samples.TELEMETRY[Family.GAS_ALARM], "lel_pct": 150.0}}
    wrong_type = {"data": {**samples.TELEMETRY[Family.GAS_ALARM], "lel_pct": "3.5"}}
    engine = AlertService(url, settings.alerts.model_copy(update={"clock": "event", "tick_s": 0.05}))
    ingest = IngestService(settings, database_url=url, mqtt_url=settings.mqtt.url, sink=engine)
    pub = Publisher(settings.mqtt.url, f"pub-{prefix}")
    engine.start()
    ingest.start()
    try:
        wait_for(ingest.consumer.subscribed.is_set, 15, "ingest subscription")
        steps = [(0, good), (10, bad), (20, wrong_type), (30, good), (40, good)]
        tele = Family.GAS_ALARM, Channel.TELEMETRY
        pub.publish(
            _msg(prefix, "gas", *tele, i + 1, t0 + timedelta(seconds=s), f) for i, (s, f) in enumerate(steps)
        )
        pub.wait_acked(len(steps))
        wait_for(lambda: ingest.stats.acked >= len(steps), 20, "ingest")
        assert engine.wait_idle(20)
        assert _alarms(url) == [("gas", "sensor_implausible", "active", 1)]  # 2 good reports: still open
        pub.publish(
            [_msg(prefix, "gas", Family.GAS_ALARM, Channel.TELEMETRY, 6, t0 + timedelta(seconds=50), good)]
        )
        pub.wait_acked(len(steps) + 1)
        wait_for(lambda: _alarms(url) == [("gas", "sensor_implausible", "cleared", 1)], 20, "cleared")
        with connect(url) as conn:
            detail = conn.execute("SELECT details FROM alarms").fetchone()
            reasons = conn.execute("SELECT reason FROM dead_letters ORDER BY id").fetchall()
    finally:
        pub.close()
        ingest.stop()
        engine.stop()
    assert detail is not None and "lel_pct" in detail[0]["detail"] and "150" in detail[0]["detail"]
    assert reasons == [("schema_violation",), ("schema_violation",)]  # both refused; one is implausible
    assert engine.stats.implausible == 1
