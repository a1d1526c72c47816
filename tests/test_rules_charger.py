"""E-bike chargers on the pure rule core (issue 19, issue 9 item 5): what counts as the post cutting
power, the triggers, the post's own limits, the float window, leakage, refused readings, and the
measured delay of a late cut — plus the one storage rule a late cut needs (one row, revised)."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError
from rules_kit import T0, Dev

from alerts import config
from alerts.config import AlertSettings
from alerts.core import engine
from alerts.core.model import RaiseAlarm
from alerts.service.outputs import finding_row
from devices import catalog, samples
from devices.contract import Channel, Decoded, DeviceRef, Family
from storage import findings
from storage.db import connect

F = Family.EBIKE_CHARGER
OFF = {"relay_on": False, "state": "idle", "power_w": 0.0, "current_a": 0.0}


def _hot(d: Dev, *times: float) -> None:
    for s in times:
        d.port_tele(s, 4, port_temp_c=85.0)


def test_a_user_unplugging_a_hot_port_is_not_the_post_cutting_it() -> None:
    d = Dev(F)  # over-temperature deadline: 90 s from the first hot report
    _hot(d, 0, 30)
    d.event(40, type="session_stop", port=4, reason="user_unplug")
    d.port_tele(41, 4, port_temp_c=84.0, **OFF)
    assert d.findings("auto_cutoff") == []  # not a protective cut
    d.tick(93)
    (f,) = d.findings("auto_cutoff")
    assert (f.compliant, f.details["outcome"], f.details["stopped_by"]) == (False, "not_cut", "user_unplug")
    assert "auto_cutoff_failed" in d.raised()
    d.port_tele(100, 4, port_temp_c=60.0, **OFF)  # the port has no power: the alarm clears
    assert "auto_cutoff_failed" in d.cleared()
    assert len(d.findings("auto_cutoff")) == 1  # the post never cut: no `late` revision


def test_a_protective_stop_counts_once_telemetry_shows_the_relay_open() -> None:
    d = Dev(F)
    _hot(d, 0, 30)
    d.event(50, type="session_stop", port=4, reason="port_over_temp")
    d.tick(200)  # telemetry has not confirmed it yet: the deadline waits, nothing is decided
    assert d.findings("auto_cutoff") == [] and d.raised() == ["charger_over_temperature"]
    # only the offline timer is due (last report at 50 s + 2 × 180 s + grace), not the deadline
    assert engine.next_due(d.ctx, d.st, d.th) == (T0 + timedelta(seconds=50 + 360 + 2)).timestamp()
    d.port_tele(210, 4, port_temp_c=70.0, **OFF)
    (f,) = d.findings("auto_cutoff")
    assert (f.compliant, f.measured_s, f.details["outcome"]) == (True, 50.0, "in_time")

    void = Dev(F)  # a stop reported, but the next report still shows the relay closed
    _hot(void, 0, 30)
    void.event(40, type="session_stop", port=4, reason="port_over_temp")
    void.port_tele(45, 4, port_temp_c=86.0)
    void.tick(93)
    (f,) = void.findings("auto_cutoff")
    assert (f.compliant, f.details["outcome"]) == (False, "not_cut")

    plain = Dev(F)  # the relay seen open with no stop reported is the post's cut (standards.md §1.3)
    _hot(plain, 0, 30)
    plain.port_tele(60, 4, port_temp_c=84.0, **OFF)
    (f,) = plain.findings("auto_cutoff")
    assert (f.compliant, f.measured_s) == (True, 60.0)


def test_a_late_cut_records_its_measured_delay() -> None:
    d = Dev(F)
    _hot(d, 0, 30, 60)
    d.tick(93)  # 90 s deadline + grace
    (missed,) = d.findings("auto_cutoff")
    assert (missed.details["outcome"], missed.measured_s) == ("not_cut", None)
    d.event(120, type="session_stop", port=4, reason="port_over_temp")
    d.port_tele(121, 4, port_temp_c=80.0, **OFF)
    late = d.findings("auto_cutoff")[-1]
    assert (late.compliant, late.details["outcome"], late.measured_s) == (False, "late", 120.0)
    assert late.dedup_key == missed.dedup_key
    assert "auto_cutoff_failed" in d.cleared()


def test_each_trigger_has_one_deadline_measured_from_its_instant() -> None:
    th = AlertSettings()
    for kind in config.TRIGGERS:
        assert config.cutoff_s(th.ebike_charger, kind) > config.confirm_s(th.ebike_charger, kind)
        described = type(th.ebike_charger).model_fields[f"{kind}_cutoff_s"].description or ""
        assert " s from " in described and " — [" in described, kind  # from which instant; its source
    d = Dev(F, settings=th.with_overrides({"ebike_charger": {"over_temperature_cutoff_s": 60.0}}))
    _hot(d, 0, 30)
    d.tick(60 + 2.1)
    (f,) = d.findings("auto_cutoff")
    assert (f.deadline_s, f.trigger_at, f.observed_at) == (60.0, T0, T0 + timedelta(seconds=60))
    with pytest.raises(Exception, match="confirmation"):
        AlertSettings().with_overrides({"ebike_charger": {"overload_cutoff_s": 20.0}})


def test_over_and_under_voltage_and_cabinet_over_temperature_are_triggers() -> None:
    ov = Dev(F)  # OV 270 V, confirmation 10 s, deadline 60 s
    ov.port_tele(0, 4, voltage_v=285.0)
    ov.port_tele(10, 4, voltage_v=285.0)
    ov.event(12, type="session_stop", port=4, reason="over_voltage")
    ov.port_tele(13, 4, voltage_v=284.0, **OFF)
    (f,) = ov.findings("auto_cutoff")
    assert (f.kind, f.compliant, f.measured_s) == ("over_voltage", True, 12.0)

    uv = Dev(F)  # a sagging supply while current flows; no report below 100 V for 0 A counts
    uv.port_tele(0, 1, voltage_v=0.0, current_a=0.0, power_w=0.0)
    uv.port_tele(0.5, 1, voltage_v=90.0)
    uv.tick(80)
    assert [f.kind for f in uv.findings("auto_cutoff")] == ["under_voltage"]

    cab = Dev(F)  # a cabinet at 62 °C (cut at 60 °C): every powered port must be cut
    cab.tele(0, cabinet_temp_c=62.0)
    cab.tele(30, cabinet_temp_c=63.0)
    assert cab.raised() == ["charger_over_temperature"]
    cab.tick(93)
    (f,) = cab.findings("auto_cutoff")
    assert (f.kind, f.channel, f.compliant) == ("cabinet_over_temperature", 0, False)


def test_a_fire_in_the_building_cuts_charging_with_power_loss_as_evidence() -> None:
    d = Dev(F, building_id=7)
    d.tele(0)  # ports 1 and 4 charging
    fire = T0 + timedelta(seconds=10)
    d.outputs += engine.start_linkage(d.ctx, d.st, "fire", fire, d.th)
    d.event(13, type="alarm", kind="power_loss", active=True)  # non-fire power cut (GB 50166 §4.20)
    (f,) = d.findings("auto_cutoff")
    assert (f.kind, f.compliant, f.measured_s, f.deadline_s) == ("fire", True, 3.0, 6.0)

    slow = Dev(F, building_id=7)
    slow.tele(0)
    slow.outputs += engine.start_linkage(slow.ctx, slow.st, "fire", fire, slow.th)
    slow.tick(10 + 6 + 2.1)
    assert [(c.name, c.params) for c in slow.commands()] == [("cut_power", {})]


def test_a_post_limit_looser_than_the_community_setting_is_a_finding() -> None:
    d = Dev(F)
    loose = dict(d.telemetry["protection"], over_temp_c=120.0, leakage_trip_ma=500.0)
    d.tele(0, protection=loose)
    d.tele(180, protection=loose)
    kinds = sorted(f.kind for f in d.findings("protection_config"))
    assert kinds == ["leakage_trip_ma_loose", "over_temp_c_loose"]
    over = next(f for f in d.findings("protection_config") if f.kind == "over_temp_c_loose")
    assert over.details == {"reported": 120.0, "setting": 80.0} and not over.compliant
    assert d.raised() == ["protection_limit_loose"]
    d.tele(360)
    assert d.findings("protection_config")[-1].kind == "protection_enabled"
    assert d.cleared() == ["protection_limit_loose"]


def test_switching_between_float_and_charging_keeps_the_float_window() -> None:
    d = Dev(F)  # float time 3600 s from the first full report; full-cutoff deadline 60 s
    for i, s in enumerate(range(0, 3800, 180)):
        state, power = ("float", 20.0) if i % 2 == 0 else ("charging", 60.0)
        d.port_tele(s, 4, state=state, power_w=power, current_a=round(power / 229.5, 3))
    d.tick(3600 + 60 + 2.1)
    (f,) = d.findings("auto_cutoff")
    assert (f.kind, f.compliant, f.trigger_at) == ("full", False, T0 + timedelta(seconds=3600))
    assert {"auto_cutoff_failed", "charge_not_stopped"} <= set(d.raised())

    trickle = Dev(F)  # "charging" at 20 W is full too (X10P: below 45 W)
    trickle.port_tele(0, 4, power_w=20.0, current_a=0.09)
    trickle.port_tele(3700, 4, power_w=20.0, current_a=0.09)
    trickle.tick(3700 + 2.1)
    assert [f.kind for f in trickle.findings("auto_cutoff")] == ["full"]


def test_normal_shed_leakage_raises_nothing_and_real_leakage_needs_its_confirmation() -> None:
    d = Dev(F)  # 150 mA: natural leakage of a shed (GB 50116-2013 条文说明 §9.2.3: 100–200 mA)
    for s in range(0, 600, 60):
        d.tele(s, leakage_ma=150.0)
    d.tick(700)
    assert d.raised() == [] and d.findings() == [] and d.commands() == []

    spike = Dev(F)  # 400 mA for one report only: shorter than the 10 s confirmation
    spike.tele(0, leakage_ma=400.0)
    spike.tele(5, leakage_ma=120.0)
    spike.tick(200)
    assert spike.raised() == [] and spike.findings() == []


def _refused(**port: Any) -> bytes:
    msg = copy.deepcopy(samples.message(F, Channel.TELEMETRY))
    msg["data"]["ports"][2].update(port)
    msg["data"]["smoke"] = True
    return json.dumps(msg).encode()


def test_a_port_sensor_out_of_range_refuses_only_that_reading() -> None:
    payload = _refused(port_temp_c=900.0)
    with pytest.raises(ValidationError):  # the contract refuses it…
        catalog.decode(F, Channel.TELEMETRY, payload)
    body: Any = catalog.accept(F, Channel.TELEMETRY, payload)  # …and ingest keeps the rest
    assert body.data.refused == {"ports[3].port_temp_c": 900.0}
    assert body.data.ports[2].port_temp_c is None and body.data.smoke is True
    points = catalog.points_of(F, body)
    assert ("port_temp_c", 3, 900.0) not in points and ("port_temp_c", 4, 31.5) in points
    for bad in ({"port_temp_c": "hot"}, {"port": 0}):  # anything but a range error: refused whole
        with pytest.raises(ValidationError):
            catalog.accept(F, Channel.TELEMETRY, _refused(**bad))
    none_sent = copy.deepcopy(samples.message(F, Channel.TELEMETRY))
    none_sent["data"]["ports"][0]["voltage_v"] = None  # a device may not send null itself
    with pytest.raises(Exception, match="must be a number"):
        catalog.accept(F, Channel.TELEMETRY, json.dumps(none_sent))

    d = Dev(F)
    d.port_tele(0, 3, port_temp_c=85.0)  # port 3 hot (idle): its over-temperature timer runs
    out = engine.evaluate(d.ctx, d.st, _decoded(d, 10, payload), d.th)
    raised = [o.type.value for o in out if isinstance(o, RaiseAlarm)]
    assert {"charger_smoke", "sensor_implausible"} <= set(raised)  # the smoke reading is not hidden
    assert "t:over_temperature:3" in d.st.marks  # unknown is not "cooled down": the timer stays


def _decoded(d: Dev, at_s: float, payload: bytes) -> Decoded:
    doc = json.loads(payload)
    ts = T0 + timedelta(seconds=at_s)
    d.seq += 1
    doc.update(device=d.ctx.uid, seq=d.seq, ts=ts.isoformat())
    body: Any = catalog.accept(F, Channel.TELEMETRY, json.dumps(doc))
    ref = DeviceRef(d.ctx.device_id, d.ctx.uid, "c1", 1, F)
    return Decoded(ref, Channel.TELEMETRY, ts, d.seq, ts, body, b"")


def test_a_late_cut_revises_its_stored_finding_and_the_summary_tells_late_from_not_cut(db_url: str) -> None:
    d = Dev(F)
    _hot(d, 0, 30, 60)
    d.tick(93)
    d.port_tele(121, 4, port_temp_c=80.0, **OFF)  # cut at 121 s: late
    other = Dev(F)
    _hot(other, 0, 30)
    other.tick(93)  # never cut
    with connect(db_url) as conn:
        comm = conn.execute(
            "INSERT INTO communities (code, name) VALUES ('c1', 'c1') RETURNING id"
        ).fetchone()
        assert comm is not None
        for dev in (d, other):
            row = conn.execute(
                "INSERT INTO devices (uid, community_id, family) VALUES (%s, %s, 'ebike_charger') "
                "RETURNING id",
                (f"chg{id(dev)}", comm[0]),
            ).fetchone()
            assert row is not None
            ctx = replace(dev.ctx, device_id=row[0], community_id=comm[0])
            rows = [finding_row(ctx, f) for f in dev.findings("auto_cutoff")]  # as the engine writes them
            for r in rows:  # one per write, as the engine's batches may split them
                findings.insert_findings(conn, [r])
            findings.insert_findings(conn, rows[:1])  # a redelivered not_cut changes nothing
        stored = conn.execute(
            "SELECT details->>'outcome', measured_s, observed_at FROM compliance_findings ORDER BY measured_s"
        ).fetchall()
        summary = findings.compliance_summary(
            conn, comm[0], T0 - timedelta(days=1), datetime.now(UTC) + timedelta(days=1)
        )
    assert [(o, m) for o, m, _ in stored] == [("late", 121.0), ("not_cut", None)]
    assert stored[0][2] == T0 + timedelta(seconds=90)  # decided at the deadline; revised in place
    (line,) = summary.by_check
    assert (line.total, line.failed, line.late, line.not_cut, line.worst_measured_s) == (2, 2, 1, 1, 121.0)
