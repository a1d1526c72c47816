"""E-bike charging post (充电桩/充电柜) with N ports, optionally a host with a leakage breaker.

Codes follow the AP3000 ("DNY") protocol v8.6 [V] summarised in standards.md §1.2; the vendor number
is kept in each `CodeInfo` so a gateway can translate. Thresholds: standards.md §1.1–1.3.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field, PrivateAttr, ValidationInfo, model_validator

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


# Readings refused one by one when outside their physical range (domain.md §5.2): the rest of the
# report still counts — one broken port sensor must not hide the post's smoke and leakage readings.
# `devices.catalog.accept` decodes such a report with the refused readings None and names them in
# `Telemetry.refused`; a device may never send null for them itself (`_readings_present`).
REFUSABLE_READINGS = frozenset(
    {"voltage_v", "current_a", "power_w", "port_temp_c", "ambient_temp_c", "cabinet_temp_c", "leakage_ma"}
)
REFUSED_CONTEXT = "refused_readings"  # validation context key that lets a refused reading be None
_PORT_READINGS = ("voltage_v", "current_a", "power_w", "port_temp_c")


def _number_only(schema: dict[str, Any]) -> None:
    """JSON Schema of a required reading: a number (None is only Yiju's mark of a refused reading)."""
    options = schema.pop("anyOf", None)
    if options:
        schema.update(next(o for o in options if o.get("type") != "null"))


_NUMBER = Field(json_schema_extra=_number_only)
VoltsReading = Annotated[MainsVolts | None, _NUMBER]
_PortAmps = Annotated[float, Field(strict=True, ge=0, le=63, allow_inf_nan=False)]
_PortWatts = Annotated[float, Field(strict=True, ge=0, le=15_000, allow_inf_nan=False)]
AmpsReading = Annotated[_PortAmps | None, _NUMBER]
WattsReading = Annotated[_PortWatts | None, _NUMBER]
TempReading = Annotated[TempC | None, _NUMBER]


class Port(Wire):
    port: PortNo
    state: PortState
    relay_on: Bool = Field(description="Port output relay closed (power flowing is possible)")
    voltage_v: VoltsReading
    current_a: AmpsReading
    power_w: WattsReading
    session_energy_kwh: KWh = Field(description="Energy of the current/last session, kWh")
    port_temp_c: TempReading
    fault_code: FaultCode | None = None
    session_s: DurationS = Field(description="Duration of the current session, s")


class Telemetry(Wire):
    ports: list[Port] = Field(min_length=1, max_length=PORTS_MAX)
    ambient_temp_c: TempReading
    cabinet_temp_c: TempC | None = Field(
        default=None, description="Internal temperature of a charging cabinet (充电柜), °C (None: open post)"
    )
    smoke: Bool = Field(description="Post smoke sensor in alarm")
    leakage_ma: LeakageMa | None = Field(default=None, description="Residual (leakage) current, mA")
    breaker_closed: Bool | None = Field(default=None, description="Host leakage breaker closed (None: none)")
    total_power_w: Watts | None = None
    protection: Protection
    _refused: dict[str, float] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _readings_present(self, info: ValidationInfo) -> Telemetry:
        ensure_unique([p.port for p in self.ports], "port")
        if not (info.context and info.context.get(REFUSED_CONTEXT)):
            if self.ambient_temp_c is None:
                raise ValueError("ambient_temp_c must be a number")
            for p in self.ports:
                for name in _PORT_READINGS:
                    if getattr(p, name) is None:
                        raise ValueError(f"ports[{p.port}].{name} must be a number")
        return self

    @property
    def refused(self) -> dict[str, float]:
        """Readings refused at the edge as outside their physical range (path → value sent)."""
        return self._refused


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


# Descriptions end with their source as standards.md labels it: "text — [LABEL] source" (one " — ").

_CUT_NF = "[NOT FOUND] no normative cut-off time (GB/T 42236.1 thresholds not retrieved)"


def _cutoff(default: float, trigger: str) -> Any:
    return Field(default=default, gt=0, description=f"{trigger} — {_CUT_NF}")


class Defaults(Wire):
    port_over_temp_c: float = Field(
        default=80.0,
        description="Port over-temperature alarm and cut-off, °C — [V] AP3000 protocol: port alarm "
        "temperature 80 °C (standards.md §1.2)",
    )
    over_temp_confirm_s: float = Field(
        default=30.0,
        description="Over-temperature must last this long to be a trigger and raise its alarm, s — [V] "
        "AP3000 protocol: 30 s confirmation (standards.md §1.2)",
    )
    ambient_over_temp_c: float = Field(
        default=80.0,
        description="Ambient (post) over-temperature alarm and cut-off, °C — [V] AP3000 protocol: "
        "ambient alarm temperature 80 °C (standards.md §1.2)",
    )
    cabinet_over_temp_c: float = Field(
        default=60.0,
        description="Charging-cabinet internal temperature that cuts the cabinet, °C — [V] Shenzhen "
        "deployment: cut at 60 °C (standards.md §1.1)",
    )
    port_power_limit_w: float = Field(
        default=2000.0,
        description="Per-port overload power, W — [V] AP3000 0x85: 2000 W per port on multi-port "
        "posts (standards.md §1.2)",
    )
    overload_confirm_s: float = Field(
        default=30.0,
        description="Overload or over-current must last this long to be a trigger, s — [V] AP3000 "
        "dynamic-overload identification 30 s (standards.md §1.2)",
    )
    port_current_limit_a: float = Field(
        default=10.0,
        description="Per-port over-current, A — [NOT FOUND] no normative per-port current; 10 A "
        "matches the 2000 W port limit at 220 V with margin (X10P firmware uses 5.5 A)",
    )
    voltage_confirm_s: float = Field(
        default=10.0,
        description="Over/under-voltage must last this long to be a trigger, s — [NOT FOUND] AP3000 "
        "gives the OV/UV limits, not a confirmation time",
    )
    max_session_s: int = Field(
        default=36_000,
        description="Maximum session, s — [S] Shenzhen 2015 notice '原则上不应超过10 h' (AP3000 default "
        "36 000 s; the Beijing guide's '不宜超过8 h', 28 800 s, is the stricter option)",
    )
    float_time_s: int = Field(
        default=3600,
        description="Allowed float/top-up time from the first full report of a session, s — [V] AP3000 "
        "0x83/0x84 float time 3600 s (standards.md §1.2)",
    )
    full_power_w: float = Field(
        default=45.0,
        description="A port charging below this power counts as full (its float time runs), W — [V] "
        "X10P firmware: full below 45 W (standards.md §1.2)",
    )
    leakage_trip_ma: float = Field(
        default=300.0,
        description="Leakage current that raises charger_leakage and must open the post's leakage "
        "breaker, mA — [S] GB 50116-2013 条文说明 §9.2.3: residual-current alarm setting 300–500 mA, "
        "natural leakage 100–200 mA",
    )
    leakage_confirm_s: float = Field(
        default=10.0,
        description="Leakage at or above leakage_trip_ma must last this long to be a trigger, s — "
        "[NOT FOUND] GB 31252-2014 §4.3.1 only bounds the alarm at 30 s after the set condition",
    )
    over_voltage_v: float = Field(
        default=270.0, description="Over-voltage cut-off, V — [V] AP3000 0x85 default 270.0 V"
    )
    under_voltage_v: float = Field(
        default=100.0, description="Under-voltage cut-off, V — [V] AP3000 0x85 default 100.0 V"
    )
    # The deadline of each auto-cutoff trigger (alerts.config.TRIGGERS), measured from the trigger's
    # instant (docs/mqtt.md §12): the first report showing the condition (its confirmation time
    # runs inside the deadline),
    # the event's own time for alarm pushes and the fire linkage, the end of the float time for
    # `full`, the instant the session reached max_session_s for `max_time`.
    over_temperature_cutoff_s: float = _cutoff(
        90.0, "Port at or above port_over_temp_c → port cut, s from the first such report"
    )
    ambient_over_temperature_cutoff_s: float = _cutoff(
        90.0, "Ambient at or above ambient_over_temp_c → powered ports cut, s from the first such report"
    )
    cabinet_over_temperature_cutoff_s: float = _cutoff(
        90.0, "Cabinet at or above cabinet_over_temp_c → powered ports cut, s from the first such report"
    )
    overload_cutoff_s: float = _cutoff(
        90.0, "Port power over port_power_limit_w → port cut, s from the first such report"
    )
    over_current_cutoff_s: float = _cutoff(
        90.0, "Port current over port_current_limit_a → port cut, s from the first such report"
    )
    over_voltage_cutoff_s: float = _cutoff(
        60.0, "Port voltage over over_voltage_v → port cut, s from the first such report"
    )
    under_voltage_cutoff_s: float = _cutoff(
        60.0, "Port drawing current below under_voltage_v → port cut, s from the first such report"
    )
    leakage_cutoff_s: float = _cutoff(
        60.0, "Leakage at or above leakage_trip_ma → breaker open, s from the first such report"
    )
    short_circuit_cutoff_s: float = _cutoff(
        60.0, "Short circuit on a port with its relay closed → port cut, s from the first such report"
    )
    water_cutoff_s: float = _cutoff(60.0, "Water alarm → powered ports cut, s from the alarm")
    smoke_cutoff_s: float = _cutoff(60.0, "Smoke at the post → powered ports cut, s from the first report")
    full_cutoff_s: float = _cutoff(
        60.0, "Port still powered after its float time → port cut, s from the end of the float time"
    )
    max_time_cutoff_s: float = _cutoff(
        60.0, "Session past max_session_s → port cut, s from the instant it reached the maximum"
    )
    fire_cutoff_s: float = Field(
        default=6.0,
        gt=0,
        description="Confirmed fire in the post's building → charging (non-fire power) cut, s from the "
        "confirming alarm — [S2] GB 50166-2019: linkage start signal ≤ 3 s plus output module action ≤ 3 s; "
        "the cut itself is §4.20",
    )
    heartbeat_s: int = Field(
        default=180, description="Port-status heartbeat period, s — [V] AP3000 0x21 default 3 min"
    )
    missed_heartbeats: int = Field(
        default=2, description="Missed heartbeats before offline — [V] AP3000: 2 missed acks ⇒ offline"
    )


DEFAULTS = Defaults()

# ---------------------------------------------------------------------------------------------
# Points kept for charts and rollups


def points(t: Telemetry) -> list[tuple[str, int, float]]:
    """The numeric facts of a report; a refused reading (None) is not a fact and is left out."""
    out: list[tuple[str, int, float]] = [("smoke", 0, float(t.smoke))]
    for name, value in (
        ("ambient_temp_c", t.ambient_temp_c),
        ("cabinet_temp_c", t.cabinet_temp_c),
        ("leakage_ma", t.leakage_ma),
        ("total_power_w", t.total_power_w),
    ):
        if value is not None:
            out.append((name, 0, value))
    if t.breaker_closed is not None:
        out.append(("breaker_closed", 0, float(t.breaker_closed)))
    for p in t.ports:
        n = p.port
        for name, reading in (
            ("voltage_v", p.voltage_v),
            ("current_a", p.current_a),
            ("power_w", p.power_w),
            ("session_energy_kwh", p.session_energy_kwh),
            ("port_temp_c", p.port_temp_c),
        ):
            if reading is not None:
                out.append((name, n, reading))
        out += [("relay_on", n, float(p.relay_on)), ("session_s", n, float(p.session_s))]
    return out
