"""Command bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from storage.commands import CommandRequest


class CommandCreate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"device_id": 7, "command": "stop_port", "params": {"port": 3}, "alarm_id": 17},
                {"device_id": 42, "command": "silence", "params": {}},
            ]
        }
    )
    device_id: int = Field(ge=1, le=2**31 - 1)
    command: Annotated[str, StringConstraints(pattern=r"^[a-z_]{1,40}$")] = Field(
        description="A command of the device's family (see docs/mqtt.md)"
    )
    params: dict[str, Any] = Field(default_factory=dict)
    alarm_id: int | None = Field(default=None, ge=1, le=2**62, description="The alarm this command answers")


class CommandAck(BaseModel):
    received_at: datetime
    ok: bool
    code: str | None


class CommandOut(BaseModel):
    id: int
    command_uuid: UUID = Field(description="The id on the wire and the idempotency key")
    device_id: int
    device_uid: str
    community_id: int
    name: str
    params: dict[str, Any]
    requested_by: str
    requested_at: datetime
    sent_at: datetime | None
    status: str = Field(
        examples=["pending"], description="pending, sent, acknowledged, rejected, verified, failed, expired"
    )
    alarm_id: int | None
    details: dict[str, Any]
    acks: list[CommandAck] = Field(default_factory=list)

    @classmethod
    def of(cls, row: CommandRequest) -> CommandOut:
        return cls.model_validate(row, from_attributes=True)
