"""Response bodies encoded straight from storage rows: msgspec Structs mirroring the response models.

Why: for a page of 50–100 rows, FastAPI's way — a pydantic model built per row, the page validated
again against the route's response model, then serialised — was most of a list request's server CPU
(bench/api.py: the device list cost 4.1 ms a request, against 0.44 ms for a bare endpoint). Here
`mirror(Model)` builds, at import, one msgspec `Struct` per response model, field for field (same
names, order, defaults, enum and literal types, nested models), and `encode(Model, rows)` converts
storage rows (dataclasses, read by attribute) into it and writes the JSON in C.

The route keeps `response_model=` for the OpenAPI schema and returns the bytes as a `Response`
(FastAPI then neither validates nor serialises again). Contract, enforced by tests/test_api_fastjson.py:
the JSON is the one FastAPI writes for the model built from the same row: the same keys in the same
order, the same values of the same JSON types (datetimes with their offset, `Z` for UTC; floats as
floats, non-finite ones as null; only a float's spelling may differ: 1e16 for 1e+16). A row the
model would refuse (a value outside a literal, a missing field) raises here as it would there (a 500
either way: storage wrote it, not the caller). A model the mirror cannot follow exactly (a
validator, a serializer, an alias, a type it does not know) raises at import: a model change must
keep its mirror exact, never drift silently.
"""

from __future__ import annotations

import enum
import types
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import msgspec
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from starlette.responses import Response

__all__ = ["JsonBytes", "Unsupported", "convert", "encode", "from_rows", "many", "mirror"]

_STRUCTS: dict[tuple[type[BaseModel], frozenset[str]], type[msgspec.Struct]] = {}
_ENCODER = msgspec.json.Encoder()


class Unsupported(TypeError):
    """A construct of a response model that the mirror cannot follow exactly."""


def _field_type(tp: Any) -> Any:  # noqa: PLR0911 - one branch per kind of type
    origin = get_origin(tp)
    if origin is Annotated:
        # descriptions and examples only; a constraint on an output field would be checked by pydantic
        base, *meta = get_args(tp)
        if any(not _documentation_only(m) for m in meta):
            raise Unsupported(f"metadata on {tp!r}")
        return _field_type(base)
    if origin in (Union, types.UnionType):
        return Union[tuple(_field_type(a) for a in get_args(tp))]  # noqa: UP007 - built at run time
    if origin is list:
        (item,) = get_args(tp)
        return list[_field_type(item)]  # type: ignore[misc]
    if origin is dict:
        key, value = get_args(tp)
        if key is not str or value is not Any:
            raise Unsupported(f"mapping {tp!r}")
        return dict[str, Any]
    if origin is Literal:
        if any(type(v) is not str for v in get_args(tp)):
            raise Unsupported(f"literal {tp!r}")
        return tp
    if tp in (int, str, bool, float, datetime, date) or tp is type(None) or tp is Any:
        return tp
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        if not all(type(e.value) is str for e in tp):
            raise Unsupported(f"enum {tp!r}")
        return tp
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return mirror(tp)
    raise Unsupported(f"type {tp!r}")


def _documentation_only(meta: Any) -> bool:
    return type(meta).__name__ == "FieldInfo" and not getattr(meta, "metadata", None)


def _default(model: type[BaseModel], name: str, info: FieldInfo) -> Any:
    """The msgspec default of a model field (NODEFAULT: required)."""
    if info.is_required():
        return msgspec.NODEFAULT
    if info.default_factory is not None:
        return msgspec.field(default_factory=info.default_factory)  # type: ignore[arg-type]
    if info.default is PydanticUndefined:
        raise Unsupported(f"{model.__name__}.{name}: no default")
    return info.default


def mirror(model: type[BaseModel], computed: frozenset[str] = frozenset()) -> type[msgspec.Struct]:
    """The Struct mirroring response model `model` (and, recursively, the models of its fields).
    `computed`: fields the caller sets after conversion (labels derived from the row, nested lists
    fetched separately); they are None until then."""
    key = (model, computed)
    if key in _STRUCTS:
        return _STRUCTS[key]
    decorators = model.__pydantic_decorators__
    if any(
        (
            decorators.validators,
            decorators.field_validators,
            decorators.root_validators,
            decorators.model_validators,
            decorators.field_serializers,
            decorators.model_serializers,
            decorators.computed_fields,
        )
    ):
        raise Unsupported(f"{model.__name__}: validators, serializers or computed fields")
    if model.model_config.get("ser_json_timedelta") or model.model_config.get("ser_json_inf_nan"):
        raise Unsupported(f"{model.__name__}: serialisation settings")
    fields: list[tuple[str, Any, Any]] = []
    for name, info in model.model_fields.items():
        if info.alias not in (None, name) or info.serialization_alias not in (None, name) or info.exclude:
            raise Unsupported(f"{model.__name__}.{name}: alias or exclusion")
        if info.metadata:
            raise Unsupported(f"{model.__name__}.{name}: constraints {info.metadata!r}")
        tp = _field_type(info.annotation)
        if name in computed:
            fields.append((name, tp | None, None))
        else:
            fields.append((name, tp, _default(model, name, info)))
    unknown = computed - set(model.model_fields)
    if unknown:
        raise Unsupported(f"{model.__name__}: no fields {sorted(unknown)}")
    # keyword-only: required and defaulted fields in the model's order, so the JSON keys are too
    struct = msgspec.defstruct(f"Out{model.__name__}", fields, kw_only=True, module=__name__, gc=False)
    _STRUCTS[key] = struct
    return struct


def convert(model: type[BaseModel], row: Any, **computed: Any) -> Any:
    """`row` (a dataclass, a record: anything with the model's fields as attributes) as the Struct of
    `model`, checked like the model checks its input; `computed`: the values of fields `row` lacks."""
    out = msgspec.convert(row, mirror(model, frozenset(computed)), from_attributes=True, strict=False)
    for name, value in computed.items():
        setattr(out, name, value)
    return out


def many(model: type[BaseModel], rows: Sequence[Any], **computed: Callable[[Any], Any]) -> list[Any]:
    """`convert` for a list of rows; `computed`: how to derive each missing field from its row."""
    struct = mirror(model, frozenset(computed))
    out: list[Any] = msgspec.convert(rows, list[struct], from_attributes=True, strict=False)  # type: ignore[valid-type]
    for name, derive in computed.items():
        for item, row in zip(out, rows, strict=True):
            setattr(item, name, derive(row))
    return out


_TWINS: dict[tuple[type[BaseModel], frozenset[str]], tuple[type[msgspec.Struct], type[msgspec.Struct]]] = {}


def _twins(
    model: type[BaseModel], json_text: frozenset[str]
) -> tuple[type[msgspec.Struct], type[msgspec.Struct]]:
    """Two Structs with the mirror's fields and types: one read from an array (to check a row given
    as a tuple in C, as `convert` checks attributes), one built by position and written as an object
    (the mirror's JSON: same names, order and values; every field is given, so no defaults). Fields
    in `json_text` are JSON objects given as their text: checked as text, written as they are."""
    key = (model, json_text)
    if key not in _TWINS:
        checked_fields: list[tuple[str, Any]] = []
        out_fields: list[tuple[str, Any]] = []
        for f in msgspec.structs.fields(mirror(model)):
            if f.name in json_text:
                if f.type != dict[str, Any]:
                    raise Unsupported(f"{model.__name__}.{f.name}: as JSON text, but not a JSON object")
                checked_fields.append((f.name, str))
                out_fields.append((f.name, msgspec.Raw))
            else:
                checked_fields.append((f.name, f.type))
                out_fields.append((f.name, f.type))
        checked = msgspec.defstruct(
            f"In{model.__name__}", checked_fields, array_like=True, module=__name__, gc=False
        )
        out = msgspec.defstruct(f"Row{model.__name__}", out_fields, module=__name__, gc=False)
        _TWINS[key] = (checked, out)
    return _TWINS[key]


def from_rows(
    model: type[BaseModel],
    columns: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
    json_text: frozenset[str] = frozenset(),
) -> list[Any]:
    """`many` for rows given as tuples whose `columns` are exactly `model`'s fields in order: checked
    like the model checks its input (a value it would refuse raises), then ready for `encode`.
    `json_text`: fields of type `dict[str, Any]` given as the JSON text of an object, as PostgreSQL
    writes a jsonb (`::text`), written out as that text — the same JSON as the dict's, but for the
    spaces between items and the spelling of numbers beyond a float's precision.

    Why: the device page's rows as dataclasses, read back by attribute, cost most of its server CPU
    (bench/api.py); tuples straight from psycopg are checked and converted in C here."""
    if tuple(columns) != tuple(model.model_fields):
        raise Unsupported(f"{model.__name__}: columns {tuple(columns)} are not its fields in order")
    checked, out = _twins(model, json_text)
    astuple = msgspec.structs.astuple
    items = msgspec.convert(rows, list[checked], strict=False)  # type: ignore[valid-type]
    if not json_text:
        return [out(*astuple(item)) for item in items]
    at = [i for i, name in enumerate(columns) if name in json_text]
    result = []
    for item in items:
        values = list(astuple(item))
        for i in at:
            values[i] = msgspec.Raw(values[i])
        result.append(out(*values))
    return result


def encode(value: Any) -> bytes:
    """JSON of Structs (and lists, dicts, plain values) as FastAPI writes the models."""
    return _ENCODER.encode(value)


class JsonBytes(Response):
    """An already-encoded JSON body (the route's `response_model` still documents it)."""

    media_type = "application/json"
