"""The envelope every uplink message shares, and the downlink command message (contract v1).

Family modules (`devices/families/*.py`) supply the `data` model of telemetry and the union of
their events; `devices.catalog` pairs them with these envelopes into one decoder per channel.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, Strict

from devices.contract import ID_PATTERN, Family

SEQ_MAX = 2**63 - 1

DeviceId = Annotated[str, Field(pattern=ID_PATTERN)]

# Device time on the wire: an ISO 8601 string with the date, the time to the second (fractions
# allowed) and an offset (`Z` or ±hh:mm). Pydantic's own datetime parsing also takes epoch numbers
# (1796111959) and numeric strings ("1796111959"); the contract does not, so they are refused here
# before it runs (docs/mqtt.md §3).
ISO_OFFSET_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$"
_ISO_OFFSET_RE = re.compile(ISO_OFFSET_PATTERN)


def _iso_with_offset(value: Any) -> Any:
    if isinstance(value, datetime):  # built in Python (the simulator, tests): aware is checked next
        return value
    if not isinstance(value, str) or not _ISO_OFFSET_RE.match(value):
        raise ValueError("must be an ISO 8601 string with an offset, e.g. 2026-06-01T08:00:00+08:00")
    return value


def _exact_int(value: Any) -> Any:
    # Literal[1] alone would take `true` and `1.0` for 1
    if type(value) is not int:
        raise ValueError("must be the integer 1")
    return value


DeviceTime = Annotated[AwareDatetime, BeforeValidator(_iso_with_offset)]
StrictInt = Annotated[int, Strict()]


class Frozen(BaseModel):
    """Base of every wire model: immutable, and strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Envelope(Frozen):
    v: Annotated[Literal[1], BeforeValidator(_exact_int)] = Field(description="Contract version")
    device: DeviceId = Field(description="Device id; must equal the device segment of the topic")
    family: Family
    ts: DeviceTime = Field(description="Device time, ISO 8601 with offset")
    seq: StrictInt = Field(ge=0, le=SEQ_MAX, description="Per-device sequence number, +1 per message")


T = TypeVar("T", bound=BaseModel)
E = TypeVar("E")


class TelemetryMessage(Envelope, Generic[T]):
    data: T


class EventMessage(Envelope, Generic[E]):
    event: E


class StatusMessage(Envelope):
    """Presence: published retained on connect (online) and set as the Last Will (offline)."""

    state: Literal["online", "offline"]
    reason: str | None = Field(default=None, max_length=200)
    firmware: str | None = Field(default=None, max_length=64)
    heartbeat_s: StrictInt | None = Field(
        default=None, ge=1, le=86_400, description="The device's telemetry/heartbeat period"
    )


class CommandAckMessage(Envelope):
    id: UUID = Field(description="The id of the command being acknowledged")
    ok: Annotated[bool, Strict()]
    code: str | None = Field(default=None, max_length=64)
    detail: str | None = Field(default=None, max_length=500)


class CommandMessage(Frozen):
    """Downlink: `{prefix}/v1/{community}/{device}/cmd`."""

    v: Literal[1] = 1
    id: UUID
    ts: AwareDatetime
    command: str = Field(pattern=r"^[a-z_]{1,40}$")
    params: dict[str, Any] = Field(default_factory=dict)
