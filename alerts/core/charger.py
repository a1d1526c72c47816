"""E-bike charging posts: alarms, and the auto-cutoff check (domain.md §5.1, standards.md §1).

Every triggering condition seen while a port's relay is closed opens an obligation: the port (or,
for post-wide triggers, every port that was on) must lose power before the trigger's deadline.

    obligation mark "o:<kind>:<port>" = [trigger ts, deadline ts, stage, ports…]
    stage 0: waiting for the device's own cut; 1: cutoff command sent, waiting for its effect;
    2: escalated (no further deadline). port 0 = post-wide trigger; `ports` still to be cut.

Cut evidence: the port's relay open in telemetry, a session_stop event for the port, or (post-wide)
the leakage breaker open. A cut within the deadline is a compliant finding with the measured delay;
none by the deadline is a non-compliant finding, a critical `auto_cutoff_failed` alarm and a remote
cutoff command whose effect is verified within `command_verify_s`, else the alarm is escalated and
the whole post is cut.
"""

from __future__ import annotations

from alerts.config import AlertSettings, ChargerRules
from alerts.core import faults
from alerts.core.model import Out
from devices.alarms import AlarmType, Check
from devices.envelope import EventMessage, TelemetryMessage
from devices.families import ebike_charger as fam

A = AlarmType
# trigger kind → the alarm raised for the condition itself (full/max_time have none until missed)
TRIGGER_ALARM: dict[str, AlarmType | None] = {
    "over_temperature": A.CHARGER_OVER_TEMPERATURE,
    "ambient_over_temperature": A.CHARGER_OVER_TEMPERATURE,
    "overload": A.CHARGER_OVERLOAD,
    "over_current": A.CHARGER_OVERLOAD,
    "leakage": A.CHARGER_LEAKAGE,
    "short_circuit": A.CHARGER_SHORT_CIRCUIT,
    "water": A.CHARGER_WATER,
    "smoke": A.CHARGER_SMOKE,
    "full": None,
    "max_time": None,
}
_NOT_STOPPED = frozenset({"full", "max_time"})


def _open_obligation(
    out: Out, kind: str, port: int, *, t0: float, deadline_s: float, ports: list[int]
) -> None:
    key = f"o:{kind}:{port}"
    if key not in out.st.marks and ports:
        out.st.marks[key] = [t0, t0 + deadline_s, 0, *ports]


def _drop_unconfirmed(out: Out, kind: str, port: int) -> None:
    """The condition went away before it was confirmed and nothing was cut: not a trigger."""
    key = f"o:{kind}:{port}"
    ob = out.st.marks.get(key)
    if ob is not None and ob[2] == 0:
        del out.st.marks[key]


def _cut(out: Out, cut_ports: set[int], all_cut: bool, ts: float, th: ChargerRules) -> None:
    """Ports that have no power now: settle the obligations waiting for them."""
    for key in [k for k in out.st.marks if k.startswith("o:")]:
        ob = out.st.marks[key]
        remaining = [] if all_cut else [p for p in ob[3:] if p not in cut_ports]
        if remaining:
            ob[3:] = remaining
            continue
        del out.st.marks[key]
        _, kind, port = key.split(":")
        t0, deadline, stage = ob[0], ob[1], ob[2]
        measured = ts - t0
        if stage == 0:
            out.finding(
                Check.AUTO_CUTOFF,
                kind,
                True,
                ts,
                trigger_ts=t0,
                deadline_s=round(deadline - t0, 3),
                measured_s=measured,
                channel=int(port),
            )
        elif not any(k.startswith("o:") and out.st.marks[k][2] > 0 for k in out.st.marks):
            details = {"trigger": kind, "port": int(port), "cut_after_s": round(measured, 3)}
            out.clear(A.AUTO_CUTOFF_FAILED, ts, details)
            out.clear(A.CHARGE_NOT_STOPPED, ts, details)


def deadlines(out: Out, now: float, th: AlertSettings) -> None:
    for key in [k for k in out.st.marks if k.startswith("o:")]:
        ob = out.st.marks[key]
        t0, deadline, stage = ob[0], ob[1], ob[2]
        if stage == 2 or now <= deadline:
            continue
        _, kind, port_s = key.split(":")
        port = int(port_s)
        details = {"trigger": kind, "port": port, "ports": list(ob[3:])}
        if stage == 0:
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
            ob[1], ob[2] = deadline + th.command_verify_s, 1
        else:  # the remote cutoff did not take effect either
            out.escalate(
                A.AUTO_CUTOFF_FAILED, deadline, {"reason": "cutoff_command_not_effective", **details}
            )
            out.command("cut_power", {}, deadline, A.AUTO_CUTOFF_FAILED)
            ob[2] = 2


class _Triggers:
    """Conditions that must lead to a cut: an alarm after the confirmation time, and an obligation to
    cut from the moment the condition is first seen while the port has power."""

    __slots__ = ("deadline_s", "out", "ts")

    def __init__(self, out: Out, ts: float, deadline_s: float) -> None:
        self.out, self.ts, self.deadline_s = out, ts, deadline_s

    def __call__(
        self,
        kind: str,
        port: int,
        cond: bool,
        *,
        powered: bool,
        confirm_s: float,
        ports: list[int],
        details: dict[str, float | int | str],
        alarm_on: bool = True,
    ) -> None:
        out, ts = self.out, self.ts
        alarm = TRIGGER_ALARM[kind]
        timer = f"t:{kind}:{port}"
        if cond:
            t0 = out.st.marks.get(timer, ts)
            if powered:
                _open_obligation(out, kind, port, t0=t0, deadline_s=confirm_s + self.deadline_s, ports=ports)
            if out.held(timer, True, ts, confirm_s) and alarm is not None and alarm_on:
                out.raise_(alarm, ts, details)
        else:
            if timer in out.st.marks and ts - out.st.marks[timer] < confirm_s:
                _drop_unconfirmed(out, kind, port)
            out.held(timer, False, ts, confirm_s)


def telemetry(out: Out, msg: TelemetryMessage[fam.Telemetry], ts: float, th: AlertSettings) -> None:
    r = th.ebike_charger
    t = msg.data
    # power already cut: settle obligations first (a cut seen in this report counts)
    _cut(out, {p.port for p in t.ports if not p.relay_on}, t.breaker_closed is False, ts, r)
    trig = _Triggers(out, ts, r.cutoff_deadline_s)
    active: dict[AlarmType, bool] = {
        A.CHARGER_OVER_TEMPERATURE: False,
        A.CHARGER_OVERLOAD: False,
        A.SENSOR_IMPLAUSIBLE: False,
    }
    for p in t.ports:
        _port(out, trig, p, ts, r, active=active)
    _post(out, trig, t, ts, r, active=active)
    # alarms on the conditions themselves clear when no port shows them any more
    for alarm, still in active.items():
        if not still and not (alarm is A.CHARGER_OVER_TEMPERATURE and out.st.marks.get("ev:temperature")):
            out.clear(alarm, ts)
    _protection(out, t.protection, ts)
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
    hot = p.port_temp_c >= r.port_over_temp_c
    trig(
        "over_temperature",
        n,
        hot,
        powered=on,
        confirm_s=r.over_temp_confirm_s,
        ports=[n],
        details={"port": n, "port_temp_c": p.port_temp_c},
    )
    over_p = p.power_w > r.port_power_limit_w
    trig(
        "overload",
        n,
        over_p,
        powered=on,
        confirm_s=r.overload_confirm_s,
        ports=[n],
        details={"port": n, "power_w": p.power_w},
    )
    over_i = p.current_a > r.port_current_limit_a
    trig(
        "over_current",
        n,
        over_i,
        powered=on,
        confirm_s=r.overload_confirm_s,
        ports=[n],
        details={"port": n, "current_a": p.current_a},
    )
    shorted = p.state is fam.PortState.SHORT_CIRCUIT or p.fault_code is fam.FaultCode.SHORT_CIRCUIT
    # the short-circuit alarm itself comes from the fault-alarm path
    trig(
        "short_circuit", n, shorted, powered=on, confirm_s=0.0, ports=[n], details={"port": n}, alarm_on=False
    )
    complete = p.state in fam.COMPLETE_PORT_STATES and on
    full_since = out.since(f"t:fullsince:{n}")
    out.held(f"t:fullsince:{n}", complete, ts, 0.0)
    if complete:
        start = full_since if full_since is not None else ts
        if ts - start > r.float_time_s:
            _open_obligation(
                out, "full", n, t0=start + r.float_time_s, deadline_s=r.cutoff_deadline_s, ports=[n]
            )
    if on and p.session_s > r.max_session_s:
        t0 = ts - (p.session_s - r.max_session_s)
        _open_obligation(out, "max_time", n, t0=t0, deadline_s=r.cutoff_deadline_s, ports=[n])
    hot_clear = p.port_temp_c >= r.port_over_temp_c - r.temp_clear_hysteresis_c
    if hot or (hot_clear and out.is_open(A.CHARGER_OVER_TEMPERATURE)):
        active[A.CHARGER_OVER_TEMPERATURE] = True
    if over_p or over_i:
        active[A.CHARGER_OVERLOAD] = True
    # implausible: power flowing through an open relay, or power far above V × I
    if (not on and p.current_a > r.relay_off_current_a) or p.power_w > 1.5 * p.voltage_v * p.current_a + 100:
        active[A.SENSOR_IMPLAUSIBLE] = True
        out.raise_(A.SENSOR_IMPLAUSIBLE, ts, {"port": n, "current_a": p.current_a, "power_w": p.power_w})


def _post(
    out: Out, trig: _Triggers, t: fam.Telemetry, ts: float, r: ChargerRules, *, active: dict[AlarmType, bool]
) -> None:
    on_ports = [p.port for p in t.ports if p.relay_on]
    amb_hot = t.ambient_temp_c >= r.ambient_over_temp_c
    trig(
        "ambient_over_temperature",
        0,
        amb_hot,
        powered=bool(on_ports),
        confirm_s=r.over_temp_confirm_s,
        ports=on_ports,
        details={"ambient_temp_c": t.ambient_temp_c},
    )
    if amb_hot:
        active[A.CHARGER_OVER_TEMPERATURE] = True
    trig("smoke", 0, t.smoke, powered=bool(on_ports), confirm_s=0.0, ports=on_ports, details={"smoke": 1})
    if t.smoke:
        out.raise_(A.CHARGER_SMOKE, ts, {"source": "telemetry"})
    elif not out.st.marks.get("ev:smoke"):
        out.clear(A.CHARGER_SMOKE, ts)
    if t.leakage_ma is not None:
        powered = bool(on_ports) and t.breaker_closed is not False
        trig(
            "leakage",
            0,
            t.leakage_ma >= r.leakage_trip_ma,
            powered=powered,
            confirm_s=0.0,
            ports=on_ports,
            details={"leakage_ma": t.leakage_ma},
        )
        out.hysteresis(
            A.CHARGER_LEAKAGE, t.leakage_ma, r.leakage_trip_ma, r.leakage_trip_ma * r.leakage_clear_ratio, ts
        )


def _protection(out: Out, pr: fam.Protection, ts: float) -> None:
    """A post whose protection is switched off is itself a finding (domain.md §5.1)."""
    disabled = [
        name
        for name, on in (("full_auto_stop", pr.full_auto_stop), ("over_temp_cutoff", pr.over_temp_cutoff))
        if not on
    ]
    bits = (1 if "full_auto_stop" in disabled else 0) | (2 if "over_temp_cutoff" in disabled else 0)
    previous = out.st.marks.get("p")
    if previous == bits:
        return
    out.st.marks["p"] = bits
    if disabled:
        for name in disabled:
            out.finding(Check.PROTECTION_CONFIG, f"{name}_disabled", False, ts, details={"setting": name})
        out.raise_(A.PROTECTION_DISABLED, ts, {"disabled": disabled})
    else:
        if previous is not None:
            out.finding(Check.PROTECTION_CONFIG, "protection_enabled", True, ts)
        out.clear(A.PROTECTION_DISABLED, ts)


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
    if isinstance(ev, fam.SessionStop):
        _cut(out, {ev.port}, False, ts, r)
    elif isinstance(ev, fam.Fault):
        type = A.CHARGER_SHORT_CIRCUIT if ev.code is fam.FaultCode.SHORT_CIRCUIT else A.CHARGER_FAULT
        faults.reported(out, f"{ev.port}:{ev.code.value}", type, ev.active, ts, details={"port": ev.port})
    elif isinstance(ev, fam.Alarm):
        type = _EVENT_ALARM[ev.kind]
        flag = "ev:" + ev.kind.value
        if ev.active:
            out.st.marks[flag] = 1
            out.raise_(type, ts, {"kind": ev.kind.value, "port": ev.port, "value": ev.value}, source="device")
            if ev.kind in (fam.AlarmKind.WATER, fam.AlarmKind.SMOKE):
                ports = [ev.port] if ev.port else out.st.marks.get("on", [])
                kind = "water" if ev.kind is fam.AlarmKind.WATER else "smoke"
                _open_obligation(out, kind, ev.port, t0=ts, deadline_s=r.cutoff_deadline_s, ports=list(ports))
        else:
            out.st.marks.pop(flag, None)
            out.clear(type, ts, {"kind": ev.kind.value, "by": "device"})


def remember_on_ports(out: Out, msg: TelemetryMessage[fam.Telemetry]) -> None:
    """Ports with power, for post-wide triggers that arrive as events."""
    on = [p.port for p in msg.data.ports if p.relay_on]
    if on:
        out.st.marks["on"] = on
    else:
        out.st.marks.pop("on", None)
