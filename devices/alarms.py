"""The alarm and compliance-finding vocabulary shared by the engine, the simulator's ground truth,
storage, the API and the console. Severities are defaults (domain.md §4); policies may map them
differently. A `Finding` is one compliance decision as the rule core makes it and storage records it
(storage.findings.FindingRow: the finding and whose it is, not a copy of its fields).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    CRITICAL = "critical"
    MAJOR = "major"
    MINOR = "minor"
    WARNING = "warning"


SEVERITY_RANK = {Severity.CRITICAL: 0, Severity.MAJOR: 1, Severity.MINOR: 2, Severity.WARNING: 3}


class AlarmType(StrEnum):
    # every family
    DEVICE_OFFLINE = "device_offline"  # missed heartbeats / Last Will
    SENSOR_IMPLAUSIBLE = "sensor_implausible"  # reading outside the physically possible range
    LINKAGE_FAILED = "linkage_failed"  # this device did not act on a fire/gas linkage in time
    CLOCK_SKEW = "clock_skew"  # the device's clock is wrong (alerts/core/clock.py)
    # e-bike charging
    CHARGER_OVER_TEMPERATURE = "charger_over_temperature"
    CHARGER_OVERLOAD = "charger_overload"
    CHARGER_LEAKAGE = "charger_leakage"
    CHARGER_SHORT_CIRCUIT = "charger_short_circuit"
    CHARGER_SMOKE = "charger_smoke"
    CHARGER_WATER = "charger_water"
    CHARGER_FAULT = "charger_fault"  # fuse blown, relay welded, sensor fault, …
    CHARGE_NOT_STOPPED = "charge_not_stopped"  # full/float or max session time without a stop
    AUTO_CUTOFF_FAILED = "auto_cutoff_failed"
    PROTECTION_DISABLED = "protection_disabled"
    PROTECTION_LIMIT_LOOSE = "protection_limit_loose"  # a post's limit looser than the community's
    # smoke / electrical fire
    FIRE_ALARM = "fire_alarm"
    SMOKE_DETECTOR_FAULT = "smoke_detector_fault"
    LOW_BATTERY = "low_battery"
    BATTERY_CHECK_OVERDUE = "battery_check_overdue"  # battery self-check older than 24 h
    ELECTRICAL_FIRE_RESIDUAL_CURRENT = "electrical_fire_residual_current"
    ELECTRICAL_FIRE_CABLE_TEMPERATURE = "electrical_fire_cable_temperature"
    # gas
    GAS_LOW_ALARM = "gas_low_alarm"
    GAS_HIGH_ALARM = "gas_high_alarm"
    GAS_DETECTOR_FAULT = "gas_detector_fault"
    # lighting
    LAMP_FAILURE = "lamp_failure"
    LIGHTING_CONTROLLER_FAULT = "lighting_controller_fault"
    # elevators (GB/T 24476 vocabulary)
    ELEVATOR_TRAPPED = "elevator_trapped"
    ELEVATOR_DOOR_OPEN_WHILE_MOVING = "elevator_door_open_while_moving"
    ELEVATOR_STOP_OUTSIDE_DOOR_ZONE = "elevator_stop_outside_door_zone"
    ELEVATOR_OVERSPEED = "elevator_overspeed"
    ELEVATOR_OVERTRAVEL = "elevator_overtravel"
    ELEVATOR_SAFETY_CIRCUIT = "elevator_safety_circuit"
    ELEVATOR_POWER_LOSS = "elevator_power_loss"
    ELEVATOR_DOOR_FAULT = "elevator_door_fault"
    ELEVATOR_ALARM_BUTTON = "elevator_alarm_button"
    ELEVATOR_EBIKE_IN_CAR = "elevator_ebike_in_car"
    RESCUE_OVERDUE = "rescue_overdue"
    ELEVATOR_OUT_OF_SERVICE = "elevator_out_of_service"  # inspection (检修) or out of service: shown
    # access control
    DOOR_FORCED_OPEN = "door_forced_open"
    DOOR_HELD_OPEN = "door_held_open"
    DOOR_DURESS = "door_duress"
    DOOR_TAMPER = "door_tamper"
    ACCESS_DENIED_REPEATED = "access_denied_repeated"
    DOOR_CONTROLLER_FAULT = "door_controller_fault"
    # CCTV
    CCTV_RETENTION_SHORT = "cctv_retention_short"
    CCTV_RECORDING_GAP = "cctv_recording_gap"
    CCTV_CHANNEL_OFFLINE = "cctv_channel_offline"
    CCTV_RECORDING_STOPPED = "cctv_recording_stopped"
    CCTV_DISK_FAULT = "cctv_disk_fault"


@dataclass(frozen=True)
class AlarmInfo:
    severity: Severity
    zh: str
    en: str


_C, _M, _N, _W = Severity.CRITICAL, Severity.MAJOR, Severity.MINOR, Severity.WARNING

ALARM_INFO: dict[AlarmType, AlarmInfo] = {
    AlarmType.DEVICE_OFFLINE: AlarmInfo(_N, "设备离线", "Device offline"),
    AlarmType.SENSOR_IMPLAUSIBLE: AlarmInfo(_N, "读数异常(超出物理范围)", "Implausible reading"),
    AlarmType.LINKAGE_FAILED: AlarmInfo(_C, "联动失败", "Linkage failed"),
    AlarmType.CLOCK_SKEW: AlarmInfo(_N, "设备时钟偏差", "Device clock wrong"),
    AlarmType.CHARGER_OVER_TEMPERATURE: AlarmInfo(_M, "充电桩过温", "Charger over-temperature"),
    AlarmType.CHARGER_OVERLOAD: AlarmInfo(_M, "充电过载/过流", "Charger overload"),
    AlarmType.CHARGER_LEAKAGE: AlarmInfo(_C, "充电桩漏电", "Charger leakage current"),
    AlarmType.CHARGER_SHORT_CIRCUIT: AlarmInfo(_C, "充电端口短路", "Charger short circuit"),
    AlarmType.CHARGER_SMOKE: AlarmInfo(_C, "充电区域烟雾报警", "Smoke at charging post"),
    AlarmType.CHARGER_WATER: AlarmInfo(_M, "充电桩浸水", "Charger water immersion"),
    AlarmType.CHARGER_FAULT: AlarmInfo(_M, "充电桩故障", "Charger fault"),
    AlarmType.CHARGE_NOT_STOPPED: AlarmInfo(_M, "充满/超时未停止充电", "Charging not stopped"),
    AlarmType.AUTO_CUTOFF_FAILED: AlarmInfo(_C, "自动断电失效", "Auto power-off failed"),
    AlarmType.PROTECTION_DISABLED: AlarmInfo(_M, "保护功能被关闭", "Protection disabled"),
    AlarmType.PROTECTION_LIMIT_LOOSE: AlarmInfo(
        _M, "保护限值宽于小区设置", "Protection limit looser than the community's"
    ),
    AlarmType.FIRE_ALARM: AlarmInfo(_C, "火灾报警", "Fire alarm"),
    AlarmType.SMOKE_DETECTOR_FAULT: AlarmInfo(_N, "烟感故障", "Smoke detector fault"),
    AlarmType.LOW_BATTERY: AlarmInfo(_W, "电池电量低", "Low battery"),
    AlarmType.BATTERY_CHECK_OVERDUE: AlarmInfo(_N, "电池自检超期", "Battery self-check overdue"),
    AlarmType.ELECTRICAL_FIRE_RESIDUAL_CURRENT: AlarmInfo(
        _M, "电气火灾剩余电流超限", "Residual current high"
    ),
    AlarmType.ELECTRICAL_FIRE_CABLE_TEMPERATURE: AlarmInfo(_M, "电缆温度超限", "Cable temperature high"),
    AlarmType.GAS_LOW_ALARM: AlarmInfo(_M, "燃气低限报警", "Gas low alarm"),
    AlarmType.GAS_HIGH_ALARM: AlarmInfo(_C, "燃气高限报警", "Gas high alarm"),
    AlarmType.GAS_DETECTOR_FAULT: AlarmInfo(_N, "燃气探测器故障", "Gas detector fault"),
    AlarmType.LAMP_FAILURE: AlarmInfo(_N, "灯具故障", "Lamp failure"),
    AlarmType.LIGHTING_CONTROLLER_FAULT: AlarmInfo(_N, "照明控制器故障", "Lighting controller fault"),
    AlarmType.ELEVATOR_TRAPPED: AlarmInfo(_C, "电梯困人", "Passengers trapped"),
    AlarmType.ELEVATOR_DOOR_OPEN_WHILE_MOVING: AlarmInfo(_C, "开门走车/运行中开门", "Door open while moving"),
    AlarmType.ELEVATOR_STOP_OUTSIDE_DOOR_ZONE: AlarmInfo(_M, "门区外停梯", "Stopped outside door zone"),
    AlarmType.ELEVATOR_OVERSPEED: AlarmInfo(_C, "电梯超速", "Overspeed"),
    AlarmType.ELEVATOR_OVERTRAVEL: AlarmInfo(_C, "冲顶/蹲底", "Over-travel"),
    AlarmType.ELEVATOR_SAFETY_CIRCUIT: AlarmInfo(_M, "安全回路/门锁回路断路", "Safety circuit open"),
    AlarmType.ELEVATOR_POWER_LOSS: AlarmInfo(_M, "电梯停电", "Elevator power loss"),
    AlarmType.ELEVATOR_DOOR_FAULT: AlarmInfo(_N, "电梯门故障", "Elevator door fault"),
    AlarmType.ELEVATOR_ALARM_BUTTON: AlarmInfo(_M, "轿厢报警按钮", "Alarm button pressed"),
    AlarmType.ELEVATOR_EBIKE_IN_CAR: AlarmInfo(_W, "电动车进电梯", "E-bike in elevator car"),
    AlarmType.RESCUE_OVERDUE: AlarmInfo(_C, "困人救援超时", "Rescue overdue"),
    AlarmType.ELEVATOR_OUT_OF_SERVICE: AlarmInfo(
        _W, "电梯检修/停止服务", "Elevator in inspection/out of service"
    ),
    AlarmType.DOOR_FORCED_OPEN: AlarmInfo(_M, "门被强行打开", "Door forced open"),
    AlarmType.DOOR_HELD_OPEN: AlarmInfo(_N, "门长时间未关", "Door held open"),
    AlarmType.DOOR_DURESS: AlarmInfo(_C, "胁迫报警", "Duress"),
    AlarmType.DOOR_TAMPER: AlarmInfo(_M, "门禁防拆报警", "Door tamper"),
    AlarmType.ACCESS_DENIED_REPEATED: AlarmInfo(_N, "连续无效凭证", "Repeated invalid credentials"),
    AlarmType.DOOR_CONTROLLER_FAULT: AlarmInfo(_N, "门禁故障/通信中断", "Door controller fault"),
    AlarmType.CCTV_RETENTION_SHORT: AlarmInfo(_M, "录像保存不足30天", "Recording retention under 30 days"),
    AlarmType.CCTV_RECORDING_GAP: AlarmInfo(_M, "录像中断", "Recording gap"),
    AlarmType.CCTV_CHANNEL_OFFLINE: AlarmInfo(_M, "视频通道离线", "Camera channel offline"),
    AlarmType.CCTV_RECORDING_STOPPED: AlarmInfo(_M, "录像停止", "Recording stopped"),
    AlarmType.CCTV_DISK_FAULT: AlarmInfo(_M, "录像机硬盘故障/已满", "Recorder disk fault"),
}


class Check(StrEnum):
    """Compliance checks (domain.md §5); the values match compliance_findings.check_name."""

    AUTO_CUTOFF = "auto_cutoff"
    PROTECTION_CONFIG = "protection_config"
    FAULT_ALARM = "fault_alarm"
    CCTV_RETENTION = "cctv_retention"
    LINKAGE = "linkage"
    RESCUE = "rescue"
    SELF_TEST = "self_test"  # a detector's self-test / test alarm / battery self-check record


@dataclass(frozen=True, slots=True)
class Finding:
    """One decided obligation, compliant or not (domain.md §5): `kind` the trigger or fault, `channel`
    the recorder channel or charger port (0: the device), `trigger_at` when the condition was first
    seen, `deadline_s`/`measured_s` the allowed and the measured delay where there is one."""

    check: Check
    kind: str
    compliant: bool
    observed_at: datetime
    trigger_at: datetime | None = None
    deadline_s: float | None = None
    measured_s: float | None = None
    channel: int = 0
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def dedup_key(self) -> str:
        """Same obligation, same decision: a redelivered message must not record it twice."""
        trig = "" if self.trigger_at is None else f"{self.trigger_at.timestamp():.3f}"
        return f"{self.check.value}:{self.kind}:{self.channel}:{trig}:{int(self.compliant)}"
