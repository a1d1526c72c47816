"""Public lighting (standards.md §7): lamp out at night per the schedule, controller faults, and the
fire linkage (common lighting forced on, GB 50034-2013 §7.3.4 [S])."""

from __future__ import annotations

from datetime import time
from zoneinfo import ZoneInfo

from alerts.config import AlertSettings
from alerts.core import faults, linkage
from alerts.core.model import DeviceContext, Out, to_dt
from devices.alarms import AlarmType
from devices.envelope import EventMessage, TelemetryMessage
from devices.families import light as fam

A = AlarmType


def is_night(ts: float, tz: str, start: str, end: str) -> bool:
    """Within the night window [start, end) in local time; the window may cross midnight."""
    local = to_dt(ts).astimezone(ZoneInfo(tz)).time()
    s, e = time.fromisoformat(start), time.fromisoformat(end)
    return (s <= local < e) if s < e else (local >= s or local < e)


def telemetry(
    out: Out, msg: TelemetryMessage[fam.Telemetry], ts: float, th: AlertSettings, ctx: DeviceContext
) -> None:
    r = th.light
    t = msg.data
    linkage.state(out, "light_force_on", t.mode is fam.Mode.FORCED or (t.on and t.dim_pct >= 100.0), ts)
    night = is_night(ts, ctx.timezone, r.night_start, r.night_end)
    dark_when_due = night and t.mode is fam.Mode.SCHEDULE and not t.on
    no_light = t.on and t.rated_power_w is not None and t.power_w < r.lamp_out_current_ratio * t.rated_power_w
    failing = dark_when_due or no_light
    if out.held("t:lamp", failing, ts, r.lamp_out_confirm_s):
        out.raise_(A.LAMP_FAILURE, ts, {"on": t.on, "power_w": t.power_w, "night": night})
    elif not failing and not out.st.marks.get("ev:lamp"):
        out.clear(A.LAMP_FAILURE, ts, {"power_w": t.power_w})


def event(out: Out, msg: EventMessage[fam.Event], ts: float, th: AlertSettings) -> None:
    ev = msg.event
    if isinstance(ev, fam.LampFailure):
        if ev.active:
            out.st.marks["ev:lamp"] = 1
        else:
            out.st.marks.pop("ev:lamp", None)
        faults.reported(out, "lamp", A.LAMP_FAILURE, ev.active, ts)
    elif isinstance(ev, fam.ControllerFaultEvent):
        faults.reported(out, ev.code.value, A.LIGHTING_CONTROLLER_FAULT, ev.active, ts)
