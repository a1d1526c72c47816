"""Smoke alarms and electrical-fire detectors (standards.md §3): fire alarm (which starts the building's
fire linkage), detector faults, low battery, residual current and cable temperature."""

from __future__ import annotations

from alerts.config import AlertSettings
from alerts.core import faults
from alerts.core.model import Out
from devices.alarms import AlarmType
from devices.envelope import EventMessage, TelemetryMessage
from devices.families import smoke_alarm as fam

A = AlarmType
_KIND_ALARM = {
    fam.AlarmKind.SMOKE: A.FIRE_ALARM,
    fam.AlarmKind.RESIDUAL_CURRENT: A.ELECTRICAL_FIRE_RESIDUAL_CURRENT,
    fam.AlarmKind.CABLE_TEMPERATURE: A.ELECTRICAL_FIRE_CABLE_TEMPERATURE,
    fam.AlarmKind.MANUAL_CALL_POINT: A.FIRE_ALARM,  # a fire alarm signal of its own for the linkage
}
_FIRE_KINDS = frozenset({fam.AlarmKind.SMOKE, fam.AlarmKind.MANUAL_CALL_POINT})


def _fault_alarm(code: fam.FaultCode) -> AlarmType:
    return A.LOW_BATTERY if code is fam.FaultCode.LOW_BATTERY else A.SMOKE_DETECTOR_FAULT


def telemetry(out: Out, msg: TelemetryMessage[fam.Telemetry], ts: float, th: AlertSettings) -> None:
    r = th.smoke_alarm
    t = msg.data
    if t.state is fam.State.ALARM:
        out.raise_(A.FIRE_ALARM, ts, {"source": "telemetry"}, source="device")
    elif t.state is fam.State.NORMAL and not out.st.marks.get("ev:fire"):
        out.clear(A.FIRE_ALARM, ts, {"state": t.state.value})
    # a silenced detector keeps its fire alarm open upstream (domain.md §3)
    faults.sync(out, {"*": A.SMOKE_DETECTOR_FAULT} if t.state is fam.State.FAULT else {}, "*", ts)
    if t.battery_pct is not None:
        out.low_hysteresis(A.LOW_BATTERY, t.battery_pct, r.low_battery_pct, r.battery_clear_pct, ts)
    out.hysteresis(
        A.ELECTRICAL_FIRE_RESIDUAL_CURRENT,
        t.residual_current_ma,
        r.residual_current_alarm_ma,
        r.residual_current_alarm_ma * r.residual_clear_ratio,
        ts,
    )
    out.hysteresis(
        A.ELECTRICAL_FIRE_CABLE_TEMPERATURE,
        t.cable_temp_c,
        r.cable_temp_alarm_c,
        r.cable_temp_alarm_c * r.residual_clear_ratio,
        ts,
    )


def event(out: Out, msg: EventMessage[fam.Event], ts: float, th: AlertSettings) -> None:
    ev = msg.event
    if isinstance(ev, fam.Alarm):
        if ev.kind in _FIRE_KINDS:
            out.st.marks["ev:fire"] = 1
        out.raise_(_KIND_ALARM[ev.kind], ts, {"kind": ev.kind.value, "value": ev.value}, source="device")
    elif isinstance(ev, fam.Cleared):
        if ev.kind in _FIRE_KINDS:
            out.st.marks.pop("ev:fire", None)
        out.clear(_KIND_ALARM[ev.kind], ts, {"by": "device"})
    elif isinstance(ev, fam.Fault):
        faults.reported(out, ev.code.value, _fault_alarm(ev.code), ev.active, ts)
