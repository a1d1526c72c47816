"""Elevators (standards.md §4): GB/T 24476 faults, trapped passengers with the rescue clock and its
escalation ladder (TSG T5002 Art.5 [S2]: arrival ≤ 30 min), alarm button, e-bike in the car, and the
fire recall linkage.

- Faults the device reports (events, or its telemetry `faults`) become alarms (alerts.core.faults).
- Faults Yiju derives from the running state, in normal service only: moving outside the door zone
  with the door not closed (开门走车), standing still outside the door zone (门区外停梯), and with
  passengers in the car that is a trapping (非平层关人). Each is raised as soon as its confirmation
  time has passed, and the device fails the fault-alarm check if it never reports it itself.
- Inspection (检修) and out of service: the car's movement and door faults are what maintenance work
  produces, so they are not alarmed (and none is derived), the car is exempt from the fire recall, and
  the mode is shown as the warning `elevator_out_of_service` while it lasts.
- Trapped passengers: the alarm is raised at the first evidence of any kind (event, telemetry fault
  list, derived) without waiting for the fault-alarm deadline, and the rescue clock runs from that
  instant until a rescuer's arrival is recorded (`rescue_arrived`). A report that drops the trapped
  flag neither stops nor restarts it; the alarm clears once the rescuer has arrived and no evidence
  is left.

State: the device's `ElevatorState` (alerts/core/records.py): the rescue clock (first evidence, next
escalation step) while it runs; the first evidence of an episode whose rescuer arrived (until its
evidence is gone); trapped evidence from events and from the last telemetry; the last reported mode.
"""

from __future__ import annotations

from collections.abc import Mapping

from alerts.config import AlertSettings
from alerts.core import faults, linkage
from alerts.core.model import DeviceContext, Out
from alerts.core.records import ElevatorState, Rescue
from devices.alarms import AlarmType, Check
from devices.envelope import EventMessage, TelemetryMessage
from devices.families import elevator as fam

A = AlarmType
F = fam.Fault
M = fam.Mode
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
TRAPPED = fam.TRAPPED_FAULTS
# What a mechanic working in inspection mode, or a car taken out of service, shows as a matter of
# course (the safety chain opened, doors worked by hand, the car stopped between floors): not alarmed
# in those modes. Trapped passengers, overspeed, over-travel and power loss are alarmed in every mode.
MOVEMENT_FAULTS = frozenset(
    {
        F.DOOR_OPEN_WHILE_MOVING, F.MOVING_WITH_DOOR_OPEN, F.STOP_OUTSIDE_DOOR_ZONE,
        F.SAFETY_CIRCUIT_OPEN, F.DOOR_LOCK_CIRCUIT_OPEN, F.DOOR_OPEN_FAULT, F.DOOR_CLOSE_FAULT,
    }
)  # fmt: skip
OUT_OF_SERVICE_MODES = frozenset({M.INSPECTION, M.OUT_OF_SERVICE})
_TRAPPED_KEYS = frozenset(f.value for f in TRAPPED)
_MOVEMENT_KEYS = frozenset(f.value for f in MOVEMENT_FAULTS)
_DERIVED = {  # derived fault key → its alarm
    "d:moving_with_door_open": A.ELEVATOR_DOOR_OPEN_WHILE_MOVING,
    "d:stop_outside_door_zone": A.ELEVATOR_STOP_OUTSIDE_DOOR_ZONE,
}


_OUT_OF_SERVICE_VALUES = frozenset(m.value for m in OUT_OF_SERVICE_MODES)


def _state(out: Out) -> ElevatorState:
    s = out.st.family
    if not isinstance(s, ElevatorState):
        s = out.st.family = ElevatorState()
    return s


def _suppressed(out: Out) -> bool:
    return _state(out).mode in _OUT_OF_SERVICE_VALUES


def telemetry(
    out: Out, msg: TelemetryMessage[fam.Telemetry], ts: float, th: AlertSettings, ctx: DeviceContext
) -> None:
    r = th.elevator
    t = msg.data
    s = _state(out)
    s.mode = t.mode.value
    suppressed = t.mode in OUT_OF_SERVICE_MODES
    if suppressed:
        out.raise_(A.ELEVATOR_OUT_OF_SERVICE, ts, {"mode": t.mode.value, "floor": t.floor})
    else:
        out.clear(A.ELEVATOR_OUT_OF_SERVICE, ts, {"mode": t.mode.value})
    recalled = t.mode is M.FIRE_RETURN and t.floor == r.recall_floor and not t.moving
    linkage.state(out, "elevator_recall", recalled, ts)
    linkage.exempt(out, "elevator_recall", t.mode.value if suppressed else None)
    _listed_faults(out, t, ts, suppressed)
    normal = t.mode is M.NORMAL
    stopped_outside = normal and not t.moving and not t.at_level
    # trapped: the device's own fault list, or derived (standing outside the door zone, occupied)
    derived_trap = out.held("t:trap", stopped_outside and t.occupied, ts, r.trapped_confirm_s)
    listed_trap = any(f in TRAPPED for f in t.faults)
    for f in t.faults:
        if f in TRAPPED:
            faults.seen(out, f.value, A.ELEVATOR_TRAPPED, ts)  # the fault-alarm check of the report
    s.trapped_telemetry = listed_trap or derived_trap
    if s.trapped_telemetry:
        first = ts if listed_trap else out.since("t:trap") or ts
        _trapped(
            out, first, ts, "engine", {"floor": t.floor, "seen_in": "telemetry", "derived": not listed_trap}
        )
    # derived movement faults (normal service only)
    trapped_now = s.trapped_telemetry or s.trapped_event
    derived = {
        "d:moving_with_door_open": out.held(
            "t:ucm", normal and t.moving and t.door is not fam.Door.CLOSED and not t.at_level, ts,
            r.moving_door_open_confirm_s,
        ),
        "d:stop_outside_door_zone": out.held(
            "t:soz", stopped_outside and not t.occupied and not trapped_now, ts, r.stop_outside_door_zone_s
        ),
    }  # fmt: skip
    for key, showing in derived.items():
        if showing:
            details = {"floor": t.floor, "door": t.door.value, "derived": True}
            faults.seen(out, key, _DERIVED[key], ts, raise_now=True, details=details)
        else:
            faults.gone(out, key, _DERIVED[key], ts)
    # implausible: speed reported while standing still
    if not t.moving and t.speed_mps > 0.3:
        out.raise_(A.SENSOR_IMPLAUSIBLE, ts, {"speed_mps": t.speed_mps, "moving": False})
    else:
        out.clear(A.SENSOR_IMPLAUSIBLE, ts)
    _trapped_end(out, ts)


def _listed_faults(out: Out, t: fam.Telemetry, ts: float, suppressed: bool) -> None:
    """The faults the telemetry lists (trapped handled apart): each seen, the others gone — except,
    in inspection / out of service, the movement faults, which are neither raised nor cleared then."""
    showing = {
        f.value: FAULT_ALARM[f]
        for f in t.faults
        if f not in TRAPPED and not (suppressed and f in MOVEMENT_FAULTS)
    }
    for key, type in showing.items():
        faults.seen(out, key, type, ts)
    seen = [(k, f.alarm) for k, f in out.st.faults.items() if not f.reported and not k.startswith("d:")]
    for key, type in seen:
        if key in showing or key in _TRAPPED_KEYS or (suppressed and key in _MOVEMENT_KEYS):
            continue
        faults.gone(out, key, type, ts)


def event(out: Out, msg: EventMessage[fam.Event], ts: float, th: AlertSettings) -> None:
    ev = msg.event
    if isinstance(ev, fam.FaultEvent):
        details = {"floor": ev.floor}
        if ev.code in TRAPPED:
            if ev.active:
                _state(out).trapped_event = True
                faults.reported(out, ev.code.value, A.ELEVATOR_TRAPPED, True, ts, details=details)
                _trapped(out, ts, ts, "device", details)
            else:  # the device says it is over; the episode ends with the rescuer (see _trapped_end)
                if faults.is_reported(out, ev.code.value):
                    del out.st.faults[ev.code.value]
                if not any(faults.is_reported(out, f.value) for f in TRAPPED):
                    _state(out).trapped_event = False
        elif not (ev.active and ev.code in MOVEMENT_FAULTS and _suppressed(out)):
            faults.reported(out, ev.code.value, FAULT_ALARM[ev.code], ev.active, ts, details=details)
    elif isinstance(ev, fam.AlarmButton):
        out.raise_(A.ELEVATOR_ALARM_BUTTON, ts, {"floor": ev.floor}, source="device", repeat=True)
    elif isinstance(ev, fam.EbikeDetected):
        out.raise_(A.ELEVATOR_EBIKE_IN_CAR, ts, {"floor": ev.floor}, source="device", repeat=True)
    elif isinstance(ev, fam.RescueArrived):
        _rescue_end(out, ts, th, ev.by)
    _trapped_end(out, ts)


def _trapped(out: Out, first: float, ts: float, source: str, details: Mapping[str, object]) -> None:
    """Evidence of trapped passengers (first seen at `first`): the alarm and the rescue clock, once
    per episode."""
    s = _state(out)
    if s.rescue is not None or s.rescued_at is not None:
        return  # the episode is running (or its rescuer is there)
    out.raise_(A.ELEVATOR_TRAPPED, ts, {**details, "first_evidence_at": first}, source=source)
    s.rescue = Rescue(first)


def _trapped_end(out: Out, ts: float) -> None:
    """The episode ends when its rescuer has arrived and no evidence is left."""
    s = _state(out)
    if s.rescued_at is None or s.trapped_telemetry or s.trapped_event:
        return
    s.rescued_at = None
    for f in TRAPPED:
        fault = out.st.faults.get(f.value)
        if fault is not None and not fault.reported:
            del out.st.faults[f.value]
    out.clear(A.ELEVATOR_TRAPPED, ts, {"by": "rescued"})


def _rescue_end(out: Out, ts: float, th: AlertSettings, by: str | None) -> None:
    s = _state(out)
    clock, s.rescue = s.rescue, None
    if clock is None:
        return
    t0 = clock.t0
    s.rescued_at = t0
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
            details={"how": "arrived", "by": by},
        )
    out.clear(A.RESCUE_OVERDUE, ts, {"how": "arrived", "after_s": round(measured, 3)})


def deadlines(out: Out, now: float, th: AlertSettings) -> None:
    clock = _state(out).rescue
    if clock is None:
        return
    r = th.elevator
    t0, step = clock.t0, clock.step
    steps = r.rescue_escalation_s
    while step < len(steps) and now >= t0 + steps[step]:
        out.escalate(A.ELEVATOR_TRAPPED, t0 + steps[step], {"level": step + 1, "after_s": steps[step]})
        step += 1
    clock.step = step
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
