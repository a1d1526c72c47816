"""The indicator report, maintenance records, manual evidence and attachments through the real API on the
real database: scores follow the records, every route is scoped to the caller's communities, bad input
is refused with its reason, and the PDF is read back (text, page furniture, embedded fonts)."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pypdf
import pytest
from fastapi.testclient import TestClient
from test_api_support import World, audit_rows, client, world

from devices.alarms import Check, Finding
from storage.db import connect
from storage.findings import FindingRow, insert_findings
from yiju.cli import main

__all__ = ["client", "world"]  # fixtures used by name

V1 = "/api/v1"


def _url(world: World, community: str = "comm_a") -> str:
    return f"{V1}/communities/{world.ids[community]}"


def _item(report: dict, scheme: str, number: str) -> dict:
    return next(i for i in report["items"] if i["scheme"] == scheme and i["number"] == number)


def _findings(world: World) -> None:
    now = datetime.now(UTC)
    with connect(world.url, autocommit=True) as conn:
        insert_findings(
            conn,
            [
                FindingRow(world.ids["comm_a"], world.ids["chg-a1"],
                           Finding(Check.AUTO_CUTOFF, "over_temperature", True, now - timedelta(days=2),
                                   measured_s=4.0)),
                FindingRow(world.ids["comm_a"], world.ids["chg-a1"],
                           Finding(Check.FAULT_ALARM, "silent_fault", False, now - timedelta(days=1))),
            ],
        )  # fmt: skip


def test_report_scores_follow_findings_and_records(client: TestClient, world: World) -> None:
    _findings(world)
    r = client.get(f"{_url(world)}/indicator-report", headers=world.auth("viewer_a"))
    assert r.status_code == 200, r.text
    report = r.json()
    charging = _item(report, "jiangsu_basic", "33")
    assert (charging["score"], charging["arithmetic"]) == (2.0, "2 + 0 = 2")  # the silent fault costs the +1
    fire = _item(report, "jiangsu_basic", "10")
    assert fire["arithmetic"] == "2 − 1 × 0.5 = 1.5"  # one detector, no test or maintenance record
    first = report["fingerprint"]
    assert client.get(f"{_url(world)}/indicator-report", headers=world.auth("viewer_a")).status_code == 200

    at = (datetime.now(UTC) - timedelta(days=3)).isoformat()
    for body in (
        {
            "family": "smoke_alarm",
            "kind": "maintenance",
            "performed_at": at,
            "performed_by": "张工",
            "result": "pass",
        },
        {
            "device_uid": "smk-a1",
            "kind": "test",
            "performed_at": at,
            "performed_by": "张工",
            "result": "pass",
        },
    ):
        created = client.post(
            f"{_url(world)}/maintenance-records", json=body, headers=world.auth("operator_a")
        )
        assert created.status_code == 201, created.text
    assert created.json()["family"] == "smoke_alarm" and created.json()["recorded_by"] == "user:operator_a"
    assert len(audit_rows(world.url, "maintenance_record.create")) == 2
    period = (datetime.now(UTC) + timedelta(hours=8)).date()
    q = f"period={period - timedelta(days=29)}..{period}"
    again = client.get(f"{_url(world)}/indicator-report?{q}", headers=world.auth("viewer_a")).json()
    assert _item(again, "jiangsu_basic", "10")["score"] == 2.0
    assert again["fingerprint"] != first
    same = client.get(f"{_url(world)}/indicator-report?{q}", headers=world.auth("viewer_a")).json()
    assert same["fingerprint"] == again["fingerprint"] and same["items"] == again["items"]
    listed = client.get(f"{_url(world)}/maintenance-records", headers=world.auth("viewer_a")).json()
    assert [x["kind"] for x in listed] == ["test", "maintenance"]


def test_every_route_is_scoped_to_the_callers_communities(client: TestClient, world: World) -> None:
    b = world.auth("manager_b")
    assert client.get(f"{_url(world)}/indicator-report", headers=b).status_code == 404
    assert client.get(f"{_url(world)}/maintenance-records", headers=b).status_code == 404
    assert client.get(f"{_url(world)}/manual-evidence", headers=b).status_code == 404
    body = {"family": "light", "kind": "inspection", "performed_at": "2026-11-20T09:00:00+08:00",
            "performed_by": "李", "result": "pass"}  # fmt: skip
    assert client.post(f"{_url(world)}/maintenance-records", json=body, headers=b).status_code == 404
    # a device of B named in A's record reads exactly like a device that does not exist
    mine = world.auth("manager_a")
    other = client.post(
        f"{_url(world)}/maintenance-records", json={**body, "device_uid": "smk-b1"}, headers=mine
    )
    missing = client.post(
        f"{_url(world)}/maintenance-records", json={**body, "device_uid": "nope-1"}, headers=mine
    )
    assert other.status_code == missing.status_code == 422
    assert other.json()["message"].replace("smk-b1", "X") == missing.json()["message"].replace("nope-1", "X")
    up = client.post(f"{_url(world, 'comm_b')}/attachments?filename=a.png", content=b"\x89PNG-b",
                     headers={**b, "Content-Type": "image/png"})  # fmt: skip
    assert up.status_code == 201, up.text
    cross = {"scheme": "jiangsu_improve", "item": "5", "verdict": "met", "finding": "风机监控",
             "observed_on": "2026-11-20", "attachments": [up.json()["id"]]}  # fmt: skip
    assert client.post(f"{_url(world)}/manual-evidence", json=cross, headers=mine).status_code == 422
    assert client.get(f"{_url(world)}/attachments/{up.json()['id']}", headers=mine).status_code == 404
    assert (
        client.post(
            f"{_url(world)}/maintenance-records", json=body, headers=world.auth("viewer_a")
        ).status_code
        == 403
    )


def test_manual_evidence_with_an_attachment_is_shown_never_scored(client: TestClient, world: World) -> None:
    op = world.auth("operator_a")
    photo = b"\xff\xd8\xff fake jpeg bytes"
    up = client.post(
        f"{_url(world)}/attachments?filename=风机.jpg",
        content=photo,
        headers={**op, "Content-Type": "image/jpeg"},
    )
    assert up.status_code == 201, up.text
    again = client.post(
        f"{_url(world)}/attachments?filename=copy.jpg",
        content=photo,
        headers={**op, "Content-Type": "image/jpeg"},
    )
    assert again.json()["id"] == up.json()["id"]  # same content, one row
    got = client.get(f"{_url(world)}/attachments/{up.json()['id']}", headers=world.auth("viewer_a"))
    assert got.content == photo and got.headers["x-content-type-options"] == "nosniff"
    bad_type = client.post(
        f"{_url(world)}/attachments?filename=x.html",
        content=b"<script>",
        headers={**op, "Content-Type": "text/html"},
    )
    assert bad_type.status_code == 422
    body = {"scheme": "yantai", "item": "26.basic", "verdict": "met", "finding": "社区500米内设应急救援站",
            "observed_on": "2026-11-20", "attachments": [up.json()["id"]]}  # fmt: skip
    assert (
        client.post(f"{_url(world)}/manual-evidence", json=body, headers=op).status_code == 403
    )  # editors only
    created = client.post(f"{_url(world)}/manual-evidence", json=body, headers=world.auth("manager_a"))
    assert created.status_code == 201, created.text
    report = client.get(f"{_url(world)}/indicator-report", headers=op).json()
    y26 = _item(report, "yantai", "26")
    assert y26["score"] is None and y26["levels"][0]["verdict"] == "met"
    assert report["summary"]["manual_items"] == ["yantai:26.basic"]


def test_csv_import_reports_bad_rows_and_refuses_unknown_columns(client: TestClient, world: World) -> None:
    op = {**world.auth("operator_a"), "Content-Type": "text/csv"}
    text = (
        "设备编号,系统,类型,日期,执行人,结果,备注\n"
        "smk-a1,,检测,2026-11-20 10:00,王师傅,合格,按键自检\n"
        ",烟感,维保,2026-11-21,消防维保公司,已修复,年度维保\n"
        "smk-a1,,保洁,2026-11-22,王师傅,合格,\n"  # not a record kind
        "smk-b1,,检测,2026-11-22,王师傅,合格,\n"  # another community's device
    )
    r = client.post(f"{_url(world)}/maintenance-records/import", content=text.encode("gbk"), headers=op)
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["rows_total"], out["imported"]) == (4, 2)
    assert any("row 4, column kind" in e for e in out["errors"]) and any("smk-b1" in e for e in out["errors"])
    misspelt = "设备编号,类型,日期,执行人,reslt\nsmk-a1,检测,2026-11-20,王,合格\n"
    bad = client.post(f"{_url(world)}/maintenance-records/import", content=misspelt.encode(), headers=op)
    assert (
        bad.status_code == 422
        and "reslt" in bad.json()["message"]
        and "known columns" in bad.json()["message"]
    )
    nul = client.post(f"{_url(world)}/maintenance-records/import", content=b"kind\x00,x\n", headers=op)
    assert nul.status_code == 422


def test_hostile_report_queries_are_refused_not_500(client: TestClient, world: World) -> None:
    v = world.auth("viewer_a")
    for q in ("period=2026-13-01..2026-13-30", "period=yesterday", "period=2026-11-30..2026-11-01",
              "period=2020-01-01..2026-01-01", "fault_unit=planet", "format=docx", "lang=fr"):  # fmt: skip
        r = client.get(f"{_url(world)}/indicator-report?{q}", headers=v)
        assert r.status_code == 422, (q, r.status_code, r.text)


def test_pdf_reads_as_a_score_sheet(client: TestClient, world: World) -> None:
    _findings(world)
    r = client.get(f"{_url(world)}/indicator-report?format=pdf", headers=world.auth("viewer_a"))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/pdf"
    assert re.match(r'attachment; filename="indicators-comm-a-\d{8}\.pdf"', r.headers["content-disposition"])
    pdf = pypdf.PdfReader(io.BytesIO(r.content))
    pages = [p.extract_text() for p in pdf.pages]
    n = len(pages)
    assert n >= 3
    for i, text in enumerate(pages, start=1):
        assert "智慧社区指标核验报告 · 小区A" in text, i
        assert f"第 {i} 页 / 共 {n} 页" in text, i
    whole = "\n".join(pages)
    for needle in (
        "电动自行车充电桩位",
        "2 + 0 = 2",
        "2 − 1 × 0.5 = 1.5",
        "公共区域照明设施完好",
        "附录：扣分证据",
    ):
        assert needle in whole.replace("\n", ""), needle
    fonts: set[str] = set()
    for page in pdf.pages:
        for font in (page["/Resources"].get("/Font") or {}).values():
            fonts.add(str(font.get_object()["/BaseFont"]).split("+", 1)[-1])
    assert fonts and fonts <= {"Noto-Sans-CJK-SC", "Noto-Sans-CJK-SC-Bold"}, fonts
    english = client.get(f"{_url(world)}/indicator-report?format=pdf&lang=en", headers=world.auth("viewer_a"))
    text = pypdf.PdfReader(io.BytesIO(english.content)).pages[0].extract_text()
    assert "Page 1 of" in text


def test_cli_writes_the_pdf_and_json_without_a_broker_setting(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("YIJU_DATABASE__URL", world.url)  # no YIJU_MQTT__URL: the report never uses it
    out = tmp_path / "report.pdf"
    assert main(["report", "indicators", "--community", "comm-a", "--out", str(out)]) == 0
    assert pypdf.PdfReader(out).pages[0].extract_text().count("智慧社区指标核验报告") >= 1
    assert "fingerprint" in capsys.readouterr().err
    assert (
        main(
            [
                "report",
                "indicators",
                "--community",
                "comm-a",
                "--format",
                "json",
                "--period",
                "2026-11-01..2026-11-30",
            ]
        )
        == 0
    )
    doc = json.loads(capsys.readouterr().out)
    assert doc["community_code"] == "comm-a" and doc["period_start"].startswith("2026-11-01T00:00:00+08:00")
    assert main(["report", "indicators", "--community", "comm-a", "--format", "pdf"]) == 1  # needs --out
    assert "--out" in capsys.readouterr().err
    assert main(["report", "indicators", "--community", "nope"]) == 1
