"""The compliance summaries the API keeps (api/compliance/router.py, the rule of api/kept.py) are never
served from before a change: a finding recorded, corrected or purged by another process shows as soon
as its notification (migration 0031) has reached the server, and so does a device renamed in the
registry; a caller who does not see the community gets 404, never the summary kept for another; a
summary is served again only while nothing changed. The kept values' age is raised to a minute for
these tests, so only the notification can end them within the tests' deadline."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from test_api_support import LiveServer, World, live, wait_for, world

from api.alarms.pages import MAX_PAGES, AlarmPages
from api.compliance.pages import MAX_SUMMARY_BYTES, ComplianceSummaries
from storage.db import connect

__all__ = ["live", "world"]

DEADLINE_S = 10.0


@pytest.fixture
def client(live: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.base, timeout=httpx.Timeout(10.0, read=30.0)) as c:
        yield c


def _pages(live: LiveServer) -> ComplianceSummaries:
    pages: ComplianceSummaries = live.app.state.compliance_summaries
    pages.max_age_s = 60.0
    return pages


def _kept_summary(live: LiveServer, client: httpx.Client, world: World) -> dict[str, Any]:
    """The summary once it is served again as kept: two callers get the very same body, the window
    it states too (a summary computed again would state a later one)."""
    _pages(live)

    def twice() -> dict[str, Any] | None:
        first = _summary(client, world, "viewer_a")
        return first if _summary(client, world, "operator_a") == first else None

    kept: dict[str, Any] = wait_for(twice, DEADLINE_S, "a summary kept")
    return kept


def _summary(client: httpx.Client, world: World, who: str) -> dict[str, Any]:
    r = client.get(f"/api/v1/compliance/summary?community_id={world.ids['comm_a']}", headers=world.auth(who))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _totals(summary: dict[str, Any]) -> tuple[int, int]:
    (line,) = summary["by_check"] or [{"total": 0, "failed": 0}]
    return line["total"], line["failed"]


def _record(world: World, *, compliant: bool, at: datetime) -> None:
    """What the engine does when a charger's cutoff is judged (another process, its own commit)."""
    with connect(world.url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO compliance_findings (community_id, device_id, check_name, kind, compliant, "
            "observed_at, deadline_s, measured_s) VALUES (%s, %s, 'auto_cutoff', 'over_temperature', %s, %s, "
            "60, 20)",
            (world.ids["comm_a"], world.ids["chg-a1"], compliant, at),
        )


def test_a_change_by_another_process_shows_once_notified(
    live: LiveServer, world: World, client: httpx.Client
) -> None:
    wait_for(live.app.state.streams.listener.ready.is_set, DEADLINE_S, "the notification listener")
    now = datetime.now(UTC)
    # one finding today (the window's partial day: read from the findings) and one 3 days ago (a
    # whole day: read from the pre-aggregates)
    _record(world, compliant=True, at=now - timedelta(minutes=5))
    _record(world, compliant=False, at=now - timedelta(days=3))
    assert _totals(_kept_summary(live, client, world)) == (2, 1)

    _record(world, compliant=False, at=now - timedelta(minutes=1))
    wait_for(lambda: _totals(_summary(client, world, "viewer_a")) == (3, 2), DEADLINE_S, "the new finding")
    with connect(world.url, autocommit=True) as conn:  # a finding corrected
        conn.execute(
            "UPDATE compliance_findings SET compliant = true WHERE observed_at < %s",
            (now - timedelta(days=1),),
        )
    wait_for(lambda: _totals(_summary(client, world, "viewer_a")) == (3, 1), DEADLINE_S, "the correction")
    with connect(world.url, autocommit=True) as conn:  # the purge of old findings
        conn.execute("DELETE FROM compliance_findings WHERE observed_at < %s", (now - timedelta(days=1),))
    wait_for(lambda: _totals(_summary(client, world, "viewer_a")) == (2, 1), DEADLINE_S, "the purge")
    failing = _summary(client, world, "viewer_a")["failing_devices"]
    assert [d["device_uid"] for d in failing] == ["chg-a1"]
    with connect(world.url, autocommit=True) as conn:  # the registry: another process renames the charger
        conn.execute("UPDATE devices SET uid = 'chg-a1-renamed' WHERE id = %s", (world.ids["chg-a1"],))
    wait_for(
        lambda: (
            [d["device_uid"] for d in _summary(client, world, "viewer_a")["failing_devices"]]
            == ["chg-a1-renamed"]
        ),
        DEADLINE_S,
        "the rename",
    )


def test_a_kept_summary_is_only_served_to_who_sees_the_community(
    live: LiveServer, world: World, client: httpx.Client
) -> None:
    wait_for(live.app.state.streams.listener.ready.is_set, DEADLINE_S, "the notification listener")
    _record(world, compliant=False, at=datetime.now(UTC) - timedelta(minutes=5))
    assert _totals(_kept_summary(live, client, world)) == (1, 1)
    for _ in range(2):  # the caller kept too: the kept summary would be served on the event loop
        r = client.get(
            f"/api/v1/compliance/summary?community_id={world.ids['comm_a']}", headers=world.auth("manager_b")
        )
        assert r.status_code == 404 and r.json()["error"] == "not_found", r.text


def test_the_same_window_in_another_offset_is_answered_in_that_offset(
    live: LiveServer, world: World, client: httpx.Client
) -> None:
    wait_for(live.app.state.streams.listener.ready.is_set, DEADLINE_S, "the notification listener")
    _pages(live)
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(days=10)
    shanghai = at.astimezone(timezone(timedelta(hours=8)))
    path = f"/api/v1/compliance/summary?community_id={world.ids['comm_a']}&since="
    for since in (shanghai, at, shanghai):  # the first is kept; the other offset must not be served it
        text = since.isoformat().replace("+00:00", "Z")
        r = client.get(path + quote(text), headers=world.auth("viewer_a"))
        assert r.status_code == 200, r.text
        assert r.json()["window_start"] == text


def test_windows_a_caller_chooses_are_not_kept_and_push_nothing_out(
    live: LiveServer, world: World, client: httpx.Client
) -> None:
    """A summary is not paginated (every failing device of the community): kept under any window a
    caller asks, one caller varying `since` filled the alarm pages' slots with them and pushed the duty
    room's kept board out. Only the default window is kept, apart from the alarm pages."""
    wait_for(live.app.state.streams.listener.ready.is_set, DEADLINE_S, "the notification listener")
    alarm_pages: AlarmPages = live.app.state.alarm_pages
    alarm_pages.max_age_s = 600.0
    summaries = _pages(live)
    summaries.max_age_s = 600.0
    board = client.get("/api/v1/alarms", headers=world.auth("operator_a"))
    assert board.status_code == 200, board.text
    board_keys = wait_for(lambda: list(alarm_pages._entries), DEADLINE_S, "the board kept")
    _summary(client, world, "viewer_a")  # the default window: kept
    at = datetime.now(UTC) - timedelta(days=10)
    for i in range(MAX_PAGES + 1):
        since = (at + timedelta(microseconds=i)).isoformat().replace("+00:00", "Z")
        r = client.get(
            f"/api/v1/compliance/summary?community_id={world.ids['comm_a']}&since={quote(since)}",
            headers=world.auth("viewer_a"),
        )
        assert r.status_code == 200, r.text
    assert all(k in alarm_pages._entries for k in board_keys), "the board was pushed out"
    assert list(summaries._entries) == [world.ids["comm_a"]]


def test_a_summary_too_large_is_not_kept() -> None:
    summaries = ComplianceSummaries()
    summaries.listening = lambda: True
    summaries.put(1, summaries.generation(), b"x" * MAX_SUMMARY_BYTES, summaries.clock())
    summaries.put(2, summaries.generation(), b"x" * (MAX_SUMMARY_BYTES + 1), summaries.clock())
    assert summaries.get(1) is not None and summaries.get(2) is None
