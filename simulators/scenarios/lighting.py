"""Lighting: a lamp out or dimmed at night, a lamp on its own schedule."""

from __future__ import annotations

from datetime import datetime, timedelta

from devices.alarms import AlarmType
from devices.contract import Family
from devices.families import light
from simulators.behaviour import lamps_due
from simulators.emitter import CST
from simulators.scenarios.builder import Builder, Factory, Picker, registrar
from simulators.scenarios.truth import Scenario

A = AlarmType
LIGHT = light.DEFAULTS

SCENARIOS: dict[str, Factory] = {}
scenario = registrar(SCENARIOS)


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
