"""The fault-alarm check (domain.md §5.2) as primitives every family uses.

A fault can be known two ways: the device reports it (a fault event: it raised its own alarm), or
its telemetry shows a fault state. Every fault becomes a Yiju alarm. When telemetry shows a fault and
the device has not reported it within `fault_alarm_deadline_s`, the device fails the "fault alarm
function" check (`silent_fault`) and Yiju raises the alarm itself (source "compliance").

State: `DeviceState.faults` by fault key, one `Fault` record each (alerts/core/records.py): a fault
the device reports active (`reported`, since when), or one seen in telemetry and not reported (since
when it was first seen; `decided` once its deadline passed, `raised` when raised at once). `key`
names the fault ("3:fuse_blown" = port 3), "*" is a fault state without a code (matched by any
reported fault), and "d:<name>" a fault Yiju derives from the running state (an elevator moving with
its door open): it is raised at once (`seen(..., raise_now=True)`) and matched by any reported fault
of the same alarm.
"""

from __future__ import annotations

from typing import Any

from alerts.core.model import Out
from alerts.core.records import Fault
from devices.alarms import AlarmType, Check


def _any_active(out: Out, type: AlarmType) -> bool:
    return any(f.alarm == type and f.alarm_open for f in out.st.faults.values())


def is_reported(out: Out, key: str) -> bool:
    """Whether the device reports the fault `key` active."""
    fault = out.st.faults.get(key)
    return fault is not None and fault.reported


def _seen(out: Out, key: str) -> Fault | None:
    """The fault `key` as seen in telemetry and not reported, if it is."""
    fault = out.st.faults.get(key)
    return None if fault is None or fault.reported else fault


def reported(
    out: Out, key: str, type: AlarmType, active: bool, ts: float, *, details: dict[str, Any] | None = None
) -> None:
    """The device reported a fault (active) or its end (not active)."""
    faults = out.st.faults
    if active:
        pending = _seen(out, key)
        faults.pop(key, None)
        derived_keys = [
            k for k, f in faults.items() if k.startswith("d:") and not f.reported and f.alarm == type
        ]
        for k in derived_keys:
            derived = faults.pop(k)  # Yiju's own reading of the running state, now reported
            pending = pending or derived
        if pending is None or not pending.decided:
            # reported in time (or before telemetry showed it): the fault alarm function works
            measured = 0.0 if pending is None else max(0.0, ts - pending.at)
            out.finding(
                Check.FAULT_ALARM,
                key.rsplit(":", maxsplit=1)[-1],
                True,
                ts,
                trigger_ts=ts if pending is None else pending.at,
                measured_s=measured,
                details={"alarm": type.value},
            )
        faults[key] = Fault(ts, type, reported=True)
        out.raise_(type, ts, {**(details or {}), "fault": key}, source="device", repeat=pending is None)
        return
    faults.pop(key, None)
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
    faults = out.st.faults
    if key in faults:
        return
    if key == "*" and any(f.reported for f in faults.values()):
        return
    if key.startswith("d:") and any(f.reported and f.alarm == type for f in faults.values()):
        return  # the device already reports a fault of this alarm
    faults[key] = Fault(ts, type, raised=raise_now)
    if raise_now:
        out.raise_(type, ts, {**(details or {}), "fault": key, "seen_in": "telemetry"}, source="engine")


def gone(out: Out, key: str, type: AlarmType, ts: float) -> None:
    """Telemetry no longer shows the fault state `key`."""
    pending = _seen(out, key)
    if pending is None:
        return
    del out.st.faults[key]
    if (pending.decided or pending.raised) and not _any_active(out, type):
        out.clear(type, ts, {"fault": key, "by": "telemetry"})


def sync(out: Out, showing: dict[str, AlarmType], prefix: str, ts: float) -> None:
    """Telemetry shows exactly the faults in `showing` among the keys starting with `prefix`."""
    for key, type in showing.items():
        seen(out, key, type, ts)
    for key in [k for k, f in out.st.faults.items() if k.startswith(prefix) and not f.reported]:
        if key not in showing:
            gone(out, key, out.st.faults[key].alarm, ts)


def deadlines(out: Out, now: float, deadline_s: float) -> None:
    """Decide the silent faults whose deadline has passed at `now`."""
    for key, fault in list(out.st.faults.items()):
        if fault.reported or fault.decided or now - fault.at <= deadline_s:
            continue
        fault.decided = True
        type = fault.alarm
        at = fault.at + deadline_s
        out.finding(
            Check.FAULT_ALARM,
            "silent_fault",
            False,
            at,
            trigger_ts=fault.at,
            deadline_s=deadline_s,
            details={"fault": key, "alarm": type.value},
        )
        out.raise_(type, at, {"fault": key, "silent_fault": True}, source="compliance")
