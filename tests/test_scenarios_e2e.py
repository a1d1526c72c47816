"""End to end: scenarios published to the real broker, through ingest into the engine service and the
database; every expected alarm and non-compliant finding must appear, and nothing else (precision
and recall 1.0).

The scenarios here are scripted in this file with their ground truth, in device time on the event
clock (so minutes of device time run in a second). Each device's messages are published in order.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from ingest_support import Msg, Publisher, wait_for

from alerts.service import AlertService
from devices import samples
from devices.contract import Channel, Family, topic
from ingest.service import IngestService
from storage.db import connect
from yiju.settings import Settings

C = "e2e"


@dataclass
class Scenario:
    name: str
    devices: dict[str, tuple[Family, str]]  # uid → (family, location code)
    steps: list[tuple[float, str, Channel, dict[str, Any]]]  # (seconds, uid, channel, body fill)
    alarms: set[tuple[str, str]]  # expected (uid, alarm type), whatever their status at the end
    findings: set[tuple[str, str, str]]  # expected non-compliant (uid, check, kind)
    compliant: set[tuple[str, str, str]] = field(default_factory=set)  # expected compliant ones (subset)


def _tele(family: Family, **changes: Any) -> dict[str, Any]:
    data = json.loads(json.dumps(samples.TELEMETRY[family]))
    data.update(changes)
    return {"data": data}


def _charger_port(**changes: Any) -> dict[str, Any]:
    data = json.loads(json.dumps(samples.TELEMETRY[Family.EBIKE_CHARGER]))
    for p in data["ports"]:
        if p["port"] == 4:
            p.update(changes)
    return {"data": data}


def _ev(**event: Any) -> dict[str, Any]:
    return {"event": event}


T, E = Channel.TELEMETRY, Channel.EVENT
SCENARIOS = [
    Scenario(
        "charger over-temperature cut in time",
        {"chg-a": (Family.EBIKE_CHARGER, "shed")},
        [
            (0, "chg-a", T, _charger_port(port_temp_c=31.0)),
            (10, "chg-a", T, _charger_port(port_temp_c=90.0)),
            (40, "chg-a", T, _charger_port(port_temp_c=92.0)),
            (45, "chg-a", E, _ev(type="session_stop", port=4, reason="port_over_temp")),
            (
                50,
                "chg-a",
                T,
                _charger_port(port_temp_c=60.0, relay_on=False, state="idle", power_w=0.0, current_a=0.0),
            ),
        ],
        alarms={("chg-a", "charger_over_temperature")},
        findings=set(),
        compliant={("chg-a", "auto_cutoff", "over_temperature")},
    ),
    Scenario(
        "charger overload never cut: auto_cutoff_failed and a stop command",
        {"chg-b": (Family.EBIKE_CHARGER, "shed")},
        [(t, "chg-b", T, _charger_port(power_w=2600.0, current_a=9.5)) for t in (0, 30, 60, 95, 130)],
        alarms={("chg-b", "charger_overload"), ("chg-b", "auto_cutoff_failed")},
        findings={("chg-b", "auto_cutoff", "overload")},
    ),
    Scenario(
        "fire in building: door released in time, elevator never recalled",
        {
            "smk-1": (Family.SMOKE_ALARM, "lobby"),
            "door-1": (Family.ACCESS_DOOR, "lobby"),
            "lift-1": (Family.ELEVATOR, "lobby"),
        },
        [
            (0, "door-1", T, _tele(Family.ACCESS_DOOR)),
            (0, "lift-1", T, _tele(Family.ELEVATOR)),
            (5, "smk-1", E, _ev(type="alarm", kind="smoke")),
            (6, "door-1", E, _ev(type="released", by="fire")),
            (30, "lift-1", T, _tele(Family.ELEVATOR)),
            (70, "smk-1", T, _tele(Family.SMOKE_ALARM, state="alarm")),
            (75, "lift-1", T, _tele(Family.ELEVATOR)),
        ],
        alarms={("smk-1", "fire_alarm"), ("lift-1", "linkage_failed")},
        findings={("lift-1", "linkage", "elevator_recall")},
        compliant={("door-1", "linkage", "door_release")},
    ),
    Scenario(
        "gas high, valve closes in 2 s; sensor fault never reported by the device",
        {"gas-1": (Family.GAS_ALARM, "flat")},
        [
            (0, "gas-1", T, _tele(Family.GAS_ALARM)),
            (10, "gas-1", E, _ev(type="high", lel_pct=55.0)),
            (12, "gas-1", E, _ev(type="valve_closed", by="alarm")),
            (20, "gas-1", E, _ev(type="cleared")),
            (30, "gas-1", T, _tele(Family.GAS_ALARM, state="fault", valve="closed")),
            (100, "gas-1", T, _tele(Family.GAS_ALARM, state="fault", valve="closed")),
        ],
        alarms={("gas-1", "gas_high_alarm"), ("gas-1", "gas_detector_fault")},
        findings={("gas-1", "fault_alarm", "silent_fault")},
        compliant={("gas-1", "linkage", "valve_close")},
    ),
]


def _register(url: str, scenarios: list[Scenario]) -> None:
    with connect(url) as conn:
        (cid,) = (
            conn.execute(
                "INSERT INTO communities (code, name) VALUES (%s, 'E2E') RETURNING id", (C,)
            ).fetchone()
            or ()
        )
        (bid,) = (
            conn.execute(
                "INSERT INTO buildings (community_id, code, name) VALUES (%s, 'b1', 'B1') RETURNING id",
                (cid,),
            ).fetchone()
            or ()
        )
        locs: dict[str, int] = {}
        for code, kind, evac in (("lobby", "lobby", True), ("flat", "floor", False), ("shed", "shed", False)):
            (locs[code],) = (
                conn.execute(
                    "INSERT INTO locations (community_id, building_id, kind, code, name, evacuation_route) "
                    "VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
                    (cid, bid if code != "shed" else None, kind, code, code, evac),
                ).fetchone()
                or ()
            )
        for sc in scenarios:
            for uid, (family, loc) in sc.devices.items():
                conn.execute(
                    "INSERT INTO devices (uid, community_id, location_id, family) VALUES (%s, %s, %s, %s)",
                    (uid, cid, locs[loc], family.value),
                )
        conn.commit()


def _messages(prefix: str, scenarios: list[Scenario], t0: datetime) -> Iterator[Msg]:
    seqs: dict[str, int] = {}
    steps = sorted((s for sc in scenarios for s in sc.steps), key=lambda s: s[0])
    devices = {uid: fam for sc in scenarios for uid, (fam, _) in sc.devices.items()}
    for at_s, uid, channel, fill in steps:
        seqs[uid] = seqs.get(uid, 0) + 1
        env = samples.envelope(
            devices[uid], device=uid, seq=seqs[uid], ts=(t0 + timedelta(seconds=at_s)).isoformat()
        )
        env.update(fill)
        yield Msg(topic(prefix, C, uid, channel), json.dumps(env).encode(), 0, "")


@pytest.mark.slow
def test_scripted_scenarios_end_to_end(settings: Settings) -> None:
    assert settings.database.url and settings.mqtt.url
    _register(settings.database.url, SCENARIOS)
    # device time starts 10 minutes ago so the whole script (≤ 130 s) stays in ingest's window
    t0 = datetime.now(UTC) - timedelta(minutes=10)
    engine = AlertService(settings.database.url, settings.alerts.model_copy(update={"clock": "event"}))
    ingest = IngestService(
        settings, database_url=settings.database.url, mqtt_url=settings.mqtt.url, sink=engine
    )
    engine.start()
    ingest.start()
    pub = Publisher(settings.mqtt.url, f"pub-{settings.mqtt.topic_prefix}")
    try:
        wait_for(ingest.consumer.subscribed.is_set, 15, "ingest subscription")
        msgs = list(_messages(settings.mqtt.topic_prefix, SCENARIOS, t0))
        pub.publish(msgs)
        pub.wait_acked(len(msgs))
        wait_for(lambda: engine.stats.processed >= len(msgs), 30, "engine evaluated every message")
        assert engine.wait_idle(10)
        with connect(settings.database.url) as conn:
            alarms = {
                (r[0], r[1])
                for r in conn.execute(
                    "SELECT d.uid, a.type FROM alarms a JOIN devices d ON d.id = a.device_id"
                ).fetchall()
            }
            rows = conn.execute(
                "SELECT d.uid, f.check_name, f.kind, f.compliant FROM compliance_findings f "
                "JOIN devices d ON d.id = f.device_id"
            ).fetchall()
            commands = conn.execute(
                "SELECT d.uid, c.name FROM commands c JOIN devices d ON d.id = c.device_id"
            ).fetchall()
    finally:
        pub.close()
        ingest.stop()
        engine.stop()
    bad = {(u, c, k) for u, c, k, ok in rows if not ok}
    good = {(u, c, k) for u, c, k, ok in rows if ok}
    expected_alarms = set().union(*(sc.alarms for sc in SCENARIOS))
    expected_bad = set().union(*(sc.findings for sc in SCENARIOS))
    expected_good = set().union(*(sc.compliant for sc in SCENARIOS))
    assert alarms == expected_alarms, (
        f"missing {expected_alarms - alarms}, unexpected {alarms - expected_alarms}"
    )
    assert bad == expected_bad, f"missing {expected_bad - bad}, unexpected {bad - expected_bad}"
    assert expected_good <= good, f"missing compliant findings {expected_good - good}"
    assert sorted(commands) == [("chg-b", "stop_port"), ("lift-1", "recall")]
