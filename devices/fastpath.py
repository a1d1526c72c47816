"""A compiled fast path for the common, valid message: msgspec Structs generated from the wire models.

Ingest decodes every message once (issue 18: pydantic-core's `validate_json` plus the Python
validators it calls back was about half of the decoder's CPU per message). For the channels that
carry most of the traffic — telemetry and status — this module builds, at import, one msgspec
`Struct` per pydantic wire model, field for field: the same names, types, enum classes, defaults and
constraints (ranges, lengths, patterns), strict like the models (no "220" for a number, no 1 for
`true`), unknown fields refused; the models' own `after` validators (a charger's readings present, a
recorder's disk and channels consistent, a lamp schedule's HH:MM) run on the Struct, and the models'
properties and methods (`refused`, `covers`) are copied onto it, so the engine reads a Struct body
exactly as it reads a model.

Contract (`FastDecoder.decode`): for any payload it returns a body, or None when it cannot decide — then the
caller decodes with the pydantic models (`devices.catalog`), which give the verdict and the error
text, so every refusal and dead letter reads as before. A body returned here is one the pydantic
models accept, with equal values: the same numbers (floats as floats), the same enum members,
datetimes at the same instant with the same UTC offset (the tzinfo is `datetime.timezone`, not
pydantic's `TzInfo`). It is stricter rather than laxer wherever the two parsers could differ
(patterns end at `\\Z`, device times take at most microseconds): anything it does not accept goes
the pydantic way. Enforced by tests/test_devices_fastpath.py on the sample payloads and on
hypothesis mutations of them.

A model the generator cannot mirror exactly (a construct it does not know) raises at import: a
model change must come with its mirror, never silently skip it.
"""

from __future__ import annotations

import enum
import inspect
import re
import types
from collections.abc import Callable, Mapping
from datetime import datetime
from types import MappingProxyType, NoneType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types as at
import msgspec
from pydantic import AwareDatetime, BaseModel, BeforeValidator, Strict
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from devices.contract import Channel, Family
from devices.envelope import StatusMessage, TelemetryMessage, _exact_int, _iso_with_offset

__all__ = ["FAST_CHANNELS", "FastDecoder", "struct_of"]

FAST_CHANNELS = frozenset({Channel.TELEMETRY, Channel.STATUS})

# The device-time format of docs/mqtt.md §3 (devices.envelope.ISO_OFFSET_PATTERN), narrowed to what
# pydantic's parser and `datetime.fromisoformat` read alike: anchored at the very end, hours, minutes
# and seconds in range (fromisoformat takes an offset of +08:60), at most microseconds (more digits
# are rounded by rules of the parser's own). Anything else is the pydantic path's.
DEVICE_TIME_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?"
    r"(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])\Z"
)
# decoded as a string of that pattern, made a datetime by the Struct's __post_init__ (`_times`)
_DEVICE_TIME = Annotated[str, msgspec.Meta(pattern=DEVICE_TIME_PATTERN)]
_DeviceTimeMark = object()  # what `_field_type` returns for a device time…
_NullableDeviceTimeMark = object()  # …and for an optional one
_force_setattr = msgspec.structs.force_setattr
# A device time is made a datetime by msgspec's own parser (after the pattern has matched, so it reads
# exactly what `datetime.fromisoformat` reads): it keeps one tzinfo object per UTC offset, where
# `fromisoformat` makes a new `timezone` per call, and comparing datetimes whose tzinfo objects differ
# calls `utcoffset` on both and builds temporaries (≈ 2 µs for ingest's two window comparisons per
# message, issue 18); sharing one, they compare field by field.
_convert = msgspec.convert


class Unsupported(TypeError):
    """A construct of a wire model that the fast path cannot mirror exactly."""


class _NoContext:
    """The ValidationInfo a model validator sees: decoding without a context (devices.catalog.decode)."""

    context = None
    config = None
    mode = "json"
    data: dict[str, Any] = {}  # noqa: RUF012 - never written
    field_name = None


_NO_CONTEXT = _NoContext()


def _meta(base: Any, constraints: dict[str, Any]) -> Any:
    return Annotated[base, msgspec.Meta(**constraints)] if constraints else base


def _add(constraints: dict[str, Any], key: str, value: Any) -> None:
    """Add a bound, keeping the tightest where several apply (a type's `ge=0` and its field's `gt=0`:
    pydantic checks both; msgspec takes one lower and one upper bound)."""
    pairs = {"ge": "gt", "gt": "ge", "le": "lt", "lt": "le"}
    if key not in pairs:
        constraints[key] = value
        return
    lower = key in ("ge", "gt")
    other = pairs[key]
    for k in (key, other):
        if k in constraints:
            old = constraints[k]
            tighter = value > old if lower else value < old
            if tighter or (value == old and key in ("gt", "lt")):
                del constraints[k]
            else:
                return
    constraints[key] = value


def _pattern(pattern: str) -> str:
    """pydantic matches with Rust's regex, where `$` is the end of the text; Python's `$` also
    matches before a final newline."""
    if "$" in pattern[:-1] or not pattern.endswith("$") or pattern.endswith("\\$"):
        raise Unsupported(f"pattern {pattern!r}")
    return pattern[:-1] + r"\Z"


def _split_metadata(items: list[Any]) -> tuple[dict[str, Any], list[Any]]:  # noqa: PLR0912 - one per kind
    """Constraints (msgspec.Meta keywords) and validators among pydantic/annotated-types metadata."""
    constraints: dict[str, Any] = {}
    validators: list[Any] = []
    for m in items:
        if isinstance(m, FieldInfo):
            c, v = _split_metadata(list(m.metadata))
            for key, value in c.items():
                _add(constraints, key, value)
            validators += v
        elif isinstance(m, Strict):
            if not m.strict:
                raise Unsupported("Strict(False)")
        elif isinstance(m, at.Ge):
            _add(constraints, "ge", m.ge)
        elif isinstance(m, at.Gt):
            _add(constraints, "gt", m.gt)
        elif isinstance(m, at.Le):
            _add(constraints, "le", m.le)
        elif isinstance(m, at.Lt):
            _add(constraints, "lt", m.lt)
        elif isinstance(m, at.MinLen):
            _add(constraints, "min_length", m.min_length)
        elif isinstance(m, at.MaxLen):
            _add(constraints, "max_length", m.max_length)
        elif type(m).__name__ == "AllowInfNan" or (
            type(m).__name__ == "_PydanticGeneralMetadata" and set(vars(m)) == {"allow_inf_nan"}
        ):
            pass  # msgspec's JSON decoder never yields inf or nan (1e400 is out of range, NaN malformed)
        elif type(m).__name__ == "_PydanticGeneralMetadata" and set(vars(m)) <= {"pattern", "allow_inf_nan"}:
            if "pattern" in vars(m):
                constraints["pattern"] = _pattern(vars(m)["pattern"])
        elif isinstance(m, BeforeValidator) and m.func in (_exact_int, _iso_with_offset):
            validators.append(m.func)
        else:
            raise Unsupported(f"metadata {m!r}")
    return constraints, validators


def _field_type(  # noqa: PLR0911, PLR0912 - one branch per kind of type
    tp: Any, metadata: list[Any], structs: dict[type[BaseModel], type[msgspec.Struct]]
) -> Any:
    origin = get_origin(tp)
    if origin is Annotated:
        base, *inner = get_args(tp)
        return _field_type(base, [*inner, *metadata], structs)
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        members = [a for a in args if a is not NoneType]
        if len(members) != 1 or len(args) != 2:
            raise Unsupported(f"union {tp!r}")
        # constraints on an optional field apply to its value (pydantic pushes them inside)
        inner = _field_type(members[0], metadata, structs)
        return _NullableDeviceTimeMark if inner is _DeviceTimeMark else inner | None
    constraints, validators = _split_metadata(metadata)
    if origin is list:
        (item,) = get_args(tp)
        if validators:
            raise Unsupported(f"validators on {tp!r}")
        items: Any = list[_field_type(item, [], structs)]  # type: ignore[misc]
        return _meta(items, constraints)
    if origin is Literal:
        values = get_args(tp)
        if constraints or any(v is not _exact_int for v in validators):
            raise Unsupported(f"constraints on {tp!r}")
        if any(type(v) not in (int, str) for v in values):
            raise Unsupported(f"literal {tp!r}")
        return tp  # msgspec's int literal takes neither `true` nor 1.0 (_exact_int's rule)
    if tp is AwareDatetime or tp is datetime:
        if validators != [_iso_with_offset] or constraints:
            raise Unsupported("a datetime that is not a DeviceTime")
        return _DeviceTimeMark
    if validators:
        raise Unsupported(f"validators {validators!r} on {tp!r}")
    if tp in (int, float, str):
        return _meta(tp, constraints)
    if tp is bool:
        if constraints:
            raise Unsupported("constraints on bool")
        return bool
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        if constraints or not all(type(e.value) is str for e in tp):
            raise Unsupported(f"enum {tp!r}")
        return tp
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        if constraints:
            raise Unsupported(f"constraints on {tp!r}")
        return struct_of(tp, structs)
    raise Unsupported(f"type {tp!r}")


def _checks(model: type[BaseModel]) -> list[Callable[[Any], Any]]:
    """The model's own validators, as calls on a decoded Struct: field validators, then model ones
    (pydantic's order for `after` validators)."""
    decorators = model.__pydantic_decorators__
    if decorators.root_validators or decorators.validators or decorators.field_serializers:
        raise Unsupported(f"{model.__name__}: v1-style validators or serializers")
    if decorators.model_serializers or decorators.computed_fields:
        raise Unsupported(f"{model.__name__}: serializers or computed fields")
    out: list[Callable[[Any], Any]] = []
    for fd in decorators.field_validators.values():
        if fd.info.mode != "after" or len(inspect.signature(fd.func).parameters) != 1:
            raise Unsupported(f"{model.__name__}.{fd.cls_var_name}: not a plain `after` field validator")
        for name in fd.info.fields:

            def check(s: Any, func: Callable[[Any], Any] = fd.func, name: str = name) -> None:
                value = getattr(s, name)
                if value is not None and func(value) != value:
                    raise Unsupported("a field validator that changes the value")

            out.append(check)
    for md in decorators.model_validators.values():
        if md.info.mode != "after":
            raise Unsupported(f"{model.__name__}.{md.cls_var_name}: not an `after` model validator")
        func: Callable[..., Any] = md.func
        n = len(inspect.signature(func).parameters)
        if n == 1:
            out.append(func)
        elif n == 2:

            def with_info(s: Any, func: Callable[..., Any] = func) -> Any:
                return func(s, _NO_CONTEXT)

            out.append(with_info)
        else:
            raise Unsupported(f"{model.__name__}.{md.cls_var_name}: signature")
    return out


def _copied_members(model: type[BaseModel]) -> dict[str, Any]:
    """Properties and plain methods the model defines itself (the engine calls them on bodies), and
    the defaults of its private attributes, read-only (a charger's `refused` is {} on this path)."""
    out: dict[str, Any] = {}
    for klass in reversed(model.__mro__):
        if not (isinstance(klass, type) and issubclass(klass, BaseModel)) or klass.__module__.startswith(
            "pydantic"
        ):
            continue
        for name, value in vars(klass).items():
            if name.startswith("__") or name in klass.__pydantic_decorators__.model_validators:
                continue
            if name in klass.__pydantic_decorators__.field_validators or name == "model_config":
                continue
            if name in ("_abc_impl", "model_post_init") or name in getattr(klass, "model_fields", {}):
                continue
            if isinstance(value, property) or inspect.isfunction(value):
                out[name] = value
    for name, private in model.__private_attributes__.items():
        factory: Any = private.default_factory
        default = factory() if factory is not None else private.default
        if isinstance(default, dict) and not default:
            out[name] = MappingProxyType({})
        else:
            raise Unsupported(f"{model.__name__}.{name}: private attribute default {default!r}")
    return out


def struct_of(
    model: type[BaseModel], structs: dict[type[BaseModel], type[msgspec.Struct]] | None = None
) -> type[msgspec.Struct]:
    """The Struct mirroring `model` (and, recursively, the models of its fields)."""
    structs = {} if structs is None else structs
    if model in structs:
        return structs[model]
    if model.model_config.get("extra") != "forbid":
        raise Unsupported(f"{model.__name__}: unknown fields must be refused")
    required: list[tuple[str, Any]] = []
    optional: list[tuple[str, Any, Any]] = []
    times: list[str] = []
    for name, info in model.model_fields.items():
        if info.alias not in (None, name) or info.validation_alias is not None:
            raise Unsupported(f"{model.__name__}.{name}: alias")
        tp = _field_type(info.annotation, list(info.metadata), structs)
        if tp is _DeviceTimeMark or tp is _NullableDeviceTimeMark:
            times.append(name)
            tp = _DEVICE_TIME if tp is _DeviceTimeMark else _DEVICE_TIME | None
        if info.is_required():
            required.append((name, tp))
        elif info.default_factory is not None:
            optional.append((name, tp, msgspec.field(default_factory=info.default_factory)))  # type: ignore[arg-type]
        elif info.default is PydanticUndefined:
            raise Unsupported(f"{model.__name__}.{name}: no default")
        else:
            optional.append((name, tp, info.default))
    checks = _checks(model)
    namespace: dict[str, Any] = _copied_members(model)
    if times or checks:

        def __post_init__(self: Any) -> None:
            for name in times:  # the pattern has been matched: the string is a device time
                value = getattr(self, name)
                if value is not None:
                    _force_setattr(self, name, _convert(value, datetime))  # an error for 25:00 or 02-30
            for check in checks:
                check(self)

        namespace["__post_init__"] = __post_init__
    name = re.sub(r"\W", "_", model.__name__)
    # frozen like the models; gc=False: a decoded body holds no reference cycles
    struct = msgspec.defstruct(
        f"Fast{name}",
        [*required, *optional],
        namespace=namespace,
        frozen=True,
        forbid_unknown_fields=True,
        gc=False,
        module=__name__,
    )
    structs[model] = struct
    return struct


class FastDecoder:
    """One compiled decoder per (family, channel) of `FAST_CHANNELS`, built once (devices.catalog)."""

    def __init__(self, telemetry_messages: Mapping[Family, type[TelemetryMessage[Any]]]) -> None:
        structs: dict[type[BaseModel], type[msgspec.Struct]] = {}
        status = msgspec.json.Decoder(struct_of(StatusMessage, structs))
        self._decoders: dict[tuple[Family, Channel], msgspec.json.Decoder[Any]] = {}
        for family, message in telemetry_messages.items():
            self._decoders[(family, Channel.TELEMETRY)] = msgspec.json.Decoder(struct_of(message, structs))
            self._decoders[(family, Channel.STATUS)] = status

    def decode(self, family: Family, channel: Channel, payload: bytes | str) -> Any | None:
        """The body of a valid message on a fast channel, or None: not decided here (the contract)."""
        decoder = self._decoders.get((family, channel))
        if decoder is None:
            return None
        try:
            return decoder.decode(payload)
        except (msgspec.ValidationError, msgspec.DecodeError):
            return None
