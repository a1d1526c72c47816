"""The device catalogue: every family's wire models paired with the contract v1 envelopes.

Decoders are built once at import (ingest decodes tens of thousands of messages a second):
`decode(family, channel, payload)` is one dict lookup plus pydantic-core's `model_validate_json`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType, ModuleType
from typing import Annotated, Any, Literal, Union, get_args
from uuid import UUID

from pydantic import BaseModel, Field, TypeAdapter, ValidationError, create_model

from devices.contract import Channel, Family
from devices.envelope import (
    CommandAckMessage,
    CommandMessage,
    EventMessage,
    StatusMessage,
    TelemetryMessage,
)
from devices.families import (
    access_door,
    cctv_recorder,
    ebike_charger,
    elevator,
    gas_alarm,
    light,
    smoke_alarm,
)
from devices.families.common import Wire
from devices.fastpath import FastDecoder

Point = tuple[str, int, float]

_MODULES: dict[Family, ModuleType] = {
    Family.EBIKE_CHARGER: ebike_charger,
    Family.SMOKE_ALARM: smoke_alarm,
    Family.GAS_ALARM: gas_alarm,
    Family.LIGHT: light,
    Family.ELEVATOR: elevator,
    Family.ACCESS_DOOR: access_door,
    Family.CCTV_RECORDER: cctv_recorder,
}


def _members(annotated_union: Any) -> tuple[type[Wire], ...]:
    """The model classes of `Annotated[A | B, Field(discriminator=…)]` (or of a single model)."""
    inner = get_args(annotated_union)[0]
    args = get_args(inner)
    return args if args else (inner,)


def _tag(model: type[Wire], field: str) -> str:
    (value,) = get_args(model.model_fields[field].annotation)
    return str(value)


def _command_wire_model(family: Family, cmd: type[Wire]) -> type[CommandMessage]:
    """The full downlink message for one command: `params` typed by the command's own fields."""
    name = _tag(cmd, "command")
    tag: Any = Literal[name]  # a Literal built from data: the command name
    fields: dict[str, Any] = {k: (f.annotation, f) for k, f in cmd.model_fields.items() if k != "command"}
    params = create_model(f"{cmd.__name__}Params", __base__=Wire, **fields)
    required = any(f.is_required() for k, f in cmd.model_fields.items() if k != "command")
    params_field = (params, ...) if required else (params, Field(default_factory=params))
    model: type[CommandMessage] = create_model(
        f"{family.value.title().replace('_', '')}{cmd.__name__}Message",
        __base__=CommandMessage,
        command=(tag, ...),
        params=params_field,
    )
    return model


@dataclass(frozen=True, slots=True)
class FamilySpec:
    family: Family
    module: ModuleType
    telemetry: type[Wire]
    event: Any  # Annotated union discriminated by `type`
    command: Any | None  # Annotated union discriminated by `command`, None if the family takes none
    defaults: Wire
    points: Callable[[Any], list[Point]]
    event_types: Mapping[str, type[Wire]]
    command_types: Mapping[str, type[Wire]]
    telemetry_message: type[TelemetryMessage[Any]]
    event_message: type[EventMessage[Any]]
    command_adapter: TypeAdapter[Any] | None
    command_messages: tuple[type[CommandMessage], ...]


def _spec(family: Family, module: ModuleType) -> FamilySpec:
    events = _members(module.Event)
    commands = _members(module.Command) if module.Command is not None else ()
    return FamilySpec(
        family=family,
        module=module,
        telemetry=module.Telemetry,
        event=module.Event,
        command=module.Command,
        defaults=module.DEFAULTS,
        points=module.points,
        event_types=MappingProxyType({_tag(e, "type"): e for e in events}),
        command_types=MappingProxyType({_tag(c, "command"): c for c in commands}),
        telemetry_message=TelemetryMessage[module.Telemetry],  # type: ignore[name-defined]
        event_message=EventMessage[module.Event],  # type: ignore[name-defined]
        command_adapter=TypeAdapter(module.Command) if module.Command is not None else None,
        command_messages=tuple(_command_wire_model(family, c) for c in commands),
    )


FAMILIES: Mapping[Family, FamilySpec] = MappingProxyType({f: _spec(f, m) for f, m in _MODULES.items()})

_Decoder = Callable[[bytes | str], BaseModel]
_DECODERS: dict[tuple[Family, Channel], _Decoder] = {}
for _f, _s in FAMILIES.items():
    _DECODERS[(_f, Channel.TELEMETRY)] = _s.telemetry_message.model_validate_json
    _DECODERS[(_f, Channel.EVENT)] = _s.event_message.model_validate_json
    _DECODERS[(_f, Channel.STATUS)] = StatusMessage.model_validate_json
    _DECODERS[(_f, Channel.COMMAND_ACK)] = CommandAckMessage.model_validate_json
    _DECODERS[(_f, Channel.COMMAND)] = CommandMessage.model_validate_json


# the compiled decoder of the common valid message (accept)
FAST = FastDecoder({f: s.telemetry_message for f, s in FAMILIES.items()})


def decode(family: Family, channel: Channel, payload: bytes | str) -> BaseModel:
    """Parse and validate one message; raises `pydantic.ValidationError`. Whether the payload's
    device/family match the topic is the caller's check (ingest), not this function's."""
    return _DECODERS[(family, channel)](payload)


RANGE_ERRORS = frozenset({"greater_than", "greater_than_equal", "less_than", "less_than_equal"})


def accept(family: Family, channel: Channel, payload: bytes | str) -> Any:
    """`decode`, except that a telemetry report whose only faults are readings outside their physical
    range, of a family that lists them as refusable (`REFUSABLE_READINGS`, e-bike chargers), is
    accepted with those readings None and named in `data.refused` (path → value): one broken sensor
    must not hide the rest of the report (domain.md §5.2). Ingest and the engine's replay both decode
    with this; the contract itself (`decode`, the JSON Schema) still refuses such a report.

    A valid telemetry or status message is decoded by the compiled fast path (`devices.fastpath`):
    its body is a msgspec Struct with the models' fields, values, properties and methods; anything
    else is the models' to accept or refuse (and their error is what `ValidationError` says)."""
    body = FAST.decode(family, channel, payload)
    if body is not None:
        return body
    try:
        return decode(family, channel, payload)
    except ValidationError as exc:
        accepted = _without_refused_readings(family, channel, payload, exc)
        if accepted is None:
            raise
        return accepted


def _without_refused_readings(
    family: Family, channel: Channel, payload: bytes | str, exc: ValidationError
) -> BaseModel | None:
    spec = FAMILIES[family]
    readings: frozenset[str] = getattr(spec.module, "REFUSABLE_READINGS", frozenset())
    errors = exc.errors(include_url=False)
    if channel is not Channel.TELEMETRY or not readings or not errors:
        return None
    locs = [e["loc"] for e in errors]
    if any(e["type"] not in RANGE_ERRORS for e in errors) or any(
        len(loc) < 2 or loc[0] != "data" or loc[-1] not in readings for loc in locs
    ):
        return None
    try:
        doc = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    refused: dict[str, float] = {}
    for loc in locs:
        node: Any = doc
        path: list[str] = []
        for part in loc[:-1]:
            node = node[part]
            if isinstance(part, int) and isinstance(node, dict) and isinstance(node.get("port"), int):
                path[-1] = f"{path[-1]}[{node['port']}]"  # name a port by its number, not its index
            else:
                path.append(str(part))
        value = node[loc[-1]]
        refused[".".join([*path[1:], str(loc[-1])])] = value
        node[loc[-1]] = None
    context = {spec.module.REFUSED_CONTEXT: True}
    try:
        body: Any = spec.telemetry_message.model_validate_json(json.dumps(doc), context=context)
    except ValidationError:
        return None
    body.data._refused = refused
    accepted: BaseModel = body
    return accepted


def points_of(family: Family, telemetry: Any) -> list[Point]:
    """The numeric facts of a telemetry `data` model (or of a whole TelemetryMessage)."""
    data = telemetry.data if isinstance(telemetry, TelemetryMessage) else telemetry
    return FAMILIES[family].points(data)


def parse_command(family: Family, message: CommandMessage) -> Wire:
    """The family's typed command for a downlink message; raises `pydantic.ValidationError`, or
    ValueError when the family takes no commands."""
    adapter = FAMILIES[family].command_adapter
    if adapter is None:
        raise ValueError(f"{family.value} devices take no commands")
    result: Wire = adapter.validate_python({"command": message.command, **message.params})
    return result


def command_message(command: Wire, *, id: UUID, ts: datetime) -> CommandMessage:
    """The downlink message for a typed command (None-valued optional parameters are left out)."""
    name = getattr(command, "command", None)
    if not isinstance(name, str):
        raise TypeError(f"{type(command).__name__} is not a command model")
    params = command.model_dump(mode="json", exclude={"command"}, exclude_none=True)
    return CommandMessage(id=id, ts=ts, command=name, params=params)


def json_schemas() -> dict[str, dict[str, Any]]:
    """JSON Schema of every message: `<family>.<channel>` for each uplink channel and `<family>.cmd`."""
    out: dict[str, dict[str, Any]] = {}
    for family, spec in FAMILIES.items():
        out[f"{family.value}.{Channel.TELEMETRY.value}"] = spec.telemetry_message.model_json_schema()
        out[f"{family.value}.{Channel.EVENT.value}"] = spec.event_message.model_json_schema()
        out[f"{family.value}.{Channel.STATUS.value}"] = StatusMessage.model_json_schema()
        out[f"{family.value}.{Channel.COMMAND_ACK.value}"] = CommandAckMessage.model_json_schema()
        if spec.command_messages:
            members = spec.command_messages
            union: Any = members[0] if len(members) == 1 else Union[members]  # noqa: UP007
            adapter: TypeAdapter[Any] = TypeAdapter(Annotated[union, Field(discriminator="command")])
            schema = adapter.json_schema()
            schema.setdefault("title", f"{family.value} command")
            out[f"{family.value}.{Channel.COMMAND.value}"] = schema
    return out
