"""The alarm history and its export on the real database (issue 13 §7): ended alarms searched by time,
type, device, building and handling result; CSV and XLSX with Chinese headers read back with the
csv module and openpyxl; another community's alarms never appear; the row cap answers with a clear
422; hostile filters give 4xx, never a 500. Also the alarm chart's threshold (issue 13 §6)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from points_support import insert_points
from test_api_support import World, client, world

from api.alarms.export import HEADERS
from api.app import create_app
from devices.alarms import ALARM_INFO, AlarmType
from storage import alarms, escalation
from storage.db import connect
from yiju.settings import Settings

__all__ = ["client", "world"]

NOW = datetime.now(UTC).replace(microsecond=0)


def _ended(world: World) -> dict[str, int]:
    """Ended alarms: in A a false-alarm smoke (closed), a real over-temperature (cleared by the engine),
    an old low battery (cleared by a person) with a formula-looking comment; in B a closed fire."""
    ids = world.ids
    out: dict[str, int] = {}
    with connect(world.url, autocommit=True) as conn:
        conn.execute("UPDATE users SET display_name = '值班员甲' WHERE username = 'operator_a'")
        # a device whose uid holds "_", a LIKE metacharacter: a search for "_" must match only it
        did = conn.execute(
            "INSERT INTO devices (uid, community_id, location_id, family) "
            "SELECT %s, community_id, location_id, 'gas_alarm' FROM devices WHERE id = %s RETURNING id",
            ("gas_x1", ids["smk-a1"]),
        ).fetchone()
        assert did
        ids["gas_x"] = did[0]

        def closed(community: str, device: str, type: str, at: datetime, result: str, comment: str) -> int:
            a = alarms.raise_or_update(
                conn, community_id=ids[community], device_id=ids[device], type=type,
                severity="critical", at=at, source="device", details={"lel_pct": 30.0},
            ).alarm  # fmt: skip
            alarms.acknowledge(conn, a.id, actor="user:operator_a", at=at + timedelta(minutes=1))
            alarms.handle(conn, a.id, "resolved", actor="user:operator_a", result=result, comment=comment)  # type: ignore[arg-type]
            alarms.handle(conn, a.id, "closed", actor="user:operator_a", comment="结案")
            return a.id

        out["false"] = closed(
            "comm_a", "gas_x", "gas_high_alarm", NOW - timedelta(hours=3), "false_alarm", "厨房油烟"
        )
        out["b_fire"] = closed(
            "comm_b", "smk-b1", "fire_alarm", NOW - timedelta(hours=3), "real", "B 小区火情"
        )
        alarms.clear(conn, ids["alarm_a2"], actor="engine", at=NOW - timedelta(minutes=20))
        out["overtemp"] = ids["alarm_a2"]
        old = alarms.raise_or_update(
            conn, community_id=ids["comm_a"], device_id=ids["smk-a1"], type="low_battery",
            severity="minor", at=NOW - timedelta(days=20), details={"battery_pct": 9.0, "threshold": 10.0},
        ).alarm  # fmt: skip
        alarms.clear(conn, old.id, actor="user:operator_a", comment='=HYPERLINK("http://x")', at=NOW)
        out["old"] = old.id
    return out


def _ids(body: dict[str, object]) -> list[int]:
    return [int(item["id"]) for item in body["items"]]  # type: ignore[attr-defined, index]


def test_search_filters_and_scope(client: TestClient, world: World) -> None:
    e = _ended(world)
    op = world.auth("operator_a")
    got = client.get("/api/v1/alarm-history", headers=op)
    assert got.status_code == 200
    # ended alarms of A only, newest first; the open fire of A and everything of B are not there
    assert _ids(got.json()) == [e["overtemp"], e["false"], e["old"]]
    first = got.json()["items"][1]
    assert (first["result"], first["result_comment"], first["handling"]) == (
        "false_alarm",
        "厨房油烟",
        "closed",
    )
    assert got.json()["items"][0]["cleared_by_name"] is None  # the engine cleared it
    assert got.json()["items"][2]["cleared_by_name"] == "值班员甲"

    def ids(**params: object) -> list[int]:
        r = client.get("/api/v1/alarm-history", headers=op, params=params)
        assert r.status_code == 200, r.text
        return _ids(r.json())

    assert ids(result="false_alarm") == [e["false"]]
    assert ids(type=["low_battery", "gas_high_alarm"]) == [e["false"], e["old"]]
    assert ids(device="_") == [e["false"]]  # _ matches itself, not any character
    assert ids(device="%") == []
    assert ids(device="SMK-a") == [e["old"]]  # part of the uid, any case
    assert ids(building_id=world.ids["bldg_a"]) == [e["overtemp"], e["false"], e["old"]]
    assert ids(since=(NOW - timedelta(days=1)).isoformat()) == [e["overtemp"], e["false"]]
    assert ids(until=(NOW - timedelta(days=1)).isoformat()) == [e["old"]]
    # paging: one at a time, every row once
    seen, cursor = [], None
    while True:
        r = client.get(
            "/api/v1/alarm-history", headers=op, params={"limit": 1, **({"cursor": cursor} if cursor else {})}
        )
        seen += _ids(r.json())
        cursor = r.json()["next_cursor"]
        if not cursor:
            break
    assert seen == [e["overtemp"], e["false"], e["old"]]
    # another community: 404 for A's operator, B's history for B's manager, both for the admin
    r = client.get("/api/v1/alarm-history", headers=op, params={"community_id": world.ids["comm_b"]})
    assert r.status_code == 404
    assert _ids(client.get("/api/v1/alarm-history", headers=world.auth("manager_b")).json()) == [e["b_fire"]]
    assert e["b_fire"] in _ids(client.get("/api/v1/alarm-history", headers=world.auth("admin")).json())


@pytest.mark.parametrize(
    "params",
    [
        {"since": "2026-11-20T08:00:00"},  # no offset
        {"since": "0001-01-01T00:00:00Z"},
        {"until": "not a time"},
        {"type": "no_such_alarm"},
        {"result": "maybe"},
        {"device": "a\x00b"},
        {"device": "x" * 65},
        {"device": ""},
        {"building_id": str(2**63)},
        {"building_id": "-1"},
        {"community_id": "1e9999"},
        {"cursor": "!!!"},
        {"cursor": "aGVsbG8"},  # base64 of a foreign text
        {"cursor": "aHwyMDI2LTAxLTAxfDE"},  # "h|2026-01-01|1": a time without an offset
        {"limit": "0"},
        {"limit": "501"},
    ],
)
def test_hostile_filters_are_4xx(client: TestClient, world: World, params: dict[str, str]) -> None:
    for path in ("/api/v1/alarm-history", "/api/v1/alarm-history/export"):
        if path.endswith("export") and set(params) & {"cursor", "limit"}:
            continue
        r = client.get(path, headers=world.auth("operator_a"), params=params)
        assert 400 <= r.status_code < 500, (path, params, r.status_code, r.text)
        assert r.json()["error"] in {"validation_error", "not_found"}


def test_export_csv_and_xlsx_hold_the_filtered_rows_with_chinese_headers(
    client: TestClient, world: World
) -> None:
    e = _ended(world)
    op = world.auth("operator_a")
    r = client.get("/api/v1/alarm-history/export", headers=op, params={"format": "csv"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    assert "filename*=UTF-8''%E5%91%8A%E8%AD%A6%E5%8E%86%E5%8F%B2.csv" in r.headers["content-disposition"]
    assert r.content.startswith(b"\xef\xbb\xbf")  # the BOM Excel needs for Chinese
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert tuple(rows[0]) == HEADERS and rows[0][:3] == ["告警编号", "小区", "楼栋"]
    by_id = {int(row[0]): dict(zip(HEADERS, row, strict=True)) for row in rows[1:]}
    assert list(by_id) == [e["overtemp"], e["false"], e["old"]]  # never B's fire
    false = by_id[e["false"]]
    assert (false["告警类型"], false["级别"], false["处置结果"], false["处置说明"]) == (
        ALARM_INFO[AlarmType.GAS_HIGH_ALARM].zh, "紧急", "误报", "厨房油烟",
    )  # fmt: skip
    assert (false["小区"], false["设备编号"], false["楼栋"]) == ("小区A", "gas_x1", "1号楼")
    assert (false["处置进度"], false["设备类型"], false["时区"]) == ("已结案", "燃气报警器", "Asia/Shanghai")
    # the wall clock of the community (UTC+8), not UTC
    first_at_local = (NOW - timedelta(hours=3) + timedelta(hours=8)).strftime("%Y-%m-%d %H:%M:%S")
    assert false["发生时间"] == first_at_local
    assert by_id[e["overtemp"]]["恢复人"] == "系统"
    assert by_id[e["old"]]["恢复人"] == "值班员甲"

    x = client.get(
        "/api/v1/alarm-history/export", headers=op, params={"format": "xlsx", "result": "false_alarm"}
    )
    assert x.status_code == 200 and x.headers["x-yiju-rows"] == "1"
    sheet = load_workbook(io.BytesIO(x.content), read_only=True).active
    assert sheet is not None
    values = [list(row) for row in sheet.iter_rows(values_only=True)]
    assert tuple(values[0]) == HEADERS
    assert [v[0] for v in values[1:]] == [e["false"]]
    assert values[1][HEADERS.index("处置说明")] == "厨房油烟"

    # a formula-looking name is text in both files
    with connect(world.url, autocommit=True) as conn:
        conn.execute("UPDATE buildings SET name = '=1+1' WHERE id = %s", (world.ids["bldg_a"],))
    x = client.get(
        "/api/v1/alarm-history/export", headers=op, params={"format": "xlsx", "type": "low_battery"}
    )
    book = load_workbook(io.BytesIO(x.content))
    assert book.active is not None
    cell = book.active.cell(row=2, column=HEADERS.index("楼栋") + 1)
    assert (cell.value, cell.data_type) == ("=1+1", "s")
    r = client.get(
        "/api/v1/alarm-history/export", headers=op, params={"format": "csv", "type": "low_battery"}
    )
    assert list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))[1][HEADERS.index("楼栋")] == "'=1+1"


def test_export_over_the_row_cap_is_a_clear_422(settings: Settings, world: World) -> None:
    _ended(world)
    capped = settings.model_copy(update={"api": settings.api.model_copy(update={"export_max_rows": 2})})
    with TestClient(create_app(capped)) as c:
        r = c.get("/api/v1/alarm-history/export", headers=world.auth("operator_a"), params={"format": "csv"})
        assert r.status_code == 422
        assert "3 条告警符合条件，一次最多导出 2 条" in r.json()["message"]
        ok = c.get(
            "/api/v1/alarm-history/export", headers=world.auth("operator_a"),
            params={"format": "csv", "since": (NOW - timedelta(days=1)).isoformat()},
        )  # fmt: skip
        assert ok.status_code == 200 and ok.headers["x-yiju-rows"] == "2"


def test_chart_puts_the_trigger_first_with_its_threshold(client: TestClient, world: World) -> None:
    ids = world.ids
    with connect(world.url, autocommit=True) as conn:
        conn.execute(
            'UPDATE communities SET settings = \'{"alerts": {"ebike_charger": {"port_over_temp_c": 58}}}\' '
            "WHERE id = %s",
            (ids["comm_a"],),
        )
        insert_points(
            conn,
            [
                (NOW - timedelta(minutes=50), ids["chg-a1"], "power_w", 1, 300.0),
                (NOW - timedelta(minutes=50), ids["chg-a1"], "port_temp_c", 2, 35.0),
                (NOW - timedelta(minutes=50), ids["chg-a1"], "port_temp_c", 1, 61.0),
            ],
        )
        conn.execute(
            'UPDATE alarms SET details = \'{"port": 1, "port_temp_c": 61}\' WHERE id = %s', (ids["alarm_a2"],)
        )
    r = client.get(f"/api/v1/alarms/{ids['alarm_a2']}/chart", headers=world.auth("viewer_a"))
    assert r.status_code == 200, r.text
    body = r.json()
    first = body["series"][0]
    assert (first["metric"], first["channel"], first["trigger"], first["unit"]) == (
        "port_temp_c",
        1,
        True,
        "°C",
    )
    assert (first["label_zh"], first["label_en"]) == ("端口温度", "Port temperature")
    # the community's effective setting (58 °C), not the default
    assert first["threshold"] == {
        "value": 58.0, "direction": "above", "source": "settings",
        "setting": "ebike_charger.port_over_temp_c",
    }  # fmt: skip
    assert [s["trigger"] for s in body["series"]].count(True) == 1
    assert body["series"][1]["threshold"] is None
    since = datetime.fromisoformat(body["since"])
    assert since == datetime.fromisoformat(
        client.get(f"/api/v1/alarms/{ids['alarm_a2']}", headers=world.auth("viewer_a")).json()["first_at"]
    ) - timedelta(minutes=15)
    # another community's alarm: 404
    assert (
        client.get(f"/api/v1/alarms/{ids['alarm_b']}/chart", headers=world.auth("viewer_a")).status_code
        == 404
    )


def escalated(world: World, alarm_id: int, community: str = "comm_a") -> int:
    """An incident of the alarm as the linkage worker leaves it: the duty manager's phone rang out, an
    SMS was delivered, the security guard answered and pressed 1 (storage/escalation.py rows)."""
    at = NOW - timedelta(minutes=30)
    with connect(world.url, autocommit=True) as conn:
        inc = escalation.start_incident(
            conn, community_id=world.ids[community], alarm_id=alarm_id, group_key=None, drill=False,
            policy_id=None, chain_id=None, chain={"steps": []}, alarm_type="fire_alarm", severity="critical",
            summary="1号楼 6层 火灾报警", context={}, alarm_at=at, next_step_at=at,
        )  # fmt: skip
        assert inc is not None
        rows = [
            ("person:1", "王经理", "sip", "13800000001", "no_answer", 2, "480 no answer"),
            ("person:1", "王经理", "sms", "13800000001", "delivered", 1, "DELIVRD"),
            ("person:2", "保安 李师傅", "sip", "13800000002", "acknowledged", 1, "DTMF 1"),
        ]
        for n, (target, name, channel, address, status, attempts, outcome) in enumerate(rows):
            escalation.enqueue(conn, inc.id, [escalation.NewDelivery(
                f"{inc.id}:0:{n}:{target}:{channel}", 0, n, target, name, channel, address, at,
            )])  # fmt: skip
            conn.execute(
                "UPDATE linkage_outbox SET status = %s, attempts = %s, outcome = %s, claimed_at = %s, "
                "finished_at = %s WHERE idem_key = %s",
                (status, attempts, outcome, at + timedelta(seconds=10 * n),
                 at + timedelta(seconds=10 * n + 5), f"{inc.id}:0:{n}:{target}:{channel}"),
            )  # fmt: skip
            escalation.audit(conn, inc.id, "attempt", {"channel": channel, "to": name})
            escalation.audit(conn, inc.id, "outcome", {"status": status})
        escalation.acknowledge_incident(conn, inc.id, actor="dtmf:13800000002", via="sip", comment=None)
    return inc.id


def test_the_alarm_detail_has_its_escalation_timeline(client: TestClient, world: World) -> None:
    incident = escalated(world, world.ids["alarm_a"])
    other = escalated(world, world.ids["alarm_b"], "comm_b")
    r = client.get(f"/api/v1/alarms/{world.ids['alarm_a']}/escalation", headers=world.auth("viewer_a"))
    assert r.status_code == 200, r.text
    [inc] = r.json()
    assert (inc["id"], inc["state"]) == (incident, "acknowledged")
    assert [(d["target_name"], d["channel"], d["status"], d["attempts"]) for d in inc["deliveries"]] == [
        ("王经理", "sip", "no_answer", 2), ("王经理", "sms", "delivered", 1),
        ("保安 李师傅", "sip", "acknowledged", 1),
    ]  # fmt: skip
    assert [e["kind"] for e in inc["timeline"]][:3] == ["started", "attempt", "outcome"]
    assert (
        client.get(
            f"/api/v1/alarms/{world.ids['alarm_a2']}/escalation", headers=world.auth("viewer_a")
        ).json()
        == []
    )
    # B's alarm and incident stay B's
    assert (
        client.get(
            f"/api/v1/alarms/{world.ids['alarm_b']}/escalation", headers=world.auth("viewer_a")
        ).status_code
        == 404
    )
    assert other != incident
