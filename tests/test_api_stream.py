"""The live alarm stream over a real socket: filtering by community and severity, and resuming after a
dropped connection with every missed event delivered exactly once."""

from __future__ import annotations

import json
import queue
import socket
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from test_api_support import LiveServer, World, live, serve, wait_for, world

from storage import alarms
from storage.db import connect

__all__ = ["live", "world"]

DEADLINE_S = 5.0


@dataclass
class StreamReader:
    """Reads an SSE response in a thread (blocking reads stay off the test's thread)."""

    response: httpx.Response
    events: queue.Queue[dict[str, Any]] = field(default_factory=queue.Queue)

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        current: dict[str, Any] = {}
        try:
            for line in self.response.iter_lines():
                if line == "":
                    if "event" in current:
                        self.events.put(current)
                    current = {}
                elif line.startswith(":"):
                    continue
                else:
                    key, _, value = line.partition(": ")
                    current[key] = value
        except (httpx.HTTPError, RuntimeError):  # closed by the test
            pass

    def next(self, kind: str = "alarm") -> dict[str, Any]:
        while True:
            event = self.events.get(timeout=DEADLINE_S)
            if event["event"] == kind:
                return {"id": int(event["id"]), **json.loads(event["data"])}

    def close(self) -> None:
        """Drop the connection the way a network failure does: shut the socket down under the reader."""
        stream = self.response.extensions["network_stream"]
        sock = stream.get_extra_info("socket")
        sock.shutdown(socket.SHUT_RDWR)
        self.thread.join(timeout=DEADLINE_S)
        self.response.close()

    def none_pending(self, wait_s: float = 0.5) -> bool:
        try:
            event = self.events.get(timeout=wait_s)
        except queue.Empty:
            return True
        raise AssertionError(f"unexpected event {event}")


def _open(
    client: httpx.Client, world: World, who: str, params: str = "", last_id: int | None = None
) -> StreamReader:
    headers = world.auth(who)
    if last_id is not None:
        headers["Last-Event-ID"] = str(last_id)
    request = client.build_request("GET", f"/api/v1/alarms/stream{params}", headers=headers)
    response = client.send(request, stream=True)
    assert response.status_code == 200, response.read()
    assert response.headers["content-type"].startswith("text/event-stream")
    return StreamReader(response)


def _raise(conn: Any, world: World, device: str, type_: str, severity: str, community: str) -> int:
    change = alarms.raise_or_update(
        conn,
        community_id=world.ids[community],
        device_id=world.ids[device],
        type=type_,
        severity=severity,
        at=datetime.now(UTC),
    )
    return change.transition.id


def test_disconnect_mid_incident_and_resume_without_loss_or_duplicates(
    live: LiveServer, world: World
) -> None:
    hub = live.app.state.streams
    with (
        httpx.Client(base_url=live.base, timeout=httpx.Timeout(10.0, read=30.0)) as client,
        connect(world.url, autocommit=True) as conn,
    ):
        first = _open(client, world, "operator_a")
        first.next("ready")
        # an incident starts: the board sees it live; community B's alarm is not shown to A's operator
        _raise(conn, world, "smk-b1", "low_battery", "warning", "comm_b")
        raised = _raise(conn, world, "chg-a1", "charger_smoke", "critical", "comm_a")
        got = first.next()
        assert (got["event_id"], got["action"], got["alarm"]["type"]) == (raised, "raised", "charger_smoke")
        last_seen = got["id"]
        assert last_seen >= raised
        alarm_id = got["alarm"]["id"]

        # the connection drops; the server ends that stream's task
        first.close()
        wait_for(lambda: hub.open_streams == 0, DEADLINE_S, "the dropped stream's task to end")

        # the incident goes on while the console is away
        missed = [
            _raise(conn, world, "chg-a1", "charger_smoke", "critical", "comm_a"),  # updated
            alarms.acknowledge(conn, alarm_id, actor="user:other").transition.id,  # type: ignore[union-attr]
            _raise(conn, world, "smk-a1", "smoke_detector_fault", "minor", "comm_a"),
            _raise(conn, world, "smk-b1", "smoke_detector_fault", "minor", "comm_b"),  # not A's
            alarms.clear(conn, alarm_id, actor="engine").transition.id,  # type: ignore[union-attr]
        ]
        expected = [tid for i, tid in enumerate(missed) if i != 3]

        # reconnect with the last id seen (what EventSource sends as Last-Event-ID)
        second = _open(client, world, "operator_a", last_id=last_seen)
        replayed = [second.next() for _ in expected]
        assert [e["event_id"] for e in replayed] == expected
        assert [e["action"] for e in replayed] == ["updated", "acknowledged", "raised", "cleared"]
        assert all(e["alarm"]["community_id"] == world.ids["comm_a"] for e in replayed)
        second.next("ready")
        # then live again, with nothing replayed twice
        commented = alarms.comment(conn, alarm_id, actor="user:x", text="resolved").transition.id
        live_event = second.next()
        assert live_event["event_id"] == commented
        assert second.none_pending()

        # the same resume through ?since=, filtered to critical only
        third = _open(client, world, "admin", params=f"?since={last_seen}&severity=critical")
        crit = [third.next() for _ in range(4)]
        assert [e["event_id"] for e in crit] == [missed[0], missed[1], missed[4], commented]
        third.next("ready")
        assert third.none_pending()
        second.close()
        third.close()
        wait_for(lambda: hub.open_streams == 0, DEADLINE_S, "streams to end")


def test_stream_scoping_and_bad_resume_ids(live: LiveServer, world: World) -> None:
    with httpx.Client(base_url=live.base, timeout=10.0) as client:
        headers = world.auth("manager_a")
        r = client.get(f"/api/v1/alarms/stream?community_id={world.ids['comm_b']}", headers=headers)
        assert r.status_code == 404
        r = client.get("/api/v1/alarms/stream", headers={**headers, "Last-Event-ID": "abc"})
        assert r.status_code == 422 and r.json()["fields"][0]["field"] == "header.last-event-id"
        assert client.get("/api/v1/alarms/stream").status_code == 401
        latest = client.get("/api/v1/alarms/events/latest", headers=headers).json()["last_event_id"]
        assert latest >= 3


def test_shutdown_ends_open_streams(settings: Any, world: World) -> None:
    with serve(settings) as server, httpx.Client(base_url=server.base, timeout=10.0) as client:
        reader = _open(client, world, "viewer_a")
        reader.next("ready")
        assert server.app.state.streams.open_streams == 1
    # leaving `serve` stopped uvicorn (asserting the thread ended); the hub cancelled the pump
    assert server.app.state.streams.open_streams == 0
