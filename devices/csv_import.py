"""Parse a property company's device spreadsheet (CSV) into registry rows, with a per-row report.

Pure: bytes in, a `ImportPlan` out. Good rows are kept and bad rows are reported (file line, column,
reason) — one bad row never blocks the rest. Files saved by Excel are accepted: UTF-8 with a BOM,
or GB18030/GBK (what Chinese Excel writes by default), and Chinese column headers.

Columns (header row, case-insensitive; only `device_uid` and `family` are required):
device_uid, family, building, building_name, floor, unit, location_kind, location_code,
location_name, room (房号 of a household device: "601"), post (桩号 of a charging post in its
shed), model, vendor, install_date (YYYY-MM-DD or YYYY/MM/DD), retrofit, evacuation_route, and the
Chinese headers in `_ALIASES`. Free text for the device's `metadata`: a remark column
(`备注`, `note`, `remark`, …) or any column named `meta.<key>` (stored under `<key>`).

Fail closed: any other header is refused with the list of known columns, so a misspelt column
(`buildng`) cannot slip into `metadata` while the device lands without its building. A column without
a header (Excel's trailing commas) is allowed only if it is empty on every row.
Metadata is at most 8 KiB per row (`devices.metadata`); a row with a NUL character is rejected
(PostgreSQL text cannot hold it).

A device without `location_code` is placed at its unit (`<building>-<floor>-<unit>`), its floor
(`<building>-<floor>`) or its building (`<building>`), whichever is the most precise given.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from devices.contract import ID_PATTERN, Family
from devices.metadata import metadata_problem

LOCATION_KINDS = frozenset(
    {
        "building", "floor", "unit", "stairwell", "lobby", "basement", "shed",
        "road", "entrance", "parking", "plant_room", "duty_room", "other",
    }
)  # fmt: skip
MAX_ROWS = 200_000
_ID_RE = re.compile(ID_PATTERN)
_DATE_RE = re.compile(r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})$")
FLOOR_MIN, FLOOR_MAX = -10, 200

# header aliases → canonical column
_ALIASES: dict[str, str] = {
    "device_uid": "device_uid", "uid": "device_uid", "device_id": "device_uid", "设备编号": "device_uid",
    "设备id": "device_uid", "family": "family", "type": "family", "设备类型": "family",
    "building": "building", "楼栋": "building", "楼号": "building",
    "building_name": "building_name", "楼栋名称": "building_name",
    "floor": "floor", "楼层": "floor", "unit": "unit", "单元": "unit",
    "location_kind": "location_kind", "位置类型": "location_kind",
    "location_code": "location_code", "位置编号": "location_code",
    "location_name": "location_name", "位置名称": "location_name", "安装位置": "location_name",
    "room": "room", "房号": "room", "房间号": "room", "户号": "room", "post": "post", "桩号": "post",
    "model": "model", "型号": "model", "vendor": "vendor", "厂家": "vendor", "品牌": "vendor",
    "install_date": "install_date", "安装日期": "install_date",
    "retrofit": "retrofit", "加装": "retrofit", "改造": "retrofit",
    "evacuation_route": "evacuation_route", "疏散通道": "evacuation_route",
}  # fmt: skip
REQUIRED = ("device_uid", "family")
COLUMNS = tuple(dict.fromkeys(_ALIASES.values()))  # the canonical columns, in documentation order
# Remark columns, kept in `metadata` under their header as written
REMARK_COLUMNS = frozenset({"备注", "说明", "note", "notes", "remark", "remarks", "comment", "comments"})
META_PREFIX = "meta."
_NO_HEADER = "\x00"  # + position: a cell without a header (not a name anyone can write in a file)

_FAMILY_ALIASES: dict[str, Family] = {
    "充电桩": Family.EBIKE_CHARGER, "充电柜": Family.EBIKE_CHARGER, "电动车充电桩": Family.EBIKE_CHARGER,
    "烟感": Family.SMOKE_ALARM, "烟雾报警器": Family.SMOKE_ALARM, "电气火灾": Family.SMOKE_ALARM,
    "燃气报警器": Family.GAS_ALARM, "可燃气体报警器": Family.GAS_ALARM,
    "照明": Family.LIGHT, "路灯": Family.LIGHT, "灯": Family.LIGHT,
    "电梯": Family.ELEVATOR, "门禁": Family.ACCESS_DOOR,
    "录像机": Family.CCTV_RECORDER, "nvr": Family.CCTV_RECORDER, "dvr": Family.CCTV_RECORDER,
}  # fmt: skip
_TRUE = {"true", "yes", "y", "1", "是", "有", "t"}
_FALSE = {"false", "no", "n", "0", "否", "无", "f", ""}


class CsvFileError(ValueError):
    """The file as a whole cannot be imported (encoding, header); nothing is imported."""


@dataclass(frozen=True, slots=True)
class RowError:
    row: int  # line in the file, header = 1
    column: str
    reason: str

    def __str__(self) -> str:
        return f"row {self.row}, column {self.column}: {self.reason}"


@dataclass(frozen=True, slots=True)
class BuildingRow:
    code: str
    name: str


@dataclass(frozen=True, slots=True)
class LocationRow:
    code: str
    kind: str
    name: str
    building: str | None
    floor: int | None
    unit: str | None
    evacuation_route: bool


@dataclass(frozen=True, slots=True)
class DeviceRow:
    row: int
    uid: str
    family: Family
    location: str | None
    model: str | None
    vendor: str | None
    install_date: date | None
    retrofit: bool
    metadata: dict[str, Any] = field(default_factory=dict)
    room: str | None = None  # 房号 (storage: devices.room, 0023_device_places.sql)
    post: str | None = None  # 桩号


@dataclass(frozen=True, slots=True)
class ImportPlan:
    community: str
    rows_total: int
    buildings: tuple[BuildingRow, ...]
    locations: tuple[LocationRow, ...]
    devices: tuple[DeviceRow, ...]
    errors: tuple[RowError, ...]

    @property
    def rejected_rows(self) -> list[int]:
        return sorted({e.row for e in self.errors})


def _decode(data: bytes) -> str:
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        try:
            return data.decode("gb18030")
        except UnicodeDecodeError as exc:
            raise CsvFileError("the file is neither UTF-8 nor GB18030/GBK text") from exc


def _bool(value: str) -> bool | None:
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    return None


class _RowParser:
    def __init__(self, line: int, values: dict[str, str]) -> None:
        self.line = line
        self.values = values
        self.errors: list[RowError] = []

    def text(self, column: str, *, max_len: int = 200) -> str | None:
        v = self.values.get(column, "").strip()
        if not v:
            return None
        if len(v) > max_len:
            self.errors.append(RowError(self.line, column, f"longer than {max_len} characters"))
            return None
        return v

    def ident(self, column: str) -> str | None:
        v = self.text(column, max_len=64)
        if v is not None and not _ID_RE.match(v):
            self.errors.append(
                RowError(self.line, column, f"{v!r}: only letters, digits, '_' and '-' allowed")
            )
            return None
        return v

    def flag(self, column: str) -> bool:
        raw = self.values.get(column, "")
        v = _bool(raw)
        if v is None:
            self.errors.append(RowError(self.line, column, f"{raw!r} is not yes/no (true/false, 是/否, 1/0)"))
            return False
        return v

    def floor(self) -> int | None:
        raw = self.values.get("floor", "").strip()
        if not raw:
            return None
        try:
            # basements are often written B1, B2 (地下一层)
            value = -int(raw[1:]) if raw[:1] in "Bb" else int(raw)
        except ValueError:
            self.errors.append(RowError(self.line, "floor", f"{raw!r} is not a floor number"))
            return None
        if not FLOOR_MIN <= value <= FLOOR_MAX:
            self.errors.append(RowError(self.line, "floor", f"{value} outside {FLOOR_MIN}..{FLOOR_MAX}"))
            return None
        return value

    def install_date(self) -> date | None:
        raw = self.values.get("install_date", "").strip()
        if not raw:
            return None
        m = _DATE_RE.match(raw)
        try:
            if m is None:
                raise ValueError
            return date(int(m[1]), int(m[2]), int(m[3]))
        except ValueError:
            self.errors.append(RowError(self.line, "install_date", f"{raw!r} is not a date (YYYY-MM-DD)"))
            return None

    def family(self) -> Family | None:
        raw = self.values.get("family", "").strip()
        if not raw:
            self.errors.append(RowError(self.line, "family", "missing"))
            return None
        try:
            return Family(raw.lower())
        except ValueError:
            found = _FAMILY_ALIASES.get(raw.lower())
            if found is None:
                self.errors.append(
                    RowError(
                        self.line, "family", f"{raw!r}: expected one of {', '.join(f.value for f in Family)}"
                    )
                )
            return found


def _columns(header: list[str]) -> tuple[list[str], dict[str, str]]:
    """The canonical name of every header cell, and the metadata columns → their metadata key."""
    columns: list[str] = []
    metadata: dict[str, str] = {}
    unknown: list[str] = []
    for position, name in enumerate(header):
        raw = name.strip()
        key = raw.lower().replace(" ", "_")
        canonical = _ALIASES.get(key, _ALIASES.get(raw))
        if canonical is None:
            canonical = f"{META_PREFIX}{key}" if key else f"{_NO_HEADER}{position}"
            if key in REMARK_COLUMNS:
                metadata[canonical] = raw
            elif key.startswith(META_PREFIX) and len(key) > len(META_PREFIX):
                metadata[canonical] = raw[len(META_PREFIX) :].strip()
            elif key:
                unknown.append(raw)
        columns.append(canonical)
    if unknown:
        raise CsvFileError(
            f"unknown column(s): {', '.join(repr(u) for u in unknown)}; known columns: "
            f"{', '.join(COLUMNS)} (Chinese headers such as 设备编号, 设备类型, 楼栋 work too); "
            f"free text goes in a remark column ({', '.join(sorted(REMARK_COLUMNS))}) "
            f"or in columns named {META_PREFIX}<key>"
        )
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        raise CsvFileError(f"missing required column(s): {', '.join(missing)}")
    dup = sorted({c for c in columns if c and columns.count(c) > 1})
    if dup:
        raise CsvFileError(f"column(s) given twice: {', '.join(dup)}")
    return columns, metadata


def parse_csv(data: bytes, *, community: str) -> ImportPlan:  # noqa: PLR0912, PLR0915 - one pass, row by row
    """Validate every row; raises `CsvFileError` only when the file as a whole is unusable."""
    text = _decode(data)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise CsvFileError("the file is empty") from None
    except csv.Error as exc:
        raise CsvFileError(f"not a CSV file: {exc}") from exc
    columns, extra = _columns(header)

    errors: list[RowError] = []
    devices: list[DeviceRow] = []
    buildings: dict[str, BuildingRow] = {}
    locations: dict[str, tuple[int, LocationRow]] = {}
    first_row_of_uid: dict[str, int] = {}
    total = 0
    line = 1
    try:
        for record in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in record):
                continue  # blank lines (Excel leaves them) are not rows
            total += 1
            if total > MAX_ROWS:
                raise CsvFileError(f"more than {MAX_ROWS} rows; split the file")
            if any("\x00" in cell for cell in record):
                # PostgreSQL text cannot hold NUL; Python's csv module passes it through
                errors.append(RowError(line, "*", "contains a NUL character"))
                continue
            if len(record) != len(columns):
                errors.append(
                    RowError(line, "*", f"{len(record)} cells, the header has {len(columns)} columns")
                )
                continue
            row = _parse_row(line, dict(zip(columns, record, strict=True)), extra, buildings, locations)
            if isinstance(row, list):
                errors += row
                continue
            building, location, device = row
            problem = metadata_problem(device.metadata)
            if problem is not None:
                errors.append(RowError(line, "*", f"metadata: {problem}"))
                continue
            first = first_row_of_uid.get(device.uid)
            if first is not None:
                errors.append(RowError(line, "device_uid", f"{device.uid!r} already on row {first}"))
                continue
            first_row_of_uid[device.uid] = line
            if building is not None:
                buildings.setdefault(building.code, building)
            if location is not None:
                locations.setdefault(location.code, (line, location))
            devices.append(device)
    except csv.Error as exc:
        errors.append(RowError(line + 1, "*", f"unreadable CSV: {exc}"))
    return ImportPlan(
        community=community,
        rows_total=total,
        buildings=tuple(buildings.values()),
        locations=tuple(loc for _, loc in locations.values()),
        devices=tuple(devices),
        errors=tuple(errors),
    )


def _parse_row(
    line: int,
    values: dict[str, str],
    extra: dict[str, str],
    buildings: dict[str, BuildingRow],
    locations: dict[str, tuple[int, LocationRow]],
) -> tuple[BuildingRow | None, LocationRow | None, DeviceRow] | list[RowError]:
    p = _RowParser(line, values)
    if any(c.startswith(_NO_HEADER) and v.strip() for c, v in values.items()):
        p.errors.append(RowError(line, "*", "a value in a column without a header"))
    uid = p.ident("device_uid")
    if uid is None and not values.get("device_uid", "").strip():
        p.errors.append(RowError(line, "device_uid", "missing"))
    family = p.family()
    building_code = p.ident("building")
    floor = p.floor()
    unit = p.text("unit", max_len=20)
    kind = (p.text("location_kind") or "").lower() or None
    if kind is not None and kind not in LOCATION_KINDS:
        p.errors.append(
            RowError(line, "location_kind", f"{kind!r}: expected one of {', '.join(sorted(LOCATION_KINDS))}")
        )
    code = p.ident("location_code")
    loc_name = p.text("location_name")
    retrofit = p.flag("retrofit")
    evacuation = p.flag("evacuation_route")
    installed = p.install_date()
    model, vendor = p.text("model", max_len=100), p.text("vendor", max_len=100)
    room, post = p.text("room", max_len=32), p.text("post", max_len=32)
    if p.errors or uid is None or family is None:
        return p.errors

    building = None
    if building_code is not None:
        building = BuildingRow(building_code, p.text("building_name") or building_code)
        known = buildings.get(building_code)
        if known is not None and p.text("building_name") and known.name != building.name:
            return [RowError(line, "building_name", f"{building.name!r} differs from {known.name!r} earlier")]

    location = None
    if code is None and building_code is not None:
        # most precise place the row gives
        if floor is not None and unit is not None:
            code, kind = f"{building_code}-{floor}-{unit}", kind or "unit"
        elif floor is not None:
            code, kind = f"{building_code}-{floor}", kind or "floor"
        else:
            code, kind = building_code, kind or "building"
    if code is not None:
        location = LocationRow(
            code=code,
            kind=kind or "other",
            name=loc_name or code,
            building=building_code,
            floor=floor,
            unit=unit,
            evacuation_route=evacuation,
        )
        seen = locations.get(code)
        if seen is not None and _conflicts(seen[1], location, explicit_name=loc_name is not None):
            return [RowError(line, "location_code", f"{code!r} described differently on row {seen[0]}")]

    metadata = {key: values[c].strip() for c, key in extra.items() if values.get(c, "").strip()}
    return (
        building,
        location,
        DeviceRow(
            row=line,
            uid=uid,
            family=family,
            location=code,
            model=model,
            vendor=vendor,
            install_date=installed,
            retrofit=retrofit,
            metadata=metadata,
            room=room,
            post=post,
        ),
    )


def _conflicts(a: LocationRow, b: LocationRow, *, explicit_name: bool) -> bool:
    same = (a.kind, a.building, a.floor, a.unit, a.evacuation_route) == (
        b.kind,
        b.building,
        b.floor,
        b.unit,
        b.evacuation_route,
    )
    return not same or (explicit_name and a.name != b.name)
