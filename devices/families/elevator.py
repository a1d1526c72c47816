"""Elevators (电梯, incl. retrofitted), fault vocabulary of GB/T 24476 (standards.md §4)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field

from devices.families.common import Bool, CodeInfo, Wire

Floor = Annotated[int, Field(strict=True, ge=-10, le=200)]


class Direction(StrEnum):
    STOP = "stop"
    UP = "up"
    DOWN = "down"


class Door(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    OPENING = "opening"
    CLOSING = "closing"


class Mode(StrEnum):
    NORMAL = "normal"
    INSPECTION = "inspection"
    FIRE_RETURN = "fire_return"
    OUT_OF_SERVICE = "out_of_service"
    HOLD = "hold"  # held by a command


MODE_INFO: dict[Mode, CodeInfo] = {
    Mode.NORMAL: CodeInfo("自动/正常", "Normal"),
    Mode.INSPECTION: CodeInfo("检修", "Inspection"),
    Mode.FIRE_RETURN: CodeInfo("消防返回", "Fire return"),
    Mode.OUT_OF_SERVICE: CodeInfo("停止服务", "Out of service"),
    Mode.HOLD: CodeInfo("锁梯/保持", "Held"),
}


class Fault(StrEnum):
    TRAPPED_AT_LEVEL = "trapped_at_level"
    TRAPPED_NOT_AT_LEVEL = "trapped_not_at_level"
    DOOR_OPEN_WHILE_MOVING = "door_open_while_moving"
    MOVING_WITH_DOOR_OPEN = "moving_with_door_open"
    STOP_OUTSIDE_DOOR_ZONE = "stop_outside_door_zone"
    OVERSPEED = "overspeed"
    TOP_OVERTRAVEL = "top_overtravel"
    BOTTOM_OVERTRAVEL = "bottom_overtravel"
    SAFETY_CIRCUIT_OPEN = "safety_circuit_open"
    DOOR_LOCK_CIRCUIT_OPEN = "door_lock_circuit_open"
    POWER_LOSS = "power_loss"
    DOOR_OPEN_FAULT = "door_open_fault"
    DOOR_CLOSE_FAULT = "door_close_fault"
    LANDING_BUTTON_STUCK = "landing_button_stuck"
    SPEED_ABNORMAL = "speed_abnormal"


# GB/T 24476 fault/event vocabulary as used by monitoring firmware and government platforms [V]
FAULT_INFO: dict[Fault, CodeInfo] = {
    Fault.TRAPPED_AT_LEVEL: CodeInfo("平层关人", "Passengers trapped at level"),
    Fault.TRAPPED_NOT_AT_LEVEL: CodeInfo("非平层关人", "Passengers trapped not at level"),
    Fault.DOOR_OPEN_WHILE_MOVING: CodeInfo("运行中开门", "Door opened while moving"),
    Fault.MOVING_WITH_DOOR_OPEN: CodeInfo("开门走车", "Moving with door open (UCM)"),
    Fault.STOP_OUTSIDE_DOOR_ZONE: CodeInfo("门区外停梯", "Stopped outside the door zone"),
    Fault.OVERSPEED: CodeInfo("超速", "Overspeed"),
    Fault.TOP_OVERTRAVEL: CodeInfo("冲顶", "Top over-travel"),
    Fault.BOTTOM_OVERTRAVEL: CodeInfo("蹲底", "Bottom over-travel"),
    Fault.SAFETY_CIRCUIT_OPEN: CodeInfo("安全回路断路", "Safety circuit open"),
    Fault.DOOR_LOCK_CIRCUIT_OPEN: CodeInfo("门锁回路断路", "Door-lock circuit open"),
    Fault.POWER_LOSS: CodeInfo("停电", "Power loss"),
    Fault.DOOR_OPEN_FAULT: CodeInfo("开门故障", "Door fails to open"),
    Fault.DOOR_CLOSE_FAULT: CodeInfo("关门故障", "Door fails to close"),
    Fault.LANDING_BUTTON_STUCK: CodeInfo("层站按钮粘连", "Landing button stuck"),
    Fault.SPEED_ABNORMAL: CodeInfo("速度异常", "Abnormal speed"),
}
TRAPPED_FAULTS = frozenset({Fault.TRAPPED_AT_LEVEL, Fault.TRAPPED_NOT_AT_LEVEL})


class Telemetry(Wire):
    floor: Floor
    direction: Direction
    moving: Bool
    door: Door
    at_level: Bool = Field(description="Car within the door zone (平层)")
    speed_mps: float = Field(strict=True, ge=0, le=25, allow_inf_nan=False)
    occupied: Bool = Field(description="Passenger(s) detected in the car")
    load_kg: float = Field(strict=True, ge=0, le=20_000, allow_inf_nan=False)
    mode: Mode
    faults: list[Fault] = Field(default_factory=list, max_length=len(Fault), description="Active faults")


class FaultEvent(Wire):
    type: Literal["fault"]
    code: Fault
    active: Bool
    floor: Floor | None = None


class AlarmButton(Wire):
    type: Literal["alarm_button"]
    floor: Floor | None = None


class EbikeDetected(Wire):
    type: Literal["ebike_detected"]
    floor: Floor | None = None


class RescueArrived(Wire):
    type: Literal["rescue_arrived"]
    by: str | None = Field(default=None, max_length=100, description="Rescuer / maintenance unit")


Event = Annotated[FaultEvent | AlarmButton | EbikeDetected | RescueArrived, Field(discriminator="type")]


class Recall(Wire):
    """Fire recall to the ground (or transfer) floor — GB 50116-2013 elevator linkage [S]."""

    command: Literal["recall"]
    floor: Floor = 1


class Hold(Wire):
    command: Literal["hold"]
    floor: Floor | None = None


class Release(Wire):
    command: Literal["release"]


Command = Annotated[Recall | Hold | Release, Field(discriminator="command")]


class Defaults(Wire):
    """Elevator rules. Descriptions end with their source label (standards.md §0): text — [LABEL] source.

    Every deadline here is a setting (`YIJU_ALERTS__ELEVATOR__<NAME>`, or a community's
    `settings.alerts.elevator`), so a test or a stricter city can shorten it."""

    rescue_arrival_s: int = Field(
        default=1800,
        description="Trapped passengers → rescuer arrival recorded, s (≤ 30 min in municipalities and "
        "districted cities, ≤ 1 h elsewhere; the Hangzhou 2024 draft asks 15 min) — [S2] "
        "TSG T5002-2017 Art.5",
    )
    rescue_escalation_s: tuple[int, ...] = Field(
        default=(0, 300, 900),
        description="Escalation steps, s after the first evidence of trapped passengers (dispatch ≤ 5 min "
        "in the Hangzhou draft; later steps configurable) — [S] DB32/T 4130-2021 3-level response",
    )
    recall_deadline_s: float = Field(
        default=120.0,
        description="Fire linkage → car at the recall floor, s, for a car whose floors are not in the "
        "registry (otherwise derived: recall_overhead_s + travel from the top floor at the car's speed; "
        "60 s is a fire elevator's ground→top time, too short for a passenger car from a high floor) "
        "— [NOT FOUND]: configurable",
    )
    recall_overhead_s: float = Field(
        default=20.0,
        description="Fixed part of a recall, s: the linkage start signal (≤ 3 s, GB 50166-2019), "
        "stopping at the nearest floor, closing the doors, acceleration and levelling — [NOT FOUND]: "
        "configurable",
    )
    floor_height_m: float = Field(
        default=3.0, gt=0, description="Storey height for the recall travel, m — [NOT FOUND]: configurable"
    )
    car_speed_mps: float = Field(
        default=1.0,
        gt=0,
        description="Car speed for the recall travel when the registry has no rated speed, m/s (residential "
        "cars run 1.0–1.75 m/s; the lower value gives the longer deadline) — [NOT FOUND]: configurable",
        json_schema_extra={"scope": "device (`devices.metadata.rated_speed_mps`), else community"},
    )
    stop_outside_door_zone_s: float = Field(
        default=45.0,
        description="A car in normal service standing still outside the door zone for this long is a "
        "stop outside the door zone (门区外停梯), s — [V] monitoring firmware 45–60 s",
    )
    trapped_confirm_s: float = Field(
        default=30.0,
        description="A car in normal service standing still outside the door zone with passengers in it "
        "for this long has passengers trapped (非平层关人), s — [V] monitoring firmware 20–45 s",
    )
    moving_door_open_confirm_s: float = Field(
        default=10.0,
        description="A car in normal service moving outside the door zone with its door not closed for "
        "this long is moving with the door open (开门走车), s — [V] monitoring firmware 10–50 s",
    )
    heartbeat_s: int = Field(default=60, description="Telemetry/heartbeat period, s — [V] vendor practice")
    missed_heartbeats: int = Field(default=3, description="Missed heartbeats before offline — [V] 2–3")


DEFAULTS = Defaults()


def points(t: Telemetry) -> list[tuple[str, int, float]]:
    return [
        ("floor", 0, float(t.floor)),
        ("speed_mps", 0, t.speed_mps),
        ("load_kg", 0, t.load_kg),
        ("moving", 0, float(t.moving)),
        ("door_open", 0, float(t.door is not Door.CLOSED)),
        ("faults", 0, float(len(t.faults))),
    ]
