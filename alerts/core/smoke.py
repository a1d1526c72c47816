"""Smoke alarms and electrical-fire detectors (standards.md §3): fire alarm (which starts the building's
fire linkage), detector faults, low battery, residual current and cable temperature, and the
detector's own tests.

- A test never looks like a fire: an alarm event with `test: true`, or the `test` state, raises no
  fire alarm and starts no linkage; a real alarm event during a test still does (safety first).
- Silenced is not cleared: the `silenced` and `test` states say nothing about the fire or the faults
  behind them, so neither clears a fire alarm nor a fault seen in telemetry (silent fault).
- Test records (Jiangsu item [10]: periodic inspection records): every `self_test` event and every
  test alarm is a compliance finding of check `self_test` (compliant = passed), with its date, in
  compliance_findings — the records a maintenance report reads. A failed self-test is a detector
  fault reported by the device. A battery self-check (`battery_checked_at`) older than
  battery_check_max_s (GB 20517-2025 §5.11.1: ≤ 24 h) raises battery_check_overdue and is a
  non-compliant `self_test` finding, once per lapse.
- Battery-fault silence (GB 20517-2025 §5.11.2: (7 ± 1) h): a silence while the low-battery fault
  is open is recorded (`SmokeState.silence`, alerts/core/records.py: its start, the duration
  announced, whether it was notified again and found too long); battery_silence_s after
  its start the low-battery alarm is notified again (escalation), and a silence announced or seen
  longer than battery_silence_s + battery_silence_tolerance_s is a non-compliant fault_alarm finding
  (`battery_silence_too_long`). A fire alarm during the silence is raised as always.
"""

from __future__ import annotations

from alerts.config import AlertSettings, SmokeRules
from alerts.core import faults
from alerts.core.model import Out
from alerts.core.records import BatterySilence, SmokeState
from devices.alarms import AlarmType, Check
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
# states in which the device's report says nothing about the faults behind it
_MASKING = frozenset({fam.State.SILENCED, fam.State.TEST})


def _state(out: Out) -> SmokeState:
    s = out.st.family
    if not isinstance(s, SmokeState):
        s = out.st.family = SmokeState()
    return s


def _fault_alarm(code: fam.FaultCode) -> AlarmType:
    return A.LOW_BATTERY if code is fam.FaultCode.LOW_BATTERY else A.SMOKE_DETECTOR_FAULT


def telemetry(out: Out, msg: TelemetryMessage[fam.Telemetry], ts: float, th: AlertSettings) -> None:
    r = th.smoke_alarm
    t = msg.data
    if t.state is fam.State.ALARM:
        out.raise_(A.FIRE_ALARM, ts, {"source": "telemetry"}, source="device")
    elif t.state is fam.State.NORMAL and not out.st.marks.get("ev:fire"):
        out.clear(A.FIRE_ALARM, ts, {"state": t.state.value})
    # a silenced detector keeps its fire alarm open upstream (domain.md §3), and its faults
    if t.state not in _MASKING:
        faults.sync(out, {"*": A.SMOKE_DETECTOR_FAULT} if t.state is fam.State.FAULT else {}, "*", ts)
    if t.battery_pct is not None:
        out.low_hysteresis(A.LOW_BATTERY, t.battery_pct, r.low_battery_pct, r.battery_clear_pct, ts)
    _battery_silence(out, t.state is fam.State.SILENCED, None, ts, r)
    if t.battery_checked_at is not None:
        _battery_check(out, ts - t.battery_checked_at.timestamp(), ts, r)
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


def _battery_check(out: Out, age_s: float, ts: float, r: SmokeRules) -> None:
    """GB 20517-2025 §5.11.1: the battery is checked at least every 24 h."""
    if age_s > r.battery_check_max_s:
        details = {"age_s": round(age_s, 1), "max_s": r.battery_check_max_s}
        s = _state(out)
        if not s.check_overdue:
            s.check_overdue = True
            out.finding(Check.SELF_TEST, "battery_check_overdue", False, ts, details=details)
        out.raise_(A.BATTERY_CHECK_OVERDUE, ts, details)
    elif age_s >= 0:  # a check in the future is a clock problem, not a new check
        if isinstance(out.st.family, SmokeState):
            out.st.family.check_overdue = False
        out.clear(A.BATTERY_CHECK_OVERDUE, ts, {"age_s": round(age_s, 1)})


def _battery_silence(out: Out, silenced: bool, duration_s: int | None, ts: float, r: SmokeRules) -> None:
    if not silenced:  # (no record made for nothing: most reports are not silenced)
        if isinstance(out.st.family, SmokeState):
            out.st.family.silence = None
        return
    bs = out.st.family.silence if isinstance(out.st.family, SmokeState) else None
    if bs is None:
        if not out.is_open(A.LOW_BATTERY):
            return  # a silence of something else (a test, a fire's sounder)
        bs = _state(out).silence = BatterySilence(ts, duration_s)
    elif duration_s is not None:
        bs.announced_s = duration_s
    limit = r.battery_silence_s + r.battery_silence_tolerance_s
    longest = max(ts - bs.start, -1 if bs.announced_s is None else bs.announced_s)
    if longest > limit and not bs.too_long:
        bs.too_long = True
        out.finding(
            Check.FAULT_ALARM,
            "battery_silence_too_long",
            False,
            ts,
            trigger_ts=bs.start,
            deadline_s=float(limit),
            measured_s=float(longest),
            details={} if bs.announced_s is None else {"announced_s": bs.announced_s},
        )


def deadlines(out: Out, now: float, th: AlertSettings) -> None:
    """Battery-fault silence over: the low-battery alarm is notified again while it is still open."""
    bs = out.st.family.silence if isinstance(out.st.family, SmokeState) else None
    if bs is None or bs.reminded or now - bs.start < th.smoke_alarm.battery_silence_s:
        return
    bs.reminded = True
    if out.is_open(A.LOW_BATTERY):
        at = bs.start + th.smoke_alarm.battery_silence_s
        out.escalate(A.LOW_BATTERY, at, {"reason": "battery_silence_over", "silenced_at_s": bs.start})


def event(out: Out, msg: EventMessage[fam.Event], ts: float, th: AlertSettings) -> None:
    ev = msg.event
    if isinstance(ev, fam.Alarm):
        if ev.test:  # a test is a record of the alarm working, never a fire (nor a linkage)
            details = {"kind": ev.kind.value, **({} if ev.value is None else {"value": ev.value})}
            out.finding(Check.SELF_TEST, "alarm_test", True, ts, details=details)
            return
        if ev.kind in _FIRE_KINDS:
            out.st.marks["ev:fire"] = 1
        out.raise_(_KIND_ALARM[ev.kind], ts, {"kind": ev.kind.value, "value": ev.value}, source="device")
    elif isinstance(ev, fam.Cleared):
        if ev.kind in _FIRE_KINDS:
            out.st.marks.pop("ev:fire", None)
        out.clear(_KIND_ALARM[ev.kind], ts, {"by": "device"})
    elif isinstance(ev, fam.Fault):
        faults.reported(out, ev.code.value, _fault_alarm(ev.code), ev.active, ts)
    elif isinstance(ev, fam.SelfTest):
        out.finding(Check.SELF_TEST, "self_test", ev.ok, ts)
        if not ev.ok or faults.is_reported(out, "self_test"):
            faults.reported(out, "self_test", A.SMOKE_DETECTOR_FAULT, not ev.ok, ts)
    elif isinstance(ev, fam.Silenced):
        _battery_silence(out, True, ev.duration_s, ts, th.smoke_alarm)
