"""Door rules that follow a real compound (issue 19): the door's own mode (a daytime open schedule)
and its own held-open limit from the registry."""

from __future__ import annotations

from dataclasses import replace

from rules_kit import Dev

from alerts.config import DeviceParams
from devices.contract import Family


def test_a_door_held_open_by_its_own_schedule_raises_nothing() -> None:
    d = Dev(Family.ACCESS_DOOR)
    for s in range(0, 3600, 60):
        d.tele(s, open=True, locked=False, mode="remain_open", open_s=s)
    assert d.raised() == []
    d.tele(3600, open=True, locked=False, mode="normal", open_s=3600)  # the schedule ended: open too long
    assert d.raised() == ["door_held_open"]
    d.tele(3660, open=True, locked=False, mode="remain_open", open_s=3660)  # back on the open schedule
    assert d.cleared() == ["door_held_open"]


def test_held_open_time_is_per_door() -> None:
    d = Dev(Family.ACCESS_DOOR)
    d.ctx = replace(d.ctx, held_open_s=300.0)  # e.g. a goods entrance
    for s in range(0, 300, 30):
        d.tele(s, open=True, locked=False)
    assert d.raised() == []  # the community's 60 s would have alarmed at 60 s
    d.tele(300, open=True, locked=False)
    assert d.raised() == ["door_held_open"]
    assert d.outputs[-1].details["limit_s"] == 300.0  # type: ignore[union-attr]


def test_rule_parameters_come_from_device_metadata_as_a_csv_import_stores_them() -> None:
    params, problems = DeviceParams.from_metadata({"held_open_s": "180", "vendor_note": "x"})
    assert params.held_open_s == 180.0 and problems == []
    params, problems = DeviceParams.from_metadata({"rated_speed_mps": "fast", "floors": 18})
    assert params.rated_speed_mps is None and params.floors == 18
    assert len(problems) == 1 and problems[0].startswith("rated_speed_mps='fast'")
    assert DeviceParams.from_metadata(None) == (DeviceParams(), [])
