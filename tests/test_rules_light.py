"""Lamp-out rules that follow a real compound (issue 19): the dim level, the lamp's own schedule and
control mode, and sunset at the community's location instead of a fixed 18:30."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from rules_kit import T0, Dev

from devices.contract import Family
from devices.solar import sun_crossings, sun_elevation_deg
from simulators.emitter import CST

SHANGHAI = (31.23, 121.47)
OFF = {"on": False, "dim_pct": 0.0, "power_w": 0.0, "current_a": 0.0, "mode": "schedule"}


def _lamp(site: tuple[float, float] | None = None) -> Dev:
    d = Dev(Family.LIGHT)
    if site is not None:
        d.ctx = replace(d.ctx, latitude=site[0], longitude=site[1])
    return d


def _s(local: datetime) -> float:
    """Seconds from the kit's T0 to a China-time instant."""
    return (local - T0).total_seconds()


def test_a_dimmed_lamp_drawing_its_dimmed_power_is_not_out() -> None:
    d = _lamp()
    night = 13 * 3600  # 21:00 local
    for s in range(night, night + 900, 60):
        d.tele(s, on=True, dim_pct=25.0, power_w=7.0, current_a=0.03, rated_power_w=30.0)
    assert d.raised() == []  # 7 W of an expected 7.5 W
    for s in range(night + 900, night + 1500, 60):  # the same lamp at 25 % drawing 1 W: out
        d.tele(s, on=True, dim_pct=25.0, power_w=1.0, current_a=0.005, rated_power_w=30.0)
    assert d.raised() == ["lamp_failure"]
    alarm = d.outputs[-1]
    assert alarm.details["expected_w"] == 7.5  # type: ignore[union-attr]


def test_the_lamps_own_schedule_decides_when_it_is_due_on() -> None:
    d = _lamp()
    schedule = [{"on_at": "18:30", "off_at": "23:00", "dim_pct": 100.0}]
    late = _s(datetime(2026, 6, 1, 23, 5, tzinfo=CST))
    for s in range(int(late), int(late) + 1800, 60):
        d.tele(s, **OFF, schedule=schedule)
    assert d.raised() == []  # off at 23:05 by its own timetable, although the community's night runs on
    early = _s(datetime(2026, 6, 1, 22, 0, tzinfo=CST))
    e = _lamp()
    for s in range(int(early), int(early) + 600, 60):
        e.tele(s, **OFF, schedule=schedule)
    assert e.raised() == ["lamp_failure"]  # dark at 22:00 while its schedule says on


def test_lamps_on_sensors_or_manual_control_may_be_dark_at_night() -> None:
    d = _lamp()
    night = 14 * 3600
    for mode in ("sensor", "manual"):
        for s in range(night, night + 900, 60):
            d.tele(s, **{**OFF, "mode": mode})
        night += 900
    assert d.raised() == []


@pytest.mark.parametrize(
    ("local", "due"),
    [
        (datetime(2026, 6, 21, 18, 50, tzinfo=CST), False),  # sunset in Shanghai ~19:00: still light
        (datetime(2026, 6, 21, 19, 40, tzinfo=CST), True),  # past civil dusk (~19:28)
        (datetime(2026, 12, 21, 17, 40, tzinfo=CST), True),  # winter: dark long before 18:30
        (datetime(2026, 12, 21, 6, 0, tzinfo=CST), True),  # winter morning: dark until ~06:20
        (datetime(2026, 6, 21, 5, 30, tzinfo=CST), False),  # summer morning: light since ~04:20
    ],
)
def test_a_scheduled_lamp_is_due_on_after_sunset_at_the_community(local: datetime, due: bool) -> None:
    d = _lamp(SHANGHAI)
    s0 = _s(local)
    for k in range(6):
        d.tele(s0 + k * 60, **OFF)
    assert d.raised() == (["lamp_failure"] if due else [])


def test_without_a_location_the_fixed_window_is_the_fallback() -> None:
    d = _lamp()
    s0 = _s(datetime(2026, 12, 21, 17, 40, tzinfo=CST))  # dark outside, but before 18:30
    for k in range(6):
        d.tele(s0 + k * 60, **OFF)
    assert d.raised() == []


@pytest.mark.parametrize(
    ("place", "day", "sunrise", "sunset"),
    [
        ((39.90, 116.41), date(2026, 6, 21), "04:46", "19:46"),  # Beijing, published tables
        ((39.90, 116.41), date(2026, 12, 21), "07:33", "16:53"),
        ((31.23, 121.47), date(2026, 6, 21), "04:50", "19:01"),  # Shanghai
    ],
)
def test_sunrise_and_sunset_within_two_minutes(
    place: tuple[float, float], day: date, sunrise: str, sunset: str
) -> None:
    crossings = sun_crossings(day, *place)
    assert crossings is not None
    for got, want in zip(crossings, (sunrise, sunset), strict=True):
        h, m = map(int, want.split(":"))
        expected = datetime(day.year, day.month, day.day, h, m, tzinfo=CST)
        assert abs((got - expected).total_seconds()) <= 120, (got.astimezone(CST), want)
        assert sun_elevation_deg(got.timestamp(), *place) == pytest.approx(-0.833, abs=0.05)
    assert sun_crossings(date(2026, 6, 21), 78.0, 15.0) is None  # Svalbard: midnight sun
    noon = datetime(2026, 6, 21, 4, 0, tzinfo=UTC) + timedelta(minutes=0)
    assert sun_elevation_deg(noon.timestamp(), *place) > 25
