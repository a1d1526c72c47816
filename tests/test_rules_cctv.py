"""CCTV retention on the pure rule core (alerts/core/cctv.py): unknown is not compliant, a recorder's
offline time is a recording gap, hysteresis at the 30-day limit, a full disk that overwrites is no
fault, and the alarms carry their evidence (domain.md §5.3)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from rules_kit import T0, Dev

from alerts.core.model import RaiseAlarm
from devices.contract import Family

F = Family
DAY = 86_400


def _chan(n: int, *, keep_days: float | None = 40.0, at_s: float = 0.0, **extra: Any) -> dict[str, Any]:
    at = T0 + timedelta(seconds=at_s)
    c: dict[str, Any] = {"channel": n, "online": True, "recording": True, **extra}
    if keep_days is not None:
        c["earliest_recording"] = (at - timedelta(days=keep_days)).isoformat()
        c["latest_recording"] = at.isoformat()
    return c


def _raised(d: Dev, type: str) -> list[RaiseAlarm]:
    return [o for o in d.outputs if isinstance(o, RaiseAlarm) and o.type.value == type]


def test_a_channel_that_never_reports_its_earliest_recording_is_not_compliant() -> None:
    d = Dev(F.CCTV_RECORDER)
    d.tele(0, channels=[_chan(1), _chan(2, keep_days=None)])
    verdicts = {f.channel: (f.kind, f.compliant) for f in d.findings("cctv_retention")}
    assert verdicts == {1: ("retention_ok", True), 2: ("retention_unknown", False)}
    (alarm,) = _raised(d, "cctv_retention_short")
    assert alarm.details["channels"] == [
        {"channel": 2, "earliest_recording": None, "retention_days": None, "reason": "unknown"}
    ]
    d.tele(300, channels=[_chan(1, at_s=300), _chan(2, at_s=300, keep_days=31)])  # now it says
    assert d.findings("cctv_retention")[-1].kind == "retention_ok"
    assert "cctv_retention_short" in d.cleared()


def test_recorder_offline_for_days_is_a_recording_gap_of_every_channel() -> None:
    d = Dev(F.CCTV_RECORDER)  # 300 s reports × 3 misses: offline after 900 s of silence
    d.tele(0, channels=[_chan(1), _chan(2)])
    d.tick(900 + 2.5)
    assert "device_offline" in d.raised(ignore=())
    offline = d.findings("cctv_retention")[-2:]
    assert [(f.channel, f.kind, f.compliant) for f in offline] == [
        (1, "recorder_offline", False),
        (2, "recorder_offline", False),
    ]
    assert offline[0].observed_at == T0 + timedelta(seconds=900)
    back = 3 * DAY
    d.tele(back, channels=[_chan(1, at_s=back), _chan(2, at_s=back)])
    last = d.findings("cctv_retention")[-2:]
    assert [(f.channel, f.kind, f.compliant) for f in last] == [
        (1, "recording_gap", False),
        (2, "recording_gap", False),
    ]
    assert last[0].details["gaps"] == [
        {"start": T0.isoformat(), "end": (T0 + timedelta(seconds=back)).isoformat(), "seconds": float(back)}
    ]
    (gap,) = _raised(d, "cctv_recording_gap")
    assert [c["channel"] for c in gap.details["channels"]] == [1, 2]
    assert gap.details["gap_tolerance_s"] == 300.0


def test_last_will_of_a_recorder_fails_its_channels_at_once() -> None:
    d = Dev(F.CCTV_RECORDER)
    d.tele(0, channels=[_chan(1)])
    d.status(60, state="offline")
    (f,) = d.findings("cctv_retention")[-1:]
    assert (f.kind, f.compliant) == ("recorder_offline", False)


def test_a_recorder_sized_for_exactly_30_days_does_not_flap() -> None:
    d = Dev(F.CCTV_RECORDER)
    # overwrite frees the oldest hour-long block when the disk is full: 30 d minus up to ~1 h
    for k, keep in enumerate([30.0, 29.975, 29.99, 29.96, 30.0, 29.97, 29.985, 29.96]):
        d.tele(300 * k, channels=[_chan(1, keep_days=keep, at_s=300 * k)])
    assert [(f.kind, f.compliant) for f in d.findings("cctv_retention")] == [("retention_ok", True)]
    assert "cctv_retention_short" not in d.raised()
    # really short: below the band — fails, and stays failed inside the band until back at 30 d
    for k, keep in enumerate([29.9, 29.99, 29.97, 30.01], start=8):
        d.tele(300 * k, channels=[_chan(1, keep_days=keep, at_s=300 * k)])
    assert [(f.kind, f.compliant) for f in d.findings("cctv_retention")] == [
        ("retention_ok", True),
        ("retention_short", False),
        ("retention_ok", True),
    ]
    (alarm,) = _raised(d, "cctv_retention_short")
    (ch,) = alarm.details["channels"]
    assert ch["channel"] == 1 and ch["retention_days"] == 29.9 and ch["reason"] == "retention_short"
    assert ch["earliest_recording"] == (T0 + timedelta(seconds=2400) - timedelta(days=29.9)).isoformat()
    assert alarm.details["threshold_days"] == 30.0 and alarm.details["hysteresis_s"] == 3600.0


def test_disk_full_while_overwriting_is_not_a_fault_and_never_permanent() -> None:
    d = Dev(F.CCTV_RECORDER)  # sample telemetry: 1.5 % free, overwrite not reported
    d.tele(0, channels=[_chan(1)], overwrite=True)
    d.event(10, type="disk_full", active=True)
    assert "cctv_disk_fault" not in d.raised()

    u = Dev(F.CCTV_RECORDER)  # overwrite unknown: the device's word counts …
    u.tele(0, channels=[_chan(1)])
    u.event(10, type="disk_full", active=True)
    assert u.raised() == ["cctv_disk_fault"]
    u.tele(300, channels=[_chan(1, at_s=300)], overwrite=True)  # … until it shows it overwrites
    assert u.cleared() == ["cctv_disk_fault"]

    o = Dev(F.CCTV_RECORDER)  # overwrite off: a nearly full disk is the fault, until space is freed
    o.tele(0, channels=[_chan(1)], overwrite=False, disk_free_gb=400.0)  # 2.5 % < 5 %
    (fault,) = _raised(o, "cctv_disk_fault")
    assert fault.details == {"fault": "disk_full", "free_pct": 2.5, "threshold_pct": 5.0}
    o.tele(300, channels=[_chan(1, at_s=300)], overwrite=False, disk_free_gb=4000.0)
    assert o.cleared() == ["cctv_disk_fault"]


def test_daily_findings_of_one_verdict_are_separate_decisions() -> None:
    d = Dev(F.CCTV_RECORDER)
    d.status(-1, heartbeat_s=86_400)
    d.tele(0, channels=[_chan(1)])
    d.tick(DAY + 1)
    first, daily = d.findings("cctv_retention")
    assert first.kind == daily.kind == "retention_ok"
    assert first.dedup_key != daily.dedup_key  # the database keeps both (a redelivery keeps one)


def test_offline_is_decided_by_the_next_message_when_no_tick_came_in_between() -> None:
    d = Dev(F.CCTV_RECORDER)  # an accelerated replay: no tick during the silence
    d.tele(0, channels=[_chan(1)])
    d.tele(3600, channels=[_chan(1, at_s=3600)])
    offline = _raised(d, "device_offline")
    assert [o.at for o in offline] == [T0 + timedelta(seconds=900)]  # as the tick would have said
    assert d.cleared()[:1] == ["device_offline"]
    assert [(f.kind, f.observed_at) for f in d.findings("cctv_retention")][1:] == [
        ("recorder_offline", T0 + timedelta(seconds=900)),
        ("recording_gap", T0 + timedelta(seconds=3600)),
    ]
