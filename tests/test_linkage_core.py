"""The pure escalation core: chain validation, step timing over loops, policy choice with quiet
hours (never for critical alarms), linked groups, on-duty shifts over midnight, who a step reaches,
back-off and per-number rate limits."""

from __future__ import annotations

import contextlib
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from alerts.escalation import core

CONSOLE = {"kind": "console"}


def _chain(*delays: float, loops: int = 1, repeat: float = 0) -> core.Chain:
    return core.Chain.from_json(
        {
            "steps": [{"delay_s": d, "targets": [CONSOLE], "channels": ["console"]} for d in delays],
            "loops": loops,
            "repeat_delay_s": repeat,
        }
    )


def test_steps_fall_due_in_order_over_every_loop() -> None:
    chain = _chain(0, 60, 120, loops=2, repeat=30)
    p = core.start(chain, 1000.0)
    due, p = core.advance(chain, p, 1000.0)
    assert due == [(0, 0, 1000.0)] and p == core.Progress(0, 1, 1060.0)
    due, p = core.advance(chain, p, 1059.9)
    assert due == []
    # a long pause returns every step that fell due, none skipped
    due, p = core.advance(chain, p, 5000.0)
    assert [(lo, s) for lo, s, _ in due] == [(0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    assert [t for _, _, t in due] == [1060.0, 1180.0, 1210.0, 1270.0, 1390.0]
    assert p.next_at is None


def test_policy_choice_and_quiet_hours() -> None:
    night = core.Policy(1, chain_id=10, quiet_start_min=22 * 60, quiet_end_min=7 * 60)
    fire_only = core.Policy(2, chain_id=20, alarm_types=frozenset({"fire_alarm"}), priority=10)
    policies = [night, fire_only]
    assert core.select_policy(policies, "fire_alarm", "critical", 23 * 60) is fire_only
    assert core.select_policy(policies, "door_held_open", "minor", 23 * 60) is None  # quiet
    assert core.select_policy(policies, "door_held_open", "minor", 12 * 60) is night
    assert core.select_policy([night], "gas_high_alarm", "critical", 3 * 60) is night  # critical: always
    assert core.select_policy([night], "elevator_trapped", "major", 3 * 60) is night  # always-escalate type


def test_linked_groups() -> None:
    assert core.group_key("fire_alarm", 5, 9, {}) == "fire:b5"
    assert core.group_key("linkage_failed", 5, 11, {"action": "release"}) == "fire:b5"
    assert core.group_key("linkage_failed", 5, 9, {"action": "close_valve"}) == "gas:d9"
    assert core.group_key("gas_high_alarm", 5, 9, {}) == "gas:d9"
    assert core.group_key("door_forced_open", 5, 9, {}) is None


def test_on_duty_over_midnight() -> None:
    night = [core.Shift(frozenset({1}), 22 * 60, 8 * 60)]  # Monday 22:00 → Tuesday 08:00
    assert core.on_duty(night, 1, 23 * 60) and core.on_duty(night, 2, 7 * 60)
    assert not core.on_duty(night, 2, 23 * 60) and not core.on_duty(night, 1, 7 * 60)
    sunday = [core.Shift(frozenset({7}), 20 * 60, 6 * 60)]
    assert core.on_duty(sunday, 1, 5 * 60)
    assert core.on_duty([core.Shift(frozenset({3}), 0, 1440)], 3, 1439)


def test_deliveries_reach_each_target_once_and_report_nobody() -> None:
    step = core.Step(
        0,
        (
            core.Target("on_duty", group="manager"),
            core.Target("person", ref=1),
            core.Target("endpoint", ref=7),
            core.Target("person", ref=99),
        ),
        ("sip", "sms", "webhook"),
    )
    people = {
        1: core.Person(1, "张", "138", "manager", True),
        2: core.Person(2, "李", "139", "manager", False),
    }
    endpoints = {7: core.Endpoint(7, "96333", "webhook", "https://x")}
    r = core.deliveries(step, people, endpoints)
    assert [(d.target, d.channel) for d in r.deliveries] == [
        ("person:1", "sip"),
        ("person:1", "sms"),
        ("endpoint:7", "webhook"),
    ]
    assert r.unresolved == ["person 99 not found or disabled"]
    nobody = core.deliveries(core.Step(0, (core.Target("on_duty", group="director"),), ("sip",)), people, {})
    assert nobody.deliveries == [] and nobody.unresolved == ["nobody on duty in group director"]
    assert core.idempotency_key(5, 1, 2, "person:1", "sip") == "5:1:2:person:1:sip"


def test_backoff_and_rate_limits() -> None:
    assert [core.backoff_s(n, [1, 2, 4]) for n in (1, 2, 3, 4)] == [1, 2, 4, None]
    limits = [(60.0, 1), (3600.0, 5), (86400.0, 20)]
    assert core.rate_limited_until([], 100.0, limits) is None
    assert core.rate_limited_until([90.0], 100.0, limits) == 150.0
    five = [0.0, 100.0, 200.0, 300.0, 400.0]
    assert core.rate_limited_until(five, 500.0, limits) == 3600.0


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(
                st.sampled_from(
                    [
                        "steps",
                        "delay_s",
                        "targets",
                        "channels",
                        "kind",
                        "ref",
                        "group",
                        "loops",
                        "repeat_delay_s",
                    ]
                ),
                inner,
                max_size=4,
            )
        ),
        max_leaves=20,
    )
)
def test_any_json_is_a_chain_or_a_chain_error(data: Any) -> None:
    with contextlib.suppress(core.ChainError):
        core.Chain.from_json(data if isinstance(data, dict) else {"steps": data})


def _place(**kw: Any) -> core.Place:
    base: dict[str, Any] = {
        "building": "1号楼", "location": "1号楼3层", "kind": "floor", "unit": None, "floor": None,
        "room": None, "post": None, "port": None, "charger": False,
    }  # fmt: skip
    return core.Place(**{**base, **kw})


def test_the_call_names_the_place_as_the_console_card_does() -> None:
    """A guard sent by phone needs the unit, floor and room (issue 13 §1's card), not just the building."""
    assert core.place_zh(_place(unit="2", floor=15, room="1502")) == "1号楼 2单元 15层 1502室"
    assert core.place_zh(_place(unit="1", floor=-1, kind="parking")) == "1号楼 1单元 地下1层"
    assert core.place_zh(_place(unit="1", kind="lobby", location="1号楼大堂")) == "1号楼 1单元 大堂"
    # a charging post: shed, post and port
    shed = {"location": "东车棚", "kind": "shed", "charger": True}
    assert core.place_zh(_place(**shed, post="3", port=2)) == "1号楼 东车棚 3号桩 2号端口"
    assert core.place_zh(_place(**shed, port=4)) == "1号楼 东车棚 4号端口"
    # no structure in the registry: the location's own name, without repeating the building
    assert core.place_zh(_place()) == "1号楼 3层"
    assert core.place_zh(_place(building=None, location="门卫室")) == "门卫室"
    assert core.place_zh(_place(building=None, location=None, kind=None)) == ""
