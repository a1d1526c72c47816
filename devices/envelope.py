"""The envelope every uplink message shares, and the downlink command message (contract v1).

Family modules (`devices/families/*.py`) supply the `data` model of telemetry and the union of
their events; `devices.catalog` pairs them with these envelopes into one decoder per channel.
"""

from __future__ import annotations

from typing import Annotated, Any, Generic, Literal, TypeVar
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from devices.contract import ID_PATTERN, Family

SEQ_MAX = 2**63 - 1

DeviceId = Annotated[str, Field(pattern=ID_PATTERN)]


class Frozen(BaseModel):
    """Base of every wire model: immutable, and strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Envelope(Frozen):
    v: Literal[1] = Field(description="Contract version")
    device: DeviceId = Field(description="Device id; must equal the device segment of the topic")
    family: Family
    ts: AwareDatetime = Field(description="Device time, ISO 8601 with offset")
    seq: int = Field(ge=0, le=SEQ_MAX, description="Per-device sequence number, +1 per message")


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
    heartbeat_s: int | None = Field(
        default=None, ge=1, le=86_400, description="The device's telemetry/heartbeat period"
    )


class CommandAckMessage(Envelope):
    id: UUID = Field(description="The id of the command being acknowledged")
    ok: bool
    code: str | None = Field(default=None, max_length=64)
    detail: str | None = Field(default=None, max_length=500)


class CommandMessage(Frozen):
    """Downlink: `{prefix}/v1/{community}/{device}/cmd`."""

    v: Literal[1] = 1
    id: UUID
    ts: AwareDatetime
    command: str = Field(pattern=r"^[a-z_]{1,40}$")
    params: dict[str, Any] = Field(default_factory=dict)
