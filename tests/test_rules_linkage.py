"""Fire confirmation before the building-wide linkage (GB 50116-2013 §4.1.6 "与" logic, issue 19 and
issue 9 item 5): one detector raises the fire alarm and nothing else; the second independent signal
(another detector, or a manual call point) starts door release, elevator recall and forced lighting."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from rules_kit import T0, Dev

from alerts.config import AlertSettings
from alerts.core import engine
from alerts.core.model import Linkage, Output
from devices.contract import Family

F = Family


class Building:
    """Two smoke alarms, an evacuation-route door, a car and a lamp in building 1; linkage signals
    are fanned out as the engine service does (engine.fire_linkage over the building's devices)."""

    def __init__(self, settings: AlertSettings | None = None) -> None:
        th = settings or AlertSettings()
        self.smoke1 = Dev(F.SMOKE_ALARM, settings=th, device_id=1)
        self.smoke2 = Dev(F.SMOKE_ALARM, settings=th, device_id=2)
        self.door = Dev(F.ACCESS_DOOR, settings=th, device_id=3, evacuation_route=True)
        self.lift = Dev(F.ELEVATOR, settings=th, device_id=4)
        self.lamp = Dev(F.LIGHT, settings=th, device_id=5)
        self.all = [self.smoke1, self.smoke2, self.door, self.lift, self.lamp]
        self.th = th
        for d in self.all:
            d.tele(0)
        self.lamp.tele(0, on=False, dim_pct=0.0, power_w=0.0, current_a=0.0, mode="sensor")
        self.lift.tele(0, moving=False, speed_mps=0.0, at_level=True, direction="stop")

    def fan_out(self, outputs: list[Output]) -> None:
        by_id = {d.ctx.device_id: d for d in self.all}
        for o in outputs:
            if isinstance(o, Linkage):
                for ctx, produced in engine.fire_linkage(o, [(d.ctx, d.st) for d in self.all], self.th):
                    by_id[ctx.device_id].outputs += produced

    def alarm(self, dev: Dev, at_s: float, kind: str = "smoke") -> None:
        self.fan_out(dev.event(at_s, type="alarm", kind=kind))

    def tick(self, at_s: float) -> None:
        for d in self.all:
            d.tick(at_s)


def test_a_single_detector_raises_the_fire_alarm_and_starts_no_linkage() -> None:
    b = Building()
    b.alarm(b.smoke1, 10)
    assert b.smoke1.raised() == ["fire_alarm"]
    b.door.tele(20)  # still locked, normal mode: nothing was asked of it
    b.tick(600)
    for d in (b.door, b.lift, b.lamp):
        assert d.raised() == [] and d.findings("linkage") == [] and d.commands() == [], d.family
    assert not any(k.startswith("l:") for d in b.all for k in d.st.marks)


def test_the_second_detector_confirms_the_fire_and_the_deadlines_run_from_it() -> None:
    b = Building()
    b.alarm(b.smoke1, 10)
    b.alarm(b.smoke2, 40)  # confirmation
    b.lamp.tele(41, on=True, dim_pct=100.0, power_w=29.0, current_a=0.13, mode="forced")
    b.lift.tele(60, mode="fire_return", floor=1, moving=False, at_level=True, door="open")
    b.tick(40 + 3 + 2.1)  # the door's 3 s deadline from the confirmation (+ grace) has passed
    (lamp,) = b.lamp.findings("linkage")
    assert (lamp.kind, lamp.compliant, lamp.measured_s) == ("light_force_on", True, 1.0)
    assert lamp.details["confirmed_by"] == ["D1", "D2"]
    (lift,) = b.lift.findings("linkage")
    assert (lift.compliant, lift.measured_s) == (True, 20.0)
    (door,) = b.door.findings("linkage")
    assert (door.kind, door.compliant, door.trigger_at) == ("door_release", False, T0 + timedelta(seconds=40))
    assert b.door.raised() == ["linkage_failed"]
    assert [c.name for c in b.door.commands()] == ["release_all"]


def test_a_manual_call_point_and_a_detector_confirm_a_fire() -> None:
    b = Building()
    b.alarm(b.smoke1, 10)
    b.alarm(b.smoke2, 20, kind="manual_call_point")
    assert b.smoke2.raised() == ["fire_alarm"]
    b.door.event(21, type="released", by="fire")
    (f,) = b.door.findings("linkage")
    assert (f.compliant, f.measured_s) == (True, 1.0)


def test_the_same_detector_twice_is_one_signal_and_a_cleared_one_does_not_count() -> None:
    b = Building()
    b.alarm(b.smoke1, 10)
    b.smoke1.event(20, type="cleared", kind="smoke")
    b.alarm(b.smoke1, 30)  # burnt toast again, same flat: still one signal
    b.smoke1.event(40, type="cleared", kind="smoke")
    b.alarm(b.smoke2, 50)  # the first is over: one signal again
    b.tick(600)
    assert b.door.raised() == [] and b.door.commands() == [] and b.door.findings() == []


def test_the_number_of_signals_is_a_community_setting() -> None:
    one = AlertSettings().with_overrides({"fire_linkage_signals": 1})
    b = Building(one)
    b.alarm(b.smoke1, 10)
    b.tick(10 + 3 + 2.1)
    assert b.door.raised() == ["linkage_failed"]
    assert AlertSettings().fire_linkage_signals == 2


def test_confirmation_survives_a_restart_of_the_engine() -> None:
    b = Building()
    b.alarm(b.smoke1, 10)
    for d in b.all:
        d.restart()
    b.alarm(b.smoke2, 50)
    b.tick(50 + 3 + 2.1)
    assert b.door.raised() == ["linkage_failed"]


def test_a_car_in_inspection_is_exempt_from_the_recall() -> None:
    b = Building()
    b.lift.tele(5, mode="inspection")
    b.alarm(b.smoke1, 10)
    b.alarm(b.smoke2, 20)
    b.tick(1000)
    assert b.lift.findings("linkage") == [] and "linkage_failed" not in b.lift.raised()
    assert b.lift.raised() == ["elevator_out_of_service"]


def test_the_recall_deadline_follows_the_building_height_and_the_car_speed() -> None:
    th = AlertSettings()
    tall = Dev(F.ELEVATOR)
    tall.ctx = replace(tall.ctx, floors=33, rated_speed_mps=1.75)  # 96 m at 1.75 m/s + 20 s
    tall.tele(0, moving=False, speed_mps=0.0, at_level=True)
    tall.outputs += engine.start_linkage(tall.ctx, tall.st, "fire", T0, th)
    tall.tele(70, mode="fire_return", floor=1, moving=False, speed_mps=0.0, at_level=True, door="open")
    (f,) = tall.findings("linkage")
    assert (f.compliant, f.deadline_s) == (True, round(20 + 32 * 3 / 1.75, 1))  # a flat 60 s failed it
    low = Dev(F.ELEVATOR)
    low.ctx = replace(low.ctx, floors=8)  # no rated speed: the 1.0 m/s setting → 41 s
    low.tele(0, moving=False, speed_mps=0.0, at_level=True)
    low.outputs += engine.start_linkage(low.ctx, low.st, "fire", T0, th)
    low.tick(41 + 2.1)
    assert low.findings("linkage")[0].compliant is False
    assert low.findings("linkage")[0].deadline_s == 41.0
