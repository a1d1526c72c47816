"""CSV import: good files are accepted (BOM, GBK, Chinese headers), every bad row is reported with its
row, column and reason, and good rows still import — into the real registry through the CLI."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from devices.contract import Family
from devices.csv_import import CsvFileError, parse_csv
from storage import registry
from storage.db import connection
from yiju.cli import main

HEADER = (
    "device_uid,family,building,floor,unit,location_kind,location_code,location_name,model,vendor,"
    "install_date,retrofit,evacuation_route,备注\n"
)
GOOD = (
    HEADER
    + """CHG-001,ebike_charger,,,,shed,SHED-1,1号车棚,X10P,Acme,2024-05-01,no,no,东门
CHG-002,ebike_charger,,,,shed,SHED-1,1号车棚,X10P,Acme,2024/05/01,no,no,
SMK-3-1-0101,smoke_alarm,B3,1,1,,,,,,,,,
SMK-3-2,smoke_alarm,B3,2,,,,,,,,,,
ELV-3A,elevator,B3,,,,,,,,2023-01-10,yes,,加装电梯
DOOR-3-1,access_door,B3,1,,entrance,B3-ENT,3号楼大堂门,,,,,yes,

LGT-R1,light,,,,road,ROAD-1,主路,,,,,,
"""
)


def test_good_file_with_bom_is_accepted() -> None:
    plan = parse_csv(b"\xef\xbb\xbf" + GOOD.encode(), community="c1")
    assert plan.errors == ()
    assert plan.rows_total == 7  # the blank line is not a row
    uids = [d.uid for d in plan.devices]
    assert uids == ["CHG-001", "CHG-002", "SMK-3-1-0101", "SMK-3-2", "ELV-3A", "DOOR-3-1", "LGT-R1"]
    by_uid = {d.uid: d for d in plan.devices}
    assert by_uid["CHG-001"].family is Family.EBIKE_CHARGER
    assert by_uid["CHG-002"].install_date == date(2024, 5, 1)
    assert by_uid["CHG-001"].metadata == {"备注": "东门"}  # unknown columns kept, not dropped
    assert by_uid["ELV-3A"].retrofit is True and by_uid["ELV-3A"].location == "B3"
    assert by_uid["SMK-3-1-0101"].location == "B3-1-1"
    assert by_uid["SMK-3-2"].location == "B3-2"
    locs = {x.code: x for x in plan.locations}
    assert locs["B3-1-1"].kind == "unit" and locs["B3-1-1"].floor == 1 and locs["B3-1-1"].unit == "1"
    assert locs["B3-ENT"].evacuation_route is True and locs["B3-ENT"].building == "B3"
    assert [b.code for b in plan.buildings] == ["B3"]


def test_gbk_file_with_chinese_headers() -> None:
    text = "设备编号,设备类型,楼栋,楼层,单元\nSMK-1,烟感,1号楼,3,2\n"
    plan = parse_csv(text.encode("gbk"), community="c1")
    # a Chinese building name is not a valid code (codes become topic-safe ids): reported on the row
    assert [(e.row, e.column) for e in plan.errors] == [(2, "building")]
    assert plan.devices == ()


def test_gbk_file_is_decoded() -> None:
    text = "设备编号,设备类型,楼栋,楼层,单元,安装位置\nSMK-1,烟感,B1,3,2,三楼走廊\n"
    plan = parse_csv(text.encode("gbk"), community="c1")
    assert plan.errors == ()
    (dev,) = plan.devices
    assert dev.family is Family.SMOKE_ALARM and dev.location == "B1-3-2"
    assert plan.locations[0].name == "三楼走廊"


BAD = """device_uid,family,building,floor,unit,location_kind,location_code,install_date,retrofit
OK-1,gas_alarm,B1,5,1,,,2024-01-01,no
,gas_alarm,B1,5,1,,,,
BAD UID,gas_alarm,B1,5,1,,,,
OK-2,toaster,B1,5,1,,,,
OK-3,gas_alarm,B1,floor5,1,,,,
OK-4,gas_alarm,B1,999,1,,,,
OK-5,gas_alarm,B1,5,1,,,2024-13-40,
OK-6,gas_alarm,B1,5,1,,,,maybe
OK-7,gas_alarm,B1,5,1,garden,,,
OK-1,gas_alarm,B1,5,1,,,,
OK-8,gas_alarm,B1,5
OK-9,gas_alarm,B1,5,1,,,,
OK-10,light,,,,road,B1-5-1,,
"""

EXPECTED_ERRORS = {
    3: "device_uid",
    4: "device_uid",
    5: "family",
    6: "floor",
    7: "floor",
    8: "install_date",
    9: "retrofit",
    10: "location_kind",
    11: "device_uid",  # duplicate of row 2
    12: "*",  # wrong number of cells
    14: "location_code",  # same location described differently
}


def test_every_bad_row_is_reported_and_good_rows_kept() -> None:
    plan = parse_csv(BAD.encode(), community="c1")
    got = {e.row: e.column for e in plan.errors}
    assert got == EXPECTED_ERRORS, plan.errors
    assert plan.rejected_rows == sorted(EXPECTED_ERRORS)
    assert [d.uid for d in plan.devices] == ["OK-1", "OK-9"]
    dup = next(e for e in plan.errors if e.row == 11)
    assert "row 2" in dup.reason
    assert all(e.reason for e in plan.errors)
    assert str(dup).startswith("row 11, column device_uid:")


def test_free_text_goes_to_metadata_only_through_named_columns() -> None:
    text = "device_uid,family,meta.owner,Remark,,\nX,light,张三,东门,,\nY,light,,,,stray\n"
    plan = parse_csv(text.encode(), community="c1")
    assert [d.metadata for d in plan.devices] == [{"owner": "张三", "Remark": "东门"}]
    # Excel's trailing empty columns are fine; a value under a column without a header is not
    assert [(e.row, e.column) for e in plan.errors] == [(3, "*")]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"uid,building\nX,B1\n", "missing required column"),
        (b"uid,family,device_id\nX,light,Y\n", "given twice"),
        (b"\xff\xfe\x00\x00garbage\xff", "neither UTF-8"),
        # fail closed: a misspelt column is refused, naming the known ones (not kept as metadata)
        (
            b"device_uid,family,buildng\nX,light,B1\n",
            r"unknown column\(s\): 'buildng'; known columns: device_uid",
        ),
        (
            "设备编号,设备类型,楼层号\nX,light,3\n".encode(),
            "unknown column.*'楼层号'.*building, building_name",
        ),
    ],
)
def test_unusable_files_are_refused_whole(content: bytes, message: str) -> None:
    with pytest.raises(CsvFileError, match=message):
        parse_csv(content, community="c1")


def test_cli_import_reports_and_imports_good_rows(
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("YIJU_DATABASE__URL", db_url)
    monkeypatch.setenv("YIJU_MQTT__URL", "mqtt://127.0.0.1:1")  # not used by import
    monkeypatch.setenv("YIJU_STATE_DIR", str(tmp_path / "state"))
    good, bad = tmp_path / "good.csv", tmp_path / "bad.csv"
    good.write_bytes(b"\xef\xbb\xbf" + GOOD.encode())
    bad.write_text(BAD)

    assert main(["devices", "import", str(good), "--community", "c1"]) == 1  # community unknown
    assert "community 'c1' is not registered" in capsys.readouterr().err

    assert main(["devices", "import", str(good), "--community", "c1", "--community-name", "一号小区"]) == 0
    out = capsys.readouterr().out
    assert "imported 7 device(s) (7 new, 0 updated)" in out
    assert main(["devices", "import", str(good), "--community", "c1"]) == 0  # idempotent
    assert "(0 new, 7 updated)" in capsys.readouterr().out

    assert main(["devices", "import", str(bad), "--community", "c1"]) == 1
    out = capsys.readouterr().out
    for row, column in EXPECTED_ERRORS.items():
        assert f"rejected: row {row}, column {column}:" in out
    assert "imported 2 device(s)" in out and f"rejected {len(EXPECTED_ERRORS)} row(s)" in out

    with connection(db_url) as conn:
        devices = {d.uid: d for d in registry.list_devices(conn, community="c1")}
    assert set(devices) == {
        "CHG-001",
        "CHG-002",
        "SMK-3-1-0101",
        "SMK-3-2",
        "ELV-3A",
        "DOOR-3-1",
        "LGT-R1",
        "OK-1",
        "OK-9",
    }
    door = devices["DOOR-3-1"]
    assert (door.building, door.location, door.location_kind, door.evacuation_route) == (
        "B3",
        "B3-ENT",
        "entrance",
        True,
    )
    assert devices["ELV-3A"].retrofit and devices["CHG-001"].metadata == {"备注": "东门"}
    assert devices["OK-1"].floor == 5 and devices["OK-1"].unit == "1"
