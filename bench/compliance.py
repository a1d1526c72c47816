"""The 30-day compliance report on a typical compound (~7,000 devices): database time of the query
before (every finding grouped with GROUPING SETS), with whole days from compliance_daily only
(migration 0012), and now (aligned spans of compliance_span plus single days, migration 0025; the
edges from the findings), side by side in one run, with the plans.

    .venv/bin/python bench/compliance.py [--mode partitioned|timescaledb] [--per-device-day 5]
        [--days 90] [--runs 7] [--plans /tmp/compliance-plans.txt]

Services: the test harness's private PostgreSQL (or YIJU_TEST_DATABASE_URL). The findings are made
in SQL: `--per-device-day` findings for every device and day over `--days` days (the 30-day window
reads a third of them), 90 % compliant, a second compound of the same size beside it so the
community filter matters. Default PostgreSQL settings (work_mem 4 MB), as on a plain install.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from harness import start_services  # noqa: E402

from simulators.compound import Size, generate_fleet  # noqa: E402
from storage import findings  # noqa: E402
from storage.db import connection  # noqa: E402
from storage.findings import _spans, _whole_days, compliance_summary  # noqa: E402
from yiju.commands.simulate import register_fleet  # noqa: E402

OLD_QUERY = """
    SELECT f.check_name, d.family, f.device_id, d.uid, count(*), count(*) FILTER (WHERE f.compliant),
           max(f.measured_s)
    FROM compliance_findings f JOIN devices d ON d.id = f.device_id
    WHERE f.community_id = %s AND f.observed_at >= %s AND f.observed_at < %s
    GROUP BY GROUPING SETS ((f.check_name), (f.check_name, d.family), (f.check_name, f.device_id, d.uid))
    ORDER BY 1, 2 NULLS FIRST, 4 NULLS FIRST
"""

# the query of the previous step (migration 0012): every whole day from compliance_daily, the partial
# days at the edges from the findings; kept here to measure the spans of migration 0025 against it
DAILY_QUERY = """
    WITH per_device AS (
        SELECT check_name, device_id, sum(total) AS total, sum(compliant) AS ok, max(worst) AS worst,
               yiju_smallint_array_union(channels) AS channels
        FROM (
            SELECT check_name, device_id, total, compliant, worst_measured_s AS worst,
                   failing_channels AS channels
            FROM compliance_daily
            WHERE community_id = %(c)s AND day >= %(d0)s AND day < %(d1)s
            UNION ALL
            SELECT check_name, device_id, 1, compliant::int, measured_s,
                   CASE WHEN NOT compliant AND channel > 0 THEN ARRAY[channel] ELSE '{}' END
            FROM compliance_findings
            WHERE community_id = %(c)s
              AND ((observed_at >= %(start)s AND observed_at < %(d0)s)
                OR (observed_at >= %(d1)s AND observed_at < %(end)s))
        ) x
        GROUP BY check_name, device_id
    )
    SELECT p.check_name, d.family, p.device_id, d.uid, sum(p.total)::bigint, sum(p.ok)::bigint,
           max(p.worst),
           (SELECT array_agg(DISTINCT c ORDER BY c) FROM unnest(yiju_smallint_array_union(p.channels)) c)
    FROM per_device p JOIN devices d ON d.id = p.device_id
    GROUP BY GROUPING SETS ((p.check_name), (p.check_name, d.family), (p.check_name, p.device_id, d.uid))
    ORDER BY 1, 2 NULLS FIRST, 4 NULLS FIRST
"""

# per family, the checks its findings belong to (domain.md §5)
FAMILY_CHECKS = """
CASE family
  WHEN 'ebike_charger' THEN (ARRAY['auto_cutoff', 'protection_config', 'fault_alarm'])[1 + (n %% 3)]
  WHEN 'cctv_recorder' THEN (ARRAY['cctv_retention', 'fault_alarm'])[1 + (n %% 2)]
  WHEN 'elevator' THEN (ARRAY['rescue', 'fault_alarm'])[1 + (n %% 2)]
  WHEN 'smoke_alarm' THEN (ARRAY['fault_alarm', 'linkage'])[1 + (n %% 2)]
  WHEN 'gas_alarm' THEN (ARRAY['fault_alarm', 'linkage'])[1 + (n %% 2)]
  ELSE 'fault_alarm' END
"""


def _fill(url: str, per_device_day: int, days: int, now: datetime) -> int:
    with connection(url, autocommit=True) as conn:
        for day in range(days):
            start = now - timedelta(days=days - day)
            conn.execute(
                "INSERT INTO compliance_findings (community_id, device_id, check_name, kind, compliant, "
                "observed_at, measured_s) "
                f"SELECT d.community_id, d.id, {FAMILY_CHECKS}, 'bench', (n + d.id) %% 10 <> 0, "
                "%s + make_interval(secs => (d.id * 37 + n * 86400.0 / %s) %% 86400), "
                "CASE WHEN n %% 2 = 0 THEN (d.id %% 60)::float END "
                "FROM devices d, generate_series(0, %s - 1) n",
                (start, per_device_day, per_device_day),
            )
        conn.execute("VACUUM ANALYZE compliance_findings")
        conn.execute("VACUUM ANALYZE compliance_daily")
        conn.execute("VACUUM ANALYZE compliance_span")
        row = conn.execute("SELECT count(*) FROM compliance_findings").fetchone()
        return int(row[0]) if row else 0


def _explain_ms(conn: Any, query: str, params: tuple[Any, ...] | dict[str, Any]) -> tuple[float, str]:
    rows = conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + query, params).fetchall()
    text = "\n".join(r[0] for r in rows)
    total = next(float(r[0].split()[2]) for r in rows if r[0].startswith("Execution Time"))
    return total, text


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", choices=["partitioned", "timescaledb"], default=None)
    p.add_argument("--per-device-day", type=int, default=5)
    p.add_argument("--days", type=int, default=90)
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("--plans", type=Path, default=None, help="write both EXPLAIN ANALYZE plans here")
    args = p.parse_args()

    svc = start_services()
    try:
        url = svc.create_database(args.mode)
        fleet = generate_fleet(Size.TYPICAL, 2, 14, prefix="bench")
        register_fleet(url, fleet)
        now = datetime.now(UTC)
        t0 = time.perf_counter()
        total = _fill(url, args.per_device_day, args.days, now)
        fill_s = time.perf_counter() - t0
        start, end = now - timedelta(days=30), now
        with connection(url, autocommit=True) as conn:
            row = conn.execute("SELECT id FROM communities ORDER BY id LIMIT 1").fetchone()
            assert row is not None
            community = int(row[0])
            devices = conn.execute(
                "SELECT count(*) FROM devices WHERE community_id = %s", (community,)
            ).fetchone()
            in_window = conn.execute(
                "SELECT count(*) FROM compliance_findings WHERE community_id = %s AND observed_at >= %s "
                "AND observed_at < %s",
                (community, start, end),
            ).fetchone()
            old_ms: list[float] = []
            new_ms: list[float] = []
            new_wall_ms: list[float] = []
            nojit_ms: list[float] = []
            old_nojit_ms: list[float] = []
            daily_ms: list[float] = []
            old_plan = new_plan = nojit_plan = daily_plan = ""
            for _ in range(args.runs):  # interleaved, so both see the same machine
                ms, old_plan = _explain_ms(conn, OLD_QUERY, (community, start, end))
                old_ms.append(ms)
                ms, daily_plan = _explain_ms(conn, DAILY_QUERY, _new_params(community, start, end))
                daily_ms.append(ms)
                t = time.perf_counter()
                summary = compliance_summary(conn, community, start, end)
                new_wall_ms.append(1000 * (time.perf_counter() - t))
                ms, new_plan = _explain_ms(conn, _new_query(), _new_params(community, start, end))
                new_ms.append(ms)
                conn.execute("SET jit = off")
                ms, nojit_plan = _explain_ms(conn, _new_query(), _new_params(community, start, end))
                nojit_ms.append(ms)
                ms, _ = _explain_ms(conn, OLD_QUERY, (community, start, end))
                old_nojit_ms.append(ms)
                conn.execute("RESET jit")
            old = conn.execute(OLD_QUERY, (community, start, end)).fetchall()
            exact = _same(old, summary)
        if args.plans:
            args.plans.write_text(
                f"-- before\n{old_plan}\n\n-- daily only (0012)\n{daily_plan}\n\n-- now\n{new_plan}\n\n"
                f"-- now, jit off\n{nojit_plan}\n"
            )
        result = {
            "mode": svc.default_mode if args.mode is None else args.mode,
            "postgresql": svc.pg_version,
            "timescaledb": svc.timescaledb,
            "machine": f"{platform.machine()}, {_cpus()} CPU, Python {platform.python_version()}",
            "devices_in_community": devices[0] if devices else None,
            "findings_total": total,
            "findings_in_window": in_window[0] if in_window else None,
            "fill_s": round(fill_s, 1),
            "before_db_ms_median": round(statistics.median(old_ms), 1),
            "daily_only_db_ms_median": round(statistics.median(daily_ms), 1),
            "now_db_ms_median": round(statistics.median(new_ms), 1),
            "now_db_ms_median_jit_off": round(statistics.median(nojit_ms), 1),
            "before_db_ms_median_jit_off": round(statistics.median(old_nojit_ms), 1),
            "now_wall_ms_median": round(statistics.median(new_wall_ms), 1),
            "ratio_before_over_now": round(statistics.median(old_ms) / statistics.median(new_ms), 1),
            "ratio_daily_only_over_now": round(statistics.median(daily_ms) / statistics.median(new_ms), 2),
            "same_counts": exact,
        }
        print(json.dumps(result, indent=2))
    finally:
        svc.stop()


def _new_query() -> str:
    source = inspect.getsource(findings.compliance_summary)
    return source.split('"""\n', 2)[2].split('"""', 1)[0]


def _new_params(community: int, start: datetime, end: datetime) -> dict[str, Any]:
    d0, d1 = _whole_days(start, end)
    days, span_days, span_starts = _spans(d0, d1)
    return {
        "c": community,
        "start": start,
        "end": end,
        "d0": d0,
        "d1": d1,
        "days": days,
        "span_days": span_days,
        "span_starts": span_starts,
    }


def _same(old: list[Any], summary: Any) -> bool:
    lines = {(r[0], r[1], r[2], r[4], r[5]) for r in old if r[2] is None}
    ours = {
        (x.check_name, x.family, None, x.total, x.compliant) for x in [*summary.by_check, *summary.by_family]
    }
    return lines == ours


def _cpus() -> int:
    return os.cpu_count() or 0


if __name__ == "__main__":
    main()
