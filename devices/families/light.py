"""Public lighting: a lamp or a lamp controller (公共照明). standards.md §7."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, field_validator

from devices.families.common import Bool, CodeInfo, MainsVolts, Percent, Wire

LampWatts = Annotated[float, Field(strict=True, ge=0, le=5_000, allow_inf_nan=False)]
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class Mode(StrEnum):
    SCHEDULE = "schedule"
    SENSOR = "sensor"
    MANUAL = "manual"
    FORCED = "forced"  # forced on by fire linkage (GB 50034-2013 §7.3.4)


MODE_INFO: dict[Mode, CodeInfo] = {
    Mode.SCHEDULE: CodeInfo("定时", "Schedule"),
    Mode.SENSOR: CodeInfo("感应", "Sensor"),
    Mode.MANUAL: CodeInfo("手动", "Manual"),
    Mode.FORCED: CodeInfo("强制点亮", "Forced on"),
}


class ControllerFault(StrEnum):
    COMM = "comm"
    POWER = "power"
    RELAY = "relay"
    CLOCK = "clock"


CONTROLLER_FAULT_INFO: dict[ControllerFault, CodeInfo] = {
    ControllerFault.COMM: CodeInfo("通信故障", "Communication fault"),
    ControllerFault.POWER: CodeInfo("电源故障", "Power fault"),
    ControllerFault.RELAY: CodeInfo("继电器故障", "Relay fault"),
    ControllerFault.CLOCK: CodeInfo("时钟故障", "Clock fault"),
}


class Telemetry(Wire):
    on: Bool
    dim_pct: Percent = Field(description="Dim level, % (100 = full)")
    power_w: LampWatts
    current_a: float = Field(strict=True, ge=0, le=30, allow_inf_nan=False)
    voltage_v: MainsVolts | None = None
    rated_power_w: LampWatts | None = Field(default=None, description="Nameplate power, for lamp-out checks")
    mode: Mode


class LampFailure(Wire):
    type: Literal["lamp_failure"]
    active: Bool


class ControllerFaultEvent(Wire):
    type: Literal["controller_fault"]
    code: ControllerFault
    active: Bool


Event = Annotated[LampFailure | ControllerFaultEvent, Field(discriminator="type")]


class Set(Wire):
    command: Literal["set"]
    on: Bool
    dim_pct: Percent | None = None


class ForceOn(Wire):
    """Force full light (fire linkage, GB 50034-2013 §7.3.4); `active=false` returns to the normal mode."""

    command: Literal["force_on"]
    active: Bool = True


class ScheduleEntry(Wire):
    on_at: str = Field(description="Local time HH:MM")
    off_at: str = Field(description="Local time HH:MM")
    dim_pct: Percent = 100.0

    @field_validator("on_at", "off_at")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        if not _HHMM.match(v):
            raise ValueError("expected HH:MM")
        return v


class Schedule(Wire):
    command: Literal["schedule"]
    entries: list[ScheduleEntry] = Field(min_length=1, max_length=24)


Command = Annotated[Set | ForceOn | Schedule, Field(discriminator="command")]


class Defaults(Wire):
    lamp_out_current_ratio: float = Field(
        default=0.3, description="Lamp out when on and power < this × rated power — [NOT FOUND]: configurable"
    )
    lamp_out_confirm_s: float = Field(
        default=300.0, description="Lamp-out confirmation time, s — [NOT FOUND]: configurable"
    )
    night_start: str = Field(
        default="18:30", description="Night (lamps expected on) starts, local — [NOT FOUND]: configurable"
    )
    night_end: str = Field(default="06:00", description="Night ends, local — [NOT FOUND]: configurable")
    working_rate_target_pct: float = Field(
        default=97.0, description="Lamp working rate (亮灯率) ≥ 97 % secondary roads — Chongqing scoring [S]"
    )
    force_on_deadline_s: float = Field(
        default=3.0, description="Fire linkage → forced on, s — GB 50166-2019 3 s [S2]"
    )
    heartbeat_s: int = Field(default=300, description="Telemetry/heartbeat period, s — vendor practice [V]")
    missed_heartbeats: int = Field(default=3, description="Missed heartbeats before offline — [V] 2–3")


DEFAULTS = Defaults()


def points(t: Telemetry) -> list[tuple[str, int, float]]:
    return [
        ("on", 0, float(t.on)),
        ("dim_pct", 0, t.dim_pct),
        ("power_w", 0, t.power_w),
        ("current_a", 0, t.current_a),
    ]
