"""Smoke alarms on the pure rule core (issue 19): a test never looks like a fire, silenced is not
cleared, the battery self-check (≤ 24 h) and battery-fault silence ((7 ± 1) h) of GB 20517-2025,
and self-tests recorded as test records (findings of check `self_test`)."""

from __future__ import annotations

from datetime import timedelta

from rules_kit import T0, Dev

from alerts.core.model import Linkage
from devices.contract import Family

S = Family.SMOKE_ALARM
H = 3600.0


def test_a_test_alarm_is_never_a_fire() -> None:
    d = Dev(S)
    out = d.event(0, type="alarm", kind="smoke", test=True)
    d.tele(1, state="test")
    d.event(20, type="self_test", ok=True)
    d.tele(21)
    assert d.raised() == [] and not [o for o in out if isinstance(o, Linkage)]
    assert [(f.check.value, f.kind, f.compliant) for f in d.findings()] == [
        ("self_test", "alarm_test", True),
        ("self_test", "self_test", True),
    ]
    fire = d.event(30, type="alarm", kind="smoke")  # a real alarm during or after a test: a fire
    assert d.raised() == ["fire_alarm"] and [o for o in fire if isinstance(o, Linkage)]


def test_a_failed_self_test_is_a_detector_fault_until_a_test_passes() -> None:
    d = Dev(S)
    d.event(0, type="self_test", ok=False)
    assert d.raised() == ["smoke_detector_fault"]
    assert [(f.kind, f.compliant) for f in d.findings("self_test")] == [("self_test", False)]
    d.event(100, type="self_test", ok=True)
    assert d.cleared() == ["smoke_detector_fault"]


def test_silenced_or_testing_is_not_cleared() -> None:
    d = Dev(S)  # a fault seen only in telemetry (silent fault), then the device is silenced
    d.tele(0, state="fault")
    d.tick(62.1)
    assert d.raised() == ["smoke_detector_fault"]
    d.tele(120, state="silenced")
    d.tele(180, state="test")
    d.tele(240, state="fault")
    d.tick(400)
    assert d.cleared() == [] and d.raised() == ["smoke_detector_fault"]
    assert len(d.findings("fault_alarm")) == 1  # one silent fault, not one per silence

    fire = Dev(S)
    fire.tele(0, state="alarm")
    fire.event(5, type="silenced", duration_s=600)
    fire.tele(10, state="silenced")
    assert fire.cleared() == [] and "fire_alarm" in fire.open()


def test_a_battery_self_check_older_than_24_h_is_flagged() -> None:
    d = Dev(S)  # the kit's T0 is 08:00 China time; the sample's last check 03:00 the same day
    d.tele(0)
    d.tele(20 * H)  # 25 h after the check
    assert d.raised() == ["battery_check_overdue"]
    d.tele(21 * H)
    (f,) = d.findings("self_test")
    assert (f.kind, f.compliant, f.details["max_s"]) == ("battery_check_overdue", False, 86_400)
    d.tele(22 * H, battery_checked_at=(T0 + timedelta(hours=21.5)).isoformat())
    assert [c for c in d.cleared() if c != "device_offline"] == ["battery_check_overdue"]


def test_battery_fault_silence_is_notified_again_after_7_h_and_longer_than_8_h_is_a_finding() -> None:
    d = Dev(S)
    d.event(0, type="fault", code="low_battery", active=True)
    d.event(60, type="silenced", duration_s=int(7 * H), by="button")
    d.tele(120, state="silenced", battery_pct=12.0)
    d.tick(60 + 7 * H - 60)
    assert d.escalations() == []
    d.tick(60 + 7 * H + 2.1)
    (e,) = d.escalations()
    assert (e.type.value, e.details["reason"]) == ("low_battery", "battery_silence_over")
    assert d.findings("fault_alarm")[-1].kind == "low_battery"  # the fault itself, reported in time
    fire = d.event(7.5 * H, type="alarm", kind="smoke")  # a fire during the silence still sounds
    assert "fire_alarm" in d.raised() and [o for o in fire if isinstance(o, Linkage)]

    long = Dev(S)  # a device that silences its battery fault for 10 h (limit (7 ± 1) h)
    long.event(0, type="fault", code="low_battery", active=True)
    long.event(60, type="silenced", duration_s=int(10 * H))
    (f,) = [f for f in long.findings("fault_alarm") if f.kind == "battery_silence_too_long"]
    assert (f.compliant, f.deadline_s, f.measured_s) == (False, 8 * H, 10 * H)

    seen = Dev(S)  # silenced, no duration announced, still silenced 8.5 h later
    seen.tele(0, battery_pct=10.0)
    seen.tele(60, battery_pct=10.0, state="silenced")
    seen.tele(60 + 8.5 * H, battery_pct=10.0, state="silenced", battery_checked_at=None)
    assert [f.kind for f in seen.findings("fault_alarm")] == ["battery_silence_too_long"]
