"""The rule core's entry points: evaluate one decoded message, advance timers, start a linkage.

    evaluate(ctx, state, message, settings) -> outputs     (device time = message.ts)
    tick(ctx, state, now, settings) -> outputs             (now = the engine clock)
    next_due(ctx, state, settings) -> engine time          (when `tick` can next produce something)
    start_linkage(ctx, state, kind, at, settings) -> outputs
    fire_linkage(signal, building, settings) -> [(ctx, outputs)]  (a fire alarm signal in a building)
    reject(ctx, state, ts, settings, seq=, detail=) -> outputs  (an out-of-range reading refused at the edge)
    refuse_clock(ctx, state, device_ts, received, settings) -> outputs  (telemetry refused for its time)

`settings` is the community's `AlertSettings` (defaults with its overrides applied). `state` is
updated in place. Pure: no I/O, no clock reads, no randomness.

Clocks: rules run in device time; `tick` and `next_due` take and give engine time, turned into the
device's time with its measured clock offset (alerts/core/clock.py), so a device whose clock is
behind or ahead meets the same deadlines as one in step with Yiju.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from alerts.config import AlertSettings
from alerts.core import cctv, charger, clock, door, elevator, faults, gas, light, linkage, smoke
from alerts.core.model import (
    Admit,
    DeviceContext,
    DeviceState,
    Linkage,
    Out,
    Output,
    RaiseAlarm,
    Stage,
    to_dt,
)
from alerts.core.records import CctvChannel, CctvState, ElevatorState, GasState, SmokeState
from devices.alarms import AlarmType
from devices.contract import Channel, Decoded, Family
from devices.envelope import StatusMessage
from devices.families import (
    access_door,
    cctv_recorder,
    ebike_charger,
    gas_alarm,
    smoke_alarm,
)
from devices.families import (
    elevator as elevator_fam,
)
from devices.families import (
    light as light_fam,
)

A = AlarmType
Handler = Callable[[Out, Any, float, AlertSettings, DeviceContext], None]

_TELEMETRY: dict[Family, Handler] = {
    Family.EBIKE_CHARGER: lambda o, m, ts, th, c: charger.telemetry(o, m, ts, th),
    Family.SMOKE_ALARM: lambda o, m, ts, th, c: smoke.telemetry(o, m, ts, th),
    Family.GAS_ALARM: lambda o, m, ts, th, c: gas.telemetry(o, m, ts, th),
    Family.LIGHT: light.telemetry,
    Family.ELEVATOR: elevator.telemetry,
    Family.ACCESS_DOOR: door.telemetry,
    Family.CCTV_RECORDER: lambda o, m, ts, th, c: cctv.telemetry(o, m, ts, th, offline_after_s(c, o.st, th)),
}
_EVENT: dict[Family, Handler] = {
    Family.EBIKE_CHARGER: lambda o, m, ts, th, c: charger.event(o, m, ts, th),
    Family.SMOKE_ALARM: lambda o, m, ts, th, c: smoke.event(o, m, ts, th),
    Family.GAS_ALARM: lambda o, m, ts, th, c: gas.event(o, m, ts, th),
    Family.LIGHT: lambda o, m, ts, th, c: light.event(o, m, ts, th),
    Family.ELEVATOR: lambda o, m, ts, th, c: elevator.event(o, m, ts, th),
    Family.ACCESS_DOOR: lambda o, m, ts, th, c: door.event(o, m, ts, th),
    Family.CCTV_RECORDER: lambda o, m, ts, th, c: cctv.event(o, m, ts, th, offline_after_s(c, o.st, th)),
}
_HEARTBEAT: dict[Family, tuple[int, int]] = {
    Family.EBIKE_CHARGER: (ebike_charger.DEFAULTS.heartbeat_s, ebike_charger.DEFAULTS.missed_heartbeats),
    Family.SMOKE_ALARM: (smoke_alarm.DEFAULTS.heartbeat_s, smoke_alarm.DEFAULTS.missed_heartbeats),
    Family.GAS_ALARM: (gas_alarm.DEFAULTS.heartbeat_s, gas_alarm.DEFAULTS.missed_heartbeats),
    Family.LIGHT: (light_fam.DEFAULTS.heartbeat_s, light_fam.DEFAULTS.missed_heartbeats),
    Family.ELEVATOR: (elevator_fam.DEFAULTS.heartbeat_s, elevator_fam.DEFAULTS.missed_heartbeats),
    Family.ACCESS_DOOR: (access_door.DEFAULTS.heartbeat_s, access_door.DEFAULTS.missed_heartbeats),
    Family.CCTV_RECORDER: (cctv_recorder.DEFAULTS.heartbeat_s, cctv_recorder.DEFAULTS.missed_heartbeats),
}


def _family_due(st: DeviceState, th: AlertSettings) -> float:
    """When a family record's own timer falls due (device time): the gas valve's close signal, the
    smoke alarm's battery-fault silence, the rescue clock's next step and its arrival deadline."""
    family = st.family
    if isinstance(family, GasState):
        return math.inf if family.close_due is None else family.close_due
    if isinstance(family, SmokeState):
        bs = family.silence
        return math.inf if bs is None or bs.reminded else bs.start + th.smoke_alarm.battery_silence_s
    if isinstance(family, ElevatorState) and family.rescue is not None:
        t0, step = family.rescue.t0, family.rescue.step
        steps = th.elevator.rescue_escalation_s
        due = t0 + steps[step] if step < len(steps) else math.inf
        if A.RESCUE_OVERDUE not in st.open:
            due = min(due, t0 + th.elevator.rescue_arrival_s)
        return due
    return math.inf


def _cctv_channels(st: DeviceState) -> Iterable[CctvChannel]:
    return st.family.channels.values() if isinstance(st.family, CctvState) else ()


def _out(st: DeviceState, th: AlertSettings) -> Out:
    return Out(st, th.flap_window_s, th.flap_max_raises)


def offline_after_s(ctx: DeviceContext, st: DeviceState, th: AlertSettings) -> float:
    """Silence after which the device counts as offline: its heartbeat × the allowed misses."""
    group = getattr(th, ctx.family.value)
    heartbeat = st.heartbeat_s or int(group.heartbeat_s)
    return float(heartbeat * int(group.missed_heartbeats))


def _deadlines(ctx: DeviceContext, out: Out, now: float, th: AlertSettings) -> None:
    faults.deadlines(out, now, th.fault_alarm_deadline_s)
    linkage.deadlines(out, now, th, th.elevator.recall_floor)
    if ctx.family is Family.EBIKE_CHARGER:
        charger.deadlines(out, now, th)
    elif ctx.family is Family.ELEVATOR:
        elevator.deadlines(out, now, th)
    elif ctx.family is Family.GAS_ALARM:
        gas.deadlines(out, now, th)
    elif ctx.family is Family.SMOKE_ALARM:
        smoke.deadlines(out, now, th)
    out.flush_pending_clears(now)


def _silence(ctx: DeviceContext, out: Out, st: DeviceState, now: float, th: AlertSettings) -> None:
    """Offline after the allowed silence (device time): decided by the tick, or by the next message
    when no tick came in between (an accelerated replay), with the same time either way."""
    if not st.last_ts or A.DEVICE_OFFLINE in st.open:
        return
    silent_s = offline_after_s(ctx, st, th)
    if now - st.last_ts > silent_s + th.tick_grace_s:
        at = st.last_ts + silent_s
        out.raise_(A.DEVICE_OFFLINE, at, {"reason": "missed_heartbeats", "silent_s": silent_s})
        if ctx.family is Family.CCTV_RECORDER:
            cctv.offline(out, at, th)


def evaluate(ctx: DeviceContext, st: DeviceState, msg: Decoded, th: AlertSettings) -> list[Output]:
    """Evaluate one message of the device. A redelivered message (a natural key (ts, seq) already
    evaluated) produces nothing; a restarted counter starts a new epoch (`DeviceState.admit`)."""
    ts = msg.ts.timestamp()
    online = msg.channel is Channel.STATUS and msg.body.state == "online"
    # the natural key is the device's own (ts, seq), also when ingest stamped the message with its
    # receive time for a wrong clock (alerts.core.clock): a redelivery carries the same envelope
    key_ts = (clock.claimed_ts(msg) or msg.ts).timestamp()
    if st.admit(msg.seq, key_ts, online=online) is Admit.DUPLICATE:
        return []
    out = _out(st, th)
    substituted = clock.observe(out, msg, st.last_ts, th)
    _deadlines(ctx, out, ts, th)  # obligations that expired before this message, in device time
    if substituted is None:
        _silence(ctx, out, st, ts, th)  # it was silent long enough to count as offline meanwhile
    st.last_ts = max(st.last_ts, ts)
    if msg.channel is Channel.STATUS:
        body: StatusMessage = msg.body
        if body.heartbeat_s:
            st.heartbeat_s = body.heartbeat_s
        if body.state == "offline":
            out.raise_(A.DEVICE_OFFLINE, ts, {"reason": body.reason or "last_will"}, source="device")
            if ctx.family is Family.CCTV_RECORDER:
                cctv.offline(out, ts, th)
        else:
            out.clear(A.DEVICE_OFFLINE, ts, {"by": "status"})
    elif msg.channel is Channel.TELEMETRY:
        out.clear(A.DEVICE_OFFLINE, ts, {"by": "data"})
        _TELEMETRY[ctx.family](out, msg.body, ts, th, ctx)
        if ctx.family is Family.EBIKE_CHARGER:
            charger.remember_on_ports(out, msg.body)
        out.release_after(A.SENSOR_IMPLAUSIBLE, th.implausible_clear_messages, ts)
    elif msg.channel is Channel.EVENT:
        out.clear(A.DEVICE_OFFLINE, ts, {"by": "data"})
        _EVENT[ctx.family](out, msg.body, ts, th, ctx)
    if ctx.family is Family.SMOKE_ALARM and any(
        isinstance(o, RaiseAlarm) and o.type is A.FIRE_ALARM and st.open.get(A.FIRE_ALARM) == ts
        for o in out.items
    ):
        # in Yiju's time: the building's devices each run on their own clock
        out.items.append(Linkage("fire", ctx.building_id, to_dt(ts + clock.offset_s(st))))
    if substituted is not None:  # every alarm of the message says its time is the receive time
        out.items = [
            replace(o, details={**o.details, "ts_from": "received_at", "device_ts": substituted["device_ts"]})
            if isinstance(o, RaiseAlarm) and o.type is not A.CLOCK_SKEW
            else o
            for o in out.items
        ]
    return out.items


def tick(ctx: DeviceContext, st: DeviceState, now: float, th: AlertSettings) -> list[Output]:
    """Timers of a device at engine time `now` (seconds): deadlines, silence, daily evaluations."""
    out = _out(st, th)
    now = clock.device_now(st, now)
    _deadlines(ctx, out, now - th.tick_grace_s, th)
    _silence(ctx, out, st, now, th)
    if ctx.family is Family.CCTV_RECORDER:
        daily = th.cctv_recorder.daily_evaluation_s
        if any(now - ch.evaluated_at >= daily for ch in _cctv_channels(st)):
            cctv.evaluate(out, now, th.cctv_recorder)
    return out.items


def next_due(ctx: DeviceContext, st: DeviceState, th: AlertSettings) -> float:
    """The earliest engine time at which `tick` can produce anything for this device (math.inf:
    never, until its next message). The service keeps these in a heap, so a tick costs the due
    devices only, not the whole fleet. Mirrors `tick`: grace, silence, the obligations of linkage
    (`st.actions`) and auto-cutoff (`st.cuts`, not while a reported stop awaits telemetry), the
    fault-alarm deadlines of faults seen and not reported (`st.faults`), flap-held clears ("q:"
    marks), the family records' timers (rescue clock, the gas valve's close signal, the smoke alarm's
    battery-fault silence) and the daily CCTV evaluation of each channel, computed in device time and
    returned in engine time."""
    return _next_due_device_time(ctx, st, th) + clock.offset_s(st)


def _obligations_due(st: DeviceState) -> float:
    """The earliest deadline of the linkage actions and auto-cutoffs not yet escalated."""
    due = math.inf
    for ob in st.actions.values():
        if ob.stage is not Stage.ESCALATED:
            due = min(due, ob.deadline)
    for ob in st.cuts.values():
        if ob.stage is not Stage.ESCALATED and not charger.pending(st, ob):
            due = min(due, ob.deadline)
    return due


def _next_due_device_time(ctx: DeviceContext, st: DeviceState, th: AlertSettings) -> float:
    grace = th.tick_grace_s
    due = math.inf
    if st.last_ts and A.DEVICE_OFFLINE not in st.open:
        due = st.last_ts + offline_after_s(ctx, st, th) + grace
    due = min(due, _obligations_due(st) + grace, _family_due(st, th) + grace)
    for f in st.faults.values():
        if not f.reported and not f.decided:
            due = min(due, f.at + th.fault_alarm_deadline_s + grace)
    for key, v in st.marks.items():
        if key.startswith("q:"):
            due = min(due, v + th.flap_window_s + grace)
    if ctx.family is Family.CCTV_RECORDER:
        daily = th.cctv_recorder.daily_evaluation_s
        for ch in _cctv_channels(st):
            due = min(due, ch.evaluated_at + daily)
    return due


def reject(
    ctx: DeviceContext, st: DeviceState, ts: float, th: AlertSettings, *, seq: int | None, detail: str
) -> list[Output]:
    """A reading of this device outside the physically possible range, refused at the edge (domain.md
    §5.2): raise `sensor_implausible`, held open until `implausible_clear_messages` good reports."""
    if seq is not None and st.admit(seq, ts) is Admit.DUPLICATE:
        return []
    out = _out(st, th)
    st.last_ts = max(st.last_ts, ts)
    out.hold(A.SENSOR_IMPLAUSIBLE)
    out.raise_(A.SENSOR_IMPLAUSIBLE, ts, {"reason": "out_of_range", "detail": detail})
    return out.items


def start_linkage(
    ctx: DeviceContext,
    st: DeviceState,
    kind: str,
    at: datetime,
    th: AlertSettings,
    *,
    confirmed_by: Sequence[str] = (),
) -> list[Output]:
    """A linkage started elsewhere (a confirmed fire in this device's building): expect this device's
    action if it has one. `confirmed_by`: the alarm signals that confirmed it (evidence)."""
    if kind != "fire":
        return []
    if ctx.family is Family.EBIKE_CHARGER:  # charging is non-fire power: cut (GB 50166-2019 §4.20)
        out = _out(st, th)
        charger.fire_linkage(out, clock.device_now(st, at.timestamp()), th)
        return out.items
    action = linkage.fire_action(ctx, th)
    if action is None:
        return []
    out = _out(st, th)
    linkage.expect(out, action[0], clock.device_now(st, at.timestamp()), action[1], confirmed_by)
    return out.items


def refuse_clock(
    ctx: DeviceContext, st: DeviceState, device_ts: datetime, received: float, th: AlertSettings
) -> list[Output]:
    """Ingest dead-lettered telemetry of this device for its timestamp alone (outside the window):
    the device's clock is wrong (`clock_skew`, with the evidence, at the receive time)."""
    out = _out(st, th)
    clock.refused(out, device_ts, received)
    return out.items


def fire_linkage(
    signal: Linkage, building: Iterable[tuple[DeviceContext, DeviceState]], th: AlertSettings
) -> list[tuple[DeviceContext, list[Output]]]:
    """A fire alarm signal (`evaluate` emitted `signal`: a detector's or manual call point's fire alarm
    opened) among the devices of its `building` (every device there, the signal's own included). The
    building-wide linkage starts, at the signal's time, once `th.fire_linkage_signals` independent
    signals are open at once (GB 50116-2013 §4.1.6, linkage.confirmed_fire); before that nothing is
    due: the fire alarm itself is raised and notified, no door released, no car recalled, no lamp
    forced, so no `linkage_failed` and no `release_all` either. A later signal of a confirmed fire asks
    again, which devices already waiting or done absorb (linkage.expect)."""
    if signal.kind != "fire":
        return []
    members = list(building)
    confirmed = linkage.confirmed_fire(members, th)
    if confirmed is None:
        return []
    produced = []
    for ctx, st in members:
        outputs = start_linkage(ctx, st, "fire", signal.at, th, confirmed_by=confirmed)
        if outputs:
            produced.append((ctx, outputs))
    return produced


__all__ = [
    "evaluate",
    "fire_linkage",
    "next_due",
    "offline_after_s",
    "refuse_clock",
    "reject",
    "start_linkage",
    "tick",
    "to_dt",
]
