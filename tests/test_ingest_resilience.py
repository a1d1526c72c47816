"""Ingest under failure: killed process, restarted broker, stopped database, a killed shared-group
member. Each test streams messages while the failure happens and then demands every row exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import ServiceSet
from ingest_support import (
    Msg,
    Publisher,
    counts,
    expected,
    good_messages,
    register_fleet,
    wait_for,
    wait_rows,
)

from ingest.config import IngestSettings
from ingest.service import IngestService
from storage.db import connection
from yiju.embedded import MosquittoBroker, PostgresServer
from yiju.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
RATE_PER_S = 4000.0


@pytest.fixture
def publisher(services: ServiceSet) -> Iterator[Publisher]:
    pub = Publisher(services.mqtt_url, f"pub-{uuid.uuid4().hex[:8]}")
    yield pub
    pub.close()


class Stream:
    """Publishes `msgs` at a steady rate on a thread owned by the test (joined in `join`)."""

    def __init__(self, pub: Publisher, msgs: list[Msg], rate_per_s: float = RATE_PER_S) -> None:
        self.pub, self.msgs, self.rate = pub, msgs, rate_per_s
        self.sent = 0
        self._thread = threading.Thread(target=self._run, name="test-stream")
        self._thread.start()

    def _run(self) -> None:
        t0 = time.monotonic()
        for i, m in enumerate(self.msgs):
            self.pub.client.publish(m.topic, m.payload, qos=1)
            self.sent = i + 1
            ahead = (i + 1) / self.rate - (time.monotonic() - t0)
            if ahead > 0.005:
                time.sleep(ahead)

    def join(self) -> None:
        self._thread.join(60)


def _check_exact(db_url: str, msgs: list[Msg]) -> None:
    have = wait_rows(db_url, msgs, timeout_s=60)
    time.sleep(0.5)  # nothing more may arrive: a duplicate would show now
    have = counts(db_url)
    want = expected(msgs)
    assert have["telemetry"] == have["telemetry_distinct"] == want["telemetry"]
    assert have["events"] == want["events"]
    assert have["points"] == want["points"]
    assert have["dead_letters"] == 0


def _env(services: ServiceSet, db_url: str, prefix: str, client_id: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("YIJU_")}
    env.update(
        YIJU_DATABASE__URL=db_url,
        YIJU_MQTT__URL=services.mqtt_url,
        YIJU_MQTT__TOPIC_PREFIX=prefix,
        YIJU_MQTT__CLIENT_ID=client_id,
        YIJU_INGEST__METRICS_PORT="0",
        YIJU_LOG_LEVEL="WARNING",
    )
    return env


def _spawn(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "yiju.cli", "ingest"], cwd=ROOT, env=env, start_new_session=True
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_sigkill_mid_stream_then_restart(
    services: ServiceSet, db_url: str, topic_prefix: str, publisher: Publisher
) -> None:
    fleet = register_fleet(db_url)
    msgs = good_messages(topic_prefix, fleet, 20_000)
    env = _env(services, db_url, topic_prefix, f"kill-{topic_prefix}")
    proc = _spawn(env)
    try:
        # let the session subscribe before publishing (a shared group has no queue before that)
        probe = Probe(db_url, publisher, topic_prefix)
        wait_for(probe.stored, 30, "ingest to start", interval_s=0.5)
        probe.remove()
        stream = Stream(publisher, msgs)
        wait_for(lambda: counts(db_url)["telemetry"] > len(msgs) // 5, 30, "ingest mid-stream")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        time.sleep(0.5)
        proc = _spawn(env)
        stream.join()
        _check_exact(db_url, msgs)
    finally:
        _stop(proc)


class Probe:
    """Publishes a message of a dedicated device until ingest has stored one: proof that the session is
    subscribed (messages published before that are, correctly, delivered to nobody). `remove` deletes
    the probe rows so the exactness check sees only the test's own stream."""

    def __init__(self, db_url: str, pub: Publisher, prefix: str) -> None:
        self.db_url, self.pub, self.prefix = db_url, pub, prefix
        self.fleet = register_fleet(db_url, per_family=1, community="probe")
        self.seq = 0

    def stored(self) -> bool:
        self.seq += 1
        self.pub.publish(good_messages(self.prefix, self.fleet, 1, start_seq=self.seq, community="probe"))
        with connection(self.db_url) as conn:
            row = conn.execute(
                "SELECT count(*) FROM telemetry t JOIN devices d ON d.id = t.device_id "
                "JOIN communities c ON c.id = d.community_id WHERE c.code = 'probe'"
            ).fetchone()
        return bool(row and row[0])

    def remove(self) -> None:
        time.sleep(1.0)  # late probes land first
        with connection(self.db_url) as conn:
            ids = (
                "SELECT d.id FROM devices d JOIN communities c ON c.id = d.community_id "
                "WHERE c.code = 'probe'"
            )
            for table in ("telemetry", "device_events", "device_presence"):  # points: in telemetry
                conn.execute(f"DELETE FROM {table} WHERE device_id IN ({ids})")
            conn.commit()


def test_broker_restart_mid_stream(
    services: ServiceSet, mqtt_broker: MosquittoBroker, settings: Settings, db_url: str, publisher: Publisher
) -> None:
    fleet = register_fleet(db_url)
    prefix = settings.mqtt.topic_prefix
    msgs = good_messages(prefix, fleet, 16_000)
    settings = settings.model_copy(update={"ingest": IngestSettings(metrics_port=0)})
    svc = IngestService(settings, database_url=db_url, mqtt_url=services.mqtt_url)
    svc.start()
    try:
        wait_for(svc.consumer.subscribed.is_set, 15, "subscription")
        stream = Stream(publisher, msgs)
        wait_for(lambda: counts(db_url)["telemetry"] > len(msgs) // 5, 30, "ingest mid-stream")
        mqtt_broker.restart()
        stream.join()
        _check_exact(db_url, msgs)
        assert svc.alive
    finally:
        svc.stop()


@pytest.mark.slow
def test_postgres_stopped_ten_seconds_mid_stream(
    services: ServiceSet,
    postgres_server: PostgresServer,
    settings: Settings,
    db_url: str,
    publisher: Publisher,
) -> None:
    fleet = register_fleet(db_url)
    prefix = settings.mqtt.topic_prefix
    msgs = good_messages(prefix, fleet, 60_000)
    settings = settings.model_copy(update={"ingest": IngestSettings(metrics_port=0)})
    svc = IngestService(settings, database_url=db_url, mqtt_url=services.mqtt_url)
    svc.start()
    try:
        wait_for(svc.consumer.subscribed.is_set, 15, "subscription")
        stream = Stream(publisher, msgs)
        wait_for(lambda: counts(db_url)["telemetry"] > 2000, 30, "ingest mid-stream")
        postgres_server.stop()
        time.sleep(10)  # the outage itself is the point of the test
        assert svc.alive
        acked = svc.stats.acked
        time.sleep(1)
        assert svc.stats.acked == acked, "nothing may be acknowledged while the database is down"
        postgres_server.start()
        stream.join()
        _check_exact(db_url, msgs)
        assert svc.alive
        assert svc.stats.db_failures > 0
    finally:
        svc.stop()


def test_two_processes_one_killed_no_loss(
    services: ServiceSet, db_url: str, topic_prefix: str, publisher: Publisher
) -> None:
    fleet = register_fleet(db_url)
    msgs = good_messages(topic_prefix, fleet, 20_000)
    # two processes splitting the load: the shared group, as `yiju ingest --workers 2` sets it
    env_a = _env(services, db_url, topic_prefix, f"a-{topic_prefix}") | {
        "YIJU_INGEST__SHARED_SUBSCRIPTION": "true"
    }
    env_b = _env(services, db_url, topic_prefix, f"b-{topic_prefix}") | {
        "YIJU_INGEST__SHARED_SUBSCRIPTION": "true"
    }
    a, b = _spawn(env_a), _spawn(env_b)
    try:
        probe = Probe(db_url, publisher, topic_prefix)
        wait_for(probe.stored, 30, "ingest to start", interval_s=0.5)
        time.sleep(1.0)  # both members subscribed (the probe proves only one)
        probe.remove()
        stream = Stream(publisher, msgs)
        wait_for(lambda: counts(db_url)["telemetry"] > len(msgs) // 5, 30, "ingest mid-stream")
        b.send_signal(signal.SIGKILL)
        b.wait()
        # the survivor keeps storing its share while b is away
        n = counts(db_url)["telemetry"]
        wait_for(lambda: counts(db_url)["telemetry"] > n + 1000, 30, "the survivor to keep going")
        b = _spawn(env_b)  # b's session (and what the broker held for it) is resumed
        stream.join()
        _check_exact(db_url, msgs)
        assert a.poll() is None
    finally:
        _stop(a)
        _stop(b)
