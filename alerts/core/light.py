"""Public lighting (standards.md §7): lamp out when due on, controller faults, and the fire linkage
(common lighting forced on, GB 50034-2013 §7.3.4 [S]).

When a lamp is due on follows its control mode: a lamp on occupancy sensors or manual control may be
dark at night (GB 50034-2013 §7.3.4 asks for delayed auto-off or dimming in residential common areas);
a forced lamp must be lit; a scheduled lamp is due on by, in order,
1. the schedule the controller itself reports (`schedule`: a lamp switched off at 23:00 by its own
   timetable is not out);
2. the sun at the community's location (registry `communities.latitude/longitude`): due while the sun
   is lower than `night_sun_elevation_deg`, i.e. from a little after sunset to a little before sunrise;
3. the fixed `night_start`–`night_end` window, only for a community with no location.
A lit lamp is out when it draws less than `lamp_out_current_ratio` × its expected power, which is its
rated power at its reported dim level (a lamp dimmed to 25 % drawing 7 W of 30 W is normal).
"""

from __future__ import annotations

from datetime import time
from zoneinfo import ZoneInfo

from alerts.config import AlertSettings
from alerts.core import faults, linkage
from alerts.core.model import DeviceContext, Out, to_dt
from devices.alarms import AlarmType
from devices.envelope import EventMessage, TelemetryMessage
from devices.families import light as fam
from devices.solar import sun_elevation_deg

A = AlarmType


def is_night(ts: float, tz: str, start: str, end: str) -> bool:
    """Within the night window [start, end) in local time; the window may cross midnight."""
    local = to_dt(ts).astimezone(ZoneInfo(tz)).time()
    s, e = time.fromisoformat(start), time.fromisoformat(end)
    return (s <= local < e) if s < e else (local >= s or local < e)


def scheduled_on(t: fam.Telemetry, ts: float, ctx: DeviceContext, th: AlertSettings) -> tuple[bool, str]:
    """Whether a scheduled lamp is due on at `ts`, and by what (for the alarm's evidence)."""
    r = th.light
    if t.schedule:
        local = to_dt(ts).astimezone(ZoneInfo(ctx.timezone)).time()
        return any(e.covers(local) for e in t.schedule), "own_schedule"
    if ctx.latitude is not None and ctx.longitude is not None:
        return sun_elevation_deg(ts, ctx.latitude, ctx.longitude) < r.night_sun_elevation_deg, "sunset"
    return is_night(ts, ctx.timezone, r.night_start, r.night_end), "night_window"


def telemetry(
    out: Out, msg: TelemetryMessage[fam.Telemetry], ts: float, th: AlertSettings, ctx: DeviceContext
) -> None:
    r = th.light
    t = msg.data
    linkage.state(out, "light_force_on", t.mode is fam.Mode.FORCED or (t.on and t.dim_pct >= 100.0), ts)
    lit = t.on and t.dim_pct > 0
    due, by = (True, "forced") if t.mode is fam.Mode.FORCED else (False, "mode")
    if t.mode is fam.Mode.SCHEDULE:
        due, by = scheduled_on(t, ts, ctx, th)
    expected_w = None if t.rated_power_w is None else t.rated_power_w * t.dim_pct / 100.0
    no_light = lit and expected_w is not None and t.power_w < r.lamp_out_current_ratio * expected_w
    failing = (due and not lit) or no_light
    if out.held("t:lamp", failing, ts, r.lamp_out_confirm_s):
        details = {"on": t.on, "dim_pct": t.dim_pct, "power_w": t.power_w, "due_on": due, "due_by": by}
        if expected_w is not None:
            details["expected_w"] = round(expected_w, 1)
        out.raise_(A.LAMP_FAILURE, ts, details)
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
