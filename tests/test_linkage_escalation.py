"""Escalation on the real database against a real signed-webhook receiver: incidents from alarms,
the frozen chain, ack/clear stopping every pending step (queued ones included), repeats that really
repeat, no re-page later, retries with back-off, a crash between "provider accepted" and "recorded",
linked groups, and drills.

The worker is driven round by round (`step()`) on an injected clock, so every timing is exact and
nothing waits on wall time; deliveries run inline when the worker's sender pool is not started."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from linkage_support import WebhookReceiver, seed, wait_for, webhook_receiver

from alerts.escalation.channels.http import WebhookChannel
from alerts.escalation.config import LinkageSettings
from alerts.escalation.process import WorkerProcess
from alerts.escalation.worker import EscalationWorker, start_drill
from storage import alarms
from storage import escalation as store
from storage.db import connect

T0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)  # 10:00 in Asia/Shanghai


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


_WORKERS: list[EscalationWorker] = []


@pytest.fixture
def env(db_url: str) -> Iterator[tuple[str, dict[str, int], WebhookReceiver]]:
    ids = seed(db_url)
    with webhook_receiver() as receiver:
        yield db_url, ids, receiver
    while _WORKERS:
        _WORKERS.pop().close()


def _endpoint(url: str, ids: dict[str, int], receiver: WebhookReceiver, name: str = "96333") -> int:
    with connect(url, autocommit=True) as conn:
        return store.create_endpoint(
            conn,
            community_id=ids["community"],
            name=name,
            kind="webhook",
            config={"url": receiver.url},
            secret=receiver.secret,
        ).id


def _chain(
    url: str, ids: dict[str, int], definition: dict[str, Any], *, types: list[str] | None = None
) -> int:
    with connect(url, autocommit=True) as conn:
        chain = store.save_chain(conn, community_id=ids["community"], name="fire", definition=definition)
        store.create_policy(
            conn,
            community_id=ids["community"],
            name="p",
            chain_id=chain.id,
            alarm_types=types or ["fire_alarm"],
        )
        return chain.id


def _worker(url: str, clock: Clock, **kw: Any) -> EscalationWorker:
    worker = EscalationWorker(
        url,
        LinkageSettings(**kw),
        {"webhook": WebhookChannel(timeout_s=5)},
        clock=clock,
        worker_id=f"w{len(_WORKERS) + 1}",
    )
    _WORKERS.append(worker)
    return worker


def _fire(
    url: str, ids: dict[str, int], at: datetime = T0, device: str = "smk1", type: str = "fire_alarm"
) -> int:
    with connect(url, autocommit=True) as conn:
        change = alarms.raise_or_update(
            conn,
            community_id=ids["community"],
            device_id=ids[device],
            type=type,
            severity="critical",
            at=at,
            source="device",
        )
        return change.alarm.id


def _steps(ep: int, *delays: float) -> list[dict[str, Any]]:
    return [
        {"name": f"s{i}", "delay_s": d, "targets": [{"kind": "endpoint", "ref": ep}], "channels": ["webhook"]}
        for i, d in enumerate(delays)
    ]


def _outbox(url: str, incident_id: int) -> list[store.Delivery]:
    with connect(url, autocommit=True) as conn:
        return store.outbox_of(conn, incident_id)


def _incident(url: str, alarm_id: int) -> store.IncidentRow:
    with connect(url, autocommit=True) as conn:
        inc = store.incident_of_alarm(conn, alarm_id)
    assert inc is not None
    return inc


def test_alarm_starts_an_incident_and_the_first_step_is_delivered_signed(env: Any) -> None:
    url, ids, receiver = env
    ep = _endpoint(url, ids, receiver)
    _chain(
        url,
        ids,
        {
            "steps": [
                {"delay_s": 0, "targets": [{"kind": "console"}], "channels": ["console"]},
                *_steps(ep, 0),
            ]
        },
    )
    clock = Clock(T0)
    worker = _worker(url, clock)
    alarm_id = _fire(url, ids)
    worker.step()
    inc = _incident(url, alarm_id)
    assert receiver.keys() == [f"{inc.id}:0:1:endpoint:{ep}:webhook"]
    body = receiver.received[0]
    assert body["alarm_id"] == alarm_id and body["drill"] is False and "火灾报警" in body["text"]
    assert body["summary"] == "1号楼 3层"
    statuses = {(r.channel, r.status) for r in _outbox(url, inc.id)}
    assert statuses == {("console", "delivered"), ("webhook", "delivered")}
    with connect(url, autocommit=True) as conn:
        kinds = [a.kind for a in store.audit_of(conn, inc.id)]
        notified = [t for t in alarms.history(conn, alarm_id) if t.action == "notified"]
    assert kinds[:2] == ["started", "step"] and kinds.count("attempt") == 2 and kinds.count("outcome") == 2
    assert {t.details["channel"] for t in notified} == {"console", "webhook"}
    assert inc.state == "exhausted" and inc.first_attempt_at == T0  # one loop, nobody acknowledged


def test_ack_stops_every_pending_step_including_queued_ones(env: Any) -> None:
    """Grafana OnCall #4654/#4760: notifications continued after an ack. Here step 1 is already in
    the outbox (queued) when the alarm is acknowledged through the alarm API; it is never sent, and
    neither are steps 2, the second loop, or anything a day later."""
    url, ids, receiver = env
    ep = _endpoint(url, ids, receiver)
    _chain(url, ids, {"steps": _steps(ep, 0, 60, 60), "loops": 2})
    clock = Clock(T0)
    worker = _worker(url, clock)
    alarm_id = _fire(url, ids)
    worker.step()
    assert len(receiver.keys()) == 1
    clock.advance(60)
    worker._materialise(worker._db(), clock())  # step 1 queued, not yet claimed
    inc = _incident(url, alarm_id)
    assert [r.status for r in _outbox(url, inc.id)] == ["delivered", "pending"]
    with connect(url, autocommit=True) as conn:
        alarms.acknowledge(conn, alarm_id, actor="user:duty")
    for _ in range(3):
        worker.step()
        clock.advance(86_400)
    assert len(receiver.keys()) == 1
    rows = _outbox(url, inc.id)
    assert [r.status for r in rows] == ["delivered", "cancelled"]
    inc = _incident(url, alarm_id)
    assert (
        inc.state == "acknowledged" and inc.next_step_at is None and inc.ended_by in ("user:duty", "linkage")
    )


def test_clear_stops_the_incident(env: Any) -> None:
    url, ids, receiver = env
    ep = _endpoint(url, ids, receiver)
    _chain(url, ids, {"steps": _steps(ep, 0, 30)})
    clock = Clock(T0)
    worker = _worker(url, clock)
    alarm_id = _fire(url, ids)
    worker.step()
    with connect(url, autocommit=True) as conn:
        alarms.clear(conn, alarm_id, actor="engine")
    clock.advance(30)
    worker.step()
    assert len(receiver.keys()) == 1
    assert _incident(url, alarm_id).state == "cleared"


def test_every_loop_repeats_until_reached_then_exhausted_and_never_again(env: Any) -> None:
    """OnCall #2622 / ThingsBoard #12501 (no repeat) and OnCall #3111 (a re-page months later)."""
    url, ids, receiver = env
    ep = _endpoint(url, ids, receiver)
    _chain(url, ids, {"steps": _steps(ep, 0, 10), "loops": 3, "repeat_delay_s": 20})
    clock = Clock(T0)
    worker = _worker(url, clock)
    alarm_id = _fire(url, ids)
    sent_at: list[float] = []
    for _ in range(16):
        before = len(receiver.keys())
        worker.step()
        sent_at += [(clock() - T0).total_seconds()] * (len(receiver.keys()) - before)
        clock.advance(5)
    inc = _incident(url, alarm_id)
    assert receiver.keys() == [
        f"{inc.id}:{loop}:{s}:endpoint:{ep}:webhook" for loop in range(3) for s in range(2)
    ]
    assert sent_at == [0, 10, 30, 40, 60, 70]
    assert inc.state == "exhausted"
    # months later the alarm occurs again (an 'updated' transition): no second incident, no page
    clock.advance(90 * 86_400)
    with connect(url, autocommit=True) as conn:
        alarms.raise_or_update(
            conn,
            community_id=ids["community"],
            device_id=ids["smk1"],
            type="fire_alarm",
            severity="critical",
            at=clock(),
            source="device",
        )
    worker.step()
    assert len(receiver.keys()) == 6
    with connect(url, autocommit=True) as conn:
        assert len(store.list_incidents(conn, None)) == 1


def test_editing_the_chain_never_changes_a_running_incident(env: Any) -> None:
    url, ids, receiver = env
    ep = _endpoint(url, ids, receiver)
    chain_id = _chain(url, ids, {"steps": _steps(ep, 0, 10)})
    clock = Clock(T0)
    worker = _worker(url, clock)
    alarm_id = _fire(url, ids)
    worker.step()
    with connect(url, autocommit=True) as conn:
        store.save_chain(
            conn,
            community_id=ids["community"],
            name="fire",
            definition={"steps": _steps(ep, 0)},
            chain_id=chain_id,
        )
    clock.advance(10)
    worker.step()
    assert len(receiver.keys()) == 2  # the frozen chain still had step 1
    assert len(_incident(url, alarm_id).chain["steps"]) == 2


def test_failed_delivery_is_retried_with_backoff_under_the_same_key(env: Any) -> None:
    url, ids, receiver = env
    receiver.fail_with = [500, 503]
    ep = _endpoint(url, ids, receiver)
    _chain(url, ids, {"steps": _steps(ep, 0)})
    clock = Clock(T0)
    worker = _worker(url, clock)
    alarm_id = _fire(url, ids)
    worker.step()  # attempt 1: 500 → retry in 1 s
    worker.step()  # nothing due yet
    assert len(receiver.raw) == 1
    clock.advance(1)
    worker.step()  # attempt 2: 503 → retry in 2 s
    clock.advance(1)
    worker.step()
    assert len(receiver.raw) == 2
    clock.advance(1)
    worker.step()  # attempt 3: delivered
    inc = _incident(url, alarm_id)
    [row] = _outbox(url, inc.id)
    assert row.status == "delivered" and row.attempts == 3
    keys = {h["Idempotency-Key"] for h, _ in receiver.raw}
    assert keys == {row.idem_key} and len(receiver.received) == 1
    with connect(url, autocommit=True) as conn:
        assert [a.kind for a in store.audit_of(conn, inc.id)].count("retry") == 2


def test_bad_signature_is_refused_and_not_retried(env: Any) -> None:
    url, ids, receiver = env
    with connect(url, autocommit=True) as conn:
        ep = store.create_endpoint(
            conn,
            community_id=ids["community"],
            name="x",
            kind="webhook",
            config={"url": receiver.url},
            secret="wrong",
        ).id
    _chain(url, ids, {"steps": _steps(ep, 0)})
    clock = Clock(T0)
    worker = _worker(url, clock)
    alarm_id = _fire(url, ids)
    worker.step()
    [row] = _outbox(url, _incident(url, alarm_id).id)
    assert row.status == "failed" and row.attempts == 1 and "401" in row.outcome
    assert receiver.refused == ["bad signature"] and receiver.received == []
    # a captured request replayed outside the window is refused too
    headers, body = receiver.raw[0]
    receiver.secret, receiver.window_s = "wrong", 0.0
    headers = {**headers, "X-Yiju-Timestamp": str(int(T0.timestamp()))}
    assert (
        receiver.handle(headers, body)[0] == 401
        and receiver.refused[-1] == "timestamp outside the replay window"
    )


def test_crash_between_provider_accepted_and_recorded_never_delivers_twice(env: Any) -> None:
    """Worker A claims and the receiver accepts, then A dies before recording. After the lease,
    worker B resends under the same Idempotency-Key: the receiver recognises it (409 → delivered),
    so the platform got the alarm exactly once."""
    url, ids, receiver = env
    ep = _endpoint(url, ids, receiver)
    _chain(url, ids, {"steps": _steps(ep, 0)})
    clock = Clock(T0)
    a = _worker(url, clock, lease_s=60)
    _fire(url, ids)
    conn = a._db()
    a._feed(conn, clock())
    a._materialise(conn, clock())
    claimed = store.claim(
        conn, worker="w-dead", now=clock(), limit=10, rate_limits={}, rate_limited_until=lambda *x: None
    )
    [c] = claimed.claimed
    WebhookChannel().send(a._attempt(conn, c))  # accepted by the provider …  then the process dies
    assert len(receiver.received) == 1
    b = _worker(url, clock, lease_s=60)
    b.step()
    assert len(receiver.raw) == 1  # lease not expired: nobody touches the row
    clock.advance(61)
    b._last_recover = 0
    b.step()
    [row] = _outbox(url, c.incident_id)
    assert row.status == "delivered" and row.attempts == 2
    assert len(receiver.received) == 1 and receiver.duplicates == [c.idem_key]
    assert (
        a.deliver is not None
        and store.record_outcome(conn, c.id, worker="w-dead", status="delivered", outcome="late") is False
    )  # fenced


def test_fire_and_its_linkage_failure_are_one_incident(env: Any) -> None:
    url, ids, receiver = env
    ep = _endpoint(url, ids, receiver)
    _chain(url, ids, {"steps": _steps(ep, 0, 60)}, types=["fire_alarm", "linkage_failed"])
    clock = Clock(T0)
    worker = _worker(url, clock)
    fire = _fire(url, ids)
    worker.step()
    door = _fire(url, ids, device="door1", type="linkage_failed")
    worker.step()
    with connect(url, autocommit=True) as conn:
        incidents = store.list_incidents(conn, None)
        assert len(incidents) == 1 and incidents[0].alarm_id == fire
        assert store.incidents_of_alarm(conn, door, primary_only=False) == [incidents[0].id]
        # acknowledging the linked door alarm acknowledges the group's incident
        alarms.acknowledge(conn, door, actor="user:duty")
    clock.advance(60)
    worker.step()
    assert len(receiver.keys()) == 1 and _incident(url, fire).state == "acknowledged"


def test_a_critical_alarm_without_policy_uses_the_default_chain(env: Any) -> None:
    url, ids, _ = env
    clock = Clock(T0)
    worker = _worker(url, clock)
    alarm_id = _fire(url, ids, device="gas1", type="gas_high_alarm")
    worker.step()
    inc = _incident(url, alarm_id)
    assert inc.policy_id is None and inc.group_key == f"gas:d{ids['gas1']}"
    assert [r.channel for r in _outbox(url, inc.id)] == ["console"]
    # a minor alarm without a policy starts nothing
    with connect(url, autocommit=True) as conn:
        minor = alarms.raise_or_update(
            conn,
            community_id=ids["community"],
            device_id=ids["smk1"],
            type="low_battery",
            severity="warning",
            at=T0,
        ).alarm.id
    worker.step()
    with connect(url, autocommit=True) as conn:
        assert store.incident_of_alarm(conn, minor) is None


def test_drill_is_marked_and_acknowledged_through_the_incident(env: Any) -> None:
    url, ids, receiver = env
    ep = _endpoint(url, ids, receiver)
    chain_id = _chain(url, ids, {"steps": _steps(ep, 0, 30)})
    clock = Clock(T0)
    worker = _worker(url, clock)
    with connect(url, autocommit=True) as conn:
        inc = start_drill(
            conn, community_id=ids["community"], chain_id=chain_id, actor="user:admin", now=clock()
        )
    worker.step()
    assert receiver.received[0]["drill"] is True and receiver.received[0]["text"].startswith("【演练】")
    with connect(url, autocommit=True) as conn:
        assert store.acknowledge_incident(conn, inc.id, actor="user:duty", via="api") is True
        assert store.acknowledge_incident(conn, inc.id, actor="user:duty", via="api") is False
    clock.advance(30)
    worker.step()
    assert len(receiver.keys()) == 1


def test_worker_in_its_own_process_delivers_and_stops(env: Any, tmp_path: Any) -> None:
    """`linkage.own_process`: the same worker in a spawned child, owned and stopped by the parent."""
    url, ids, receiver = env
    ep = _endpoint(url, ids, receiver)
    _chain(url, ids, {"steps": _steps(ep, 0)})
    proc = WorkerProcess(url, LinkageSettings(), tmp_path / "prompts")
    proc.start()
    try:
        assert proc.alive
        _fire(url, ids, at=datetime.now(UTC))
        wait_for(receiver.keys, 30, "the child worker's webhook")
    finally:
        proc.stop()
    assert not proc.alive and len(receiver.keys()) == 1
