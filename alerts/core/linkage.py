"""Linkage checks (domain.md §5.4): after a trigger, a device must act within a deadline.

Fire alarm in a building → access doors on its evacuation routes released, its elevators recalled,
its common lighting forced on (GB 50396-2007 §9.0.1(2), GB 50116-2013, GB 50034-2013 §7.3.4 [S]);
gas high alarm → the detector's shut-off valve closed. Deadlines default to 3 s (GB 50166-2019 [S2]),
the elevator's to its recall time.

Marks on the device that must act: "l:<action>" = [trigger ts, deadline ts, stage] (stage 0: waiting;
1: failed, command sent, waiting for its effect; 2: escalated). "sat:<action>" = 1 while the device's
last report already shows the action done (a door already released satisfies at once).
"""

from __future__ import annotations

from typing import Any

from alerts.config import AlertSettings
from alerts.core.model import DeviceContext, Out
from devices.alarms import AlarmType, Check
from devices.contract import Family

A = AlarmType
COMMANDS: dict[str, tuple[str, dict[str, Any]]] = {
    "valve_close": ("close_valve", {}),
    "door_release": ("release_all", {}),
    "elevator_recall": ("recall", {}),
    "light_force_on": ("force_on", {"active": True}),
}


def fire_action(ctx: DeviceContext, th: AlertSettings) -> tuple[str, float] | None:
    """What a device must do when a fire alarm goes off in its building, and by when (s), or None."""
    if ctx.family is Family.ACCESS_DOOR and ctx.evacuation_route:
        return "door_release", th.access_door.release_deadline_s
    if ctx.family is Family.ELEVATOR:
        return "elevator_recall", th.elevator.recall_deadline_s
    if ctx.family is Family.LIGHT and ctx.building_id is not None:
        return "light_force_on", th.light.force_on_deadline_s
    return None


def expect(out: Out, action: str, ts: float, deadline_s: float) -> None:
    key = "l:" + action
    if key in out.st.marks:
        return  # already waiting (a second detector in the same fire)
    if out.st.marks.get("sat:" + action):
        out.finding(Check.LINKAGE, action, True, ts, trigger_ts=ts, deadline_s=deadline_s, measured_s=0.0)
        return
    out.st.marks[key] = [ts, ts + deadline_s, 0]


def state(out: Out, action: str, satisfied: bool, ts: float) -> None:
    """The device's latest report shows whether the action is done."""
    if satisfied:
        out.st.marks["sat:" + action] = 1
        done(out, action, ts)
    else:
        out.st.marks.pop("sat:" + action, None)


def done(out: Out, action: str, ts: float) -> None:
    ob = out.st.marks.pop("l:" + action, None)
    if ob is None:
        return
    t0, deadline, stage = ob
    if stage == 0:
        out.finding(
            Check.LINKAGE,
            action,
            ts <= deadline,
            ts,
            trigger_ts=t0,
            deadline_s=round(deadline - t0, 3),
            measured_s=ts - t0,
        )
    elif not any(k.startswith("l:") for k in out.st.marks):
        out.clear(A.LINKAGE_FAILED, ts, {"action": action, "done_after_s": round(ts - t0, 3)})


def deadlines(out: Out, now: float, th: AlertSettings, recall_floor: int) -> None:
    for key in [k for k in out.st.marks if k.startswith("l:")]:
        ob = out.st.marks[key]
        t0, deadline, stage = ob
        if stage == 2 or now <= deadline:
            continue
        action = key[2:]
        details = {"action": action, "trigger_at": t0}
        if stage == 0:
            out.finding(
                Check.LINKAGE,
                action,
                False,
                deadline,
                trigger_ts=t0,
                deadline_s=round(deadline - t0, 3),
                details={"outcome": "not_done"},
            )
            out.raise_(A.LINKAGE_FAILED, deadline, details, source="linkage")
            name, params = COMMANDS[action]
            if name == "recall":
                params = {"floor": recall_floor}
            out.command(name, params, deadline, A.LINKAGE_FAILED)
            ob[1], ob[2] = deadline + th.command_verify_s, 1
        else:
            out.escalate(A.LINKAGE_FAILED, deadline, {"reason": "command_not_effective", **details})
            ob[2] = 2
