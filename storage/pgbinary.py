"""Query parameters in PostgreSQL's binary array form, built with `struct` in one call per array.

psycopg dumps a Python list parameter element by element in Python code (≈ 1.2 µs an element here:
7.5 µs per row of ingest's presence upsert, six arrays a row — issue 18). The arrays below are
`array_recv`'s input (PostgreSQL's src/backend/utils/adt/arrayfuncs.c): dimensions (1), has-nulls,
element type oid, length, lower bound (1), then each element as its length (-1 for NULL) and its
binary form. Each is passed as a `%b` parameter whose dumper carries the array type's oid, so the
statement reads the same values as with lists.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from psycopg import adapt
from psycopg.adapt import AdaptersMap
from psycopg.pq import Format

ARRAY_HEADER = "!iiIii"  # dimensions, has-nulls, element oid, length, lower bound
_BOOL, _INT8, _INT4, _TEXT, _TIMESTAMPTZ = 16, 20, 23, 25, 1184
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)  # timestamptz: µs since then, as int8
_ONE_US = timedelta(microseconds=1)


class BinaryArray(bytes):
    """An array parameter already in binary form; `oid` is the array type's."""

    oid = 0


class Int4Array(BinaryArray):
    oid = 1007


class Int8Array(BinaryArray):
    oid = 1016


class BoolArray(BinaryArray):
    oid = 1000


class TextArray(BinaryArray):
    oid = 1009


class TimestamptzArray(BinaryArray):
    oid = 1185


def _head(oid: int, n: int, nulls: bool = False) -> bytes:
    return struct.pack(ARRAY_HEADER, 1, int(nulls), oid, n, 1)


def int4_array(values: Sequence[int | None]) -> Int4Array:
    """An int4[]; None elements are NULL."""
    n = len(values)
    if None not in values:
        args: list[int] = [4, 0] * n
        args[1::2] = values  # type: ignore[assignment]
        return Int4Array(_head(_INT4, n) + struct.pack("!" + "ii" * n, *args))
    parts = [_head(_INT4, n, nulls=True)]
    null, value = struct.Struct("!i"), struct.Struct("!ii")
    parts += [null.pack(-1) if v is None else value.pack(4, v) for v in values]
    return Int4Array(b"".join(parts))


def int8_array(values: Sequence[int]) -> Int8Array:
    n = len(values)
    args: list[int] = [8, 0] * n
    args[1::2] = values
    return Int8Array(_head(_INT8, n) + struct.pack("!" + "iq" * n, *args))


def bool_array(values: Sequence[bool]) -> BoolArray:
    n = len(values)
    args: list[int | bool] = [1, False] * n
    args[1::2] = values
    return BoolArray(_head(_BOOL, n) + struct.pack("!" + "i?" * n, *args))


def text_array(values: Sequence[str]) -> TextArray:
    parts = [_head(_TEXT, len(values))]
    length = struct.Struct("!i").pack
    for v in values:
        data = v.encode()
        parts.append(length(len(data)))
        parts.append(data)
    return TextArray(b"".join(parts))


def timestamptz_array(values: Sequence[datetime]) -> TimestamptzArray:
    """A timestamptz[] of aware datetimes (a run of one object, as a batch's receive times are, is
    converted once)."""
    args: list[int] = []
    last: datetime | None = None
    t = 0
    for v in values:
        if v is not last:
            last, t = v, (v - _PG_EPOCH) // _ONE_US
        args.append(8)
        args.append(t)
    return TimestamptzArray(_head(_TIMESTAMPTZ, len(values)) + struct.pack("!" + "iq" * len(values), *args))


class _Dumper(adapt.Dumper):
    format = Format.BINARY

    def dump(self, obj: BinaryArray) -> bytes:
        return obj


_DUMPERS = [
    (cls, type(f"{cls.__name__}Dumper", (_Dumper,), {"oid": cls.oid}))
    for cls in (Int4Array, Int8Array, BoolArray, TextArray, TimestamptzArray)
]


def register(adapters: AdaptersMap) -> None:
    """Make the arrays above dumpable on `adapters` (a connection's or a cursor's)."""
    for cls, dumper in _DUMPERS:
        adapters.register_dumper(cls, dumper)
