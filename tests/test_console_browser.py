"""The console in Debian's headless Chromium (driven by Playwright, never `playwright install`): an
operator logs in, a critical alarm raised through storage.alarms (what the engine calls) appears on the
board within 2 s with its visual alert, the operator acknowledges it in the page, and the change shows
on the page and in the database. Screenshots go to test-artifacts/ for a human to look at."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright
from test_api_support import PASSWORD, LiveServer, World, live, world

from storage import alarms
from storage.db import connect

__all__ = ["live", "world"]

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
LAUNCH_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
APPEAR_WITHIN_S = 2.0


@pytest.fixture
def page() -> Page:
    assert CHROMIUM.exists(), "Debian's chromium is missing: deploy/bootstrap.sh installs it"
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 860}, locale="zh-CN")
            yield context.new_page()
        finally:
            browser.close()


def test_alarm_appears_and_is_acknowledged_in_the_page(live: LiveServer, world: World, page: Page) -> None:
    page.goto(f"{live.base}/console/")
    page.fill("input[name=username]", "operator_a")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("#live")).to_have_text("实时", timeout=10_000)
    expect(page.locator(f"#board [data-alarm='{world.ids['alarm_a']}']")).to_be_visible()
    # community B's alarm is never shown to A's operator
    expect(page.locator(f"[data-alarm='{world.ids['alarm_b']}']")).to_have_count(0)

    with connect(world.url, autocommit=True) as conn:
        raised_at = time.monotonic()
        change = alarms.raise_or_update(
            conn,
            community_id=world.ids["comm_a"],
            device_id=world.ids["chg-a1"],
            type="charger_smoke",
            severity="critical",
            at=datetime.now(UTC),
            source="device",
        )
    card = page.locator(f"#board [data-alarm='{change.alarm.id}']")
    card.wait_for(state="visible", timeout=APPEAR_WITHIN_S * 1000)
    appeared_s = time.monotonic() - raised_at
    assert appeared_s < APPEAR_WITHIN_S
    expect(card).to_have_class("alarm card critical new-critical")
    # the banner names the worst unacknowledged critical alarm: the fire raised before login (life safety)
    expect(page.locator("#critical-banner")).to_be_visible()
    expect(page.locator("#critical-banner")).to_contain_text("火灾报警")
    expect(page.locator("#critical-banner")).to_contain_text("(+1)")
    # critical first: the new critical alarm is ahead of the major one
    order = page.locator("#board [data-alarm]").evaluate_all("els => els.map(e => Number(e.dataset.alarm))")
    assert order.index(change.alarm.id) < order.index(world.ids["alarm_a2"])
    page.screenshot(path=str(ARTIFACTS / "console-board-new-critical.png"), full_page=True)

    card.locator("button[data-act=acknowledge]").click()
    expect(card).to_have_attribute("data-acknowledged", "true")
    expect(card.locator(".acked")).to_have_text("已确认")
    # the fire raised before login is still unacknowledged: the banner stays until it is acknowledged too
    expect(page.locator("#critical-banner")).not_to_contain_text("(+1)")
    expect(page.locator("#critical-banner")).to_be_visible()
    page.locator(f"#board [data-alarm='{world.ids['alarm_a']}'] button[data-act=acknowledge]").click()
    expect(page.locator("#critical-banner")).to_be_hidden()
    with connect(world.url) as conn:
        row = conn.execute(
            "SELECT acknowledged, acknowledged_by FROM alarms WHERE id = %s", (change.alarm.id,)
        ).fetchone()
    assert row == (True, "user:operator_a")

    # the detail of the over-temperature alarm shows the device's telemetry as a chart
    page.locator(f"#board [data-alarm='{world.ids['alarm_a2']}'] button[data-act=detail]").click()
    expect(page.locator("#detail svg.chart path.line")).to_have_count(1, timeout=5000)
    page.fill("#comment-form input", "已派人到场")
    page.click("#comment-form button")
    expect(page.locator("#detail .history")).to_contain_text("已派人到场")
    expect(page.locator("#detail svg.chart path.line")).to_have_count(1, timeout=5000)
    page.screenshot(path=str(ARTIFACTS / "console-alarm-detail.png"))
    page.click("#detail-close")

    # English switch, and the phone layout
    page.locator("header .lang-toggle").click()
    expect(card.locator(".acked")).to_have_text("Acknowledged")
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(ARTIFACTS / "console-phone-en.png"), full_page=True)
    page.locator("header .lang-toggle").click()
    page.click("button[data-tab=devices]")
    expect(page.locator("#device-rows tr")).to_have_count(2)
    page.screenshot(path=str(ARTIFACTS / "console-phone-devices.png"), full_page=True)
    print(f"critical alarm on the board {appeared_s * 1000:.0f} ms after it was raised")


def test_dead_letters_view_shows_the_communitys_refused_messages(
    live: LiveServer, world: World, page: Page
) -> None:
    with connect(world.url, autocommit=True) as conn:
        for cid, uid, reason in (
            (world.ids["comm_a"], "smk-a1", "schema_violation"),
            (world.ids["comm_a"], "ghost-1", "unknown_device"),
            (world.ids["comm_b"], "smk-b1", "malformed_json"),
        ):
            conn.execute(
                "INSERT INTO dead_letters (received_at, topic, payload, payload_size, reason, detail, "
                "device_uid, community_id) VALUES (now(), %s, %s, 14, %s, 'seq: not an integer', %s, %s)",
                (f"yiju/v1/x/{uid}/telemetry", b'{"seq": "123"}', reason, uid, cid),
            )
    page.goto(f"{live.base}/console/")
    page.fill("input[name=username]", "operator_a")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.click("button[data-tab=deadletters]")
    rows = page.locator("#dl-rows tr")
    expect(rows).to_have_count(2)  # community B's is not shown
    expect(page.locator("#dl-rows")).to_contain_text("字段不符合协议")
    expect(page.locator("#dl-rows")).to_contain_text("未登记设备")
    page.select_option("#dl-reason", "unknown_device")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-reason", "unknown_device")
    page.locator("header .lang-toggle").click()
    expect(page.locator("#tab-deadletters h2")).to_have_text("Refused device messages")
    expect(rows.first).to_contain_text("Unknown device")
    page.screenshot(path=str(ARTIFACTS / "console-dead-letters-en.png"), full_page=True)
