"""Indicator scoring on hand-built evidence, against expectations computed by hand from the seeds' rules
(seed 000, Jiangsu evaluation method; indicators.md). Pure: no database."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from alerts.indicators.config import FaultUnit, IndicatorSettings
from alerts.indicators.report import as_json, build, fingerprint
from alerts.indicators.scoring import ItemResult, Verdict, per_fault, score_all
from storage.indicators import AlarmRow, DeviceRow, Extract, FindingAgg, ManualRow, RecordRow

START = datetime(2026, 11, 1, tzinfo=UTC) - timedelta(hours=8)  # 2026-11-01 00:00 China time
END = START + timedelta(days=30)
SEEN = START + timedelta(days=29)


def dev(i: int, family: str, *, reported: bool = True, retrofit: bool = False) -> DeviceRow:
    return DeviceRow(
        i, f"{family}-{i}", family, retrofit, True, None, None, reported, SEEN if reported else None
    )


def alarm(
    i: int,
    device: int,
    type: str,
    first_day: float,
    cleared_day: float | None,
    channels: tuple[int, ...] = (),
) -> AlarmRow:
    cleared = None if cleared_day is None else START + timedelta(days=cleared_day)
    return AlarmRow(i, device, type, "minor", START + timedelta(days=first_day), cleared, None, channels)


def finding(
    device: int,
    check: str,
    total: int,
    ok: int,
    *,
    channel: int = 0,
    kind: str = "k",
    latest_ok: bool | None = None,
) -> FindingAgg:
    return FindingAgg(
        device,
        channel,
        check,
        kind,
        total,
        ok,
        None,
        None,
        ok == total if latest_ok is None else latest_ok,
        tuple(range(100, 100 + total - ok)),
    )


def extract(
    devices: list[DeviceRow],
    alarms: tuple[AlarmRow, ...] = (),
    findings: tuple[FindingAgg, ...] = (),
    records: tuple[RecordRow, ...] = (),
    manual: tuple[ManualRow, ...] = (),
) -> Extract:
    return Extract(
        1,
        "demo",
        "示范小区",
        "Asia/Shanghai",
        START,
        END,
        tuple(devices),
        alarms,
        findings,
        (),
        records,
        manual,
        len(records),
    )


def item(results: list[ItemResult], scheme: str, number: str) -> ItemResult:
    return next(r for r in results if r.scheme == scheme and r.number == number)


def test_three_cctv_channels_failing_retention_score_half_a_point() -> None:
    x = extract(
        [dev(1, "cctv_recorder")],
        findings=tuple(
            finding(1, "cctv_retention", 30, 30 if ch == 4 else 10, channel=ch) for ch in (1, 2, 3, 4)
        ),
    )
    r = item(score_all(x, IndicatorSettings()), "jiangsu_basic", "16")
    assert r.score == 0.5
    assert r.arithmetic == "2 − 3 × 0.5 = 0.5"
    assert [e.device for d in r.deductions for e in d.evidence] == ["cctv_recorder-1"] * 3
    assert "4 路" in r.source_zh


def test_a_recorder_level_alarm_does_not_count_on_top_of_its_channels() -> None:
    x = extract(
        [dev(1, "cctv_recorder"), dev(2, "cctv_recorder")],
        alarms=(alarm(1, 1, "cctv_retention_short", 3, None), alarm(2, 2, "cctv_disk_fault", 1, 2)),
        findings=(
            finding(1, "cctv_retention", 10, 5, channel=1),
            finding(1, "cctv_retention", 10, 4, channel=2),
        ),
    )
    r = item(score_all(x, IndicatorSettings()), "jiangsu_basic", "16")
    assert r.arithmetic == "2 − 3 × 0.5 = 0.5"  # recorder 1: channels 1 and 2; recorder 2: the recorder


def test_cctv_channel_alarms_count_per_channel_once() -> None:
    x = extract(
        [dev(1, "cctv_recorder")],
        alarms=(
            alarm(1, 1, "cctv_channel_offline", 2, 3, (5, 6)),
            alarm(2, 1, "cctv_recording_gap", 4, 5, (5,)),
        ),
    )
    r = item(score_all(x, IndicatorSettings()), "jiangsu_basic", "16")
    assert r.arithmetic == "2 − 2 × 0.5 = 1"  # channels 5 and 6; channel 5's two alarms are one place


def test_a_post_whose_fault_was_silent_scores_two_not_three() -> None:
    good = extract([dev(1, "ebike_charger")], findings=(finding(1, "auto_cutoff", 4, 4),))
    silent = extract(
        [dev(1, "ebike_charger")],
        findings=(finding(1, "auto_cutoff", 4, 4), finding(1, "fault_alarm", 1, 0, kind="silent_fault")),
    )
    assert item(score_all(good, IndicatorSettings()), "jiangsu_basic", "33").score == 3.0
    r = item(score_all(silent, IndicatorSettings()), "jiangsu_basic", "33")
    assert (r.score, r.arithmetic) == (2.0, "2 + 0 = 2")
    assert any("静默" in d.zh for d in r.deductions)


def test_posts_without_any_cutoff_evidence_do_not_get_the_bonus() -> None:
    r = item(score_all(extract([dev(1, "ebike_charger")]), IndicatorSettings()), "jiangsu_basic", "33")
    assert r.score == 2.0
    assert item(score_all(extract([]), IndicatorSettings()), "jiangsu_basic", "33").score == 0.0


def test_lighting_deducts_a_tenth_per_facility_including_silent_lamps() -> None:
    lamps = [dev(i, "light") for i in range(1, 25)] + [dev(25, "light", reported=False)]
    x = extract(
        lamps,
        alarms=(
            alarm(1, 3, "lamp_failure", 1, 2),
            alarm(2, 3, "lamp_failure", 5, None),
            alarm(3, 7, "lamp_failure", 9, 9.5),
        ),
    )
    r = item(score_all(x, IndicatorSettings()), "jiangsu_basic", "8")
    assert r.arithmetic == "2 − 3 × 0.1 = 1.7"
    assert r.score == pytest.approx(1.7)


def test_fault_unit_setting_changes_what_one_fault_is() -> None:
    lamps = [dev(1, "light"), dev(2, "light")]
    # lamp 1: out for three local days (days 1, 2, 3), fixed; lamp 2: still out at the end
    x = extract(
        lamps, alarms=(alarm(1, 1, "lamp_failure", 1.1, 3.9), alarm(2, 2, "lamp_failure", 28.5, None))
    )
    by = {
        u: item(score_all(x, IndicatorSettings(fault_unit=u)), "jiangsu_basic", "8").arithmetic
        for u in FaultUnit
    }
    assert by[FaultUnit.FACILITY] == "2 − 2 × 0.1 = 1.8"
    assert by[FaultUnit.OPEN_AT_END] == "2 − 1 × 0.1 = 1.9"
    assert by[FaultUnit.FACILITY_DAY] == "2 − 5 × 0.1 = 1.5"  # 3 days + 2 days (28.5 → 30)


def test_doors_floor_at_zero() -> None:
    doors = [dev(i, "access_door") for i in range(1, 6)]
    x = extract(doors, alarms=tuple(alarm(i, i, "door_controller_fault", 1, None) for i in range(1, 6)))
    r = item(score_all(x, IndicatorSettings()), "jiangsu_basic", "14")
    assert (r.score, r.arithmetic) == (0.0, "2 − 5 × 0.5 = -0.5 → 0（扣完为止）")


def test_fire_records_test_and_maintenance_intervals() -> None:
    detectors = [dev(1, "smoke_alarm"), dev(2, "smoke_alarm"), dev(3, "smoke_alarm")]
    records = (
        RecordRow(None, "smoke_alarm", "maintenance", START - timedelta(days=100), 9, "manual"),  # the system
        RecordRow(1, "smoke_alarm", "test", END - timedelta(days=3), None, "device"),  # a self-test
        RecordRow(2, "smoke_alarm", "test", END - timedelta(days=45), 10, "manual"),  # too old (30 d)
    )
    r = item(score_all(extract(detectors, records=records), IndicatorSettings()), "jiangsu_basic", "10")
    assert r.arithmetic == "2 − 2 × 0.5 = 1"
    assert sorted(e.device for d in r.deductions for e in d.evidence) == ["smoke_alarm-2", "smoke_alarm-3"]
    # a longer test interval (a community setting) makes device 2 conform
    r60 = item(
        score_all(extract(detectors, records=records), IndicatorSettings(smoke_test_interval_days=60)),
        "jiangsu_basic",
        "10",
    )
    assert r60.arithmetic == "2 − 1 × 0.5 = 1.5"
    assert item(score_all(extract([]), IndicatorSettings()), "jiangsu_basic", "10").score == 0.0


def test_retrofitted_elevators_one_point_each_max_two() -> None:
    lifts = [dev(i, "elevator", retrofit=True) for i in (1, 2, 3)] + [dev(4, "elevator")]
    x = extract(lifts, alarms=(alarm(1, 1, "rescue_overdue", 2, 2.1),))
    r = item(score_all(x, IndicatorSettings()), "jiangsu_improve", "1")
    assert (r.score, r.arithmetic) == (2.0, "min(2, 2) = 2")
    x1 = extract(
        lifts, alarms=(alarm(1, 1, "rescue_overdue", 2, 2.1), alarm(2, 2, "elevator_overspeed", 3, 3.1))
    )
    assert item(score_all(x1, IndicatorSettings()), "jiangsu_improve", "1").score == 1.0


def test_improvement_5_6_is_all_or_nothing_and_says_what_is_missing() -> None:
    x = extract([dev(1, "light"), dev(2, "elevator")], findings=(finding(9, "linkage", 1, 1),))
    r = item(score_all(x, IndicatorSettings()), "jiangsu_improve", "5+6")
    assert r.score == 0.0 and r.gate
    reasons = " ".join(d.zh for d in r.deductions)
    assert "风机" in reasons and "应急呼救" in reasons
    manual = tuple(
        ManualRow(i, "jiangsu_improve", n, "met", "现场查看", "2026-11-20", (), "assessor")
        for i, n in ((1, "5"), (2, "6"))
    )
    linked = extract(
        [dev(1, "light"), dev(2, "elevator"), dev(3, "access_door")],
        findings=(finding(3, "linkage", 2, 2),),
        manual=manual,
    )
    assert item(score_all(linked, IndicatorSettings()), "jiangsu_improve", "5+6").score == 2.0


def test_verdict_items_never_invent_what_devices_cannot_show() -> None:
    results = score_all(extract([dev(1, "light")]), IndicatorSettings())
    y26 = item(results, "yantai", "26")
    assert [lv.verdict for lv in y26.levels[:2]] == [Verdict.MANUAL, Verdict.MANUAL]
    y23 = item(results, "yantai", "23")
    assert [lv.verdict for lv in y23.levels[1:]] == [Verdict.NO_EVIDENCE, Verdict.NO_EVIDENCE]
    assert all(r.score is None for r in results if r.points_max is None)


def test_per_fault_arithmetic() -> None:
    assert per_fault(2.0, 0, 0.5) == (2.0, "2 − 0 = 2")
    assert per_fault(2.0, 3, 0.1)[1] == "2 − 3 × 0.1 = 1.7"


def test_fingerprint_is_stable_and_follows_the_data() -> None:
    x = extract([dev(1, "light")], alarms=(alarm(1, 1, "lamp_failure", 1, None),))
    s = IndicatorSettings()
    a = build(x, s, datetime(2026, 12, 1, tzinfo=UTC))
    b = build(x, s, datetime(2026, 12, 2, tzinfo=UTC))
    assert a.fingerprint == b.fingerprint == fingerprint(x, s)
    assert as_json(a)["items"] == as_json(b)["items"]
    changed = dataclasses.replace(x, alarms=(alarm(1, 1, "lamp_failure", 1, 2),))
    assert fingerprint(changed, s) != a.fingerprint
    assert fingerprint(x, IndicatorSettings(fault_unit=FaultUnit.OPEN_AT_END)) != a.fingerprint
