"""How scenarios are built: the `Picker` that hands each device to one scenario, the healthy document of
each family, a device's `Script` (its messages in time order), the `Builder` that collects messages and
ground truth into a `Scenario`, and the `scenario` registrar of each family module."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from devices.alarms import ALARM_INFO, AlarmType, Check
from devices.contract import Channel, Family
from simulators.behaviour import HEARTBEAT_S, MAINS_V, PROTECTION, is_night
from simulators.compound import Compound, SimDevice
from simulators.emitter import CST, Emitter
from simulators.scenarios.truth import (
    ExpectedAlarm,
    ExpectedDeadLetter,
    ExpectedFinding,
    Registration,
    Scenario,
)
from simulators.stream import SimMessage

FAULT_ALARM_DEADLINE_S = 60.0
INCIDENT_REPORT_S = 10  # devices report on change during an incident, not just at heartbeats
SLACK_S = 5.0  # window allowance after the instant a verdict becomes due


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
            "ports": [port_report(n) for n in range(1, device.ports + 1)],
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
        "channels": [channel_report(n, at, keep_days=45.0) for n in range(1, device.channels + 1)],
        "disk_total_gb": 16_000.0,
        "disk_free_gb": 240.0,
        "disk_healthy": True,
    }


def port_report(
    n: int, *, power_w: float = 0.0, state: str | None = None, temp_c: float = 30.0
) -> dict[str, Any]:
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


def channel_report(n: int, at: datetime, *, keep_days: float, **extra: Any) -> dict[str, Any]:
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


def registrar(registry: dict[str, Factory]) -> Callable[[str], Callable[[Factory], Factory]]:
    """A family module's `@scenario(name)` decorator, filling that module's own registry."""

    def scenario(name: str) -> Callable[[Factory], Factory]:
        def register(fn: Factory) -> Factory:
            registry[name] = fn
            return fn

        return register

    return scenario
