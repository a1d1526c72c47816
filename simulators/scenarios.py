"""Scenarios with ground truth: each injects one situation into a compound's message stream and says
exactly which alarms and compliance findings a correct engine must produce from it — and nothing else.

Ground-truth format (the contract with the engine's end-to-end tests):

    Scenario(name, description, community, start, end, devices, messages,
             expected_alarms, expected_findings, expected_dead_letters, expected_rows, registrations)

    ExpectedAlarm(type, device_uid, severity, earliest, latest, received=False)
        an alarm of `type` on the device whose first occurrence (alarms.first_at) lies in
        [earliest, latest] (device time; the engine stamps alarms with device time). `received`:
        the device's clock lay outside ingest's timestamp window, so the alarm carries the receive
        time — here the simulated instant the message goes on the wire (`SimMessage.at`); a run that
        publishes a simulated stream in real time stamps it with the wall clock instead.
    ExpectedFinding(check, kind, device_uid, compliant, earliest, latest, channel=0,
                    outcome=None, measured_s=None)
        a compliance finding whose observed_at lies in [earliest, latest]; `channel` is the port
        (chargers) or camera channel (recorders), 0 for the device itself; when given, its
        details.outcome (auto-cutoff: in_time / not_cut / late) and its measured_s (± 0.01 s) as
        stored — a late cut revises the not_cut finding of its obligation in place.
    ExpectedDeadLetter(reason, topic, device_uid)
        one dead letter with that reason for the message published on `topic` (relative to the prefix).
    expected_rows: {"telemetry": n, "device_events": m} for the scenario's devices, when the
        scenario is about exact storage (duplicates must not create rows), else None.
    Registration(at, device)
        a device that is not in the compound's registry until `at`: whoever plays the scenario
        registers it then (as POST /devices or a CSV import would), before publishing any message at
        or after `at` — and its first messages follow at once.

Matching rules: every expected item matches exactly one produced item (same type/check, kind, device,
channel, compliant) inside its window; every alarm and finding the engine produces for
`Scenario.devices` between `start` and `end` must be expected. Escalations and commands are not part
of the ground truth. What an engine would do after `end` (e.g. `device_offline` because the stream
stops) is out of scope: evaluate with the engine clock at `end`. Each scenario speaks only for its
own devices (`devices`); run alongside the normal background, the other devices raise nothing.

Times: messages are stamped in simulated time from `start`; the engine must judge durations and
deadlines by device time (AlertSettings.clock = "event" for accelerated runs). Every scenario ends
with reports after its last deadline, so an engine that evaluates deadlines when a device's next
message arrives reaches the same verdicts as one with a timer. Thresholds come from the family
`DEFAULTS` (devices/families/*.py), which the engine's settings extend, so both sides agree.

Linkage scope (fire): a fire alarm in a building must release the access doors on the evacuation
routes of that building (its unit doors), recall its elevators and force its common lighting on
(GB 50396-2007 §9.0.1(2), GB 50116-2013, GB 50034-2013 §7.3.4); gas high alarm → that detector's valve.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from devices.alarms import ALARM_INFO, AlarmType, Check, Severity
from devices.contract import Channel, Family
from devices.families import (
    access_door,
    cctv_recorder,
    ebike_charger,
    elevator,
    gas_alarm,
    light,
    smoke_alarm,
)
from simulators.behaviour import FLOOR_HEIGHT_M, HEARTBEAT_S, MAINS_V, PROTECTION, is_night, lamps_due
from simulators.compound import RATED_SPEED_MPS, Compound, SimDevice
from simulators.emitter import CST, Emitter
from simulators.stream import SimMessage

A = AlarmType
CH = ebike_charger.DEFAULTS
SMOKE = smoke_alarm.DEFAULTS
GAS = gas_alarm.DEFAULTS
LIGHT = light.DEFAULTS
ELEV = elevator.DEFAULTS
DOOR = access_door.DEFAULTS
CCTV = cctv_recorder.DEFAULTS
# The engine's own deadline for a fault shown in telemetry to be reported by the device
# (AlertSettings.fault_alarm_deadline_s; tests assert both agree).
FAULT_ALARM_DEADLINE_S = 60.0
INCIDENT_REPORT_S = 10  # devices report on change during an incident, not just at heartbeats
SLACK_S = 5.0  # window allowance after the instant a verdict becomes due


@dataclass(frozen=True, slots=True)
class ExpectedAlarm:
    type: AlarmType
    device_uid: str
    severity: Severity
    earliest: datetime
    latest: datetime
    received: bool = False


@dataclass(frozen=True, slots=True)
class ExpectedFinding:
    check: Check
    kind: str
    device_uid: str
    compliant: bool
    earliest: datetime
    latest: datetime
    channel: int = 0
    outcome: str | None = None
    measured_s: float | None = None


@dataclass(frozen=True, slots=True)
class ExpectedDeadLetter:
    reason: str  # devices.contract.DeadLetterReason value
    topic: str  # relative to the topic prefix
    device_uid: str | None


@dataclass(frozen=True, slots=True)
class Registration:
    at: datetime
    device: SimDevice


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    description: str
    community: str
    start: datetime
    end: datetime
    devices: tuple[str, ...]
    messages: tuple[SimMessage, ...]
    expected_alarms: tuple[ExpectedAlarm, ...] = ()
    expected_findings: tuple[ExpectedFinding, ...] = ()
    expected_dead_letters: tuple[ExpectedDeadLetter, ...] = ()
    expected_rows: dict[str, int] | None = field(default=None, hash=False, compare=False)
    registrations: tuple[Registration, ...] = ()


# ---------------------------------------------------------------------------------------------
# Building blocks


class Picker:
    """Hands out each device of a compound to at most one scenario, in a fixed order."""

    def __init__(self, compound: Compound) -> None:
        self.compound = compound
        self.used: set[str] = set()
        self.used_buildings: set[str] = set()

    def take(self, family: Family, pred: Callable[[SimDevice], bool] = lambda d: True) -> SimDevice:
        for d in self.compound.devices:
            if d.family is family and d.uid not in self.used and pred(d):
                self.used.add(d.uid)
                return d
        raise LookupError(f"no unused {family.value} left in {self.compound.community.code}")

    def building(self, pred: Callable[[str], bool] = lambda b: True) -> str:
        for b in self.compound.buildings:
            if b.code not in self.used_buildings and pred(b.code):
                self.used_buildings.add(b.code)
                return b.code
        raise LookupError("no unused building left")

    def in_building(self, building: str, family: Family) -> list[SimDevice]:
        out = [
            d
            for d in self.compound.in_building(building)
            if d.family is family and d.uid not in self.used
            and (family is not Family.ACCESS_DOOR or self.compound.location(d.location).evacuation_route)
        ]  # fmt: skip
        self.used.update(d.uid for d in out)
        return out


def healthy(device: SimDevice, at: datetime) -> dict[str, Any]:  # noqa: PLR0911 - one per family
    """A healthy telemetry document for the device (scenarios change what they need)."""
    f = device.family
    if f is Family.EBIKE_CHARGER:
        return {
            "ports": [_port(n) for n in range(1, device.ports + 1)],
            "ambient_temp_c": 26.0,
            "smoke": False,
            "leakage_ma": 3.0,
            "breaker_closed": True,
            "total_power_w": 0.0,
            "protection": dict(PROTECTION),
        }
    if f is Family.SMOKE_ALARM:
        if device.electrical_fire:
            return {"state": "normal", "residual_current_ma": 40.0, "cable_temp_c": 30.0}
        checked = at.astimezone(CST).replace(hour=3, minute=0, second=0, microsecond=0)
        checked -= timedelta(days=1) if checked > at else timedelta(0)
        return {"state": "normal", "battery_pct": 80.0, "battery_checked_at": checked}
    if f is Family.GAS_ALARM:
        return {"state": "normal", "lel_pct": 1.0, "co_ppm": 2.0, "valve": "open" if device.valve else "none"}
    if f is Family.LIGHT:
        on = is_night(at, device.site)
        return {
            "on": on,
            "dim_pct": 100.0,
            "power_w": 39.0 if on else 0.0,
            "current_a": 0.171 if on else 0.0,
            "voltage_v": MAINS_V,
            "rated_power_w": 40.0,
            "mode": "schedule" if device.location.startswith("road") else "sensor",
        }
    if f is Family.ELEVATOR:
        return {
            "floor": 1,
            "direction": "stop",
            "moving": False,
            "door": "closed",
            "at_level": True,
            "speed_mps": 0.0,
            "occupied": False,
            "load_kg": 0.0,
            "mode": "normal",
            "faults": [],
        }
    if f is Family.ACCESS_DOOR:
        return {"open": False, "locked": True, "mode": "normal"}
    return {
        "channels": [_channel(n, at, keep_days=45.0) for n in range(1, device.channels + 1)],
        "disk_total_gb": 16_000.0,
        "disk_free_gb": 240.0,
        "disk_healthy": True,
    }


def _port(n: int, *, power_w: float = 0.0, state: str | None = None, temp_c: float = 30.0) -> dict[str, Any]:
    on = power_w > 0
    return {
        "port": n,
        "state": state or ("charging" if on else "idle"),
        "relay_on": on,
        "voltage_v": MAINS_V,
        "current_a": round(power_w / MAINS_V, 3),
        "power_w": power_w,
        "session_energy_kwh": 0.5 if on else 0.0,
        "port_temp_c": temp_c,
        "session_s": 3600 if on else 0,
    }


def _channel(n: int, at: datetime, *, keep_days: float, **extra: Any) -> dict[str, Any]:
    return {
        "channel": n,
        "online": True,
        "recording": True,
        "earliest_recording": (at - timedelta(days=keep_days)).replace(microsecond=0),
        "latest_recording": (at - timedelta(seconds=5)).replace(microsecond=0),
        **extra,
    }


class Script:
    """One device's part in a scenario: messages are created in time order (so `seq` follows time)."""

    def __init__(self, b: Builder, device: SimDevice) -> None:
        self.b = b
        self.device = device
        self.uid = device.uid
        self.em = Emitter(device, HEARTBEAT_S[device.family])
        self.data = healthy(device, b.t(0))
        self.last = -1.0
        b.devices.append(device.uid)

    def _at(self, s: float) -> datetime:
        if s < self.last:
            raise ValueError(f"{self.uid}: message at +{s} s after one at +{self.last} s")
        self.last = s
        return self.b.t(s)

    def online(self, s: float = 0) -> Script:
        self.b.add(self.em.online(self._at(s)))
        return self

    def tele(self, s: float, **changes: Any) -> Script:
        self.data.update(copy.deepcopy(changes))
        self.b.add(self.em.telemetry(self._at(s), copy.deepcopy(self.data)))
        return self

    def port(self, s: float, n: int, **changes: Any) -> Script:
        p = self.data["ports"][n - 1]
        p.update(changes)
        self.data["total_power_w"] = round(sum(x["power_w"] for x in self.data["ports"]), 1)
        return self.tele(s)

    def event(self, s: float, **event: Any) -> Script:
        self.b.add(self.em.event(self._at(s), event))
        return self

    def every(self, s0: float, s1: float, step: float, **changes: Any) -> Script:
        s = s0
        while s <= s1:
            self.tele(s, **changes)
            s += step
        return self


class Builder:
    def __init__(self, name: str, compound: Compound, start: datetime, description: str) -> None:
        self.name = name
        self.description = description
        self.community = compound.community.code
        self.start = start
        self.devices: list[str] = []
        self.messages: list[SimMessage] = []
        self.alarms: list[ExpectedAlarm] = []
        self.findings: list[ExpectedFinding] = []
        self.dead: list[ExpectedDeadLetter] = []
        self.rows: dict[str, int] | None = None
        self.registrations: list[Registration] = []

    def t(self, s: float) -> datetime:
        return self.start + timedelta(seconds=s)

    def add(self, msg: SimMessage) -> None:
        self.messages.append(msg)

    def distinct_rows(self) -> dict[str, int]:
        """Rows ingest stores for these messages: one per natural key (device, ts, seq) and table."""
        keys: dict[str, set[tuple[str, str, int]]] = {"telemetry": set(), "device_events": set()}
        for m in self.messages:
            doc = json.loads(m.payload)
            table = "telemetry" if m.channel is Channel.TELEMETRY else "device_events"
            keys[table].add((m.device, doc["ts"], doc["seq"]))
        return {table: len(k) for table, k in keys.items()}

    def script(self, device: SimDevice, *, online: bool = True) -> Script:
        sc = Script(self, device)
        return sc.online(0).tele(1) if online else sc

    def alarm(
        self, type: AlarmType, uid: str, s0: float, s1: float | None = None, *, received: bool = False
    ) -> None:
        s1 = s0 if s1 is None else s1
        severity = ALARM_INFO[type].severity
        self.alarms.append(ExpectedAlarm(type, uid, severity, self.t(s0), self.t(s1), received))

    def finding(  # noqa: PLR0917 - reads like the ground-truth row it builds
        self,
        check: Check,
        kind: str,
        uid: str,
        compliant: bool,
        s0: float,
        s1: float | None = None,
        *,
        channel: int = 0,
        outcome: str | None = None,
        measured_s: float | None = None,
    ) -> None:
        s1 = s0 if s1 is None else s1
        self.findings.append(
            ExpectedFinding(check, kind, uid, compliant, self.t(s0), self.t(s1), channel, outcome, measured_s)
        )

    def build(self) -> Scenario:
        msgs = sorted(self.messages, key=lambda m: m.at)  # stable: creation order within an instant
        end = max([m.at for m in msgs] + [self.start])
        return Scenario(
            self.name,
            self.description,
            self.community,
            self.start,
            end,
            tuple(self.devices),
            tuple(msgs),
            tuple(self.alarms),
            tuple(self.findings),
            tuple(self.dead),
            self.rows,
            tuple(self.registrations),
        )


Factory = Callable[[Picker, datetime], Scenario]
SCENARIOS: dict[str, Factory] = {}


def scenario(name: str) -> Callable[[Factory], Factory]:
    def register(fn: Factory) -> Factory:
        SCENARIOS[name] = fn
        return fn

    return register


# ---------------------------------------------------------------------------------------------
# E-bike chargers (domain.md §5.1). Port 1 of a post; incident reports every INCIDENT_REPORT_S.

HOT_C = CH.port_over_temp_c + 5  # 85 °C: over the 80 °C AP3000 threshold
T_HOT = 60.0  # the first report showing the trigger
CONFIRMED = T_HOT + CH.over_temp_confirm_s  # 90: the engine's confirmation time has passed
CUT_DEADLINE = T_HOT + CH.over_temperature_cutoff_s  # 150: the deadline runs from the first hot report


def _charger_hot(b: Builder, p: Picker, *, cut_at: float | None) -> Script:
    c = b.script(p.take(Family.EBIKE_CHARGER))
    c.port(30, 1, **_port(1, power_w=300.0, temp_c=45.0))
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
    c.port(30, 1, **_port(1, power_w=300.0, temp_c=45.0))
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
    c.port(20, 1, **_port(1, power_w=250.0))
    c.data["leakage_ma"] = normal
    c.port(30, 2, **_port(2, power_w=280.0))
    smoke, cut = 60.0, 65.0
    c.data["smoke"] = True
    _with_reading(c, smoke, port=2, port_temp_c=900.0)
    for n in (1, 2):
        c.event(cut, type="session_stop", port=n, reason="smoke")
        c.data["ports"][n - 1].update(_port(n))
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
    c.port(30, 1, **_port(1, power_w=300.0, temp_c=40.0))
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
    c.port(20, 1, **_port(1, power_w=250.0))
    c.port(30, 2, **_port(2, power_w=280.0))
    leak = CH.leakage_trip_ma + 50
    c.tele(60, leakage_ma=leak)
    confirmed = 60 + CH.leakage_confirm_s
    c.tele(confirmed, leakage_ma=leak)
    for n in (1, 2):
        c.data["ports"][n - 1].update(_port(n))
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
    c.port(30, 1, **_port(1, power_w=300.0))
    s = 60.0
    while s <= until:
        if stop_after_s is not None and s >= 60 + stop_after_s:
            c.event(s, type="session_stop", port=1, reason="full", energy_kwh=1.2, duration_s=9000)
            c.port(s, 1, **_port(1))
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
    c.port(60, 1, **{**_port(1, power_w=200.0), "session_s": first})
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


# ---------------------------------------------------------------------------------------------
# Fire (smoke alarm → linkage), low battery


SECOND_DETECTOR_S = 10.0  # the second detector of a spreading fire, after the first


def _fire(p: Picker, start: datetime, name: str, *, detectors: int, failing_door: bool) -> Scenario:
    """A fire in one building, seen by `detectors` household smoke alarms. The linkage starts only when
    the second one confirms the fire (AlertSettings.fire_linkage_signals = 2, GB 50116-2013 §4.1.6)."""

    def has_lift(code: str) -> bool:
        return any(d.family is Family.ELEVATOR for d in p.compound.in_building(code))

    # the single-detector case needs no car (a small compound has few): a building without one
    building = p.building(has_lift if detectors > 1 else lambda code: not has_lift(code))
    first = 60.0
    confirm = first + SECOND_DETECTOR_S
    if detectors < 2:
        what = (
            f"One household smoke alarm in building {building} goes off at +60 s (burnt toast) and stays "
            "in alarm: fire_alarm, and nothing else — a single detector does not confirm a fire (GB "
            "50116-2013 §4.1.6), so no door is released, no lamp forced on, no linkage_failed and no "
            "release_all."
        )
    else:
        what = (
            f"A household smoke alarm in building {building} goes off at +60 s and a second one at "
            f"+{confirm:.0f} s, which confirms the fire (two independent signals, GB 50116-2013 §4.1.6). "
            "Its evacuation-route doors release within 2 s, its elevators return to floor 1 in time for "
            "their height and speed, its common lamps are forced on"
            + (
                ", except one unit door that never releases: linkage_failed on that door."
                if failing_door
                else "."
            )
        )
    b = Builder(name, p.compound, start, what)

    def in_flat(d: SimDevice) -> bool:
        return d.household is not None and p.compound.location(d.location).building == building

    smokes = [b.script(p.take(Family.SMOKE_ALARM, in_flat)) for _ in range(detectors)]
    doors = [b.script(d) for d in p.in_building(building, Family.ACCESS_DOOR)]
    elevators = [b.script(d) for d in p.in_building(building, Family.ELEVATOR)]
    lamps = [b.script(d) for d in p.in_building(building, Family.LIGHT)]
    for lift in elevators:
        lift.tele(first - 20, floor=lift.device.floors, at_level=True)  # parked at the top floor
    for i, smoke in enumerate(smokes):
        at = first + i * SECOND_DETECTOR_S
        smoke.event(at, type="alarm", kind="smoke").tele(at, state="alarm")
        b.alarm(A.FIRE_ALARM, smoke.uid, at)
    if detectors < 2:  # everyone else reports as usual; nothing is due from them
        for sc in doors + elevators + lamps:
            sc.every(first + 10, first + 250, 60)
        for smoke in smokes:
            smoke.tele(first + 250)
        return b.build()
    for lamp in lamps:
        lamp.tele(confirm + 1, on=True, dim_pct=100.0, power_w=39.5, current_a=0.173, mode="forced")
        lamp.tele(confirm + 120)
        b.finding(Check.LINKAGE, "light_force_on", lamp.uid, True, confirm, confirm + 1)
    for i, door in enumerate(doors):
        if failing_door and i == len(doors) - 1:
            door.every(confirm + 10, confirm + 130, 60)
            due = confirm + DOOR.release_deadline_s
            b.alarm(A.LINKAGE_FAILED, door.uid, due, due + SLACK_S)
            b.finding(Check.LINKAGE, "door_release", door.uid, False, due, due + SLACK_S)
            continue
        door.event(confirm + 1.5, type="released", by="fire")
        door.tele(confirm + 1.5, open=True, locked=False, mode="released", open_s=0)
        door.tele(confirm + 120, open_s=118)
        b.finding(Check.LINKAGE, "door_release", door.uid, True, confirm, confirm + 1.5)
    for lift in elevators:
        floors = lift.device.floors
        speed = RATED_SPEED_MPS[lift.device.retrofit]
        travel = (floors - 1) * FLOOR_HEIGHT_M / speed
        arrive = confirm + 3 + round(travel) + 3  # start signal, travel at rated speed, levelling
        lift.tele(
            confirm + 1, mode="fire_return", moving=True, direction="down", at_level=False, speed_mps=speed
        )
        lift.tele(confirm + 2 + travel / 2, floor=max(1, floors // 2))
        lift.tele(arrive, floor=1, moving=False, direction="stop", at_level=True, speed_mps=0.0, door="open")
        lift.tele(confirm + 120)
        b.finding(Check.LINKAGE, "elevator_recall", lift.uid, True, confirm, arrive)
    for smoke in smokes:
        smoke.tele(confirm + 120)
    return b.build()


@scenario("smoke_fire_linkage")
def smoke_fire_linkage(p: Picker, start: datetime) -> Scenario:
    return _fire(p, start, "smoke_fire_linkage", detectors=2, failing_door=False)


@scenario("smoke_fire_linkage_door_fails")
def smoke_fire_linkage_door_fails(p: Picker, start: datetime) -> Scenario:
    return _fire(p, start, "smoke_fire_linkage_door_fails", detectors=2, failing_door=True)


@scenario("smoke_fire_single_detector")
def smoke_fire_single_detector(p: Picker, start: datetime) -> Scenario:
    return _fire(p, start, "smoke_fire_single_detector", detectors=1, failing_door=False)


@scenario("smoke_low_battery")
def smoke_low_battery(p: Picker, start: datetime) -> Scenario:
    b = Builder(
        "smoke_low_battery",
        p.compound,
        start,
        "A household smoke alarm's battery falls to 18 % (threshold 20 %) and it reports its low-battery "
        "fault itself: low_battery alarm and a compliant fault-alarm finding.",
    )
    s = b.script(p.take(Family.SMOKE_ALARM, lambda d: d.household is not None))
    s.tele(60, battery_pct=SMOKE.low_battery_pct + 1)
    s.event(120, type="fault", code="low_battery", active=True)
    s.tele(120, battery_pct=SMOKE.low_battery_pct - 2)
    s.tele(120 + SMOKE.heartbeat_s)
    b.alarm(A.LOW_BATTERY, s.uid, 120)
    b.finding(Check.FAULT_ALARM, "low_battery", s.uid, True, 120)
    return b.build()


@scenario("smoke_test_not_fire")
def smoke_test_not_fire(p: Picker, start: datetime) -> Scenario:
    b = Builder(
        "smoke_test_not_fire",
        p.compound,
        start,
        "A resident presses a smoke alarm's test button at +60 s: a test alarm and the test state, then "
        "a passed self-test. No fire alarm and no linkage; two test records (self_test findings).",
    )
    s = b.script(p.take(Family.SMOKE_ALARM, lambda d: d.household is not None))
    s.event(60, type="alarm", kind="smoke", test=True).tele(60, state="test")
    s.event(70, type="self_test", ok=True).tele(70, state="normal")
    s.tele(70 + SMOKE.heartbeat_s)
    b.finding(Check.SELF_TEST, "alarm_test", s.uid, True, 60)
    b.finding(Check.SELF_TEST, "self_test", s.uid, True, 70)
    return b.build()


@scenario("smoke_battery_check_overdue")
def smoke_battery_check_overdue(p: Picker, start: datetime) -> Scenario:
    b = Builder(
        "smoke_battery_check_overdue",
        p.compound,
        start,
        "A smoke alarm's last battery self-check is 26 h old (GB 20517-2025 §5.11.1: at least every "
        "24 h): battery_check_overdue and one non-compliant self_test finding.",
    )
    s = b.script(p.take(Family.SMOKE_ALARM, lambda d: d.household is not None))
    stale = (b.t(60) - timedelta(hours=26)).replace(microsecond=0)
    s.tele(60, battery_checked_at=stale)
    s.tele(60 + SMOKE.heartbeat_s)
    b.alarm(A.BATTERY_CHECK_OVERDUE, s.uid, 60)
    b.finding(Check.SELF_TEST, "battery_check_overdue", s.uid, False, 60)
    return b.build()


@scenario("smoke_silenced_fault_kept")
def smoke_silenced_fault_kept(p: Picker, start: datetime) -> Scenario:
    b = Builder(
        "smoke_silenced_fault_kept",
        p.compound,
        start,
        "A smoke alarm shows a fault in telemetry without reporting it (silent fault), then is silenced "
        "and tested while the fault stays: one smoke_detector_fault and one silent_fault finding — a "
        "silenced device is not a repaired one.",
    )
    s = b.script(p.take(Family.SMOKE_ALARM, lambda d: d.household is not None))
    s.tele(60, state="fault")
    s.tele(60 + FAULT_ALARM_DEADLINE_S + 1, state="fault")
    for at, state in ((180, "silenced"), (240, "test"), (300, "fault"), (900, "fault")):
        s.tele(at, state=state)
    due = 60 + FAULT_ALARM_DEADLINE_S
    b.alarm(A.SMOKE_DETECTOR_FAULT, s.uid, due, due + SLACK_S)
    b.finding(Check.FAULT_ALARM, "silent_fault", s.uid, False, due, due + SLACK_S)
    return b.build()


# ---------------------------------------------------------------------------------------------
# Gas


def _gas(p: Picker, start: datetime, *, valve_closes: bool) -> Scenario:
    name = "gas_high_valve_closes" if valve_closes else "gas_high_valve_fails"
    b = Builder(
        name,
        p.compound,
        start,
        "Kitchen gas rises to 30 %LEL (low alarm) then 55 %LEL (high alarm); "
        + (
            "the shut-off valve closes 1 s later: compliant linkage."
            if valve_closes
            else "the valve never closes: critical linkage_failed and a non-compliant linkage finding."
        ),
    )
    g = b.script(p.take(Family.GAS_ALARM, lambda d: d.valve))
    low, high = GAS.low_alarm_lel_pct + 5, GAS.high_alarm_lel_pct + 5
    g.event(60, type="low", gas="combustible", lel_pct=low).tele(60, state="low_alarm", lel_pct=low)
    g.event(120, type="high", gas="combustible", lel_pct=high).tele(120, state="high_alarm", lel_pct=high)
    b.alarm(A.GAS_LOW_ALARM, g.uid, 60)
    b.alarm(A.GAS_HIGH_ALARM, g.uid, 120)
    if valve_closes:
        g.event(121, type="valve_closed", by="alarm").tele(121, valve="closed")
        b.finding(Check.LINKAGE, "valve_close", g.uid, True, 121)
    else:
        due = 120 + GAS.valve_close_deadline_s
        g.tele(130)
        b.alarm(A.LINKAGE_FAILED, g.uid, due, due + SLACK_S)
        b.finding(Check.LINKAGE, "valve_close", g.uid, False, due, due + SLACK_S)
    g.event(600, type="cleared", gas="combustible").tele(600, state="normal", lel_pct=2.0)
    g.tele(900)
    return b.build()


@scenario("gas_high_valve_closes")
def gas_high_valve_closes(p: Picker, start: datetime) -> Scenario:
    return _gas(p, start, valve_closes=True)


@scenario("gas_high_valve_fails")
def gas_high_valve_fails(p: Picker, start: datetime) -> Scenario:
    return _gas(p, start, valve_closes=False)


@scenario("gas_motor_valve")
def gas_motor_valve(p: Picker, start: datetime) -> Scenario:
    b = Builder(
        "gas_motor_valve",
        p.compound,
        start,
        "Kitchen gas at 55 %LEL (high alarm); the motorised shut-off valve is told to close at once and "
        f"reports closed 20 s later, inside the {GAS.valve_close_deadline_s:.0f} s valve deadline (the "
        "3 s of GB 50166 are for the close signal): compliant linkage, no linkage_failed.",
    )
    g = b.script(p.take(Family.GAS_ALARM, lambda d: d.valve))
    high = GAS.high_alarm_lel_pct + 5
    g.event(120, type="high", gas="combustible", lel_pct=high).tele(120, state="high_alarm", lel_pct=high)
    g.tele(130)
    g.event(140, type="valve_closed", by="alarm").tele(140, valve="closed")
    g.event(600, type="cleared", gas="combustible").tele(600, state="normal", lel_pct=2.0)
    b.alarm(A.GAS_HIGH_ALARM, g.uid, 120)
    b.alarm(A.GAS_LOW_ALARM, g.uid, 120)  # 55 %LEL is over the first level too
    b.finding(Check.LINKAGE, "valve_close", g.uid, True, 140)
    return b.build()


@scenario("gas_warmup_after_power_cut")
def gas_warmup_after_power_cut(p: Picker, start: datetime) -> Scenario:
    b = Builder(
        "gas_warmup_after_power_cut",
        p.compound,
        start,
        "After a building power cut a kitchen gas alarm powers on and warms up, its sensor reading "
        "70 %LEL and 300 ppm CO meanwhile: readings in warm-up are not gas readings — no alarm, no "
        "valve closed, no linkage_failed.",
    )
    g = b.script(p.take(Family.GAS_ALARM, lambda d: d.valve))
    for at in (2, 30, 60, 90):
        g.tele(at, state="warmup", lel_pct=70.0, co_ppm=300.0)
    g.tele(120, state="normal", lel_pct=1.0, co_ppm=2.0)
    g.tele(120 + GAS.heartbeat_s)
    return b.build()


@scenario("gas_device_alarm_below_threshold")
def gas_device_alarm_below_threshold(p: Picker, start: datetime) -> Scenario:
    b = Builder(
        "gas_device_alarm_below_threshold",
        p.compound,
        start,
        "A detector without a valve raises its own high alarm at 35 %LEL (under Yiju's 50 %LEL) and "
        "reports high_alarm every minute for 10 minutes: one gas_high_alarm and one gas_low_alarm, "
        "no clear and re-raise on every report.",
    )
    g = b.script(p.take(Family.GAS_ALARM, lambda d: not d.valve))
    g.event(60, type="high", gas="combustible", lel_pct=35.0)
    for at in range(60, 660, 60):
        g.tele(at, state="high_alarm", lel_pct=35.0, co_ppm=20.0)
    g.event(660, type="cleared", gas="combustible").tele(660, state="normal", lel_pct=1.0)
    b.alarm(A.GAS_HIGH_ALARM, g.uid, 60)
    b.alarm(A.GAS_LOW_ALARM, g.uid, 60)
    return b.build()


# ---------------------------------------------------------------------------------------------
# Elevators


def _trapped(p: Picker, start: datetime, *, rescue_after_s: float) -> Scenario:
    overdue = rescue_after_s > ELEV.rescue_arrival_s
    name = "elevator_trapped_overdue" if overdue else "elevator_trapped_rescued"
    b = Builder(
        name,
        p.compound,
        start,
        "Passengers trapped between floors at +60 s; the rescuer arrives after "
        f"{rescue_after_s / 60:.0f} min "
        f"(limit {ELEV.rescue_arrival_s / 60:.0f} min, TSG T5002)"
        + (
            ": rescue_overdue and a non-compliant rescue finding."
            if overdue
            else ": compliant rescue finding."
        ),
    )
    e = b.script(p.take(Family.ELEVATOR))
    trapped = 60.0
    stuck = {"floor": 5, "moving": False, "direction": "stop", "at_level": False, "occupied": True}
    e.event(trapped, type="fault", code="trapped_not_at_level", active=True, floor=5)
    e.tele(trapped, **stuck, faults=["trapped_not_at_level"])
    arrive = trapped + rescue_after_s
    e.every(trapped + ELEV.heartbeat_s, arrive - 1, ELEV.heartbeat_s)
    e.event(arrive, type="rescue_arrived", by="维保单位")
    e.every(arrive + ELEV.heartbeat_s, arrive + 299, ELEV.heartbeat_s)  # still reporting: not offline
    e.event(arrive + 300, type="fault", code="trapped_not_at_level", active=False, floor=5)
    e.tele(arrive + 300, at_level=True, occupied=False, faults=[])
    b.alarm(A.ELEVATOR_TRAPPED, e.uid, trapped)
    b.finding(Check.FAULT_ALARM, "trapped_not_at_level", e.uid, True, trapped)
    if overdue:
        due = trapped + ELEV.rescue_arrival_s
        b.alarm(A.RESCUE_OVERDUE, e.uid, due, due + ELEV.heartbeat_s)
        b.finding(Check.RESCUE, "rescue_arrival", e.uid, False, due, due + ELEV.heartbeat_s)
    else:
        b.finding(Check.RESCUE, "rescue_arrival", e.uid, True, arrive)
    return b.build()


@scenario("elevator_trapped_rescued")
def elevator_trapped_rescued(p: Picker, start: datetime) -> Scenario:
    return _trapped(p, start, rescue_after_s=15 * 60)


@scenario("elevator_trapped_overdue")
def elevator_trapped_overdue(p: Picker, start: datetime) -> Scenario:
    return _trapped(p, start, rescue_after_s=40 * 60)


def _elevator_fault(p: Picker, start: datetime, code: str, alarm: AlarmType, **state: Any) -> Scenario:
    b = Builder(
        f"elevator_{code}",
        p.compound,
        start,
        f"The elevator reports fault {code} at +60 s (GB/T 24476 vocabulary), cleared at +90 s: "
        f"{alarm.value} alarm and a compliant fault-alarm finding.",
    )
    e = b.script(p.take(Family.ELEVATOR))
    e.event(60, type="fault", code=code, active=True, floor=3)
    e.tele(60, floor=3, **state, faults=[code])
    e.event(90, type="fault", code=code, active=False, floor=3)
    e.tele(90, **{**healthy(e.device, b.t(90)), "floor": 3})
    e.tele(90 + ELEV.heartbeat_s)
    b.alarm(alarm, e.uid, 60)
    b.finding(Check.FAULT_ALARM, code, e.uid, True, 60)
    return b.build()


@scenario("elevator_door_open_while_moving")
def elevator_door_open_while_moving(p: Picker, start: datetime) -> Scenario:
    return _elevator_fault(
        p, start, "door_open_while_moving", A.ELEVATOR_DOOR_OPEN_WHILE_MOVING,
        moving=True, direction="up", door="open", at_level=False, speed_mps=0.25, occupied=True,
    )  # fmt: skip


@scenario("elevator_stop_outside_door_zone")
def elevator_stop_outside_door_zone(p: Picker, start: datetime) -> Scenario:
    return _elevator_fault(
        p, start, "stop_outside_door_zone", A.ELEVATOR_STOP_OUTSIDE_DOOR_ZONE,
        moving=False, direction="stop", at_level=False, occupied=False,
    )  # fmt: skip


@scenario("elevator_inspection")
def elevator_inspection(p: Picker, start: datetime) -> Scenario:
    b = Builder(
        "elevator_inspection",
        p.compound,
        start,
        "A mechanic puts the car into inspection (检修) at +60 s for the fortnightly maintenance: the "
        "safety chain is opened (and reported), the car is moved at inspection speed with its door open "
        "and left between floors; back to normal at +900 s. Only the warning elevator_out_of_service "
        "while it lasts — none of the movement faults is alarmed, none is derived.",
    )
    e = b.script(p.take(Family.ELEVATOR))
    e.tele(60, mode="inspection")
    e.event(70, type="fault", code="safety_circuit_open", active=True, floor=1)
    e.tele(70, faults=["safety_circuit_open"])
    e.tele(80, moving=True, direction="up", door="open", at_level=False, speed_mps=0.3)
    e.tele(100, moving=False, direction="stop", floor=2, speed_mps=0.0, occupied=True)
    e.every(160, 840, ELEV.heartbeat_s)
    e.event(900, type="fault", code="safety_circuit_open", active=False, floor=2)
    e.tele(900, **{**healthy(e.device, b.t(900)), "floor": 2})
    e.tele(900 + ELEV.heartbeat_s)
    b.alarm(A.ELEVATOR_OUT_OF_SERVICE, e.uid, 60)
    return b.build()


@scenario("elevator_stop_outside_zone_unreported")
def elevator_stop_outside_zone_unreported(p: Picker, start: datetime) -> Scenario:
    confirm = 60 + ELEV.heartbeat_s  # the first report at least stop_outside_door_zone_s after the stop
    assert confirm - 60 >= ELEV.stop_outside_door_zone_s
    b = Builder(
        "elevator_stop_outside_zone_unreported",
        p.compound,
        start,
        "An empty car in normal service stops between floors at +60 s and stays there; its terminal never "
        "reports a fault. Yiju derives 门区外停梯 from the running state (GB/T 24476) once "
        f"{ELEV.stop_outside_door_zone_s:.0f} s have passed, and the device fails the fault-alarm check "
        "(silent_fault) when it still has not reported it a minute later; the car relevels at +300 s.",
    )
    e = b.script(p.take(Family.ELEVATOR))
    e.tele(60, floor=4, at_level=False)
    e.every(60 + ELEV.heartbeat_s, 240, ELEV.heartbeat_s)
    e.tele(300, at_level=True)
    e.tele(360)
    b.alarm(A.ELEVATOR_STOP_OUTSIDE_DOOR_ZONE, e.uid, confirm)
    due = confirm + FAULT_ALARM_DEADLINE_S
    b.finding(Check.FAULT_ALARM, "silent_fault", e.uid, False, due, due + SLACK_S)
    return b.build()


@scenario("elevator_trapped_unreported_flag_drops")
def elevator_trapped_unreported_flag_drops(p: Picker, start: datetime) -> Scenario:
    trapped = 60.0
    arrive = trapped + ELEV.rescue_arrival_s + 300
    b = Builder(
        "elevator_trapped_unreported_flag_drops",
        p.compound,
        start,
        "Passengers trapped between floors at +60 s, seen only in the car's telemetry (no fault event): "
        "elevator_trapped at once (no fault-alarm wait), silent_fault a minute later. One report at +600 s "
        "drops the trapped flag; the rescue clock runs on from +60 s regardless, so rescue_overdue comes "
        f"at {ELEV.rescue_arrival_s / 60:.0f} min; the rescuer arrives at "
        f"{(arrive - trapped) / 60:.0f} min.",
    )
    e = b.script(p.take(Family.ELEVATOR))
    stuck = {"floor": 5, "moving": False, "direction": "stop", "at_level": False, "occupied": True}
    e.tele(trapped, **stuck, faults=["trapped_not_at_level"])
    s = trapped + ELEV.heartbeat_s
    while s < arrive:
        e.tele(s, faults=[] if s == 600 else ["trapped_not_at_level"])
        s += ELEV.heartbeat_s
    e.event(arrive, type="rescue_arrived", by="维保单位")
    e.tele(arrive + 120, at_level=True, occupied=False, faults=[])
    e.tele(arrive + 180)
    b.alarm(A.ELEVATOR_TRAPPED, e.uid, trapped)
    b.finding(Check.FAULT_ALARM, "silent_fault", e.uid, False, trapped + FAULT_ALARM_DEADLINE_S,
              trapped + FAULT_ALARM_DEADLINE_S + SLACK_S)  # fmt: skip
    due = trapped + ELEV.rescue_arrival_s
    b.alarm(A.RESCUE_OVERDUE, e.uid, due, due + ELEV.heartbeat_s)
    b.finding(Check.RESCUE, "rescue_arrival", e.uid, False, due, due + ELEV.heartbeat_s)
    return b.build()


# ---------------------------------------------------------------------------------------------
# Access doors


@scenario("door_forced_open")
def door_forced_open(p: Picker, start: datetime) -> Scenario:
    b = Builder(
        "door_forced_open",
        p.compound,
        start,
        "A unit door is forced open at +60 s and closed again at +75 s: door_forced_open alarm.",
    )
    d = b.script(p.take(Family.ACCESS_DOOR))
    d.event(60, type="forced_open").tele(60, open=True, open_s=0)
    d.tele(75, open=False, open_s=None)
    d.tele(75 + DOOR.heartbeat_s)
    b.alarm(A.DOOR_FORCED_OPEN, d.uid, 60)
    return b.build()


@scenario("door_held_open")
def door_held_open(p: Picker, start: datetime) -> Scenario:
    b = Builder(
        "door_held_open",
        p.compound,
        start,
        f"A door opened with a valid card at +60 s stays open; at {DOOR.held_open_s:.0f} s it reports "
        "held_open, and closes at +240 s: door_held_open alarm.",
    )
    d = b.script(p.take(Family.ACCESS_DOOR))
    d.event(60, type="granted", method="card", credential_hash="ab" * 32)
    due = 60 + DOOR.held_open_s
    for s in range(60, 240, 20):
        d.tele(s, open=True, locked=False, open_s=s - 60)
        if s == due:  # the controller's own held-open alarm, with the report that crosses the limit
            d.event(due, type="held_open", active=True, open_s=int(DOOR.held_open_s))
    d.event(240, type="held_open", active=False, open_s=180)
    d.tele(240, open=False, locked=True, open_s=None)
    d.tele(300)
    b.alarm(A.DOOR_HELD_OPEN, d.uid, due, due)
    return b.build()


@scenario("door_remain_open")
def door_remain_open(p: Picker, start: datetime) -> Scenario:
    b = Builder(
        "door_remain_open",
        p.compound,
        start,
        "A lobby door held open by its own daytime schedule (mode remain_open, 常开) stands open for 15 "
        "minutes, then the schedule ends and it closes and locks: nothing to report (no door_held_open).",
    )
    d = b.script(p.take(Family.ACCESS_DOOR))
    for s in range(60, 960, 60):
        d.tele(s, open=True, locked=False, mode="remain_open", open_s=s - 60)
    d.tele(960, open=False, locked=True, mode="normal", open_s=None)
    d.tele(1020)
    return b.build()


@scenario("door_duress")
def door_duress(p: Picker, start: datetime) -> Scenario:
    b = Builder(
        "door_duress",
        p.compound,
        start,
        "A resident enters the duress code at +60 s: critical door_duress alarm (latching: only an "
        "operator clears it, GB 50394-2007 §5.2.3).",
    )
    d = b.script(p.take(Family.ACCESS_DOOR))
    d.event(60, type="duress", credential_hash="cd" * 32)
    d.tele(61, open=True, locked=False, open_s=0)
    d.tele(70, open=False, locked=True, open_s=None)
    b.alarm(A.DOOR_DURESS, d.uid, 60)
    return b.build()


# ---------------------------------------------------------------------------------------------
# Lighting


def _next_night(start: datetime, site: tuple[float, float] | None = None) -> float:
    """Seconds from `start` to the first instant with 20 minutes of night ahead (lamps due on)."""
    s = 60.0
    while not (
        lamps_due(start + timedelta(seconds=s), site) and lamps_due(start + timedelta(seconds=s + 1200), site)
    ):
        s += 600
    return s


@scenario("lamp_out_at_night")
def lamp_out_at_night(p: Picker, start: datetime) -> Scenario:
    b = Builder(
        "lamp_out_at_night",
        p.compound,
        start,
        "At night a scheduled road lamp is switched on but draws 2 W of its rated 40 W (lamp out) and "
        f"does not say so itself; after the {LIGHT.lamp_out_confirm_s:.0f} s confirmation: lamp_failure.",
    )
    lamp = b.script(p.take(Family.LIGHT, lambda d: d.location.startswith("road")))
    s0 = _next_night(start, lamp.device.site)
    lamp.tele(max(2.0, s0 - 60), on=True, dim_pct=100.0, power_w=39.0, current_a=0.171)
    s = s0
    while s <= s0 + LIGHT.lamp_out_confirm_s + 120:
        lamp.tele(s, power_w=2.0, current_a=0.009)
        s += 60
    due = s0 + LIGHT.lamp_out_confirm_s
    b.alarm(A.LAMP_FAILURE, lamp.uid, due, due + 60)
    return b.build()


@scenario("lamp_dimmed_at_night")
def lamp_dimmed_at_night(p: Picker, start: datetime) -> Scenario:
    b = Builder(
        "lamp_dimmed_at_night",
        p.compound,
        start,
        "At night a scheduled road lamp of 30 W is dimmed to 25 % and draws 7 W (its expected 7.5 W): "
        "normal operation — nothing to report.",
    )
    lamp = b.script(p.take(Family.LIGHT, lambda d: d.location.startswith("road")))
    s0 = _next_night(start, lamp.device.site)
    s = s0
    while s <= s0 + LIGHT.lamp_out_confirm_s + 300:
        lamp.tele(s, on=True, dim_pct=25.0, power_w=7.0, current_a=0.031, rated_power_w=30.0)
        s += 60
    return b.build()


@scenario("lamp_own_schedule_off")
def lamp_own_schedule_off(p: Picker, start: datetime) -> Scenario:
    b = Builder(
        "lamp_own_schedule_off",
        p.compound,
        start,
        "A scheduled road lamp reports its own timetable, which switches it off early this evening; it "
        "stays dark through the night afterwards: its own schedule, not the community's night, says "
        "when it is due on — nothing to report.",
    )
    lamp = b.script(p.take(Family.LIGHT, lambda d: d.location.startswith("road")))
    s0 = _next_night(start, lamp.device.site)
    local = (start + timedelta(seconds=s0)).astimezone(CST)
    on_at = (local - timedelta(hours=3)).strftime("%H:%M")
    off_at = (local + timedelta(minutes=2)).strftime("%H:%M")
    schedule = [{"on_at": on_at, "off_at": off_at, "dim_pct": 100.0}]
    lamp.tele(s0, on=True, dim_pct=100.0, power_w=39.0, current_a=0.171, schedule=schedule)
    s = s0 + 180
    while s <= s0 + 180 + LIGHT.lamp_out_confirm_s + 600:
        lamp.tele(s, on=False, power_w=0.0, current_a=0.0)
        s += 60
    return b.build()


# ---------------------------------------------------------------------------------------------
# CCTV recorders (domain.md §5.3)


def _recorder_ok(b: Builder, r: Script, at_s: float) -> None:
    """The first report of a recorder: every channel evaluated compliant."""
    for n in range(1, r.device.channels + 1):
        b.finding(Check.CCTV_RETENTION, "retention_ok", r.uid, True, at_s, at_s, channel=n)


@scenario("nvr_retention_short")
def nvr_retention_short(p: Picker, start: datetime) -> Scenario:
    b = Builder(
        "nvr_retention_short",
        p.compound,
        start,
        "A recorder's disk shrinks (a failing drive is dropped from the array), so channel 1 overwrites "
        "its oldest footage faster: retention falls from 30.5 to under 30 days — cctv_retention_short "
        "and a non-compliant retention finding for channel 1 (the other channels stay compliant).",
    )
    r = b.script(p.take(Family.CCTV_RECORDER), online=False).online(0)
    keep = CCTV.retention_days + 0.45  # 0.05 d clear of the limit at every report, never on it
    step = CCTV.heartbeat_s
    crossed: float | None = None
    s = 1.0
    while s <= 1 + 8 * step:
        at = b.t(s)
        chans = healthy(r.device, at)["channels"]
        chans[0] = _channel(1, at, keep_days=keep)
        r.tele(s, channels=chans, disk_total_gb=12_000.0 if s > 1 else 16_000.0)
        if crossed is None and keep < CCTV.retention_days:
            crossed = s
        keep -= 0.1  # 2.4 h of footage lost per report
        s += step
    _recorder_ok(b, r, 1)
    assert crossed is not None
    b.alarm(A.CCTV_RETENTION_SHORT, r.uid, crossed)
    b.finding(Check.CCTV_RETENTION, "retention_short", r.uid, False, crossed, crossed, channel=1)
    return b.build()


@scenario("nvr_recording_gap")
def nvr_recording_gap(p: Picker, start: datetime) -> Scenario:
    b = Builder(
        "nvr_recording_gap",
        p.compound,
        start,
        "Channel 2 stops recording at +60 s and restarts 15 min later (tolerance 5 min): first "
        "cctv_recording_stopped, then a 900 s gap — cctv_recording_gap and non-compliant findings.",
    )
    r = b.script(p.take(Family.CCTV_RECORDER), online=False).online(0)

    def report(s: float, recording: bool) -> None:
        chans = healthy(r.device, b.t(s))["channels"]
        chans[1]["recording"] = recording
        r.tele(s, channels=chans)

    report(1, True)
    stop, restart = 60.0, 60.0 + 900
    r.event(stop, type="recording_stopped", channel=2)
    s = 1 + CCTV.heartbeat_s
    while s < restart:
        report(s, False)
        s += CCTV.heartbeat_s
    r.event(restart, type="recording_started", channel=2)
    report(restart + 1, True)
    report(restart + CCTV.heartbeat_s, True)
    _recorder_ok(b, r, 1)
    seen = 1 + CCTV.heartbeat_s  # first report at least `channel_offline_confirm_s` after the stop
    assert seen - stop >= CCTV.channel_offline_confirm_s
    b.alarm(A.CCTV_RECORDING_STOPPED, r.uid, seen)
    b.finding(Check.CCTV_RETENTION, "recording_stopped", r.uid, False, seen, seen, channel=2)
    b.alarm(A.CCTV_RECORDING_GAP, r.uid, restart)
    b.finding(Check.CCTV_RETENTION, "recording_gap", r.uid, False, restart, restart, channel=2)
    return b.build()


@scenario("nvr_channel_offline")
def nvr_channel_offline(p: Picker, start: datetime) -> Scenario:
    b = Builder(
        "nvr_channel_offline",
        p.compound,
        start,
        "Camera channel 3 goes offline at +60 s and stays offline: after the 180 s confirmation "
        "cctv_channel_offline and a non-compliant finding for channel 3.",
    )
    r = b.script(p.take(Family.CCTV_RECORDER), online=False).online(0)
    r.tele(1, channels=healthy(r.device, b.t(1))["channels"])
    r.event(60, type="channel_offline", channel=3)
    s = 1 + CCTV.heartbeat_s
    while s <= 1 + 3 * CCTV.heartbeat_s:
        chans = healthy(r.device, b.t(s))["channels"]
        chans[2].update(online=False, recording=False)
        r.tele(s, channels=chans)
        s += CCTV.heartbeat_s
    _recorder_ok(b, r, 1)
    seen = 1 + CCTV.heartbeat_s
    b.alarm(A.CCTV_CHANNEL_OFFLINE, r.uid, seen)
    b.finding(Check.CCTV_RETENTION, "channel_offline", r.uid, False, seen, seen, channel=3)
    return b.build()


@scenario("nvr_retention_unknown")
def nvr_retention_unknown(p: Picker, start: datetime) -> Scenario:
    b = Builder(
        "nvr_retention_unknown",
        p.compound,
        start,
        "A recorder's channel 4 never reports its earliest recording (an old firmware's search returns "
        "nothing for it): unknown is not compliant — a non-compliant retention_unknown finding for "
        "channel 4 and cctv_retention_short naming it, the other channels compliant.",
    )
    r = b.script(p.take(Family.CCTV_RECORDER), online=False).online(0)
    for k in range(3):
        s = 1 + k * CCTV.heartbeat_s
        chans = healthy(r.device, b.t(s))["channels"]
        del chans[3]["earliest_recording"], chans[3]["latest_recording"]
        r.tele(s, channels=chans)
    for n in range(1, r.device.channels + 1):
        ok = n != 4
        b.finding(
            Check.CCTV_RETENTION, "retention_ok" if ok else "retention_unknown", r.uid, ok, 1, channel=n
        )
    b.alarm(A.CCTV_RETENTION_SHORT, r.uid, 1)
    return b.build()


@scenario("nvr_exact_30_days")
def nvr_exact_30_days(p: Picker, start: datetime) -> Scenario:
    b = Builder(
        "nvr_exact_30_days",
        p.compound,
        start,
        "A recorder sized for exactly 30 days overwrites its oldest hour-long block whenever the disk "
        "fills: channel 1 keeps between 29.96 and 30.0 days, and the recorder reports disk_full while "
        "overwriting. Inside the hysteresis band and overwriting as designed: compliant throughout, no "
        "alarm, no flapping.",
    )
    r = b.script(p.take(Family.CCTV_RECORDER), online=False).online(0)
    keeps = (30.0, 29.975, 29.99, 29.96, 30.0, 29.97, 29.985, 29.96)
    for k, keep in enumerate(keeps):
        s = 1 + k * CCTV.heartbeat_s
        chans = healthy(r.device, b.t(s))["channels"]
        chans[0] = _channel(1, b.t(s), keep_days=keep)
        r.tele(s, channels=chans, overwrite=True, disk_free_gb=0.0)
        if k == 2:
            r.event(s + 30, type="disk_full", active=True, overwrite=True)
    _recorder_ok(b, r, 1)
    return b.build()


@scenario("nvr_offline_gap")
def nvr_offline_gap(p: Picker, start: datetime) -> Scenario:
    b = Builder(
        "nvr_offline_gap",
        p.compound,
        start,
        "A recorder's uplink dies after its report at +1 s (no Last Will: the switch port is dead) and "
        "comes back an hour later. Offline after 3 missed 300 s reports: device_offline and every channel "
        "non-compliant (recorder_offline); back at +3601 s, the hour without evidence is a recording "
        "gap of every channel (cctv_recording_gap).",
    )
    r = b.script(p.take(Family.CCTV_RECORDER), online=False).online(0)
    r.tele(1, channels=healthy(r.device, b.t(1))["channels"])
    back = 3601.0
    keeper = b.script(p.take(Family.ACCESS_DOOR))  # keeps the event clock moving meanwhile
    keeper.every(61, back + CCTV.heartbeat_s, DOOR.heartbeat_s)
    for s in (back, back + CCTV.heartbeat_s):
        r.tele(s, channels=healthy(r.device, b.t(s))["channels"])
    due = 1 + CCTV.heartbeat_s * CCTV.missed_heartbeats
    _recorder_ok(b, r, 1)
    b.alarm(A.DEVICE_OFFLINE, r.uid, due, due + SLACK_S)
    for n in range(1, r.device.channels + 1):
        b.finding(Check.CCTV_RETENTION, "recorder_offline", r.uid, False, due, due + SLACK_S, channel=n)
        b.finding(Check.CCTV_RETENTION, "recording_gap", r.uid, False, back, channel=n)
    b.alarm(A.CCTV_RECORDING_GAP, r.uid, back)
    return b.build()


# ---------------------------------------------------------------------------------------------
# Device clocks


RESET_CLOCK = datetime(2000, 1, 1, 8, 0, tzinfo=CST)  # where a real-time clock without battery restarts


@scenario("door_clock_reset")
def door_clock_reset(p: Picker, start: datetime) -> Scenario:
    b = Builder(
        "door_clock_reset",
        p.compound,
        start,
        "A door controller's clock battery died: it restarts at 2000-01-01 08:00 and counts on from there. "
        "Its telemetry lies outside ingest's timestamp window and is dead-lettered with that reason; its "
        "status and its forced-open alarm are not refused for their time alone: stored and raised at "
        "the receive time — clock_skew from the first message, door_forced_open at +60 s.",
    )
    door = p.take(Family.ACCESS_DOOR)
    b.devices.append(door.uid)
    em = Emitter(door, HEARTBEAT_S[Family.ACCESS_DOOR])

    def device_time(s: float) -> datetime:
        return RESET_CLOCK + timedelta(seconds=s)

    b.add(_sent_at(em.online(device_time(0)), b.t(0)))
    telemetry = f"v1/{door.community}/{door.uid}/{Channel.TELEMETRY.value}"
    for s in (1.0, 61.0, 121.0):
        if s == 61.0:
            b.add(_sent_at(em.event(device_time(60), {"type": "forced_open"}), b.t(60)))
        msg = em.telemetry(device_time(s), healthy(door, b.t(s)))
        b.add(SimMessage(b.t(s), msg.community, msg.device, msg.channel, msg.payload, raw_topic=telemetry))
        b.dead.append(ExpectedDeadLetter("timestamp_out_of_window", telemetry, door.uid))
    b.alarm(A.CLOCK_SKEW, door.uid, 0, SLACK_S, received=True)
    b.alarm(A.DOOR_FORCED_OPEN, door.uid, 60, 60 + SLACK_S, received=True)
    return b.build()


def _sent_at(msg: SimMessage, at: datetime) -> SimMessage:
    return SimMessage(
        at, msg.community, msg.device, msg.channel, msg.payload, msg.retain, msg.raw_topic, msg.will
    )


# ---------------------------------------------------------------------------------------------
# Presence and outages


@scenario("device_silent")
def device_silent(p: Picker, start: datetime) -> Scenario:
    b = Builder(
        "device_silent",
        p.compound,
        start,
        "An elevator's monitoring terminal goes silent after +60 s (no Last Will: its modem hangs) while "
        "another device keeps reporting: device_offline after 3 missed 60 s heartbeats.",
    )
    e = b.script(p.take(Family.ELEVATOR))
    e.tele(60)
    keeper = b.script(p.take(Family.ACCESS_DOOR))
    keeper.every(61, 60 + 3 * ELEV.missed_heartbeats * ELEV.heartbeat_s, DOOR.heartbeat_s)
    due = 60 + ELEV.heartbeat_s * ELEV.missed_heartbeats
    b.alarm(A.DEVICE_OFFLINE, e.uid, due, due + SLACK_S)
    return b.build()


@scenario("network_outage_flush")
def network_outage_flush(p: Picker, start: datetime) -> Scenario:
    b = Builder(
        "network_outage_flush",
        p.compound,
        start,
        "The uplink of three road lamps is down from +60 s to +660 s. They keep measuring every 60 s "
        "and flush their buffers when it returns: out of order, some messages twice. The outage is "
        "shorter than their offline limit (3 × 300 s): no alarm at all, and exactly one row per "
        "distinct message.",
    )
    rng = random.Random(f"outage/{start.isoformat()}")  # noqa: S311 - simulation
    lamps = [b.script(p.take(Family.LIGHT, lambda d: d.location.startswith("road"))) for _ in range(3)]
    down, up = 60.0, 660.0
    telemetry = 3  # the first report at +1 s of each lamp (its online status is an event row)
    for lamp in lamps:
        buffered: list[SimMessage] = []
        s = 60.0
        while s < up:
            on = is_night(b.t(s), lamp.device.site)
            data = {**lamp.data, "on": on, "power_w": 39.0 if on else 0.0, "current_a": 0.171 if on else 0.0}
            lamp.data = data
            buffered.append(lamp.em.telemetry(lamp._at(s), copy.deepcopy(data), sent_at=b.t(up)))
            s += 60
        telemetry += len(buffered)
        flush = buffered + rng.sample(buffered, 3)  # three sent twice
        rng.shuffle(flush)
        for i, msg in enumerate(flush):
            b.add(_resent(msg, b.t(up + i * 0.01)))
        lamp.tele(up + 30)
        telemetry += 1
    assert down < up
    # each lamp's online status is stored too, as a device_events row of kind "status" (ingest)
    b.rows = {"telemetry": telemetry, "device_events": len(lamps)}
    return b.build()


def _resent(msg: SimMessage, at: datetime) -> SimMessage:
    return SimMessage(at, msg.community, msg.device, msg.channel, msg.payload, msg.retain, msg.raw_topic)


# ---------------------------------------------------------------------------------------------
# The alarm path (issue 9): counters that restart, devices registered a moment ago


@scenario("counter_restart")
def counter_restart(p: Picker, start: datetime) -> Scenario:
    b = Builder(
        "counter_restart",
        p.compound,
        start,
        "Two doors restart their sequence counters (docs/mqtt.md: start at 0 after a factory reset; "
        "also the demo's second run). Door A counts to 10, loses power (offline status), reboots and "
        "announces itself online with seq 1; door B counts to 63 and carries on from 1 after a watchdog "
        "reset. Both are then forced open: each forced-open alarm is raised, A's offline alarm clears, "
        "and a redelivered copy (of the forced open, and of a message from before the restart) "
        "changes nothing.",
    )
    a = b.script(p.take(Family.ACCESS_DOOR, lambda d: not on_route(p.compound, d)))  # seq 0–2
    a.every(20, 160, 20)  # seq 3 … 10
    b.add(a.em.status(a._at(190), "offline", reason="power_loss"))  # seq 11
    b.alarm(A.DEVICE_OFFLINE, a.uid, 190)
    a.em.seq = 0  # rebooted: the will takes 0, the online announcement 1
    a.online(250)
    a.event(260, type="forced_open")
    forced = b.messages[-1]
    a.tele(275, open=False, open_s=None)
    b.add(_resent(forced, b.t(280)))  # a QoS 1 redelivery of the forced open, after it cleared
    a.every(300, 660, 60)  # heartbeats on, so that it is not found silent before door B is done
    b.alarm(A.DOOR_FORCED_OPEN, a.uid, 260)

    d = b.script(p.take(Family.ACCESS_DOOR, lambda x: not on_route(p.compound, x)))  # seq 0–2
    d.every(10, 610, 10)  # seq 3 … 63
    before = b.messages[-1]
    d.em.seq = 1
    d.tele(620)  # seq 1 again, 10 s later: a new counter
    d.event(630, type="forced_open")
    d.tele(645, open=False, open_s=None)
    b.add(_resent(before, b.t(650)))  # a late copy from before the restart
    d.tele(660)
    b.alarm(A.DOOR_FORCED_OPEN, d.uid, 630)
    b.rows = b.distinct_rows()
    return b.build()


def on_route(compound: Compound, device: SimDevice) -> bool:
    return compound.location(device.location).evacuation_route


REGISTER_PROBES = 5


@scenario("register_then_publish")
def register_then_publish(p: Picker, start: datetime) -> Scenario:
    b = Builder(
        "register_then_publish",
        p.compound,
        start,
        f"{REGISTER_PROBES} new doors are registered one after another, 2 s apart, and each connects at "
        "once (retained online status and a report at the instant of its registration), then is "
        "forced open: no message is dead-lettered unknown_device, every forced-open alarm is raised.",
    )
    shed = next(x for x in p.compound.locations if x.kind == "shed")
    for i in range(REGISTER_PROBES):
        device = SimDevice(
            f"{p.compound.community.code}-newdoor-{i:02d}",
            p.compound.community.code,
            Family.ACCESS_DOOR,
            shed.code,
            "DS-K1T",
            "海康威视",
        )
        at = 60.0 + 2 * i
        b.registrations.append(Registration(b.t(at), device))
        door = b.script(device, online=False).online(at).tele(at)
        door.event(at + 1, type="forced_open")
        door.tele(at + 10, open=False, open_s=None)
        door.tele(at + 20)
        b.alarm(A.DOOR_FORCED_OPEN, device.uid, at + 1)
    b.rows = b.distinct_rows()
    return b.build()


# ---------------------------------------------------------------------------------------------


def build(
    names: Iterable[str], compound: Compound, start: datetime, *, picker: Picker | None = None
) -> list[Scenario]:
    """The named scenarios on `compound`, each on its own devices, all starting at `start`."""
    picker = picker or Picker(compound)
    out = []
    for name in names:
        try:
            factory = SCENARIOS[name]
        except KeyError:
            raise KeyError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}") from None
        out.append(factory(picker, start))
    return out


from simulators import bad_input as _bad_input  # noqa: E402, F401 - registers the bad-input scenario
