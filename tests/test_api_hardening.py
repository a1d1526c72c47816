"""Issue 10 against the running app on the real database: tenant isolation of the registry (no
takeover of another community's uid, reserved MQTT usernames, a 409 that reveals nothing), login
throttling and the bound on concurrent hashes, inputs that used to give a 500, metadata size, security
headers and local Swagger UI, API-key writes, time zones, the password rule and the token purge."""

from __future__ import annotations

import argparse
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from test_api_support import PASSWORD, World, client, serve, wait_for, world

from api.app import create_app
from devices import credentials
from storage.db import connect
from yiju.commands import devices as devices_command
from yiju.errors import InputError
from yiju.settings import Settings

__all__ = ["client", "world"]

V1 = "/api/v1"
ROOT = Path(__file__).resolve().parent.parent


def _with_api(settings: Settings, **changes: Any) -> Settings:
    return settings.model_copy(update={"api": settings.api.model_copy(update=changes)})


@pytest.fixture
def tuned(settings: Settings, world: World, request: pytest.FixtureRequest) -> Iterator[TestClient]:
    """A client of an app with the API settings given by `@pytest.mark.parametrize('tuned', [...])`."""
    with TestClient(create_app(_with_api(settings, **request.param))) as c:
        yield c


def _device(url: str, uid: str) -> tuple[int, int, Any] | None:
    with connect(url) as conn:
        row = conn.execute("SELECT id, community_id, metadata FROM devices WHERE uid = %s", (uid,)).fetchone()
    return (row[0], row[1], row[2]) if row else None


def _audit(url: str, action: str) -> list[tuple[str, str | None, int | None, dict[str, Any]]]:
    with connect(url) as conn:
        rows = conn.execute(
            "SELECT actor, target_id, community_id, details FROM audit_log WHERE action = %s ORDER BY id",
            (action,),
        ).fetchall()
    return [(r[0], r[1], r[2], r[3]) for r in rows]


# ---------------------------------------------------------------------------------------------
# §1, §12: another community's uid is never taken over; the refusal reveals nothing


def test_csv_import_refuses_another_communitys_uid_per_row(client: TestClient, world: World) -> None:
    before = _device(world.url, "smk-b1")
    csv = "device_uid,family,building,floor\nsmk-b1,smoke_alarm,B1,6\nsmk-a-new,smoke_alarm,B1,6\n"
    r = client.post(
        f"{V1}/devices/import?community_id={world.ids['comm_a']}",
        content=csv.encode(),
        headers={**world.auth("manager_a"), "Content-Type": "text/csv"},
    )
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["imported"] == 1 and report["inserted"] == 1 and report["updated"] == 0
    assert report["rejected_rows"] == [2]
    (error,) = report["errors"]
    assert error["column"] == "device_uid" and "cannot be used" in error["reason"]
    assert "comm-b" not in error["reason"] and "registered" not in error["reason"]
    # B's detector stays B's, untouched
    assert _device(world.url, "smk-b1") == before
    assert _device(world.url, "smk-a-new") is not None


def test_post_and_patch_refuse_takeover_admin_moves_explicitly_with_audit(
    client: TestClient, world: World
) -> None:
    a, b = world.ids["comm_a"], world.ids["comm_b"]
    taken = client.post(
        f"{V1}/devices",
        json={"uid": "smk-b1", "community_id": a, "family": "smoke_alarm"},
        headers=world.auth("manager_a"),
    )
    reserved = client.post(
        f"{V1}/devices",
        json={"uid": "yiju-ingest", "community_id": a, "family": "smoke_alarm"},
        headers=world.auth("manager_a"),
    )
    # the same answer for another community's device and a reserved name: no existence oracle
    assert taken.status_code == reserved.status_code == 409
    assert taken.json()["message"].replace("smk-b1", "X") == reserved.json()["message"].replace(
        "yiju-ingest", "X"
    )
    assert "registered" not in taken.json()["message"]
    own = client.post(
        f"{V1}/devices",
        json={"uid": "smk-a1", "community_id": a, "family": "smoke_alarm"},
        headers=world.auth("manager_a"),
    )
    assert own.status_code == 409 and "already registered in this community" in own.json()["message"]
    assert _device(world.url, "smk-b1")[1] == b  # type: ignore[index]

    device_b = world.ids["smk-b1"]
    # a manager cannot move a device, not even one of its own communities into another
    r = client.patch(
        f"{V1}/devices/{world.ids['smk-a1']}", json={"community_id": b}, headers=world.auth("manager_a")
    )
    assert r.status_code == 403
    # the admin moves B's detector into A explicitly; both communities' logs record it
    r = client.patch(
        f"{V1}/devices/{device_b}",
        json={"community_id": a, "location_code": "B1-F6"},
        headers=world.auth("admin"),
    )
    assert r.status_code == 200, r.text
    assert r.json()["community_id"] == a and r.json()["location_name"] == "1号楼 6层"
    moves = _audit(world.url, "device.move")
    assert [(m[0], m[2]) for m in moves] == [("user:admin", b), ("user:admin", a)]
    assert moves[0][3] == {"uid": "smk-b1", "from_community_id": b, "to_community_id": a}


def test_reserved_mqtt_usernames_everywhere(
    client: TestClient, world: World, settings: Settings, tmp_path: Path
) -> None:
    # the migration seeds exactly the names the code reserves
    sql = (ROOT / "storage" / "migrations" / "0011_api_hardening.sql").read_text()
    seeded = set(re.findall(r"\('([a-z-]+)', '", sql))
    assert seeded == set(credentials.RESERVED_USERNAMES)
    # CSV: a per-row error
    r = client.post(
        f"{V1}/devices/import?community_id={world.ids['comm_a']}",
        content=b"device_uid,family\nyiju-gateway,light\n",
        headers={**world.auth("admin"), "Content-Type": "text/csv"},
    )
    assert r.json()["rejected_rows"] == [2] and r.json()["imported"] == 0
    # the database refuses it even when the API is bypassed
    with connect(world.url) as conn, pytest.raises(Exception, match="reserved MQTT username"):
        conn.execute(
            "INSERT INTO devices (uid, community_id, family) VALUES ('yiju-ingest', %s, 'light')",
            (world.ids["comm_a"],),
        )
    # the credentials command refuses a service account named like a device, before issuing anything
    assert settings.database.url
    args = argparse.Namespace(
        out=str(tmp_path / "mqtt"),
        community=None,
        rotate=False,
        ingest_user=["smk-a1"],
        gateway_user=[],
        rotate_services=False,
    )
    with pytest.raises(InputError, match="smk-a1"):
        devices_command._cmd_credentials(args, settings)
    assert not (tmp_path / "mqtt" / "passwd").exists()
    # a service account it issues is reserved from then on
    args.ingest_user = ["ingest-site-1"]
    assert devices_command._cmd_credentials(args, settings) == 0
    passwd = (tmp_path / "mqtt" / "passwd").read_text()
    assert passwd.count("ingest-site-1:$7$1000$") == 1  # PBKDF2 iterations raised (issue 10 §13)
    r = client.post(
        f"{V1}/devices",
        json={"uid": "ingest-site-1", "community_id": world.ids["comm_a"], "family": "light"},
        headers=world.auth("admin"),
    )
    assert r.status_code == 409
    with pytest.raises(ValueError, match="given twice"):
        credentials.password_file(
            [credentials.DeviceAccount("dev-1", "c1", "h")],
            [credentials.ServiceAccount("dev-1", credentials.ServiceRole.INGEST, "h")],
        )


# ---------------------------------------------------------------------------------------------
# §4: login throttling


@pytest.mark.parametrize(
    "tuned", [{"login_max_failures_per_user": 3, "login_max_failures_per_address": 6}], indirect=True
)
def test_login_is_throttled_per_username_and_per_address_and_audited(tuned: TestClient, world: World) -> None:
    wrong = {"username": "operator_a", "password": "wrong-password"}
    assert [tuned.post(f"{V1}/auth/login", json=wrong).status_code for _ in range(3)] == [401] * 3
    # now even the right password waits: the guessing run must not learn it was right
    r = tuned.post(f"{V1}/auth/login", json={"username": "operator_a", "password": PASSWORD})
    assert r.status_code == 429 and r.json()["error"] == "too_many_requests"
    assert 1 <= int(r.headers["Retry-After"]) <= 15 * 60
    # another username from the same address still works, up to the address's own limit
    assert (
        tuned.post(f"{V1}/auth/login", json={"username": "viewer_a", "password": PASSWORD}).status_code == 200
    )
    statuses = [
        tuned.post(
            f"{V1}/auth/login", json={"username": f"guess{i}", "password": "wrong-password"}
        ).status_code
        for i in range(4)
    ]
    assert statuses == [401, 401, 401, 429]  # 3 + 3 failures from this address
    assert (
        tuned.post(f"{V1}/auth/login", json={"username": "viewer_a", "password": PASSWORD}).status_code == 429
    )
    failed, throttled = _audit(world.url, "login.failed"), _audit(world.url, "login.throttled")
    assert len(failed) == 6 and failed[0][1] == "operator_a" and failed[0][3]["client"]
    assert [t[1] for t in throttled] == ["operator_a", "guess3", "viewer_a"]
    assert {t[3]["key"] for t in throttled} == {"user", "addr"}


def test_concurrent_logins_are_bounded_and_the_api_stays_responsive(settings: Settings, world: World) -> None:
    tuned = _with_api(settings, login_max_concurrent_hashes=1, login_hash_wait_s=30.0)
    with serve(tuned) as server, httpx.Client(base_url=server.base, timeout=60.0) as http:
        statuses: list[int] = []
        lock = threading.Lock()

        def guess(i: int) -> None:
            r = http.post(f"{V1}/auth/login", json={"username": f"nobody{i}", "password": "wrong-password"})
            with lock:
                statuses.append(r.status_code)

        threads = [threading.Thread(target=guess, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        gate = server.app.state.login_gate
        wait_for(lambda: gate.in_use == 1, 30, "logins to start hashing")
        # a normal request answers while the logins queue for the one hashing slot
        assert http.get(f"{V1}/alarms", headers=world.auth("operator_a")).status_code == 200
        for t in threads:
            t.join(timeout=60)
        assert sorted(statuses) == [401] * 6
        assert gate.peak == 1


# ---------------------------------------------------------------------------------------------
# §6, §9: inputs that produced a 500; metadata bounded


def test_inputs_that_gave_500s_are_4xx(client: TestClient, world: World) -> None:
    h = world.auth("admin")
    dev = world.ids["chg-a1"]
    big_cursor = "WzIxNDc0ODM2NDhd"  # base64url of [2147483648]: beyond devices.id
    urls = [
        f"{V1}/devices?cursor={big_cursor}",
        f"{V1}/devices/{dev}/telemetry?metric=port_temperature_c&until=0001-01-01T00:00:00Z",
        f"{V1}/devices/{dev}/events?until=0001-01-01T00:00:00Z",
        f"{V1}/devices/{dev}/metrics?since=0001-01-01T00:00:00Z",
        f"{V1}/compliance/summary?community_id={world.ids['comm_a']}&until=0001-01-01T00:00:00Z",
        f"{V1}/alarms?until=9999-12-31T23:59:59-12:00",
    ]
    for url in urls:
        r = client.get(url, headers=h)
        assert r.status_code == 422, (url, r.status_code, r.text)
        assert r.json()["fields"], url
    r = client.get(f"{V1}/alarms/stream", headers={**h, "Last-Event-ID": "²".encode("latin-1")})  # type: ignore[dict-item]
    assert r.status_code == 422 and r.json()["fields"][0]["field"] == "header.last-event-id"
    a = world.ids["comm_a"]
    for i, metadata_json in enumerate(
        ['{"note": "a\\u0000b"}', '{"note": "\\ud800"}', '{"reading": NaN}', '{"\\u0000": 1}']
    ):
        body = f'{{"uid": "bad-{i}", "community_id": {a}, "family": "light", "metadata": {metadata_json}}}'
        r = client.post(f"{V1}/devices", content=body, headers={**h, "Content-Type": "application/json"})
        assert r.status_code == 422, (metadata_json, r.text)
        r = client.patch(
            f"{V1}/devices/{dev}",
            content=f'{{"metadata": {metadata_json}}}',
            headers={**h, "Content-Type": "application/json"},
        )
        assert r.status_code == 422, (metadata_json, r.text)
    r = client.post(
        f"{V1}/devices/import?community_id={a}",
        content=b"device_uid,family,note\nnul-1,light,a\x00b\nok-1,light,fine\n",
        headers={**h, "Content-Type": "text/csv"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["rejected_rows"] == [2] and r.json()["imported"] == 1
    assert "NUL" in r.json()["errors"][0]["reason"]


def test_metadata_is_capped_at_8_kib(client: TestClient, world: World) -> None:
    h = world.auth("admin")
    a = world.ids["comm_a"]
    big = {"note": "x" * 9000}
    r = client.post(
        f"{V1}/devices",
        json={"uid": "meta-1", "community_id": a, "family": "light", "metadata": big},
        headers=h,
    )
    assert r.status_code == 422 and "8192" in r.text
    fits = {"note": "照明" * 1000}  # 6,000 bytes of UTF-8
    r = client.post(
        f"{V1}/devices",
        json={"uid": "meta-2", "community_id": a, "family": "light", "metadata": fits},
        headers=h,
    )
    assert r.status_code == 201, r.text
    r = client.patch(f"{V1}/devices/{r.json()['id']}", json={"metadata": big}, headers=h)
    assert r.status_code == 422
    r = client.post(
        f"{V1}/devices/import?community_id={a}",
        content=f"device_uid,family,note\nmeta-3,light,{'y' * 9000}\n".encode(),
        headers={**h, "Content-Type": "text/csv"},
    )
    assert r.json()["rejected_rows"] == [2] and "8192" in r.json()["errors"][0]["reason"]


# ---------------------------------------------------------------------------------------------
# §10, §11, §13


def test_security_headers_and_swagger_ui_served_locally(client: TestClient) -> None:
    for path in ("/console/", "/api/v1/auth/me", "/docs"):
        r = client.get(path)
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"], path
        assert "script-src 'self'" in r.headers["content-security-policy"]
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "no-referrer"
    page = client.get("/docs").text
    assert "swagger-ui" in page and not re.search(r"(src|href)=\"(https?:)?//", page)
    assert "<script>" not in page  # no inline script: the CSP allows files only
    for src in re.findall(r"(?:src|href)=\"([^\"]+)\"", page):
        assert client.get(src).status_code == 200, src
    assert client.get("/redoc").status_code == 404  # FastAPI's ReDoc page loads from a CDN


def test_api_key_last_used_written_at_most_once_a_minute(client: TestClient, world: World) -> None:
    r = client.post(
        f"{V1}/users/{world.ids['user_viewer_a']}/api-keys", json={"name": "k"}, headers=world.auth("admin")
    )
    key, key_id = r.json()["key"], r.json()["id"]

    def stamp() -> tuple[Any, Any]:
        with connect(world.url) as conn:
            row = conn.execute(
                "SELECT last_used_at, xmin::text FROM api_keys WHERE id = %s", (key_id,)
            ).fetchone()
        assert row is not None
        return row[0], row[1]

    assert client.get(f"{V1}/alarms", headers={"X-API-Key": key}).status_code == 200
    first = stamp()
    assert first[0] is not None
    for _ in range(3):
        assert client.get(f"{V1}/alarms", headers={"X-API-Key": key}).status_code == 200
    assert stamp() == first  # neither the time nor the row version changed: no write
    with connect(world.url, autocommit=True) as conn:
        conn.execute(
            "UPDATE api_keys SET last_used_at = now() - interval '61 seconds' WHERE id = %s", (key_id,)
        )
    # the caller is kept for a few seconds (api/deps.py `Callers`, a last-used time notifies nobody):
    # the write comes with the next lookup
    client.app.state.callers.changed()
    assert client.get(f"{V1}/alarms", headers={"X-API-Key": key}).status_code == 200
    assert stamp()[0] > first[0]


def test_time_zones_and_the_one_password_rule(client: TestClient, world: World) -> None:
    h = world.auth("admin")
    for zone in ("Mars/Olympus", "Asia/Shanghia", "UTC+8"):
        r = client.post(f"{V1}/communities", json={"code": "tz-x", "name": "x", "timezone": zone}, headers=h)
        assert r.status_code == 422 and "IANA" in r.text, zone
    r = client.post(
        f"{V1}/communities", json={"code": "tz-ok", "name": "x", "timezone": "Asia/Urumqi"}, headers=h
    )
    assert r.status_code == 201 and r.json()["timezone"] == "Asia/Urumqi"
    # the same rule at creation and at login: a password no account can have is refused as input
    r = client.post(
        f"{V1}/users", json={"username": "ctl", "role": "viewer", "password": "abc\x01defgh"}, headers=h
    )
    assert r.status_code == 422
    assert (
        client.post(f"{V1}/auth/login", json={"username": "operator_a", "password": "short"}).status_code
        == 422
    )
    assert (
        client.post(f"{V1}/auth/login", json={"username": "operator_a", "password": "x" * 257}).status_code
        == 422
    )


@pytest.mark.parametrize("tuned", [{"token_purge_interval": timedelta(seconds=0.1)}], indirect=True)
def test_expired_tokens_are_purged_by_the_running_service(tuned: TestClient, world: World) -> None:
    with connect(world.url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO auth_tokens (token_hash, user_id, expires_at) VALUES ('old', %s, %s)",
            (world.ids["user_viewer_a"], datetime.now(UTC) - timedelta(days=2)),
        )

    def gone() -> bool:
        with connect(world.url) as conn:
            return conn.execute("SELECT count(*) FROM auth_tokens WHERE token_hash = 'old'").fetchone() == (
                0,
            )

    wait_for(gone, 10, "the expired token to be purged")
    # live tokens stay
    assert tuned.get(f"{V1}/auth/me", headers=world.auth("viewer_a")).status_code == 200
