"""Elevators: trapped passengers (rescued or overdue), the door open while moving, a stop outside the door
zone, inspection mode, and faults the terminal does not flag."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from devices.alarms import AlarmType, Check
from devices.contract import Family
from devices.families import elevator
from simulators.scenarios.builder import (
    FAULT_ALARM_DEADLINE_S,
    SLACK_S,
    Builder,
    Factory,
    Picker,
    healthy,
    registrar,
)
from simulators.scenarios.truth import Scenario

A = AlarmType
ELEV = elevator.DEFAULTS

SCENARIOS: dict[str, Factory] = {}
scenario = registrar(SCENARIOS)


def _trapped(p: Picker, start: datetime, *, rescue_after_s: float) -> Scenario:
    overdue = rescue_after_s > ELEV.rescue_arrival_s
    name = "elevator_trapped_overdue" if overdue else "elevator_trapped_rescued"
    b = Builder(
        name,
        p.compound,
        start,
        "Passengers trapped between floors at +60 s; the rescuer arrives after "
        f"{rescue_after_s / 60:.0f} min "
        f"(limit {ELEV.rescue_arrival_s / 60:.0f} min, TSG T5002)"
        + (
            ": rescue_overdue and a non-compliant rescue finding."
            if overdue
            else ": compliant rescue finding."
        ),
    )
    e = b.script(p.take(Family.ELEVATOR))
    trapped = 60.0
    stuck = {"floor": 5, "moving": False, "direction": "stop", "at_level": False, "occupied": True}
    e.event(trapped, type="fault", code="trapped_not_at_level", active=True, floor=5)
    e.tele(trapped, **stuck, faults=["trapped_not_at_level"])
    arrive = trapped + rescue_after_s
    e.every(trapped + ELEV.heartbeat_s, arrive - 1, ELEV.heartbeat_s)
    e.event(arrive, type="rescue_arrived", by="维保单位")
    e.every(arrive + ELEV.heartbeat_s, arrive + 299, ELEV.heartbeat_s)  # still reporting: not offline
    e.event(arrive + 300, type="fault", code="trapped_not_at_level", active=False, floor=5)
    e.tele(arrive + 300, at_level=True, occupied=False, faults=[])
    b.alarm(A.ELEVATOR_TRAPPED, e.uid, trapped)
    b.finding(Check.FAULT_ALARM, "trapped_not_at_level", e.uid, True, trapped)
    if overdue:
        due = trapped + ELEV.rescue_arrival_s
        b.alarm(A.RESCUE_OVERDUE, e.uid, due, due + ELEV.heartbeat_s)
        b.finding(Check.RESCUE, "rescue_arrival", e.uid, False, due, due + ELEV.heartbeat_s)
    else:
        b.finding(Check.RESCUE, "rescue_arrival", e.uid, True, arrive)
    return b.build()


@scenario("elevator_trapped_rescued")
def elevator_trapped_rescued(p: Picker, start: datetime) -> Scenario:
    return _trapped(p, start, rescue_after_s=15 * 60)


@scenario("elevator_trapped_overdue")
def elevator_trapped_overdue(p: Picker, start: datetime) -> Scenario:
    return _trapped(p, start, rescue_after_s=40 * 60)


def _elevator_fault(p: Picker, start: datetime, code: str, alarm: AlarmType, **state: Any) -> Scenario:
    b = Builder(
        f"elevator_{code}",
        p.compound,
        start,
        f"The elevator reports fault {code} at +60 s (GB/T 24476 vocabulary), cleared at +90 s: "
        f"{alarm.value} alarm and a compliant fault-alarm finding.",
    )
    e = b.script(p.take(Family.ELEVATOR))
    e.event(60, type="fault", code=code, active=True, floor=3)
    e.tele(60, floor=3, **state, faults=[code])
    e.event(90, type="fault", code=code, active=False, floor=3)
    e.tele(90, **{**healthy(e.device, b.t(90)), "floor": 3})
    e.tele(90 + ELEV.heartbeat_s)
    b.alarm(alarm, e.uid, 60)
    b.finding(Check.FAULT_ALARM, code, e.uid, True, 60)
    return b.build()


@scenario("elevator_door_open_while_moving")
def elevator_door_open_while_moving(p: Picker, start: datetime) -> Scenario:
    return _elevator_fault(
        p, start, "door_open_while_moving", A.ELEVATOR_DOOR_OPEN_WHILE_MOVING,
        moving=True, direction="up", door="open", at_level=False, speed_mps=0.25, occupied=True,
    )  # fmt: skip


@scenario("elevator_stop_outside_door_zone")
def elevator_stop_outside_door_zone(p: Picker, start: datetime) -> Scenario:
    return _elevator_fault(
        p, start, "stop_outside_door_zone", A.ELEVATOR_STOP_OUTSIDE_DOOR_ZONE,
        moving=False, direction="stop", at_level=False, occupied=False,
    )  # fmt: skip


@scenario("elevator_inspection")
def elevator_inspection(p: Picker, start: datetime) -> Scenario:
    b = Builder(
        "elevator_inspection",
        p.compound,
        start,
        "A mechanic puts the car into inspection (检修) at +60 s for the fortnightly maintenance: the "
        "safety chain is opened (and reported), the car is moved at inspection speed with its door open "
        "and left between floors; back to normal at +900 s. Only the warning elevator_out_of_service "
        "while it lasts — none of the movement faults is alarmed, none is derived.",
    )
    e = b.script(p.take(Family.ELEVATOR))
    e.tele(60, mode="inspection")
    e.event(70, type="fault", code="safety_circuit_open", active=True, floor=1)
    e.tele(70, faults=["safety_circuit_open"])
    e.tele(80, moving=True, direction="up", door="open", at_level=False, speed_mps=0.3)
    e.tele(100, moving=False, direction="stop", floor=2, speed_mps=0.0, occupied=True)
    e.every(160, 840, ELEV.heartbeat_s)
    e.event(900, type="fault", code="safety_circuit_open", active=False, floor=2)
    e.tele(900, **{**healthy(e.device, b.t(900)), "floor": 2})
    e.tele(900 + ELEV.heartbeat_s)
    b.alarm(A.ELEVATOR_OUT_OF_SERVICE, e.uid, 60)
    return b.build()


@scenario("elevator_stop_outside_zone_unreported")
def elevator_stop_outside_zone_unreported(p: Picker, start: datetime) -> Scenario:
    confirm = 60 + ELEV.heartbeat_s  # the first report at least stop_outside_door_zone_s after the stop
    assert confirm - 60 >= ELEV.stop_outside_door_zone_s
    b = Builder(
        "elevator_stop_outside_zone_unreported",
        p.compound,
        start,
        "An empty car in normal service stops between floors at +60 s and stays there; its terminal never "
        "reports a fault. Yiju derives 门区外停梯 from the running state (GB/T 24476) once "
        f"{ELEV.stop_outside_door_zone_s:.0f} s have passed, and the device fails the fault-alarm check "
        "(silent_fault) when it still has not reported it a minute later; the car relevels at +300 s.",
    )
    e = b.script(p.take(Family.ELEVATOR))
    e.tele(60, floor=4, at_level=False)
    e.every(60 + ELEV.heartbeat_s, 240, ELEV.heartbeat_s)
    e.tele(300, at_level=True)
    e.tele(360)
    b.alarm(A.ELEVATOR_STOP_OUTSIDE_DOOR_ZONE, e.uid, confirm)
    due = confirm + FAULT_ALARM_DEADLINE_S
    b.finding(Check.FAULT_ALARM, "silent_fault", e.uid, False, due, due + SLACK_S)
    return b.build()


@scenario("elevator_trapped_unreported_flag_drops")
def elevator_trapped_unreported_flag_drops(p: Picker, start: datetime) -> Scenario:
    trapped = 60.0
    arrive = trapped + ELEV.rescue_arrival_s + 300
    b = Builder(
        "elevator_trapped_unreported_flag_drops",
        p.compound,
        start,
        "Passengers trapped between floors at +60 s, seen only in the car's telemetry (no fault event): "
        "elevator_trapped at once (no fault-alarm wait), silent_fault a minute later. One report at +600 s "
        "drops the trapped flag; the rescue clock runs on from +60 s regardless, so rescue_overdue comes "
        f"at {ELEV.rescue_arrival_s / 60:.0f} min; the rescuer arrives at "
        f"{(arrive - trapped) / 60:.0f} min.",
    )
    e = b.script(p.take(Family.ELEVATOR))
    stuck = {"floor": 5, "moving": False, "direction": "stop", "at_level": False, "occupied": True}
    e.tele(trapped, **stuck, faults=["trapped_not_at_level"])
    s = trapped + ELEV.heartbeat_s
    while s < arrive:
        e.tele(s, faults=[] if s == 600 else ["trapped_not_at_level"])
        s += ELEV.heartbeat_s
    e.event(arrive, type="rescue_arrived", by="维保单位")
    e.tele(arrive + 120, at_level=True, occupied=False, faults=[])
    e.tele(arrive + 180)
    b.alarm(A.ELEVATOR_TRAPPED, e.uid, trapped)
    b.finding(Check.FAULT_ALARM, "silent_fault", e.uid, False, trapped + FAULT_ALARM_DEADLINE_S,
              trapped + FAULT_ALARM_DEADLINE_S + SLACK_S)  # fmt: skip
    due = trapped + ELEV.rescue_arrival_s
    b.alarm(A.RESCUE_OVERDUE, e.uid, due, due + ELEV.heartbeat_s)
    b.finding(Check.RESCUE, "rescue_arrival", e.uid, False, due, due + ELEV.heartbeat_s)
    return b.build()
