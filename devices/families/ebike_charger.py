"""E-bike charging post (充电桩/充电柜) with N ports, optionally a host with a leakage breaker.

Codes follow the AP3000 ("DNY") protocol v8.6 [V] summarised in standards.md §1.2; the vendor number
is kept in each `CodeInfo` so a gateway can translate. Thresholds: standards.md §1.1–1.3.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, model_validator

from devices.families.common import (
    Bool,
    CodeInfo,
    DurationS,
    Int,
    MainsVolts,
    Num,
    Seconds,
    TempC,
    Watts,
    Wire,
    by_vendor_code,
    ensure_unique,
)

PORTS_MAX = 32
PortNo = Annotated[int, Field(strict=True, ge=1, le=PORTS_MAX)]
LeakageMa = Annotated[float, Field(strict=True, ge=0, le=10_000, allow_inf_nan=False)]
KWh = Annotated[float, Field(strict=True, ge=0, le=1_000, allow_inf_nan=False)]


class PortState(StrEnum):
    IDLE = "idle"
    CHARGING = "charging"
    PLUGGED = "plugged"  # charger plugged, session not started
    FULL = "full"
    CANNOT_METER = "cannot_meter"
    FLOAT = "float"  # top-up (涓流) after full
    MEMORY_FAULT = "memory_fault"
    SPRING_STUCK = "spring_stuck"
    FUSE_BLOWN = "fuse_blown"
    RELAY_WELDED = "relay_welded"
    HALL_SENSOR_FAULT = "hall_sensor_fault"
    PRECHECK_RELAY_FAULT = "precheck_relay_fault"
    SHORT_CIRCUIT = "short_circuit"
    RELAY_WELDED_PRECHECK = "relay_welded_precheck"
    CARD_CHIP_FAULT = "card_chip_fault"
    DETECTION_CIRCUIT_FAULT = "detection_circuit_fault"


# AP3000 port-status heartbeat (0x21) codes [V]
PORT_STATE_INFO: dict[PortState, CodeInfo] = {
    PortState.IDLE: CodeInfo("空闲", "Idle", 0x00),
    PortState.CHARGING: CodeInfo("充电中", "Charging", 0x01),
    PortState.PLUGGED: CodeInfo("已插充电器未充电", "Plugged, not charging", 0x02),
    PortState.FULL: CodeInfo("已充满", "Full", 0x03),
    PortState.CANNOT_METER: CodeInfo("无法计量", "Cannot meter", 0x04),
    PortState.FLOAT: CodeInfo("浮充", "Float / top-up", 0x05),
    PortState.MEMORY_FAULT: CodeInfo("存储器损坏", "Memory damaged", 0x06),
    PortState.SPRING_STUCK: CodeInfo("插座弹片卡住", "Socket spring stuck", 0x07),
    PortState.FUSE_BLOWN: CodeInfo("接触不良或保险丝烧断", "Poor contact / fuse blown", 0x08),
    PortState.RELAY_WELDED: CodeInfo("继电器粘连", "Relay welded", 0x09),
    PortState.HALL_SENSOR_FAULT: CodeInfo("霍尔开关损坏", "Hall sensor broken", 0x0A),
    PortState.PRECHECK_RELAY_FAULT: CodeInfo("预检继电器坏或保险丝断", "Pre-check: relay/fuse bad", 0x0B),
    PortState.SHORT_CIRCUIT: CodeInfo("预检负载短路", "Pre-check: load short circuit", 0x0D),
    PortState.RELAY_WELDED_PRECHECK: CodeInfo("预检继电器粘连", "Pre-check: relay welded", 0x0E),
    PortState.CARD_CHIP_FAULT: CodeInfo("刷卡芯片损坏", "Card chip fault", 0x0F),
    PortState.DETECTION_CIRCUIT_FAULT: CodeInfo("检测电路故障", "Detection circuit fault", 0x10),
}
PORT_STATE_BY_VENDOR_CODE = by_vendor_code(PORT_STATE_INFO)

# States that are faults (standards.md §1.3: codes 4, 6–0x10 must surface as alarms).
FAULT_PORT_STATES = frozenset(
    s for s, info in PORT_STATE_INFO.items() if info.vendor_code is not None and info.vendor_code >= 4
) - {PortState.FLOAT}
# States in which the charge is complete: power must be cut after the float window.
COMPLETE_PORT_STATES = frozenset({PortState.FULL, PortState.FLOAT})


class StopReason(StrEnum):
    FULL = "full"
    MAX_TIME = "max_time"
    PRESET_TIME = "preset_time"
    PRESET_ENERGY = "preset_energy"
    USER_UNPLUG = "user_unplug"
    OVERLOAD = "overload"
    SERVER_STOP = "server_stop"
    DYNAMIC_OVERLOAD = "dynamic_overload"
    POWER_TOO_LOW = "power_too_low"
    AMBIENT_OVER_TEMP = "ambient_over_temp"
    PORT_OVER_TEMP = "port_over_temp"
    OVER_CURRENT = "over_current"
    UNPLUG_SPRING_STUCK = "unplug_spring_stuck"
    NO_POWER = "no_power"
    PRECHECK_FAULT = "precheck_fault"
    WATER = "water"
    FIRE_EXTINGUISHING = "fire_extinguishing"
    FIRE_SYSTEM = "fire_system"
    MEMORY_ERROR = "memory_error"
    OVER_VOLTAGE = "over_voltage"
    UNDER_VOLTAGE = "under_voltage"
    LOW_POWER_CUT = "low_power_cut"
    # not in AP3000's settlement codes, but protective stops the compliance check needs to recognise
    SHORT_CIRCUIT = "short_circuit"
    LEAKAGE = "leakage"
    SMOKE = "smoke"


# AP3000 settlement (0x03) stop reasons [V]
STOP_REASON_INFO: dict[StopReason, CodeInfo] = {
    StopReason.FULL: CodeInfo("充满自停", "Full, auto-stop", 0x01),
    StopReason.MAX_TIME: CodeInfo("达到最大充电时间", "Maximum charge time reached", 0x02),
    StopReason.PRESET_TIME: CodeInfo("达到预设时间", "Preset time reached", 0x03),
    StopReason.PRESET_ENERGY: CodeInfo("达到预设电量", "Preset energy reached", 0x04),
    StopReason.USER_UNPLUG: CodeInfo("用户拔出", "User unplugged", 0x05),
    StopReason.OVERLOAD: CodeInfo("负载过大(过载)", "Overload", 0x06),
    StopReason.SERVER_STOP: CodeInfo("服务器控制停止", "Stopped by server", 0x07),
    StopReason.DYNAMIC_OVERLOAD: CodeInfo("动态过载", "Dynamic overload", 0x08),
    StopReason.POWER_TOO_LOW: CodeInfo("功率过小", "Power too low", 0x09),
    StopReason.AMBIENT_OVER_TEMP: CodeInfo("环境温度过高", "Ambient over-temperature", 0x0A),
    StopReason.PORT_OVER_TEMP: CodeInfo("端口温度过高", "Port over-temperature", 0x0B),
    StopReason.OVER_CURRENT: CodeInfo("过流", "Over-current", 0x0C),
    StopReason.UNPLUG_SPRING_STUCK: CodeInfo("拔出(弹片卡住)", "Unplugged (spring stuck)", 0x0D),
    StopReason.NO_POWER: CodeInfo("无功率(接触不良/保险丝)", "No power (contact/fuse)", 0x0E),
    StopReason.PRECHECK_FAULT: CodeInfo("预检继电器/保险丝故障", "Pre-check relay/fuse fault", 0x0F),
    StopReason.WATER: CodeInfo("水浸断电", "Water immersion", 0x10),
    StopReason.FIRE_EXTINGUISHING: CodeInfo("灭火结算", "Fire-extinguishing settlement", 0x11),
    StopReason.FIRE_SYSTEM: CodeInfo("消防联动停止", "Fire-system triggered stop", 0x18),
    StopReason.MEMORY_ERROR: CodeInfo("存储器错误", "Memory error", 0x19),
    StopReason.OVER_VOLTAGE: CodeInfo("过压", "Over-voltage", 0x1A),
    StopReason.UNDER_VOLTAGE: CodeInfo("欠压", "Under-voltage", 0x1B),
    StopReason.LOW_POWER_CUT: CodeInfo("低功率断电", "Low-power cut", 0x1C),
    StopReason.SHORT_CIRCUIT: CodeInfo("短路保护", "Short-circuit protection"),
    StopReason.LEAKAGE: CodeInfo("漏电保护", "Leakage protection"),
    StopReason.SMOKE: CodeInfo("烟雾报警断电", "Smoke alarm cut"),
}
STOP_REASON_BY_VENDOR_CODE = by_vendor_code(STOP_REASON_INFO)

# Stop reasons that are evidence of an automatic protective cut (standards.md §1.3).
PROTECTIVE_STOP_REASONS = frozenset(
    {
        StopReason.FULL,
        StopReason.MAX_TIME,
        StopReason.OVERLOAD,
        StopReason.DYNAMIC_OVERLOAD,
        StopReason.AMBIENT_OVER_TEMP,
        StopReason.PORT_OVER_TEMP,
        StopReason.OVER_CURRENT,
        StopReason.WATER,
        StopReason.FIRE_EXTINGUISHING,
        StopReason.FIRE_SYSTEM,
        StopReason.OVER_VOLTAGE,
        StopReason.UNDER_VOLTAGE,
        StopReason.SHORT_CIRCUIT,
        StopReason.LEAKAGE,
        StopReason.SMOKE,
    }
)


class FaultCode(StrEnum):
    FUSE_BLOWN = "fuse_blown"
    RELAY_WELDED = "relay_welded"
    SHORT_CIRCUIT = "short_circuit"
    SENSOR_FAULT = "sensor_fault"
    METER_FAULT = "meter_fault"
    MEMORY_FAULT = "memory_fault"
    SPRING_STUCK = "spring_stuck"
    CARD_CHIP_FAULT = "card_chip_fault"
    DETECTION_CIRCUIT_FAULT = "detection_circuit_fault"
    THERMAL_FUSE = "thermal_fuse"  # hot-melt trigger (AP3000 alarm 0x42 code 3)
    BREAKER_FAULT = "breaker_fault"


FAULT_INFO: dict[FaultCode, CodeInfo] = {
    FaultCode.FUSE_BLOWN: CodeInfo("保险丝烧断/接触不良", "Fuse blown / poor contact", 0x08),
    FaultCode.RELAY_WELDED: CodeInfo("继电器粘连", "Relay welded", 0x09),
    FaultCode.SHORT_CIRCUIT: CodeInfo("负载短路", "Load short circuit", 0x0D),
    FaultCode.SENSOR_FAULT: CodeInfo("传感器(霍尔)故障", "Sensor (hall) fault", 0x0A),
    FaultCode.METER_FAULT: CodeInfo("无法计量", "Cannot meter", 0x04),
    FaultCode.MEMORY_FAULT: CodeInfo("存储器损坏", "Memory damaged", 0x06),
    FaultCode.SPRING_STUCK: CodeInfo("插座弹片卡住", "Socket spring stuck", 0x07),
    FaultCode.CARD_CHIP_FAULT: CodeInfo("刷卡芯片损坏", "Card chip fault", 0x0F),
    FaultCode.DETECTION_CIRCUIT_FAULT: CodeInfo("检测电路故障", "Detection circuit fault", 0x10),
    FaultCode.THERMAL_FUSE: CodeInfo("热熔断器动作", "Thermal fuse triggered"),
    FaultCode.BREAKER_FAULT: CodeInfo("断路器故障", "Breaker fault"),
}
# Which fault code a fault port state corresponds to (for the silent-fault check).
FAULT_OF_PORT_STATE: dict[PortState, FaultCode] = {
    PortState.CANNOT_METER: FaultCode.METER_FAULT,
    PortState.MEMORY_FAULT: FaultCode.MEMORY_FAULT,
    PortState.SPRING_STUCK: FaultCode.SPRING_STUCK,
    PortState.FUSE_BLOWN: FaultCode.FUSE_BLOWN,
    PortState.RELAY_WELDED: FaultCode.RELAY_WELDED,
    PortState.HALL_SENSOR_FAULT: FaultCode.SENSOR_FAULT,
    PortState.PRECHECK_RELAY_FAULT: FaultCode.FUSE_BLOWN,
    PortState.SHORT_CIRCUIT: FaultCode.SHORT_CIRCUIT,
    PortState.RELAY_WELDED_PRECHECK: FaultCode.RELAY_WELDED,
    PortState.CARD_CHIP_FAULT: FaultCode.CARD_CHIP_FAULT,
    PortState.DETECTION_CIRCUIT_FAULT: FaultCode.DETECTION_CIRCUIT_FAULT,
}


class AlarmKind(StrEnum):
    POWER_LOSS = "power_loss"
    WATER = "water"
    THERMAL_FUSE = "thermal_fuse"
    SMOKE = "smoke"
    TEMPERATURE = "temperature"
    WATER_LEVEL = "water_level"
    DOOR = "door"  # cabinet door popped


# AP3000 alarm push (0x42) codes [V]
ALARM_KIND_INFO: dict[AlarmKind, CodeInfo] = {
    AlarmKind.POWER_LOSS: CodeInfo("市电掉电", "Mains power loss", 1),
    AlarmKind.WATER: CodeInfo("水浸", "Water immersion", 2),
    AlarmKind.THERMAL_FUSE: CodeInfo("热熔断器动作", "Thermal fuse triggered", 3),
    AlarmKind.SMOKE: CodeInfo("烟雾报警", "Smoke alarm", 4),
    AlarmKind.TEMPERATURE: CodeInfo("温度报警", "Temperature alarm", 5),
    AlarmKind.WATER_LEVEL: CodeInfo("水位报警", "Water level", 6),
    AlarmKind.DOOR: CodeInfo("柜门弹开", "Cabinet door open", 7),
}
ALARM_KIND_BY_VENDOR_CODE = by_vendor_code(ALARM_KIND_INFO)

# ---------------------------------------------------------------------------------------------
# Telemetry


class Protection(Wire):
    """The protection settings in force on the post (a disabled protection is a compliance finding)."""

    full_auto_stop: Bool = Field(description="Stop charging when full (充满自停)")
    over_temp_cutoff: Bool = Field(description="Cut a port on over-temperature")
    over_temp_c: Num = Field(ge=30, le=150, description="Port/ambient cut-off temperature, °C")
    port_power_limit_w: Num = Field(gt=0, le=10_000, description="Per-port overload power, W")
    max_session_s: Int = Field(ge=60, le=7 * 86_400, description="Maximum session duration, s")
    float_time_s: Int = Field(default=3600, ge=0, le=86_400, description="Allowed float/top-up time, s")
    leakage_trip_ma: Num | None = Field(
        default=None, ge=1, le=3_000, description="Leakage breaker trip current, mA (None: no breaker)"
    )
    over_voltage_v: Num | None = Field(default=None, ge=100, le=500, description="Over-voltage cut, V")
    under_voltage_v: Num | None = Field(default=None, ge=0, le=250, description="Under-voltage cut, V")


class Port(Wire):
    port: PortNo
    state: PortState
    relay_on: Bool = Field(description="Port output relay closed (power flowing is possible)")
    voltage_v: MainsVolts
    current_a: float = Field(strict=True, ge=0, le=63, allow_inf_nan=False)
    power_w: float = Field(strict=True, ge=0, le=15_000, allow_inf_nan=False)
    session_energy_kwh: KWh = Field(description="Energy of the current/last session, kWh")
    port_temp_c: TempC
    fault_code: FaultCode | None = None
    session_s: DurationS = Field(description="Duration of the current session, s")


class Telemetry(Wire):
    ports: list[Port] = Field(min_length=1, max_length=PORTS_MAX)
    ambient_temp_c: TempC
    smoke: Bool = Field(description="Post smoke sensor in alarm")
    leakage_ma: LeakageMa | None = Field(default=None, description="Residual (leakage) current, mA")
    breaker_closed: Bool | None = Field(default=None, description="Host leakage breaker closed (None: none)")
    total_power_w: Watts | None = None
    protection: Protection

    @model_validator(mode="after")
    def _unique_ports(self) -> Telemetry:
        ensure_unique([p.port for p in self.ports], "port")
        return self


# ---------------------------------------------------------------------------------------------
# Events


class SessionStart(Wire):
    type: Literal["session_start"]
    port: PortNo
    session_id: str | None = Field(default=None, max_length=64)


class SessionStop(Wire):
    type: Literal["session_stop"]
    port: PortNo
    reason: StopReason
    session_id: str | None = Field(default=None, max_length=64)
    energy_kwh: KWh | None = None
    duration_s: Seconds | None = None


class Fault(Wire):
    type: Literal["fault"]
    port: int = Field(default=0, strict=True, ge=0, le=PORTS_MAX, description="0 = the post itself")
    code: FaultCode
    active: Bool


class Alarm(Wire):
    type: Literal["alarm"]
    kind: AlarmKind
    active: Bool
    port: int = Field(default=0, strict=True, ge=0, le=PORTS_MAX, description="0 = the post itself")
    value: Num | None = Field(default=None, description="e.g. the temperature in °C for kind=temperature")


Event = Annotated[SessionStart | SessionStop | Fault | Alarm, Field(discriminator="type")]

# ---------------------------------------------------------------------------------------------
# Commands


class StopPort(Wire):
    command: Literal["stop_port"]
    port: PortNo


class CutPower(Wire):
    """Open the post's main breaker/contactor: every port loses power."""

    command: Literal["cut_power"]


class SetLimits(Wire):
    command: Literal["set_limits"]
    full_auto_stop: Bool | None = None
    over_temp_cutoff: Bool | None = None
    over_temp_c: Num | None = Field(default=None, ge=30, le=150)
    port_power_limit_w: Num | None = Field(default=None, gt=0, le=10_000)
    max_session_s: Int | None = Field(default=None, ge=60, le=7 * 86_400)
    float_time_s: Int | None = Field(default=None, ge=0, le=86_400)
    leakage_trip_ma: Num | None = Field(default=None, ge=1, le=3_000)


Command = Annotated[StopPort | CutPower | SetLimits, Field(discriminator="command")]

# ---------------------------------------------------------------------------------------------
# Default thresholds (the alert engine's settings start from these)


class Defaults(Wire):
    port_over_temp_c: float = Field(
        default=80.0, description="Port over-temperature alarm/cut, °C — AP3000 default [V] (§1.2)"
    )
    over_temp_confirm_s: float = Field(
        default=30.0, description="Over-temperature confirmation time, s — AP3000 [V] (§1.2)"
    )
    ambient_over_temp_c: float = Field(
        default=80.0, description="Ambient over-temperature alarm, °C — AP3000 [V] (§1.2)"
    )
    cabinet_over_temp_c: float = Field(
        default=60.0, description="Charging-cabinet cut-off temperature, °C — Shenzhen deployment [V] (§1.1)"
    )
    port_power_limit_w: float = Field(
        default=2000.0, description="Per-port overload power, W — AP3000 0x85 multi-port default [V]"
    )
    overload_confirm_s: float = Field(
        default=30.0, description="Overload confirmation time, s — AP3000 dynamic-overload ident. 30 s [V]"
    )
    port_current_limit_a: float = Field(
        default=10.0, description="Per-port over-current, A — [NOT FOUND] normative; X10P used 5.5 A [V]"
    )
    max_session_s: int = Field(
        default=36_000,
        description="Maximum session, s — Shenzhen 2015 notice '原则上不应超过10 h' [S]; "
        "AP3000 default 36 000 s [V]; Beijing guide '不宜超过8 h' [S] is the stricter option (28 800)",
    )
    float_time_s: int = Field(
        default=3600, description="Allowed float/top-up after full, s — AP3000 0x83/0x84 [V]"
    )
    full_power_w: float = Field(
        default=45.0, description="Below this a charging port counts as full, W — X10P firmware [V]"
    )
    leakage_trip_ma: float = Field(
        default=30.0,
        description="Leakage trip, mA — [NOT FOUND] for e-bike posts: a configurable default "
        "(30 mA is the usual personal-protection RCD rating)",
    )
    over_voltage_v: float = Field(default=270.0, description="Over-voltage, V — AP3000 0x85 [V]")
    under_voltage_v: float = Field(default=100.0, description="Under-voltage, V — AP3000 0x85 [V]")
    cutoff_deadline_s: float = Field(
        default=60.0,
        description="Time allowed from a trigger to the port's power being cut, s — [NOT FOUND] "
        "normatively: a configurable default",
    )
    heartbeat_s: int = Field(default=180, description="Port-status heartbeat period, s — AP3000 0x21 [V]")
    missed_heartbeats: int = Field(default=2, description="Missed heartbeats before offline — AP3000 [V]")


DEFAULTS = Defaults()

# ---------------------------------------------------------------------------------------------
# Points kept for charts and rollups


def points(t: Telemetry) -> list[tuple[str, int, float]]:
    out: list[tuple[str, int, float]] = [
        ("ambient_temp_c", 0, t.ambient_temp_c),
        ("smoke", 0, float(t.smoke)),
    ]
    if t.leakage_ma is not None:
        out.append(("leakage_ma", 0, t.leakage_ma))
    if t.breaker_closed is not None:
        out.append(("breaker_closed", 0, float(t.breaker_closed)))
    if t.total_power_w is not None:
        out.append(("total_power_w", 0, t.total_power_w))
    for p in t.ports:
        n = p.port
        out += [
            ("voltage_v", n, p.voltage_v),
            ("current_a", n, p.current_a),
            ("power_w", n, p.power_w),
            ("session_energy_kwh", n, p.session_energy_kwh),
            ("port_temp_c", n, p.port_temp_c),
            ("relay_on", n, float(p.relay_on)),
            ("session_s", n, float(p.session_s)),
        ]
    return out
