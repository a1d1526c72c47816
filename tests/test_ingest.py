"""Ingest end to end against the real broker and database (in-process service)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

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
    wait_rows,
)

from devices import samples
from devices.contract import Channel, DeadLetterReason, Family, topic
from ingest.config import IngestSettings
from ingest.handoff import QueueSink
from ingest.service import IngestService
from storage.db import connection
from storage.presence import presence_of
from yiju.settings import DatabaseSettings, MqttSettings, Settings


def _settings(services: ServiceSet, db_url: str, prefix: str, **ingest: object) -> Settings:
    return Settings(
        database=DatabaseSettings(url=db_url),
        mqtt=MqttSettings(url=services.mqtt_url, topic_prefix=prefix, client_id=f"ingest-{prefix}"),
        ingest=IngestSettings(metrics_port=0, **ingest),  # type: ignore[arg-type]
    )


@pytest.fixture
def publisher(services: ServiceSet) -> Iterator[Publisher]:
    pub = Publisher(services.mqtt_url, f"pub-{uuid.uuid4().hex[:8]}")
    yield pub
    pub.close()


def _service(settings: Settings, sink: QueueSink | None = None) -> IngestService:
    assert settings.database.url and settings.mqtt.url
    svc = IngestService(settings, database_url=settings.database.url, mqtt_url=settings.mqtt.url, sink=sink)
    svc.start()
    wait_for(svc.consumer.subscribed.is_set, 15, "ingest subscription")
    return svc


def test_exact_rows_no_duplicates_both_modes(
    services: ServiceSet,
    make_db: Callable[[str | None], str],
    storage_mode: str,
    topic_prefix: str,
    publisher: Publisher,
) -> None:
    db_url = make_db(storage_mode)
    fleet = register_fleet(db_url)
    settings = _settings(services, db_url, topic_prefix)
    sink = QueueSink()
    svc = _service(settings, sink)
    try:
        msgs = good_messages(topic_prefix, fleet, 10_000)
        # every 50th message published twice, as a device retrying would: stored once
        dups = msgs[::50]
        publisher.publish(msgs + dups)
        publisher.wait_acked(len(msgs) + len(dups))
        have = wait_rows(db_url, msgs)
        wait_for(lambda: svc.stats.acked >= len(msgs) + len(dups), 20, "acks")
    finally:
        svc.stop()
    want = expected(msgs)
    assert have["telemetry"] == have["telemetry_distinct"] == want["telemetry"]
    assert have["events"] == want["events"]
    assert have["points"] == want["points"]
    assert have["dead_letters"] == 0
    # every accepted message was handed to the engine first (duplicates included: at-least-once)
    assert len(sink.drain()) == len(msgs) + len(dups)
    with connection(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM device_presence WHERE online").fetchone()[0] == sum(
            len(v) for v in fleet.values()
        )


def _bad_messages(prefix: str, fleet: dict[Family, list[str]], db_url: str) -> list[tuple[str, bytes, str]]:
    """(topic, payload, expected reason) — one defect each."""
    charger = fleet[Family.EBIKE_CHARGER][0]
    smoke = fleet[Family.SMOKE_ALARM][0]
    with connection(db_url) as conn:
        cid = conn.execute("SELECT id FROM communities WHERE code = %s", (COMMUNITY,)).fetchone()[0]  # type: ignore[index]
        conn.execute("INSERT INTO communities (code, name) VALUES ('c2', 'other')")
        conn.execute(
            "INSERT INTO devices (uid, community_id, family, enabled) VALUES ('off-1', %s, 'light', false)",
            (cid,),
        )
        conn.commit()
    now = datetime.now(UTC)
    t_tel = topic(prefix, COMMUNITY, charger, Channel.TELEMETRY)

    def tel(**kw: object) -> bytes:
        args: dict[str, object] = {"device": charger, "ts": now.isoformat(), **kw}
        return samples.payload(Family.EBIKE_CHARGER, Channel.TELEMETRY, **args)  # type: ignore[arg-type]

    good = tel(seq=1)
    R = DeadLetterReason
    return [
        (t_tel, b"{not json", R.MALFORMED_JSON),
        (t_tel, b"\xff\xfe\x00garbage", R.MALFORMED_JSON),
        (t_tel, b"[1, 2, 3]", R.MALFORMED_JSON),
        (t_tel, good.replace(b'"data": {', b'"data": {"bogus": 1, '), R.SCHEMA_VIOLATION),
        (t_tel, good.replace(b'"v": 1', b'"v": 2'), R.UNSUPPORTED_VERSION),
        (
            topic(prefix, COMMUNITY, "ghost-9", Channel.TELEMETRY),
            good.replace(charger.encode(), b"ghost-9"),
            R.UNKNOWN_DEVICE,
        ),
        (
            topic(prefix, COMMUNITY, "off-1", Channel.STATUS),
            samples.payload(Family.LIGHT, Channel.STATUS, device="off-1", ts=now.isoformat()),
            R.DEVICE_DISABLED,
        ),
        (t_tel, tel(device=smoke, seq=2), R.TOPIC_MISMATCH),
        (topic(prefix, "c2", charger, Channel.TELEMETRY), tel(seq=3), R.TOPIC_MISMATCH),
        (
            topic(prefix, COMMUNITY, smoke, Channel.STATUS),
            samples.payload(Family.GAS_ALARM, Channel.STATUS, device=smoke, ts=now.isoformat()),
            R.FAMILY_MISMATCH,
        ),
        (t_tel, tel(seq=4, ts=(now - timedelta(days=30)).isoformat()), R.TIMESTAMP_OUT_OF_WINDOW),
        (t_tel, tel(seq=5, ts=(now + timedelta(hours=2)).isoformat()), R.TIMESTAMP_OUT_OF_WINDOW),
        (t_tel, b"{" + b" " * 70_000 + b"}", R.OVERSIZE),
        (f"{prefix}/v1/{COMMUNITY}/{charger}", good, R.BAD_TOPIC),
        (f"{prefix}/v1/{COMMUNITY}/{charger}/bogus", good, R.BAD_TOPIC),
        (f"{prefix}/v1/{COMMUNITY}/{charger}/cmd", good, R.BAD_TOPIC),
        (f"{prefix}/v1/{COMMUNITY}/bad id/telemetry", good, R.BAD_TOPIC),
        (f"{prefix}/v9/{COMMUNITY}/{charger}/telemetry", good, R.UNSUPPORTED_VERSION),
        (t_tel, good.replace(b'"v": 1', b'"v": 1, "note": "a\\u0000b"'), R.SCHEMA_VIOLATION),
        (t_tel, good.replace(b'"ambient_temp_c": ', b'"ambient_temp_c": NaN, "x": '), R.SCHEMA_VIOLATION),
        # the envelope is strict (issue 9.4): seq a JSON integer, ts ISO 8601 with an offset, v exactly 1
        (t_tel, tel(seq=6).replace(b'"seq": 6', b'"seq": "6"'), R.SCHEMA_VIOLATION),
        (t_tel, tel(seq=7).replace(b'"seq": 7', b'"seq": 7.0'), R.SCHEMA_VIOLATION),
        (t_tel, _with_ts(tel(seq=8), int(now.timestamp())), R.SCHEMA_VIOLATION),
        (t_tel, _with_ts(tel(seq=9), str(int(now.timestamp()))), R.SCHEMA_VIOLATION),
        (t_tel, _with_ts(tel(seq=10), now.replace(tzinfo=None).isoformat()), R.SCHEMA_VIOLATION),
        (t_tel, tel(seq=11).replace(b'"v": 1', b'"v": true'), R.SCHEMA_VIOLATION),
        # a command published by a device on its own cmd topic is no command of ours
        (f"{prefix}/v1/{COMMUNITY}/{charger}/cmd", b'{"x": 1}', R.BAD_TOPIC),
    ]


def _with_ts(payload: bytes, ts: object) -> bytes:
    doc = json.loads(payload)
    doc["ts"] = ts
    return json.dumps(doc).encode()


def test_bad_inputs_are_dead_lettered_and_the_stream_continues(
    services: ServiceSet, db_url: str, topic_prefix: str, publisher: Publisher
) -> None:
    fleet = register_fleet(db_url)
    bad = _bad_messages(topic_prefix, fleet, db_url)

    # ingest subscribes to everything under the prefix: every bad topic reaches it (issue 9.3)
    deliverable = bad
    settings = _settings(services, db_url, topic_prefix)
    svc = _service(settings)
    try:
        good = good_messages(topic_prefix, fleet, 2_000, start_seq=1000)
        stream: list[Msg] = []
        for i, g in enumerate(good):
            stream.append(g)
            if i % 100 == 50 and deliverable:
                t, p, _ = deliverable[(i // 100) % len(deliverable)]
                stream.append(Msg(t, p, 0, "dead_letters"))
        # and every bad message at least once, in a burst, then more good ones
        stream += [Msg(t, p, 0, "dead_letters") for t, p, _ in deliverable]
        more = good_messages(topic_prefix, fleet, 500, start_seq=10_000)
        stream += more
        publisher.publish(stream)
        n_bad = sum(1 for m in stream if m.table == "dead_letters")
        try:
            have = wait_rows(db_url, good + more, dead_letters=n_bad, timeout_s=30)
        except AssertionError:
            with connection(db_url) as conn:
                got = conn.execute("SELECT reason, count(*) FROM dead_letters GROUP BY 1").fetchall()
            want_r: dict[str, int] = {}
            for m in stream:
                if m.table == "dead_letters":
                    r = next(r for t, p, r in deliverable if t == m.topic and p == m.payload)
                    want_r[r.value] = want_r.get(r.value, 0) + 1
            raise AssertionError(
                f"dead letters by reason {sorted(got)}, want {sorted(want_r.items())}"
            ) from None
        assert svc.alive
    finally:
        svc.stop()
    assert have["telemetry"] == have["telemetry_distinct"] == expected(good + more)["telemetry"]
    assert have["events"] == expected(good + more)["events"]
    assert have["dead_letters"] == n_bad
    with connection(db_url) as conn:
        rows = conn.execute("SELECT topic, payload, payload_size, reason FROM dead_letters").fetchall()
    by_key: dict[tuple[str, bytes, int], set[str]] = {}
    for t, kept, size, reason in rows:
        by_key.setdefault((t, bytes(kept), size), set()).add(reason)
    keep = settings.ingest.dead_letter_payload_bytes
    for t, p, reason in deliverable:
        found = by_key.get((t, p[:keep], len(p)))
        assert found == {reason.value}, (t, p[:100], reason, found)
    # the good messages around them were all stored
    assert counts(db_url)["points"] == expected(good + more)["points"]
    # per-reason counters on the metrics, labels from closed sets only (cardinality stays bounded)
    samples = [s for m in svc.metrics.dead_letters.collect() for s in m.samples]
    families = {f.value for f in Family} | {"unknown"}
    reasons = {r.value for r in DeadLetterReason}
    assert samples and all(s.labels["family"] in families and s.labels["reason"] in reasons for s in samples)
    by_reason: dict[str, float] = {}
    for sample in samples:
        if sample.name.endswith("_total"):
            by_reason[sample.labels["reason"]] = by_reason.get(sample.labels["reason"], 0) + sample.value
    assert set(by_reason) == reasons  # every reason exists, at 0 until it occurs
    for _, _, reason in deliverable:
        assert by_reason[reason.value] >= 1, reason


def test_presence_status_and_last_will(
    services: ServiceSet, db_url: str, topic_prefix: str, publisher: Publisher
) -> None:
    fleet = register_fleet(db_url, per_family=1)
    uid = fleet[Family.SMOKE_ALARM][0]
    settings = _settings(services, db_url, topic_prefix, presence_flush_s=0.2)
    svc = _service(settings)
    now = datetime.now(UTC)
    st = topic(topic_prefix, COMMUNITY, uid, Channel.STATUS)
    try:
        publisher.publish(
            [
                Msg(
                    st,
                    samples.payload(
                        Family.SMOKE_ALARM, Channel.STATUS, device=uid, seq=1, ts=now.isoformat()
                    ),
                    0,
                    "device_events",
                )
            ]
        )
        with connection(db_url) as conn:
            dev_id = conn.execute("SELECT id FROM devices WHERE uid = %s", (uid,)).fetchone()[0]  # type: ignore[index]

            def state() -> dict[str, object] | None:
                conn.rollback()
                return presence_of(conn, dev_id)

            wait_for(lambda: (s := state()) is not None and s["online"] is True, 15, "online")
            assert state()["heartbeat_s"] == 60  # type: ignore[index]
            will = samples.message(Family.SMOKE_ALARM, Channel.STATUS, device=uid, seq=2, ts=now.isoformat())
            will.update(state="offline", reason="lwt")
            publisher.publish([Msg(st, json.dumps(will).encode(), 0, "device_events")])
            wait_for(lambda: (s := state()) is not None and s["online"] is False, 15, "offline")
            assert state()["status"] == "lwt"  # type: ignore[index]
    finally:
        svc.stop()
