"""E-bike charging posts: alarms, and the auto-cutoff check (domain.md §5.1, standards.md §1).

Every triggering condition seen while a port's relay is closed opens an obligation: the port (or,
for post-wide triggers, every port that was on) must lose power before the trigger's deadline. Each
trigger kind has one deadline setting, `<kind>_cutoff_s`, measured from the trigger's instant
(`alerts.config.TRIGGERS`; docs/mqtt.md §12): the first report showing the
condition — its confirmation time runs inside the deadline —, the time of an alarm push or of the
building's fire alarm, the end of the float time (`full`), the instant the session reached its
maximum (`max_time`).

    obligation `st.cuts[(kind, port)]` = Obligation(trigger ts, deadline ts, stage, ports)
    stage WAITING: waiting for the post's own cut; COMMANDED: missed, cutoff command sent, waiting
    for its effect; ESCALATED: no further deadline. port 0 = post-wide trigger; `ports` still to be
    cut.

Cut evidence (docs/mqtt.md §6): what telemetry shows — the port's relay open, or (post-wide) the
leakage breaker open — attributed to the stop reason the post reported for the port (the device's
`ChargerState`, alerts/core/records.py, a `Stop` of when and why per port):
    `protective[port]`  a protective stop (PROTECTIVE_STOP_REASONS) not yet seen in telemetry. It
                        counts as the cut, at its own time, once telemetry (or the port's next
                        session_start) shows the relay open; meanwhile the deadline waits.
                        Telemetry showing the relay still closed voids it.
    `other[port]`       a stop for any other reason (user_unplug, server_stop, …): the port has no
                        power but the post did not protect itself, so a waiting obligation is not
                        met by it and reaches its deadline as `not_cut` (details.stopped_by); a
                        missed one ends (the hazard is gone).
A relay seen open without a stop reported counts as the post's cut (standards.md §1.3: "port state
transition to idle/3 with relay off"). A power_loss alarm push cuts every port: the evidence for the
fire linkage (non-fire power cut, GB 50166-2019 §4.20), not a protective cut for any other trigger.

Outcomes (finding details.outcome): `in_time` (compliant, with the measured delay); `not_cut`
(non-compliant, decided at the deadline: critical auto_cutoff_failed and a remote cutoff command
whose effect is verified within command_verify_s, else escalation and the whole post cut); `late`:
the same finding revised when the power is seen cut after the deadline, with the measured delay
(same dedup key: storage keeps one row per obligation, storage/findings.py).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from alerts.config import AlertSettings, ChargerRules, confirm_s, cutoff_s
from alerts.core import faults
from alerts.core.model import DeviceState, Obligation, Out, Stage
from alerts.core.records import ChargerState, FloatWindow, Stop
from devices.alarms import AlarmType, Check
from devices.envelope import EventMessage, TelemetryMessage
from devices.families import ebike_charger as fam

A = AlarmType
# trigger kind → the alarm raised for the condition itself (None: only auto_cutoff_failed, if missed)
TRIGGER_ALARM: dict[str, AlarmType | None] = {
    "over_temperature": A.CHARGER_OVER_TEMPERATURE,
    "ambient_over_temperature": A.CHARGER_OVER_TEMPERATURE,
    "cabinet_over_temperature": A.CHARGER_OVER_TEMPERATURE,
    "overload": A.CHARGER_OVERLOAD,
    "over_current": A.CHARGER_OVERLOAD,
    "over_voltage": None,
    "under_voltage": None,
    "leakage": A.CHARGER_LEAKAGE,
    "short_circuit": A.CHARGER_SHORT_CIRCUIT,
    "water": A.CHARGER_WATER,
    "smoke": A.CHARGER_SMOKE,
    "fire": None,
    "full": None,
    "max_time": None,
}
_NOT_STOPPED = frozenset({"full", "max_time"})
PROTECTIVE = frozenset(r.value for r in fam.PROTECTIVE_STOP_REASONS)
# port → (instant the port lost power, stop reason or None, counts for a waiting obligation)
_Cuts = dict[int, tuple[float, str | None, bool]]


def _state(out: Out) -> ChargerState:
    s = out.st.family
    if not isinstance(s, ChargerState):
        s = out.st.family = ChargerState()
    return s


def _open_obligation(out: Out, kind: str, port: int, *, t0: float, r: ChargerRules, ports: list[int]) -> None:
    key = (kind, port)
    if key not in out.st.cuts and ports:
        out.st.cuts[key] = Obligation(t0, t0 + cutoff_s(r, kind), ports=tuple(ports))


def _drop_unconfirmed(out: Out, kind: str, port: int) -> None:
    """The condition went away before it was confirmed and nothing was cut: not a trigger."""
    key = (kind, port)
    ob = out.st.cuts.get(key)
    if ob is not None and ob.stage is Stage.WAITING:
        del out.st.cuts[key]


def pending(st: DeviceState, ob: Obligation) -> bool:
    """A waiting obligation whose every port has a protective stop reported in time, still to be
    seen in telemetry: its deadline waits for that report."""
    if ob.stage is not Stage.WAITING:
        return False
    stops = st.family.protective if isinstance(st.family, ChargerState) else {}
    return all((ps := stops.get(p)) is not None and ps.at <= ob.deadline for p in ob.ports)


def _settle(
    out: Out,
    cuts: _Cuts,
    post: tuple[float, str | None] | None,
    ts: float,
    r: ChargerRules,
    *,
    only: str | None = None,
) -> None:
    """Ports (or the whole post) that have no power now: settle the obligations waiting for them
    (`only`: of that trigger kind)."""
    obligations = out.st.cuts
    for key in [k for k in obligations if only is None or k[0] == only]:
        ob = obligations[key]
        stage = ob.stage
        remaining: list[int] = []
        at, reasons = 0.0, set[str]()
        for p in ob.ports:
            cut = (post[0], post[1], True) if post is not None else cuts.get(p)
            if cut is None or (stage is Stage.WAITING and not cut[2]):
                remaining.append(p)
                continue
            at = max(at, cut[0])
            if cut[1]:
                reasons.add(cut[1])
        if remaining:
            obligations[key] = replace(ob, ports=tuple(remaining))
            continue
        del obligations[key]
        kind, port = key
        # once missed, ob.deadline is the command's verification deadline: the trigger's own is recomputed
        t0 = ob.t0
        deadline = ob.deadline if stage is Stage.WAITING else t0 + cutoff_s(r, kind)
        evidence: dict[str, Any] = {"stop_reason": ",".join(sorted(reasons))} if reasons else {}
        if stage is Stage.WAITING or at > deadline:
            in_time = at <= deadline
            out.finding(
                Check.AUTO_CUTOFF,
                kind,
                in_time,
                ts,
                trigger_ts=t0,
                deadline_s=round(deadline - t0, 3),
                measured_s=at - t0,
                channel=port,
                details={"outcome": "in_time" if in_time else "late", **evidence},
            )
        if stage is not Stage.WAITING and not any(o.stage is not Stage.WAITING for o in obligations.values()):
            details = {"trigger": kind, "port": port, "cut_after_s": round(at - t0, 3), **evidence}
            out.clear(A.AUTO_CUTOFF_FAILED, ts, details)
            out.clear(A.CHARGE_NOT_STOPPED, ts, details)


def deadlines(out: Out, now: float, th: AlertSettings) -> None:
    other, obligations = _state(out).other, out.st.cuts
    for key in list(obligations):
        ob = obligations[key]
        t0, deadline, stage = ob.t0, ob.deadline, ob.stage
        if stage is Stage.ESCALATED or now <= deadline or pending(out.st, ob):
            continue
        kind, port = key
        details: dict[str, Any] = {"trigger": kind, "port": port, "ports": list(ob.ports)}
        stopped = sorted({other[p].reason for p in ob.ports if p in other})
        if stopped:
            details["stopped_by"] = ",".join(stopped)
        if stage is Stage.WAITING:
            out.finding(
                Check.AUTO_CUTOFF,
                kind,
                False,
                deadline,
                trigger_ts=t0,
                deadline_s=round(deadline - t0, 3),
                channel=port,
                details={"outcome": "not_cut", **details},
            )
            out.raise_(A.AUTO_CUTOFF_FAILED, deadline, details, source="compliance")
            if kind in _NOT_STOPPED:
                out.raise_(A.CHARGE_NOT_STOPPED, deadline, details, source="compliance")
            if port:
                out.command("stop_port", {"port": port}, deadline, A.AUTO_CUTOFF_FAILED)
            else:
                out.command("cut_power", {}, deadline, A.AUTO_CUTOFF_FAILED)
            obligations[key] = replace(ob, deadline=deadline + th.command_verify_s, stage=Stage.COMMANDED)
        else:  # the remote cutoff did not take effect either
            out.escalate(
                A.AUTO_CUTOFF_FAILED, deadline, {"reason": "cutoff_command_not_effective", **details}
            )
            out.command("cut_power", {}, deadline, A.AUTO_CUTOFF_FAILED)
            obligations[key] = replace(ob, stage=Stage.ESCALATED)


class _Triggers:
    """Conditions that must lead to a cut: an alarm after the confirmation time, and an obligation to
    cut from the moment the condition is first seen while the port has power."""

    __slots__ = ("out", "r", "ts")

    def __init__(self, out: Out, ts: float, r: ChargerRules) -> None:
        self.out, self.ts, self.r = out, ts, r

    def __call__(
        self,
        kind: str,
        port: int,
        cond: bool | None,
        *,
        powered: bool,
        ports: list[int],
        details: dict[str, float | int | str],
        alarm_on: bool = True,
    ) -> None:
        """`cond` None: the reading was refused at the edge — the timer and any obligation stay as
        they are (unknown is neither over nor under the limit)."""
        if cond is None:
            return
        out, ts = self.out, self.ts
        alarm = TRIGGER_ALARM[kind]
        timer = f"t:{kind}:{port}"
        confirm = confirm_s(self.r, kind)
        if cond:
            t0 = out.st.marks.get(timer, ts)
            if powered:
                _open_obligation(out, kind, port, t0=t0, r=self.r, ports=ports)
            if out.held(timer, True, ts, confirm) and alarm is not None and alarm_on:
                out.raise_(alarm, ts, details)
        else:
            if timer in out.st.marks and ts - out.st.marks[timer] < confirm:
                _drop_unconfirmed(out, kind, port)
            out.held(timer, False, ts, confirm)


def _over(value: float | None, limit: float) -> bool | None:
    return None if value is None else value > limit


def telemetry(out: Out, msg: TelemetryMessage[fam.Telemetry], ts: float, th: AlertSettings) -> None:
    r = th.ebike_charger
    t = msg.data
    s = _state(out)
    # power already cut: settle obligations first (a cut seen in this report counts)
    cuts: _Cuts = {}
    for p in t.ports:
        if p.relay_on:  # a new session, or a reported stop that did not take effect
            s.protective.pop(p.port, None)
            s.other.pop(p.port, None)
            continue
        ps, np_ = s.protective.pop(p.port, None), s.other.get(p.port)
        if ps is not None:
            cuts[p.port] = (ps.at, ps.reason, True)
        elif np_ is not None:
            cuts[p.port] = (np_.at, np_.reason, False)
        else:
            cuts[p.port] = (ts, None, True)
    _settle(out, cuts, (ts, "breaker_open") if t.breaker_closed is False else None, ts, r)
    trig = _Triggers(out, ts, r)
    active: dict[AlarmType, bool] = {
        A.CHARGER_OVER_TEMPERATURE: False,
        A.CHARGER_OVERLOAD: False,
        A.SENSOR_IMPLAUSIBLE: False,
    }
    for p in t.ports:
        _port(out, trig, p, ts, r, active=active)
    _post(out, trig, t, ts, r, active=active)
    if t.refused:  # readings refused at the edge; the rest of the report was evaluated above
        out.hold(A.SENSOR_IMPLAUSIBLE).good = -1  # this report is counted by the engine's release
        out.raise_(A.SENSOR_IMPLAUSIBLE, ts, {"reason": "out_of_range", "refused": dict(t.refused)})
        active[A.SENSOR_IMPLAUSIBLE] = True
    # alarms on the conditions themselves clear when no port shows them any more
    for alarm, still in active.items():
        if not still and not (alarm is A.CHARGER_OVER_TEMPERATURE and out.st.marks.get("ev:temperature")):
            out.clear(alarm, ts)
    _protection(out, t.protection, ts, r)
    # fault states in telemetry (silent-fault check)
    showing: dict[str, AlarmType] = {}
    for p in t.ports:
        code = p.fault_code or fam.FAULT_OF_PORT_STATE.get(p.state)
        if code is not None:
            showing[f"{p.port}:{code.value}"] = (
                A.CHARGER_SHORT_CIRCUIT if code is fam.FaultCode.SHORT_CIRCUIT else A.CHARGER_FAULT
            )
    faults.sync(out, showing, "", ts)


def _port(
    out: Out, trig: _Triggers, p: fam.Port, ts: float, r: ChargerRules, *, active: dict[AlarmType, bool]
) -> None:
    n, on = p.port, p.relay_on
    hot = None if p.port_temp_c is None else p.port_temp_c >= r.port_over_temp_c
    over_p, over_i = _over(p.power_w, r.port_power_limit_w), _over(p.current_a, r.port_current_limit_a)
    flowing = p.current_a is not None and p.current_a > r.relay_off_current_a
    ov = _over(p.voltage_v, r.over_voltage_v)
    uv = None if p.voltage_v is None or p.current_a is None else p.voltage_v < r.under_voltage_v and flowing
    for kind, cond, reading in (
        ("over_temperature", hot, ("port_temp_c", p.port_temp_c)),
        ("overload", over_p, ("power_w", p.power_w)),
        ("over_current", over_i, ("current_a", p.current_a)),
        ("over_voltage", ov, ("voltage_v", p.voltage_v)),
        ("under_voltage", uv, ("voltage_v", p.voltage_v)),
    ):
        details: dict[str, float | int | str] = {"port": n}
        if reading[1] is not None:
            details[reading[0]] = reading[1]
        trig(kind, n, cond, powered=on, ports=[n], details=details)
    shorted = p.state is fam.PortState.SHORT_CIRCUIT or p.fault_code is fam.FaultCode.SHORT_CIRCUIT
    # the short-circuit alarm itself comes from the fault-alarm path
    trig("short_circuit", n, shorted, powered=on, ports=[n], details={"port": n}, alarm_on=False)
    _float_window(out, p, ts, r)
    if on and p.session_s > r.max_session_s:
        t0 = ts - (p.session_s - r.max_session_s)
        _open_obligation(out, "max_time", n, t0=t0, r=r, ports=[n])
    if p.port_temp_c is None:  # unknown: an open over-temperature alarm stays open
        hot_clear = out.is_open(A.CHARGER_OVER_TEMPERATURE)
    else:
        hot_clear = p.port_temp_c >= r.port_over_temp_c - r.temp_clear_hysteresis_c
    if hot or (hot_clear and out.is_open(A.CHARGER_OVER_TEMPERATURE)):
        active[A.CHARGER_OVER_TEMPERATURE] = True
    if over_p or over_i or (None in (p.power_w, p.current_a) and out.is_open(A.CHARGER_OVERLOAD)):
        active[A.CHARGER_OVERLOAD] = True
    # implausible: power flowing through an open relay, or power far above V × I
    if p.current_a is None or p.power_w is None or p.voltage_v is None:
        return
    if (not on and flowing) or p.power_w > 1.5 * p.voltage_v * p.current_a + 100:
        active[A.SENSOR_IMPLAUSIBLE] = True
        out.raise_(A.SENSOR_IMPLAUSIBLE, ts, {"port": n, "current_a": p.current_a, "power_w": p.power_w})


def _float_window(out: Out, p: fam.Port, ts: float, r: ChargerRules) -> None:
    """Full/float: the float time runs from the session's first full report — a port that switches
    between float and charging keeps its window — and ends with the session (relay open, or a report
    of a shorter session: a new one). `ChargerState.floats[port]`: the first full report and the
    session time then."""
    floats = _state(out).floats
    out.st.marks.pop(f"t:fullsince:{p.port}", None)  # the window of earlier versions, reset by charging
    window = floats.get(p.port)
    if not p.relay_on or (window is not None and p.session_s < window.session_s):
        floats.pop(p.port, None)
        window = None
    if not p.relay_on:
        return
    low_power = p.power_w is not None and p.power_w < r.full_power_w
    complete = p.state in fam.COMPLETE_PORT_STATES or (p.state is fam.PortState.CHARGING and low_power)
    if window is None and complete:
        window = floats[p.port] = FloatWindow(ts, p.session_s)
    if window is not None and ts - window.since > r.float_time_s:
        _open_obligation(out, "full", p.port, t0=window.since + r.float_time_s, r=r, ports=[p.port])


def _post(
    out: Out, trig: _Triggers, t: fam.Telemetry, ts: float, r: ChargerRules, *, active: dict[AlarmType, bool]
) -> None:
    on_ports = [p.port for p in t.ports if p.relay_on]
    for kind, temp, limit in (
        ("ambient_over_temperature", t.ambient_temp_c, r.ambient_over_temp_c),
        ("cabinet_over_temperature", t.cabinet_temp_c, r.cabinet_over_temp_c),
    ):
        if temp is None:  # refused, or no such sensor (open posts have no cabinet)
            if kind == "ambient_over_temperature" and out.is_open(A.CHARGER_OVER_TEMPERATURE):
                active[A.CHARGER_OVER_TEMPERATURE] = True
            continue
        hot = temp >= limit
        name = kind.removesuffix("_over_temperature") + "_temp_c"
        trig(kind, 0, hot, powered=bool(on_ports), ports=on_ports, details={name: temp})
        if hot:
            active[A.CHARGER_OVER_TEMPERATURE] = True
    trig("smoke", 0, t.smoke, powered=bool(on_ports), ports=on_ports, details={"smoke": 1})
    if t.smoke:
        out.raise_(A.CHARGER_SMOKE, ts, {"source": "telemetry"})
    elif not out.st.marks.get("ev:smoke"):
        out.clear(A.CHARGER_SMOKE, ts)
    if t.leakage_ma is not None:
        # the electrical-fire alarm setting (standards.md §3: 300–500 mA, natural leakage 100–200 mA):
        # a shed's normal leakage neither alarms nor obliges the post to cut
        powered = bool(on_ports) and t.breaker_closed is not False
        leaking = t.leakage_ma >= r.leakage_trip_ma
        details: dict[str, float | int | str] = {"leakage_ma": t.leakage_ma}
        trig("leakage", 0, leaking, powered=powered, ports=on_ports, details=details, alarm_on=False)
        out.hysteresis(
            A.CHARGER_LEAKAGE,
            t.leakage_ma,
            r.leakage_trip_ma,
            r.leakage_trip_ma * r.leakage_clear_ratio,
            ts,
            confirm_s=r.leakage_confirm_s,
        )


# the post's reported limit → (the community setting it must not exceed, looser when greater)
_LIMITS: tuple[tuple[str, str, bool], ...] = (
    ("over_temp_c", "port_over_temp_c", True),
    ("port_power_limit_w", "port_power_limit_w", True),
    ("max_session_s", "max_session_s", True),
    ("float_time_s", "float_time_s", True),
    ("leakage_trip_ma", "leakage_trip_ma", True),
    ("over_voltage_v", "over_voltage_v", True),
    ("under_voltage_v", "under_voltage_v", False),
)


def _protection(out: Out, pr: fam.Protection, ts: float, r: ChargerRules) -> None:
    """The post's protection in force (domain.md §5.1): a protection switched off, or a limit looser
    than the community's setting (an over-temperature cut at 120 °C where the community cuts at
    80 °C), is itself a finding — once per change."""
    disabled = [
        f"{name}_disabled"
        for name, on in (("full_auto_stop", pr.full_auto_stop), ("over_temp_cutoff", pr.over_temp_cutoff))
        if not on
    ]
    loose: dict[str, dict[str, float]] = {}
    for field, setting, upper in _LIMITS:
        value, limit = getattr(pr, field), float(getattr(r, setting))
        if value is not None and (value > limit if upper else value < limit):
            loose[f"{field}_loose"] = {"reported": float(value), "setting": limit}
    issues = tuple(sorted([*disabled, *loose]))
    s = _state(out)
    previous = s.protection
    if previous == issues:
        return
    s.protection = issues
    for name in issues:
        if previous is None or name not in previous:
            detail = {"setting": name.removesuffix("_disabled")} if name in disabled else loose[name]
            out.finding(Check.PROTECTION_CONFIG, name, False, ts, details=detail)
    if disabled:
        out.raise_(A.PROTECTION_DISABLED, ts, {"disabled": [d.removesuffix("_disabled") for d in disabled]})
    else:
        out.clear(A.PROTECTION_DISABLED, ts)
    if loose:
        out.raise_(A.PROTECTION_LIMIT_LOOSE, ts, {"loose": loose})
    else:
        out.clear(A.PROTECTION_LIMIT_LOOSE, ts)
    if not issues and previous is not None:
        out.finding(Check.PROTECTION_CONFIG, "protection_enabled", True, ts)


_EVENT_ALARM: dict[fam.AlarmKind, AlarmType] = {
    fam.AlarmKind.POWER_LOSS: A.CHARGER_FAULT,
    fam.AlarmKind.WATER: A.CHARGER_WATER,
    fam.AlarmKind.WATER_LEVEL: A.CHARGER_WATER,
    fam.AlarmKind.THERMAL_FUSE: A.CHARGER_FAULT,
    fam.AlarmKind.SMOKE: A.CHARGER_SMOKE,
    fam.AlarmKind.TEMPERATURE: A.CHARGER_OVER_TEMPERATURE,
    fam.AlarmKind.DOOR: A.CHARGER_FAULT,
}


def event(out: Out, msg: EventMessage[fam.Event], ts: float, th: AlertSettings) -> None:
    r = th.ebike_charger
    ev = msg.event
    marks = out.st.marks
    s = _state(out)
    if isinstance(ev, fam.SessionStart):
        ps = s.protective.pop(ev.port, None)
        if ps is not None:  # a new session: the reported stop had cut the port
            _settle(out, {ev.port: (ps.at, ps.reason, True)}, None, ts, r)
        s.other.pop(ev.port, None)
    elif isinstance(ev, fam.SessionStop):
        protective = ev.reason.value in PROTECTIVE
        stops, others = (s.protective, s.other) if protective else (s.other, s.protective)
        stops[ev.port] = Stop(ts, ev.reason.value)
        others.pop(ev.port, None)
    elif isinstance(ev, fam.Fault):
        type = A.CHARGER_SHORT_CIRCUIT if ev.code is fam.FaultCode.SHORT_CIRCUIT else A.CHARGER_FAULT
        faults.reported(out, f"{ev.port}:{ev.code.value}", type, ev.active, ts, details={"port": ev.port})
    elif isinstance(ev, fam.Alarm):
        type = _EVENT_ALARM[ev.kind]
        flag = "ev:" + ev.kind.value
        if ev.active:
            marks[flag] = 1
            out.raise_(type, ts, {"kind": ev.kind.value, "port": ev.port, "value": ev.value}, source="device")
            on = list(s.on_ports)
            if ev.kind in (fam.AlarmKind.WATER, fam.AlarmKind.SMOKE):
                kind = "water" if ev.kind is fam.AlarmKind.WATER else "smoke"
                _open_obligation(out, kind, ev.port, t0=ts, r=r, ports=[ev.port] if ev.port else on)
            elif ev.kind is fam.AlarmKind.POWER_LOSS:
                # mains gone: no port has power — the fire linkage's cut of non-fire power; for any
                # other trigger the post did not protect itself
                for p in on:
                    s.other[p] = Stop(ts, "power_loss")
                _settle(out, {}, (ts, "power_loss"), ts, r, only="fire")
        else:
            marks.pop(flag, None)
            out.clear(type, ts, {"kind": ev.kind.value, "by": "device"})


def fire_linkage(out: Out, at: float, th: AlertSettings) -> None:
    """A fire alarm in the post's building: its charging (non-fire power) must be cut within
    fire_cutoff_s (GB 50166-2019 §4.20 [S]). Posts outside any building (a shed of its own) are
    not reached by a building's fire; their own smoke sensor is their trigger."""
    _open_obligation(out, "fire", 0, t0=at, r=th.ebike_charger, ports=list(_state(out).on_ports))


def remember_on_ports(out: Out, msg: TelemetryMessage[fam.Telemetry]) -> None:
    """Ports with power, for post-wide triggers that arrive as events."""
    _state(out).on_ports = tuple(p.port for p in msg.data.ports if p.relay_on)
