"""The alarm-history export at the row cap: time and size of building the CSV and the XLSX for
`api.export_max_rows` rows (default 5,000), and the process's peak memory, side by side in one run.
Pure file building (api/alarms/export.py) on synthetic rows; the database query is not included.

    .venv/bin/python bench/alarm_export.py [--rows 10000] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from api.alarms import export
from storage.alarm_history import HistoryRow


def _rows(n: int) -> list[HistoryRow]:
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    out = []
    for i in range(n):
        first = t0 + timedelta(minutes=3 * i)
        cleared = first + timedelta(minutes=7)
        out.append(
            HistoryRow(
                id=100_000 + i,
                community_id=1,
                community_name="西溪花园",
                device_id=i,
                device_uid=f"hz-xixi-01-chg-s{i % 40:02d}p{i % 10}",
                family="ebike_charger",
                building_name=f"{i % 30 + 1}号楼",
                location_name=f"{i % 30 + 1}号楼 {i % 18 + 1}层",
                type="charger_over_temperature",
                severity="major",
                status="cleared",
                first_at=first,
                last_at=first,
                cleared_at=cleared,
                cleared_by="user:duty1",
                acknowledged_at=cleared,
                acknowledged_by="user:duty1",
                occurrences=1,
                handling="closed",
                result="false_alarm",
                result_comment="充电器散热口被遮挡，已清理",
                time_zone="Asia/Shanghai",
                first_local=first.replace(tzinfo=None),
                cleared_local=cleared.replace(tzinfo=None),
            )
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=5_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    rows = _rows(args.rows)
    names = {"duty1": "值班员甲"}
    print(
        f"machine: {platform.machine()} {os.cpu_count()} cpu, load {os.getloadavg()[0]:.1f}; rows {args.rows}"
    )
    for name, build in (("csv", export.to_csv), ("xlsx", export.to_xlsx)):
        times, size = [], 0
        for _ in range(args.runs):
            start = time.perf_counter()
            size = len(build(export.table(rows, names)))
            times.append(time.perf_counter() - start)
        print(f"{name:5} median {statistics.median(times):.2f} s  size {size / 1e6:.2f} MB")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak_mb:.0f} MB (both formats, this process)")


if __name__ == "__main__":
    main()
