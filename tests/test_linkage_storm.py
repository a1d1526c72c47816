"""An alarm storm against two escalation workers at once (two processes' worth of claimers on one
database) and a real webhook receiver: every step is delivered exactly once (ThingsBoard PR #12321:
duplicates when the stop rule fires), and incidents acknowledged while their first step is in flight
never get a later step (Grafana OnCall #4654)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from linkage_support import seed, wait_for, webhook_receiver

from alerts.escalation.channels.http import WebhookChannel
from alerts.escalation.config import LinkageSettings
from alerts.escalation.worker import EscalationWorker
from storage import alarms
from storage import escalation as store
from storage.db import connect

INCIDENTS = 200


def test_storm_two_workers_exactly_once_and_nothing_after_ack(db_url: str) -> None:
    ids = seed(db_url)
    with connect(db_url, autocommit=True) as conn:
        devices = []
        for i in range(INCIDENTS):
            row = conn.execute(
                "INSERT INTO devices (uid, community_id, location_id, family) "
                "VALUES (%s, %s, %s, 'smoke_alarm') "
                "RETURNING id",
                (f"storm{i}", ids["community"], ids["location"]),
            ).fetchone()
            assert row
            devices.append(row[0])
    with webhook_receiver() as receiver:
        with connect(db_url, autocommit=True) as conn:
            ep = store.create_endpoint(
                conn,
                community_id=ids["community"],
                name="hook",
                kind="webhook",
                config={"url": receiver.url},
                secret=receiver.secret,
            ).id
            steps = [
                {"delay_s": d, "targets": [{"kind": "endpoint", "ref": ep}], "channels": ["webhook"]}
                for d in (0, 2)
            ]
            chain = store.save_chain(
                conn, community_id=ids["community"], name="storm", definition={"steps": steps}
            )
            store.create_policy(conn, community_id=ids["community"], name="all", chain_id=chain.id)
        workers = [
            EscalationWorker(
                db_url,
                LinkageSettings(senders=6),
                {"webhook": WebhookChannel(5)},
                worker_id=f"w{n}",
            )
            for n in range(2)
        ]
        for w in workers:
            w.start()
        try:
            alarm_ids: list[int] = []
            with connect(db_url, autocommit=True) as conn:
                for device in devices:  # one alarm per device, each its own incident (no group: door type)
                    alarm_ids.append(
                        alarms.raise_or_update(
                            conn,
                            community_id=ids["community"],
                            device_id=device,
                            type="door_duress",
                            severity="critical",
                            at=datetime.now(UTC),
                        ).alarm.id
                    )
                acked = alarm_ids[::2]
                acked_at: dict[int, datetime] = {}
                for alarm_id in acked:  # while the first steps are being claimed and sent
                    alarms.acknowledge(conn, alarm_id, actor="user:duty")
                    acked_at[alarm_id] = datetime.now(UTC)  # committed (autocommit) before this
            ack_done = time.monotonic()

            def settled() -> bool:
                with connect(db_url, autocommit=True) as conn:
                    row = conn.execute(
                        "SELECT (SELECT count(*) FROM linkage_incidents WHERE state = 'open'), "
                        "(SELECT count(*) FROM linkage_outbox WHERE status IN ('pending', 'sending'))"
                    ).fetchone()
                return row == (0, 0)

            wait_for(settled, 60, "every incident to end")
        finally:
            for w in workers:
                w.stop()
        with connect(db_url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT o.idem_key, o.step, o.status, i.alarm_id, o.claimed_by, o.claimed_at "
                "FROM linkage_outbox o "
                "JOIN linkage_incidents i ON i.id = o.incident_id"
            ).fetchall()
            states = dict(
                conn.execute("SELECT state, count(*) FROM linkage_incidents GROUP BY state").fetchall()
            )
    assert receiver.duplicates == [] and receiver.refused == []
    delivered = sorted(key for key, _, status, *_ in rows if status == "delivered")
    assert sorted(receiver.keys()) == delivered  # every delivered row reached the receiver once
    assert len(set(receiver.keys())) == len(receiver.keys())
    acked_set = set(acked)
    # nothing of an acknowledged incident was claimed after its acknowledgement committed; what was
    # queued and not yet claimed was cancelled
    after_ack = [
        key
        for key, _, _, alarm, _, claimed in rows
        if alarm in acked_set and claimed is not None and claimed > acked_at[alarm]
    ]
    assert after_ack == []
    cancelled = [key for key, _, status, alarm, *_ in rows if alarm in acked_set and status == "cancelled"]
    print(f"storm: {len(receiver.keys())} delivered, {len(cancelled)} cancelled by acknowledgements")
    unacked_steps = {
        (alarm, step)
        for _, step, status, alarm, *_ in rows
        if alarm not in acked_set and status == "delivered"
    }
    assert len(unacked_steps) == 2 * (INCIDENTS - len(acked))  # the others got both steps, once each
    # an alarm acknowledged before the worker read its 'raised' transition needs no incident at all
    assert set(states) <= {"acknowledged", "exhausted"} and states["exhausted"] == INCIDENTS - len(acked)
    assert 0 < states.get("acknowledged", 0) <= len(acked)
    assert {row[4] for row in rows if row[4]} == {"w0", "w1"}  # both workers took part
    assert time.monotonic() - ack_done < 60
