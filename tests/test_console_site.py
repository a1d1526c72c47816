"""The site view and the derived alarms in Debian's headless Chromium (issue 13 §1, §4, §5): the demo
compound's buildings as tiles in their real order with a "never reported" count of their own, a
building's plan drawn as SVG with its devices placed and coloured (click through to the device and on
to its alarm), a shed with its posts; on the board the card says building · unit · floor · room and
shed · post · port, and the offline alarms that follow an incident or a post's power loss sit under
their cause. Screenshots go to test-artifacts/."""

from __future__ import annotations

from datetime import timedelta

from playwright.sync_api import Page, expect
from test_api_support import PASSWORD, LiveServer, World, live, world
from test_console_browser import ARTIFACTS, page
from test_site_view import COMPOUND, device_id, seed_demo_site

from storage import alarms
from storage.db import connect
from yiju.demo import DEMO_PREFIX

__all__ = ["live", "page", "world"]


def _login(page: Page, live: LiveServer) -> None:
    page.goto(f"{live.base}/console/")
    page.fill("input[name=username]", "operator_a")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("#live")).to_have_text("实时", timeout=10_000)


def test_the_site_view_renders_the_demo_compound(live: LiveServer, world: World, page: Page) -> None:
    site = seed_demo_site(world)
    _login(page, live)
    page.click(".tabs button[data-tab=site]")
    demo = page.locator(f".site-community[data-community='{site['community']}']")
    tiles = demo.locator(".site-tiles").first.locator(".site-tile")
    expect(tiles).to_have_count(len(COMPOUND.buildings))
    assert tiles.locator("strong").all_inner_texts() == [b.name for b in COMPOUND.buildings]
    b01 = tiles.first
    devices = len(COMPOUND.in_building("b01"))
    expect(b01).to_have_attribute("data-worst", "critical")
    expect(b01.locator(".counts")).to_have_text(
        f"{devices} 台设备 · 3 在线 · 1 离线 · {devices - 4} 从未上报"
    )
    expect(tiles.nth(1)).to_have_attribute("data-worst", "never_reported")
    page.screenshot(path=str(ARTIFACTS / "console-site-community.png"), full_page=True)

    b01.click()
    plan = page.locator("svg.site-plan")
    expect(plan).to_have_attribute("data-plan", f"building:{site['b01']}")
    expect(plan.locator("[data-device]")).to_have_count(devices)
    expect(plan.locator(".unit-head")).to_have_text(["1单元", "2单元"])
    expect(plan.locator(".floor-label").first).to_have_text("8层")
    expect(plan.locator(".floor-label").last).to_have_text("大堂")
    fire = plan.locator(f"[data-device='{site['smk601']}']")
    expect(fire).to_have_attribute("data-state", "critical")
    expect(plan.locator("[data-state=never_reported]")).to_have_count(devices - 5)
    expect(plan.locator("rect.cell.state-critical")).to_have_count(1)
    page.screenshot(path=str(ARTIFACTS / "console-site-building-plan.png"), full_page=True)

    fire.click()  # click through to the device, and on to its alarm
    drawer = page.locator("#detail")
    expect(drawer.locator("[data-device-detail]")).to_have_text(f"{DEMO_PREFIX}001-smk-b01u1r601")
    drawer.locator(f"[data-open-alarm='{site['fire']}']").click()
    expect(drawer.locator(".history li[data-action=raised]")).to_have_count(1, timeout=10_000)
    page.click("#detail-close")

    page.click("[data-site-back]")
    shed = demo.locator(f".site-tile[data-place=location][data-id='{site['shed']}']")
    expect(shed).to_have_attribute("data-worst", "major")
    shed.click()
    expect(page.locator("svg.site-plan")).to_have_attribute("data-plan", f"shed:{site['shed']}")
    expect(page.locator("svg.site-plan text.room").first).to_have_text("1号桩")
    expect(page.locator(f"svg.site-plan [data-device='{site['post']}']")).to_have_attribute(
        "data-state", "major"
    )
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(ARTIFACTS / "console-phone-site-shed.png"), full_page=True)
    page.locator("header .lang-toggle").click()
    page.click("[data-site-back]")
    expect(b01.locator(".counts")).to_contain_text(f"{devices - 4} Never reported")


def test_the_card_says_where_and_offline_alarms_sit_under_their_cause(
    live: LiveServer, world: World, page: Page
) -> None:
    site = seed_demo_site(world)
    with connect(world.url, autocommit=True) as conn:
        row = conn.execute("SELECT first_at FROM alarms WHERE id = %s", (site["fire"],)).fetchone()
        assert row is not None
        fire_at = row[0]
        door = device_id(conn, f"{DEMO_PREFIX}001-door-b01u1")
        cid = site["community"]
        failed = alarms.raise_or_update(
            conn, community_id=cid, device_id=door, type="linkage_failed", severity="critical",
            at=fire_at + timedelta(seconds=40), source="linkage", details={"action": "door_release"},
        ).alarm.id  # fmt: skip
        # the incident's devices then fall silent: their offline alarms follow the fire
        followers = [
            alarms.raise_or_update(
                conn, community_id=cid, device_id=device, type="device_offline", severity="minor",
                at=fire_at + timedelta(minutes=2), details={"reason": "missed_heartbeats"},
            ).alarm.id
            for device in (door, site["smk601"])
        ]  # fmt: skip
        lone = device_id(conn, f"{DEMO_PREFIX}001-lmp-r01n01")
        alone = alarms.raise_or_update(
            conn, community_id=cid, device_id=lone, type="device_offline", severity="minor",
            at=fire_at, details={"reason": "missed_heartbeats"},
        ).alarm.id  # fmt: skip
    _login(page, live)
    page.select_option("#community", str(site["community"]))
    top = page.locator("#board > article").first
    expect(top).to_have_attribute("data-alarm", str(site["fire"]))
    expect(top).to_have_attribute("data-members", "3")
    expect(top.locator(":scope > .where")).to_have_text(
        f"1号楼 · 1单元 · 6层 · 601室 · {DEMO_PREFIX}001-smk-b01u1r601"
    )
    expect(top.locator(f".members [data-alarm='{failed}'] .failed-action")).to_have_text("失败动作: 门禁释放")
    for follower in followers:
        card = top.locator(f".members [data-alarm='{follower}']")
        expect(card).to_have_attribute(
            "data-cause", str(site["fire"] if follower == followers[1] else failed)
        )
        expect(card.locator(".derived-mark")).to_contain_text("随后离线")
    expect(top.locator(".members summary")).to_have_text("关联告警 3 · 其中随后离线 2")
    # the post's power loss leads; the post's offline alarm sits under it; the shed · post · port
    cut = page.locator(f"#board > article[data-alarm='{site['power_loss']}']")
    expect(cut).to_have_attribute("data-members", "1")
    expect(cut.locator(f".members [data-alarm='{site['offline']}']")).to_have_attribute(
        "data-cause", str(site["power_loss"])
    )
    expect(cut.locator(":scope > .where")).to_have_text(f"1号充电棚 · 2号桩 · {DEMO_PREFIX}001-chg-s01p2")
    # an offline alarm with no cause on the board stands on its own
    expect(page.locator(f"#board > article[data-alarm='{alone}']")).to_have_count(1)
    expect(page.locator(f"#board > article[data-alarm='{site['offline']}']")).to_have_count(0)
    page.screenshot(path=str(ARTIFACTS / "console-board-offline-under-cause.png"), full_page=True)
    page.locator("header .lang-toggle").click()
    expect(top.locator(":scope > .where")).to_have_text(
        f"1号楼 · unit 1 · floor 6 · room 601 · {DEMO_PREFIX}001-smk-b01u1r601"
    )
