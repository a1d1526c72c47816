"""The handling workflow on the real database (issue 13, 处置流程): acknowledge → dispatch → on site →
result → close, each step one transition; out-of-order steps and missing reasons are refused and write
nothing; close clears a still-active alarm in the same transaction."""

from __future__ import annotations

import psycopg
import pytest
from test_alerts_alarms import T0, _raise, seeded

from storage import alarms
from storage.db import connect
from yiju.errors import InputError

__all__ = ["seeded"]


def test_the_workflow_in_order_with_reasons(seeded: tuple[str, dict[str, int]]) -> None:
    url, ids = seeded
    with connect(url, autocommit=True) as conn:
        alarm_id = _raise(conn, ids, type="fire_alarm", severity="critical", device="smk1").alarm.id
        with pytest.raises(alarms.HandlingOutOfOrder, match="not acknowledged"):
            alarms.handle(conn, alarm_id, "dispatched", actor="user:op", dispatched_to="保安")
        alarms.acknowledge(conn, alarm_id, actor="user:op")
        with pytest.raises(alarms.HandlingOutOfOrder, match="at step none"):
            alarms.handle(conn, alarm_id, "closed", actor="user:op", comment="结束")
        with pytest.raises(InputError, match="dispatch needs"):
            alarms.handle(conn, alarm_id, "dispatched", actor="user:op", dispatched_to=" ")
        alarms.handle(conn, alarm_id, "dispatched", actor="user:op", dispatched_to="保安 王师傅")
        with pytest.raises(alarms.HandlingOutOfOrder, match="at step dispatched"):
            alarms.handle(conn, alarm_id, "dispatched", actor="user:op", dispatched_to="又一次")
        alarms.handle(conn, alarm_id, "on_site", actor="user:op")
        with pytest.raises(InputError, match="needs a comment"):
            alarms.handle(conn, alarm_id, "resolved", actor="user:op", result="false_alarm")
        with pytest.raises(InputError, match="result must be"):
            alarms.handle(conn, alarm_id, "resolved", actor="user:op", result="maybe", comment="x")  # type: ignore[arg-type]
        resolved = alarms.handle(
            conn, alarm_id, "resolved", actor="user:op", result="false_alarm", comment="厨房油烟"
        )
        assert resolved.alarm.handling == "resolved" and resolved.alarm.result == "false_alarm"
        assert resolved.alarm.status == "active"
        with pytest.raises(InputError, match="closed needs a comment"):
            alarms.handle(conn, alarm_id, "closed", actor="user:op")
        closed = alarms.handle(conn, alarm_id, "closed", actor="user:op", comment="已复位", at=T0)
        assert (closed.alarm.status, closed.alarm.handling, closed.alarm.cleared_by) == (
            "cleared", "closed", "user:op",
        )  # fmt: skip
        steps = [(t.action, t.comment, t.details) for t in alarms.history(conn, alarm_id)]
    assert steps == [
        ("raised", None, {}),
        ("acknowledged", None, {}),
        ("dispatched", None, {"to": "保安 王师傅"}),
        ("on_site", None, {}),
        ("resolved", "厨房油烟", {"result": "false_alarm"}),
        ("cleared", "已复位", {}),
        ("closed", "已复位", {}),
    ]


def test_a_test_result_needs_no_dispatch_and_the_database_refuses_a_result_without_step(
    seeded: tuple[str, dict[str, int]],
) -> None:
    url, ids = seeded
    with connect(url, autocommit=True) as conn:
        alarm_id = _raise(conn, ids).alarm.id
        alarms.acknowledge(conn, alarm_id, actor="user:op")
        change = alarms.handle(conn, alarm_id, "resolved", actor="user:op", result="test", comment="月度测试")
        assert change.alarm.result == "test"
        with pytest.raises(psycopg.errors.CheckViolation, match="alarms_result_when_resolved"):
            conn.execute("UPDATE alarms SET handling = NULL WHERE id = %s", (alarm_id,))
