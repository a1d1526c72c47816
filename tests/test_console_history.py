"""The alarm history tab and the alarm detail in Debian's headless Chromium (issue 13 §3, §6, §7): the
history search, the CSV and XLSX exports opened with the csv module and openpyxl (the rows on screen,
none of another community's), the chart's threshold line, the escalation timeline in the alarm
detail, and a phone viewport. Screenshots go to test-artifacts/."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

from openpyxl import load_workbook
from playwright.sync_api import Browser, Page, expect, sync_playwright
from points_support import insert_points
from test_alarm_history import NOW, _ended, escalated
from test_api_support import PASSWORD, LiveServer, World, live, world
from test_console_browser import ARTIFACTS, CHROMIUM, LAUNCH_ARGS, page

from api.alarms.export import HEADERS
from storage.db import connect

__all__ = ["live", "page", "world"]


def _login(page: Page, live: LiveServer, user: str = "operator_a") -> None:
    page.goto(f"{live.base}/console/")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("#live")).to_have_text("实时", timeout=10_000)


def _rows(page: Page) -> list[int]:
    return [int(v) for v in page.locator("#h-rows tr").evaluate_all("rows => rows.map(r => r.dataset.alarm)")]


def test_history_search_and_both_exports(live: LiveServer, world: World, page: Page) -> None:
    e = _ended(world)
    _login(page, live)
    page.click("button[data-tab=history]")
    # the default window is the last 7 days: the 20-day-old low battery is not in it
    expect(page.locator("#h-rows tr")).to_have_count(2)
    assert _rows(page) == [e["overtemp"], e["false"]]
    expect(page.locator(f"#h-rows tr[data-alarm='{e['false']}']")).to_contain_text("误报")
    expect(page.locator(f"#h-rows tr[data-alarm='{e['false']}']")).to_contain_text("厨房油烟")
    # a month back, then only false alarms
    page.fill("#h-since", (NOW - timedelta(days=30)).astimezone().strftime("%Y-%m-%dT%H:%M"))
    page.click("#history-filters button[type=submit]")
    expect(page.locator("#h-rows tr")).to_have_count(3)
    page.select_option("#h-result", "false_alarm")
    page.click("#history-filters button[type=submit]")
    expect(page.locator("#h-rows tr")).to_have_count(1)
    page.screenshot(path=str(ARTIFACTS / "console-history-search.png"), full_page=True)

    with page.expect_download() as download:
        page.click("#h-export-xlsx")
    assert download.value.suggested_filename == "告警历史.xlsx"
    sheet = load_workbook(io.BytesIO(download.value.path().read_bytes())).active
    assert sheet is not None
    values = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert tuple(values[0]) == HEADERS
    assert [(v[0], v[HEADERS.index("处置结果")]) for v in values[1:]] == [(e["false"], "误报")]
    expect(page.locator("#h-message")).to_have_text("已导出 1 条")

    page.select_option("#h-result", "")
    with page.expect_download() as download:
        page.click("#h-export-csv")
    text = download.value.path().read_text(encoding="utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    assert tuple(rows[0]) == HEADERS
    assert [int(r[0]) for r in rows[1:]] == _rows_after_search(page)
    assert e["b_fire"] not in [int(r[0]) for r in rows[1:]]  # another community's alarm, never


def _rows_after_search(page: Page) -> list[int]:
    page.click("#history-filters button[type=submit]")
    expect(page.locator("#h-rows tr")).to_have_count(3)
    return _rows(page)


def test_the_export_cap_is_said_on_the_page(live: LiveServer, world: World, page: Page) -> None:
    _ended(world)
    live.app.state.settings = live.app.state.settings.model_copy(
        update={"api": live.app.state.settings.api.model_copy(update={"export_max_rows": 1})}
    )
    _login(page, live)
    page.click("button[data-tab=history]")
    expect(page.locator("#h-rows tr")).to_have_count(2)
    page.click("#h-export-csv")
    expect(page.locator("#h-message")).to_contain_text("一次最多导出 1 条")
    expect(page.locator("#h-message")).to_have_class("muted error")


def test_alarm_detail_has_the_threshold_line_and_the_escalation_timeline(
    live: LiveServer, world: World, page: Page
) -> None:
    ids = world.ids
    with connect(world.url, autocommit=True) as conn, conn.cursor() as cur:
        start = NOW - timedelta(minutes=70)
        insert_points(
            conn,
            [(start + timedelta(minutes=i), ids["chg-a1"], "port_temp_c", 1, 50.0 + i) for i in range(60)],
        )
        details = '{"port": 1, "port_temp_c": 82.0}'
        cur.execute("UPDATE alarms SET details = %s WHERE id = %s", (details, ids["alarm_a2"]))
    incident = escalated(world, ids["alarm_a"])
    _login(page, live)

    page.locator(f"#board [data-alarm='{ids['alarm_a2']}'] button[data-act=detail]").click()
    title = page.locator("#detail .chart-title").first
    expect(title).to_have_text("端口温度 (°C) #1", timeout=10_000)
    expect(title).to_have_attribute("data-trigger", "true")
    line = page.locator("#detail svg.chart line.threshold").first
    expect(line).to_have_attribute("data-threshold", "80")  # ebike_charger.port_over_temp_c default
    expect(page.locator("#detail .chart-threshold").first).to_contain_text("报警阈值 ≥ 80 °C")
    # the line crosses the chart inside the readings' range (50–109 °C): (109 − 80) / 59 of the way down
    y = float(line.get_attribute("y1") or "nan")
    assert abs(y - (10 + (109 - 80) / 59 * 166)) < 1
    expect(page.locator("#escalation")).to_contain_text("此告警未触发联动升级")
    page.screenshot(path=str(ARTIFACTS / "console-detail-threshold.png"), full_page=True)
    page.click("#detail-close")

    page.locator(f"#board [data-alarm='{ids['alarm_a']}'] button[data-act=detail]").click()
    esc = page.locator(f"#escalation [data-incident='{incident}']")
    expect(esc).to_be_visible(timeout=10_000)
    expect(esc.locator(".reached")).to_have_text("已联系到: 王经理、保安 李师傅")
    expect(esc.locator("tr[data-status]")).to_have_count(3)
    expect(esc.locator("tr[data-status=no_answer]")).to_contain_text("无人接听")
    expect(esc.locator("tr[data-status=acknowledged]")).to_contain_text("电话")
    expect(esc.locator("li[data-kind=started]")).to_contain_text("开始升级")
    expect(esc.locator(".incident-state").first).to_have_text("已确认")
    expect(esc).to_contain_text("按键确认 13800000002")  # who acknowledged: the guard's phone, by DTMF
    expect(esc).not_to_contain_text("attempt")  # Chinese first: no raw audit kinds
    page.screenshot(path=str(ARTIFACTS / "console-detail-escalation.png"), full_page=True)


def test_history_and_detail_on_a_phone(live: LiveServer, world: World) -> None:
    e = _ended(world)
    assert CHROMIUM.exists(), "Debian's chromium is missing: deploy/bootstrap.sh installs it"
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser: Browser = p.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            context = browser.new_context(
                viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True, has_touch=True,
                locale="zh-CN",
            )  # fmt: skip
            phone = context.new_page()
            _login(phone, live)
            phone.click("button[data-tab=history]")
            row = phone.locator(f"#h-rows tr[data-alarm='{e['false']}']")
            expect(row).to_be_visible()
            expect(row.locator("td").nth(2)).to_be_visible()  # where it was: kept on a phone
            expect(row.locator("td").nth(2)).to_contain_text("gas_x1")
            # one column of cells: nothing wider than the screen
            width = phone.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, width
            phone.screenshot(path=str(ARTIFACTS / "console-history-phone.png"), full_page=True)
            row.locator("button[data-history-open]").click()
            expect(phone.locator("#detail")).to_be_visible()
            expect(phone.locator("#detail .history li[data-action=resolved]")).to_contain_text("误报")
            phone.screenshot(path=str(ARTIFACTS / "console-history-phone-detail.png"), full_page=True)
        finally:
            browser.close()
