"""The live alarm stream over a real socket: filtering by community and severity, and resuming after a
dropped connection with every missed event delivered exactly once."""

from __future__ import annotations

import json
import queue
import socket
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from test_api_support import PASSWORD, LiveServer, World, live, serve, wait_for, world

from storage import alarms, users
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


# ---------------------------------------------------------------------------------------------
# Issue 10 §3 and §5: one LISTEN connection per process, caps, streams ended with their credentials


def _end_reason(reader: StreamReader) -> str:
    while True:
        event = reader.events.get(timeout=DEADLINE_S)
        if event["event"] == "end":
            return str(json.loads(event["data"])["reason"])


def _backends(url: str) -> int:
    with connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_streams_share_one_listen_connection_and_are_capped(settings: Any, world: World) -> None:
    cap = 4
    tuned = settings.model_copy(
        update={
            "api": settings.api.model_copy(update={"stream_max_total": cap, "stream_max_per_user": 2}),
            # a pool of fixed size, so that the count below can only move with the streams
            "database": settings.database.model_copy(update={"pool_min_size": 3, "pool_max_size": 3}),
        }
    )
    with (
        serve(tuned) as server,
        httpx.Client(base_url=server.base, timeout=httpx.Timeout(10.0, read=30.0)) as client,
    ):
        hub = server.app.state.streams
        readers = [_open(client, world, "viewer_a")]
        readers[0].next("ready")
        # pool (3) + the one LISTEN connection + the connection counting
        wait_for(lambda: _backends(world.url) == 3 + 1 + 1, DEADLINE_S, "the pool to fill")
        refused: list[httpx.Response] = []
        for who in (
            ["viewer_a", "viewer_a", "operator_a", "manager_a", "admin"]
            + ["admin", "operator_a"] * 3
            + ["manager_b"]
        ):  # 12 attempts in all: three times the cap
            request = client.build_request("GET", "/api/v1/alarms/stream", headers=world.auth(who))
            response = client.send(request, stream=True)
            if response.status_code == 200:
                readers.append(StreamReader(response))
                readers[-1].next("ready")
            else:
                refused.append(response)
                response.read()
        assert len(readers) == cap and hub.open_streams == cap
        assert len(refused) == 12 - (cap - 1)
        assert {r.status_code for r in refused} == {429}
        assert all(int(r.headers["Retry-After"]) > 0 for r in refused)
        assert "per user" in refused[0].json()["message"]  # viewer_a's third
        assert _backends(world.url) == 3 + 1 + 1  # flat: streams hold no connection of their own
        # a normal request still answers, and live events still reach every stream
        assert client.get("/api/v1/alarms", headers=world.auth("viewer_a")).status_code == 200
        with connect(world.url, autocommit=True) as conn:
            raised = _raise(conn, world, "smk-a1", "smoke_detector_fault", "minor", "comm_a")
        for reader in readers:
            assert reader.next()["event_id"] == raised
        for reader in readers:
            reader.close()
        wait_for(lambda: hub.open_streams == 0, DEADLINE_S, "the streams to end")
        # slots are free again
        again = _open(client, world, "viewer_a")
        again.next("ready")
        again.close()


def test_stream_ends_when_its_token_expires(live: LiveServer, world: World) -> None:
    with connect(world.url, autocommit=True) as conn:
        # long enough to open the stream on a loaded machine first (1.5 s failed there), short
        # enough that the test waits only for that
        token, _ = users.issue_token(conn, world.ids["user_viewer_a"], timedelta(seconds=4))
    with httpx.Client(base_url=live.base, timeout=httpx.Timeout(10.0, read=30.0)) as client:
        request = client.build_request(
            "GET", "/api/v1/alarms/stream", headers={"Authorization": f"Bearer {token}"}
        )
        reader = StreamReader(client.send(request, stream=True))
        reader.next("ready")
        assert _end_reason(reader) == "expired"
        reader.thread.join(timeout=DEADLINE_S)
        assert not reader.thread.is_alive()  # the server closed the response
        wait_for(lambda: live.app.state.streams.open_streams == 0, DEADLINE_S, "the stream to be released")


def test_stream_ends_on_logout_and_on_key_revocation(live: LiveServer, world: World) -> None:
    with httpx.Client(base_url=live.base, timeout=httpx.Timeout(10.0, read=30.0)) as client:
        login = client.post("/api/v1/auth/login", json={"username": "operator_a", "password": PASSWORD})
        headers = {"Authorization": f"Bearer {login.json()['token']}"}
        other = _open(client, world, "operator_a")  # same user, another token: stays open
        other.next("ready")
        reader = StreamReader(
            client.send(client.build_request("GET", "/api/v1/alarms/stream", headers=headers), stream=True)
        )
        reader.next("ready")
        assert client.post("/api/v1/auth/logout", headers=headers).status_code == 204
        assert _end_reason(reader) == "revoked"

        r = client.post(
            f"/api/v1/users/{world.ids['user_viewer_a']}/api-keys",
            json={"name": "board"},
            headers=world.auth("admin"),
        )
        key, key_id = r.json()["key"], r.json()["id"]
        keyed = StreamReader(
            client.send(
                client.build_request("GET", "/api/v1/alarms/stream", headers={"X-API-Key": key}), stream=True
            )
        )
        keyed.next("ready")
        assert client.delete(f"/api/v1/api-keys/{key_id}", headers=world.auth("admin")).status_code == 204
        assert _end_reason(keyed) == "revoked"
        with connect(world.url, autocommit=True) as conn:
            raised = _raise(conn, world, "smk-a1", "smoke_detector_fault", "minor", "comm_a")
        assert other.next()["event_id"] == raised
        other.close()
