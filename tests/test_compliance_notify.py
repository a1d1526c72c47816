"""`yiju_compliance` (migrations 0031, 0032) is sent after a statement that changed what a compliance
summary reads, and only then: each notification drops every kept alarm page and summary of every
community in every API process (api/compliance/pages.py), so a redelivered finding that the dedup
index skips must cost nothing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import psycopg
from points_support import seed_device

from devices.alarms import Check, Finding
from storage.findings import FindingRow, insert_findings


def test_a_new_finding_notifies_and_a_redelivered_one_does_not(
    make_db: Callable[[str | None], str],
) -> None:
    url = make_db(None)
    with psycopg.connect(url, autocommit=True) as conn, psycopg.connect(url, autocommit=True) as listen:
        device = seed_device(conn, "chg-1", "ebike_charger")
        row = conn.execute("SELECT community_id FROM devices WHERE id = %s", (device,)).fetchone()
        assert row is not None
        finding = Finding(
            Check.AUTO_CUTOFF, "over_temperature", True, datetime.now(UTC), None, 60.0, 20.0, 1, {}
        )
        stored = FindingRow(row[0], device, finding, "dedup-1")
        listen.execute("LISTEN yiju_compliance")
        with conn.transaction():
            assert insert_findings(conn, [stored]) == 1
        heard = {(n.channel, n.payload) for n in listen.notifies(timeout=2, stop_after=1)}
        assert ("yiju_compliance", "compliance_findings") in heard, heard
        for _ in listen.notifies(timeout=0.5):  # the pre-aggregates' own notifications
            pass
        with conn.transaction():
            assert insert_findings(conn, [stored]) == 0  # skipped: nothing changed
        quiet = [(n.channel, n.payload) for n in listen.notifies(timeout=2, stop_after=1)]
        assert quiet == [], quiet
        conn.execute("TRUNCATE compliance_span")
        heard = {(n.channel, n.payload) for n in listen.notifies(timeout=2, stop_after=1)}
        assert heard == {("yiju_compliance", "compliance_span")}, heard
