"""Alarm bodies: the alarm with its labels, transitions, actions, and live-stream events."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from devices.alarms import ALARM_INFO, AlarmType
from storage.alarm_history import HistoryRow
from storage.alarms import Alarm, AlarmEvent, Transition

Text = Annotated[str, StringConstraints(min_length=1, max_length=2000, pattern=r"^[^\x00]*$")]

_ALARM_EXAMPLE: dict[str, Any] = {
    "id": 17,
    "community_id": 1,
    "device_id": 42,
    "device_uid": "smk-b3-0601",
    "family": "smoke_alarm",
    "location_id": 9,
    "location_name": "3号楼 6层",
    "building_id": 3,
    "building_name": "3号楼",
    "type": "fire_alarm",
    "type_zh": "火灾报警",
    "type_en": "Fire alarm",
    "severity": "critical",
    "status": "active",
    "acknowledged": False,
    "acknowledged_at": None,
    "acknowledged_by": None,
    "cleared_at": None,
    "cleared_by": None,
    "first_at": "2026-11-20T08:01:02Z",
    "last_at": "2026-11-20T08:01:02Z",
    "occurrences": 1,
    "source": "device",
    "details": {"state": "alarm"},
}


class AlarmOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_ALARM_EXAMPLE]})

    id: int
    community_id: int
    device_id: int
    device_uid: str
    family: str
    location_id: int | None
    location_name: str | None
    building_id: int | None
    building_name: str | None
    type: str
    type_zh: str = Field(description="Chinese label of the alarm type")
    type_en: str
    severity: Literal["critical", "major", "minor", "warning"]
    status: Literal["active", "cleared"]
    acknowledged: bool
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    cleared_at: datetime | None
    cleared_by: str | None
    first_at: datetime
    last_at: datetime
    occurrences: int
    source: str
    details: dict[str, Any]
    handling: Literal["dispatched", "on_site", "resolved", "closed"] | None = Field(
        default=None, description="The handling step reached (处置流程); null: not yet dispatched"
    )
    result: Literal["real", "false_alarm", "test", "device_fault"] | None = None
    location_kind: str | None = Field(default=None, description="lobby, floor, shed, …")
    unit: str | None = Field(default=None, description="Unit (单元) of the location")
    floor: int | None = Field(default=None, description="Floor of the location (negative: basement)")
    room: str | None = Field(default=None, description="Room (房号) of a household device")
    post: str | None = Field(default=None, description="Post number (桩号) of a charging post in its shed")

    @classmethod
    def of(cls, alarm: Alarm) -> AlarmOut:
        return cls(
            **{k: getattr(alarm, k) for k in Alarm.__dataclass_fields__},
            type_zh=type_zh(alarm),
            type_en=type_en(alarm),
        )


def _labels(alarm_type: str) -> tuple[str, str]:
    try:
        info = ALARM_INFO[AlarmType(alarm_type)]
    except ValueError:
        return alarm_type, alarm_type  # a type this version does not know: its name
    return info.zh, info.en


_LABELS = {t.value: _labels(t.value) for t in AlarmType}


def type_zh(alarm: Alarm) -> str:
    """The Chinese label of the alarm's type (its name for a type this version does not know)."""
    return _LABELS.get(alarm.type, (alarm.type, alarm.type))[0]


def type_en(alarm: Alarm) -> str:
    return _LABELS.get(alarm.type, (alarm.type, alarm.type))[1]


_TRANSITION_EXAMPLE: dict[str, Any] = {
    "id": 120,
    "alarm_id": 17,
    "at": "2026-11-20T08:02:10Z",
    "action": "acknowledged",
    "actor": "user:duty1",
    "comment": "已派保安前往",
    "details": {},
}


class TransitionOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_TRANSITION_EXAMPLE]})
    id: int = Field(description="Also the live stream's event id")
    alarm_id: int
    at: datetime
    action: str
    actor: str
    comment: str | None
    details: dict[str, Any]
    actor_name: str | None = Field(
        default=None, description="The person's display name when the actor is a user (user:<name>)"
    )

    @classmethod
    def of(cls, t: Transition, names: dict[str, str] | None = None) -> TransitionOut:
        user = t.actor.removeprefix("user:") if t.actor.startswith("user:") else None
        name = (names or {}).get(user, user) if user else None
        return cls(**{k: getattr(t, k) for k in Transition.__dataclass_fields__}, actor_name=name)


class AlarmDetail(AlarmOut):
    history: list[TransitionOut] = Field(description="Every transition, oldest first")


class AckRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"comment": "已派保安前往现场"}]})
    comment: Text | None = None


class BatchAckRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"ids": [17, 18], "comment": "离线告警随停电产生"}]}
    )
    ids: Annotated[list[Annotated[int, Field(ge=1, le=2**62)]], Field(min_length=1, max_length=500)]
    comment: Text | None = None


class BatchAckResult(BaseModel):
    acknowledged: list[int] = Field(description="The alarms this call acknowledged")
    unchanged: list[int] = Field(description="Alarms that were acknowledged before")


class ReasonRequest(BaseModel):
    """Clear and close: a person ends an alarm only with a reason (issue 13)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"comment": "现场确认无烟火，探测器已复位"}]})
    comment: Text


class DispatchRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"to": "保安 王师傅", "comment": None}]})
    to: Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00]*$")]
    comment: Text | None = None


class ResolveRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"result": "false_alarm", "comment": "厨房油烟，已开窗通风"}]}
    )
    result: Literal["real", "false_alarm", "test", "device_fault"]
    comment: Text


class CommentRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"text": "保安到场确认为误报"}]})
    text: Text


class ActionResult(BaseModel):
    changed: bool = Field(description="False when the alarm was already in the requested state")
    alarm: AlarmOut
    transition: TransitionOut | None


class StreamEvent(BaseModel):
    """The `data` of an `event: alarm` message of the live stream."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "event_id": 121,
                    "action": "raised",
                    "transition": _TRANSITION_EXAMPLE,
                    "alarm": _ALARM_EXAMPLE,
                }
            ]
        }
    )
    event_id: int = Field(description="The transition id")
    action: str
    transition: TransitionOut
    alarm: AlarmOut

    @classmethod
    def of(cls, event: AlarmEvent) -> StreamEvent:
        return cls(
            event_id=event.transition.id,
            action=event.transition.action,
            transition=TransitionOut.of(event.transition),
            alarm=AlarmOut.of(event.alarm),
        )


class LatestEvent(BaseModel):
    last_event_id: int = Field(
        description="The newest transition id; a stream started with since= it replays nothing"
    )


class HistoryOut(BaseModel):
    """One ended alarm of the history search (cleared, or closed by the handling workflow)."""

    id: int
    community_id: int
    community_name: str
    device_id: int
    device_uid: str
    family: str
    building_name: str | None
    location_name: str | None
    type: str
    type_zh: str
    type_en: str
    severity: Literal["critical", "major", "minor", "warning"]
    status: Literal["active", "cleared"]
    first_at: datetime
    last_at: datetime
    cleared_at: datetime | None
    cleared_by: str | None
    cleared_by_name: str | None = Field(description="The person's display name, or the system actor")
    acknowledged_by: str | None
    occurrences: int
    handling: Literal["dispatched", "on_site", "resolved", "closed"] | None
    result: Literal["real", "false_alarm", "test", "device_fault"] | None
    result_comment: str | None = Field(description="The comment of the handling result step")

    @classmethod
    def of(cls, row: HistoryRow, names: dict[str, str]) -> HistoryOut:
        try:
            info = ALARM_INFO[AlarmType(row.type)]
            zh, en = info.zh, info.en
        except ValueError:
            zh = en = row.type
        user = row.cleared_by.split(":", 1)[1] if row.cleared_by and ":" in row.cleared_by else None
        return cls(
            **{k: getattr(row, k) for k in cls.model_fields if k in HistoryRow.__dataclass_fields__},
            type_zh=zh,
            type_en=en,
            cleared_by_name=names.get(user, user) if user else None,
        )


class ChartThreshold(BaseModel):
    value: float
    direction: Literal["above", "below"] = Field(description="The alarm is raised above or below it")
    setting: str | None = Field(description="The alert setting it comes from, <family>.<field>")
    source: Literal["alarm", "settings"] = Field(
        description="alarm: recorded when the alarm was raised; settings: the community's setting now"
    )


class ChartSeries(BaseModel):
    metric: str
    channel: int
    label_zh: str
    label_en: str
    unit: str = Field(description="Empty for states (0/1) and counts")
    trigger: bool = Field(description="The reading that raised the alarm")
    threshold: ChartThreshold | None = None


class AlarmChart(BaseModel):
    """What the alarm detail charts: the window around the alarm and the device's metrics, the
    triggering one first with its threshold. Fetch each series from
    `/devices/{device_id}/telemetry?metric=&channel=&since=&until=` (hourly rollups for long windows)."""

    alarm_id: int
    device_id: int
    since: datetime
    until: datetime
    series: list[ChartSeries]


class AlarmTypeOut(BaseModel):
    type: str
    zh: str
    en: str
    severity: Literal["critical", "major", "minor", "warning"]
