"""Linkage bodies. Chain definitions are checked by the escalation core (`Chain.from_json`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints

Name = Annotated[str, StringConstraints(min_length=1, max_length=100, strip_whitespace=True)]
Phone = Annotated[str, StringConstraints(pattern=r"^\+?[0-9]{3,20}$")]
Group = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]{1,32}$")]
CommunityId = Annotated[int, Field(ge=1, le=2**62)]
Minute = Annotated[int, Field(ge=0, le=1439)]
EndMinute = Annotated[int, Field(ge=0, le=1440)]


class Shift(BaseModel):
    weekdays: list[Annotated[int, Field(ge=1, le=7)]] = Field(
        min_length=1, max_length=7, description="ISO, 1 = Monday"
    )
    start_min: Minute = Field(description="Minute of the day the shift starts (community time zone)")
    end_min: EndMinute = Field(description="Minute it ends; ≤ start wraps over midnight")


class PersonCreate(BaseModel):
    community_id: CommunityId
    name: Name
    phone: Phone
    duty_group: Group = "manager"
    shifts: list[Shift] = Field(default_factory=list, max_length=50)


class PersonUpdate(BaseModel):
    name: Name | None = None
    phone: Phone | None = None
    duty_group: Group | None = None
    enabled: bool | None = None


class PersonOut(BaseModel):
    id: int
    community_id: int
    name: str
    phone: str
    duty_group: str
    enabled: bool
    shifts: list[Shift]
    on_duty: bool | None = Field(default=None, description="On duty now (roster only)")


class EndpointCreate(BaseModel):
    community_id: CommunityId
    name: Name
    kind: Literal["webhook", "gbt26875"]
    url: Annotated[str, StringConstraints(max_length=500)] = Field(
        default="", description="webhook: https://…; gbt26875: host:port of the centre"
    )
    secret: Annotated[str, StringConstraints(max_length=200)] = Field(
        default="", description="webhook signing secret (write-only)"
    )
    source: Annotated[str, StringConstraints(pattern=r"^[0-9A-Fa-f]{12}$")] | None = Field(
        default=None, description="gbt26875: our 6-byte address, 12 hex digits"
    )
    destination: Annotated[str, StringConstraints(pattern=r"^[0-9A-Fa-f]{12}$")] | None = None


class EndpointOut(BaseModel):
    id: int
    community_id: int
    name: str
    kind: str
    config: dict[str, Any]
    enabled: bool
    has_secret: bool


class ChainIn(BaseModel):
    community_id: CommunityId
    name: Name
    definition: dict[str, Any] = Field(
        description="steps: [{name, delay_s, targets: [{kind: console|person|on_duty|endpoint, ref, group}], "
        "channels: [console|sip|sms|voice|webhook|gbt26875]}], loops, repeat_delay_s",
        examples=[
            {
                "steps": [
                    {
                        "name": "值班室",
                        "delay_s": 0,
                        "targets": [{"kind": "console"}],
                        "channels": ["console"],
                    },
                    {
                        "name": "值班经理",
                        "delay_s": 60,
                        "targets": [{"kind": "on_duty", "group": "manager"}],
                        "channels": ["sip", "sms"],
                    },
                ],
                "loops": 3,
                "repeat_delay_s": 60,
            }
        ],
    )


class ChainOut(BaseModel):
    id: int
    community_id: int
    name: str
    definition: dict[str, Any]
    version: int
    updated_at: datetime


class PolicyCreate(BaseModel):
    community_id: CommunityId
    name: Name
    chain_id: Annotated[int, Field(ge=1, le=2**62)]
    alarm_types: list[Annotated[str, StringConstraints(pattern=r"^[a-z_]{1,60}$")]] = Field(
        default_factory=list, max_length=100, description="Empty: every type"
    )
    severities: list[Literal["critical", "major", "minor", "warning"]] = Field(
        default_factory=list, max_length=4
    )
    quiet_start_min: Minute | None = Field(default=None, description="Quiet hours (non-critical alarms only)")
    quiet_end_min: EndMinute | None = None
    priority: Annotated[int, Field(ge=0, le=10_000)] = 100


class PolicyOut(BaseModel):
    id: int
    community_id: int
    name: str
    chain_id: int
    alarm_types: list[str]
    severities: list[str]
    quiet_start_min: int | None
    quiet_end_min: int | None
    priority: int
    enabled: bool


class DeliveryOut(BaseModel):
    id: int
    loop: int
    step: int
    target: str
    target_name: str
    channel: str
    address: str
    status: str = Field(
        description="pending, sending, delivered, answered, acknowledged, busy, no_answer, "
        "failed, interrupted, cancelled"
    )
    attempts: int
    next_at: datetime
    claimed_at: datetime | None
    finished_at: datetime | None
    outcome: str | None
    idempotency_key: str


class TimelineEntry(BaseModel):
    id: int
    at: datetime
    kind: str
    actor: str
    detail: dict[str, Any]


class IncidentOut(BaseModel):
    id: int
    community_id: int
    alarm_id: int | None
    drill: bool = Field(description="A drill (test-fire of a chain): no real alarm")
    alarm_type: str
    severity: str
    summary: str
    state: str = Field(description="open, acknowledged, cleared, exhausted, cancelled")
    group_key: str | None
    chain_id: int | None
    loop: int
    next_step: int
    next_step_at: datetime | None = Field(description="When the next step starts (the console's countdown)")
    started_at: datetime
    first_attempt_at: datetime | None
    ended_at: datetime | None
    ended_by: str | None


class IncidentDetail(IncidentOut):
    chain: dict[str, Any] = Field(description="The chain as frozen when the incident started")
    deliveries: list[DeliveryOut]
    timeline: list[TimelineEntry]


class AckIn(BaseModel):
    comment: Annotated[str, StringConstraints(max_length=1000)] | None = None
    via: Literal["api", "console"] = "api"


class AckOut(BaseModel):
    incident_id: int
    acknowledged: bool = Field(description="false: it was no longer open (already acknowledged or ended)")
    state: str
