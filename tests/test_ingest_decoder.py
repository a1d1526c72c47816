"""The decoder thread alone (`IngestService._process`, never started: no broker, no database): the
in-batch de-duplication by natural key and the telemetry window, as the hot path now computes them."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta, timezone

import pytest

from devices import samples
from devices.catalog import accept
from devices.contract import Channel, DeadLetterReason, Decoded, DeviceRef, Family, topic
from ingest.decode import Registry, event_fields
from ingest.messages import RawMessage
from ingest.service import IngestService, _Pending
from yiju.settings import Settings

UID = "dec-light-1"
COMMUNITY = "c1"
CST = timezone(timedelta(hours=8))


@pytest.fixture
def service() -> IngestService:
    svc = IngestService(
        Settings(), database_url="postgresql://unused.invalid/x", mqtt_url="mqtt://127.0.0.1:1"
    )
    svc._registry = Registry({UID: DeviceRef(7, UID, COMMUNITY, 1, Family.LIGHT)}, {}, {COMMUNITY: 1})
    return svc


def _raw(svc: IngestService, channel: Channel, ts: str, seq: int, mid: int, now: float) -> RawMessage:
    payload = samples.payload(Family.LIGHT, channel, device=UID, ts=ts, seq=seq)
    return RawMessage(topic(svc.prefix, COMMUNITY, UID, channel), payload, mid, 1, now)


def test_in_batch_duplicates_by_natural_key(service: IngestService) -> None:
    now = time.time()
    t1 = datetime.fromtimestamp(now, CST).replace(microsecond=0)
    t2 = t1 + timedelta(seconds=1)
    same_instant_in_utc = t1.astimezone(UTC).isoformat()  # another offset, the same natural key
    sent = [
        (Channel.TELEMETRY, t1.isoformat(), 5),
        (Channel.TELEMETRY, t1.isoformat(), 5),  # a redelivery
        (Channel.TELEMETRY, t2.isoformat(), 5),  # the same seq at another time: a message of its own
        (Channel.TELEMETRY, t2.isoformat(), 5),  # …redelivered
        (Channel.TELEMETRY, t1.isoformat(), 5),  # the first again, after the other
        (Channel.TELEMETRY, same_instant_in_utc, 5),
        (Channel.STATUS, t1.isoformat(), 5),  # the same key in the other table
        (Channel.TELEMETRY, t1.isoformat(), 6),
    ]
    p = _Pending()
    for mid, (channel, ts, seq) in enumerate(sent, 1):
        service._process(_raw(service, channel, ts, seq, mid, now), p)
    assert len(p.tokens) == len(sent)  # every copy is acknowledged with the batch
    rows = [(r.ts, r.seq) for r in p.batch.telemetry]
    assert rows == [(t1, 5), (t2, 5), (t1, 6)]
    assert [(r.ts, r.seq, r.kind) for r in p.batch.events] == [(t1, 5, "status")]
    assert not p.batch.dead_letters


def test_telemetry_window_edges_and_shared_offsets(service: IngestService) -> None:
    now = time.time()
    received = datetime.fromtimestamp(now, UTC)
    cfg = service.cfg
    second = timedelta(seconds=1)
    inside = [received - cfg.max_past + second, received + cfg.max_future - second]
    outside = [received - cfg.max_past - second, received + cfg.max_future + second]
    p = _Pending()
    for seq, ts in enumerate(inside + outside, 1):
        for tz in (CST, UTC, timezone(timedelta(hours=-5, minutes=-30))):
            raw = _raw(service, Channel.TELEMETRY, ts.astimezone(tz).isoformat(), seq, seq, now)
            service._process(raw, p)
    assert sorted({r.seq for r in p.batch.telemetry}) == [1, 2]
    assert len(p.batch.telemetry) == 2  # the other offsets' copies are the same messages
    reasons = {d.refusal.reason for d in p.batch.dead_letters}
    assert reasons == {DeadLetterReason.TIMESTAMP_OUT_OF_WINDOW}
    assert len(p.batch.dead_letters) == 6


def test_fast_path_device_times_share_one_tzinfo_per_offset() -> None:
    def ts_of(text: str) -> datetime:
        payload = samples.payload(Family.LIGHT, Channel.TELEMETRY, ts=text)
        body = accept(Family.LIGHT, Channel.TELEMETRY, payload)
        assert type(body).__module__ == "devices.fastpath"
        value: datetime = body.ts
        return value

    a, b = ts_of("2026-12-01T10:00:00+08:00"), ts_of("2026-12-01T11:30:00.5+08:00")
    c = ts_of("2026-12-01T02:00:00Z")
    assert a.tzinfo is b.tzinfo and a.utcoffset() == timedelta(hours=8)
    assert a == c and c.utcoffset() == timedelta(0)
    assert b - a == timedelta(hours=1, minutes=30, seconds=0.5)


def test_presence_rows_carry_each_devices_newest_message(service: IngestService) -> None:
    other = "dec-light-2"
    service._registry.devices[other] = DeviceRef(8, other, COMMUNITY, 1, Family.LIGHT)
    now = time.time()
    ts = datetime.fromtimestamp(now, CST).isoformat()
    p = _Pending()
    service._process(_raw(service, Channel.TELEMETRY, ts, 1, 1, now), p)
    service._process(_raw(service, Channel.TELEMETRY, ts, 2, 2, now + 0.5), p)
    payload = samples.payload(Family.LIGHT, Channel.TELEMETRY, device=other, ts=ts, seq=9)
    service._process(
        RawMessage(topic(service.prefix, COMMUNITY, other, Channel.TELEMETRY), payload, 3, 1, now), p
    )
    service._flush(p, force_presence=True)
    rows = {r.device_id: r for r in p.batch.presence}
    assert rows[7].last_seq == 2 and rows[7].last_seen == datetime.fromtimestamp(now + 0.5, UTC)
    assert rows[8].last_seq == 9 and rows[8].last_seen == datetime.fromtimestamp(now, UTC)
    assert all(r.online and r.status == "online" for r in rows.values())


def _fields_by_getattr(body: object) -> tuple[str, object, int]:
    """event_fields' rule spelled out with a plain lookup of every name (no per-class cache)."""
    event = body.event  # type: ignore[attr-defined]
    code = next(
        (v for n in ("code", "kind", "reason", "method") if (v := getattr(event, n, None)) is not None), None
    )
    channel = next((v for n in ("port", "channel") if isinstance(v := getattr(event, n, None), int)), 0)
    if code is not None and not isinstance(code, str):
        code = str(getattr(code, "value", code))
    return str(getattr(event, "type", "event")), code, channel


def test_event_fields_by_class_are_those_of_every_event() -> None:
    """The names an event class has are looked up once per class (issue 18): every event sample of every
    family gives the kind, code and channel a lookup of every name gives, twice (cache cold, warm)."""
    seen = 0
    for family, channel, doc in samples.all_messages():
        if channel is not Channel.EVENT:
            continue
        device = DeviceRef(1, doc["device"], COMMUNITY, 1, family)
        body = accept(family, channel, json.dumps(doc).encode())
        decoded = Decoded(device, channel, body.ts, body.seq, body.ts, body, b"{}")
        want = _fields_by_getattr(body)
        assert event_fields(decoded) == want, (family, doc["event"])
        assert event_fields(decoded) == want
        seen += 1
    assert seen > len(Family)  # several event types per family
