"""The alarm pages the API keeps (api/alarms/pages.py) are never served from before a change: an
acknowledgement through the API shows on the very next board; a change another process commits (the
engine raising, acknowledging, clearing; a device renamed in the registry) shows as soon as its
notification has reached the server; each caller gets only the pages of its own scope; nothing is
kept while the notification listener is away."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from starlette.types import Message, Receive, Scope, Send
from test_api_stream import _open
from test_api_support import LiveServer, World, live, wait_for, world

from api.alarms.pages import MAX_AGE_S, MAX_PAGES, AlarmPages
from api.middleware import AfterWrites
from storage import alarms
from storage.db import connect

__all__ = ["live", "world"]

BOARD = "/api/v1/alarms?board=true&order=worst&limit=50"
DEADLINE_S = 10.0


@pytest.fixture
def client(live: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.base, timeout=httpx.Timeout(10.0, read=30.0)) as c:
        yield c


def _board(client: httpx.Client, world: World, who: str) -> dict[int, dict[str, Any]]:
    r = client.get(BOARD, headers=world.auth(who))
    assert r.status_code == 200, r.text
    return {a["id"]: a for a in r.json()["items"]}


def _kept(live: LiveServer) -> AlarmPages:
    pages: AlarmPages = live.app.state.alarm_pages
    return pages


def test_an_acknowledgement_through_the_api_shows_on_the_next_board(
    live: LiveServer, world: World, client: httpx.Client
) -> None:
    wait_for(live.app.state.streams.listener.ready.is_set, DEADLINE_S, "the notification listener")
    alarm_id = world.ids["alarm_a"]
    assert _board(client, world, "operator_a")[alarm_id]["acknowledged"] is False
    # served again from what was kept: the same page, without a query
    assert len(_kept(live)) == 1
    assert _board(client, world, "operator_a")[alarm_id]["acknowledged"] is False
    detail = f"/api/v1/alarms/{alarm_id}"
    for _ in range(2):  # the alarm's detail is kept too
        r = client.get(detail, headers=world.auth("operator_a"))
        assert r.status_code == 200 and r.json()["acknowledged"] is False
    assert len(_kept(live)) == 2
    r = client.post(f"/api/v1/alarms/{alarm_id}/acknowledge", json={}, headers=world.auth("operator_a"))
    assert r.status_code == 200, r.text
    # no wait for the notification: the write's own response dropped the page first
    got = _board(client, world, "operator_a")[alarm_id]
    assert got["acknowledged"] is True and got["acknowledged_by"] == "user:operator_a"
    got = client.get(detail, headers=world.auth("operator_a")).json()
    assert got["acknowledged"] is True and [t["action"] for t in got["history"]][-1] == "acknowledged"
    assert got["history"][-1]["actor_name"] == "operator_a"


def _fault(conn: Any, world: World) -> alarms.AlarmChange:
    """What the engine does when A's smoke alarm reports a fault (a repeat updates the open alarm)."""
    return alarms.raise_or_update(
        conn,
        community_id=world.ids["comm_a"],
        device_id=world.ids["smk-a1"],
        type="smoke_detector_fault",
        severity="minor",
        at=datetime.now(UTC),
    )


def test_changes_by_other_processes_show_once_notified(
    live: LiveServer, world: World, client: httpx.Client
) -> None:
    wait_for(live.app.state.streams.listener.ready.is_set, DEADLINE_S, "the notification listener")
    stream = _open(client, world, "admin")
    stream.next("ready")
    with connect(world.url, autocommit=True) as conn:
        before = _board(client, world, "operator_a")
        _board(client, world, "operator_a")  # kept
        # the engine raises an alarm: once the stream (same process, same listener) has the event,
        # the board has it too
        raised = _fault(conn, world)
        assert stream.next()["event_id"] == raised.transition.id
        board = _board(client, world, "operator_a")
        assert set(board) == set(before) | {raised.alarm.id}
        # a repeat only moves occurrences and last_at: a change all the same
        _board(client, world, "operator_a")
        again = _fault(conn, world)
        assert stream.next()["event_id"] == again.transition.id
        assert _board(client, world, "operator_a")[raised.alarm.id]["occurrences"] == 2
        # acknowledged and cleared elsewhere
        acked = alarms.acknowledge(conn, raised.alarm.id, actor="user:other")
        assert acked is not None
        assert stream.next()["event_id"] == acked.transition.id
        assert _board(client, world, "operator_a")[raised.alarm.id]["acknowledged"] is True
        cleared = alarms.clear(conn, raised.alarm.id, actor="engine")
        assert cleared is not None
        assert stream.next()["event_id"] == cleared.transition.id
        assert raised.alarm.id not in _board(client, world, "operator_a")  # acknowledged and cleared
        # a registry change (notified on yiju_registry, no stream event): the device's new uid
        generation = _kept(live).generation()
        conn.execute("UPDATE devices SET uid = 'smk-a1-renamed' WHERE id = %s", (world.ids["smk-a1"],))
        wait_for(lambda: _kept(live).generation() > generation, DEADLINE_S, "the registry notification")
        uids = {a["device_uid"] for a in _board(client, world, "operator_a").values()}
        assert "smk-a1-renamed" in uids and "smk-a1" not in uids
    stream.close()


def test_each_scope_gets_its_own_pages(live: LiveServer, world: World, client: httpx.Client) -> None:
    wait_for(live.app.state.streams.listener.ready.is_set, DEADLINE_S, "the notification listener")
    for _ in range(2):  # the second round is served from what was kept
        a = _board(client, world, "operator_a")
        b = _board(client, world, "manager_b")
        admin = _board(client, world, "admin")
        assert world.ids["alarm_a"] in a and world.ids["alarm_b"] not in a
        assert world.ids["alarm_b"] in b and world.ids["alarm_a"] not in b
        assert {world.ids["alarm_a"], world.ids["alarm_b"]} <= set(admin)
        for who in ("admin", "manager_b"):
            r = client.get(f"/api/v1/alarms/{world.ids['alarm_b']}", headers=world.auth(who))
            assert r.status_code == 200 and r.json()["community_id"] == world.ids["comm_b"]
        # what admin and B's manager were given is not operator A's to see
        r = client.get(f"/api/v1/alarms/{world.ids['alarm_b']}", headers=world.auth("operator_a"))
        assert r.status_code == 404
    assert len(_kept(live)) == 5  # three boards, two details: no 404 kept
    # another community asked for by name: 404, as without pages, never the page of another caller
    r = client.get(f"{BOARD}&community_id={world.ids['comm_b']}", headers=world.auth("operator_a"))
    assert r.status_code == 404


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_page_read_across_a_change_or_without_the_listener_is_not_kept() -> None:
    clock = _Clock()
    pages = AlarmPages(clock=clock)
    listening = [False]
    pages.listening = lambda: listening[0]
    # no listener: nothing kept, nothing served
    pages.put("k", pages.generation(), b"old", clock())
    assert pages.get("k") is None and len(pages) == 0
    listening[0] = True
    # a change while the page's query ran: that page may show the state before it
    generation = pages.generation()
    pages.changed()
    pages.put("k", generation, b"before the change", clock())
    assert pages.get("k") is None
    pages.put("k", pages.generation(), b"after", clock())
    assert pages.get("k") == b"after" and pages.get("other") is None
    # the listener goes away: what was kept is not served meanwhile
    listening[0] = False
    assert pages.get("k") is None
    listening[0] = True
    # too old: a place renamed by another process notifies nobody
    clock.now += MAX_AGE_S + 0.1
    assert pages.get("k") is None
    # bounded: the oldest kept goes first
    for i in range(MAX_PAGES + 1):
        pages.put(i, pages.generation(), b"page", clock())
    assert len(pages) == MAX_PAGES and pages.get(0) is None and pages.get(MAX_PAGES) == b"page"


def test_nothing_is_served_or_kept_while_a_write_of_this_process_is_in_flight() -> None:
    """Between a write's commit and its response (api/middleware.AfterWrites) a read must not get
    what was kept from before the commit, nor keep what it read before it."""
    clock = _Clock()
    pages = AlarmPages(clock=clock)
    pages.listening = lambda: True
    pages.put("board", pages.generation(), b"before the ack", clock())
    assert pages.get("board") == b"before the ack"
    generation = pages.generation()  # a read starts just before the write arrives
    pages.write_begins()
    assert pages.get("board") is None  # the ack may have committed already
    pages.put("other", pages.generation(), b"read during the write", clock())
    assert pages.get("other") is None and len(pages) == 1
    pages.write_ends()
    pages.put("board", generation, b"read before the commit", clock())
    assert pages.get("board") is None and len(pages) == 0  # neither the old page nor the late read
    pages.put("board", pages.generation(), b"after the ack", clock())
    assert pages.get("board") == b"after the ack"
    # two writes overlapping: keeping resumes only when both are answered
    pages.write_begins()
    pages.write_begins()
    pages.write_ends()
    assert pages.get("board") is None
    pages.write_ends()
    pages.put("board", pages.generation(), b"after both", clock())
    assert pages.get("board") == b"after both"


def test_after_writes_ends_each_write_once_after_its_commit_even_when_it_fails() -> None:
    events: list[str] = []

    async def route(scope: Scope, receive: Receive, send: Send) -> None:
        events.append("commit")  # api/deps.py commits before the response starts
        if scope["path"].endswith("/fails"):
            raise RuntimeError("half-way")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        events.append("body")
        await send({"type": "http.response.body", "body": b""})

    async def sent(message: Message) -> None:
        events.append(f"sent {message['type']}")

    async def nothing() -> Message:
        return {"type": "http.request", "body": b""}

    class Recording(AlarmPages):
        def write_begins(self) -> None:
            events.append("begins")
            super().write_begins()

        def write_ends(self) -> None:
            events.append("ends")
            super().write_ends()

    pages = Recording()
    mw = AfterWrites(route, kept=[pages])

    async def call(method: str, path: str) -> None:
        await mw({"type": "http", "method": method, "path": path}, nothing, sent)

    asyncio.run(call("POST", "/api/alarms/1/ack"))
    assert events == [
        "begins",
        "commit",
        "ends",
        "sent http.response.start",
        "body",
        "sent http.response.body",
    ]
    events.clear()
    with pytest.raises(RuntimeError):
        asyncio.run(call("POST", "/api/alarms/1/fails"))
    assert events == ["begins", "commit", "ends"]
    pages.listening = lambda: True
    pages.put("board", pages.generation(), b"page", pages.clock())
    assert pages.get("board") is not None  # balanced: keeping works again after both writes
    events.clear()
    asyncio.run(call("GET", "/api/alarms"))
    assert "begins" not in events and "ends" not in events
