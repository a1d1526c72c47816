"""The family wire models: JSON Schema round trips, physical ranges, strict types, discriminated unions."""

from __future__ import annotations

import copy
import json
import re
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from pydantic import ValidationError

from devices import catalog, samples
from devices.contract import Channel, Family
from devices.envelope import CommandMessage, TelemetryMessage
from devices.families import access_door, ebike_charger, elevator, gas_alarm
from devices.families.common import CodeInfo

SCHEMAS = catalog.json_schemas()
ALL = samples.all_messages()


def _id(case: tuple[Family, Channel, dict[str, Any]]) -> str:
    family, channel, msg = case
    tag = msg.get("event", {}).get("type") or msg.get("command") or ""
    return f"{family.value}.{channel.value}.{tag}".rstrip(".")


def _validator(family: Family, channel: Channel) -> jsonschema.Draft202012Validator:
    schema = SCHEMAS[f"{family.value}.{channel.value}"]
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("case", ALL, ids=[_id(c) for c in ALL])
def test_sample_matches_schema_and_round_trips(case: tuple[Family, Channel, dict[str, Any]]) -> None:
    family, channel, msg = case
    validator = _validator(family, channel)
    validator.validate(msg)
    model = catalog.decode(family, channel, json.dumps(msg).encode())
    dumped = model.model_dump_json()
    validator.validate(json.loads(dumped))  # what we would emit is valid by our own schema
    assert catalog.decode(family, channel, dumped) == model


def test_every_event_and_command_type_has_a_sample() -> None:
    for family, spec in catalog.FAMILIES.items():
        assert {e["type"] for e in samples.EVENTS[family]} == set(spec.event_types), family
        assert {c["command"] for c in samples.COMMANDS[family]} == set(spec.command_types), family


def test_every_family_channel_has_a_schema() -> None:
    for family, spec in catalog.FAMILIES.items():
        for channel in (Channel.TELEMETRY, Channel.EVENT, Channel.STATUS, Channel.COMMAND_ACK):
            assert f"{family.value}.{channel.value}" in SCHEMAS
        assert (f"{family.value}.cmd" in SCHEMAS) == bool(spec.command_types)


def _telemetry_with(family: Family, path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    msg = copy.deepcopy(samples.message(family, Channel.TELEMETRY))
    node: Any = msg["data"]
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return msg


OUT_OF_RANGE = [
    (Family.EBIKE_CHARGER, ("ports", 0, "voltage_v"), 900.0),
    (Family.EBIKE_CHARGER, ("ports", 0, "current_a"), 80.0),
    (Family.EBIKE_CHARGER, ("ports", 0, "port_temp_c"), 900.0),
    (Family.EBIKE_CHARGER, ("ports", 0, "power_w"), -1.0),
    (Family.EBIKE_CHARGER, ("ports", 0, "port"), 0),
    (Family.EBIKE_CHARGER, ("ports", 0, "session_s"), 40 * 86_400),
    (Family.EBIKE_CHARGER, ("leakage_ma",), -5.0),
    (Family.EBIKE_CHARGER, ("ambient_temp_c",), -120.0),
    (Family.EBIKE_CHARGER, ("protection", "port_power_limit_w"), 0.0),
    (Family.SMOKE_ALARM, ("battery_pct",), 101.0),
    (Family.GAS_ALARM, ("lel_pct",), 130.0),
    (Family.GAS_ALARM, ("co_ppm",), -1.0),
    (Family.LIGHT, ("dim_pct",), 150.0),
    (Family.ELEVATOR, ("speed_mps",), 40.0),
    (Family.ELEVATOR, ("load_kg",), -3.0),
    (Family.ELEVATOR, ("floor",), 500),
    (Family.CCTV_RECORDER, ("disk_free_gb",), -1.0),
    (Family.CCTV_RECORDER, ("disk_total_gb",), 0.0),
    (Family.ACCESS_DOOR, ("open_s",), 40 * 86_400),
    (Family.CCTV_RECORDER, ("channels", 0, "channel"), 0),
]

WRONG_TYPE = [
    (Family.EBIKE_CHARGER, ("ports", 0, "voltage_v"), "229.5"),
    (Family.EBIKE_CHARGER, ("ports", 0, "relay_on"), 1),
    (Family.EBIKE_CHARGER, ("ports", 0, "port"), 2.5),
    (Family.EBIKE_CHARGER, ("ports", 0, "state"), "exploded"),
    (Family.EBIKE_CHARGER, ("smoke",), "false"),
    (Family.GAS_ALARM, ("valve",), "ajar"),
    (Family.ELEVATOR, ("moving",), "yes"),
    (Family.ELEVATOR, ("floor",), "7"),
    (Family.LIGHT, ("power_w",), None),
    (Family.ACCESS_DOOR, ("open",), 0),
    (Family.CCTV_RECORDER, ("channels", 0, "earliest_recording"), "2026-04-28T08:00:00"),  # naive
    (Family.CCTV_RECORDER, ("channels",), []),
]


@pytest.mark.parametrize(("family", "path", "value"), OUT_OF_RANGE + WRONG_TYPE)
def test_impossible_or_mistyped_values_fail(family: Family, path: tuple[str | int, ...], value: Any) -> None:
    msg = _telemetry_with(family, path, value)
    with pytest.raises(ValidationError):
        catalog.decode(family, Channel.TELEMETRY, json.dumps(msg))


@pytest.mark.parametrize(("family", "path", "value"), OUT_OF_RANGE)
def test_schema_agrees_on_ranges(family: Family, path: tuple[str | int, ...], value: Any) -> None:
    msg = _telemetry_with(family, path, value)
    assert not _validator(family, Channel.TELEMETRY).is_valid(msg)


def test_unknown_fields_are_refused() -> None:
    msg = _telemetry_with(Family.GAS_ALARM, ("smell",), "strong")
    with pytest.raises(ValidationError):
        catalog.decode(Family.GAS_ALARM, Channel.TELEMETRY, json.dumps(msg))


def test_cross_field_consistency() -> None:
    dup = _telemetry_with(Family.EBIKE_CHARGER, ("ports", 1, "port"), 1)
    with pytest.raises(ValidationError, match="duplicate port"):
        catalog.decode(Family.EBIKE_CHARGER, Channel.TELEMETRY, json.dumps(dup))
    full = _telemetry_with(Family.CCTV_RECORDER, ("disk_free_gb",), 20_000.0)
    with pytest.raises(ValidationError, match="exceeds"):
        catalog.decode(Family.CCTV_RECORDER, Channel.TELEMETRY, json.dumps(full))
    reversed_range = _telemetry_with(
        Family.CCTV_RECORDER, ("channels", 0, "earliest_recording"), "2026-06-02T00:00:00+08:00"
    )
    with pytest.raises(ValidationError, match="after latest"):
        catalog.decode(Family.CCTV_RECORDER, Channel.TELEMETRY, json.dumps(reversed_range))
    gap = samples.message(Family.CCTV_RECORDER, Channel.EVENT, index=6)
    gap["event"]["end"] = gap["event"]["start"]
    with pytest.raises(ValidationError, match="after its start"):
        catalog.decode(Family.CCTV_RECORDER, Channel.EVENT, json.dumps(gap))


def test_events_discriminate_on_type() -> None:
    for family, spec in catalog.FAMILIES.items():
        for i, event in enumerate(samples.EVENTS[family]):
            decoded: Any = catalog.decode(
                family, Channel.EVENT, samples.payload(family, Channel.EVENT, index=i)
            )
            assert type(decoded.event) is spec.event_types[event["type"]]
    stop: Any = catalog.decode(
        Family.EBIKE_CHARGER, Channel.EVENT, samples.payload(Family.EBIKE_CHARGER, Channel.EVENT, index=1)
    )
    assert stop.event.reason is ebike_charger.StopReason.FULL
    bad = samples.message(Family.ELEVATOR, Channel.EVENT)
    bad["event"] = {"type": "levitating", "active": True}
    with pytest.raises(ValidationError, match=r"levitating|does not match any of the expected tags"):
        catalog.decode(Family.ELEVATOR, Channel.EVENT, json.dumps(bad))
    # an event of another family does not pass as this family's
    smoke = samples.message(Family.SMOKE_ALARM, Channel.EVENT, index=3)  # self_test
    smoke["family"] = "elevator"
    with pytest.raises(ValidationError):
        catalog.decode(Family.ELEVATOR, Channel.EVENT, json.dumps(smoke))


def test_credentials_never_travel_in_clear() -> None:
    granted = samples.message(Family.ACCESS_DOOR, Channel.EVENT)
    granted["event"]["credential_hash"] = "0012345678"  # a card number in clear
    with pytest.raises(ValidationError):
        catalog.decode(Family.ACCESS_DOOR, Channel.EVENT, json.dumps(granted))
    digest = access_door.hash_credential("0012345678", b"community-key")
    assert re.fullmatch(r"[0-9a-f]{64}", digest) and "0012345678" not in digest


def test_commands_parse_and_build() -> None:
    for family, spec in catalog.FAMILIES.items():
        for body in samples.COMMANDS[family]:
            cmd = spec.command_adapter.validate_python(body) if spec.command_adapter else None
            assert cmd is not None
            msg = catalog.command_message(cmd, id=uuid.uuid4(), ts=datetime.now(UTC))
            again = catalog.decode(family, Channel.COMMAND, msg.model_dump_json())
            assert isinstance(again, CommandMessage)
            assert catalog.parse_command(family, again) == cmd
    # opening a gas valve is manual only: no such command
    msg = CommandMessage(id=uuid.uuid4(), ts=datetime.now(UTC), command="open_valve")
    with pytest.raises(ValidationError):
        catalog.parse_command(Family.GAS_ALARM, msg)
    with pytest.raises(ValueError, match="no commands"):
        catalog.parse_command(Family.CCTV_RECORDER, msg)
    bad_port = CommandMessage(id=uuid.uuid4(), ts=datetime.now(UTC), command="stop_port", params={"port": 99})
    with pytest.raises(ValidationError):
        catalog.parse_command(Family.EBIKE_CHARGER, bad_port)


def test_points() -> None:
    msg: Any = catalog.decode(
        Family.EBIKE_CHARGER, Channel.TELEMETRY, samples.payload(Family.EBIKE_CHARGER, Channel.TELEMETRY)
    )
    assert isinstance(msg, TelemetryMessage)
    pts = catalog.points_of(Family.EBIKE_CHARGER, msg)
    assert ("relay_on", 4, 1.0) in pts and ("relay_on", 2, 0.0) in pts
    assert ("leakage_ma", 0, 3.5) in pts
    assert catalog.points_of(Family.EBIKE_CHARGER, msg.data) == pts
    for family in Family:
        data: Any = catalog.decode(family, Channel.TELEMETRY, samples.payload(family, Channel.TELEMETRY))
        got = catalog.points_of(family, data)
        assert got, family
        for metric, channel, value in got:
            assert isinstance(metric, str) and isinstance(channel, int) and isinstance(value, float)
            assert 0 <= channel <= 32767


LABEL = re.compile(r"\[(S|S2|V|NOT FOUND)\]")


def test_every_default_cites_its_source() -> None:
    for family, spec in catalog.FAMILIES.items():
        fields = type(spec.defaults).model_fields
        assert "heartbeat_s" in fields and "missed_heartbeats" in fields, family
        for name, field in fields.items():
            assert field.description and LABEL.search(field.description), f"{family}.{name}"
    assert ebike_charger.DEFAULTS.port_over_temp_c == 80.0
    assert gas_alarm.DEFAULTS.low_alarm_lel_pct == 25.0 and gas_alarm.DEFAULTS.high_alarm_lel_pct == 50.0
    assert elevator.DEFAULTS.rescue_arrival_s == 1800


def test_code_tables_are_complete() -> None:
    for spec in catalog.FAMILIES.values():
        for name in dir(spec.module):
            table = getattr(spec.module, name)
            if name.endswith("_INFO") and isinstance(table, dict):
                enum_type = type(next(iter(table)))
                assert issubclass(enum_type, StrEnum)
                assert set(table) == set(enum_type), f"{spec.family}.{name}"
                assert all(isinstance(i, CodeInfo) and i.zh and i.en for i in table.values())
    assert set(elevator.FAULT_INFO) == set(elevator.Fault)
    assert ebike_charger.STOP_REASON_BY_VENDOR_CODE[0x0B] is ebike_charger.StopReason.PORT_OVER_TEMP
    assert ebike_charger.PORT_STATE_BY_VENDOR_CODE[0x09] is ebike_charger.PortState.RELAY_WELDED
    assert ebike_charger.PortState.FLOAT not in ebike_charger.FAULT_PORT_STATES
    assert ebike_charger.PortState.RELAY_WELDED in ebike_charger.FAULT_PORT_STATES
    assert set(ebike_charger.FAULT_OF_PORT_STATE) == set(ebike_charger.FAULT_PORT_STATES)


def test_mqtt_doc_covers_every_field_event_and_command() -> None:
    docs = Path(__file__).resolve().parent.parent / "docs"
    doc = (docs / "mqtt.md").read_text()
    rules = (docs / "rules.md").read_text()  # the generated table of every rule parameter
    missing: list[str] = []
    for family, spec in catalog.FAMILIES.items():
        if f"### `{family.value}`" not in doc:
            missing.append(family.value)
        names = list(spec.telemetry.model_fields) + list(spec.event_types) + list(spec.command_types)
        missing += [f"{family.value}.{n}" for n in names if f"`{n}`" not in doc]
        missing += [
            f"{family.value}.{n}"
            for n in type(spec.defaults).model_fields
            if f"`alerts.{family.value}.{n}`" not in rules
        ]
    assert missing == [], "docs/mqtt.md is stale: regenerate its family tables"
