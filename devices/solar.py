"""Where the sun is: the astronomical clock of lamp controllers, for "lamps due on after sunset".

Pure functions of time and place (latitude north-positive, longitude east-positive, degrees). They
use the usual low-precision solar series (the day-of-year Fourier series for the sun's declination
and the equation of time, as in the NOAA solar calculator's "general solar position" notes): sunrise
and sunset come out within about two minutes between the polar circles, which is far inside any
lamp-out confirmation time. Atmospheric refraction and the sun's radius are the conventional
-0.833° of `SUNSET_ELEVATION_DEG`.

Both the alert engine (is a scheduled lamp due on now?) and the simulator (when do its road lamps
switch?) use this module, so the two cannot disagree about when night falls.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

SUNSET_ELEVATION_DEG = -0.833  # upper limb on the horizon, with standard refraction
CIVIL_TWILIGHT_DEG = -6.0  # end of civil twilight: street lighting is needed from here on


def _series(fractional_year: float) -> tuple[float, float]:
    """(declination in radians, equation of time in minutes) for the fractional year γ (radians)."""
    g = fractional_year
    decl = (
        0.006918
        - 0.399912 * math.cos(g)
        + 0.070257 * math.sin(g)
        - 0.006758 * math.cos(2 * g)
        + 0.000907 * math.sin(2 * g)
        - 0.002697 * math.cos(3 * g)
        + 0.00148 * math.sin(3 * g)
    )
    eqtime = 229.18 * (
        0.000075
        + 0.001868 * math.cos(g)
        - 0.032077 * math.sin(g)
        - 0.014615 * math.cos(2 * g)
        - 0.040849 * math.sin(2 * g)
    )
    return decl, eqtime


def _fractional_year(at: datetime) -> float:
    days = 366 if at.year % 4 == 0 and (at.year % 100 != 0 or at.year % 400 == 0) else 365
    hour = at.hour + at.minute / 60 + at.second / 3600
    return 2 * math.pi / days * (at.timetuple().tm_yday - 1 + (hour - 12) / 24)


def sun_elevation_deg(ts: float, latitude: float, longitude: float) -> float:
    """The sun's elevation above the horizon at `ts` (seconds since the epoch), degrees."""
    at = datetime.fromtimestamp(ts, UTC)
    decl, eqtime = _series(_fractional_year(at))
    minutes = at.hour * 60 + at.minute + at.second / 60 + at.microsecond / 60e6
    true_solar_min = minutes + eqtime + 4 * longitude
    hour_angle = math.radians(true_solar_min / 4 - 180)
    lat = math.radians(latitude)
    cos_zenith = math.sin(lat) * math.sin(decl) + math.cos(lat) * math.cos(decl) * math.cos(hour_angle)
    return 90.0 - math.degrees(math.acos(max(-1.0, min(1.0, cos_zenith))))


def sun_crossings(
    day: date, latitude: float, longitude: float, elevation_deg: float = SUNSET_ELEVATION_DEG
) -> tuple[datetime, datetime] | None:
    """(morning, evening) instants in UTC of `day` (a UTC date near local noon at `longitude`) when
    the sun passes `elevation_deg`: sunrise and sunset by default. None on a polar day or night."""
    noon = datetime(day.year, day.month, day.day, 12, tzinfo=UTC) - timedelta(minutes=4 * longitude)
    decl, eqtime = _series(_fractional_year(noon))
    lat = math.radians(latitude)
    cos_ha = (math.sin(math.radians(elevation_deg)) - math.sin(lat) * math.sin(decl)) / (
        math.cos(lat) * math.cos(decl)
    )
    if not -1.0 <= cos_ha <= 1.0:
        return None
    ha_deg = math.degrees(math.acos(cos_ha))
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
    rise = midnight + timedelta(minutes=720 - 4 * (longitude + ha_deg) - eqtime)
    set_ = midnight + timedelta(minutes=720 - 4 * (longitude - ha_deg) - eqtime)
    return rise, set_
