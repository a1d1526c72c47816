"""api/fastjson.py's contract: the body it encodes from a storage row is the one FastAPI writes for
the response model built from the same row — the same keys in the same order, the same values of
the same JSON types (a float stays a float; only a float's spelling may differ, 1e16 for 1e+16) —
on hypothesis-generated rows of every kind the hot routes return (alarms, transitions, devices,
telemetry, compliance), with datetimes in other offsets, non-finite floats, nulls, non-ASCII text
and nested JSON details."""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, TypeAdapter, field_validator

from api import fastjson
from api.alarms.schemas import AlarmDetail, AlarmOut, TransitionOut, type_en, type_zh
from api.compliance.schemas import ComplianceSummaryOut
from api.devices.router import TelemetryRow
from api.devices.schemas import DeviceOut, RawPoint, TelemetryOut
from api.pagination import Page
from devices.alarms import AlarmType
from devices.contract import Family
from storage.alarms import Alarm, Transition
from storage.findings import ComplianceSummary, SummaryLine
from storage.readings import HourBucket, Point
from storage.sites import DEVICE_COLUMNS, SiteDevice

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
IDS = st.integers(min_value=1, max_value=2**62)
TEXT = st.text(max_size=12)
ZONES = st.sampled_from([UTC, timezone(timedelta(hours=8)), timezone(timedelta(hours=-3, minutes=-30))])
TIMES = st.builds(
    lambda dt, tz: dt.replace(tzinfo=tz),
    st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1)),  # noqa: DTZ001
    ZONES,
)
FLOATS = st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(10**6), 10**6).map(float)
JSON = st.recursive(
    st.none() | st.booleans() | INT64 | st.floats(allow_nan=False, allow_infinity=False) | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)
DETAILS = st.dictionaries(TEXT, JSON, max_size=4)
ALARM_TYPES = st.sampled_from([t.value for t in AlarmType]) | st.just("a_type_from_a_newer_version")

ALARMS = st.builds(
    Alarm,
    id=IDS,
    community_id=IDS,
    device_id=IDS,
    device_uid=TEXT,
    family=st.sampled_from([f.value for f in Family]),
    location_id=st.none() | IDS,
    location_name=st.none() | TEXT,
    building_id=st.none() | IDS,
    building_name=st.none() | TEXT,
    type=ALARM_TYPES,
    severity=st.sampled_from(["critical", "major", "minor", "warning"]),
    status=st.sampled_from(["active", "cleared"]),
    acknowledged=st.booleans(),
    acknowledged_at=st.none() | TIMES,
    acknowledged_by=st.none() | TEXT,
    cleared_at=st.none() | TIMES,
    cleared_by=st.none() | TEXT,
    first_at=TIMES,
    last_at=TIMES,
    occurrences=INT64,
    source=TEXT,
    details=DETAILS,
    handling=st.none() | st.sampled_from(["dispatched", "on_site", "resolved", "closed"]),
    result=st.none() | st.sampled_from(["real", "false_alarm", "test", "device_fault"]),
    location_kind=st.none() | TEXT,
    unit=st.none() | TEXT,
    floor=st.none() | st.integers(-5, 200),
    room=st.none() | TEXT,
    post=st.none() | TEXT,
)
TRANSITIONS = st.builds(
    Transition,
    id=IDS,
    alarm_id=IDS,
    at=TIMES,
    action=st.sampled_from(["raised", "updated", "acknowledged", "commented", "cleared"]),
    actor=st.sampled_from(["engine", "device", "user:duty1", "user:王", "apikey:bms"]),
    comment=st.none() | TEXT,
    details=DETAILS,
)
DEVICES = st.builds(
    SiteDevice,
    id=IDS,
    uid=TEXT,
    community_id=IDS,
    family=st.sampled_from([f.value for f in Family]),
    model=st.none() | TEXT,
    vendor=st.none() | TEXT,
    install_date=st.none() | st.dates(min_value=date(1990, 1, 1)),
    retrofit=st.booleans(),
    enabled=st.booleans(),
    metadata=DETAILS,
    created_at=TIMES,
    updated_at=TIMES,
    location_id=st.none() | IDS,
    location_name=st.none() | TEXT,
    floor=st.none() | st.integers(-5, 200),
    unit=st.none() | TEXT,
    building_id=st.none() | IDS,
    building_name=st.none() | TEXT,
    online=st.none() | st.booleans(),
    presence_status=st.none() | TEXT,
    last_seen=st.none() | TIMES,
    last_seq=st.none() | INT64,
    open_alarms=st.integers(0, 1000),
)
BUCKETS = st.builds(
    HourBucket,
    bucket=TIMES,
    samples=st.integers(0, 10**6),
    min_value=st.none() | FLOATS,
    max_value=st.none() | FLOATS,
    avg_value=st.none() | FLOATS,
)
POINTS = st.builds(Point, ts=TIMES, value=FLOATS)
LINES = st.builds(
    SummaryLine,
    check_name=st.sampled_from(["auto_cutoff", "fault_alarm", "cctv_recording"]),
    total=st.integers(0, 10**6),
    compliant=st.integers(0, 10**6),
    family=st.none() | TEXT,
    device_id=st.none() | IDS,
    device_uid=st.none() | TEXT,
    worst_measured_s=st.none() | FLOATS,
    failing_channels=st.lists(st.integers(0, 64), max_size=4).map(tuple),
    late=st.integers(0, 100),
    not_cut=st.integers(0, 100),
)
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _fastapi(model: Any, value: BaseModel | list[BaseModel]) -> bytes:
    """What FastAPI writes for a route whose response model is `model` (fastapi/routing.py
    serialize_response: the value validated into the model, then dumped as JSON)."""
    adapter = TypeAdapter(model)
    return adapter.dump_json(adapter.validate_python(value, from_attributes=True))


def _alarm_out(alarm: Alarm) -> AlarmOut:
    return AlarmOut.of(alarm)


class _Object(list[tuple[str, Any]]):
    """A parsed JSON object as its pairs in order (a dict would hide a change of key order)."""


def _typed(value: Any) -> Any:
    """A parsed JSON value with its types made explicit (json's 1 == 1.0 would hide a difference)."""
    if isinstance(value, _Object):
        return ("object", [(k, _typed(v)) for k, v in value])
    if isinstance(value, list):
        return ("array", [_typed(v) for v in value])
    return (type(value).__name__, value)


def same_json(a: bytes, b: bytes) -> bool:
    def parse(text: bytes) -> Any:
        return _typed(json.loads(text, object_pairs_hook=_Object))

    return bool(parse(a) == parse(b))


@SETTINGS
@given(st.lists(ALARMS, max_size=4), st.none() | st.text(alphabet="abcXYZ_-09", min_size=1, max_size=8))
def test_an_alarm_page_is_the_models_page(rows: list[Alarm], cursor: str | None) -> None:
    items = fastjson.many(AlarmOut, rows, type_zh=type_zh, type_en=type_en)
    fast = fastjson.encode({"items": items, "next_cursor": cursor})
    model = Page[AlarmOut](items=[_alarm_out(a) for a in rows], next_cursor=cursor)
    assert same_json(fast, _fastapi(Page[AlarmOut], model))


@SETTINGS
@given(ALARMS, st.lists(TRANSITIONS, max_size=4), st.dictionaries(st.sampled_from(["duty1", "王"]), TEXT))
def test_an_alarm_detail_is_the_models_detail(
    alarm: Alarm, rows: list[Transition], names: dict[str, str]
) -> None:
    def actor_name(t: Transition) -> str | None:
        user = t.actor.removeprefix("user:") if t.actor.startswith("user:") else None
        return names.get(user, user) if user else None

    history = fastjson.many(TransitionOut, rows, actor_name=actor_name)
    detail = fastjson.convert(
        AlarmDetail, alarm, type_zh=type_zh(alarm), type_en=type_en(alarm), history=history
    )
    model = AlarmDetail(**AlarmOut.of(alarm).model_dump(), history=[TransitionOut.of(t, names) for t in rows])
    assert same_json(fastjson.encode(detail), _fastapi(AlarmDetail, model))


@SETTINGS
@given(st.lists(DEVICES, max_size=4), st.none() | st.just("WzQyXQ"))
def test_a_device_page_is_the_models_page(rows: list[SiteDevice], cursor: str | None) -> None:
    fast = fastjson.encode({"items": fastjson.many(DeviceOut, rows), "next_cursor": cursor})
    model = Page[DeviceOut](
        items=[DeviceOut.model_validate(r, from_attributes=True) for r in rows], next_cursor=cursor
    )
    assert same_json(fast, _fastapi(Page[DeviceOut], model))


@SETTINGS
@given(st.lists(DEVICES, max_size=4), st.none() | st.just("WzQyXQ"))
def test_a_device_page_from_tuples_is_the_models_page(rows: list[SiteDevice], cursor: str | None) -> None:
    # as storage/sites.list_device_tuples gives them: the columns in order, the family as its text,
    # the metadata as the JSON text of the object
    tuples = [
        tuple(json.dumps(r.metadata) if name == "metadata" else getattr(r, name) for name in DEVICE_COLUMNS)
        for r in rows
    ]
    items = fastjson.from_rows(DeviceOut, DEVICE_COLUMNS, tuples, frozenset({"metadata"}))
    fast = fastjson.encode({"items": items, "next_cursor": cursor})
    model = Page[DeviceOut](
        items=[DeviceOut.model_validate(r, from_attributes=True) for r in rows], next_cursor=cursor
    )
    assert same_json(fast, _fastapi(Page[DeviceOut], model))


def test_a_device_tuple_the_model_refuses_is_refused() -> None:
    at = datetime(2026, 11, 20, tzinfo=UTC)
    good: tuple[object, ...] = (1, "smk-1", 1, "smoke_alarm", None, None, None, False, True, "{}", at, at)
    good += (None, None, None, None, None, None, None, None, None, None, 0)
    assert len(fastjson.from_rows(DeviceOut, DEVICE_COLUMNS, [good], frozenset({"metadata"}))) == 1
    for bad in (
        (*good[:3], "a_family_from_nowhere", *good[4:]),  # not a Family
        (*good[:9], None, *good[10:]),  # metadata that is not an object (NULL from the query)
        good[:-1],  # a column short
    ):
        with pytest.raises(msgspec.ValidationError):
            fastjson.from_rows(DeviceOut, DEVICE_COLUMNS, [bad], frozenset({"metadata"}))
    with pytest.raises(fastjson.Unsupported):  # columns that are not the model's fields in order
        fastjson.from_rows(DeviceOut, DEVICE_COLUMNS[::-1], [good])


@SETTINGS
@given(
    st.builds(
        TelemetryRow,
        device_id=IDS,
        metric=TEXT,
        channel=st.integers(0, 32767),
        since=TIMES,
        until=TIMES,
        resolution=st.sampled_from(["raw", "hour"]),
        truncated=st.booleans(),
        points=st.lists(POINTS, max_size=4),
        buckets=st.lists(BUCKETS, max_size=4),
    )
)
def test_telemetry_is_the_models_telemetry(row: TelemetryRow) -> None:
    model = TelemetryOut.model_validate(row, from_attributes=True)
    assert same_json(fastjson.encode(fastjson.convert(TelemetryOut, row)), _fastapi(TelemetryOut, model))


@SETTINGS
@given(
    st.builds(
        ComplianceSummary,
        community_id=IDS,
        window_start=TIMES,
        window_end=TIMES,
        by_check=st.lists(LINES, max_size=3),
        by_family=st.lists(LINES, max_size=3),
        failing_devices=st.lists(LINES, max_size=3),
    )
)
def test_a_compliance_summary_is_the_models_summary(summary: ComplianceSummary) -> None:
    model = ComplianceSummaryOut.model_validate(summary, from_attributes=True)
    fast = fastjson.encode(fastjson.convert(ComplianceSummaryOut, summary))
    assert same_json(fast, _fastapi(ComplianceSummaryOut, model))


def test_non_finite_floats_and_offsets_are_written_as_fastapi_writes_them() -> None:
    row = Point(ts=datetime(2026, 11, 20, 8, 0, 0, 5, tzinfo=timezone(timedelta(hours=8))), value=math.inf)
    out = json.loads(fastjson.encode(fastjson.convert(RawPoint, row)))
    assert out == {"ts": "2026-11-20T08:00:00.000005+08:00", "value": None}


def test_a_row_the_model_refuses_is_refused() -> None:
    at = datetime(2026, 11, 20, tzinfo=UTC)
    bad = Alarm(
        id=1, community_id=1, device_id=1, device_uid="smk-1", family="smoke_alarm", location_id=None,
        location_name=None, building_id=None, building_name=None, type="fire_alarm",
        severity="catastrophic", status="active", acknowledged=False, acknowledged_at=None,
        acknowledged_by=None, cleared_at=None, cleared_by=None, first_at=at, last_at=at, occurrences=1,
        source="device", details={},
    )  # fmt: skip
    with pytest.raises(Exception, match="severity"):
        AlarmOut.of(bad)
    with pytest.raises(Exception, match="severity"):
        fastjson.many(AlarmOut, [bad], type_zh=type_zh, type_en=type_en)


def test_a_model_it_cannot_mirror_exactly_is_refused_at_import() -> None:
    class Validated(BaseModel):
        name: str

        @field_validator("name")
        @classmethod
        def _upper(cls, v: str) -> str:
            return v.upper()

    with pytest.raises(fastjson.Unsupported, match="validators"):
        fastjson.mirror(Validated)
