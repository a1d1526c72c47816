"""Acceptance: 100,000 simulator messages across all families → exactly the expected rows, no
duplicates. The stream is the simulator's normal traffic of a small compound, published as fast as
the broker takes it by the simulator's raw-socket load publisher; the expectation is computed from
the stream itself (every message is valid, and (device, ts, seq) is unique in it)."""

from __future__ import annotations

import itertools
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from harness import ServiceSet
from ingest_support import wait_for

from devices.catalog import decode, points_of
from devices.contract import Channel, Family
from ingest.config import IngestSettings
from ingest.service import IngestService
from simulators import behaviour
from simulators.compound import Size, generate_fleet
from simulators.mqtt_publisher import LoadPublisher
from storage.db import connection
from yiju.commands.simulate import register_fleet
from yiju.settings import DatabaseSettings, MqttSettings, Settings

MESSAGES = 100_000
DEADLINE_S = 90.0  # for ingest to commit everything (it takes ~20 s on the 2-core dev machine)


@pytest.mark.slow
def test_100k_simulator_messages_exact_rows(services: ServiceSet, db_url: str, topic_prefix: str) -> None:
    t_start = time.monotonic()
    fleet = generate_fleet(Size.SMALL, 1, seed=11, prefix=topic_prefix[:6])
    register_fleet(db_url, fleet)
    family = {d.uid: d.family for d in fleet.devices}
    start = datetime.now(UTC) - timedelta(days=2)  # inside ingest's 3-day window
    stream = list(itertools.islice(behaviour.fleet_background(fleet, start, None), MESSAGES))
    assert len(stream) == MESSAGES
    assert stream[-1].at < datetime.now(UTC) - timedelta(hours=1)  # nothing from the future
    assert {family[m.device] for m in stream} == set(Family)  # every family speaks

    # the expectation, from the stream itself
    want_tel: Counter[tuple[str, int]] = Counter()
    want_ev: Counter[tuple[str, int]] = Counter()
    want_points = 0
    for m in stream:
        body = decode(family[m.device], m.channel, m.payload)
        key = (m.device, int(body.seq))  # type: ignore[attr-defined]
        if m.channel is Channel.TELEMETRY:
            want_tel[key] += 1
            want_points += len(points_of(family[m.device], body))
        else:
            want_ev[key] += 1
    assert max(want_tel.values()) == max(want_ev.values()) == 1  # the stream's natural keys are unique

    settings = Settings(
        database=DatabaseSettings(url=db_url),
        mqtt=MqttSettings(url=services.mqtt_url, topic_prefix=topic_prefix, client_id=f"bulk-{topic_prefix}"),
        ingest=IngestSettings(metrics_port=0),
    )
    svc = IngestService(settings, database_url=db_url, mqtt_url=services.mqtt_url)
    svc.start()
    try:
        wait_for(svc.consumer.subscribed.is_set, 15, "ingest subscription")
        with LoadPublisher(services.mqtt_url, topic_prefix, connections=2) as pub:
            for i, m in enumerate(stream):
                pub.publish(m)
                if i % 1000 == 0:
                    pub.pump(0)
            deadline = time.monotonic() + 60
            while pub.stats.in_flight and time.monotonic() < deadline:
                pub.pump(0.05)
            assert pub.stats.acked == MESSAGES, pub.stats.errors
        wait_for(lambda: svc.stats.stored >= MESSAGES, DEADLINE_S, f"{MESSAGES} rows ({svc.stats.stored})")
        time.sleep(0.5)  # a late duplicate would show now
    finally:
        svc.stop()

    with connection(db_url) as conn:
        tel = conn.execute(
            "SELECT d.uid, t.seq, count(*) FROM telemetry t JOIN devices d ON d.id = t.device_id "
            "GROUP BY d.uid, t.seq, t.ts"
        ).fetchall()
        ev = conn.execute(
            "SELECT d.uid, e.seq, count(*) FROM device_events e JOIN devices d ON d.id = e.device_id "
            "GROUP BY d.uid, e.seq, e.ts"
        ).fetchall()
        points = conn.execute("SELECT count(*) FROM points").fetchone()
        dead = conn.execute("SELECT count(*) FROM dead_letters").fetchone()
    assert all(n == 1 for _, _, n in tel), "duplicate telemetry rows"
    assert all(n == 1 for _, _, n in ev), "duplicate device_events rows"
    assert Counter((uid, seq) for uid, seq, _ in tel) == want_tel
    assert Counter((uid, seq) for uid, seq, _ in ev) == want_ev
    assert points is not None and points[0] == want_points
    assert dead is not None and dead[0] == 0
    assert svc.stats.duplicates == 0 and svc.stats.dead_lettered == 0
    assert time.monotonic() - t_start < DEADLINE_S + 30
