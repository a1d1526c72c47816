"""Access doors (standards.md §5): forced open, held open, duress (latching, GB 50394-2007 §5.2.3 [S]:
never cleared automatically), tamper, repeated invalid credentials (≤ 5, GB 50396-2007 §5.1.5(1) [S]),
communication loss, and the fire release linkage.

Held open honours the door's mode: a door released for evacuation or held open by its own schedule
(`remain_open`, 常开: e.g. a lobby open in the daytime) is meant to be open. The limit is the door's
own (registry `devices.metadata.held_open_s`) or the community's `held_open_s`."""

from __future__ import annotations

from alerts.config import AlertSettings
from alerts.core import faults, linkage
from alerts.core.model import DeviceContext, Out
from devices.alarms import AlarmType
from devices.envelope import EventMessage, TelemetryMessage
from devices.families import access_door as fam

A = AlarmType


def telemetry(
    out: Out, msg: TelemetryMessage[fam.Telemetry], ts: float, th: AlertSettings, ctx: DeviceContext
) -> None:
    t = msg.data
    limit_s = ctx.held_open_s or th.access_door.held_open_s
    linkage.state(out, "door_release", t.mode is fam.Mode.RELEASED, ts)
    open_long = t.open and t.mode is fam.Mode.NORMAL
    if open_long and t.open_s is not None and t.open_s >= limit_s:
        out.raise_(A.DOOR_HELD_OPEN, ts, {"open_s": t.open_s, "limit_s": limit_s})
    elif out.held("t:open", open_long, ts, limit_s):
        out.raise_(A.DOOR_HELD_OPEN, ts, {"open_s": ts - (out.since("t:open") or ts), "limit_s": limit_s})
    if not open_long:
        out.held("t:open", False, ts, 0.0)
        if not out.st.marks.get("ev:held"):
            out.clear(A.DOOR_HELD_OPEN, ts, {"closed": not t.open, "mode": t.mode.value})
    if not t.open:
        out.clear(A.DOOR_FORCED_OPEN, ts, {"closed": True})


def event(out: Out, msg: EventMessage[fam.Event], ts: float, th: AlertSettings) -> None:
    r = th.access_door
    ev = msg.event
    if isinstance(ev, fam.Denied):
        if (n := out.count("denied", ts, r.denied_repeat_window_s)) >= r.denied_repeat_count:
            out.raise_(
                A.ACCESS_DENIED_REPEATED,
                ts,
                {"count": n, "reason": ev.reason.value},
                source="engine",
            )
    elif isinstance(ev, fam.Granted):
        out.reset_count("denied")  # consecutive invalid attempts end with a valid one
    elif isinstance(ev, fam.ForcedOpen):
        out.raise_(A.DOOR_FORCED_OPEN, ts, {}, source="device", repeat=True)
    elif isinstance(ev, fam.HeldOpen):
        if ev.active:
            out.st.marks["ev:held"] = 1
            out.raise_(A.DOOR_HELD_OPEN, ts, {"open_s": ev.open_s}, source="device")
        else:
            out.st.marks.pop("ev:held", None)
            out.clear(A.DOOR_HELD_OPEN, ts, {"by": "device"})
    elif isinstance(ev, fam.Duress):
        out.raise_(A.DOOR_DURESS, ts, {}, source="device", repeat=True)  # operator clears it
    elif isinstance(ev, fam.Tamper):
        faults.reported(out, "tamper", A.DOOR_TAMPER, ev.active, ts)
    elif isinstance(ev, fam.CommLoss):
        faults.reported(out, "comm_loss", A.DOOR_CONTROLLER_FAULT, ev.active, ts, details={"peer": ev.peer})
    elif isinstance(ev, fam.Released):
        linkage.state(out, "door_release", True, ts)
    elif isinstance(ev, fam.Restored):
        linkage.state(out, "door_release", False, ts)
