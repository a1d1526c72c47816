"""The duty board in Debian's headless Chromium (issue 13): nothing vanishes (a self-cleared,
unacknowledged critical gas alarm stays until a person acknowledges it), the banner and the sound
repeat for alarms raised before login until they are acknowledged, mute lasts minutes and then the
sound comes back, a fire with its failed door release is one incident at the top of a board holding
ten other critical alarms, and the handling workflow runs end to end with the database rows checked.
Screenshots go to test-artifacts/."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from playwright.sync_api import Page, expect
from points_support import insert_points
from test_api_support import PASSWORD, LiveServer, World, live, world
from test_console_browser import ARTIFACTS, page

from storage import alarms
from storage.db import connect

__all__ = ["live", "page", "world"]

REPEAT_S = 1  # the page's repeat interval for this test (localStorage yiju.alarmRepeatS, 1..60 s)


def _device(conn: object, world: World, uid: str, family: str) -> int:
    row = conn.execute(  # type: ignore[attr-defined]
        "INSERT INTO devices (uid, community_id, location_id, family) "
        "SELECT %s, community_id, location_id, %s FROM devices WHERE id = %s RETURNING id",
        (uid, family, world.ids["smk-a1"]),
    ).fetchone()
    return int(row[0])


def _login(page: Page, live: LiveServer) -> None:
    page.add_init_script(f"localStorage.setItem('yiju.alarmRepeatS', '{REPEAT_S}')")
    page.goto(f"{live.base}/console/")
    page.fill("input[name=username]", "operator_a")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("#live")).to_have_text("实时", timeout=10_000)


def _beeps(page: Page) -> int:
    return int(page.locator("#critical-banner").get_attribute("data-beeps") or 0)


def test_nothing_vanishes_and_the_sound_repeats_until_acknowledged(
    live: LiveServer, world: World, page: Page
) -> None:
    now = datetime.now(UTC)
    with connect(world.url, autocommit=True) as conn:
        gas = _device(conn, world, "gas-a1", "gas_alarm")
        raised = alarms.raise_or_update(
            conn, community_id=world.ids["comm_a"], device_id=gas, type="gas_high_alarm",
            severity="critical", at=now - timedelta(minutes=10), source="device", details={"lel_pct": 27.0},
        )  # fmt: skip
        # it clears itself 8 minutes later, before anyone logged in
        alarms.clear(conn, raised.alarm.id, actor="engine", at=now - timedelta(minutes=2))
    gas_id = raised.alarm.id

    _login(page, live)
    banner = page.locator("#critical-banner")
    card = page.locator(f"#board [data-alarm='{gas_id}']")
    expect(card).to_have_attribute("data-status", "cleared")
    expect(card.locator(".cleared-mark")).to_have_text("已恢复 · 待确认")
    expect(card.locator(".reading")).to_have_text("27 %LEL")
    # raised before login: banner and a sound that repeats (the login click allowed audio)
    expect(banner).to_be_visible()
    expect(banner).to_have_attribute("data-audio", "running")
    expect(banner).to_contain_text("(+1)")
    page.wait_for_function("() => Number(document.querySelector('#critical-banner').dataset.beeps) >= 3")
    page.screenshot(path=str(ARTIFACTS / "console-board-cleared-unacked.png"), full_page=True)

    # mute: silent for 5 minutes, the banner says until when, then the sound comes back by itself
    banner.locator("#mute-sound").click()
    expect(banner).to_have_attribute("data-sounding", "false")
    muted_ms = page.evaluate("state.alertLoop.mutedUntil - Date.now()")
    assert 4.5 * 60e3 < muted_ms <= 5 * 60e3
    expect(banner).to_contain_text("已静音至")
    at_mute = _beeps(page)
    page.evaluate("state.alertLoop.mutedUntil = Date.now()")  # five minutes later
    page.wait_for_function(
        f"() => Number(document.querySelector('#critical-banner').dataset.beeps) >= {at_mute + 2}"
    )
    expect(banner).to_have_attribute("data-sounding", "true")

    # acknowledging the cleared gas alarm takes it off the board; the fire still sounds
    card.locator("button[data-act=acknowledge]").click()
    expect(card).to_have_count(0)
    expect(banner).to_be_visible()
    expect(banner).not_to_contain_text("(+1)")
    with connect(world.url) as conn:
        row = conn.execute(
            "SELECT status, acknowledged, acknowledged_by FROM alarms WHERE id = %s", (gas_id,)
        ).fetchone()
    assert row == ("cleared", True, "user:operator_a")

    page.locator(f"#board [data-alarm='{world.ids['alarm_a']}'] button[data-act=acknowledge]").click()
    expect(banner).to_be_hidden()
    assert page.evaluate("state.alertLoop.timer") is None  # the repeat stopped, not just hidden


def test_a_fire_with_its_failed_door_release_is_one_incident_on_top(
    live: LiveServer, world: World, page: Page
) -> None:
    t0 = datetime.now(UTC) - timedelta(minutes=30)
    with connect(world.url, autocommit=True) as conn:
        fire_id = world.ids["alarm_a"]  # smk-a1, 1号楼, raised an hour ago
        fire_at = conn.execute("SELECT first_at FROM alarms WHERE id = %s", (fire_id,)).fetchone()[0]
        door = _device(conn, world, "door-a1", "access_door")
        failed = alarms.raise_or_update(
            conn, community_id=world.ids["comm_a"], device_id=door, type="linkage_failed",
            severity="critical", at=fire_at + timedelta(seconds=40), source="linkage",
            details={"action": "door_release"},
        )  # fmt: skip
        others = []
        for i in range(10):  # ten other critical alarms, some older than the fire, some newer
            charger = _device(conn, world, f"chg-x{i}", "ebike_charger")
            at = fire_at - timedelta(minutes=20) if i % 2 else t0 + timedelta(minutes=i)
            change = alarms.raise_or_update(
                conn, community_id=world.ids["comm_a"], device_id=charger, type="charger_smoke",
                severity="critical", at=at, source="device",
            )  # fmt: skip
            others.append(change.alarm.id)

    _login(page, live)
    top = page.locator("#board > article").first
    expect(page.locator("#board > article")).to_have_count(12)  # 10 + the incident + the major alarm
    expect(top).to_have_attribute("data-alarm", str(fire_id))
    expect(top).to_have_attribute("data-members", "1")
    member = top.locator(f".members [data-alarm='{failed.alarm.id}']")
    expect(member).to_be_visible()
    expect(member.locator(".failed-action")).to_have_text("失败动作: 门禁释放")
    order = page.locator("#board > article").evaluate_all("els => els.map(e => Number(e.dataset.alarm))")
    # the charger alarms follow, oldest first; the major over-temperature alarm is last
    assert order[1:11] == sorted(others, key=lambda i: (others.index(i) % 2 == 0, others.index(i)))
    assert order[-1] == world.ids["alarm_a2"]
    page.screenshot(path=str(ARTIFACTS / "console-board-incident.png"), full_page=True)
    page.locator("header .lang-toggle").click()
    expect(member.locator(".failed-action")).to_have_text("Failed action: door release")


def test_the_handling_workflow_end_to_end(live: LiveServer, world: World, page: Page) -> None:
    alarm_id = world.ids["alarm_a2"]  # the charger's over-temperature alarm, raised by the engine
    with connect(world.url, autocommit=True) as conn:
        start = datetime.now(UTC) - timedelta(minutes=50)
        insert_points(  # the charger's real metric names; ambient_temp_c sorts first alphabetically
            conn,
            [
                (start + timedelta(minutes=i), world.ids["chg-a1"], metric, channel, 30.0 + i)
                for i in range(40)
                for metric, channel in (("ambient_temp_c", 0), ("port_temp_c", 1))
            ],
        )
    _login(page, live)
    page.locator(f"#board [data-alarm='{alarm_id}'] button[data-act=clear]").click()
    clear_reason = page.locator("#detail form[data-flow=clear] input")
    expect(clear_reason).to_be_focused()  # clearing asks for a reason first, never one click
    # the chart explains: the triggering metric first, named and with its unit
    expect(page.locator("#detail .chart-title").first).to_have_text("端口温度 (°C) #1", timeout=10_000)
    history = page.locator("#detail .history")
    page.click("#detail [data-detail-act=acknowledge]")
    expect(history.locator("li[data-action=acknowledged]")).to_have_count(1)
    flow = page.locator("#detail .workflow")
    flow.locator("form[data-flow=dispatch] input").fill("保安 王师傅")
    flow.locator("form[data-flow=dispatch] button").click()
    expect(history.locator("li[data-action=dispatched]")).to_have_count(1)
    flow.locator("form[data-flow=on-site] button").click()
    expect(history.locator("li[data-action=on_site]")).to_have_count(1)
    resolve = flow.locator("form[data-flow=resolve]")
    resolve.locator("select").select_option("false_alarm")
    resolve.locator("input").fill("充电器散热口被遮挡，已清理")
    resolve.locator("button").click()
    expect(history.locator("li[data-action=resolved]")).to_have_count(1)
    close = flow.locator("form[data-flow=close]")
    close.locator("input").fill("已恢复正常")
    close.locator("button").click()
    expect(page.locator("#detail .workflow")).to_have_count(0)
    expect(history.locator("li[data-action=closed]")).to_contain_text("结案 · operator_a — 已恢复正常")
    expect(history.locator("li[data-action=dispatched]")).to_contain_text("派遣 → 保安 王师傅")
    expect(history.locator("li[data-action=resolved]")).to_contain_text("处置结果: 误报")
    expect(history.locator("li[data-action=raised]")).to_contain_text("产生 · 系统")
    assert "user:" not in history.inner_text() and "engine" not in history.inner_text()
    page.screenshot(path=str(ARTIFACTS / "console-alarm-workflow.png"))
    page.click("#detail-close")
    expect(page.locator(f"#board [data-alarm='{alarm_id}']")).to_have_count(0)  # closed: off the board
    with connect(world.url) as conn:
        row = conn.execute(
            "SELECT status, handling, result, cleared_by FROM alarms WHERE id = %s", (alarm_id,)
        ).fetchone()
        steps = conn.execute(
            "SELECT action, actor, comment, details FROM alarm_transitions WHERE alarm_id = %s ORDER BY id",
            (alarm_id,),
        ).fetchall()
    assert row == ("cleared", "closed", "false_alarm", "user:operator_a")
    assert [s[0] for s in steps] == [
        "raised", "acknowledged", "dispatched", "on_site", "resolved", "cleared", "closed",
    ]  # fmt: skip
    assert steps[2][3] == {"to": "保安 王师傅"} and steps[4][2:] == (
        "充电器散热口被遮挡，已清理",
        {"result": "false_alarm"},
    )
    assert {s[1] for s in steps[1:]} == {"user:operator_a"}


def test_filters_and_batch_acknowledge(live: LiveServer, world: World, page: Page) -> None:
    now = datetime.now(UTC)
    with connect(world.url, autocommit=True) as conn:
        offline = []
        for i in range(3):  # the offline alarms that follow a power cut: one comment for all
            device = _device(conn, world, f"lgt-x{i}", "light")
            change = alarms.raise_or_update(
                conn, community_id=world.ids["comm_a"], device_id=device, type="device_offline",
                severity="warning", at=now - timedelta(minutes=3), details={"silent_s": 180.0},
            )  # fmt: skip
            offline.append(change.alarm.id)
    _login(page, live)
    cards = page.locator("#board > article")
    expect(cards).to_have_count(5)
    page.select_option("#f-severity", "warning")
    expect(cards).to_have_count(3)
    page.select_option("#f-family", "light")
    expect(cards).to_have_count(3)
    page.check("#pick-all")
    expect(page.locator("#batch-count")).to_have_text("3")
    page.fill("#batch-comment", "配电箱跳闸导致离线，已通知电工")
    page.click("#batch-ack")
    expect(page.locator("#board > article[data-acknowledged=true]")).to_have_count(3)
    page.select_option("#f-status", "unacked")
    expect(cards).to_have_count(0)
    page.select_option("#f-severity", "")
    page.select_option("#f-family", "")
    expect(cards).to_have_count(2)  # the fire and the over-temperature alarm: still unacknowledged
    expect(page.locator("#critical-banner")).to_be_visible()  # filters never silence the banner
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(ARTIFACTS / "console-phone-board-filters.png"), full_page=True)
    with connect(world.url) as conn:
        rows = conn.execute(
            "SELECT a.acknowledged_by, t.comment FROM alarms a JOIN alarm_transitions t ON t.alarm_id = a.id "
            "AND t.action = 'acknowledged' WHERE a.id = ANY(%s)",
            (offline,),
        ).fetchall()
        others = conn.execute(
            "SELECT count(*) FROM alarms WHERE acknowledged AND NOT (id = ANY(%s))", (offline,)
        ).fetchone()
    assert rows == [("user:operator_a", "配电箱跳闸导致离线，已通知电工")] * 3
    assert others == (0,)
