"""Elevator rules that follow a real car (issue 19): GB/T 24476 faults derived from the running
state, inspection and out-of-service modes, and the trapped-passenger rescue clock from the first
evidence until a rescuer's arrival is recorded."""

from __future__ import annotations

from rules_kit import T0, Dev

from alerts.config import AlertSettings
from devices.contract import Family

STILL = {"moving": False, "direction": "stop", "speed_mps": 0.0}
BETWEEN = {**STILL, "at_level": False}


def _lift(settings: AlertSettings | None = None) -> Dev:
    d = Dev(Family.ELEVATOR, settings=settings)
    d.tele(0, **STILL, at_level=True, occupied=False)
    return d


def test_moving_with_the_door_open_is_derived_and_the_silent_device_fails_the_check() -> None:
    d = _lift()
    d.tele(10, door="open", at_level=False)  # the sample moves upwards
    assert d.raised() == []  # one report: not yet confirmed (10 s)
    d.tele(20, door="open", at_level=False)
    assert d.raised() == ["elevator_door_open_while_moving"]
    d.tick(20 + 60 + 2.1)
    (f,) = d.findings("fault_alarm")
    assert (f.kind, f.compliant) == ("silent_fault", False)
    d.tele(100, door="closed")
    assert d.cleared() == ["elevator_door_open_while_moving"]


def test_a_device_that_reports_the_derived_fault_passes_the_check() -> None:
    d = _lift()
    d.tele(10, door="opening", at_level=False)
    d.tele(20, door="opening", at_level=False)
    d.event(25, type="fault", code="door_open_while_moving", active=True, floor=7)
    (f,) = d.findings("fault_alarm")
    assert (f.compliant, f.measured_s) == (True, 5.0)
    assert d.raised() == ["elevator_door_open_while_moving"]  # one alarm
    d.tick(1000)
    assert len(d.findings("fault_alarm")) == 1


def test_levelling_with_the_door_opening_in_the_door_zone_is_normal() -> None:
    d = _lift()
    for s in (10, 20, 30):
        d.tele(s, door="opening", at_level=True, speed_mps=0.3)
    assert d.raised() == []


def test_standing_outside_the_door_zone_is_derived_after_its_confirmation() -> None:
    d = _lift()
    d.tele(10, **BETWEEN, occupied=False)
    d.tele(54, **BETWEEN, occupied=False)
    assert d.raised() == []
    d.tele(55, **BETWEEN, occupied=False)
    assert d.raised() == ["elevator_stop_outside_door_zone"]


def test_inspection_suppresses_the_movement_rules_and_is_shown() -> None:
    d = _lift()
    d.tele(10, mode="inspection")
    assert d.raised() == ["elevator_out_of_service"]
    d.event(20, type="fault", code="safety_circuit_open", active=True, floor=1)
    d.tele(20, mode="inspection", faults=["safety_circuit_open"])
    d.tele(30, mode="inspection", door="open", at_level=False, speed_mps=0.3)
    for s in range(40, 400, 60):
        d.tele(s, mode="inspection", **BETWEEN, occupied=True, faults=["stop_outside_door_zone"])
    d.tick(1000)
    assert d.raised() == ["elevator_out_of_service"] and d.findings() == []
    d.tele(1000, mode="normal", **STILL, at_level=True, occupied=False)
    assert "elevator_out_of_service" in d.cleared()


def test_out_of_service_is_shown_and_a_safety_fault_in_normal_service_is_still_alarmed() -> None:
    d = _lift()
    d.tele(10, mode="out_of_service", **STILL, at_level=True)
    d.tele(20, mode="normal", **STILL, at_level=True)
    d.event(30, type="fault", code="safety_circuit_open", active=True)
    assert d.raised() == ["elevator_out_of_service", "elevator_safety_circuit"]


def test_telemetry_only_trapped_is_alarmed_at_once_and_a_dropped_flag_keeps_the_clock() -> None:
    th = AlertSettings().with_overrides({"elevator": {"rescue_arrival_s": 600}})  # a test-sized clock
    d = _lift(th)
    d.tele(100, **BETWEEN, occupied=True, faults=["trapped_not_at_level"])
    assert d.raised() == ["elevator_trapped"]  # no fault-alarm wait
    assert d.st.family.rescue.t0 == T(100)
    d.tele(160, **STILL, at_level=True, occupied=True, faults=[])  # one report drops the flag
    d.tele(220, **BETWEEN, occupied=True, faults=["trapped_not_at_level"])
    assert d.cleared() == [] and d.raised().count("elevator_trapped") == 1
    d.tick(100 + 600 + 2.1)
    assert "rescue_overdue" in d.raised()
    (rescue,) = d.findings("rescue")
    assert rescue.compliant is False and rescue.trigger_at is not None
    assert rescue.trigger_at.timestamp() == T(100)  # from the first evidence
    assert [f.kind for f in d.findings("fault_alarm")] == ["silent_fault"]  # never reported by the device
    d.event(800, type="rescue_arrived", by="维保")
    assert "rescue_overdue" in d.cleared() and "elevator_trapped" not in d.cleared()  # still stuck
    d.tele(900, **STILL, at_level=True, occupied=False, faults=[])
    assert "elevator_trapped" in d.cleared()
    assert len(d.findings("rescue")) == 1


def test_the_rescue_clock_stops_only_with_the_rescuer() -> None:
    d = _lift()
    d.event(100, type="fault", code="trapped_at_level", active=True)
    d.event(200, type="fault", code="trapped_at_level", active=False)  # the device says it is over
    d.tele(200, **STILL, at_level=True, occupied=False)
    assert d.cleared() == [] and d.st.family.rescue is not None  # nobody recorded a rescuer's arrival
    d.event(700, type="rescue_arrived", by="维保")
    (f,) = d.findings("rescue")
    assert (f.compliant, f.measured_s) == (True, 600.0)
    assert [c for c in d.cleared() if c != "device_offline"] == ["elevator_trapped"]  # silent 500 s
    d.event(800, type="fault", code="trapped_at_level", active=True)  # a new episode, a new clock
    assert d.raised().count("elevator_trapped") == 2 and d.st.family.rescue.t0 == T(800)


def test_passengers_in_a_car_standing_outside_the_door_zone_are_trapped() -> None:
    d = _lift()
    d.tele(10, **BETWEEN, occupied=True)
    d.tele(40, **BETWEEN, occupied=True)  # 30 s: trapped (非平层关人), clock from the first report
    assert d.raised() == ["elevator_trapped"]
    assert d.st.family.rescue.t0 == T(10)
    assert "elevator_stop_outside_door_zone" not in d.raised()


def T(s: float) -> float:
    """Device time `s` seconds after the kit's T0, as the rule state holds it."""
    return T0.timestamp() + s
