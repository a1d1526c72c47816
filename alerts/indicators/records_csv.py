"""Parse a spreadsheet of inspection / test / maintenance records (巡检/检测/维保记录) into new records.

Pure: bytes in, records and per-row errors out; good rows are kept, each bad row is reported with its
line, column and reason. UTF-8 (with or without BOM) and GB18030/GBK, Chinese or English headers. An
unknown column refuses the whole file, listing the known ones (a misspelt `result` column must not turn
every record into a silent "pass").

Columns: device_uid (设备编号; empty for a whole system), family (系统, required when no device),
kind (类型: 巡检/检测/维保 or inspection/test/maintenance), performed_at (日期 or 时间: YYYY-MM-DD
[HH:MM], community time), performed_by (执行人), result (结果: 合格/不合格/已修复 or pass/fail/fixed),
notes (备注).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, tzinfo

from devices.contract import Family
from devices.csv_import import CsvFileError, RowError
from storage.maintenance import NewRecord

MAX_ROWS = 50_000
_ALIASES = {
    "device_uid": "device_uid", "设备编号": "device_uid", "device": "device_uid",
    "family": "family", "系统": "family", "设备类型": "family",
    "kind": "kind", "类型": "kind", "记录类型": "kind",
    "performed_at": "performed_at", "日期": "performed_at", "时间": "performed_at",
    "日期时间": "performed_at",
    "performed_by": "performed_by", "执行人": "performed_by", "维保人员": "performed_by",
    "result": "result", "结果": "result",
    "notes": "notes", "备注": "notes",
}  # fmt: skip
_KINDS = {
    "inspection": "inspection", "巡检": "inspection", "巡查": "inspection",
    "test": "test", "检测": "test", "测试": "test",
    "maintenance": "maintenance", "维保": "maintenance", "维护": "maintenance", "保养": "maintenance",
}  # fmt: skip
_RESULTS = {
    "pass": "pass", "合格": "pass", "正常": "pass",
    "fail": "fail", "不合格": "fail", "异常": "fail",
    "fixed": "fixed", "已修复": "fixed", "已整改": "fixed",
}  # fmt: skip
_FAMILIES = {f.value: f.value for f in Family} | {
    "烟感": "smoke_alarm", "消防": "smoke_alarm", "电气火灾": "smoke_alarm", "燃气": "gas_alarm",
    "照明": "light", "电梯": "elevator", "门禁": "access_door", "监控": "cctv_recorder",
    "充电桩": "ebike_charger",
}  # fmt: skip
_FORMATS = ("%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%Y/%m/%d %H:%M", "%Y-%m-%d", "%Y/%m/%d")


@dataclass(frozen=True, slots=True)
class Parsed:
    records: tuple[NewRecord, ...]
    errors: tuple[RowError, ...]
    rows_total: int


def _text(data: bytes) -> str:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    for encoding in ("utf-8", "gb18030"):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if "\x00" in text:
            raise CsvFileError("the file contains NUL bytes: not a text spreadsheet")
        return text
    raise CsvFileError("the file is neither UTF-8 nor GB18030/GBK text")


def _when(value: str, tz: tzinfo) -> datetime | None:
    for f in _FORMATS:
        try:
            return datetime.strptime(value.strip(), f).replace(tzinfo=tz)
        except ValueError:
            continue
    return None


def parse(data: bytes, tz: tzinfo) -> Parsed:
    try:
        return _parse(csv.reader(io.StringIO(_text(data))), tz)
    except csv.Error as exc:  # a malformed quote, a field over the csv module's limit, …
        raise CsvFileError(f"not a readable CSV file: {exc}") from None


def _parse(reader: Iterator[list[str]], tz: tzinfo) -> Parsed:  # noqa: PLR0912 - one branch per column
    header = next(reader, None)
    if not header:
        raise CsvFileError("the file is empty: a header row is required")
    columns: list[str] = []
    for name in header:
        key = _ALIASES.get(name.strip().lower())
        if key is None:
            known = ", ".join(sorted(set(_ALIASES.values())))
            raise CsvFileError(f"unknown column {name.strip()!r}; known columns: {known}")
        columns.append(key)
    for needed in ("kind", "performed_at", "performed_by", "result"):
        if needed not in columns:
            raise CsvFileError(f"missing column {needed!r}")
    records: list[NewRecord] = []
    errors: list[RowError] = []
    total = 0
    for line, row in enumerate(reader, start=2):
        if not any(cell.strip() for cell in row):
            continue
        total += 1
        if total > MAX_ROWS:
            raise CsvFileError(f"more than {MAX_ROWS} rows: split the file")
        values = {c: (row[i].strip() if i < len(row) else "") for i, c in enumerate(columns)}
        bad: list[RowError] = []
        kind = _KINDS.get(values["kind"].lower())
        if kind is None:
            bad.append(RowError(line, "kind", f"{values['kind']!r} is not 巡检/检测/维保"))
        result = _RESULTS.get(values["result"].lower())
        if result is None:
            bad.append(RowError(line, "result", f"{values['result']!r} is not 合格/不合格/已修复"))
        when = _when(values["performed_at"], tz)
        if when is None:
            bad.append(RowError(line, "performed_at", "expected YYYY-MM-DD or YYYY-MM-DD HH:MM"))
        by = values["performed_by"]
        if not 1 <= len(by) <= 100:
            bad.append(RowError(line, "performed_by", "required, at most 100 characters"))
        uid = values.get("device_uid") or None
        family = _FAMILIES.get((values.get("family") or "").lower())
        if uid is None and family is None:
            bad.append(RowError(line, "family", "a system record (no device) needs a known family"))
        notes = values.get("notes", "")
        if len(notes) > 2000:
            bad.append(RowError(line, "notes", "at most 2000 characters"))
        if bad:
            errors += bad
            continue
        assert kind is not None
        assert result is not None
        assert when is not None
        records.append(NewRecord(family or "", kind, when, by, result, device_uid=uid, notes=notes))
    return Parsed(tuple(records), tuple(errors), total)
