"""Readings outside the physically possible range (domain.md §5.2: a fault, so an alarm).

Such a message fails schema validation at the edge and becomes a dead letter (ingest), so the rules
never see it — except the e-bike charger readings refused one by one (`devices.catalog.accept`):
that report is accepted without them and the charger rules raise `sensor_implausible` themselves.
Ingest hands the refusal of a *known* device to the engine (`MessageSink.reject`); this
module decides whether the refusal is an implausible reading — every schema error on a range bound of
the family's model (the models' bounds are the physical ranges, devices/families/*.py) — rather than
a malformed document (wrong type, unknown enum value, missing field: an integration fault, recorded
as a dead letter only). Pure: no I/O.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from pydantic import ValidationError

from devices.catalog import decode
from devices.contract import Channel, Family

RANGE_ERRORS = frozenset({"greater_than", "greater_than_equal", "less_than", "less_than_equal"})
DETAIL_MAX_CHARS = 300


@dataclass(frozen=True, slots=True)
class OutOfRange:
    ts: datetime | None  # the envelope's timestamp, when it parses (timezone-aware)
    seq: int | None
    detail: str  # field = value: bound, …


def out_of_range(family: Family, channel: Channel, payload: bytes) -> OutOfRange | None:
    """The range violations of a refused payload, or None if it is not (only) out of range."""
    try:
        decode(family, channel, payload)
        return None
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not errors or any(e.get("type") not in RANGE_ERRORS for e in errors):
        return None
    try:
        doc = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    if not isinstance(doc, dict):
        return None
    detail = "; ".join(
        f"{'.'.join(str(p) for p in e['loc'])} = {e.get('input')!r}: {e['msg']}" for e in errors
    )[:DETAIL_MAX_CHARS]
    seq = doc.get("seq")
    return OutOfRange(_ts(doc.get("ts")), seq if isinstance(seq, int) and seq >= 0 else None, detail)


def _ts(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        ts = datetime.fromisoformat(value)
    except ValueError:
        return None
    return ts if ts.tzinfo is not None else None
