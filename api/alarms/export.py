"""The alarm history as a file a property manager opens in Excel or WPS (issue 13 §7): CSV (UTF-8 with
a byte-order mark, which Excel needs to read Chinese) and XLSX (openpyxl, fenced in this module),
with Chinese headers and Chinese labels for codes.

Cells a spreadsheet would run as formulas are defused: in CSV a text cell starting with = + - @ (or
a tab / carriage return) gets a leading apostrophe (OWASP "CSV injection"); in XLSX every text cell is
written as a string cell, so a comment "=HYPERLINK(...)" stays text and reads back unchanged.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Literal

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font

from devices.alarms import ALARM_INFO, AlarmType
from storage.alarm_history import HistoryRow

ExportFormat = Literal["csv", "xlsx"]
MEDIA_TYPES: dict[ExportFormat, str] = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}

SEVERITY_ZH = {"critical": "紧急", "major": "重要", "minor": "次要", "warning": "提示"}
FAMILY_ZH = {
    "ebike_charger": "电动车充电桩", "smoke_alarm": "烟感", "gas_alarm": "燃气报警器", "light": "照明",
    "elevator": "电梯", "access_door": "门禁", "cctv_recorder": "录像机",
}  # fmt: skip
STATUS_ZH = {"active": "未恢复", "cleared": "已恢复"}
HANDLING_ZH = {"dispatched": "已派遣", "on_site": "已到场", "resolved": "已处置", "closed": "已结案"}
RESULT_ZH = {"real": "真实警情", "false_alarm": "误报", "test": "测试", "device_fault": "设备故障"}
ACTOR_ZH = {"engine": "系统", "linkage": "联动", "compliance": "合规检查", "device": "设备"}

_TIME = "%Y-%m-%d %H:%M:%S"


def _type_zh(code: str) -> str:
    try:
        return ALARM_INFO[AlarmType(code)].zh
    except ValueError:
        return code


def _actor(actor: str | None, names: dict[str, str]) -> str:
    if not actor:
        return ""
    for prefix in ("user:", "apikey:"):
        if actor.startswith(prefix):
            user = actor.removeprefix(prefix)
            return names.get(user, user)
    return ACTOR_ZH.get(actor, actor)


def _time(at: datetime | None) -> str:
    return at.strftime(_TIME) if at else ""


# (header, value of a row); times are the community's wall clock (the zone has its own column)
Column = tuple[str, Callable[[HistoryRow, dict[str, str]], str | int]]
COLUMNS: tuple[Column, ...] = (
    ("告警编号", lambda r, _: r.id),
    ("小区", lambda r, _: r.community_name),
    ("楼栋", lambda r, _: r.building_name or ""),
    ("位置", lambda r, _: r.location_name or ""),
    ("设备编号", lambda r, _: r.device_uid),
    ("设备类型", lambda r, _: FAMILY_ZH.get(r.family, r.family)),
    ("告警类型", lambda r, _: _type_zh(r.type)),
    ("级别", lambda r, _: SEVERITY_ZH.get(r.severity, r.severity)),
    ("发生时间", lambda r, _: _time(r.first_local)),
    ("恢复时间", lambda r, _: _time(r.cleared_local)),
    ("恢复人", lambda r, n: _actor(r.cleared_by, n)),
    ("确认人", lambda r, n: _actor(r.acknowledged_by, n)),
    ("次数", lambda r, _: r.occurrences),
    ("状态", lambda r, _: STATUS_ZH.get(r.status, r.status)),
    ("处置进度", lambda r, _: HANDLING_ZH.get(r.handling, "") if r.handling else "未处置"),
    ("处置结果", lambda r, _: RESULT_ZH.get(r.result, r.result) if r.result else ""),
    ("处置说明", lambda r, _: r.result_comment or ""),
    ("时区", lambda r, _: r.time_zone),
)
HEADERS = tuple(h for h, _ in COLUMNS)


def table(rows: Sequence[HistoryRow], names: dict[str, str]) -> list[list[str | int]]:
    """The export's rows (without the header), one list of cells per alarm."""
    return [[value(r, names) for _, value in COLUMNS] for r in rows]


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _defused(cell: str | int) -> str | int:
    return f"'{cell}" if isinstance(cell, str) and cell.startswith(_FORMULA_START) else cell


def to_csv(cells: list[list[str | int]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")  # RFC 4180 line ends
    writer.writerow(HEADERS)
    writer.writerows([_defused(c) for c in row] for row in cells)
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def _text_cell(sheet: Any, value: str) -> Any:
    cell = WriteOnlyCell(sheet, value=value)
    cell.data_type = "s"  # text, never a formula
    return cell


def to_xlsx(cells: list[list[str | int]], *, title: str = "告警历史") -> bytes:
    book = Workbook(write_only=True)
    sheet = book.create_sheet(title)
    bold = Font(bold=True)
    header = []
    for name in HEADERS:
        cell = WriteOnlyCell(sheet, value=name)
        cell.font = bold
        header.append(cell)
    sheet.append(header)
    for row in cells:
        # plain values are several times faster than cell objects; only text openpyxl would take for
        # a formula (a leading "=") needs a cell forced to the string type
        sheet.append([_text_cell(sheet, v) if isinstance(v, str) and v.startswith("=") else v for v in row])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
