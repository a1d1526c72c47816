"""Elevators (standards.md §4): GB/T 24476 faults, trapped passengers with the rescue clock and its
escalation ladder (TSG T5002 Art.5 [S2]: arrival ≤ 30 min), alarm button, e-bike in the car, and the
fire recall linkage.

Rescue mark "r" = [trapped at, next escalation step index]; the clock stops at the rescue_arrived
event or when the trapped fault ends, whichever comes first.
"""

from __future__ import annotations

from alerts.config import AlertSettings
from alerts.core import faults, linkage
from alerts.core.model import Out
from devices.alarms import AlarmType, Check
from devices.envelope import EventMessage, TelemetryMessage
from devices.families import elevator as fam

A = AlarmType
F = fam.Fault
FAULT_ALARM: dict[fam.Fault, AlarmType] = {
    F.TRAPPED_AT_LEVEL: A.ELEVATOR_TRAPPED,
    F.TRAPPED_NOT_AT_LEVEL: A.ELEVATOR_TRAPPED,
    F.DOOR_OPEN_WHILE_MOVING: A.ELEVATOR_DOOR_OPEN_WHILE_MOVING,
    F.MOVING_WITH_DOOR_OPEN: A.ELEVATOR_DOOR_OPEN_WHILE_MOVING,
    F.STOP_OUTSIDE_DOOR_ZONE: A.ELEVATOR_STOP_OUTSIDE_DOOR_ZONE,
    F.OVERSPEED: A.ELEVATOR_OVERSPEED,
    F.SPEED_ABNORMAL: A.ELEVATOR_OVERSPEED,
    F.TOP_OVERTRAVEL: A.ELEVATOR_OVERTRAVEL,
    F.BOTTOM_OVERTRAVEL: A.ELEVATOR_OVERTRAVEL,
    F.SAFETY_CIRCUIT_OPEN: A.ELEVATOR_SAFETY_CIRCUIT,
    F.DOOR_LOCK_CIRCUIT_OPEN: A.ELEVATOR_SAFETY_CIRCUIT,
    F.POWER_LOSS: A.ELEVATOR_POWER_LOSS,
    F.DOOR_OPEN_FAULT: A.ELEVATOR_DOOR_FAULT,
    F.DOOR_CLOSE_FAULT: A.ELEVATOR_DOOR_FAULT,
    F.LANDING_BUTTON_STUCK: A.ELEVATOR_DOOR_FAULT,
}


def telemetry(out: Out, msg: TelemetryMessage[fam.Telemetry], ts: float, th: AlertSettings) -> None:
    r = th.elevator
    t = msg.data
    recalled = t.mode is fam.Mode.FIRE_RETURN and t.floor == r.recall_floor and not t.moving
    linkage.state(out, "elevator_recall", recalled, ts)
    faults.sync(out, {f.value: FAULT_ALARM[f] for f in t.faults}, "", ts)
    # implausible: speed reported while standing still
    if not t.moving and t.speed_mps > 0.3:
        out.raise_(A.SENSOR_IMPLAUSIBLE, ts, {"speed_mps": t.speed_mps, "moving": False})
    else:
        out.clear(A.SENSOR_IMPLAUSIBLE, ts)
    _rescue_follow(out, ts, th)


def event(out: Out, msg: EventMessage[fam.Event], ts: float, th: AlertSettings) -> None:
    ev = msg.event
    if isinstance(ev, fam.FaultEvent):
        faults.reported(out, ev.code.value, FAULT_ALARM[ev.code], ev.active, ts, details={"floor": ev.floor})
    elif isinstance(ev, fam.AlarmButton):
        out.raise_(A.ELEVATOR_ALARM_BUTTON, ts, {"floor": ev.floor}, source="device", repeat=True)
    elif isinstance(ev, fam.EbikeDetected):
        out.raise_(A.ELEVATOR_EBIKE_IN_CAR, ts, {"floor": ev.floor}, source="device", repeat=True)
    elif isinstance(ev, fam.RescueArrived):
        _rescue_end(out, ts, th, "arrived", ev.by)
    _rescue_follow(out, ts, th)


def _rescue_follow(out: Out, ts: float, th: AlertSettings) -> None:
    """Start the rescue clock when the trapped alarm opens; stop it when it clears."""
    trapped = out.is_open(A.ELEVATOR_TRAPPED)
    # "rd" = trapped-since of an episode whose rescuer already arrived: its clock must not restart
    if trapped and "r" not in out.st.marks and out.st.marks.get("rd") != out.st.open[A.ELEVATOR_TRAPPED]:
        out.st.marks["r"] = [out.st.open[A.ELEVATOR_TRAPPED], 0]
    elif not trapped:
        out.st.marks.pop("rd", None)
        if "r" in out.st.marks:
            _rescue_end(out, ts, th, "released", None)


def _rescue_end(out: Out, ts: float, th: AlertSettings, how: str, by: str | None) -> None:
    clock = out.st.marks.pop("r", None)
    if clock is None:
        return
    t0 = clock[0]
    if how == "arrived":
        out.st.marks["rd"] = t0
    limit = float(th.elevator.rescue_arrival_s)
    measured = ts - t0
    if measured <= limit or not out.is_open(A.RESCUE_OVERDUE):
        out.finding(
            Check.RESCUE,
            "rescue_arrival",
            measured <= limit,
            ts,
            trigger_ts=t0,
            deadline_s=limit,
            measured_s=measured,
            details={"how": how, "by": by},
        )
    out.clear(A.RESCUE_OVERDUE, ts, {"how": how, "after_s": round(measured, 3)})


def deadlines(out: Out, now: float, th: AlertSettings) -> None:
    clock = out.st.marks.get("r")
    if clock is None:
        return
    r = th.elevator
    t0, step = clock
    steps = r.rescue_escalation_s
    while step < len(steps) and now >= t0 + steps[step]:
        out.escalate(A.ELEVATOR_TRAPPED, t0 + steps[step], {"level": step + 1, "after_s": steps[step]})
        step += 1
    clock[1] = step
    if now > t0 + r.rescue_arrival_s and not out.is_open(A.RESCUE_OVERDUE):
        at = t0 + r.rescue_arrival_s
        out.finding(
            Check.RESCUE,
            "rescue_arrival",
            False,
            at,
            trigger_ts=t0,
            deadline_s=float(r.rescue_arrival_s),
            details={"outcome": "not_arrived"},
        )
        out.raise_(A.RESCUE_OVERDUE, at, {"trapped_at": t0, "deadline_s": r.rescue_arrival_s})
