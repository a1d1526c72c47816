"""Normal device behaviour over simulated time: what a healthy compound says when nothing is wrong.

Each device is a small state machine stepped at its own reporting instants (heartbeat periods are the
family `DEFAULTS`, from vendor practice in standards.md: charger port status 180 s (AP3000 0x21),
smoke and gas alarms hourly, lamps and recorders every 5 min, doors and elevators every minute; an
elevator streams its running status every `ELEVATOR_MOVING_REPORT_S` while it moves). Start phases
are spread over one period so a compound does not report in lockstep.

Healthy means a correct engine raises nothing from it: chargers stop on their own when full well
within the float window, lamps follow the night schedule, recorders keep more than 30 days, no
fault states. (Recorders still yield compliant retention findings: that is evidence, not an alarm.)

Deterministic: each device's random generator is seeded from (seed, uid), so a device behaves the
same whatever else is in the fleet.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

from devices.contract import Family
from devices.families import (
    access_door,
    cctv_recorder,
    ebike_charger,
    elevator,
    gas_alarm,
    light,
    smoke_alarm,
)
from devices.solar import SUNSET_ELEVATION_DEG, sun_elevation_deg
from simulators.compound import Fleet, SimDevice
from simulators.emitter import CST, Emitter
from simulators.stream import SimMessage

HEARTBEAT_S: dict[Family, int] = {
    Family.EBIKE_CHARGER: ebike_charger.DEFAULTS.heartbeat_s,
    Family.SMOKE_ALARM: smoke_alarm.DEFAULTS.heartbeat_s,
    Family.GAS_ALARM: gas_alarm.DEFAULTS.heartbeat_s,
    Family.LIGHT: light.DEFAULTS.heartbeat_s,
    Family.ELEVATOR: elevator.DEFAULTS.heartbeat_s,
    Family.ACCESS_DOOR: access_door.DEFAULTS.heartbeat_s,
    Family.CCTV_RECORDER: cctv_recorder.DEFAULTS.heartbeat_s,
}
ELEVATOR_MOVING_REPORT_S = 5  # running status while moving (GB/T 24476 real-time status) — [V]
FLOOR_HEIGHT_M = 3.0
PROTECTION: dict[str, Any] = {
    "full_auto_stop": True,
    "over_temp_cutoff": True,
    "over_temp_c": ebike_charger.DEFAULTS.port_over_temp_c,
    "port_power_limit_w": ebike_charger.DEFAULTS.port_power_limit_w,
    "max_session_s": ebike_charger.DEFAULTS.max_session_s,
    "float_time_s": ebike_charger.DEFAULTS.float_time_s,
    "leakage_trip_ma": ebike_charger.DEFAULTS.leakage_trip_ma,
    "over_voltage_v": ebike_charger.DEFAULTS.over_voltage_v,
    "under_voltage_v": ebike_charger.DEFAULTS.under_voltage_v,
}
MAINS_V = 228.0


def device_rng(seed: int, uid: str) -> random.Random:
    return random.Random(f"{seed}/{uid}")  # noqa: S311 - simulation, not security


def local_hour(at: datetime) -> float:
    t = at.astimezone(CST)
    return t.hour + t.minute / 60


def is_night(
    at: datetime,
    site: tuple[float, float] | None = None,
    *,
    start: str = light.DEFAULTS.night_start,
    end: str = light.DEFAULTS.night_end,
) -> bool:
    """Road lamps are on: within the fixed night window or, at a known `site` (latitude, longitude),
    whenever the sun is down — so they are lit whenever the engine can expect them to be, whether it
    judges by the sun at the community's location or by the fixed window."""
    if site is not None and sun_elevation_deg(at.timestamp(), *site) < SUNSET_ELEVATION_DEG:
        return True
    local = at.astimezone(CST).time()
    s, e = time.fromisoformat(start), time.fromisoformat(end)
    return (s <= local < e) if s < e else (local >= s or local < e)


def lamps_due(at: datetime, site: tuple[float, float] | None = None) -> bool:
    """The engine expects scheduled lamps on (their default settings): the sun below the engine's
    threshold at `site`, or the fixed night window where the location is unknown."""
    if site is not None:
        return sun_elevation_deg(at.timestamp(), *site) < light.DEFAULTS.night_sun_elevation_deg
    return is_night(at)


def ambient_c(at: datetime) -> float:
    """A mild day: 18 °C at dawn, 28 °C mid-afternoon."""
    return round(23.0 + 5.0 * math.cos(2 * math.pi * (local_hour(at) - 15.0) / 24.0), 1)


class Behaviour:
    """Base: one device, its emitter, its next reporting instant."""

    period_s: int

    def __init__(self, device: SimDevice, rng: random.Random, start: datetime) -> None:
        self.device = device
        self.rng = rng
        self.period_s = HEARTBEAT_S[device.family]
        self.em = Emitter(device, self.period_s)
        self.next_at = start + timedelta(seconds=round(rng.uniform(0, self.period_s), 3))
        self.started = False

    def step(self) -> list[SimMessage]:
        at = self.next_at
        out: list[SimMessage] = []
        if not self.started:
            self.started = True
            out.append(self.em.online(at))
        out += self.report(at)
        self.next_at = at + timedelta(seconds=self.interval_s())
        return out

    def interval_s(self) -> float:
        return float(self.period_s)

    def report(self, at: datetime) -> list[SimMessage]:
        raise NotImplementedError


@dataclass(slots=True)
class _Port:
    state: str = "idle"
    session_s: int = 0
    target_s: int = 0
    power_w: float = 0.0
    energy_kwh: float = 0.0
    full_at_s: int = 0


class Charger(Behaviour):
    def __init__(self, device: SimDevice, rng: random.Random, start: datetime) -> None:
        super().__init__(device, rng, start)
        self.ports = [_Port() for _ in range(device.ports)]
        self.sessions = 0

    def report(self, at: datetime) -> list[SimMessage]:
        out: list[SimMessage] = []
        h = local_hour(at)
        start_rate_h = 0.25 if h >= 18 or h < 1 else 0.04  # sessions start mostly in the evening
        amb = ambient_c(at)
        ports = []
        for n, p in enumerate(self.ports, start=1):
            if p.state == "idle" and self.rng.random() < start_rate_h * self.period_s / 3600:
                self.sessions += 1
                target = self.rng.randint(2 * 3600, 7 * 3600)
                p.state, p.session_s, p.target_s, p.energy_kwh = "charging", 0, target, 0.0
                p.power_w = self.rng.uniform(120, 350)
                sid = f"{self.device.uid[-12:]}-{self.sessions}"
                out.append(self.em.event(at, {"type": "session_start", "port": n, "session_id": sid}))
            elif p.state in ("charging", "full"):
                p.session_s += self.period_s
                p.energy_kwh += p.power_w * self.period_s / 3_600_000
                if p.state == "charging" and p.session_s >= p.target_s:
                    p.state, p.power_w, p.full_at_s = "full", self.rng.uniform(8, 30), p.session_s
                # auto-stop when full, well within the float window
                elif p.state == "full" and p.session_s - p.full_at_s >= self.rng.randint(15, 40) * 60:
                    stop = {
                        "type": "session_stop",
                        "port": n,
                        "reason": "full",
                        "energy_kwh": round(p.energy_kwh, 3),
                        "duration_s": p.session_s,
                    }
                    out.append(self.em.event(at, stop))
                    p.state, p.session_s, p.power_w, p.energy_kwh = "idle", 0, 0.0, 0.0
            ports.append(self._port(n, p, amb))
        total = round(sum(x["power_w"] for x in ports), 1)
        data = {
            "ports": ports,
            "ambient_temp_c": amb,
            "smoke": False,
            "leakage_ma": round(self.rng.uniform(1.0, 6.0), 1),
            "breaker_closed": True,
            "total_power_w": total,
            "protection": PROTECTION,
        }
        out.append(self.em.telemetry(at, data))
        return out

    @staticmethod
    def _port(n: int, p: _Port, amb: float) -> dict[str, Any]:
        on = p.state != "idle"
        power = round(p.power_w, 1) if on else 0.0
        return {
            "port": n,
            "state": p.state,
            "relay_on": on,
            "voltage_v": MAINS_V,
            "current_a": round(power / MAINS_V, 3),
            "power_w": power,
            "session_energy_kwh": round(p.energy_kwh, 3),
            "port_temp_c": round(amb + 2.0 + power / 40.0, 1),
            "session_s": p.session_s,
        }


class SmokeAlarm(Behaviour):
    def __init__(self, device: SimDevice, rng: random.Random, start: datetime) -> None:
        super().__init__(device, rng, start)
        self.battery = round(rng.uniform(55, 100), 1)

    def report(self, at: datetime) -> list[SimMessage]:
        if self.device.electrical_fire:
            data: dict[str, Any] = {
                "state": "normal",
                "residual_current_ma": round(self.rng.uniform(20, 90), 1),
                "cable_temp_c": round(ambient_c(at) + self.rng.uniform(3, 10), 1),
            }
        else:
            self.battery = max(30.0, round(self.battery - 0.001, 3))
            checked = at.astimezone(CST).replace(hour=3, minute=0, second=0, microsecond=0)
            if checked > at:
                checked -= timedelta(days=1)
            data = {"state": "normal", "battery_pct": round(self.battery, 1), "battery_checked_at": checked}
        return [self.em.telemetry(at, data)]


class GasAlarm(Behaviour):
    def report(self, at: datetime) -> list[SimMessage]:
        data = {
            "state": "normal",
            "lel_pct": round(self.rng.uniform(0, 3), 1),
            "co_ppm": round(self.rng.uniform(0, 8), 1),
            "valve": "open" if self.device.valve else "none",
        }
        return [self.em.telemetry(at, data)]


class Light(Behaviour):
    RATED_W = 40.0

    def report(self, at: datetime) -> list[SimMessage]:
        scheduled = self.device.location.startswith("road")
        if scheduled:
            on = is_night(at, self.device.site)
            dim = 100.0 if on and not 0 <= local_hour(at) < 5 else 60.0
            mode = "schedule"
        else:  # stair/lobby lamps on occupancy sensors
            on = self.rng.random() < (0.3 if is_night(at, self.device.site) else 0.1)
            dim, mode = 100.0, "sensor"
        power = round(self.RATED_W * dim / 100 * self.rng.uniform(0.95, 1.02), 1) if on else 0.0
        data = {
            "on": on,
            "dim_pct": dim,
            "power_w": power,
            "current_a": round(power / MAINS_V, 3),
            "voltage_v": MAINS_V,
            "rated_power_w": self.RATED_W,
            "mode": mode,
        }
        return [self.em.telemetry(at, data)]


class Elevator(Behaviour):
    def __init__(self, device: SimDevice, rng: random.Random, start: datetime) -> None:
        super().__init__(device, rng, start)
        self.floor = 1
        self.target = 1
        self.speed = 1.75 if not device.retrofit else 1.0

    def interval_s(self) -> float:
        return float(ELEVATOR_MOVING_REPORT_S if self.floor != self.target else self.period_s)

    def report(self, at: datetime) -> list[SimMessage]:
        if self.floor == self.target:
            busy = 0.6 if 7 <= local_hour(at) < 22 else 0.15
            if self.rng.random() < busy:
                self.target = self.rng.randint(1, max(1, self.device.floors))
        moving = self.floor != self.target
        if moving:
            step = max(1, int(self.speed * ELEVATOR_MOVING_REPORT_S / FLOOR_HEIGHT_M))
            direction = "up" if self.target > self.floor else "down"
            self.floor += min(step, abs(self.target - self.floor)) * (1 if direction == "up" else -1)
            moving = self.floor != self.target
            direction = direction if moving else "stop"
        else:
            direction = "stop"
        data = {
            "floor": self.floor,
            "direction": direction,
            "moving": moving,
            "door": "closed",
            "at_level": not moving,
            "speed_mps": self.speed if moving else 0.0,
            "occupied": moving,
            "load_kg": round(self.rng.uniform(60, 300), 1) if moving else 0.0,
            "mode": "normal",
            "faults": [],
        }
        return [self.em.telemetry(at, data)]


class AccessDoor(Behaviour):
    def report(self, at: datetime) -> list[SimMessage]:
        out: list[SimMessage] = []
        rate_h = 20.0 if 6 <= local_hour(at) < 23 else 2.0
        if self.rng.random() < min(0.9, rate_h * self.period_s / 3600):
            method = self.rng.choice(("card", "face", "qr"))
            out.append(
                self.em.event(at, {"type": "granted", "method": method, "credential_hash": self._cred()})
            )
        data = {"open": False, "locked": True, "mode": "normal"}
        out.append(self.em.telemetry(at, data))
        return out

    def _cred(self) -> str:
        return f"{self.rng.getrandbits(256):064x}"


class Recorder(Behaviour):
    def __init__(self, device: SimDevice, rng: random.Random, start: datetime) -> None:
        super().__init__(device, rng, start)
        # days of footage each channel keeps (overwrite-oldest): comfortably above 30
        self.keep_days = [rng.uniform(36, 60) for _ in range(device.channels)]

    def report(self, at: datetime) -> list[SimMessage]:
        channels = [
            {
                "channel": n,
                "online": True,
                "recording": True,
                "earliest_recording": (at - timedelta(days=keep)).replace(microsecond=0),
                "latest_recording": (at - timedelta(seconds=5)).replace(microsecond=0),
            }
            for n, keep in enumerate(self.keep_days, start=1)
        ]
        data = {"channels": channels, "disk_total_gb": 16_000.0, "disk_free_gb": 240.0, "disk_healthy": True}
        return [self.em.telemetry(at, data)]


BEHAVIOURS: dict[Family, type[Behaviour]] = {
    Family.EBIKE_CHARGER: Charger,
    Family.SMOKE_ALARM: SmokeAlarm,
    Family.GAS_ALARM: GasAlarm,
    Family.LIGHT: Light,
    Family.ELEVATOR: Elevator,
    Family.ACCESS_DOOR: AccessDoor,
    Family.CCTV_RECORDER: Recorder,
}


def background(
    devices: Iterable[SimDevice],
    start: datetime,
    end: datetime | None,
    *,
    seed: int,
    exclude: frozenset[str] = frozenset(),
) -> Iterator[SimMessage]:
    """The normal traffic of `devices` from `start` until `end` (None: forever), in time order.
    Devices in `exclude` stay quiet (a scenario speaks for them)."""
    heap: list[tuple[datetime, int, Behaviour]] = []
    for i, dev in enumerate(devices):
        if dev.uid in exclude:
            continue
        b = BEHAVIOURS[dev.family](dev, device_rng(seed, dev.uid), start)
        heap.append((b.next_at, i, b))
    heapq.heapify(heap)
    while heap:
        at, i, b = heap[0]
        if end is not None and at >= end:
            return
        yield from b.step()
        heapq.heapreplace(heap, (b.next_at, i, b))


def fleet_background(
    fleet: Fleet, start: datetime, end: datetime | None, *, exclude: frozenset[str] = frozenset()
) -> Iterator[SimMessage]:
    return background(fleet.devices, start, end, seed=fleet.seed, exclude=exclude)
