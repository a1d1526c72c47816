"""Smoke alarms: fire and its linkage (one or two detectors, a door that fails to release), low and
overdue battery checks, a test press that is not a fire, a silenced fault."""

from __future__ import annotations

from datetime import datetime, timedelta

from devices.alarms import AlarmType, Check
from devices.contract import Family
from devices.families import access_door, light, smoke_alarm
from simulators.behaviour import FLOOR_HEIGHT_M
from simulators.compound import RATED_SPEED_MPS, SimDevice
from simulators.scenarios.builder import FAULT_ALARM_DEADLINE_S, SLACK_S, Builder, Factory, Picker, registrar
from simulators.scenarios.truth import Scenario

A = AlarmType
SMOKE = smoke_alarm.DEFAULTS
LIGHT = light.DEFAULTS
DOOR = access_door.DEFAULTS

SCENARIOS: dict[str, Factory] = {}
scenario = registrar(SCENARIOS)

SECOND_DETECTOR_S = 10.0  # the second detector of a spreading fire, after the first


def _fire(p: Picker, start: datetime, name: str, *, detectors: int, failing_door: bool) -> Scenario:
    """A fire in one building, seen by `detectors` household smoke alarms. The linkage starts only when
    the second one confirms the fire (AlertSettings.fire_linkage_signals = 2, GB 50116-2013 §4.1.6)."""

    def has_lift(code: str) -> bool:
        return any(d.family is Family.ELEVATOR for d in p.compound.in_building(code))

    # the single-detector case needs no car (a small compound has few): a building without one
    building = p.building(has_lift if detectors > 1 else lambda code: not has_lift(code))
    first = 60.0
    confirm = first + SECOND_DETECTOR_S
    if detectors < 2:
        what = (
            f"One household smoke alarm in building {building} goes off at +60 s (burnt toast) and stays "
            "in alarm: fire_alarm, and nothing else — a single detector does not confirm a fire (GB "
            "50116-2013 §4.1.6), so no door is released, no lamp forced on, no linkage_failed and no "
            "release_all."
        )
    else:
        what = (
            f"A household smoke alarm in building {building} goes off at +60 s and a second one at "
            f"+{confirm:.0f} s, which confirms the fire (two independent signals, GB 50116-2013 §4.1.6). "
            "Its evacuation-route doors release within 2 s, its elevators return to floor 1 in time for "
            "their height and speed, its common lamps are forced on"
            + (
                ", except one unit door that never releases: linkage_failed on that door."
                if failing_door
                else "."
            )
        )
    b = Builder(name, p.compound, start, what)

    def in_flat(d: SimDevice) -> bool:
        return d.household is not None and p.compound.location(d.location).building == building

    smokes = [b.script(p.take(Family.SMOKE_ALARM, in_flat)) for _ in range(detectors)]
    doors = [b.script(d) for d in p.in_building(building, Family.ACCESS_DOOR)]
    elevators = [b.script(d) for d in p.in_building(building, Family.ELEVATOR)]
    lamps = [b.script(d) for d in p.in_building(building, Family.LIGHT)]
    for lift in elevators:
        lift.tele(first - 20, floor=lift.device.floors, at_level=True)  # parked at the top floor
    for i, smoke in enumerate(smokes):
        at = first + i * SECOND_DETECTOR_S
        smoke.event(at, type="alarm", kind="smoke").tele(at, state="alarm")
        b.alarm(A.FIRE_ALARM, smoke.uid, at)
    if detectors < 2:  # everyone else reports as usual; nothing is due from them
        for sc in doors + elevators + lamps:
            sc.every(first + 10, first + 250, 60)
        for smoke in smokes:
            smoke.tele(first + 250)
        return b.build()
    for lamp in lamps:
        lamp.tele(confirm + 1, on=True, dim_pct=100.0, power_w=39.5, current_a=0.173, mode="forced")
        lamp.tele(confirm + 120)
        b.finding(Check.LINKAGE, "light_force_on", lamp.uid, True, confirm, confirm + 1)
    for i, door in enumerate(doors):
        if failing_door and i == len(doors) - 1:
            door.every(confirm + 10, confirm + 130, 60)
            due = confirm + DOOR.release_deadline_s
            b.alarm(A.LINKAGE_FAILED, door.uid, due, due + SLACK_S)
            b.finding(Check.LINKAGE, "door_release", door.uid, False, due, due + SLACK_S)
            continue
        door.event(confirm + 1.5, type="released", by="fire")
        door.tele(confirm + 1.5, open=True, locked=False, mode="released", open_s=0)
        door.tele(confirm + 120, open_s=118)
        b.finding(Check.LINKAGE, "door_release", door.uid, True, confirm, confirm + 1.5)
    for lift in elevators:
        floors = lift.device.floors
        speed = RATED_SPEED_MPS[lift.device.retrofit]
        travel = (floors - 1) * FLOOR_HEIGHT_M / speed
        arrive = confirm + 3 + round(travel) + 3  # start signal, travel at rated speed, levelling
        lift.tele(
            confirm + 1, mode="fire_return", moving=True, direction="down", at_level=False, speed_mps=speed
        )
        lift.tele(confirm + 2 + travel / 2, floor=max(1, floors // 2))
        lift.tele(arrive, floor=1, moving=False, direction="stop", at_level=True, speed_mps=0.0, door="open")
        lift.tele(confirm + 120)
        b.finding(Check.LINKAGE, "elevator_recall", lift.uid, True, confirm, arrive)
    for smoke in smokes:
        smoke.tele(confirm + 120)
    return b.build()


@scenario("smoke_fire_linkage")
def smoke_fire_linkage(p: Picker, start: datetime) -> Scenario:
    return _fire(p, start, "smoke_fire_linkage", detectors=2, failing_door=False)


@scenario("smoke_fire_linkage_door_fails")
def smoke_fire_linkage_door_fails(p: Picker, start: datetime) -> Scenario:
    return _fire(p, start, "smoke_fire_linkage_door_fails", detectors=2, failing_door=True)


@scenario("smoke_fire_single_detector")
def smoke_fire_single_detector(p: Picker, start: datetime) -> Scenario:
    return _fire(p, start, "smoke_fire_single_detector", detectors=1, failing_door=False)


@scenario("smoke_low_battery")
def smoke_low_battery(p: Picker, start: datetime) -> Scenario:
    b = Builder(
        "smoke_low_battery",
        p.compound,
        start,
        "A household smoke alarm's battery falls to 18 % (threshold 20 %) and it reports its low-battery "
        "fault itself: low_battery alarm and a compliant fault-alarm finding.",
    )
    s = b.script(p.take(Family.SMOKE_ALARM, lambda d: d.household is not None))
    s.tele(60, battery_pct=SMOKE.low_battery_pct + 1)
    s.event(120, type="fault", code="low_battery", active=True)
    s.tele(120, battery_pct=SMOKE.low_battery_pct - 2)
    s.tele(120 + SMOKE.heartbeat_s)
    b.alarm(A.LOW_BATTERY, s.uid, 120)
    b.finding(Check.FAULT_ALARM, "low_battery", s.uid, True, 120)
    return b.build()


@scenario("smoke_test_not_fire")
def smoke_test_not_fire(p: Picker, start: datetime) -> Scenario:
    b = Builder(
        "smoke_test_not_fire",
        p.compound,
        start,
        "A resident presses a smoke alarm's test button at +60 s: a test alarm and the test state, then "
        "a passed self-test. No fire alarm and no linkage; two test records (self_test findings).",
    )
    s = b.script(p.take(Family.SMOKE_ALARM, lambda d: d.household is not None))
    s.event(60, type="alarm", kind="smoke", test=True).tele(60, state="test")
    s.event(70, type="self_test", ok=True).tele(70, state="normal")
    s.tele(70 + SMOKE.heartbeat_s)
    b.finding(Check.SELF_TEST, "alarm_test", s.uid, True, 60)
    b.finding(Check.SELF_TEST, "self_test", s.uid, True, 70)
    return b.build()


@scenario("smoke_battery_check_overdue")
def smoke_battery_check_overdue(p: Picker, start: datetime) -> Scenario:
    b = Builder(
        "smoke_battery_check_overdue",
        p.compound,
        start,
        "A smoke alarm's last battery self-check is 26 h old (GB 20517-2025 §5.11.1: at least every "
        "24 h): battery_check_overdue and one non-compliant self_test finding.",
    )
    s = b.script(p.take(Family.SMOKE_ALARM, lambda d: d.household is not None))
    stale = (b.t(60) - timedelta(hours=26)).replace(microsecond=0)
    s.tele(60, battery_checked_at=stale)
    s.tele(60 + SMOKE.heartbeat_s)
    b.alarm(A.BATTERY_CHECK_OVERDUE, s.uid, 60)
    b.finding(Check.SELF_TEST, "battery_check_overdue", s.uid, False, 60)
    return b.build()


@scenario("smoke_silenced_fault_kept")
def smoke_silenced_fault_kept(p: Picker, start: datetime) -> Scenario:
    b = Builder(
        "smoke_silenced_fault_kept",
        p.compound,
        start,
        "A smoke alarm shows a fault in telemetry without reporting it (silent fault), then is silenced "
        "and tested while the fault stays: one smoke_detector_fault and one silent_fault finding — a "
        "silenced device is not a repaired one.",
    )
    s = b.script(p.take(Family.SMOKE_ALARM, lambda d: d.household is not None))
    s.tele(60, state="fault")
    s.tele(60 + FAULT_ALARM_DEADLINE_S + 1, state="fault")
    for at, state in ((180, "silenced"), (240, "test"), (300, "fault"), (900, "fault")):
        s.tele(at, state=state)
    due = 60 + FAULT_ALARM_DEADLINE_S
    b.alarm(A.SMOKE_DETECTOR_FAULT, s.uid, due, due + SLACK_S)
    b.finding(Check.FAULT_ALARM, "silent_fault", s.uid, False, due, due + SLACK_S)
    return b.build()
