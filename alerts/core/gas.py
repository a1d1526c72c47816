"""Gas alarms (standards.md §2): low/high alarms, detector faults, and the valve linkage.

Alarm level: the device's own alarm and Yiju's thresholds combine, they do not fight. Each source
says raise, hold or clear; an alarm is raised when any source says raise and cleared only when every
source says clear, so a device in high_alarm below Yiju's LEL threshold, or a CO reading, no longer
clears and re-raises the alarm on every report. The device's `GasState` (alerts/core/records.py):
    `event_level` = the level of the device's alarm events (1 low, 2 high; latched until `cleared`)
    `state_level` = the level of the device's reported state (normal 0, low_alarm 1, high_alarm 2)
    `reading` = the last reading valid for thresholds
Readings in `warmup` (after power-on: a building power cut would otherwise close every kitchen valve)
and `fault` (a fault is its own alarm, gas_detector_fault) are not valid for thresholds: they change
no level and clear nothing.

Valve linkage (domain.md §5.4), two deadlines from the high alarm: by `valve_command_deadline_s`
(GB 50166-2019 [S2]: a linkage controller's start signal ≤ 3 s) the valve must have been told to
close — if it is not closed by then Yiju sends close_valve itself (`close_due` = that instant); by
`valve_close_deadline_s` (a motorised valve takes seconds to turn) it must be reported closed, else a
non-compliant linkage finding, critical linkage_failed, close_valve again and verification
(alerts.core.linkage).
"""

from __future__ import annotations

from alerts.config import AlertSettings, GasRules
from alerts.core import faults, linkage
from alerts.core.model import Out, Stage
from alerts.core.records import GasReading, GasState
from devices.alarms import AlarmType
from devices.envelope import EventMessage, TelemetryMessage
from devices.families import gas_alarm as fam

A = AlarmType
_STATE_LEVEL = {fam.State.NORMAL: 0, fam.State.LOW_ALARM: 1, fam.State.HIGH_ALARM: 2}
_RAISE, _HOLD, _CLEAR = 1, 0, -1


def _state(out: Out) -> GasState:
    s = out.st.family
    if not isinstance(s, GasState):
        s = out.st.family = GasState()
    return s


def _threshold(on: bool, clear: bool) -> int:
    return _RAISE if on else _CLEAR if clear else _HOLD


def _yiju(out: Out, r: GasRules) -> tuple[int, int]:
    """What Yiju's own thresholds say about (low, high), from the last valid reading."""
    reading = _state(out).reading
    if reading is None:
        return _CLEAR, _CLEAR
    lel, co = reading.lel_pct, -1.0 if reading.co_ppm is None else reading.co_ppm
    hyst, co_hyst = r.clear_hysteresis_lel_pct, r.co_clear_hysteresis_ppm
    low = _threshold(
        lel >= r.low_alarm_lel_pct or co >= r.co_low_ppm,
        lel < r.low_alarm_lel_pct - hyst and co < r.co_low_ppm - co_hyst,
    )
    high = _threshold(
        lel >= r.high_alarm_lel_pct or co >= r.co_high_ppm,
        lel < r.high_alarm_lel_pct - hyst and co < r.co_high_ppm - co_hyst,
    )
    return low, high


def _apply(out: Out, ts: float, th: AlertSettings, details: dict[str, object]) -> None:
    """Raise or clear the low and high alarms from every source's say."""
    s = _state(out)
    device = max(s.event_level, s.state_level)
    low, high = _yiju(out, th.gas_alarm)
    high_before = out.is_open(A.GAS_HIGH_ALARM)
    # high first: a reading over both thresholds raises the high alarm first
    for type, level, yiju in ((A.GAS_HIGH_ALARM, 2, high), (A.GAS_LOW_ALARM, 1, low)):
        if device == level or yiju == _RAISE:
            out.raise_(type, ts, details, source="device" if device == level else "engine")
        elif device < level and yiju == _CLEAR:  # a device in high alarm holds the low one
            out.clear(type, ts, details)
    if not high_before and out.is_open(A.GAS_HIGH_ALARM):
        _expect_valve(out, ts, th)


def _expect_valve(out: Out, ts: float, th: AlertSettings) -> None:
    if _state(out).valve == "open":
        linkage.expect(out, "valve_close", ts, th.gas_alarm.valve_close_deadline_s)
        if "valve_close" in out.st.actions:
            _state(out).close_due = ts + th.gas_alarm.valve_command_deadline_s


def _valve_closed(out: Out, ts: float) -> None:
    _state(out).close_due = None
    linkage.done(out, "valve_close", ts)


def deadlines(out: Out, now: float, th: AlertSettings) -> None:
    """The close signal is due and the valve is still open: Yiju gives it."""
    s = _state(out)
    due = s.close_due
    if due is None or now <= due:
        return
    s.close_due = None
    ob = out.st.actions.get("valve_close")
    if ob is not None and ob.stage is Stage.WAITING:
        out.command("close_valve", {}, due, A.GAS_HIGH_ALARM)


def telemetry(out: Out, msg: TelemetryMessage[fam.Telemetry], ts: float, th: AlertSettings) -> None:
    t = msg.data
    s = _state(out)
    s.valve = t.valve.value
    if t.valve is fam.Valve.CLOSED:
        _valve_closed(out, ts)
    if t.state not in (fam.State.WARMUP, fam.State.FAULT):
        s.state_level = _STATE_LEVEL[t.state]
        s.reading = GasReading(t.lel_pct, t.co_ppm)
        details: dict[str, object] = {"lel_pct": t.lel_pct, "state": t.state.value}
        if t.co_ppm is not None:
            details["co_ppm"] = t.co_ppm
        _apply(out, ts, th, details)
    faults.sync(out, {"*": A.GAS_DETECTOR_FAULT} if t.state is fam.State.FAULT else {}, "*", ts)


def event(out: Out, msg: EventMessage[fam.Event], ts: float, th: AlertSettings) -> None:
    ev = msg.event
    s = _state(out)
    if isinstance(ev, fam.High | fam.Low):
        s.event_level = 2 if isinstance(ev, fam.High) else 1
        details = {"gas": ev.gas.value, "lel_pct": ev.lel_pct, "co_ppm": ev.co_ppm, "by": "device"}
        _apply(out, ts, th, {k: v for k, v in details.items() if v is not None})
    elif isinstance(ev, fam.Cleared):
        s.event_level = 0
        s.state_level = 0
        _apply(out, ts, th, {"by": "device"})
    elif isinstance(ev, fam.ValveClosed):
        s.valve = "closed"
        _valve_closed(out, ts)
    elif isinstance(ev, fam.ValveOpened):
        s.valve = "open"
    elif isinstance(ev, fam.Fault):
        faults.reported(out, ev.code.value, A.GAS_DETECTOR_FAULT, ev.active, ts)
