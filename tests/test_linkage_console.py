"""The console's linkage tab in Debian's headless Chromium: the on-duty roster, a drill incident
marked 演练 with who was notified, by which channel and the outcome, the next step's countdown, and
acknowledgement from the page stopping it (the database agrees)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from playwright.sync_api import Page, expect
from test_api_support import PASSWORD, LiveServer, World, live, world
from test_console_browser import ARTIFACTS, page

from alerts.escalation.config import LinkageSettings
from alerts.escalation.worker import EscalationWorker, start_drill
from storage import escalation as store
from storage.db import connect

__all__ = ["live", "page", "world"]


def test_linkage_tab_roster_incident_and_ack(live: LiveServer, world: World, page: Page) -> None:
    a = world.ids["comm_a"]
    with connect(world.url, autocommit=True) as conn:
        person = store.create_person(conn, community_id=a, name="张经理", phone="13800000001")
        store.set_schedule(conn, person.id, [([1, 2, 3, 4, 5, 6, 7], 0, 1440)])
        chain = store.save_chain(
            conn,
            community_id=a,
            name="drill",
            definition={
                "steps": [
                    {"delay_s": 0, "targets": [{"kind": "console"}], "channels": ["console"]},
                    {"delay_s": 900, "targets": [{"kind": "person", "ref": person.id}], "channels": ["sip"]},
                ]
            },
        )
        incident = start_drill(conn, community_id=a, chain_id=chain.id, actor="test", now=datetime.now(UTC))
    worker = EscalationWorker(world.url, LinkageSettings(), {})
    try:
        worker.step()
    finally:
        worker.close()
    page.goto(f"{live.base}/console/")
    page.fill("input[name=username]", "operator_a")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.click("button[data-tab=linkage]")
    expect(page.locator("#roster")).to_contain_text("张经理")
    expect(page.locator("#roster")).to_contain_text("在岗")
    card = page.locator(f"[data-incident='{incident.id}']")
    expect(card).to_contain_text("演练")
    expect(card).to_contain_text("升级中")
    expect(card.locator("[data-countdown]")).to_have_text(re.compile(r"^1[45]:\d\d$"))  # step due in 15 min
    card.locator("button[data-incident-open]").click()
    expect(page.locator("#detail-content")).to_contain_text("值班台")
    expect(page.locator("#detail-content")).to_contain_text("已送达")
    page.screenshot(path=str(ARTIFACTS / "console-linkage-incident.png"), full_page=True)
    page.click(f"button[data-incident-ack='{incident.id}']")
    expect(page.locator("#detail-content")).to_contain_text("已确认")
    with connect(world.url, autocommit=True) as conn:
        row = store.get_incident(conn, incident.id)
    assert row is not None and row.state == "acknowledged" and row.ended_by == "user:operator_a"
