"""Situations of the fleet rather than of one family: device clocks (a clock reset), presence and
outages (a silent device, an outage flushed late), the alarm path (issue 9: counters that restart, devices
registered a moment ago)."""

from __future__ import annotations

import copy
import random
from datetime import datetime, timedelta

from devices.alarms import AlarmType
from devices.contract import Channel, Family
from devices.families import access_door, elevator, light
from simulators.behaviour import HEARTBEAT_S, is_night
from simulators.compound import SimDevice, on_evacuation_route
from simulators.emitter import CST, Emitter
from simulators.scenarios.builder import SLACK_S, Builder, Factory, Picker, healthy, registrar
from simulators.scenarios.truth import ExpectedDeadLetter, Registration, Scenario
from simulators.stream import SimMessage

A = AlarmType
LIGHT = light.DEFAULTS
ELEV = elevator.DEFAULTS
DOOR = access_door.DEFAULTS

SCENARIOS: dict[str, Factory] = {}
scenario = registrar(SCENARIOS)


RESET_CLOCK = datetime(2000, 1, 1, 8, 0, tzinfo=CST)  # where a real-time clock without battery restarts


@scenario("door_clock_reset")
def door_clock_reset(p: Picker, start: datetime) -> Scenario:
    b = Builder(
        "door_clock_reset",
        p.compound,
        start,
        "A door controller's clock battery died: it restarts at 2000-01-01 08:00 and counts on from there. "
        "Its telemetry lies outside ingest's timestamp window and is dead-lettered with that reason; its "
        "status and its forced-open alarm are not refused for their time alone: stored and raised at "
        "the receive time — clock_skew from the first message, door_forced_open at +60 s.",
    )
    door = p.take(Family.ACCESS_DOOR)
    b.devices.append(door.uid)
    em = Emitter(door, HEARTBEAT_S[Family.ACCESS_DOOR])

    def device_time(s: float) -> datetime:
        return RESET_CLOCK + timedelta(seconds=s)

    b.add(_sent_at(em.online(device_time(0)), b.t(0)))
    telemetry = f"v1/{door.community}/{door.uid}/{Channel.TELEMETRY.value}"
    for s in (1.0, 61.0, 121.0):
        if s == 61.0:
            b.add(_sent_at(em.event(device_time(60), {"type": "forced_open"}), b.t(60)))
        msg = em.telemetry(device_time(s), healthy(door, b.t(s)))
        b.add(SimMessage(b.t(s), msg.community, msg.device, msg.channel, msg.payload, raw_topic=telemetry))
        b.dead.append(ExpectedDeadLetter("timestamp_out_of_window", telemetry, door.uid))
    b.alarm(A.CLOCK_SKEW, door.uid, 0, SLACK_S, received=True)
    b.alarm(A.DOOR_FORCED_OPEN, door.uid, 60, 60 + SLACK_S, received=True)
    return b.build()


def _sent_at(msg: SimMessage, at: datetime) -> SimMessage:
    return SimMessage(
        at, msg.community, msg.device, msg.channel, msg.payload, msg.retain, msg.raw_topic, msg.will
    )


# ---------------------------------------------------------------------------------------------
# Presence and outages


@scenario("device_silent")
def device_silent(p: Picker, start: datetime) -> Scenario:
    b = Builder(
        "device_silent",
        p.compound,
        start,
        "An elevator's monitoring terminal goes silent after +60 s (no Last Will: its modem hangs) while "
        "another device keeps reporting: device_offline after 3 missed 60 s heartbeats.",
    )
    e = b.script(p.take(Family.ELEVATOR))
    e.tele(60)
    keeper = b.script(p.take(Family.ACCESS_DOOR))
    keeper.every(61, 60 + 3 * ELEV.missed_heartbeats * ELEV.heartbeat_s, DOOR.heartbeat_s)
    due = 60 + ELEV.heartbeat_s * ELEV.missed_heartbeats
    b.alarm(A.DEVICE_OFFLINE, e.uid, due, due + SLACK_S)
    return b.build()


@scenario("network_outage_flush")
def network_outage_flush(p: Picker, start: datetime) -> Scenario:
    b = Builder(
        "network_outage_flush",
        p.compound,
        start,
        "The uplink of three road lamps is down from +60 s to +660 s. They keep measuring every 60 s "
        "and flush their buffers when it returns: out of order, some messages twice. The outage is "
        "shorter than their offline limit (3 × 300 s): no alarm at all, and exactly one row per "
        "distinct message.",
    )
    rng = random.Random(f"outage/{start.isoformat()}")  # noqa: S311 - simulation
    lamps = [b.script(p.take(Family.LIGHT, lambda d: d.location.startswith("road"))) for _ in range(3)]
    down, up = 60.0, 660.0
    telemetry = 3  # the first report at +1 s of each lamp (its online status is an event row)
    for lamp in lamps:
        buffered: list[SimMessage] = []
        s = 60.0
        while s < up:
            on = is_night(b.t(s), lamp.device.site)
            data = {**lamp.data, "on": on, "power_w": 39.0 if on else 0.0, "current_a": 0.171 if on else 0.0}
            lamp.data = data
            buffered.append(lamp.em.telemetry(lamp._at(s), copy.deepcopy(data), sent_at=b.t(up)))
            s += 60
        telemetry += len(buffered)
        flush = buffered + rng.sample(buffered, 3)  # three sent twice
        rng.shuffle(flush)
        for i, msg in enumerate(flush):
            b.add(_resent(msg, b.t(up + i * 0.01)))
        lamp.tele(up + 30)
        telemetry += 1
    assert down < up
    # each lamp's online status is stored too, as a device_events row of kind "status" (ingest)
    b.rows = {"telemetry": telemetry, "device_events": len(lamps)}
    return b.build()


def _resent(msg: SimMessage, at: datetime) -> SimMessage:
    return SimMessage(at, msg.community, msg.device, msg.channel, msg.payload, msg.retain, msg.raw_topic)


# ---------------------------------------------------------------------------------------------
# The alarm path (issue 9): counters that restart, devices registered a moment ago


@scenario("counter_restart")
def counter_restart(p: Picker, start: datetime) -> Scenario:
    b = Builder(
        "counter_restart",
        p.compound,
        start,
        "Two doors restart their sequence counters (docs/mqtt.md: start at 0 after a factory reset; "
        "also the demo's second run). Door A counts to 10, loses power (offline status), reboots and "
        "announces itself online with seq 1; door B counts to 63 and carries on from 1 after a watchdog "
        "reset. Both are then forced open: each forced-open alarm is raised, A's offline alarm clears, "
        "and a redelivered copy (of the forced open, and of a message from before the restart) "
        "changes nothing.",
    )
    a = b.script(p.take(Family.ACCESS_DOOR, lambda d: not on_evacuation_route(p.compound, d)))  # seq 0–2
    a.every(20, 160, 20)  # seq 3 … 10
    b.add(a.em.status(a._at(190), "offline", reason="power_loss"))  # seq 11
    b.alarm(A.DEVICE_OFFLINE, a.uid, 190)
    a.em.seq = 0  # rebooted: the will takes 0, the online announcement 1
    a.online(250)
    a.event(260, type="forced_open")
    forced = b.messages[-1]
    a.tele(275, open=False, open_s=None)
    b.add(_resent(forced, b.t(280)))  # a QoS 1 redelivery of the forced open, after it cleared
    a.every(300, 660, 60)  # heartbeats on, so that it is not found silent before door B is done
    b.alarm(A.DOOR_FORCED_OPEN, a.uid, 260)

    d = b.script(p.take(Family.ACCESS_DOOR, lambda x: not on_evacuation_route(p.compound, x)))  # seq 0–2
    d.every(10, 610, 10)  # seq 3 … 63
    before = b.messages[-1]
    d.em.seq = 1
    d.tele(620)  # seq 1 again, 10 s later: a new counter
    d.event(630, type="forced_open")
    d.tele(645, open=False, open_s=None)
    b.add(_resent(before, b.t(650)))  # a late copy from before the restart
    d.tele(660)
    b.alarm(A.DOOR_FORCED_OPEN, d.uid, 630)
    b.rows = b.distinct_rows()
    return b.build()


REGISTER_PROBES = 5


@scenario("register_then_publish")
def register_then_publish(p: Picker, start: datetime) -> Scenario:
    b = Builder(
        "register_then_publish",
        p.compound,
        start,
        f"{REGISTER_PROBES} new doors are registered one after another, 2 s apart, and each connects at "
        "once (retained online status and a report at the instant of its registration), then is "
        "forced open: no message is dead-lettered unknown_device, every forced-open alarm is raised.",
    )
    shed = next(x for x in p.compound.locations if x.kind == "shed")
    for i in range(REGISTER_PROBES):
        device = SimDevice(
            f"{p.compound.community.code}-newdoor-{i:02d}",
            p.compound.community.code,
            Family.ACCESS_DOOR,
            shed.code,
            "DS-K1T",
            "海康威视",
        )
        at = 60.0 + 2 * i
        b.registrations.append(Registration(b.t(at), device))
        door = b.script(device, online=False).online(at).tele(at)
        door.event(at + 1, type="forced_open")
        door.tele(at + 10, open=False, open_s=None)
        door.tele(at + 20)
        b.alarm(A.DOOR_FORCED_OPEN, device.uid, at + 1)
    b.rows = b.distinct_rows()
    return b.build()
