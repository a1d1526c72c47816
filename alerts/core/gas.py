"""Gas alarms (standards.md §2): low/high alarms with hysteresis, detector faults, and the valve
linkage: a high alarm must be followed by the shut-off valve closing within its deadline (domain.md
§5.4), else a critical `linkage_failed`, a close_valve command and verification."""

from __future__ import annotations

from alerts.config import AlertSettings
from alerts.core import faults, linkage
from alerts.core.model import Out
from devices.alarms import AlarmType
from devices.envelope import EventMessage, TelemetryMessage
from devices.families import gas_alarm as fam

A = AlarmType


def _expect_valve(out: Out, ts: float, th: AlertSettings) -> None:
    if out.st.marks.get("valve", "none") == "open":
        linkage.expect(out, "valve_close", ts, th.gas_alarm.valve_close_deadline_s)


def telemetry(out: Out, msg: TelemetryMessage[fam.Telemetry], ts: float, th: AlertSettings) -> None:
    r = th.gas_alarm
    t = msg.data
    out.st.marks["valve"] = t.valve.value
    if t.valve is fam.Valve.CLOSED:
        linkage.done(out, "valve_close", ts)
    high_before = out.is_open(A.GAS_HIGH_ALARM)
    hyst = r.clear_hysteresis_lel_pct
    device_says = out.st.marks.get("ev:gas")
    if device_says is None:
        out.hysteresis(A.GAS_HIGH_ALARM, t.lel_pct, r.high_alarm_lel_pct, r.high_alarm_lel_pct - hyst, ts)
        out.hysteresis(A.GAS_LOW_ALARM, t.lel_pct, r.low_alarm_lel_pct, r.low_alarm_lel_pct - hyst, ts)
        if t.co_ppm is not None:
            if t.co_ppm >= r.co_high_ppm:
                out.raise_(A.GAS_HIGH_ALARM, ts, {"co_ppm": t.co_ppm})
            elif t.co_ppm >= r.co_low_ppm:
                out.raise_(A.GAS_LOW_ALARM, ts, {"co_ppm": t.co_ppm})
    if t.state is fam.State.HIGH_ALARM:
        out.raise_(A.GAS_HIGH_ALARM, ts, {"lel_pct": t.lel_pct, "state": t.state.value}, source="device")
    elif t.state is fam.State.LOW_ALARM:
        out.raise_(A.GAS_LOW_ALARM, ts, {"lel_pct": t.lel_pct, "state": t.state.value}, source="device")
    if not high_before and out.is_open(A.GAS_HIGH_ALARM):
        _expect_valve(out, ts, th)
    faults.sync(out, {"*": A.GAS_DETECTOR_FAULT} if t.state is fam.State.FAULT else {}, "*", ts)


def event(out: Out, msg: EventMessage[fam.Event], ts: float, th: AlertSettings) -> None:
    ev = msg.event
    if isinstance(ev, fam.High):
        out.st.marks["ev:gas"] = 2
        if out.raise_(A.GAS_HIGH_ALARM, ts, {"gas": ev.gas.value, "lel_pct": ev.lel_pct}, source="device"):
            _expect_valve(out, ts, th)
    elif isinstance(ev, fam.Low):
        out.st.marks["ev:gas"] = 1
        out.raise_(A.GAS_LOW_ALARM, ts, {"gas": ev.gas.value, "lel_pct": ev.lel_pct}, source="device")
    elif isinstance(ev, fam.Cleared):
        out.st.marks.pop("ev:gas", None)
        out.clear(A.GAS_HIGH_ALARM, ts, {"by": "device"})
        out.clear(A.GAS_LOW_ALARM, ts, {"by": "device"})
    elif isinstance(ev, fam.ValveClosed):
        out.st.marks["valve"] = "closed"
        linkage.done(out, "valve_close", ts)
    elif isinstance(ev, fam.ValveOpened):
        out.st.marks["valve"] = "open"
    elif isinstance(ev, fam.Fault):
        faults.reported(out, ev.code.value, A.GAS_DETECTOR_FAULT, ev.active, ts)
