"""Every endpoint against the real database: auth, roles, community scoping (404 across communities),
pagination, validation errors and the audit log."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from test_api_support import PASSWORD, T0, World, audit_rows, client, world

from storage.db import connect
from storage.timeseries import run_maintenance
from yiju.settings import DatabaseSettings

__all__ = ["client", "world"]  # fixtures used by name

V1 = "/api/v1"


def test_login_me_logout_and_bad_credentials(client: TestClient, world: World) -> None:
    r = client.post(f"{V1}/auth/login", json={"username": "operator_a", "password": PASSWORD})
    assert r.status_code == 200, r.text
    token = r.json()["token"]
    assert r.json()["user"]["role"] == "operator"
    headers = {"Authorization": f"Bearer {token}"}
    me = client.get(f"{V1}/auth/me", headers=headers).json()
    assert me["username"] == "operator_a" and me["community_ids"] == [world.ids["comm_a"]]
    assert client.post(f"{V1}/auth/logout", headers=headers).status_code == 204
    assert client.get(f"{V1}/auth/me", headers=headers).status_code == 401
    bad = client.post(f"{V1}/auth/login", json={"username": "operator_a", "password": "wrong-password"})
    assert bad.status_code == 401 and bad.json()["error"] == "unauthorized"
    assert (
        client.post(f"{V1}/auth/login", json={"username": "nobody", "password": "not-the-one"}).status_code
        == 401
    )
    assert client.get(f"{V1}/alarms").status_code == 401
    assert client.get(f"{V1}/alarms", headers={"Authorization": "Bearer nope"}).status_code == 401
    with connect(world.url) as conn:
        stored = conn.execute("SELECT password_hash FROM users WHERE username = 'operator_a'").fetchone()
        tokens = conn.execute("SELECT token_hash FROM auth_tokens").fetchall()
    assert stored and stored[0].startswith("scrypt$") and PASSWORD not in stored[0]
    assert all(token not in t[0] for t in tokens)
    assert [r["actor"] for r in audit_rows(world.url, "login")] == ["user:operator_a"]


def test_users_and_api_keys(client: TestClient, world: World) -> None:
    body = {"username": "bridge", "role": "viewer", "community_ids": [world.ids["comm_b"]]}
    assert client.post(f"{V1}/users", json=body, headers=world.auth("manager_a")).status_code == 403
    r = client.post(f"{V1}/users", json=body, headers=world.auth("admin"))
    assert r.status_code == 201, r.text
    uid = r.json()["id"]
    dup = client.post(f"{V1}/users", json=body, headers=world.auth("admin"))
    assert dup.status_code == 422 and "already exists" in dup.json()["message"]
    r = client.post(f"{V1}/users/{uid}/api-keys", json={"name": "fire centre"}, headers=world.auth("admin"))
    assert r.status_code == 201
    key, key_id = r.json()["key"], r.json()["id"]
    listed = client.get(f"{V1}/alarms", headers={"X-API-Key": key}).json()["items"]
    assert {a["community_id"] for a in listed} == {world.ids["comm_b"]}
    keys = client.get(f"{V1}/api-keys", headers=world.auth("admin")).json()
    assert [k["id"] for k in keys] == [key_id] and "key" not in keys[0]
    assert client.delete(f"{V1}/api-keys/{key_id}", headers=world.auth("admin")).status_code == 204
    assert client.get(f"{V1}/alarms", headers={"X-API-Key": key}).status_code == 401
    assert client.delete(f"{V1}/api-keys/{key_id}", headers=world.auth("admin")).status_code == 404
    assert (
        client.post(
            f"{V1}/users/999999/api-keys", json={"name": "x"}, headers=world.auth("admin")
        ).status_code
        == 404
    )
    assert len(client.get(f"{V1}/users", headers=world.auth("admin")).json()) == 6
    assert [a["target_id"] for a in audit_rows(world.url, "api_key.revoke")] == [str(key_id)]


def test_scoping_hides_other_communities(client: TestClient, world: World) -> None:
    a, b = world.ids["comm_a"], world.ids["comm_b"]
    mgr = world.auth("manager_a")
    comms = client.get(f"{V1}/communities", headers=mgr).json()["items"]
    assert [c["id"] for c in comms] == [a]
    assert len(client.get(f"{V1}/communities", headers=world.auth("admin")).json()["items"]) == 2
    for path in (
        f"/communities/{b}",
        f"/buildings/{world.ids['bldg_b']}",
        f"/devices/{world.ids['smk-b1']}",
        f"/devices/{world.ids['smk-b1']}/telemetry?metric=x",
        f"/alarms/{world.ids['alarm_b']}",
        f"/alarms/{world.ids['alarm_b']}/history",
        f"/alarms?community_id={b}",
        f"/devices?community_id={b}",
        f"/buildings?community_id={b}",
    ):
        r = client.get(V1 + path, headers=mgr)
        assert r.status_code == 404, (path, r.text)
        assert r.json()["error"] == "not_found"
    # unknown ids look exactly the same
    assert client.get(f"{V1}/alarms/987654", headers=mgr).json()["error"] == "not_found"
    r = client.post(
        f"{V1}/alarms/{world.ids['alarm_b']}/acknowledge", json={}, headers=world.auth("operator_a")
    )
    assert r.status_code == 404
    alarm_ids = {x["id"] for x in client.get(f"{V1}/alarms", headers=mgr).json()["items"]}
    assert alarm_ids == {world.ids["alarm_a"], world.ids["alarm_a2"]}
    devices = client.get(f"{V1}/devices", headers=mgr).json()["items"]
    assert {d["community_id"] for d in devices} == {a}


def test_alarm_lifecycle_roles_history_and_audit(client: TestClient, world: World) -> None:
    alarm_id = world.ids["alarm_a"]
    r = client.post(f"{V1}/alarms/{alarm_id}/acknowledge", json={}, headers=world.auth("viewer_a"))
    assert r.status_code == 403 and r.json()["error"] == "forbidden"
    r = client.post(
        f"{V1}/alarms/{alarm_id}/acknowledge", json={"comment": "已派保安"}, headers=world.auth("operator_a")
    )
    assert r.status_code == 200, r.text
    assert r.json()["changed"] and r.json()["alarm"]["acknowledged_by"] == "user:operator_a"
    again = client.post(f"{V1}/alarms/{alarm_id}/acknowledge", json={}, headers=world.auth("operator_a"))
    assert again.status_code == 200 and again.json()["changed"] is False
    r = client.post(
        f"{V1}/alarms/{alarm_id}/comment", json={"text": "误报"}, headers=world.auth("operator_a")
    )
    assert r.status_code == 200 and r.json()["transition"]["action"] == "commented"
    r = client.post(f"{V1}/alarms/{alarm_id}/comment", json={"text": "   "}, headers=world.auth("operator_a"))
    assert r.status_code == 422 and r.json()["fields"][0]["field"] == "body.text"
    r = client.post(f"{V1}/alarms/{alarm_id}/clear", json={}, headers=world.auth("manager_a"))
    assert r.status_code == 422 and r.json()["fields"][0]["field"] == "body.comment"  # a reason is required
    r = client.post(
        f"{V1}/alarms/{alarm_id}/clear", json={"comment": "误报"}, headers=world.auth("manager_a")
    )
    assert r.json()["alarm"]["status"] == "cleared"
    detail = client.get(f"{V1}/alarms/{alarm_id}", headers=world.auth("viewer_a")).json()
    assert [t["action"] for t in detail["history"]] == ["raised", "acknowledged", "commented", "cleared"]
    assert detail["type_zh"] == "火灾报警" and detail["building_name"] == "1号楼"
    assert [
        t["action"] for t in client.get(f"{V1}/alarms/{alarm_id}/history", headers=world.auth("admin")).json()
    ] == ["raised", "acknowledged", "commented", "cleared"]
    assert [a["actor"] for a in audit_rows(world.url, "alarm.acknowledge")] == ["user:operator_a"]
    assert audit_rows(world.url, "alarm.clear")[0]["community_id"] == world.ids["comm_a"]
    audit = client.get(f"{V1}/audit", headers=world.auth("manager_a")).json()["items"]
    assert {e["action"] for e in audit} == {"alarm.acknowledge", "alarm.comment", "alarm.clear"}
    assert client.get(f"{V1}/audit", headers=world.auth("manager_b")).json()["items"] == []


def test_alarm_filters_and_pagination(client: TestClient, world: World) -> None:
    admin = world.auth("admin")
    all_ids: list[int] = []
    cursor = None
    while True:
        url = f"{V1}/alarms?limit=1" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(url, headers=admin).json()
        all_ids += [a["id"] for a in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(all_ids) == sorted([world.ids["alarm_a"], world.ids["alarm_a2"], world.ids["alarm_b"]])
    assert len(set(all_ids)) == 3
    worst = client.get(f"{V1}/alarms?order=worst&community_id={world.ids['comm_a']}", headers=admin).json()
    assert [a["severity"] for a in worst["items"]] == ["critical", "major"]
    q = f"{V1}/alarms?severity=major&family=ebike_charger&status=active&type=charger_over_temperature"
    assert [a["id"] for a in client.get(q, headers=admin).json()["items"]] == [world.ids["alarm_a2"]]
    q = f"{V1}/alarms?building_id={world.ids['bldg_b']}&acknowledged=false"
    assert [a["id"] for a in client.get(q, headers=admin).json()["items"]] == [world.ids["alarm_b"]]
    since = (T0 + timedelta(minutes=1)).isoformat().replace("+00:00", "Z")
    assert [a["id"] for a in client.get(f"{V1}/alarms?since={since}", headers=admin).json()["items"]] == [
        world.ids["alarm_a2"]
    ]


def test_bad_input_is_422_with_field_and_reason(client: TestClient, world: World) -> None:
    admin = world.auth("admin")
    cases = {
        f"{V1}/alarms?limit=0": "query.limit",
        f"{V1}/alarms?limit=9999": "query.limit",
        f"{V1}/alarms?severity=apocalyptic": "query.severity.0",
        f"{V1}/alarms?cursor=bm9wZQ": "query.cursor",
        f"{V1}/alarms?since=2026-01-01T00:00:00": "query.since",
        f"{V1}/alarms/abc": "path.alarm_id",
        f"{V1}/devices?cursor=!!": "query.cursor",
        f"{V1}/devices/{world.ids['chg-a1']}/telemetry": "query.metric",
        (
            f"{V1}/devices/{world.ids['chg-a1']}/telemetry?metric=x"
            "&since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z"
        ): "query.since",
    }
    for url, field in cases.items():
        r = client.get(url, headers=admin)
        assert r.status_code == 422, (url, r.text)
        assert field in [f["field"] for f in r.json()["fields"]], (url, r.json())
        assert all(f["reason"] for f in r.json()["fields"])
    r = client.post(f"{V1}/auth/login", json={"username": "a b", "password": "x"})
    assert r.status_code == 422 and r.json()["fields"][0]["field"] == "body.username"
    r = client.post(f"{V1}/alarms/{world.ids['alarm_a']}/comment", content=b"{", headers=admin)
    assert r.status_code == 422


def test_registry_reads_presence_building_status_and_telemetry(client: TestClient, world: World) -> None:
    mgr = world.auth("manager_a")
    dev = client.get(f"{V1}/devices/{world.ids['smk-a1']}", headers=mgr).json()
    assert (
        dev["online"] is True
        and dev["last_seen"]
        and dev["open_alarms"] == 1
        and dev["building_name"] == "1号楼"
    )
    offline = client.get(f"{V1}/devices?online=false", headers=mgr).json()["items"]
    assert [d["uid"] for d in offline] == ["chg-a1"]
    page = client.get(f"{V1}/devices?limit=1", headers=mgr).json()
    second = client.get(f"{V1}/devices?limit=1&cursor={page['next_cursor']}", headers=mgr).json()
    assert page["items"][0]["id"] < second["items"][0]["id"] and second["next_cursor"] is None
    assert [d["uid"] for d in client.get(f"{V1}/devices?q=chg", headers=mgr).json()["items"]] == ["chg-a1"]
    bldg = client.get(f"{V1}/buildings/{world.ids['bldg_a']}", headers=mgr).json()
    assert (bldg["devices"], bldg["online"], bldg["unknown"], bldg["critical"], bldg["major"]) == (
        2,
        1,
        1,
        1,
        1,
    )
    assert client.get(f"{V1}/buildings", headers=mgr).json()["items"][0]["id"] == world.ids["bldg_a"]
    comm = client.get(f"{V1}/communities/{world.ids['comm_a']}", headers=mgr).json()
    assert (comm["devices"], comm["open_alarms"]) == (2, 2)

    chg = world.ids["chg-a1"]
    metrics = client.get(f"{V1}/devices/{chg}/metrics", headers=mgr).json()
    assert [(m["metric"], m["channel"]) for m in metrics] == [("port_temperature_c", 1)]
    since = T0.isoformat().replace("+00:00", "Z")
    raw = client.get(
        f"{V1}/devices/{chg}/telemetry?metric=port_temperature_c&channel=1&since={since}", headers=mgr
    ).json()
    assert raw["resolution"] == "raw" and len(raw["points"]) == 60 and raw["points"][0]["value"] == 30.0
    with connect(world.url, autocommit=True) as conn:
        run_maintenance(conn, DatabaseSettings())  # partitioned mode: refresh the hourly rollup
    hourly = client.get(
        f"{V1}/devices/{chg}/telemetry?metric=port_temperature_c&channel=1&resolution=hour&since={since}",
        headers=mgr,
    ).json()
    assert hourly["resolution"] == "hour"
    assert sum(b["samples"] for b in hourly["buckets"]) == 60
    assert client.get(f"{V1}/devices/{chg}/events", headers=mgr).json() == []


def test_commands_send_validate_status(client: TestClient, world: World) -> None:
    smk = world.ids["smk-a1"]
    r = client.post(
        f"{V1}/commands", json={"device_id": smk, "command": "silence"}, headers=world.auth("viewer_a")
    )
    assert r.status_code == 403
    r = client.post(
        f"{V1}/commands",
        json={"device_id": smk, "command": "silence", "alarm_id": world.ids["alarm_a"]},
        headers=world.auth("operator_a"),
    )
    assert r.status_code == 201, r.text
    cmd = r.json()
    assert cmd["status"] == "pending" and cmd["requested_by"] == "user:operator_a"
    assert (
        client.get(f"{V1}/commands/{cmd['id']}", headers=world.auth("viewer_a")).json()["name"] == "silence"
    )
    assert client.get(f"{V1}/commands/{cmd['id']}", headers=world.auth("manager_b")).status_code == 404
    listed = client.get(f"{V1}/commands?status=pending", headers=world.auth("manager_a")).json()["items"]
    assert [c["id"] for c in listed] == [cmd["id"]]
    bad = client.post(
        f"{V1}/commands", json={"device_id": smk, "command": "explode"}, headers=world.auth("operator_a")
    )
    assert bad.status_code == 422 and bad.json()["fields"]
    other = client.post(
        f"{V1}/commands",
        json={"device_id": world.ids["smk-b1"], "command": "silence"},
        headers=world.auth("operator_a"),
    )
    assert other.status_code == 404
    assert [a["target_id"] for a in audit_rows(world.url, "command.send")] == [str(cmd["id"])]


def test_registry_writes_csv_import_scoping_and_audit(client: TestClient, world: World) -> None:
    admin, mgr = world.auth("admin"), world.auth("manager_a")
    a, b = world.ids["comm_a"], world.ids["comm_b"]
    body = {"code": "comm-c", "name": "小区C", "city": "苏州"}
    assert client.post(f"{V1}/communities", json=body, headers=mgr).status_code == 403
    r = client.post(f"{V1}/communities", json=body, headers=admin)
    assert r.status_code == 201 and r.json()["name"] == "小区C"
    r = client.post(f"{V1}/buildings", json={"community_id": a, "code": "B2", "name": "2号楼"}, headers=mgr)
    assert r.status_code == 201, r.text
    bid = r.json()["id"]
    assert (
        client.post(
            f"{V1}/buildings", json={"community_id": b, "code": "B2", "name": "x"}, headers=mgr
        ).status_code
        == 404
    )
    loc = {
        "community_id": a,
        "code": "B2-F1",
        "kind": "floor",
        "name": "2号楼 1层",
        "building_id": bid,
        "floor": 1,
    }
    r = client.post(f"{V1}/locations", json=loc, headers=mgr)
    assert r.status_code == 201 and r.json()["building_id"] == bid
    bad_loc = {**loc, "building_id": world.ids["bldg_b"]}
    assert client.post(f"{V1}/locations", json=bad_loc, headers=mgr).status_code == 404
    dev = {
        "uid": "gas-a9",
        "community_id": a,
        "family": "gas_alarm",
        "location_code": "B2-F1",
        "vendor": "ACME",
    }
    r = client.post(f"{V1}/devices", json=dev, headers=world.auth("operator_a"))
    assert r.status_code == 403
    r = client.post(f"{V1}/devices", json=dev, headers=mgr)
    assert r.status_code == 201, r.text
    created = r.json()
    assert (created["building_id"], created["online"]) == (bid, None)
    assert client.post(f"{V1}/devices", json=dev, headers=mgr).status_code == 409
    r = client.post(f"{V1}/devices", json={**dev, "uid": "gas-a10", "location_code": "nowhere"}, headers=mgr)
    assert r.status_code == 422
    r = client.patch(f"{V1}/devices/{created['id']}", json={"model": "GX-2"}, headers=mgr)
    assert r.status_code == 200 and r.json()["model"] == "GX-2" and r.json()["vendor"] == "ACME"
    assert (
        client.patch(f"{V1}/devices/{world.ids['smk-b1']}", json={"model": "x"}, headers=mgr).status_code
        == 404
    )
    r = client.delete(f"{V1}/devices/{created['id']}", headers=mgr)
    assert r.status_code == 200 and r.json()["enabled"] is False

    csv_text = "\n".join(
        [
            "device_uid,family,building,floor,型号",
            "smk-a20,烟感,B1,7,JTY",
            "bad uid!,烟感,B1,7,",
            "lgt-a1,light,B2,1,",
            "",
        ]
    )
    r = client.post(
        f"{V1}/devices/import?community_id={a}",
        content=csv_text.encode("gbk"),
        headers={**mgr, "Content-Type": "text/csv"},
    )
    assert r.status_code == 200, r.text
    report = r.json()
    assert (report["rows_total"], report["imported"], report["inserted"], report["rejected_rows"]) == (
        3,
        2,
        2,
        [3],
    )
    assert report["errors"][0]["column"] == "device_uid"
    uids = {d["uid"] for d in client.get(f"{V1}/devices?community_id={a}", headers=mgr).json()["items"]}
    assert {"smk-a20", "lgt-a1"} <= uids
    r = client.post(f"{V1}/devices/import?community_id={b}", content=b"device_uid,family\n", headers=mgr)
    assert r.status_code == 404
    r = client.post(f"{V1}/devices/import?community_id={a}", content=b"\xff\xfe\x00garbage", headers=mgr)
    assert r.status_code == 422
    actions = {
        row["actor"] + " " + action
        for action in (
            "device.create",
            "device.update",
            "device.disable",
            "device.import",
            "building.upsert",
            "location.upsert",
        )
        for row in audit_rows(world.url, action)
    }
    assert actions == {
        f"user:manager_a {x}"
        for x in (
            "device.create",
            "device.update",
            "device.disable",
            "device.import",
            "building.upsert",
            "location.upsert",
        )
    }


def test_compliance_summary_scoped(client: TestClient, world: World) -> None:
    with connect(world.url, autocommit=True) as conn:
        for ok, measured in ((True, 12.0), (True, 20.0), (False, 95.0)):
            conn.execute(
                "INSERT INTO compliance_findings (community_id, device_id, check_name, kind, compliant, "
                "observed_at, deadline_s, measured_s) "
                "VALUES (%s, %s, 'auto_cutoff', 'over_temperature', %s, %s, 60, %s)",
                (world.ids["comm_a"], world.ids["chg-a1"], ok, T0, measured),
            )
    a = world.ids["comm_a"]
    s = client.get(f"{V1}/compliance/summary?community_id={a}", headers=world.auth("viewer_a")).json()
    (line,) = s["by_check"]
    assert (line["check_name"], line["total"], line["failed"]) == ("auto_cutoff", 3, 1)
    assert abs(line["share"] - 2 / 3) < 1e-9
    assert (
        s["failing_devices"][0]["device_uid"] == "chg-a1"
        and s["failing_devices"][0]["worst_measured_s"] == 95.0
    )
    r = client.get(f"{V1}/compliance/summary?community_id={a}", headers=world.auth("manager_b"))
    assert r.status_code == 404
    old = client.get(
        f"{V1}/compliance/summary?community_id={a}&until=2020-01-01T00:00:00Z", headers=world.auth("admin")
    ).json()
    assert old["by_check"] == []


def test_batch_acknowledge_is_scoped_and_all_or_none(client: TestClient, world: World) -> None:
    ids = [world.ids["alarm_a"], world.ids["alarm_a2"]]
    body = {"ids": [*ids, world.ids["alarm_b"]], "comment": "批量"}
    r = client.post(f"{V1}/alarms/batch-acknowledge", json=body, headers=world.auth("operator_a"))
    assert r.status_code == 404  # community B's alarm: refused, and nothing of A's was acknowledged
    r = client.post(f"{V1}/alarms/batch-acknowledge", json={"ids": []}, headers=world.auth("operator_a"))
    assert r.status_code == 422
    r = client.post(f"{V1}/alarms/batch-acknowledge", json={"ids": ids}, headers=world.auth("viewer_a"))
    assert r.status_code == 403
    with connect(world.url) as conn:
        assert conn.execute("SELECT count(*) FROM alarms WHERE acknowledged").fetchone() == (0,)
    body = {"ids": [ids[0], *ids], "comment": "停电"}
    r = client.post(f"{V1}/alarms/batch-acknowledge", json=body, headers=world.auth("operator_a"))
    assert r.status_code == 200 and r.json() == {"acknowledged": ids, "unchanged": []}
    r = client.post(f"{V1}/alarms/batch-acknowledge", json={"ids": ids}, headers=world.auth("operator_a"))
    assert r.json() == {"acknowledged": [], "unchanged": ids}
    assert len(audit_rows(world.url, "alarm.acknowledge")) == 2
