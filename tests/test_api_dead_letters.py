"""GET /api/v1/dead-letters on the real database: scoped to the caller's communities, filtered,
cursor-paged, and hostile input answered with 4xx."""

from __future__ import annotations

import base64
from datetime import timedelta

from fastapi.testclient import TestClient
from test_api_support import T0, World, client, world

from storage.db import connect

__all__ = ["client", "world"]  # fixtures used by name

URL = "/api/v1/dead-letters"


def _seed(world: World) -> None:
    ids = world.ids
    rows = [
        # (minutes after T0, topic, payload, size, reason, uid, community, device)
        (1, "yiju/v1/comm-a/smk-a1/telemetry", b'{"seq": "1"}', 12, "schema_violation", "smk-a1",
         ids["comm_a"], ids["smk-a1"]),
        (2, "yiju/v1/comm-a/ghost/telemetry", b"\xff\xfe", 2, "malformed_json", "ghost", ids["comm_a"], None),
        (3, "yiju/v2/comm-a/smk-a1/telemetry", b"{}" , 9000, "unsupported_version", None, ids["comm_a"],
         ids["smk-a1"]),
        (4, "yiju/v1/comm-b/smk-b1/bogus", b"{}", 2, "bad_topic", None, ids["comm_b"], ids["smk-b1"]),
        (5, "yiju/v1/nowhere/x/telemetry", b"{}", 2, "unknown_device", "x", None, None),
    ]  # fmt: skip
    with connect(world.url, autocommit=True) as conn:
        for m, topic, payload, size, reason, uid, cid, did in rows:
            conn.execute(
                "INSERT INTO dead_letters (received_at, topic, payload, payload_size, reason, detail, "
                "device_uid, community_id, device_id) VALUES (%s, %s, %s, %s, %s, 'why', %s, %s, %s)",
                (T0 + timedelta(minutes=m), topic, payload, size, reason, uid, cid, did),
            )


def _reasons(client: TestClient, world: World, who: str, query: str = "") -> list[str]:
    r = client.get(URL + query, headers=world.auth(who))
    assert r.status_code == 200, r.text
    return [d["reason"] for d in r.json()["items"]]


def test_scoped_filtered_and_paged(client: TestClient, world: World) -> None:
    _seed(world)
    a = ["unsupported_version", "malformed_json", "schema_violation"]  # newest first
    assert _reasons(client, world, "viewer_a") == a
    assert _reasons(client, world, "manager_b") == ["bad_topic"]
    # admins also see what belongs to no registered community
    assert _reasons(client, world, "admin") == ["unknown_device", "bad_topic", *a]
    cid_b = world.ids["comm_b"]
    assert client.get(f"{URL}?community_id={cid_b}", headers=world.auth("viewer_a")).status_code == 404
    assert _reasons(client, world, "admin", f"?community_id={cid_b}") == ["bad_topic"]
    assert _reasons(client, world, "viewer_a", "?reason=malformed_json&reason=schema_violation") == a[1:]
    assert _reasons(client, world, "viewer_a", "?device_uid=ghost") == ["malformed_json"]
    assert _reasons(client, world, "viewer_a", f"?device_id={world.ids['smk-a1']}") == [a[0], a[2]]
    since = (T0 + timedelta(minutes=2)).isoformat()
    until = (T0 + timedelta(minutes=3)).isoformat()
    assert _reasons(client, world, "admin", f"?since={since}&until={until}".replace("+", "%2B")) == [a[1]]

    first = client.get(f"{URL}?limit=2", headers=world.auth("viewer_a")).json()
    assert [d["reason"] for d in first["items"]] == a[:2] and first["next_cursor"]
    rest = client.get(f"{URL}?limit=2&cursor={first['next_cursor']}", headers=world.auth("viewer_a")).json()
    assert [d["reason"] for d in rest["items"]] == a[2:] and rest["next_cursor"] is None

    by_reason = {d["reason"]: d for d in client.get(URL, headers=world.auth("viewer_a")).json()["items"]}
    assert by_reason["schema_violation"]["payload_text"] == '{"seq": "1"}'
    assert by_reason["malformed_json"]["payload_text"] is None
    assert base64.b64decode(by_reason["malformed_json"]["payload_base64"]) == b"\xff\xfe"
    assert by_reason["unsupported_version"]["payload_truncated"] is True
    assert by_reason["schema_violation"]["payload_truncated"] is False


def test_hostile_input_is_refused_with_4xx(client: TestClient, world: World) -> None:
    h = world.auth("viewer_a")
    for query in (
        "?since=2026-11-20T08:00:00",  # no offset
        "?until=0001-01-01T00:00:00Z",  # outside the times the API takes (api/params.Time)
        "?since=9999-12-31T23:59:59%2B14:00",
        "?reason=everything",
        "?cursor=bm90LWEtY3Vyc29y",
        "?cursor=../../etc",
        "?device_uid=a/b",
        "?device_uid=" + "x" * 65,
        "?limit=0",
        "?limit=100000",
        "?community_id=-1",
        "?device_id=99999999999",
    ):
        r = client.get(URL + query, headers=h)
        assert r.status_code == 422, (query, r.status_code, r.text)
        assert r.json()["error"]
    assert client.get(URL).status_code == 401
