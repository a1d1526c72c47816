"""The alarm lifecycle on the real database: upsert on the partial unique index, transitions with
NOTIFY, acknowledge/comment/clear, listing with filters and keyset pagination, and concurrent
duplicate triggers from two connections producing exactly one open alarm."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from storage import alarms
from storage.db import connect
from yiju.errors import InputError

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _seed(url: str) -> dict[str, int]:
    """A community with one building, a location and three devices (plain SQL: test fixture data)."""
    with connect(url, autocommit=True) as conn:
        cid = conn.execute("INSERT INTO communities (code, name) VALUES ('c1', 'C1') RETURNING id").fetchone()
        assert cid
        bid = conn.execute(
            "INSERT INTO buildings (community_id, code, name) VALUES (%s, 'b1', 'Bldg 1') RETURNING id", cid
        ).fetchone()
        assert bid
        lid = conn.execute(
            "INSERT INTO locations (community_id, building_id, kind, code, name) "
            "VALUES (%s, %s, 'shed', 'shed1', 'Shed 1') RETURNING id",
            (cid[0], bid[0]),
        ).fetchone()
        assert lid
        ids = {"community": cid[0], "building": bid[0]}
        for uid, family, loc in (("chg1", "ebike_charger", lid[0]), ("smk1", "smoke_alarm", None)):
            row = conn.execute(
                "INSERT INTO devices (uid, community_id, location_id, family) VALUES (%s, %s, %s, %s) "
                "RETURNING id",
                (uid, cid[0], loc, family),
            ).fetchone()
            assert row
            ids[uid] = row[0]
        return ids


@pytest.fixture
def seeded(db_url: str) -> tuple[str, dict[str, int]]:
    return db_url, _seed(db_url)


def _raise(conn: psycopg.Connection[Any], ids: dict[str, int], device: str = "chg1", **kw: Any) -> Any:
    args: dict[str, Any] = {
        "community_id": ids["community"],
        "device_id": ids[device],
        "type": "charger_over_temperature",
        "severity": "major",
        "at": T0,
    }
    args.update(kw)
    return alarms.raise_or_update(conn, **args)


def test_raise_update_ack_comment_clear_with_history_and_notify(seeded: tuple[str, dict[str, int]]) -> None:
    url, ids = seeded
    with connect(url, autocommit=True) as listener, connect(url) as conn:
        listener.execute(f"LISTEN {alarms.NOTIFY_CHANNEL}")
        first = _raise(conn, ids, details={"temp_c": 82})
        conn.commit()
        assert first.action == "raised"
        a = first.alarm
        assert (a.status, a.acknowledged, a.occurrences, a.severity) == ("active", False, 1, "major")
        assert (a.device_uid, a.family, a.location_name, a.building_name) == (
            "chg1",
            "ebike_charger",
            "Shed 1",
            "Bldg 1",
        )

        second = _raise(conn, ids, at=T0 + timedelta(seconds=30), severity="critical", details={"temp_c": 90})
        conn.commit()
        assert second.action == "updated"
        assert second.alarm.id == a.id
        assert second.alarm.occurrences == 2
        assert second.alarm.last_at == T0 + timedelta(seconds=30)
        assert second.alarm.first_at == T0
        assert second.alarm.severity == "critical"  # the worse severity wins
        assert second.alarm.details == {"temp_c": 90}
        # a lower severity later does not downgrade it
        assert _raise(conn, ids, severity="warning").alarm.severity == "critical"
        conn.commit()

        ack = alarms.acknowledge(conn, a.id, actor="op:li", comment="on my way")
        conn.commit()
        assert ack is not None and ack.alarm.acknowledged and ack.alarm.acknowledged_by == "op:li"
        assert alarms.acknowledge(conn, a.id, actor="op:li") is None  # idempotent
        alarms.comment(conn, a.id, actor="op:li", text="replaced the fan")
        cleared = alarms.clear(conn, a.id, actor="op:li", comment="fixed")
        conn.commit()
        assert cleared is not None
        assert cleared.alarm.status == "cleared" and cleared.alarm.cleared_by == "op:li"
        assert alarms.clear(conn, a.id, actor="op:li") is None  # nothing open any more

        # a new trigger after the clear opens a new alarm
        again = _raise(conn, ids, at=T0 + timedelta(hours=1))
        conn.commit()
        assert again.action == "raised" and again.alarm.id != a.id

        steps = alarms.history(conn, a.id)
        assert [s.action for s in steps] == [
            "raised",
            "updated",
            "updated",
            "acknowledged",
            "commented",
            "cleared",
        ]
        assert steps[3].actor == "op:li" and steps[3].comment == "on my way"
        assert steps[4].comment == "replaced the fan"

        notified = [int(n.payload) for n in listener.notifies(timeout=1.0, stop_after=7)]
        all_ids = [s.id for s in steps] + [again.transition.id]
        assert sorted(notified) == sorted(all_ids)
        event = alarms.get_transition(conn, notified[0])
        assert event is not None and event.alarm.id == a.id and event.transition.action == "raised"
        resumed = alarms.transitions_after(conn, steps[2].id)
        assert [e.transition.id for e in resumed] == [s.id for s in steps[3:]] + [again.transition.id]
        assert alarms.transitions_after(conn, 0, community_ids=[ids["community"] + 99]) == []


def test_clear_by_device_and_type_and_unacknowledged_clear(seeded: tuple[str, dict[str, int]]) -> None:
    url, ids = seeded
    with connect(url) as conn:
        raised = _raise(conn, ids, device="smk1", type="fire_alarm", severity="critical", source="device")
        cleared = alarms.clear(conn, device_id=ids["smk1"], type="fire_alarm", actor="engine", at=T0)
        conn.commit()
        assert cleared is not None and cleared.alarm.id == raised.alarm.id
        assert cleared.alarm.status == "cleared" and not cleared.alarm.acknowledged
        # a cleared alarm can still be acknowledged afterwards
        late_ack = alarms.acknowledge(conn, raised.alarm.id, actor="op:wang")
        assert late_ack is not None and late_ack.alarm.acknowledged
        assert alarms.clear(conn, device_id=ids["smk1"], type="fire_alarm", actor="engine") is None
        with pytest.raises(alarms.AlarmNotFound):
            alarms.clear(conn, 999_999, actor="x")
        with pytest.raises(alarms.AlarmNotFound):
            alarms.acknowledge(conn, 999_999, actor="x")
        with pytest.raises(InputError):
            _raise(conn, ids, severity="apocalyptic")
        with pytest.raises(InputError):
            _raise(conn, ids, at=datetime(2026, 1, 1))  # noqa: DTZ001 - naive on purpose


def test_list_filters_ordering_and_cursor(seeded: tuple[str, dict[str, int]]) -> None:
    url, ids = seeded
    with connect(url) as conn:
        severities = ["warning", "critical", "minor", "major", "critical"]
        for i, sev in enumerate(severities):
            _raise(conn, ids, type=f"t{i}", severity=sev, at=T0 + timedelta(minutes=i))
        _raise(conn, ids, device="smk1", type="fire_alarm", severity="critical", at=T0)
        alarms.clear(conn, device_id=ids["chg1"], type="t0", actor="engine")
        conn.commit()

        worst = alarms.list_alarms(conn, order="worst", limit=100).items
        assert [a.severity for a in worst] == [
            "critical",
            "critical",
            "critical",
            "major",
            "minor",
            "warning",
        ]
        # same severity: newest last_at first
        assert [a.type for a in worst[:3]] == ["t4", "t1", "fire_alarm"]

        pages: list[str] = []
        cursor = None
        while True:
            page = alarms.list_alarms(conn, order="worst", cursor=cursor, limit=2)
            pages.extend(a.type for a in page.items)
            cursor = page.next_cursor
            if cursor is None:
                break
        assert pages == [a.type for a in worst]

        recent = alarms.list_alarms(conn, limit=4)
        assert [a.type for a in recent.items] == ["t4", "t3", "t2", "t1"]
        rest = alarms.list_alarms(conn, cursor=recent.next_cursor, limit=4)
        assert [a.type for a in rest.items] == ["fire_alarm", "t0"] and rest.next_cursor is None

        f = alarms.AlarmFilter
        assert {a.type for a in alarms.list_alarms(conn, f(family="smoke_alarm")).items} == {"fire_alarm"}
        assert len(alarms.list_alarms(conn, f(building_id=ids["building"])).items) == 5
        assert len(alarms.list_alarms(conn, f(status="active")).items) == 5
        assert len(alarms.list_alarms(conn, f(severities=["critical"], status="active")).items) == 3
        assert len(alarms.list_alarms(conn, f(community_ids=[ids["community"] + 1])).items) == 0
        assert [a.type for a in alarms.list_alarms(conn, f(since=T0 + timedelta(minutes=3))).items] == [
            "t4",
            "t3",
        ]
        assert len(alarms.list_alarms(conn, f(until=T0 + timedelta(seconds=1))).items) == 2
        assert len(alarms.list_alarms(conn, f(types=["t1", "t2"], acknowledged=False)).items) == 2
        with pytest.raises(alarms.InvalidCursor):
            alarms.list_alarms(conn, cursor="garbage")
        with pytest.raises(alarms.InvalidCursor):
            alarms.list_alarms(conn, order="worst", cursor=recent.next_cursor)


def test_concurrent_duplicate_triggers_make_one_open_alarm(seeded: tuple[str, dict[str, int]]) -> None:
    """Two connections (two server backends) race to raise the same (device, type) many times."""
    url, ids = seeded
    rounds = 40
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []
    changes: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        try:
            with connect(url) as conn:
                for i in range(rounds):
                    barrier.wait(timeout=10)
                    change = _raise(
                        conn, ids, type="charger_leakage", severity="critical", at=T0 + timedelta(seconds=i)
                    )
                    conn.commit()
                    with lock:
                        changes.append(change.action)
                    if i % 10 == 9:  # clear now and then: the next race must again open exactly one
                        barrier.wait(timeout=10)
                        alarms.clear(conn, device_id=ids["chg1"], type="charger_leakage", actor="engine")
                        conn.commit()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert changes.count("raised") == 4  # one per cycle of 10 rounds, never two
    with connect(url) as conn:
        rows = conn.execute(
            "SELECT status, occurrences FROM alarms WHERE type = 'charger_leakage' ORDER BY id"
        ).fetchall()
    assert [r[0] for r in rows] == ["cleared"] * 4
    assert sum(r[1] for r in rows) == 2 * rounds


def test_transitions_become_visible_in_id_order(seeded: tuple[str, dict[str, int]]) -> None:
    """A writer must wait while an earlier transition is uncommitted, so a stream resuming after id N
    can never miss a smaller id that commits later."""
    url, ids = seeded
    slow = connect(url)
    try:
        slow.execute("SELECT 1")  # an open transaction, so the writer's block becomes a savepoint
        first = _raise(slow, ids)  # transition id allocated, not committed
        done: list[Any] = []

        def second_writer() -> None:
            with connect(url, autocommit=True) as conn:
                done.append(_raise(conn, ids, device="smk1", type="fire_alarm", severity="critical"))

        thread = threading.Thread(target=second_writer)
        thread.start()
        with connect(url, autocommit=True) as probe:
            deadline = datetime.now(UTC) + timedelta(seconds=10)
            waiting = 0
            while datetime.now(UTC) < deadline and not waiting:
                row = probe.execute(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                ).fetchone()
                waiting = row[0] if row else 0
            assert waiting == 1, "the second writer did not wait for the uncommitted transition"
            assert not done
        slow.commit()
        thread.join(10)
        assert done
        assert first.transition.id < done[0].transition.id
    finally:
        slow.close()
