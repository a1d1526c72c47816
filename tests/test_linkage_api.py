"""The linkage API: people with shifts and the roster, endpoints, chains (validated, frozen), policies,
incidents with their timeline, acknowledgement through the API, drills, roles and community scope."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi.testclient import TestClient
from test_api_support import World, client, world

from alerts.escalation.config import LinkageSettings
from alerts.escalation.worker import EscalationWorker

__all__ = ["client", "world"]
API = "/api/v1/linkage"
ALWAYS = [{"weekdays": [1, 2, 3, 4, 5, 6, 7], "start_min": 0, "end_min": 1440}]


def test_config_crud_roles_scope_and_validation(client: TestClient, world: World) -> None:
    mgr, op, other = world.auth("manager_a"), world.auth("operator_a"), world.auth("manager_b")
    a = world.ids["comm_a"]
    body = {"community_id": a, "name": "张经理", "phone": "13800000001", "shifts": ALWAYS}
    r = client.post(f"{API}/people", json=body, headers=mgr)
    assert r.status_code == 201, r.text
    person = r.json()
    assert person["shifts"][0]["end_min"] == 1440
    assert client.post(f"{API}/people", json=body, headers=op).status_code == 403
    assert client.post(f"{API}/people", json=body, headers=other).status_code == 404
    assert client.post(f"{API}/people", json={**body, "phone": "call me"}, headers=mgr).status_code == 422
    roster = client.get(f"{API}/roster", headers=op).json()
    assert [(p["name"], p["on_duty"]) for p in roster] == [("张经理", True)]
    assert client.get(f"{API}/roster", headers=other).json() == []
    r = client.put(f"{API}/people/{person['id']}/schedule", json=[], headers=mgr)
    assert r.status_code == 200 and client.get(f"{API}/roster", headers=op).json()[0]["on_duty"] is False

    r = client.post(
        f"{API}/endpoints",
        json={
            "community_id": a,
            "name": "96333",
            "kind": "webhook",
            "url": "https://rescue.example/hook",
            "secret": "k",
        },
        headers=mgr,
    )
    assert r.status_code == 201 and r.json()["has_secret"] is True and "secret" not in r.json()
    endpoint = r.json()["id"]
    assert (
        client.post(
            f"{API}/endpoints",
            json={"community_id": a, "name": "x", "kind": "webhook", "url": "ftp://x"},
            headers=mgr,
        ).status_code
        == 422
    )

    chain = {
        "steps": [
            {"delay_s": 0, "targets": [{"kind": "console"}], "channels": ["console"]},
            {"delay_s": 30, "targets": [{"kind": "person", "ref": person["id"]}], "channels": ["sip", "sms"]},
            {"delay_s": 30, "targets": [{"kind": "endpoint", "ref": endpoint}], "channels": ["webhook"]},
        ],
        "loops": 2,
    }
    r = client.post(
        f"{API}/chains", json={"community_id": a, "name": "fire", "definition": chain}, headers=mgr
    )
    assert r.status_code == 201, r.text
    chain_id = r.json()["id"]
    bad = {"steps": [{"delay_s": 0, "targets": [{"kind": "person", "ref": 999}], "channels": ["sip"]}]}
    r = client.post(f"{API}/chains", json={"community_id": a, "name": "bad", "definition": bad}, headers=mgr)
    assert r.status_code == 422 and "person 999" in r.json()["message"]
    r = client.post(
        f"{API}/chains", json={"community_id": a, "name": "bad", "definition": {"steps": "x"}}, headers=mgr
    )
    assert r.status_code == 422
    r = client.put(
        f"{API}/chains/{chain_id}", json={"community_id": a, "name": "fire", "definition": chain}, headers=mgr
    )
    assert r.json()["version"] == 2
    r = client.post(
        f"{API}/policies",
        json={"community_id": a, "name": "fire", "chain_id": chain_id, "alarm_types": ["fire_alarm"]},
        headers=mgr,
    )
    assert r.status_code == 201, r.text
    r = client.post(
        f"{API}/policies",
        json={"community_id": a, "name": "q", "chain_id": chain_id, "quiet_start_min": 1320},
        headers=mgr,
    )
    assert r.status_code == 422
    assert client.get(f"{API}/policies", headers=other).json() == []


def test_drill_incident_timeline_and_ack(client: TestClient, world: World) -> None:
    mgr, op, viewer = world.auth("manager_a"), world.auth("operator_a"), world.auth("viewer_a")
    a = world.ids["comm_a"]
    chain = {
        "steps": [
            {"delay_s": 0, "targets": [{"kind": "console"}], "channels": ["console"]},
            {"delay_s": 600, "targets": [{"kind": "console"}], "channels": ["console"]},
        ]
    }
    chain_id = client.post(
        f"{API}/chains", json={"community_id": a, "name": "d", "definition": chain}, headers=mgr
    ).json()["id"]
    assert client.post(f"{API}/chains/{chain_id}/drill", headers=viewer).status_code == 403
    r = client.post(f"{API}/chains/{chain_id}/drill", headers=op)
    assert r.status_code == 201 and r.json()["drill"] is True
    incident = r.json()["id"]
    worker = EscalationWorker(world.url, LinkageSettings(), {})
    try:
        worker.step()
    finally:
        worker.close()
    detail = client.get(f"{API}/incidents/{incident}", headers=viewer).json()
    assert detail["drill"] is True and detail["summary"].startswith("联动演练")
    assert [(d["channel"], d["status"]) for d in detail["deliveries"]] == [("console", "delivered")]
    assert detail["next_step"] == 1 and datetime.fromisoformat(detail["next_step_at"]) > datetime.now(UTC)
    assert [e["kind"] for e in detail["timeline"]][:3] == ["started", "step", "attempt"]
    assert client.get(f"{API}/incidents/{incident}", headers=world.auth("manager_b")).status_code == 404
    r = client.post(f"{API}/incidents/{incident}/ack", json={"via": "console", "comment": "收到"}, headers=op)
    assert r.json() == {"incident_id": incident, "acknowledged": True, "state": "acknowledged"}
    r = client.post(f"{API}/incidents/{incident}/ack", json={}, headers=op)
    assert r.json()["acknowledged"] is False
    page = client.get(f"{API}/incidents", params={"state": "acknowledged", "limit": 1}, headers=viewer).json()
    assert [i["id"] for i in page["items"]] == [incident]
