"""Access doors: forced open, held open, kept open on purpose, duress."""

from __future__ import annotations

from datetime import datetime

from devices.alarms import AlarmType
from devices.contract import Family
from devices.families import access_door
from simulators.scenarios.builder import Builder, Factory, Picker, registrar
from simulators.scenarios.truth import Scenario

A = AlarmType
DOOR = access_door.DEFAULTS

SCENARIOS: dict[str, Factory] = {}
scenario = registrar(SCENARIOS)


@scenario("door_forced_open")
def door_forced_open(p: Picker, start: datetime) -> Scenario:
    b = Builder(
        "door_forced_open",
        p.compound,
        start,
        "A unit door is forced open at +60 s and closed again at +75 s: door_forced_open alarm.",
    )
    d = b.script(p.take(Family.ACCESS_DOOR))
    d.event(60, type="forced_open").tele(60, open=True, open_s=0)
    d.tele(75, open=False, open_s=None)
    d.tele(75 + DOOR.heartbeat_s)
    b.alarm(A.DOOR_FORCED_OPEN, d.uid, 60)
    return b.build()


@scenario("door_held_open")
def door_held_open(p: Picker, start: datetime) -> Scenario:
    b = Builder(
        "door_held_open",
        p.compound,
        start,
        f"A door opened with a valid card at +60 s stays open; at {DOOR.held_open_s:.0f} s it reports "
        "held_open, and closes at +240 s: door_held_open alarm.",
    )
    d = b.script(p.take(Family.ACCESS_DOOR))
    d.event(60, type="granted", method="card", credential_hash="ab" * 32)
    due = 60 + DOOR.held_open_s
    for s in range(60, 240, 20):
        d.tele(s, open=True, locked=False, open_s=s - 60)
        if s == due:  # the controller's own held-open alarm, with the report that crosses the limit
            d.event(due, type="held_open", active=True, open_s=int(DOOR.held_open_s))
    d.event(240, type="held_open", active=False, open_s=180)
    d.tele(240, open=False, locked=True, open_s=None)
    d.tele(300)
    b.alarm(A.DOOR_HELD_OPEN, d.uid, due, due)
    return b.build()


@scenario("door_remain_open")
def door_remain_open(p: Picker, start: datetime) -> Scenario:
    b = Builder(
        "door_remain_open",
        p.compound,
        start,
        "A lobby door held open by its own daytime schedule (mode remain_open, 常开) stands open for 15 "
        "minutes, then the schedule ends and it closes and locks: nothing to report (no door_held_open).",
    )
    d = b.script(p.take(Family.ACCESS_DOOR))
    for s in range(60, 960, 60):
        d.tele(s, open=True, locked=False, mode="remain_open", open_s=s - 60)
    d.tele(960, open=False, locked=True, mode="normal", open_s=None)
    d.tele(1020)
    return b.build()


@scenario("door_duress")
def door_duress(p: Picker, start: datetime) -> Scenario:
    b = Builder(
        "door_duress",
        p.compound,
        start,
        "A resident enters the duress code at +60 s: critical door_duress alarm (latching: only an "
        "operator clears it, GB 50394-2007 §5.2.3).",
    )
    d = b.script(p.take(Family.ACCESS_DOOR))
    d.event(60, type="duress", credential_hash="cd" * 32)
    d.tele(61, open=True, locked=False, open_s=0)
    d.tele(70, open=False, locked=True, open_s=None)
    b.alarm(A.DOOR_DURESS, d.uid, 60)
    return b.build()
