"""E-bike chargers (domain.md §5.1): over-temperature and its auto-cutoff, overload, short circuit,
leakage, full charge, session limits, protection switched off, silent faults. Port 1 of a post; incident
reports every INCIDENT_REPORT_S."""

from __future__ import annotations

import copy
import dataclasses
import json
from datetime import datetime

from devices.alarms import AlarmType, Check
from devices.contract import Family
from devices.families import ebike_charger
from simulators.behaviour import MAINS_V, PROTECTION
from simulators.scenarios.builder import (
    FAULT_ALARM_DEADLINE_S,
    INCIDENT_REPORT_S,
    SLACK_S,
    Builder,
    Factory,
    Picker,
    Script,
    port_report,
    registrar,
)
from simulators.scenarios.truth import Scenario

A = AlarmType
CH = ebike_charger.DEFAULTS

SCENARIOS: dict[str, Factory] = {}
scenario = registrar(SCENARIOS)

HOT_C = CH.port_over_temp_c + 5  # 85 °C: over the 80 °C AP3000 threshold
T_HOT = 60.0  # the first report showing the trigger
CONFIRMED = T_HOT + CH.over_temp_confirm_s  # 90: the engine's confirmation time has passed
CUT_DEADLINE = T_HOT + CH.over_temperature_cutoff_s  # 150: the deadline runs from the first hot report


def _charger_hot(b: Builder, p: Picker, *, cut_at: float | None) -> Script:
    c = b.script(p.take(Family.EBIKE_CHARGER))
    c.port(30, 1, **port_report(1, power_w=300.0, temp_c=45.0))
    s = T_HOT
    while s <= CUT_DEADLINE + 60:
        if cut_at is not None and s >= cut_at:
            break
        c.port(s, 1, port_temp_c=HOT_C + (s - T_HOT) / 10)
        s += INCIDENT_REPORT_S
    if cut_at is not None:
        c.event(cut_at, type="session_stop", port=1, reason="port_over_temp", energy_kwh=0.6, duration_s=3700)
        c.port(cut_at, 1, state="idle", relay_on=False, current_a=0.0, power_w=0.0, port_temp_c=HOT_C - 1)
        c.port(cut_at + 10, 1, port_temp_c=78.0)
        # 72 °C: below the 75 °C clear point (80 − 5 hysteresis) — the alarm clears
        c.port(cut_at + 20, 1, port_temp_c=72.0)
        c.port(cut_at + 200, 1, port_temp_c=40.0)
    return c


@scenario("charger_overtemp_cut")
def charger_overtemp_cut(p: Picker, start: datetime) -> Scenario:
    b = Builder(
        "charger_overtemp_cut",
        p.compound,
        start,
        "Port 1 reaches 85 °C while charging; the post cuts it 35 s later (stop reason port_over_temp): "
        "over-temperature alarm, compliant auto-cutoff finding with the measured delay.",
    )
    cut = T_HOT + 35
    c = _charger_hot(b, p, cut_at=cut)
    b.alarm(A.CHARGER_OVER_TEMPERATURE, c.uid, CONFIRMED, CONFIRMED + INCIDENT_REPORT_S)
    b.finding(Check.AUTO_CUTOFF, "over_temperature", c.uid, True, cut, cut, channel=1)
    return b.build()


@scenario("charger_overtemp_stuck_relay")
def charger_overtemp_stuck_relay(p: Picker, start: datetime) -> Scenario:
    b = Builder(
        "charger_overtemp_stuck_relay",
        p.compound,
        start,
        "Port 1 at 85 °C and rising, and the relay stays stuck past the cutoff deadline: over-temperature "
        "alarm, then at the deadline a critical auto_cutoff_failed and a non-compliant auto-cutoff "
        "finding; the relay opens 30 s after the deadline, and the finding records the cut as late, "
        "with its measured delay (issue 9 item 5).",
    )
    late = CUT_DEADLINE + 30
    c = _charger_hot(b, p, cut_at=late)
    b.alarm(A.CHARGER_OVER_TEMPERATURE, c.uid, CONFIRMED, CONFIRMED + INCIDENT_REPORT_S)
    b.alarm(A.AUTO_CUTOFF_FAILED, c.uid, CUT_DEADLINE, CUT_DEADLINE + INCIDENT_REPORT_S)
    b.finding(
        Check.AUTO_CUTOFF, "over_temperature", c.uid, False, CUT_DEADLINE, CUT_DEADLINE + INCIDENT_REPORT_S,
        channel=1, outcome="late", measured_s=late - T_HOT,
    )  # fmt: skip
    return b.build()


@scenario("charger_hot_user_unplug")
def charger_hot_user_unplug(p: Picker, start: datetime) -> Scenario:
    b = Builder(
        "charger_hot_user_unplug",
        p.compound,
        start,
        "Port 1 reaches 85 °C; the post does not cut it, and 40 s later the user unplugs the bike "
        "(stop reason user_unplug). That is not the post protecting itself: at the deadline "
        "auto_cutoff_failed and a non-compliant (not_cut) finding, although the port has no power.",
    )
    c = b.script(p.take(Family.EBIKE_CHARGER))
    c.port(30, 1, **port_report(1, power_w=300.0, temp_c=45.0))
    unplug = T_HOT + 40
    for s in range(int(T_HOT), int(unplug), INCIDENT_REPORT_S):
        c.port(s, 1, port_temp_c=HOT_C)
    c.event(unplug, type="session_stop", port=1, reason="user_unplug", energy_kwh=0.6, duration_s=3700)
    c.port(unplug, 1, state="idle", relay_on=False, current_a=0.0, power_w=0.0, port_temp_c=HOT_C - 1)
    for after, temp in ((unplug + 10, 78.0), (unplug + 20, 72.0), (CUT_DEADLINE + 150, 40.0)):
        c.port(after, 1, port_temp_c=temp)
    b.alarm(A.CHARGER_OVER_TEMPERATURE, c.uid, CONFIRMED, CONFIRMED + INCIDENT_REPORT_S)
    b.alarm(A.AUTO_CUTOFF_FAILED, c.uid, CUT_DEADLINE, CUT_DEADLINE + SLACK_S)
    b.finding(
        Check.AUTO_CUTOFF, "over_temperature", c.uid, False, CUT_DEADLINE, CUT_DEADLINE + SLACK_S,
        channel=1, outcome="not_cut",
    )  # fmt: skip
    return b.build()


@scenario("charger_refused_port_sensor")
def charger_refused_port_sensor(p: Picker, start: datetime) -> Scenario:
    b = Builder(
        "charger_refused_port_sensor",
        p.compound,
        start,
        "A shed's normal leakage (150 mA, under the 300 mA electrical-fire alarm setting) all along: no "
        "alarm. Port 2's temperature sensor breaks (900 °C) in the very report where the post's smoke "
        "sensor alarms: only that reading is refused (sensor_implausible); the smoke is seen, and the "
        "post's cut of both ports 5 s later is a compliant post-wide auto-cutoff.",
    )
    c = b.script(p.take(Family.EBIKE_CHARGER))
    normal = 150.0
    c.port(20, 1, **port_report(1, power_w=250.0))
    c.data["leakage_ma"] = normal
    c.port(30, 2, **port_report(2, power_w=280.0))
    smoke, cut = 60.0, 65.0
    c.data["smoke"] = True
    _with_reading(c, smoke, port=2, port_temp_c=900.0)
    for n in (1, 2):
        c.event(cut, type="session_stop", port=n, reason="smoke")
        c.data["ports"][n - 1].update(port_report(n))
    _with_reading(c, cut, port=2, port_temp_c=900.0)  # the relay states of this report still count
    c.data["smoke"] = False
    for s in (120, 300, 480, 660):
        c.tele(s)
    b.alarm(A.CHARGER_SMOKE, c.uid, smoke)
    b.alarm(A.SENSOR_IMPLAUSIBLE, c.uid, smoke)
    b.finding(
        Check.AUTO_CUTOFF, "smoke", c.uid, True, cut, channel=0, outcome="in_time", measured_s=cut - smoke
    )
    return b.build()


def _with_reading(c: Script, s: float, *, port: int, **reading: float) -> None:
    """A report whose reading is out of its physical range: the emitter refuses to build one, so the
    valid report is built and the reading patched into its payload."""
    msg = c.em.telemetry(c._at(s), copy.deepcopy(c.data))
    doc = json.loads(msg.payload)
    doc["data"]["ports"][port - 1].update(reading)
    c.b.add(dataclasses.replace(msg, payload=json.dumps(doc).encode()))


@scenario("charger_overload")
def charger_overload(p: Picker, start: datetime) -> Scenario:
    b = Builder(
        "charger_overload",
        p.compound,
        start,
        "Port 1 draws 2,200 W (limit 2,000 W, under the 10 A current limit) from +60 s; the post stops "
        "it with reason overload at +100 s: overload alarm and a compliant auto-cutoff finding.",
    )
    c = b.script(p.take(Family.EBIKE_CHARGER))
    c.port(30, 1, **port_report(1, power_w=300.0, temp_c=40.0))
    power = CH.port_power_limit_w + 200
    for s in range(60, 100, INCIDENT_REPORT_S):
        c.port(s, 1, power_w=power, current_a=round(power / MAINS_V, 3))
    c.event(100, type="session_stop", port=1, reason="overload", energy_kwh=0.7, duration_s=3700)
    c.port(100, 1, state="idle", relay_on=False, current_a=0.0, power_w=0.0)
    c.port(300, 1)
    b.alarm(A.CHARGER_OVERLOAD, c.uid, 60 + CH.overload_confirm_s, 60 + CH.overload_confirm_s + 10)
    b.finding(Check.AUTO_CUTOFF, "overload", c.uid, True, 100, 100, channel=1)
    return b.build()


@scenario("charger_short_circuit")
def charger_short_circuit(p: Picker, start: datetime) -> Scenario:
    b = Builder(
        "charger_short_circuit",
        p.compound,
        start,
        "Pre-check finds a load short circuit on port 1 with the relay closed; the post reports the fault "
        "and opens the relay 1 s later: short-circuit alarm, compliant fault-alarm and auto-cutoff findings.",
    )
    c = b.script(p.take(Family.EBIKE_CHARGER))
    c.port(60, 1, state="short_circuit", relay_on=True, power_w=0.0, current_a=0.0, session_s=0)
    c.event(60, type="fault", port=1, code="short_circuit", active=True)
    c.port(61, 1, relay_on=False)
    c.port(240, 1)
    b.alarm(A.CHARGER_SHORT_CIRCUIT, c.uid, 60, 60)
    b.finding(Check.FAULT_ALARM, "short_circuit", c.uid, True, 60, 60)
    b.finding(Check.AUTO_CUTOFF, "short_circuit", c.uid, True, 61, 61, channel=1)
    return b.build()


@scenario("charger_leakage")
def charger_leakage(p: Picker, start: datetime) -> Scenario:
    b = Builder(
        "charger_leakage",
        p.compound,
        start,
        "Leakage current 350 mA (alarm setting 300 mA, GB 50116 practice) at the post while ports 1 and 2 "
        "charge; it lasts past the 10 s confirmation and the leakage breaker opens 1 s later: leakage "
        "alarm (cleared when the current is gone), compliant post-wide cutoff.",
    )
    c = b.script(p.take(Family.EBIKE_CHARGER))
    c.port(20, 1, **port_report(1, power_w=250.0))
    c.port(30, 2, **port_report(2, power_w=280.0))
    leak = CH.leakage_trip_ma + 50
    c.tele(60, leakage_ma=leak)
    confirmed = 60 + CH.leakage_confirm_s
    c.tele(confirmed, leakage_ma=leak)
    for n in (1, 2):
        c.data["ports"][n - 1].update(port_report(n))
    c.event(confirmed + 1, type="session_stop", port=1, reason="leakage")
    c.event(confirmed + 1, type="session_stop", port=2, reason="leakage")
    c.tele(confirmed + 1, leakage_ma=0.0, breaker_closed=False, total_power_w=0.0)
    c.tele(240)
    b.alarm(A.CHARGER_LEAKAGE, c.uid, confirmed)
    b.finding(
        Check.AUTO_CUTOFF, "leakage", c.uid, True, confirmed + 1, channel=0,
        outcome="in_time", measured_s=CH.leakage_confirm_s + 1,
    )  # fmt: skip
    return b.build()


def _charger_full(b: Builder, p: Picker, *, stop_after_s: float | None, until: float) -> Script:
    c = b.script(p.take(Family.EBIKE_CHARGER))
    c.port(30, 1, **port_report(1, power_w=300.0))
    s = 60.0
    while s <= until:
        if stop_after_s is not None and s >= 60 + stop_after_s:
            c.event(s, type="session_stop", port=1, reason="full", energy_kwh=1.2, duration_s=9000)
            c.port(s, 1, **port_report(1))
            c.port(s + CH.heartbeat_s, 1)
            break
        c.port(s, 1, state="full", power_w=20.0, current_a=0.088)
        s += CH.heartbeat_s
    return c


@scenario("charger_full_autostop")
def charger_full_autostop(p: Picker, start: datetime) -> Scenario:
    b = Builder(
        "charger_full_autostop",
        p.compound,
        start,
        "Port 1 is full from +60 s and the post stops it itself 30 min later, inside the 1 h float "
        "window: nothing to report — no alarm, no finding.",
    )
    _charger_full(b, p, stop_after_s=1800, until=60 + CH.float_time_s + 600)
    return b.build()


@scenario("charger_full_no_autostop")
def charger_full_no_autostop(p: Picker, start: datetime) -> Scenario:
    b = Builder(
        "charger_full_no_autostop",
        p.compound,
        start,
        "Port 1 is full from +60 s and keeps its relay closed: after the float window (1 h) plus the "
        "cutoff deadline, auto_cutoff_failed and charge_not_stopped, non-compliant finding 'full'.",
    )
    c = _charger_full(b, p, stop_after_s=None, until=60 + CH.float_time_s + 4 * CH.heartbeat_s)
    due = 60 + CH.float_time_s + CH.full_cutoff_s
    late = due + 2 * CH.heartbeat_s  # heartbeat reports: the verdict comes with a later report
    b.alarm(A.AUTO_CUTOFF_FAILED, c.uid, due, late)
    b.alarm(A.CHARGE_NOT_STOPPED, c.uid, due, late)
    b.finding(Check.AUTO_CUTOFF, "full", c.uid, False, due, late, channel=1, outcome="not_cut")
    return b.build()


@scenario("charger_max_session")
def charger_max_session(p: Picker, start: datetime) -> Scenario:
    b = Builder(
        "charger_max_session",
        p.compound,
        start,
        "A session on port 1 passes the 10 h maximum and the post does not stop it: auto_cutoff_failed "
        "and charge_not_stopped at the cutoff deadline, non-compliant finding 'max_time'.",
    )
    c = b.script(p.take(Family.EBIKE_CHARGER))
    first = CH.max_session_s - 300  # 5 min before the limit at +60 s
    c.port(60, 1, **{**port_report(1, power_w=200.0), "session_s": first})
    s = 60 + CH.heartbeat_s
    while s <= 60 + 6 * CH.heartbeat_s:
        c.port(s, 1, session_s=first + s - 60)
        s += CH.heartbeat_s
    over = 60 + 300  # the instant the session reached the maximum
    due = over + CH.max_time_cutoff_s
    late = due + 2 * CH.heartbeat_s
    b.alarm(A.AUTO_CUTOFF_FAILED, c.uid, due, late)
    b.alarm(A.CHARGE_NOT_STOPPED, c.uid, due, late)
    b.finding(Check.AUTO_CUTOFF, "max_time", c.uid, False, due, late, channel=1)
    return b.build()


@scenario("charger_protection_disabled")
def charger_protection_disabled(p: Picker, start: datetime) -> Scenario:
    b = Builder(
        "charger_protection_disabled",
        p.compound,
        start,
        "The post's over-temperature cutoff is switched off in its settings from +60 s (vendors did so "
        "in firmware after false trips), and its cut-off temperature is 120 °C where the community "
        "cuts at 80 °C: protection_disabled and protection_limit_loose, a non-compliant config finding "
        "for each.",
    )
    c = b.script(p.take(Family.EBIKE_CHARGER))
    c.tele(60, protection={**PROTECTION, "over_temp_cutoff": False, "over_temp_c": 120.0})
    c.tele(60 + CH.heartbeat_s)
    b.alarm(A.PROTECTION_DISABLED, c.uid, 60)
    b.alarm(A.PROTECTION_LIMIT_LOOSE, c.uid, 60)
    b.finding(Check.PROTECTION_CONFIG, "over_temp_cutoff_disabled", c.uid, False, 60)
    b.finding(Check.PROTECTION_CONFIG, "over_temp_c_loose", c.uid, False, 60)
    return b.build()


@scenario("charger_silent_fault")
def charger_silent_fault(p: Picker, start: datetime) -> Scenario:
    b = Builder(
        "charger_silent_fault",
        p.compound,
        start,
        "Port 3 shows state fuse_blown in telemetry but the post never sends a fault event: the device "
        "fails the fault-alarm function (silent_fault finding) and Yiju raises charger_fault itself.",
    )
    c = b.script(p.take(Family.EBIKE_CHARGER))
    c.port(60, 3, state="fuse_blown")
    c.every(60 + CH.heartbeat_s, 60 + 2 * CH.heartbeat_s, CH.heartbeat_s)
    due = 60 + FAULT_ALARM_DEADLINE_S
    b.alarm(A.CHARGER_FAULT, c.uid, due, due + SLACK_S)
    b.finding(Check.FAULT_ALARM, "silent_fault", c.uid, False, due, due + SLACK_S)
    return b.build()
