"""The callers the API keeps (api/deps.py `Callers`) never outlive what they were looked up from:
logout and key revocation by another process, a user disabled, a membership removed, a role lowered
take effect as soon as their notification (migration 0029, `yiju_principals`) has reached the
server; this process's own logout at once; a token ends at its expiry although kept; nothing is kept
or served while the notification listener is away, and a reconnect drops everything kept. Invalid
credentials are a 401 before a malformed query is a 422."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from test_api_support import LiveServer, World, live, wait_for, world

from api.deps import CALLER_MAX_AGE_S, Callers, Principal
from storage import users
from storage.db import connect
from storage.users import Role, User

__all__ = ["live", "world"]

BOARD = "/api/v1/alarms?board=true&order=worst&limit=50"
DEADLINE_S = 10.0


@pytest.fixture
def client(live: LiveServer) -> Iterator[httpx.Client]:
    wait_for(live.app.state.streams.listener.ready.is_set, DEADLINE_S, "the notification listener")
    with httpx.Client(base_url=live.base, timeout=httpx.Timeout(10.0, read=30.0)) as c:
        yield c


def _callers(live: LiveServer) -> Callers:
    callers: Callers = live.app.state.callers
    return callers


def _key(token: str) -> str:
    return "token:" + users.secret_digest(token)


def _get(client: httpx.Client, path: str, headers: dict[str, str]) -> httpx.Response:
    return client.get(path, headers=headers)


def _kept_after_two_reads(live: LiveServer, client: httpx.Client, path: str, token: str) -> None:
    """Read `path` twice with `token`: the caller is kept (and the second read served with it)."""
    for _ in range(2):
        r = _get(client, path, {"Authorization": f"Bearer {token}"})
        assert r.status_code == 200, r.text
    assert _callers(live).get(_key(token)) is not None


def _notified(live: LiveServer, generation: int) -> None:
    wait_for(lambda: _callers(live).generation() > generation, DEADLINE_S, "the principals notification")


def test_logout_and_key_revocation_elsewhere_take_effect_once_notified(
    live: LiveServer, world: World, client: httpx.Client
) -> None:
    token = world.tokens["operator_a"]
    _kept_after_two_reads(live, client, BOARD, token)
    with connect(world.url, autocommit=True) as conn:
        generation = _callers(live).generation()
        assert users.revoke_token(conn, token)  # another process logs this token out
        _notified(live, generation)
        assert _get(client, BOARD, world.auth("operator_a")).status_code == 401
        api_key, key = users.create_api_key(conn, world.ids["user_viewer_a"], "board screen")
        for _ in range(2):
            assert _get(client, BOARD, {"X-API-Key": key}).status_code == 200
        assert _callers(live).get("apikey:" + users.secret_digest(key)) is not None
        generation = _callers(live).generation()
        assert users.revoke_api_key(conn, api_key.id)
        _notified(live, generation)
        assert _get(client, BOARD, {"X-API-Key": key}).status_code == 401


def test_logout_through_this_process_takes_effect_at_once(
    live: LiveServer, world: World, client: httpx.Client
) -> None:
    token = world.tokens["viewer_a"]
    _kept_after_two_reads(live, client, BOARD, token)
    r = client.post("/api/v1/auth/logout", headers=world.auth("viewer_a"))
    assert r.status_code in (200, 204), r.text
    # no wait for the notification: the write's own response dropped the callers kept
    assert _get(client, BOARD, world.auth("viewer_a")).status_code == 401
    assert _get(client, f"/api/v1/alarms/{world.ids['alarm_a']}", world.auth("viewer_a")).status_code == 401


def test_a_user_disabled_a_membership_removed_a_role_lowered_take_effect(
    live: LiveServer, world: World, client: httpx.Client
) -> None:
    detail = f"/api/v1/alarms/{world.ids['alarm_a']}"
    _kept_after_two_reads(live, client, detail, world.tokens["operator_a"])
    _kept_after_two_reads(live, client, BOARD, world.tokens["viewer_a"])
    _kept_after_two_reads(live, client, BOARD, world.tokens["admin"])
    board = {a["id"] for a in _get(client, BOARD, world.auth("admin")).json()["items"]}
    assert {world.ids["alarm_a"], world.ids["alarm_b"]} <= board
    with connect(world.url, autocommit=True) as conn:
        generation = _callers(live).generation()
        conn.execute("UPDATE users SET disabled = true WHERE id = %s", (world.ids["user_viewer_a"],))
        _notified(live, generation)
        assert _get(client, BOARD, world.auth("viewer_a")).status_code == 401

        _kept_after_two_reads(live, client, detail, world.tokens["operator_a"])
        generation = _callers(live).generation()
        conn.execute("DELETE FROM user_communities WHERE user_id = %s", (world.ids["user_operator_a"],))
        _notified(live, generation)
        # the detail kept for A's scope is not this caller's any more: 404, and an empty board
        assert _get(client, detail, world.auth("operator_a")).status_code == 404
        assert _get(client, BOARD, world.auth("operator_a")).json()["items"] == []

        _kept_after_two_reads(live, client, BOARD, world.tokens["admin"])
        generation = _callers(live).generation()
        conn.execute(
            "UPDATE users SET role = 'manager' WHERE id = %s", (world.ids["user_admin"],)
        )  # no communities of its own: a manager of none
        _notified(live, generation)
        assert _get(client, BOARD, world.auth("admin")).json()["items"] == []
        r = client.post("/api/v1/users", json={}, headers=world.auth("admin"))
        assert r.status_code == 403


def test_a_kept_token_ends_at_its_expiry(live: LiveServer, world: World, client: httpx.Client) -> None:
    # kept for longer than the token lives (a loaded machine may take seconds for the two reads):
    # then only the expiry, checked on every hit, can end it
    _callers(live).max_age_s = 60.0
    with connect(world.url, autocommit=True) as conn:
        token, expires_at = users.issue_token(conn, world.ids["user_operator_a"], timedelta(seconds=8))
    _kept_after_two_reads(live, client, BOARD, token)
    generation = _callers(live).generation()
    wait_for(lambda: datetime.now(UTC) >= expires_at, DEADLINE_S, "the token's expiry")
    assert _callers(live).generation() == generation  # nothing notified, nothing dropped
    r = _get(client, BOARD, {"Authorization": f"Bearer {token}"})
    assert r.status_code == 401


def test_nothing_is_kept_while_the_listener_is_away_and_a_reconnect_drops_all(
    live: LiveServer, world: World, client: httpx.Client
) -> None:
    hub = live.app.state.streams
    callers = _callers(live)
    # a reconnect: what was committed while the listener was away was not heard
    _kept_after_two_reads(live, client, BOARD, world.tokens["operator_a"])
    connects = hub.listener.connects
    with connect(world.url, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'yiju-api-listen' AND datname = current_database()"
        )
    wait_for(lambda: hub.listener.connects > connects, DEADLINE_S, "the listener to reconnect")
    assert callers.get(_key(world.tokens["operator_a"])) is None
    # the listener stopped: a token revoked meanwhile (heard by nobody) is refused on the next read,
    # and no caller is kept
    _kept_after_two_reads(live, client, BOARD, world.tokens["manager_a"])
    task = next(t for t in hub._tasks if t.get_name() == "yiju-listen")
    task.get_loop().call_soon_threadsafe(task.cancel)
    wait_for(lambda: not hub.listener.ready.is_set(), DEADLINE_S, "the listener to stop")
    with connect(world.url, autocommit=True) as conn:
        assert users.revoke_token(conn, world.tokens["manager_a"])
    assert _get(client, BOARD, world.auth("manager_a")).status_code == 401
    kept = len(callers)
    for _ in range(2):
        assert _get(client, BOARD, world.auth("viewer_a")).status_code == 200
    assert len(callers) == kept and callers.get(_key(world.tokens["viewer_a"])) is None


def test_invalid_credentials_are_a_401_before_a_malformed_query(
    live: LiveServer, world: World, client: httpx.Client
) -> None:
    for path in (f"{BOARD}&limit=many", "/api/v1/alarms/not-a-number", "/api/v1/devices?limit=-1"):
        for headers in ({"Authorization": "Bearer not-a-token"}, {"X-API-Key": "not-a-key"}, {}):
            r = _get(client, path, headers)
            assert r.status_code == 401, (path, headers, r.text)
            assert r.headers["WWW-Authenticate"] == "Bearer"
        # valid credentials: what is wrong with the query is said
        r = _get(client, path, world.auth("viewer_a"))
        assert r.status_code == 422, (path, r.text)


def test_the_rule_of_a_kept_caller() -> None:
    """Expiry checked on every hit, the age bound, no listener: nothing kept (the clocks are the
    test's)."""
    wall = [datetime(2026, 12, 1, 12, 0, tzinfo=UTC)]
    mono = [100.0]
    callers = Callers(clock=lambda: mono[0], now=lambda: wall[0])
    listening = [False]
    callers.listening = lambda: listening[0]
    user = User(1, "op", "", Role.OPERATOR, False, frozenset({1}))
    principal = Principal(user, "token", wall[0] + timedelta(seconds=2), "token:x")
    callers.put("token:x", callers.generation(), principal, callers.clock())
    assert callers.get("token:x") is None and len(callers) == 0
    listening[0] = True
    callers.put("token:x", callers.generation(), principal, callers.clock())
    assert callers.get("token:x") is principal
    wall[0] += timedelta(seconds=2)
    assert callers.get("token:x") is None  # at its expiry
    key_principal = Principal(user, "api_key", None, "apikey:1")
    callers.put("apikey:h", callers.generation(), key_principal, callers.clock())
    mono[0] += CALLER_MAX_AGE_S + 0.1
    assert callers.get("apikey:h") is None  # too old
