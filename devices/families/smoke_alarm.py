"""Smoke alarms (独立式/联网感烟) and electrical-fire detectors (电气火灾监控). standards.md §3."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field

from devices.envelope import DeviceTime
from devices.families.common import Bool, CodeInfo, Num, Percent, Seconds, TempC, Wire

ResidualMa = Annotated[float, Field(strict=True, ge=0, le=10_000, allow_inf_nan=False)]


class State(StrEnum):
    NORMAL = "normal"
    ALARM = "alarm"
    FAULT = "fault"
    TEST = "test"
    SILENCED = "silenced"


STATE_INFO: dict[State, CodeInfo] = {
    State.NORMAL: CodeInfo("正常", "Normal"),
    State.ALARM: CodeInfo("火警", "Fire alarm"),
    State.FAULT: CodeInfo("故障", "Fault"),
    State.TEST: CodeInfo("自检", "Self-test"),
    State.SILENCED: CodeInfo("消音", "Silenced"),
}


class FaultCode(StrEnum):
    LOW_BATTERY = "low_battery"
    SENSOR_FAULT = "sensor_fault"
    TAMPER = "tamper"
    REMOVED = "removed"
    CHAMBER_DIRTY = "chamber_dirty"
    COMM_FAULT = "comm_fault"


FAULT_INFO: dict[FaultCode, CodeInfo] = {
    FaultCode.LOW_BATTERY: CodeInfo("电池欠压", "Low battery"),
    FaultCode.SENSOR_FAULT: CodeInfo("传感器故障", "Sensor fault"),
    FaultCode.TAMPER: CodeInfo("防拆报警", "Tamper"),
    FaultCode.REMOVED: CodeInfo("探测器被拆除", "Detector removed"),
    FaultCode.CHAMBER_DIRTY: CodeInfo("迷宫污染", "Smoke chamber dirty"),
    FaultCode.COMM_FAULT: CodeInfo("通信故障", "Communication fault"),
}


class AlarmKind(StrEnum):
    SMOKE = "smoke"
    RESIDUAL_CURRENT = "residual_current"  # electrical-fire detector
    CABLE_TEMPERATURE = "cable_temperature"  # electrical-fire detector
    MANUAL_CALL_POINT = "manual_call_point"  # 手动火灾报警按钮: a fire alarm signal of its own (GB 50116)


ALARM_KIND_INFO: dict[AlarmKind, CodeInfo] = {
    AlarmKind.SMOKE: CodeInfo("烟雾火警", "Smoke fire alarm"),
    AlarmKind.RESIDUAL_CURRENT: CodeInfo("剩余电流超限", "Residual current over limit"),
    AlarmKind.CABLE_TEMPERATURE: CodeInfo("电缆温度超限", "Cable temperature over limit"),
    AlarmKind.MANUAL_CALL_POINT: CodeInfo("手动报警按钮火警", "Manual call point fire alarm"),
}


class Telemetry(Wire):
    state: State
    battery_pct: Percent | None = Field(default=None, description="None for mains-powered detectors")
    battery_checked_at: DeviceTime | None = Field(
        default=None, description="Last battery self-check (GB 20517-2025 §5.11.1: period ≤ 24 h)"
    )
    residual_current_ma: ResidualMa | None = Field(default=None, description="Electrical-fire detectors, mA")
    cable_temp_c: TempC | None = Field(default=None, description="Electrical-fire detectors, °C")


class Alarm(Wire):
    type: Literal["alarm"]
    kind: AlarmKind = AlarmKind.SMOKE
    value: Num | None = Field(default=None, description="mA or °C for electrical-fire alarms")
    test: Bool = Field(
        default=False, description="The alarm of a test (button or remote test): never a fire alarm"
    )


class Cleared(Wire):
    type: Literal["cleared"]
    kind: AlarmKind = AlarmKind.SMOKE


class Fault(Wire):
    type: Literal["fault"]
    code: FaultCode
    active: Bool


class SelfTest(Wire):
    type: Literal["self_test"]
    ok: Bool


class Silenced(Wire):
    type: Literal["silenced"]
    duration_s: Seconds | None = None
    by: Literal["button", "command"] = "button"


Event = Annotated[Alarm | Cleared | Fault | SelfTest | Silenced, Field(discriminator="type")]


class Silence(Wire):
    """Silence the local sounder. Never suppresses the fire alarm upstream (domain.md §3)."""

    command: Literal["silence"]
    duration_s: int = Field(default=600, strict=True, ge=1, le=8 * 3600)


Command = Annotated[Silence, Field(discriminator="command")]


class Defaults(Wire):
    """Descriptions end with their source as standards.md labels it: "text — [LABEL] source"."""

    low_battery_pct: float = Field(
        default=20.0,
        description="Low-battery warning, % — [NOT FOUND] no normative percentage (the device's own "
        "battery-fault signal, GB 20517-2025 §5.11.1, is reported as a low_battery fault)",
    )
    battery_check_max_s: int = Field(
        default=86_400,
        description="A battery self-check (battery_checked_at) older than this is overdue, s — [S] "
        "GB 20517-2025 §5.11.1: battery voltage self-check at power-up and at least every 24 h",
    )
    battery_silence_s: int = Field(
        default=7 * 3600,
        description="Battery-fault silence: the low-battery alarm is notified again after it, s — [S] "
        "GB 20517-2025 §5.11.2: battery-fault silence (7 ± 1) h",
    )
    battery_silence_tolerance_s: int = Field(
        default=3600,
        description="A battery-fault silence longer than battery_silence_s plus this is a finding, s — "
        "[S] GB 20517-2025 §5.11.2: (7 ± 1) h",
    )
    residual_current_alarm_ma: float = Field(
        default=300.0,
        description="Electrical-fire residual current alarm, mA — [S] GB 50116-2013 条文说明 §9.2.3: "
        "300–500 mA recommended",
    )
    cable_temp_alarm_c: float = Field(
        default=70.0,
        description="Cable temperature alarm, °C — [NOT FOUND] GB 14287.3 set ranges not retrieved; "
        "configurable",
    )
    heartbeat_s: int = Field(
        default=3600,
        description="Telemetry/heartbeat period, s — [NOT FOUND] no vendor figure retrieved; hourly "
        "reports, configurable",
    )
    missed_heartbeats: int = Field(
        default=3,
        description="Missed heartbeats before offline — [V] vendor practice 2–3 (domain.md §3: AP3000 2, "
        "GB/T 28181 3)",
    )


DEFAULTS = Defaults()


def points(t: Telemetry) -> list[tuple[str, int, float]]:
    out: list[tuple[str, int, float]] = [("alarm", 0, float(t.state is State.ALARM))]
    if t.battery_pct is not None:
        out.append(("battery_pct", 0, t.battery_pct))
    if t.residual_current_ma is not None:
        out.append(("residual_current_ma", 0, t.residual_current_ma))
    if t.cable_temp_c is not None:
        out.append(("cable_temp_c", 0, t.cable_temp_c))
    return out
