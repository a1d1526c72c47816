"""Array parameters in binary form (storage.pgbinary, issue 18: the presence upsert's six arrays were
≈ 7.5 µs a row as lists): PostgreSQL reads back exactly the values a list gives, NULLs, non-ASCII
text, the limits of each type and instants in any UTC offset included."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from storage import pgbinary
from storage.db import connection

CST = timezone(timedelta(hours=8))
NOW = datetime.now(UTC).replace(microsecond=654_321)

CASES: list[tuple[str, Callable[[Any], pgbinary.BinaryArray], Sequence[Any]]] = [
    ("int4", pgbinary.int4_array, [1, -(2**31), 2**31 - 1, 0]),
    ("int4", pgbinary.int4_array, [None, 5, None]),  # heartbeat_s: announced or not
    ("int8", pgbinary.int8_array, [0, -(2**63), 2**63 - 1]),
    ("bool", pgbinary.bool_array, [True, False, True]),
    ("text", pgbinary.text_array, ["online", "", "断电 power_loss", "x" * 64]),
    (
        "timestamptz",
        pgbinary.timestamptz_array,
        [NOW, NOW, NOW.astimezone(CST), NOW - timedelta(days=9000), NOW + timedelta(microseconds=1)],
    ),
    ("int4", pgbinary.int4_array, []),
]


@pytest.mark.parametrize(("kind", "build", "values"), CASES)
def test_postgresql_reads_the_values_a_list_gives(
    db_url: str, kind: str, build: Callable[[Any], pgbinary.BinaryArray], values: Sequence[Any]
) -> None:
    with connection(db_url, autocommit=True) as conn, conn.cursor() as cur:
        pgbinary.register(cur.adapters)
        binary = cur.execute(f"SELECT %b::{kind}[]", (build(values),)).fetchone()
        listed = cur.execute(f"SELECT %s::{kind}[]", (list(values),)).fetchone()
        same = cur.execute(
            f"SELECT %b::{kind}[] IS NOT DISTINCT FROM %s::{kind}[]",
            (build(values), list(values)),
        ).fetchone()
    assert binary == listed == (list(values),)
    assert same == (True,)
