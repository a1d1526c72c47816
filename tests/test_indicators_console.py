"""The indicator tab of the console in Debian's headless Chromium: a maintenance worker saves a record
with a photo on a phone-sized page (the row and its attachment land in the database), and the manager
views the score sheet and downloads the PDF. Screenshots go to test-artifacts/."""

from __future__ import annotations

import pypdf
from playwright.sync_api import Page, expect
from test_api_support import PASSWORD, LiveServer, World, live, world
from test_console_browser import ARTIFACTS, page

from storage.db import connect

__all__ = ["live", "page", "world"]


def _login(page: Page, live: LiveServer, who: str) -> None:
    page.goto(f"{live.base}/console/")
    page.fill("input[name=username]", who)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("#live")).to_have_text("实时", timeout=10_000)


def test_record_on_a_phone_then_download_the_report(
    live: LiveServer, world: World, page: Page, tmp_path
) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    _login(page, live, "operator_a")
    page.click("button[data-tab=indicators]")
    form = page.locator("#rec-form")
    form.locator("input[name=device_uid]").fill("smk-a1")
    form.locator("select[name=kind]").select_option("test")
    form.locator("input[name=by]").fill("王师傅")
    photo = tmp_path / "现场.png"
    photo.write_bytes(b"\x89PNG\r\n\x1a\n fake")
    form.locator("input[name=photo]").set_input_files(str(photo))
    form.locator("button[type=submit]").click()
    expect(page.locator("#rec-status")).to_have_text("已保存")
    expect(page.locator("#rec-list li")).to_contain_text("smk-a1")
    page.screenshot(path=str(ARTIFACTS / "console-maintenance-phone.png"), full_page=True)
    with connect(world.url) as conn:
        row = conn.execute(
            "SELECT r.kind, r.performed_by, a.filename FROM maintenance_records r "
            "JOIN evidence_attachments a ON a.id = r.attachments[1] WHERE r.community_id = %s",
            (world.ids["comm_a"],),
        ).fetchone()
    assert row == ("test", "王师傅", "现场.png")

    page.set_viewport_size({"width": 1280, "height": 860})
    page.click("button[data-tab=indicators]")
    page.click("button[data-ind=html]")
    frame = page.frame_locator("#ind-frame")
    expect(frame.locator("h1")).to_have_text("智慧社区指标核验报告", timeout=10_000)
    expect(frame.locator("body")).to_contain_text("电动自行车充电桩位")
    page.screenshot(path=str(ARTIFACTS / "console-indicators.png"), full_page=True)
    with page.expect_download(timeout=30_000) as download:
        page.click("button[data-ind=pdf]")
    path = tmp_path / "report.pdf"
    download.value.save_as(path)
    text = pypdf.PdfReader(path).pages[1].extract_text()
    assert "汇总" in text
