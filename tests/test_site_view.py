"""The site view's API on the real database (issue 13 §1, §5): the demo compound as the simulator
registers it, with rooms and post numbers; a community's buildings as tiles in their real order with
their worst state and a "never reported" count of their own; a building's plan of floors and units with
its devices placed and coloured; an outdoor place (a shed) with its posts; the alarm body's structured
location; the CSV import's room and post columns. Scoped: another community's ids are the same 404 as
ids that do not exist; hostile ids are a 422, never a 500."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from test_api_support import World, client, world

from simulators.compound import Size, generate_fleet
from storage import alarms, site_plan
from storage.db import connect
from yiju.commands.simulate import register_fleet
from yiju.demo import DEMO_PREFIX, DEMO_SEED

__all__ = ["client", "world"]

V1 = "/api/v1"
FLEET = generate_fleet(Size.SMALL, 1, DEMO_SEED, prefix=DEMO_PREFIX)  # the demo's compound
COMPOUND = FLEET.compounds[0]


def _id(conn: Any, query: str, *args: Any) -> int:
    row = conn.execute(query, args).fetchone()
    assert row is not None, (query, args)
    return int(row[0])


def seed_demo_site(world: World) -> dict[str, int]:
    """The demo compound registered as the demo does, visible to operator_a, with 1号楼 partly
    reporting (3 online, 1 offline, the rest never heard from), a fire in room 601, and a shed post
    whose mains failed and that then went offline."""
    register_fleet(world.url, FLEET)
    register_fleet(world.url, FLEET)  # a second demo run registers the same compound again: no change
    now = datetime.now(UTC)
    ids: dict[str, int] = {}
    with connect(world.url, autocommit=True) as conn:
        cid = ids["community"] = _id(
            conn, "SELECT id FROM communities WHERE code = %s", COMPOUND.community.code
        )
        conn.execute(
            "INSERT INTO user_communities (user_id, community_id) VALUES (%s, %s)",
            (world.ids["user_operator_a"], cid),
        )
        ids["b01"] = _id(conn, "SELECT id FROM buildings WHERE community_id = %s AND code = 'b01'", cid)
        b01 = [d.uid for d in COMPOUND.in_building("b01")]
        for uid, online in ((b01[0], True), (b01[1], True), (b01[2], True), (b01[3], False)):
            conn.execute(
                "INSERT INTO device_presence (device_id, online, last_seen) "
                "SELECT id, %s, %s FROM devices WHERE uid = %s",
                (online, now - timedelta(minutes=5), uid),
            )
        ids["smk601"] = _id(conn, "SELECT id FROM devices WHERE uid = %s", f"{DEMO_PREFIX}001-smk-b01u1r601")
        ids["fire"] = alarms.raise_or_update(
            conn, community_id=cid, device_id=ids["smk601"], type="fire_alarm", severity="critical",
            at=now - timedelta(minutes=3), source="device", details={"state": "alarm"},
        ).alarm.id  # fmt: skip
        post = f"{DEMO_PREFIX}001-chg-s01p2"
        ids["post"] = _id(conn, "SELECT id FROM devices WHERE uid = %s", post)
        ids["shed"] = _id(conn, "SELECT location_id FROM devices WHERE uid = %s", post)
        conn.execute(
            "INSERT INTO device_presence (device_id, online, last_seen) VALUES (%s, false, %s)",
            (ids["post"], now - timedelta(minutes=2)),
        )
        ids["power_loss"] = alarms.raise_or_update(
            conn, community_id=cid, device_id=ids["post"], type="charger_fault", severity="major",
            at=now - timedelta(minutes=4), source="device", details={"kind": "power_loss", "port": 0},
        ).alarm.id  # fmt: skip
        ids["offline"] = alarms.raise_or_update(
            conn, community_id=cid, device_id=ids["post"], type="device_offline", severity="minor",
            at=now - timedelta(minutes=2), source="device", details={"reason": "power_loss"},
        ).alarm.id  # fmt: skip
    return ids


def device_id(conn: Any, uid: str) -> int:
    return _id(conn, "SELECT id FROM devices WHERE uid = %s", uid)


@pytest.fixture
def site(world: World) -> dict[str, int]:
    return seed_demo_site(world)


def test_buildings_come_as_tiles_in_their_real_order_with_never_reported_counted(
    client: TestClient, world: World, site: dict[str, int]
) -> None:
    r = client.get(f"{V1}/communities/{site['community']}/site", headers=world.auth("operator_a"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert [b["name"] for b in body["buildings"]] == [b.name for b in COMPOUND.buildings]
    b01 = body["buildings"][0]
    devices = len(COMPOUND.in_building("b01"))
    assert b01["counts"] | {} == {
        "devices": devices, "online": 3, "offline": 1, "never_reported": devices - 4, "disabled": 0,
        "critical": 1, "major": 0, "minor": 0, "warning": 0, "worst": "critical",
    }  # fmt: skip
    # the counts add up: nothing is left unexplained
    for b in body["buildings"]:
        c = b["counts"]
        assert c["online"] + c["offline"] + c["never_reported"] + c["disabled"] == c["devices"]
    assert body["buildings"][1]["counts"]["worst"] == "never_reported"
    sheds = [a for a in body["areas"] if a["kind"] == "shed"]
    assert [s["name"] for s in sheds] == [f"{n}号充电棚" for n in range(1, len(sheds) + 1)]
    assert sheds[0]["counts"]["worst"] == "major" and sheds[0]["counts"]["offline"] == 1
    assert body["counts"]["devices"] == len(COMPOUND.devices)
    assert body["counts"]["never_reported"] == len(COMPOUND.devices) - 5


def test_real_order_is_by_the_numbers_in_the_codes(client: TestClient, world: World) -> None:
    with connect(world.url, autocommit=True) as conn:
        for code in ("B10", "B2"):
            conn.execute(
                "INSERT INTO buildings (community_id, code, name) VALUES (%s, %s, %s)",
                (world.ids["comm_a"], code, f"{code[1:]}号楼"),
            )
    r = client.get(f"{V1}/communities/{world.ids['comm_a']}/site", headers=world.auth("viewer_a"))
    assert [b["name"] for b in r.json()["buildings"]] == ["1号楼", "2号楼", "10号楼"]
    assert site_plan.natural_key("b2") < site_plan.natural_key("b10")


def test_a_building_plan_places_devices_by_unit_floor_and_room(
    client: TestClient, world: World, site: dict[str, int]
) -> None:
    r = client.get(f"{V1}/buildings/{site['b01']}/plan", headers=world.auth("operator_a"))
    assert r.status_code == 200, r.text
    plan = r.json()
    assert plan["floors"] == list(range(8, 0, -1)) and plan["units"] == ["1", "2"]
    by_uid = {d["uid"]: d for d in plan["devices"]}
    assert len(by_uid) == len(COMPOUND.in_building("b01"))
    smoke = by_uid[f"{DEMO_PREFIX}001-smk-b01u1r601"]
    assert (smoke["unit"], smoke["floor"], smoke["room"], smoke["state"]) == ("1", 6, "601", "critical")
    assert smoke["worst_alarm_id"] == site["fire"]
    lobby = by_uid[f"{DEMO_PREFIX}001-door-b01u2"]
    assert (lobby["unit"], lobby["floor"], lobby["location_kind"]) == ("2", None, "lobby")
    states = {d["state"] for d in plan["devices"]}
    assert states == {"critical", "online", "offline", "never_reported"}


def test_a_shed_lists_its_posts_with_their_numbers(
    client: TestClient, world: World, site: dict[str, int]
) -> None:
    r = client.get(f"{V1}/locations/{site['shed']}/plan", headers=world.auth("operator_a"))
    assert r.status_code == 200, r.text
    plan = r.json()
    assert plan["kind"] == "shed" and plan["name"] == "1号充电棚"
    posts = [d for d in plan["devices"] if d["family"] == "ebike_charger"]
    assert [d["post"] for d in posts] == [str(n) for n in range(1, len(posts) + 1)]
    post = next(d for d in posts if d["id"] == site["post"])
    assert (
        post["state"] == "major" and post["open_alarms"] == 2 and post["worst_alarm_id"] == site["power_loss"]
    )


def test_the_alarm_says_where_in_structured_fields(
    client: TestClient, world: World, site: dict[str, int]
) -> None:
    fire = client.get(f"{V1}/alarms/{site['fire']}", headers=world.auth("operator_a")).json()
    assert {k: fire[k] for k in ("building_name", "unit", "floor", "room", "location_kind")} == {
        "building_name": "1号楼", "unit": "1", "floor": 6, "room": "601", "location_kind": "floor",
    }  # fmt: skip
    cut = client.get(f"{V1}/alarms/{site['power_loss']}", headers=world.auth("operator_a")).json()
    assert (cut["location_name"], cut["post"], cut["building_name"]) == ("1号充电棚", "2", None)


def test_other_communities_ids_are_the_same_404_as_missing_ones(
    client: TestClient, world: World, site: dict[str, int]
) -> None:
    other = world.auth("manager_b")
    for path, missing in (
        (f"/communities/{site['community']}/site", "/communities/999999/site"),
        (f"/buildings/{site['b01']}/plan", "/buildings/999999/plan"),
        (f"/locations/{site['shed']}/plan", "/locations/999999/plan"),
    ):
        theirs, nothing = client.get(V1 + path, headers=other), client.get(V1 + missing, headers=other)
        assert theirs.status_code == nothing.status_code == 404
        assert theirs.json()["message"].split()[0] == nothing.json()["message"].split()[0]
    assert client.get(f"{V1}/communities/{site['community']}/site").status_code == 401


@pytest.mark.parametrize(
    "bad", ["0", "-1", str(2**63), "1e3", "abc", "%00", "1;DROP TABLE devices", "9" * 400]
)
def test_hostile_ids_are_refused_never_a_500(client: TestClient, world: World, bad: str) -> None:
    for path in (f"/communities/{bad}/site", f"/buildings/{bad}/plan", f"/locations/{bad}/plan"):
        r = client.get(V1 + path, headers=world.auth("admin"))
        assert r.status_code in (404, 422), (path, r.status_code, r.text)


def test_csv_import_fills_room_and_post(client: TestClient, world: World) -> None:
    a = world.ids["comm_a"]
    csv_text = "\n".join(
        [
            "设备编号,设备类型,楼栋,单元,楼层,房号,位置编号,位置类型,位置名称,桩号",
            "smk-r1,烟感,B1,2,6,602,,,,",
            "chg-p7,充电桩,,,,,shed9,shed,9号充电棚,7",
        ]
    )
    r = client.post(
        f"{V1}/devices/import?community_id={a}",
        content=csv_text.encode("gbk"),
        headers={**world.auth("manager_a"), "Content-Type": "text/csv"},
    )
    assert r.status_code == 200, r.text
    with connect(world.url) as conn:
        rows = {
            r[0]: r[1:]
            for r in conn.execute(
                "SELECT uid, room, post FROM devices WHERE uid IN ('smk-r1', 'chg-p7')"
            ).fetchall()
        }
    assert rows["smk-r1"] == ("602", None) and rows["chg-p7"] == (None, "7")
    # a PATCH that does not name them keeps them (the registry row is rewritten whole)
    with connect(world.url) as conn:
        did = _id(conn, "SELECT id FROM devices WHERE uid = 'smk-r1'")
    r = client.patch(f"{V1}/devices/{did}", json={"model": "JTY-GF"}, headers=world.auth("manager_a"))
    assert r.status_code == 200, r.text
    with connect(world.url) as conn:
        assert conn.execute("SELECT room FROM devices WHERE id = %s", (did,)).fetchone() == ("602",)
