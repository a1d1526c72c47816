"""Linkage checks (domain.md §5.4): after a trigger, a device must act within a deadline.

Fire alarm in a building → access doors on its evacuation routes released, its elevators recalled,
its common lighting forced on (GB 50396-2007 §9.0.1(2), GB 50116-2013, GB 50034-2013 §7.3.4 [S]);
gas high alarm → the detector's shut-off valve closed. The fire linkage starts only once the fire is
confirmed by `AlertSettings.fire_linkage_signals` independent alarm signals (GB 50116-2013 §4.1.6
"与" logic; `confirmed_fire`): a single detector raises the fire alarm and nothing else. Deadlines
default to 3 s (GB 50166-2019 [S2]); an elevator's is its recall time (`recall_deadline_s`).

On the device that must act: `st.actions[action]` = Obligation(trigger ts, deadline ts, stage,
signals = the confirming signals) (stage WAITING; COMMANDED: failed, command sent, waiting for its
effect; ESCALATED). Marks: "sat:<action>" = 1
while the device's last report already shows the action done (a door already released satisfies at
once). "ex:<action>" = why the device is exempt now (an elevator in inspection or out of service does
not answer a fire recall: no obligation, no `linkage_failed`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from alerts.config import AlertSettings, ElevatorRules
from alerts.core.model import DeviceContext, DeviceState, Obligation, Out, Stage
from devices.alarms import AlarmType, Check
from devices.contract import Family

A = AlarmType
COMMANDS: dict[str, tuple[str, dict[str, Any]]] = {
    "valve_close": ("close_valve", {}),
    "door_release": ("release_all", {}),
    "elevator_recall": ("recall", {}),
    "light_force_on": ("force_on", {"active": True}),
}


def confirmed_fire(
    building: Iterable[tuple[DeviceContext, DeviceState]], th: AlertSettings
) -> list[str] | None:
    """The uids of the building's alarm signals if they confirm a fire, else None: distinct smoke
    alarms / manual call points with their fire alarm open, at least `fire_linkage_signals` of them."""
    signals = sorted(
        ctx.uid for ctx, st in building if ctx.family is Family.SMOKE_ALARM and A.FIRE_ALARM in st.open
    )
    return signals if len(signals) >= th.fire_linkage_signals else None


def recall_deadline_s(ctx: DeviceContext, r: ElevatorRules) -> float:
    """Time for a car to reach the recall floor: the fixed overhead plus the travel from the top floor
    at the car's speed, when its floors are known; the flat `recall_deadline_s` otherwise."""
    if ctx.floors is None:
        return float(r.recall_deadline_s)
    travel_m = max(ctx.floors - r.recall_floor, 0) * r.floor_height_m
    speed = ctx.rated_speed_mps or r.car_speed_mps
    return round(r.recall_overhead_s + travel_m / speed, 1)


def fire_action(ctx: DeviceContext, th: AlertSettings) -> tuple[str, float] | None:
    """What a device must do when a fire is confirmed in its building, and by when (s), or None."""
    if ctx.family is Family.ACCESS_DOOR and ctx.evacuation_route:
        return "door_release", th.access_door.release_deadline_s
    if ctx.family is Family.ELEVATOR:
        return "elevator_recall", recall_deadline_s(ctx, th.elevator)
    if ctx.family is Family.LIGHT and ctx.building_id is not None:
        return "light_force_on", th.light.force_on_deadline_s
    return None


def expect(out: Out, action: str, ts: float, deadline_s: float, signals: Iterable[str] = ()) -> None:
    if action in out.st.actions or _exempt(out, action):
        return  # already waiting (another detector of the same fire), or exempt
    confirmed = list(signals)
    if out.st.marks.get("sat:" + action):
        out.finding(
            Check.LINKAGE,
            action,
            True,
            ts,
            trigger_ts=ts,
            deadline_s=deadline_s,
            measured_s=0.0,
            details={"confirmed_by": confirmed} if confirmed else None,
        )
        return
    out.st.actions[action] = Obligation(ts, ts + deadline_s, signals=tuple(confirmed))


def exempt(out: Out, action: str, reason: str | None) -> None:
    """The device's latest report says whether it can take part in the linkage (None: it can)."""
    if reason:
        if out.st.exempt is None:
            out.st.exempt = {}
        out.st.exempt[action] = reason
    elif out.st.exempt:
        out.st.exempt.pop(action, None)


def _exempt(out: Out, action: str) -> str | None:
    """Why the device cannot take part in `action` now (None: it can)."""
    return out.st.exempt.get(action) if out.st.exempt else None


def state(out: Out, action: str, satisfied: bool, ts: float) -> None:
    """The device's latest report shows whether the action is done."""
    if satisfied:
        out.st.marks["sat:" + action] = 1
        done(out, action, ts)
    else:
        out.st.marks.pop("sat:" + action, None)


def _details(ob: Obligation, **extra: Any) -> dict[str, Any]:
    return {**extra, "confirmed_by": list(ob.signals)} if ob.signals else dict(extra)


def done(out: Out, action: str, ts: float) -> None:
    ob = out.st.actions.pop(action, None)
    if ob is None:
        return
    t0, deadline, stage = ob.t0, ob.deadline, ob.stage
    if stage is Stage.WAITING:
        out.finding(
            Check.LINKAGE,
            action,
            ts <= deadline,
            ts,
            trigger_ts=t0,
            deadline_s=round(deadline - t0, 3),
            measured_s=ts - t0,
            details=_details(ob) or None,
        )
    elif not out.st.actions:
        out.clear(A.LINKAGE_FAILED, ts, {"action": action, "done_after_s": round(ts - t0, 3)})


def deadlines(out: Out, now: float, th: AlertSettings, recall_floor: int) -> None:
    actions = out.st.actions
    for action in list(actions):
        ob = actions[action]
        t0, deadline, stage = ob.t0, ob.deadline, ob.stage
        if stage is Stage.ESCALATED or now <= deadline:
            continue
        if stage is Stage.WAITING and _exempt(out, action):  # out of service since: it cannot act
            del actions[action]
            continue
        details = {"action": action, "trigger_at": t0}
        if stage is Stage.WAITING:
            out.finding(
                Check.LINKAGE,
                action,
                False,
                deadline,
                trigger_ts=t0,
                deadline_s=round(deadline - t0, 3),
                details=_details(ob, outcome="not_done"),
            )
            out.raise_(A.LINKAGE_FAILED, deadline, details, source="linkage")
            name, params = COMMANDS[action]
            if name == "recall":
                params = {"floor": recall_floor}
            out.command(name, params, deadline, A.LINKAGE_FAILED)
            actions[action] = replace(ob, deadline=deadline + th.command_verify_s, stage=Stage.COMMANDED)
        else:
            out.escalate(A.LINKAGE_FAILED, deadline, {"reason": "command_not_effective", **details})
            actions[action] = replace(ob, stage=Stage.ESCALATED)
