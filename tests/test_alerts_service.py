"""The engine service on the real database: decoded messages in, alarms / findings / commands persisted,
fire linkage fanned out to the building, commands handed to the publisher, state resumed after a
restart, and the compliance summary."""

from __future__ import annotations

import json
import logging
import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from ingest_support import wait_for
from rules_kit import T0

from alerts.config import AlertSettings
from alerts.core import engine
from alerts.service import AlertService, EngineEvent
from alerts.service.contexts import Contexts
from devices import catalog, samples
from devices.alarms import Check, Finding
from devices.contract import Channel, Decoded, DeviceRef, Family
from storage import alarms, findings, registry, rule_state
from storage.db import connect
from yiju.cli import main
from yiju.errors import ConfigurationError, InputError


class RecordingPublisher:
    """Stands in for the MQTT adapter's command side (the broker path is covered by the e2e test)."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def publish_command(
        self,
        *,
        community: str,
        device: str,
        command_id: uuid.UUID,
        name: str,
        params: dict[str, Any],
        ts: datetime,
    ) -> None:
        self.sent.append({"community": community, "device": device, "name": name, "params": params})


def _seed(url: str) -> dict[str, int]:
    with connect(url, autocommit=True) as conn:
        (cid,) = (
            conn.execute("INSERT INTO communities (code, name) VALUES ('c1', 'C1') RETURNING id").fetchone()
            or ()
        )
        (bid,) = (
            conn.execute(
                "INSERT INTO buildings (community_id, code, name) VALUES (%s, 'b1', 'B1') RETURNING id",
                (cid,),
            ).fetchone()
            or ()
        )
        (lobby,) = (
            conn.execute(
                "INSERT INTO locations (community_id, building_id, kind, code, name, evacuation_route) "
                "VALUES (%s, %s, 'lobby', 'b1-lobby', 'Lobby', true) RETURNING id",
                (cid, bid),
            ).fetchone()
            or ()
        )
        ids = {"community": cid}
        devices = (
            ("smk", "smoke_alarm"),
            ("smk2", "smoke_alarm"),
            ("door", "access_door"),
            ("chg", "ebike_charger"),
        )
        for uid, family in devices:
            (did,) = (
                conn.execute(
                    "INSERT INTO devices (uid, community_id, location_id, family) "
                    "VALUES (%s, %s, %s, %s) RETURNING id",
                    (uid, cid, lobby, family),
                ).fetchone()
                or ()
            )
            ids[uid] = did
        return ids


class Feed:
    def __init__(self, service: AlertService, ids: dict[str, int]) -> None:
        self.service, self.ids, self.seq = service, ids, 0

    def send(self, uid: str, family: Family, channel: Channel, at_s: float, fill: dict[str, Any]) -> None:
        self.seq += 1
        ts = T0 + timedelta(seconds=at_s)
        msg = samples.envelope(family, device=uid, seq=self.seq, ts=ts.isoformat())
        msg.update(fill)
        body = catalog.decode(family, channel, json.dumps(msg))
        ref = DeviceRef(self.ids[uid], uid, "c1", self.ids["community"], family)
        self.service.submit(Decoded(ref, channel, ts, self.seq, ts, body, b""))


def test_service_persists_links_publishes_and_resumes(db_url: str) -> None:
    ids = _seed(db_url)
    publisher = RecordingPublisher()
    settings = AlertSettings(clock="event", tick_s=0.05, state_flush_s=0.05)
    seen: list[EngineEvent] = []
    service = AlertService(db_url, settings, publisher=publisher)
    service.subscribe(seen.append)
    charger = samples.TELEMETRY[Family.EBIKE_CHARGER]
    hot = {**charger, "ports": [dict(p, port_temp_c=95.0) if p["port"] == 4 else p for p in charger["ports"]]}
    with service:
        feed = Feed(service, ids)
        feed.send(
            "door", Family.ACCESS_DOOR, Channel.TELEMETRY, 0, {"data": samples.TELEMETRY[Family.ACCESS_DOOR]}
        )
        feed.send("chg", Family.EBIKE_CHARGER, Channel.TELEMETRY, 0, {"data": hot})
        feed.send("smk", Family.SMOKE_ALARM, Channel.EVENT, 1, {"event": {"type": "alarm", "kind": "smoke"}})
        # one detector: a fire alarm, no linkage yet (GB 50116-2013 §4.1.6 needs two signals)
        feed.send("smk", Family.SMOKE_ALARM, Channel.TELEMETRY, 10, {"data": {"state": "alarm"}})
        assert service.wait_idle()
        ticks = service.stats.ticks
        wait_for(lambda: service.stats.ticks >= ticks + 2, 10, "timer ticks past the door's 3 s deadline")
        assert publisher.sent == []
        # the second detector confirms the fire at 12 s; the door never releases; the smoke alarms keep
        # reporting, moving the event clock on
        feed.send(
            "smk2", Family.SMOKE_ALARM, Channel.EVENT, 12, {"event": {"type": "alarm", "kind": "smoke"}}
        )
        feed.send("smk", Family.SMOKE_ALARM, Channel.TELEMETRY, 20, {"data": {"state": "alarm"}})
        assert service.wait_idle()
    # restart: the charger's over-temperature timer (started at 0 s) must survive
    service2 = AlertService(db_url, settings, publisher=publisher)
    with service2:
        feed2 = Feed(service2, ids)
        feed2.seq = 100
        feed2.send("chg", Family.EBIKE_CHARGER, Channel.TELEMETRY, 30, {"data": hot})
        assert service2.wait_idle()
        assert service2.stats.errors == 0

    with connect(db_url) as conn:
        open_types = {
            (a.device_uid, a.type)
            for a in alarms.list_alarms(conn, alarms.AlarmFilter(status="active")).items
        }
        assert ("smk", "fire_alarm") in open_types
        assert ("door", "linkage_failed") in open_types
        assert ("chg", "charger_over_temperature") in open_types  # 30 s confirmation across the restart
        rows = findings.list_findings(conn, ids["community"], T0 - timedelta(days=1), T0 + timedelta(days=1))
        link = [r for r in rows if r["check_name"] == "linkage"]
        assert [(r["device_uid"], r["kind"], r["compliant"]) for r in link] == [
            ("door", "door_release", False)
        ]
        cmds = conn.execute("SELECT name, status, alarm_id IS NOT NULL FROM commands").fetchall()
        # the charging post in the burning building must cut its charging too (GB 50166-2019 §4.20)
        assert sorted(cmds) == [("cut_power", "sent", True), ("release_all", "sent", True)]
        summary = findings.compliance_summary(
            conn, ids["community"], T0 - timedelta(days=1), T0 + timedelta(days=1)
        )
        (line,) = [s for s in summary.by_check if s.check_name == "linkage"]
        assert (line.total, line.compliant, line.share) == (1, 0, 0.0)
        assert sorted(s.device_uid or "" for s in summary.failing_devices) == ["chg", "door"]
    assert sorted(publisher.sent, key=lambda c: str(c["device"])) == [
        {"community": "c1", "device": "chg", "name": "cut_power", "params": {}},
        {"community": "c1", "device": "door", "name": "release_all", "params": {}},
    ]
    assert {e.kind for e in seen} >= {"alarm", "finding", "command"}


def test_compliance_cli_table_and_json(db_url: str, services: Any, monkeypatch: Any, capsys: Any) -> None:
    ids = _seed(db_url)
    now = datetime.now(UTC)
    rows = [
        findings.FindingRow(
            ids["community"],
            ids["chg"],
            Finding(
                Check.AUTO_CUTOFF, "over_temperature", ok, now - timedelta(days=d), measured_s=m, channel=4
            ),
            dedup_key=f"k{d}",
        )
        for d, ok, m in ((1, True, 12.0), (2, False, None), (40, False, None))  # the last is outside 30 d
    ]
    with connect(db_url) as conn:
        assert findings.insert_findings(conn, rows) == 3
        assert findings.insert_findings(conn, rows[:1]) == 0  # idempotent
        conn.commit()
    monkeypatch.setenv("YIJU_DATABASE__URL", db_url)
    monkeypatch.setenv("YIJU_MQTT__URL", services.mqtt_url)
    assert main(["compliance", "--community", "c1", "--window", "30d", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    (line,) = doc["by_check"]
    assert (line["check"], line["total"], line["compliant"], line["share"]) == ("auto_cutoff", 2, 1, 0.5)
    assert [(d["device"], d["failing_channels"]) for d in doc["failing_devices"]] == [("chg", [4])]
    assert main(["compliance", "--community", "c1"]) == 0
    table = capsys.readouterr().out
    assert "自动断电 auto-cutoff" in table and "50.0%" in table and "(channels 4)" in table
    assert main(["compliance", "--community", "nope"]) == 1


def test_site_facts_from_the_registry_reach_the_rules(db_url: str) -> None:
    """Community location, building floors and a device's metadata become its rule context."""
    with connect(db_url, autocommit=True) as conn:
        registry.upsert_community(
            conn, registry.CommunityIn("c9", "九号小区", latitude=30.27, longitude=120.16)
        )
        with pytest.raises(InputError, match="both latitude and longitude"):
            registry.upsert_community(conn, registry.CommunityIn("c8", "八号", latitude=30.0))
        registry.upsert_buildings(conn, [registry.BuildingIn("c9", "B1", "1号楼", floors=33)])
        registry.upsert_locations(conn, [registry.LocationIn("c9", "B1-L", "lobby", "大堂", building="B1")])
        registry.upsert_devices(
            conn,
            [
                registry.DeviceIn("c9-lift", "c9", "elevator", "B1-L", metadata={"rated_speed_mps": 1.75}),
                registry.DeviceIn("c9-door", "c9", "access_door", "B1-L", metadata={"held_open_s": "180"}),
                registry.DeviceIn("c9-lamp", "c9", "light", "B1-L", metadata={"held_open_s": "soon"}),
            ],
        )
        rows = {r.uid: r for r in rule_state.load_contexts(conn)}
    service = AlertService(db_url, AlertSettings())  # not started: only the context mapping is used
    lift = service.contexts.add(rows["c9-lift"])
    assert (lift.latitude, lift.longitude, lift.floors, lift.rated_speed_mps) == (30.27, 120.16, 33, 1.75)
    assert service.contexts.add(rows["c9-door"]).held_open_s == 180.0
    assert service.contexts.add(rows["c9-lamp"]).held_open_s is None  # refused (logged), not guessed


def test_an_output_the_database_refuses_is_dead_lettered_and_holds_back_no_other_alarm(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault injection: the rule core produces, for the charger, a finding whose channel does not fit
    the column (a bug's output). The engine must not retry it forever — every other device's alarms
    would wait behind it — but record it and go on."""
    ids = _seed(db_url)
    real = engine.evaluate

    def buggy(ctx: Any, st: Any, msg: Any, th: Any) -> Any:
        outputs = real(ctx, st, msg, th)
        if ctx.uid == "chg":
            outputs = [
                *outputs,
                Finding(Check.AUTO_CUTOFF, "over_temperature", False, msg.ts, channel=40_000),
            ]
        return outputs

    monkeypatch.setattr(engine, "evaluate", buggy)
    settings = AlertSettings(clock="event", tick_s=0.05, state_flush_s=0.05)
    with AlertService(db_url, settings) as service:
        feed = Feed(service, ids)
        feed.send(
            "chg",
            Family.EBIKE_CHARGER,
            Channel.TELEMETRY,
            0,
            {"data": samples.TELEMETRY[Family.EBIKE_CHARGER]},
        )
        feed.send("smk", Family.SMOKE_ALARM, Channel.EVENT, 1, {"event": {"type": "alarm", "kind": "smoke"}})
        assert service.wait_idle(20), "the engine is stuck behind the refused output"
        feed.send("smk2", Family.SMOKE_ALARM, Channel.EVENT, 2, {"event": {"type": "alarm", "kind": "smoke"}})
        assert service.wait_idle(20)
        assert service.stats.refused == 1
    with connect(db_url) as conn:
        fires = {
            a.device_uid for a in alarms.list_alarms(conn, alarms.AlarmFilter(types=["fire_alarm"])).items
        }
        assert fires == {"smk", "smk2"}
        (row,) = conn.execute(
            "SELECT reason, topic, device_uid, device_id, community_id, detail FROM dead_letters"
        ).fetchall()
    assert row[:5] == ("engine_output_refused", "engine/chg", "chg", ids["chg"], ids["community"])
    assert "NumericValueOutOfRange" in row[5]


def test_a_stop_that_stops_waiting_leaves_the_connection_to_the_worker(db_url: str, caplog: Any) -> None:
    """`stop` waits `timeout_s` for the worker. A worker still busy then (here: held inside a
    subscriber) finishes by itself: it evaluates what is queued, writes the rule state and closes its
    connection. The stopping thread never uses that connection beside it (it used to flush and close
    it, and the worker then failed on a closed connection and its last states were never written)."""
    ids = _seed(db_url)
    settings = AlertSettings(clock="event", tick_s=0.05, state_flush_s=600.0)  # only the final flush
    service = AlertService(db_url, settings)
    held, release = threading.Event(), threading.Event()

    def hold(ev: EngineEvent) -> None:
        if ev.kind == "alarm" and not held.is_set():
            held.set()
            release.wait(30)

    service.subscribe(hold)
    service.start()
    worker = service._thread  # the thread stop() stops waiting for
    assert worker is not None
    feed = Feed(service, ids)
    feed.send("smk", Family.SMOKE_ALARM, Channel.EVENT, 1, {"event": {"type": "alarm", "kind": "smoke"}})
    assert held.wait(10), "the smoke alarm reached the subscriber"
    normal = {"data": samples.TELEMETRY[Family.SMOKE_ALARM]}
    for k in range(5):  # queued behind the held worker
        feed.send("smk2", Family.SMOKE_ALARM, Channel.TELEMETRY, 2 + k, normal)
    with caplog.at_level(logging.ERROR, logger="alerts.service.lifecycle"):
        service.stop(timeout_s=0.2)
    assert worker.is_alive()
    assert "still finishing 5 queued messages" in caplog.text
    with pytest.raises(ConfigurationError, match="still finishing"):
        service.start()  # not beside the worker that still owns the connection
    release.set()
    worker.join(10)
    assert not worker.is_alive()
    assert service.stats.errors == 0
    assert service.stats.dropped == 0
    with connect(db_url) as conn:
        states = rule_state.load_states(conn)
    assert ids["smk2"] in states, "the worker wrote the rule state of what it evaluated after the stop"


def test_a_device_moved_to_another_building_joins_that_buildings_fire_linkage(db_url: str) -> None:
    """The engine re-reads the registry every `context_refresh_s`: a door moved into the burning
    building is released with the others (GB 50166-2019 §4.3), without restarting the engine."""
    ids = _seed(db_url)
    with connect(db_url, autocommit=True) as conn:
        row = conn.execute(
            "WITH b AS (INSERT INTO buildings (community_id, code, name) "
            "           VALUES (%s, 'b2', 'B2') RETURNING id), "
            "l AS (INSERT INTO locations (community_id, building_id, kind, code, name, evacuation_route) "
            "      SELECT %s, b.id, 'lobby', 'b2-lobby', 'Lobby 2', true FROM b RETURNING id) "
            "INSERT INTO devices (uid, community_id, location_id, family) "
            "SELECT 'door2', %s, l.id, 'access_door' FROM l RETURNING id",
            (ids["community"], ids["community"], ids["community"]),
        ).fetchone()
        assert row is not None
        ids["door2"] = int(row[0])
    publisher = RecordingPublisher()
    settings = AlertSettings(clock="event", tick_s=0.05, state_flush_s=0.05, context_refresh_s=0.1)
    service = AlertService(db_url, settings, publisher=publisher)
    with service:
        feed = Feed(service, ids)
        for uid in ("door", "door2"):
            feed.send(
                uid, Family.ACCESS_DOOR, Channel.TELEMETRY, 0, {"data": samples.TELEMETRY[Family.ACCESS_DOOR]}
            )
        assert service.wait_idle()
        ticks = service.stats.ticks
        wait_for(lambda: service.stats.ticks >= ticks + 4, 10, "several refresh periods")
        assert service.stats.context_refreshes == 0, "a quiet registry is not read again"
        with connect(db_url, autocommit=True) as conn:  # door2 moves into building b1 (the API's PATCH)
            conn.execute(
                "UPDATE devices SET location_id = (SELECT location_id FROM devices WHERE uid = 'door') "
                "WHERE uid = 'door2'"
            )
        seen = service.stats.context_refreshes
        wait_for(lambda: service.stats.context_refreshes >= seen + 1, 10, "the engine re-read the registry")
        for uid, at_s in (("smk", 1), ("smk2", 2)):  # two detectors: a confirmed fire in b1
            feed.send(
                uid, Family.SMOKE_ALARM, Channel.EVENT, at_s, {"event": {"type": "alarm", "kind": "smoke"}}
            )
        # the detector keeps reporting, moving the event clock on past the linkage's deadlines
        feed.send("smk", Family.SMOKE_ALARM, Channel.TELEMETRY, 20, {"data": {"state": "alarm"}})
        assert service.wait_idle()
        ticks = service.stats.ticks
        wait_for(lambda: service.stats.ticks >= ticks + 2, 10, "timer ticks after the fire")
        assert service.stats.errors == 0
    released = sorted(str(c["device"]) for c in publisher.sent if c["name"] == "release_all")
    assert released == ["door", "door2"]


def test_a_refused_override_keeps_that_communitys_thresholds_and_touches_no_other() -> None:
    """A community override edited by hand into something the settings refuse must not send any
    community back to the defaults at the next registry re-read (they would be thresholds nobody
    chose): the refusing community keeps what it had, the others take their new values."""
    contexts = Contexts(AlertSettings())
    contexts.load([], {1: {"tick_s": 0.5}, 2: {"tick_s": 0.7}})
    contexts.refresh([], {1: {"tick_s": "bad"}, 2: {"tick_s": 0.8}, 3: {"tick_s": 0.9}})
    assert contexts.settings_for(1).tick_s == 0.5  # kept
    assert contexts.settings_for(2).tick_s == 0.8  # its own new value, despite community 1
    assert contexts.settings_for(3).tick_s == 0.9
    contexts.refresh([], {1: {"tick_s": 0.6}})  # fixed: taken; 2 and 3 dropped their overrides
    assert (contexts.settings_for(1).tick_s, contexts.settings_for(2).tick_s) == (0.6, 1.0)
