"""Device clocks on the pure rule core (alerts/core/clock.py): timers corrected for a device's measured
clock offset, `clock_skew` for a wrong clock, and messages stamped with the receive time because
their own time lay outside ingest's window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rules_kit import T0, Dev

from alerts.config import AlertSettings
from alerts.core import engine
from alerts.core.model import Linkage, RaiseAlarm
from devices.contract import Family

F = Family
RESET_CLOCK = datetime(2000, 1, 1, tzinfo=UTC)  # an RTC that lost its battery


def test_door_four_minutes_behind_stays_online_between_reports() -> None:
    d = Dev(F.ACCESS_DOOR, rx_skew_s=240)  # heartbeat 60 s × 3 misses = 180 s of silence allowed
    for k in range(6):
        d.tele(60 * k)
        d.tick(60 * k + 240 + 59)  # Yiju's time, just before the next report arrives
    assert "device_offline" not in d.raised(ignore=())
    # real silence: offline 180 s (+ 2 s grace) after the last report *arrived*
    last_rx = 300 + 240
    d.tick(last_rx + 180 + 1.9)
    assert "device_offline" not in d.raised(ignore=())
    d.tick(last_rx + 180 + 2.1)
    assert d.raised(ignore=()) == ["device_offline"]
    assert d.outputs[-1].at == T0 + timedelta(seconds=300 + 180)  # in device time, as every alarm


def test_charger_two_minutes_behind_a_spike_is_not_a_missed_cutoff() -> None:
    d = Dev(F.EBIKE_CHARGER, rx_skew_s=120)  # overload: 30 s confirmation + 60 s to cut
    d.port_tele(0, 4, power_w=2500.0, current_a=9.0)
    d.tick(120 + 10)  # Yiju's time 10 s after the spike arrived
    d.port_tele(20, 4)  # back to normal after 20 s: never a trigger
    d.tick(120 + 1000)
    assert d.findings("auto_cutoff") == [] and "auto_cutoff_failed" not in d.raised()


def test_charger_behind_a_real_missed_cutoff_is_decided_at_its_deadline() -> None:
    d = Dev(F.EBIKE_CHARGER, rx_skew_s=120)
    d.port_tele(0, 4, power_w=2500.0, current_a=9.0)
    d.port_tele(60, 4, power_w=2500.0, current_a=9.0)
    d.tick(120 + 90 + 1.9)  # the 90 s deadline in device time, + 2 s grace, has not passed
    assert d.findings("auto_cutoff") == []
    d.tick(120 + 90 + 2.1)
    (f,) = d.findings("auto_cutoff")
    assert not f.compliant and f.observed_at == T0 + timedelta(seconds=90)


def test_clock_skew_is_measured_over_a_window_and_clears_when_fixed() -> None:
    d = Dev(F.EBIKE_CHARGER, rx_skew_s=120)
    for k in range(10):  # 180 s heartbeat; the window (600 s) closes at the 5th report
        d.tele(180 * k)
    (skew,) = [o for o in d.outputs if isinstance(o, RaiseAlarm) and o.type.value == "clock_skew"]
    assert skew.details["offset_s"] == 120.0 and skew.details["behind"] is True
    assert skew.details["threshold_s"] == 30.0 and skew.details["messages"] >= 2
    d.rx_skew_s = 0.3  # NTP fixed it
    for k in range(10, 20):
        d.tele(180 * k)
    assert d.cleared() == ["clock_skew"]


def test_transport_delay_is_not_a_wrong_clock() -> None:
    d = Dev(F.ELEVATOR)
    for k in range(60):  # delays of 0.1 … 45 s; the least in every window is small
        d.rx_skew_s = 0.1 if k % 5 == 0 else 45.0
        d.tele(60 * k)
    assert "clock_skew" not in d.raised()


def test_clock_ahead_within_the_window_is_corrected_too() -> None:
    d = Dev(F.ELEVATOR, rx_skew_s=-200)  # 200 s ahead (inside ingest's +5 min)
    d.tele(0)
    d.tick(-200 + 180 + 1.9)
    assert "device_offline" not in d.raised(ignore=())
    d.tick(-200 + 180 + 2.1)
    assert d.raised(ignore=()) == ["device_offline"]
    for k in range(1, 12):
        d.tele(60 * k)
    assert "clock_skew" in d.raised()


def test_fire_alarm_with_a_reset_clock_is_raised_at_the_receive_time() -> None:
    d = Dev(F.SMOKE_ALARM, building_id=7)
    out = d.event(30, type="alarm", kind="smoke", claimed=RESET_CLOCK)
    fire = next(o for o in out if isinstance(o, RaiseAlarm) and o.type.value == "fire_alarm")
    assert fire.at == T0 + timedelta(seconds=30)
    assert fire.details["ts_from"] == "received_at"
    assert fire.details["device_ts"] == RESET_CLOCK.isoformat()
    skew = next(o for o in out if isinstance(o, RaiseAlarm) and o.type.value == "clock_skew")
    assert skew.details["reason"] == "timestamp_out_of_window"
    assert skew.details["device_ts"] == RESET_CLOCK.isoformat()
    assert skew.details["offset_s"] == (T0 + timedelta(seconds=30) - RESET_CLOCK).total_seconds()
    assert [o for o in out if isinstance(o, Linkage)] == [Linkage("fire", 7, T0 + timedelta(seconds=30))]


def test_telemetry_refused_for_its_time_raises_clock_skew() -> None:
    d = Dev(F.GAS_ALARM)
    received = (T0 + timedelta(seconds=5)).timestamp()
    (skew,) = engine.refuse_clock(d.ctx, d.st, RESET_CLOCK, received, d.th)
    assert isinstance(skew, RaiseAlarm) and skew.type.value == "clock_skew"
    assert skew.details["dead_lettered"] == "telemetry" and skew.at == T0 + timedelta(seconds=5)
    assert engine.refuse_clock(d.ctx, d.st, RESET_CLOCK, received + 60, d.th) == []  # already open


def test_linkage_from_a_detector_behind_is_judged_in_each_devices_own_time() -> None:
    smoke = Dev(F.SMOKE_ALARM, building_id=7, rx_skew_s=120)
    (link,) = [o for o in smoke.event(0, type="alarm", kind="smoke") if isinstance(o, Linkage)]
    assert link.at == T0 + timedelta(seconds=120)  # Yiju's time
    door = Dev(F.ACCESS_DOOR, evacuation_route=True, device_id=2)
    door.tele(100)
    door.outputs += engine.start_linkage(door.ctx, door.st, "fire", link.at, door.th)
    door.event(121, type="released", by="fire")  # 1 s after the alarm reached Yiju
    (f,) = door.findings("linkage")
    assert f.compliant and f.measured_s == 1.0


def test_event_clock_measures_no_offset() -> None:
    d = Dev(F.ACCESS_DOOR, settings=AlertSettings(clock="event"), rx_skew_s=86_400)
    d.tele(0)
    assert engine.next_due(d.ctx, d.st, d.th) == (T0 + timedelta(seconds=182)).timestamp()
    for k in range(1, 15):
        d.tele(60 * k)
    assert "clock_skew" not in d.raised()
