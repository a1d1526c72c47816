"""No alarm may be missed (issue 9), on the real broker and database: a device whose sequence counter
restarts after an engine restart still has its alarms raised, a device registered a moment ago is
known to ingest at once, and a disabled one is refused at once."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from harness import ServiceSet
from ingest_support import Msg, Publisher, wait_for

from alerts.service import AlertService
from devices import samples
from devices.contract import Channel, Family, topic
from ingest.config import IngestSettings
from ingest.service import IngestService
from storage import registry
from storage.db import connection
from yiju.settings import DatabaseSettings, MqttSettings, Settings

COMMUNITY = "ap1"


@dataclass
class Stack:
    settings: Settings
    url: str
    prefix: str
    ingest: IngestService
    engine: AlertService | None
    pub: Publisher

    def send(
        self, uid: str, family: Family, channel: Channel, *, seq: int, at: datetime, **kw: object
    ) -> None:
        doc = samples.message(family, channel, device=uid, seq=seq, ts=at.isoformat())
        doc.update(kw)
        self.pub.publish([Msg(topic(self.prefix, COMMUNITY, uid, channel), json.dumps(doc).encode(), 0, "")])

    def rows(self, query: str, *args: object) -> list[tuple[object, ...]]:
        with connection(self.url) as conn:
            return conn.execute(query, args).fetchall()  # type: ignore[arg-type]

    def start_engine(self) -> AlertService:
        engine = AlertService(self.url, self.settings.alerts.model_copy(update={"state_flush_s": 0.1}))
        engine.start()
        self.engine = engine
        self.ingest.sink = engine
        return engine


@pytest.fixture
def stack(services: ServiceSet, db_url: str, topic_prefix: str) -> Iterator[Stack]:
    settings = Settings(
        database=DatabaseSettings(url=db_url),
        mqtt=MqttSettings(
            url=services.mqtt_url, topic_prefix=topic_prefix, client_id=f"ingest-{topic_prefix}"
        ),
        # the periodic full reload is far away: only notifications and direct lookups can help
        ingest=IngestSettings(metrics_port=0, registry_refresh_s=3600),
    )
    with connection(db_url, autocommit=True) as conn:
        registry.upsert_community(conn, registry.CommunityIn(COMMUNITY, "报警通路小区"))
    ingest = IngestService(settings, database_url=db_url, mqtt_url=services.mqtt_url)
    pub = Publisher(services.mqtt_url, f"pub-{uuid.uuid4().hex[:8]}")
    s = Stack(settings, db_url, topic_prefix, ingest, None, pub)
    try:
        yield s
    finally:
        pub.close()
        ingest.stop()
        if s.engine is not None:
            s.engine.stop()


def _start_ingest(s: Stack) -> None:
    s.ingest.start()
    wait_for(s.ingest.consumer.subscribed.is_set, 15, "ingest subscription")


def _register(s: Stack, uid: str, family: Family, *, enabled: bool = True) -> None:
    """What POST /devices and the CSV import do: one upsert through the registry."""
    with connection(s.url, autocommit=True) as conn:
        registry.upsert_devices(conn, [registry.DeviceIn(uid, COMMUNITY, family.value, enabled=enabled)])


def test_a_device_registered_a_moment_ago_is_known_at_once(stack: Stack) -> None:
    """5 of 5 devices registered and publishing at once (retained status, then telemetry) are stored:
    no unknown_device dead letter, whether the notification or the direct lookup got there first."""
    _start_ingest(stack)
    now = datetime.now(UTC)
    uids = [f"new-door-{i}" for i in range(5)]
    for i, uid in enumerate(uids):
        _register(stack, uid, Family.ACCESS_DOOR)
        stack.send(uid, Family.ACCESS_DOOR, Channel.STATUS, seq=0, at=now + timedelta(seconds=i))
        stack.send(uid, Family.ACCESS_DOOR, Channel.TELEMETRY, seq=1, at=now + timedelta(seconds=i))
    stack.pub.wait_acked(2 * len(uids))
    wait_for(lambda: stack.ingest.stats.acked >= 2 * len(uids), 20, "ingest acked everything")
    assert stack.rows("SELECT reason, device_uid FROM dead_letters") == []
    assert stack.rows("SELECT count(*) FROM telemetry") == [(len(uids),)]
    assert stack.rows("SELECT count(*) FROM device_events WHERE kind = 'status'") == [(len(uids),)]


def test_a_disabled_device_is_refused_from_the_commit_on(stack: Stack) -> None:
    """The registry's change notification reaches the cache: no waiting for the next full reload."""
    _register(stack, "door-x", Family.ACCESS_DOOR)
    _start_ingest(stack)
    now = datetime.now(UTC)
    stack.send("door-x", Family.ACCESS_DOOR, Channel.TELEMETRY, seq=1, at=now)
    wait_for(lambda: stack.rows("SELECT count(*) FROM telemetry") == [(1,)], 15, "first message stored")
    _register(stack, "door-x", Family.ACCESS_DOOR, enabled=False)

    # the notification is applied within moments of the commit (the periodic reload is an hour away):
    # publish until a message is refused, a few times at most
    def handled() -> int:
        rows = stack.rows("SELECT count(*) FROM telemetry UNION ALL SELECT count(*) FROM dead_letters")
        return sum(int(str(n)) for (n,) in rows)

    for seq in range(2, 7):
        stack.send("door-x", Family.ACCESS_DOOR, Channel.TELEMETRY, seq=seq, at=now + timedelta(seconds=seq))
        wait_for(lambda n=seq: handled() >= n, 15, f"message {seq} stored or refused")
        if stack.rows("SELECT count(*) FROM dead_letters") == [(1,)]:
            break
    refused = stack.rows("SELECT reason, device_uid, community_id, device_id FROM dead_letters")
    assert [r[:2] for r in refused] == [("device_disabled", "door-x")], stack.rows(
        "SELECT seq FROM telemetry"
    )
    assert refused[0][2] is not None and refused[0][3] is not None  # whose it is (API scope)
    assert stack.rows("SELECT count(*) FROM telemetry") == [(seq - 1,)] and seq <= 3


def test_a_restarted_counter_raises_its_fire_alarm_after_an_engine_restart(stack: Stack) -> None:
    """The demo's second run, in small: the device counted to 10, the engine restarted (state from the
    database), the device rebooted (counter from 0): its fire alarm is raised, a redelivery is not
    evaluated twice, and its offline alarm clears."""
    uid, fam = "smk-r", Family.SMOKE_ALARM
    _register(stack, uid, fam)
    engine = stack.start_engine()
    _start_ingest(stack)
    # device time close to now: the wall-clock tick must not find the device silent (3 × 60 s heartbeats)
    t0 = datetime.now(UTC) - timedelta(seconds=60)
    for seq in range(11):
        stack.send(uid, fam, Channel.TELEMETRY, seq=seq, at=t0 + timedelta(seconds=seq))
    stack.send(uid, fam, Channel.STATUS, seq=11, at=t0 + timedelta(seconds=12), state="offline")
    wait_for(lambda: engine.stats.processed >= 12, 20, "the first run evaluated")
    assert engine.wait_idle(20)
    engine.stop()  # flushes the rule state; the next engine starts from it
    engine = stack.start_engine()

    reboot = t0 + timedelta(seconds=50)
    stack.send(uid, fam, Channel.STATUS, seq=0, at=reboot, state="online")
    fire_at = reboot + timedelta(seconds=2)
    stack.send(uid, fam, Channel.EVENT, seq=1, at=fire_at, event={"type": "alarm", "kind": "smoke"})
    stack.send(uid, fam, Channel.EVENT, seq=1, at=fire_at, event={"type": "alarm", "kind": "smoke"})

    def alarms() -> list[tuple[object, ...]]:
        # the sample telemetry's battery self-check (2026-06-01) is older than 24 h at wall-clock time:
        # battery_check_overdue (GB 20517-2025 §5.11.1) is not this test's business
        return stack.rows(
            "SELECT type, status, occurrences, first_at FROM alarms "
            "WHERE type <> 'battery_check_overdue' ORDER BY type"
        )

    wait_for(lambda: len(alarms()) == 2 and alarms()[0][1] == "cleared", 20, "fire raised, offline cleared")
    assert alarms() == [
        ("device_offline", "cleared", 1, alarms()[0][3]),
        ("fire_alarm", "active", 1, fire_at),
    ]
    wait_for(lambda: engine.stats.processed >= 3, 10, "all three evaluated or skipped")
    assert engine.wait_idle(10)
    # the redelivery (and, if the start-up replay read them from storage too, the live copies) skipped
    assert engine.stats.counter_restarts == 1
    assert engine.stats.duplicates >= 1
