"""Public lighting: a lamp or a lamp controller (公共照明). standards.md §7."""

from __future__ import annotations

import re
from datetime import time
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

    def covers(self, local: time) -> bool:
        """Whether the lamp is scheduled on at local time `local`; a window may cross midnight, and
        an entry whose on and off times are equal is empty."""
        on, off = time.fromisoformat(self.on_at), time.fromisoformat(self.off_at)
        return (on <= local < off) if on <= off else (local >= on or local < off)


class Telemetry(Wire):
    on: Bool
    dim_pct: Percent = Field(description="Dim level, % (100 = full)")
    power_w: LampWatts
    current_a: float = Field(strict=True, ge=0, le=30, allow_inf_nan=False)
    voltage_v: MainsVolts | None = None
    rated_power_w: LampWatts | None = Field(default=None, description="Nameplate power, for lamp-out checks")
    mode: Mode
    schedule: list[ScheduleEntry] | None = Field(
        default=None,
        max_length=24,
        description="The controller's own time schedule in force (local times); when reported, a "
        "scheduled lamp is due on by it rather than by the community's night",
    )


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


class Schedule(Wire):
    command: Literal["schedule"]
    entries: list[ScheduleEntry] = Field(min_length=1, max_length=24)


Command = Annotated[Set | ForceOn | Schedule, Field(discriminator="command")]


class Defaults(Wire):
    """Lamp-out rules. Descriptions end with their source label (standards.md §0): text — [LABEL] source."""

    lamp_out_current_ratio: float = Field(
        default=0.3,
        description="Lamp out when lit and drawing less than this × its expected power (rated power × "
        "dim level) — [NOT FOUND]: configurable (standards.md §7, lamp-out detection rule)",
    )
    lamp_out_confirm_s: float = Field(
        default=300.0,
        description="Lamp-out confirmation time, s (the single-lamp controller spec asks for a configurable "
        "alarm persistence time and gives no value) — [NOT FOUND]: configurable",
    )
    night_sun_elevation_deg: float = Field(
        default=-6.0,
        ge=-18.0,
        le=0.0,
        description="A scheduled lamp with no schedule of its own is due on while the sun is lower than "
        "this at the community's location, degrees (−0.833 = sunset; −6 = end of civil twilight, about "
        "25 min after sunset, the margin for photocells and astronomical clocks) — [NOT FOUND] "
        "normatively; configurable",
    )
    night_start: str = Field(
        default="18:30",
        description="Night start (lamps due on), local time, used only when the community has no "
        "location in the registry — [NOT FOUND]: configurable",
    )
    night_end: str = Field(
        default="06:00",
        description="Night end, local time, used only when the community has no location in the "
        "registry — [NOT FOUND]: configurable",
    )
    force_on_deadline_s: float = Field(
        default=3.0, description="Fire linkage → lamp forced on, s — [S2] GB 50166-2019 (3 s linkage)"
    )
    heartbeat_s: int = Field(default=300, description="Telemetry/heartbeat period, s — [V] vendor practice")
    missed_heartbeats: int = Field(default=3, description="Missed heartbeats before offline — [V] 2–3")


DEFAULTS = Defaults()


def points(t: Telemetry) -> list[tuple[str, int, float]]:
    return [
        ("on", 0, float(t.on)),
        ("dim_pct", 0, t.dim_pct),
        ("power_w", 0, t.power_w),
        ("current_a", 0, t.current_a),
    ]
