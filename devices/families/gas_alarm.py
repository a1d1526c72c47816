"""Kitchen / common-area combustible-gas (and CO) alarms with an optional shut-off valve. standards.md §2."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, model_validator

from devices.families.common import Bool, CodeInfo, Percent, Wire

CoPpm = Annotated[float, Field(strict=True, ge=0, le=10_000, allow_inf_nan=False)]


class State(StrEnum):
    NORMAL = "normal"
    LOW_ALARM = "low_alarm"
    HIGH_ALARM = "high_alarm"
    FAULT = "fault"
    WARMUP = "warmup"


STATE_INFO: dict[State, CodeInfo] = {
    State.NORMAL: CodeInfo("正常", "Normal"),
    State.LOW_ALARM: CodeInfo("低限报警", "Low alarm"),
    State.HIGH_ALARM: CodeInfo("高限报警", "High alarm"),
    State.FAULT: CodeInfo("故障", "Fault"),
    State.WARMUP: CodeInfo("预热", "Warming up"),
}


class Valve(StrEnum):
    OPEN = "open"
    CLOSED = "closed"
    NONE = "none"  # no valve fitted


class Gas(StrEnum):
    COMBUSTIBLE = "combustible"  # %LEL
    CO = "co"  # ppm


class FaultCode(StrEnum):
    SENSOR = "sensor"
    VALVE = "valve"
    POWER = "power"
    SENSOR_EXPIRED = "sensor_expired"


FAULT_INFO: dict[FaultCode, CodeInfo] = {
    FaultCode.SENSOR: CodeInfo("传感器故障", "Sensor fault"),
    FaultCode.VALVE: CodeInfo("切断阀故障", "Shut-off valve fault"),
    FaultCode.POWER: CodeInfo("电源故障", "Power fault"),
    FaultCode.SENSOR_EXPIRED: CodeInfo("传感器寿命到期", "Sensor end of life"),
}


class Telemetry(Wire):
    state: State
    lel_pct: Percent = Field(description="Combustible gas, % of the lower explosive limit")
    co_ppm: CoPpm | None = Field(default=None, description="CO, ppm (composite detectors)")
    valve: Valve


class Low(Wire):
    type: Literal["low"]
    gas: Gas = Gas.COMBUSTIBLE
    lel_pct: Percent | None = None
    co_ppm: CoPpm | None = None


class High(Wire):
    type: Literal["high"]
    gas: Gas = Gas.COMBUSTIBLE
    lel_pct: Percent | None = None
    co_ppm: CoPpm | None = None


class Cleared(Wire):
    type: Literal["cleared"]
    gas: Gas = Gas.COMBUSTIBLE


class ValveClosed(Wire):
    type: Literal["valve_closed"]
    by: Literal["alarm", "command", "manual"] = "alarm"


class ValveOpened(Wire):
    """Opening is manual only (self-closing valves reset by hand, CJ/T 447-2014 [S2])."""

    type: Literal["valve_opened"]


class Fault(Wire):
    type: Literal["fault"]
    code: FaultCode
    active: Bool


Event = Annotated[Low | High | Cleared | ValveClosed | ValveOpened | Fault, Field(discriminator="type")]


class CloseValve(Wire):
    """Close the shut-off valve. There is no open command: reopening is manual only."""

    command: Literal["close_valve"]


Command = Annotated[CloseValve, Field(discriminator="command")]


class Defaults(Wire):
    """Descriptions end with their source as standards.md labels it: "text — [LABEL] source"."""

    low_alarm_lel_pct: float = Field(
        default=25.0,
        description="First-level (low) alarm, %LEL — [S] GB/T 50493-2019 §5.5.2: first level ≤ 25 %LEL "
        "(an industrial reference; the household set-point of GB 15322.2 was not found)",
    )
    high_alarm_lel_pct: float = Field(
        default=50.0,
        description="Second-level (high) alarm, %LEL — [S] GB/T 50493-2019 §5.5.2: second level ≤ 50 %LEL",
    )
    clear_hysteresis_lel_pct: float = Field(
        default=5.0,
        description="An LEL alarm clears below its threshold minus this, %LEL — [NOT FOUND] no source for "
        "a clear point; configurable",
    )
    co_low_ppm: float = Field(
        default=50.0, description="CO low alarm, ppm — [NOT FOUND] GB 15322.2 CO alarm points not retrieved"
    )
    co_high_ppm: float = Field(
        default=150.0, description="CO high alarm, ppm — [NOT FOUND] GB 15322.2 CO alarm points not retrieved"
    )
    co_clear_hysteresis_ppm: float = Field(
        default=10.0,
        description="A CO alarm clears below its threshold minus this, ppm — [NOT FOUND] no source for a "
        "clear point; configurable",
    )
    valve_command_deadline_s: float = Field(
        default=3.0,
        description="High alarm → close signal to the valve: if the valve is not closed by then, Yiju "
        "sends close_valve itself, s — [S2] GB 50166-2019: a linkage controller issues its start "
        "signal ≤ 3 s after the trigger",
    )
    valve_close_deadline_s: float = Field(
        default=30.0,
        description="High alarm → valve reported closed, else linkage_failed, s — [NOT FOUND] closing "
        "time of CJ/T 394-2018 valves not retrieved; sized for motorised (机械手) actuators, which "
        "take seconds to turn the valve: set the installed valve's rating",
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

    @model_validator(mode="after")
    def _close_after_command(self) -> Defaults:
        if self.valve_close_deadline_s < self.valve_command_deadline_s:
            raise ValueError("valve_close_deadline_s must not be shorter than valve_command_deadline_s")
        return self


DEFAULTS = Defaults()


def points(t: Telemetry) -> list[tuple[str, int, float]]:
    out: list[tuple[str, int, float]] = [("lel_pct", 0, t.lel_pct)]
    if t.co_ppm is not None:
        out.append(("co_ppm", 0, t.co_ppm))
    if t.valve is not Valve.NONE:
        out.append(("valve_closed", 0, float(t.valve is Valve.CLOSED)))
    return out
