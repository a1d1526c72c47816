"""Unit tests of the pure rule core, per rule: boundaries, hysteresis, durations, deadlines, restarts."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from form3_states import FORM_3_STATES
from rules_kit import T0, Dev

from alerts.config import AlertSettings
from alerts.core import engine
from alerts.core.model import STATE_FORM, Admit, DeviceState, Linkage, Obligation, RaiseAlarm, Stage
from alerts.core.records import (
    BatterySilence,
    CctvChannel,
    CctvState,
    ChargerState,
    ClockWindow,
    Count,
    ElevatorState,
    Fault,
    Flap,
    FloatWindow,
    Gap,
    GasReading,
    GasState,
    Hold,
    Rescue,
    Said,
    SmokeState,
    Stop,
)
from devices.alarms import AlarmType
from devices.contract import Family

F = Family


# --------------------------------------------------------------------------------------------- charger


def test_over_temperature_needs_its_confirmation_time_and_clears_with_hysteresis() -> None:
    d = Dev(F.EBIKE_CHARGER)  # port 4 charging; threshold 80 °C, confirm 30 s, hysteresis 5 °C
    d.port_tele(0, 4, port_temp_c=79.9)
    d.port_tele(10, 4, port_temp_c=80.0)  # at the threshold: timer starts
    d.port_tele(39, 4, port_temp_c=85.0)
    assert "charger_over_temperature" not in d.raised()  # 29 s < 30 s
    d.port_tele(40, 4, port_temp_c=85.0)
    assert d.raised().count("charger_over_temperature") == 1
    d.port_tele(45, 4, port_temp_c=76.0, relay_on=False, state="idle", current_a=0.0, power_w=0.0)
    assert "charger_over_temperature" not in d.cleared()  # 76 ≥ 80 − 5: still hot
    d.port_tele(50, 4, port_temp_c=74.9, relay_on=False, state="idle", current_a=0.0, power_w=0.0)
    assert d.cleared().count("charger_over_temperature") == 1


def test_auto_cutoff_in_time_is_a_compliant_finding_with_the_measured_delay() -> None:
    d = Dev(F.EBIKE_CHARGER)
    d.port_tele(0, 4, port_temp_c=90.0)
    d.port_tele(30, 4, port_temp_c=90.0)
    d.event(42.5, type="session_stop", port=4, reason="port_over_temp")
    assert d.findings("auto_cutoff") == []  # a cut counts once telemetry shows it (docs/mqtt.md §7)
    d.port_tele(44, 4, port_temp_c=88.0, relay_on=False, state="idle", power_w=0.0, current_a=0.0)
    (f,) = d.findings("auto_cutoff")
    assert (f.kind, f.compliant, f.channel, f.measured_s, f.deadline_s) == (
        "over_temperature",
        True,
        4,
        42.5,  # at the reported stop's own time
        90.0,
    )
    assert f.details == {"outcome": "in_time", "stop_reason": "port_over_temp"}
    assert "auto_cutoff_failed" not in d.raised()
    d.tick(10_000)
    assert len(d.findings("auto_cutoff")) == 1


def test_missing_cutoff_raises_sends_command_verifies_and_escalates() -> None:
    d = Dev(F.EBIKE_CHARGER)  # deadline = confirm 30 s (overload) + cutoff 60 s
    d.port_tele(0, 4, power_w=2500.0, current_a=9.0)
    d.port_tele(60, 4, power_w=2500.0, current_a=9.0)
    assert d.findings("auto_cutoff") == []
    d.tick(90 + 3)  # 90 s deadline + 2 s grace not yet past
    d.tick(90 + 2.5)
    assert d.findings("auto_cutoff")[0].compliant is False
    assert "auto_cutoff_failed" in d.raised()
    (cmd,) = d.commands()
    assert (cmd.name, cmd.params) == ("stop_port", {"port": 4})
    # the command does not take effect within command_verify_s (60 s): escalation and a post cut
    d.tick(90 + 60 + 3)
    assert [e.type.value for e in d.escalations()] == ["auto_cutoff_failed"]
    assert [c.name for c in d.commands()] == ["stop_port", "cut_power"]
    # power finally off: the failure alarm clears; the finding is revised to `late` with the delay
    d.port_tele(200, 4, relay_on=False, state="idle", power_w=0.0, current_a=0.0)
    assert "auto_cutoff_failed" in d.cleared()
    missed, late = d.findings("auto_cutoff")
    assert (missed.details["outcome"], missed.measured_s) == ("not_cut", None)
    assert (late.compliant, late.details["outcome"], late.measured_s) == (False, "late", 200.0)
    assert late.dedup_key == missed.dedup_key  # one obligation: storage revises its row


def test_spike_shorter_than_confirmation_is_not_a_trigger() -> None:
    d = Dev(F.EBIKE_CHARGER)
    d.port_tele(0, 4, power_w=2500.0, current_a=9.0)
    d.port_tele(20, 4)  # back to normal before 30 s
    d.tick(1000)
    assert d.findings("auto_cutoff") == [] and d.raised() == []


def test_full_beyond_top_up_time_and_max_session() -> None:
    d = Dev(F.EBIKE_CHARGER)  # float_time 3600 s, cutoff 60 s
    d.port_tele(0, 4, state="full", power_w=20.0, current_a=0.1)
    d.port_tele(3600, 4, state="float", power_w=20.0, current_a=0.1)
    d.port_tele(3601, 4, state="float", power_w=20.0, current_a=0.1)  # top-up time over: obligation
    d.port_tele(3700, 4, state="float", power_w=20.0, current_a=0.1)  # deadline 3660 passed
    assert set(d.raised()) >= {"auto_cutoff_failed", "charge_not_stopped"}
    (f,) = d.findings("auto_cutoff")
    assert (f.kind, f.compliant) == ("full", False)

    m = Dev(F.EBIKE_CHARGER)  # max session 36 000 s
    m.port_tele(0, 1, session_s=36_001)
    m.event(30, type="session_stop", port=1, reason="max_time")
    m.port_tele(40, 1, relay_on=False, state="idle", power_w=0.0, current_a=0.0)
    (f,) = m.findings("auto_cutoff")
    assert (f.kind, f.compliant, f.measured_s) == ("max_time", True, 31.0)


def test_post_wide_smoke_requires_every_powered_port_cut_and_leakage_uses_breaker() -> None:
    d = Dev(F.EBIKE_CHARGER)  # ports 1 and 4 charging
    d.tele(0, smoke=True)
    assert "charger_smoke" in d.raised()
    d.port_tele(5, 1, relay_on=False, state="idle", power_w=0.0, current_a=0.0)
    assert d.findings("auto_cutoff") == []  # port 4 still on
    d.event(6, type="session_stop", port=4, reason="smoke")
    off = {"relay_on": False, "state": "idle", "power_w": 0.0, "current_a": 0.0}
    d.tele(8, smoke=True, ports=[dict(p, **off) for p in d.telemetry["ports"]])
    (f,) = d.findings("auto_cutoff")
    assert (f.kind, f.compliant, f.channel, f.measured_s) == ("smoke", True, 0, 6.0)

    leak = Dev(F.EBIKE_CHARGER)  # trip 300 mA after 10 s
    leak.tele(0, leakage_ma=350.0)
    leak.tele(10, leakage_ma=350.0)
    assert "charger_leakage" in leak.raised()
    leak.tele(13, leakage_ma=350.0, breaker_closed=False)
    (f,) = leak.findings("auto_cutoff")
    assert (f.kind, f.compliant, f.measured_s) == ("leakage", True, 13.0)
    leak.tele(20, leakage_ma=250.0)  # 250 mA ≥ 0.8 × 300 mA: not cleared yet
    assert "charger_leakage" not in leak.cleared()
    leak.tele(30, leakage_ma=239.0)
    assert "charger_leakage" in leak.cleared()


def test_protection_disabled_is_a_finding_once_per_change() -> None:
    d = Dev(F.EBIKE_CHARGER)
    prot = dict(d.telemetry["protection"], over_temp_cutoff=False)
    d.tele(0, protection=prot)
    d.tele(60, protection=prot)
    (f,) = d.findings("protection_config")
    assert (f.kind, f.compliant) == ("over_temp_cutoff_disabled", False)
    assert d.raised() == ["protection_disabled"]
    d.tele(120)
    assert [f.compliant for f in d.findings("protection_config")] == [False, True]
    assert d.cleared() == ["protection_disabled"]


def test_silent_fault_when_telemetry_shows_a_fault_the_device_never_reported() -> None:
    d = Dev(F.EBIKE_CHARGER)  # fault_alarm_deadline_s 60
    d.port_tele(0, 2, state="fuse_blown")
    d.port_tele(60, 2, state="fuse_blown")
    assert d.findings("fault_alarm") == []
    d.port_tele(61, 2, state="fuse_blown")
    (f,) = d.findings("fault_alarm")
    assert (f.kind, f.compliant, f.details["fault"]) == ("silent_fault", False, "2:fuse_blown")
    assert d.raised() == ["charger_fault"]
    d.port_tele(100, 2, state="idle")
    assert d.cleared() == ["charger_fault"]

    ok = Dev(F.EBIKE_CHARGER)
    ok.port_tele(0, 2, state="relay_welded")
    ok.event(5, type="fault", port=2, code="relay_welded", active=True)
    ok.tick(500)
    (f,) = ok.findings("fault_alarm")
    assert (f.kind, f.compliant, f.measured_s) == ("relay_welded", True, 5.0)
    assert ok.raised() == ["charger_fault"]
    ok.event(600, type="fault", port=2, code="relay_welded", active=False)
    assert "charger_fault" in ok.cleared()


def test_implausible_reading() -> None:
    d = Dev(F.EBIKE_CHARGER)
    d.port_tele(0, 3, relay_on=False, current_a=4.0, power_w=0.0)
    assert d.raised() == ["sensor_implausible"]
    d.port_tele(60, 3)
    assert d.cleared() == ["sensor_implausible"]


# --------------------------------------------------------------------------------------------- presence


def test_offline_after_missed_heartbeats_and_back_online() -> None:
    d = Dev(F.ELEVATOR)  # default heartbeat 60 s × 3 misses; the status message announces 30 s
    d.status(0, heartbeat_s=30)
    d.tele(10)
    d.tick(10 + 90 + 2)  # exactly 90 s + grace: not yet
    assert d.raised(ignore=()) == []
    d.tick(10 + 90 + 2.1)
    assert d.raised(ignore=()) == ["device_offline"]
    d.tele(200)
    assert d.cleared() == ["device_offline"]
    d.status(210, state="offline")  # Last Will: offline at once
    assert d.raised(ignore=()) == ["device_offline", "device_offline"]


def test_redelivered_message_is_ignored_and_state_survives_restart() -> None:
    d = Dev(F.ACCESS_DOOR)
    for i in range(4):
        d.event(i, type="denied", method="card", reason="unknown_credential")
    d.restart()
    # a redelivery of seq 4 changes nothing
    d.event(3, seq=4, type="denied", method="card", reason="unknown_credential")
    assert d.raised() == []
    d.event(5, type="denied", method="card", reason="unknown_credential")  # the 5th within 300 s
    assert d.raised() == ["access_denied_repeated"]
    assert len(json.dumps(d.st.to_json())) < 2048


# --------------------------------------------------------------------------------------------- smoke, gas


def test_fire_alarm_starts_linkage_and_silence_keeps_it_open() -> None:
    d = Dev(F.SMOKE_ALARM, building_id=7)
    out = d.event(0, type="alarm", kind="smoke")
    assert [o for o in out if isinstance(o, Linkage)] == [Linkage("fire", 7, T0)]
    d.tele(5, state="silenced")
    d.event(6, type="silenced", duration_s=600)
    assert d.cleared() == []
    d.event(100, type="cleared", kind="smoke")
    assert d.cleared() == ["fire_alarm"]


def test_low_battery_with_hysteresis_and_residual_current() -> None:
    d = Dev(F.SMOKE_ALARM)
    d.tele(0, battery_pct=20.0)
    assert d.raised() == ["low_battery"]
    d.tele(10, battery_pct=24.0)
    assert d.cleared() == []
    d.tele(20, battery_pct=25.0)
    assert d.cleared() == ["low_battery"]
    d.tele(30, residual_current_ma=299.0)
    d.tele(40, residual_current_ma=300.0)
    assert d.raised()[-1] == "electrical_fire_residual_current"


def test_gas_high_needs_the_close_signal_within_3_s_and_the_valve_closed_within_its_deadline() -> None:
    ok = Dev(F.GAS_ALARM)
    ok.tele(0)
    ok.event(1, type="high", lel_pct=55.0)
    ok.event(3.5, type="valve_closed", by="alarm")
    (f,) = ok.findings("linkage")
    assert (f.kind, f.compliant, f.measured_s) == ("valve_close", True, 2.5)

    bad = Dev(F.GAS_ALARM)
    bad.tele(0, lel_pct=24.9)
    assert bad.raised() == []
    bad.tele(10, lel_pct=50.0)
    assert bad.raised() == ["gas_high_alarm", "gas_low_alarm"]
    bad.tick(10 + 3 + 2.1)  # not closed 3 s after the alarm: Yiju gives the close signal itself
    assert [c.name for c in bad.commands()] == ["close_valve"]
    assert bad.findings("linkage") == [] and "linkage_failed" not in bad.raised()
    bad.tick(10 + 30 + 2.1)  # not reported closed within valve_close_deadline_s (30 s)
    assert bad.findings("linkage")[0].compliant is False
    assert "linkage_failed" in bad.raised()
    assert [c.name for c in bad.commands()] == ["close_valve", "close_valve"]
    bad.tele(50, lel_pct=10.0, valve="closed")
    assert {"linkage_failed", "gas_high_alarm", "gas_low_alarm"} <= set(bad.cleared())


# --------------------------------------------------------------------------------------------- linkage


def test_fire_linkage_on_doors_elevators_lights() -> None:
    door = Dev(F.ACCESS_DOOR, evacuation_route=True)
    door.tele(0)
    door.outputs += engine.start_linkage(door.ctx, door.st, "fire", T0 + timedelta(seconds=10), door.th)
    door.event(12, type="released", by="fire")
    (f,) = door.findings("linkage")
    assert (f.kind, f.compliant, f.measured_s) == ("door_release", True, 2.0)

    not_on_route = Dev(F.ACCESS_DOOR, evacuation_route=False)
    assert engine.start_linkage(not_on_route.ctx, not_on_route.st, "fire", T0, not_on_route.th) == []

    lift = Dev(F.ELEVATOR)
    lift.tele(0)
    lift.outputs += engine.start_linkage(lift.ctx, lift.st, "fire", T0, lift.th)
    recall_s = lift.th.elevator.recall_deadline_s  # floors not in the registry: the flat deadline
    lift.tick(recall_s + 2.1)
    assert lift.findings("linkage")[0].compliant is False
    assert [(c.name, c.params) for c in lift.commands()] == [("recall", {"floor": 1})]
    lift.tele(
        recall_s + 10, mode="fire_return", floor=1, moving=False, speed_mps=0.0, door="open", at_level=True
    )
    assert "linkage_failed" in lift.cleared()

    lamp = Dev(F.LIGHT)
    lamp.tele(0, dim_pct=100.0)  # already fully on: satisfied at once
    lamp.outputs += engine.start_linkage(lamp.ctx, lamp.st, "fire", T0, lamp.th)
    assert lamp.findings("linkage")[0].compliant is True


# --------------------------------------------------------------------------------------------- light


def test_lamp_out_at_night_only_after_confirmation() -> None:
    d = Dev(F.LIGHT)  # night 18:30–06:00 Asia/Shanghai = 10:30–22:00 UTC; T0 is 08:00 local
    d.tele(0, on=False, power_w=0.0, current_a=0.0)
    d.tele(400, on=False, power_w=0.0, current_a=0.0)
    assert d.raised() == []  # daytime: off is fine
    night = 11 * 3600  # 19:00 local
    d.tele(night, on=False, power_w=0.0, current_a=0.0)
    d.tele(night + 299, on=False, power_w=0.0, current_a=0.0)
    assert d.raised() == []
    d.tele(night + 300, on=False, power_w=0.0, current_a=0.0)
    assert d.raised() == ["lamp_failure"]
    d.tele(night + 400, on=True, power_w=29.0)
    assert d.cleared() == ["device_offline", "lamp_failure"]  # it was silent for 11 h before the night


# --------------------------------------------------------------------------------------------- elevator


def test_trapped_rescue_clock_escalates_and_overdue() -> None:
    d = Dev(F.ELEVATOR)
    d.event(0, type="fault", code="trapped_not_at_level", active=True, floor=7)
    assert d.raised() == ["elevator_trapped"]
    d.tick(1)
    d.tick(302.1)
    assert [e.details["level"] for e in d.escalations()] == [1, 2]
    d.tick(1800 + 2.1)
    assert [e.details["level"] for e in d.escalations()] == [1, 2, 3]
    assert "rescue_overdue" in d.raised()
    (f,) = d.findings("rescue")
    assert f.compliant is False
    d.event(2000, type="rescue_arrived", by="maint")
    assert "rescue_overdue" in d.cleared()
    assert len(d.findings("rescue")) == 1

    quick = Dev(F.ELEVATOR)
    quick.event(0, type="fault", code="trapped_at_level", active=True)
    quick.event(900, type="rescue_arrived")
    (f,) = quick.findings("rescue")
    assert (f.compliant, f.measured_s) == (True, 900.0)


def test_elevator_fault_in_telemetry_without_event_is_silent() -> None:
    d = Dev(F.ELEVATOR)
    d.tele(0, faults=["overspeed"])
    d.tick(100)
    assert d.findings("fault_alarm")[0].kind == "silent_fault"
    assert d.raised() == ["elevator_overspeed"]


# --------------------------------------------------------------------------------------------- door


def test_door_alarms() -> None:
    d = Dev(F.ACCESS_DOOR)
    d.tele(0, open=True, locked=False)
    d.tele(59, open=True, locked=False)
    assert d.raised() == []
    d.tele(60, open=True, locked=False)
    assert d.raised() == ["door_held_open"]
    d.tele(61)
    assert d.cleared() == ["door_held_open"]
    d.event(70, type="duress")
    d.tele(80)
    assert "door_duress" in d.open()  # latching: only an operator clears it
    for i in range(4):
        d.event(100 + i, type="denied", method="pin", reason="unknown_credential")
    d.event(105, type="granted", method="pin")
    d.event(106, type="denied", method="pin", reason="unknown_credential")
    assert "access_denied_repeated" not in d.raised()  # a valid credential reset the count


# --------------------------------------------------------------------------------------------- cctv


def _channels(n: int, **changes: object) -> list[dict[str, object]]:
    base = Dev(F.CCTV_RECORDER).telemetry["channels"][:n]
    return [dict(c, **changes) for c in base]


def test_cctv_retention_gap_and_daily_evaluation() -> None:
    d = Dev(F.CCTV_RECORDER)  # sample: earliest 2026-04-28 = 34 days before T0
    d.tele(0, channels=_channels(2))
    assert [f.compliant for f in d.findings("cctv_retention")] == [True, True]
    d.tele(300, channels=_channels(2))
    assert len(d.findings("cctv_retention")) == 2  # no change: no new finding
    short = (T0 - timedelta(days=29.5)).isoformat()
    d.tele(600, channels=[*_channels(1), *_channels(2, earliest_recording=short)[1:]])
    last = d.findings("cctv_retention")[-1]
    assert (last.channel, last.kind, last.compliant) == (2, "retention_short", False)
    assert "cctv_retention_short" in d.raised()

    g = Dev(F.CCTV_RECORDER)
    g.status(-1, heartbeat_s=86_400)  # reports daily: the days below are no silence
    g.tele(0, channels=_channels(1))
    g.tele(300, channels=_channels(1, recording=False))
    g.tele(500, channels=_channels(1, recording=False))  # stopped ≥ 180 s: recording_stopped
    g.tele(700, channels=_channels(1))  # gap 400 s > 300 s tolerance
    kinds = [f.kind for f in g.findings("cctv_retention")]
    assert "recording_gap" in kinds
    assert "cctv_recording_gap" in g.raised()
    g.tick(700 + 86_400)  # daily re-evaluation
    assert g.findings("cctv_retention")[-1].observed_at > T0 + timedelta(days=1)
    for day in range(1, 32):  # the gap is older than 30 days after a month of reports
        g.tele(700 + day * 86_400, channels=_channels(1))
    assert g.findings("cctv_retention")[-1].compliant is True
    assert "cctv_recording_gap" in g.cleared()


# ----------------------------------------------------------------------------- flapping, state


def test_flapping_alarm_is_held_open_until_quiet() -> None:
    d = Dev(F.SMOKE_ALARM)  # flap: 4 raises within 600 s
    for i in range(4):
        d.tele(i * 20, battery_pct=10.0)
        d.tele(i * 20 + 10, battery_pct=90.0)
    assert d.raised() == ["low_battery"] * 4
    assert d.cleared() == ["low_battery"] * 3  # the 4th clear is held
    d.tick(70 + 599)
    assert len(d.cleared()) == 3
    d.tick(70 + 600 + 2)
    assert len(d.cleared()) == 4


def test_state_json_roundtrip_and_settings_overrides() -> None:
    st = DeviceState()
    st.admit(5, 100.0)
    st.open["fire_alarm"] = 1.0
    st.marks["t:x"] = 2.0
    again = DeviceState.from_json(json.loads(json.dumps(st.to_json())))
    assert (again.max_seq, again.open, again.marks, again.admit(5, 100.0)) == (
        5,
        {"fire_alarm": 1.0},
        {"t:x": 2.0},
        Admit.DUPLICATE,
    )
    th = AlertSettings().with_overrides({"ebike_charger": {"port_over_temp_c": 70.0}, "tick_s": 0.5})
    assert th.ebike_charger.port_over_temp_c == 70.0 and th.ebike_charger.over_temp_confirm_s == 30.0
    d = Dev(F.EBIKE_CHARGER, settings=th)
    d.port_tele(0, 4, port_temp_c=71.0)
    d.port_tele(30, 4, port_temp_c=71.0)
    # the post still cuts at 80 °C: looser than the community's 70 °C (the post's limits are compared)
    assert d.raised() == ["protection_limit_loose", "charger_over_temperature"]


def test_an_out_of_range_reading_holds_sensor_implausible_for_n_good_reports() -> None:
    d = Dev(F.ELEVATOR)  # the elevator rule has its own implausible check (speed while standing)
    d.tele(0)
    out = engine.reject(d.ctx, d.st, (T0 + timedelta(seconds=5)).timestamp(), d.th, seq=2, detail="speed")
    d.seq = 2
    d.outputs += out
    assert d.raised() == ["sensor_implausible"]
    assert engine.reject(d.ctx, d.st, (T0 + timedelta(seconds=5)).timestamp(), d.th, seq=2, detail="x") == []
    d.tele(10)  # the rule itself would clear it: held
    d.tele(20)
    assert d.cleared() == []
    d.tele(30, moving=False, speed_mps=2.0)  # 3rd good report, but the rule's own condition is on
    assert d.cleared() == [] and "sensor_implausible" in d.open()
    d.tele(40)  # the rule clears it (no hold any more)
    assert d.cleared() == ["sensor_implausible"]
    g = Dev(F.GAS_ALARM)  # no rule of its own: cleared by the third good report
    g.outputs += engine.reject(g.ctx, g.st, T0.timestamp(), g.th, seq=1, detail="lel_pct")
    g.seq = 1
    for s in (10, 20):
        g.tele(s)
    assert g.cleared() == []
    g.tele(30)
    assert g.cleared() == ["sensor_implausible"]
    assert DeviceState.from_json(json.loads(json.dumps(g.st.to_json()))).marks == g.st.marks


def test_next_due_is_never_later_than_the_first_tick_that_produces_something() -> None:
    """`tick` at any time before `next_due` produces nothing; at `next_due` the timer is due."""
    cases = []
    c = Dev(F.EBIKE_CHARGER)
    c.port_tele(0, 4, port_temp_c=95.0)  # over-temperature: cutoff obligation
    cases.append(c)
    s = Dev(F.SMOKE_ALARM)
    s.tele(0)  # silence only
    cases.append(s)
    e = Dev(F.ELEVATOR)
    e.event(0, type="fault", code="trapped_not_at_level", active=True, floor=3)  # rescue clock
    cases.append(e)
    for d in cases:
        due = engine.next_due(d.ctx, d.st, d.th)
        assert due < float("inf")
        probe = DeviceState.from_json(json.loads(json.dumps(d.st.to_json())))
        for at in (T0.timestamp() + 1, due - 0.5):
            assert engine.tick(d.ctx, probe, at, d.th) == [], (d.family, at, due)
        assert engine.tick(d.ctx, probe, due + 0.01, d.th) != [], d.family


# ----------------------------------------------------------------------------- sequence epochs (issue 9.1)


def _counted_to(d: Dev, last: int) -> float:
    """The device has sent seq … `last` (the final 70, enough to fill the 64-wide window), one per 10 s;
    returns the time of the last."""
    at = 0.0
    for seq in range(max(0, last - 70), last + 1):
        at += 10
        d.tele(at, seq=seq)
    return at


@pytest.mark.parametrize("restart_at", [0, 1])
@pytest.mark.parametrize("counter", [10, 63, 64, 10_000])
def test_a_restarted_counter_starts_a_new_epoch_and_its_alarms_are_raised(
    counter: int, restart_at: int
) -> None:
    d = Dev(F.SMOKE_ALARM)
    at = _counted_to(d, counter)
    d.status(at + 5, "offline", seq=counter + 1)  # powered off: the Last Will
    assert d.raised(ignore=()) == ["device_offline"]
    d.restart()  # and the engine restarted meanwhile: the epoch comes back from the stored state
    # rebooted: the counter starts again, the clock has moved on
    d.status(at + 60, seq=restart_at)
    assert d.cleared() == ["device_offline"] and d.st.restarts == 1
    fire = d.event(at + 70, seq=restart_at + 1, type="alarm", kind="smoke")
    assert [o.type.value for o in fire if isinstance(o, RaiseAlarm)] == ["fire_alarm"]
    assert [o.at for o in fire if isinstance(o, RaiseAlarm)] == [T0 + timedelta(seconds=at + 70)]
    # a true redelivery after the restart is still suppressed, and so is a late copy from before it
    assert d.event(at + 70, seq=restart_at + 1, type="alarm", kind="smoke") == []
    assert d.tele(at, seq=counter) == []
    assert d.st.last_admit is Admit.DUPLICATE
    d.event(at + 80, seq=restart_at + 2, type="cleared", kind="smoke")
    assert d.cleared() == ["device_offline", "fire_alarm"]


def test_duplicates_follow_the_natural_key_not_the_number_alone() -> None:
    st = DeviceState()
    assert [st.admit(s, 100.0 + s) for s in range(5)] == [Admit.NEW] * 5
    assert st.admit(3, 103.0) is Admit.DUPLICATE  # the same (ts, seq) again: a redelivery
    assert st.admit(2, 500.0) is Admit.RESTART  # the same number at a later time: another message
    assert st.admit(2, 500.0) is Admit.DUPLICATE
    assert st.admit(4, 104.0) is Admit.DUPLICATE  # a late copy from the previous epoch
    assert st.admit(5, 105.0) is Admit.NEW  # from before the restart, never evaluated (a late flush)
    assert st.admit(5, 105.0) is Admit.DUPLICATE
    assert st.admit(3, 501.0) is Admit.NEW  # the current epoch goes on undisturbed
    # out-of-order flush inside one epoch: each message once
    assert [st.admit(s, 500.0 + s) for s in (9, 6, 8, 6, 9)] == [Admit.NEW] * 3 + [Admit.DUPLICATE] * 2


def test_an_online_announcement_starts_an_epoch_but_its_retained_copy_does_not() -> None:
    d = Dev(F.ACCESS_DOOR)
    _counted_to(d, 100)
    d.status(2_000, seq=101)  # reconnect, counting on
    d.restart()
    assert d.status(2_000, seq=101) == [] and d.st.restarts == 0  # the retained status on re-subscribe
    # a reboot whose clock came back wrong (behind the last message): the announcement says so
    d.status(1_500, seq=0)
    assert d.st.last_admit is Admit.RESTART
    d.event(1_501, seq=1, type="forced_open")
    assert d.raised() == ["door_forced_open"]


def test_stored_state_of_the_previous_form_is_read() -> None:
    """Form 1 (before epochs): highest seq and mask only; migration 0007 rewrites it the same way."""
    t = (T0 + timedelta(seconds=630)).timestamp()
    st = DeviceState.from_json({"t": t, "x": t, "s": 63, "k": (1 << 64) - 1, "h": 0, "o": {}, "m": {}})
    assert st.admit(63, t) is Admit.DUPLICATE and st.admit(60, t - 30) is Admit.DUPLICATE
    assert st.admit(0, t + 60) is Admit.RESTART
    assert DeviceState.from_json(st.to_json()).to_json() == st.to_json()


def test_obligations_of_the_previous_form_are_read_as_typed_records() -> None:
    """Form 2 kept obligations as positional lists in the marks; migration 0020 rewrites stored
    ones, and a row of the old form that slips through is still read the same way."""
    old = {
        "v": 2,
        "t": 1000.0,
        "x": 1000.0,
        "h": 0,
        "o": {},
        "m": {
            "o:leakage:0": [900.0, 901.0, 1, 1, 2],
            "l:elevator_recall": [950.0, 1010.0, 0, ["smoke_alarm:a", "smoke_alarm:b"]],
            "l:light_force_on": [950.0, 953.0, 2],
            "on": [1, 2],
        },
    }
    st = DeviceState.from_json(old)
    assert st.marks == {} and st.family == ChargerState(on_ports=(1, 2))
    assert st.cuts == {("leakage", 0): Obligation(900.0, 901.0, Stage.COMMANDED, ports=(1, 2))}
    assert st.actions == {
        "elevator_recall": Obligation(950.0, 1010.0, signals=("smoke_alarm:a", "smoke_alarm:b")),
        "light_force_on": Obligation(950.0, 953.0, Stage.ESCALATED),
    }
    again = DeviceState.from_json(json.loads(json.dumps(st.to_json())))
    assert (again.cuts, again.actions, again.to_json()["v"]) == (st.cuts, st.actions, STATE_FORM)


def test_records_of_form_3_are_read_as_typed_records() -> None:
    """Form 3 kept every record as a positional list under a mark key; migration 0026 rewrites stored
    ones (tests/test_migrations.py checks it writes what the engine writes), and a row of the old form
    that slips through is read the same way."""
    charger = DeviceState.from_json(FORM_3_STATES["charger"])
    assert charger.marks == {
        "t:over_temperature:3": 940.0, "t:fullsince:2": 800.0, "q:charger_overload": 995.0, "ev:smoke": 1
    }  # fmt: skip
    assert (charger.clock_offset_s, charger.clock_window) == (1.5, ClockWindow(990.0, 1.25, 3))
    assert charger.flaps == {"charger_over_temperature": Flap(2, 900.0)}
    assert charger.holds == {"sensor_implausible": Hold(-1, Said.RAISE)}
    assert charger.faults == {
        "3:fuse_blown": Fault(960.0, AlarmType.CHARGER_FAULT, reported=True),
        "4:relay_welded": Fault(970.0, AlarmType.CHARGER_FAULT, decided=True),
        "*": Fault(980.0, AlarmType.CHARGER_FAULT),
    }
    assert charger.family == ChargerState(
        protective={3: Stop(975.0, "over_temperature")},
        other={1: Stop(976.0, "user_unplug"), 3: Stop(977.0, "power_loss")},
        floats={2: FloatWindow(850.0, 7200)},
        on_ports=(1, 2, 5),
        protection=("over_temp_c_loose",),
    )
    assert DeviceState.from_json(FORM_3_STATES["charger_old_protection_bits"]).family == ChargerState(
        protection=("full_auto_stop_disabled", "over_temp_cutoff_disabled")
    )
    cctv = DeviceState.from_json(FORM_3_STATES["cctv"])
    assert cctv.family == CctvState(
        channels={
            1: CctvChannel(verdict=0, evaluated_at=990.0, earliest=100.0),
            2: CctvChannel(recording=False, stopped_since=950.0, verdict=10, evaluated_at=990.0,
                           gaps=[Gap(900.0, 120.0), Gap(950.0, 30.5)]),
            3: CctvChannel(online=False, recording=False),
            4: CctvChannel(),
        },
        last_report=999.0, offline=True, overwrite=False, alarm_channels={"cctv_recording_gap": [2]},
    )  # fmt: skip
    elevator = DeviceState.from_json(FORM_3_STATES["elevator"])
    assert elevator.family == ElevatorState("normal", Rescue(910.0, 1), 800.0, trapped_event=True)
    assert elevator.faults["d:moving_with_door_open"] == Fault(
        990.0, AlarmType.ELEVATOR_DOOR_OPEN_WHILE_MOVING, raised=True
    )
    assert (elevator.exempt, elevator.marks) == (
        {"elevator_recall": "inspection"}, {"sat:door_release": 1, "t:trap": 905.0}
    )  # fmt: skip
    smoke = DeviceState.from_json(FORM_3_STATES["smoke"])
    assert smoke.family == SmokeState(BatterySilence(900.0, 25200, reminded=True), check_overdue=True)
    assert DeviceState.from_json(FORM_3_STATES["smoke_unannounced_silence"]).family == SmokeState(
        BatterySilence(900.0, None, too_long=True)
    )
    gas = DeviceState.from_json(FORM_3_STATES["gas"])
    assert gas.family == GasState(2, 0, GasReading(12.5), "open", 1003.0)
    assert DeviceState.from_json(FORM_3_STATES["gas_even_older"]).family == GasState(
        1, 1, GasReading(3.0, 40.0)
    )
    door = DeviceState.from_json(FORM_3_STATES["door"])
    assert (door.counts, door.family) == ({"denied": Count(3, 990.0)}, None)
    for doc in FORM_3_STATES.values():  # the records' own form reads back the same
        st = DeviceState.from_json(doc)
        again = DeviceState.from_json(json.loads(json.dumps(st.to_json())))
        assert again.to_json() == st.to_json() and again.to_json()["v"] == STATE_FORM
        assert (again.family, again.faults, again.flaps) == (st.family, st.faults, st.flaps)


def test_the_state_of_a_running_fleet_survives_its_json_form() -> None:
    """Every family's rules decide the same with the state written and read back between messages
    (a restart after each) as with the state kept in memory."""
    for family in F:
        kept, stored = Dev(family), Dev(family)
        for s in range(0, 900, 30):
            kept.tele(s)
            stored.tele(s)
            stored.restart()
        kept.tick(2000)
        stored.tick(2000)
        assert stored.outputs == kept.outputs and stored.st.to_json() == kept.st.to_json()
