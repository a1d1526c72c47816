"""The fault-alarm check (domain.md §5.2) as primitives every family uses.

A fault can be known two ways: the device reports it (a fault event: it raised its own alarm), or
its telemetry shows a fault state. Every fault becomes a Yiju alarm. When telemetry shows a fault and
the device has not reported it within `fault_alarm_deadline_s`, the device fails the "fault alarm
function" check (`silent_fault`) and Yiju raises the alarm itself (source "compliance").

Marks: "rf:<key>" = [ts, alarm type] for a reported active fault; "sf:<key>" = [first seen, decided,
alarm type(, raised at once)] for a fault seen in telemetry and not reported. `key` names the fault
("3:fuse_blown" = port 3), "*" is a fault state without a code (matched by any reported fault), and
"d:<name>" a fault Yiju derives from the running state (an elevator moving with its door open): it is
raised at once (`seen(..., raise_now=True)`) and matched by any reported fault of the same alarm.
"""

from __future__ import annotations

from typing import Any

from alerts.core.model import Out
from devices.alarms import AlarmType, Check


def _any_active(out: Out, type: AlarmType) -> bool:
    for key, value in out.st.marks.items():
        if key.startswith("rf:") and value[1] == type:
            return True
        if key.startswith("sf:") and value[2] == type and (value[1] or len(value) > 3):
            return True
    return False


def reported(
    out: Out, key: str, type: AlarmType, active: bool, ts: float, *, details: dict[str, Any] | None = None
) -> None:
    """The device reported a fault (active) or its end (not active)."""
    marks = out.st.marks
    if active:
        pending = marks.pop("sf:" + key, None)
        for mark in [m for m, v in marks.items() if m.startswith("sf:d:") and v[2] == type.value]:
            derived = marks.pop(mark)  # Yiju's own reading of the running state, now reported
            pending = pending or derived
        if pending is None or not pending[1]:
            # reported in time (or before telemetry showed it): the fault alarm function works
            measured = 0.0 if pending is None else max(0.0, ts - pending[0])
            out.finding(
                Check.FAULT_ALARM,
                key.rsplit(":", maxsplit=1)[-1],
                True,
                ts,
                trigger_ts=ts if pending is None else pending[0],
                measured_s=measured,
                details={"alarm": type.value},
            )
        marks["rf:" + key] = [ts, type.value]
        out.raise_(type, ts, {**(details or {}), "fault": key}, source="device", repeat=pending is None)
        return
    marks.pop("rf:" + key, None)
    marks.pop("sf:" + key, None)
    if not _any_active(out, type):
        out.clear(type, ts, {"fault": key, "by": "device"})


def seen(
    out: Out,
    key: str,
    type: AlarmType,
    ts: float,
    *,
    raise_now: bool = False,
    details: dict[str, Any] | None = None,
) -> None:
    """Telemetry shows the fault state `key`. `raise_now`: Yiju raises the alarm at once (a fault too
    dangerous to wait for the device's report); the fault-alarm check still waits for that report."""
    marks = out.st.marks
    if "rf:" + key in marks or "sf:" + key in marks:
        return
    if key == "*" and any(k.startswith("rf:") for k in marks):
        return
    if key.startswith("d:") and any(k.startswith("rf:") and v[1] == type.value for k, v in marks.items()):
        return  # the device already reports a fault of this alarm
    marks["sf:" + key] = [ts, 0, type.value, 1] if raise_now else [ts, 0, type.value]
    if raise_now:
        out.raise_(type, ts, {**(details or {}), "fault": key, "seen_in": "telemetry"}, source="engine")


def gone(out: Out, key: str, type: AlarmType, ts: float) -> None:
    """Telemetry no longer shows the fault state `key`."""
    pending = out.st.marks.pop("sf:" + key, None)
    if pending is not None and (pending[1] or len(pending) > 3) and not _any_active(out, type):
        out.clear(type, ts, {"fault": key, "by": "telemetry"})


def sync(out: Out, showing: dict[str, AlarmType], prefix: str, ts: float) -> None:
    """Telemetry shows exactly the faults in `showing` among the keys starting with `prefix`."""
    for key, type in showing.items():
        seen(out, key, type, ts)
    for mark in [m for m in out.st.marks if m.startswith("sf:" + prefix)]:
        key = mark[3:]
        if key not in showing:
            gone(out, key, AlarmType(out.st.marks[mark][2]), ts)


def deadlines(out: Out, now: float, deadline_s: float) -> None:
    """Decide the silent faults whose deadline has passed at `now`."""
    for mark, value in list(out.st.marks.items()):
        if not mark.startswith("sf:") or value[1] or now - value[0] <= deadline_s:
            continue
        value[1] = 1
        key = mark[3:]
        type = AlarmType(value[2])
        at = value[0] + deadline_s
        out.finding(
            Check.FAULT_ALARM,
            "silent_fault",
            False,
            at,
            trigger_ts=value[0],
            deadline_s=deadline_s,
            details={"fault": key, "alarm": type.value},
        )
        out.raise_(type, at, {"fault": key, "silent_fault": True}, source="compliance")
