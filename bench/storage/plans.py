"""Query plans of the API's readings and of the rollup on one simulated day of the typical compound.

    .venv/bin/python bench/storage/plans.py [--modes timescaledb partitioned] [--hours 24] [--json FILE]

Writes the day through this checkout's `IngestWriter` (bench/storage_size.py's day), brings the
rollup up to three hours before the day's end (as the upkeep leaves it: the newest hours are read
raw), then runs EXPLAIN (ANALYZE, BUFFERS) at the day's end, for the charger series with the most
points, of: the device's metrics (7 days, `GET /devices/{id}/metrics`), its raw points (the last
6 hours, `GET /devices/{id}/telemetry` raw), its hourly buckets (24 hours, `…?resolution=hour`), and
the rollup's aggregate of one hour of every device (what a refresh computes per hour). The SQL is
the same text on both layouts (before and after migration 0028), so `--tree`-style comparisons run
this file from each checkout: copy it into the other checkout's bench/storage/.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]

from harness import start_services  # noqa: E402
from storage_size import _write_day  # noqa: E402

from storage.db import connection  # noqa: E402

HOUR = timedelta(hours=1)
TAIL = 3 * HOUR  # the hours after the rollup's watermark, read raw (ROLLUP_RECENT_WINDOW + settle)

QUERIES = {
    # storage/readings.py, the same text in both layouts
    "device_metrics_7d": """SELECT DISTINCT ON (metric, channel) metric, channel, ts AS last_ts,
           value AS last_value FROM points WHERE device_id = %(device)s AND ts >= %(end)s - interval '7 days'
           ORDER BY metric, channel, ts DESC""",
    "raw_points_6h": """SELECT ts, value FROM points
           WHERE device_id = %(device)s AND metric = %(metric)s AND channel = %(channel)s
             AND ts >= %(end)s - interval '6 hours' AND ts < %(end)s ORDER BY ts LIMIT 5000""",
    "hourly_buckets_24h": """SELECT bucket, samples, min_value, max_value, avg_value FROM points_hourly
           WHERE device_id = %(device)s AND metric = %(metric)s AND channel = %(channel)s
             AND bucket >= date_trunc('hour', %(end)s - interval '24 hours', 'UTC') AND bucket < %(end)s
           ORDER BY bucket""",
    # storage/timeseries.py: the aggregate a refresh computes for one hour of all devices
    "rollup_one_hour": """SELECT device_id, metric, channel, date_trunc('hour', ts, 'UTC'), count(*),
           min(value), max(value), avg(value), sum(value) FROM points
           WHERE ts >= %(hour)s AND ts < %(hour)s + interval '1 hour'
           GROUP BY device_id, metric, channel, date_trunc('hour', ts, 'UTC')""",
}


def _settle_rollup(conn: Any, mode: str, start: datetime, end: datetime) -> str:
    """The rollup as the upkeep leaves it at `end`: materialised up to end - TAIL."""
    upto = end - TAIL
    new_layout = conn.execute("SELECT to_regclass('rollup_watermark') IS NOT NULL").fetchone()[0]
    if new_layout:
        conn.execute("DELETE FROM points_rollup WHERE bucket >= %s", (upto,))
        conn.execute("UPDATE rollup_watermark SET upto = %s", (upto,))
        return "points_rollup up to the watermark + raw tail (migration 0028)"
    if mode == "timescaledb":
        # the continuous aggregate's policy leaves end - 1 h materialised; TAIL keeps the tail the same
        # length as the new layout's here
        conn.execute("CALL refresh_continuous_aggregate('points_hourly', NULL, NULL)")
        conn.execute("CALL refresh_continuous_aggregate('points_hourly', %s, %s)", (start, upto))
        return "real-time continuous aggregate"
    conn.execute("DELETE FROM points_hourly WHERE bucket >= %s", (upto,))
    return "points_hourly table (no tail)"


def plans(svc: Any, mode: str, hours: float) -> dict[str, Any]:
    url = svc.create_database(mode)
    day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=2)
    end = day + timedelta(hours=hours)
    t0 = time.perf_counter()
    counts = _write_day(url, day, end)
    out: dict[str, Any] = {"mode": mode, "hours": hours, **counts, "write_s": round(time.perf_counter() - t0)}
    with connection(url, autocommit=True) as conn:
        out["rollup"] = _settle_rollup(conn, mode, day, end)
        conn.execute("VACUUM ANALYZE")
        row = conn.execute(
            "SELECT p.device_id, p.metric, p.channel FROM points p JOIN devices d ON d.id = p.device_id "
            "WHERE d.family = 'ebike_charger' AND p.ts >= %s GROUP BY 1, 2, 3 ORDER BY count(*) DESC LIMIT 1",
            (end - timedelta(hours=6),),
        ).fetchone()
        params = {"device": row[0], "metric": row[1], "channel": row[2], "end": end, "hour": end - 4 * HOUR}
        out["series"] = {k: str(v) for k, v in params.items()}
        out["plans"] = {}
        for name, query in QUERIES.items():
            conn.execute(query, params).fetchall()  # warm: the figures are of a cached working set
            rows = conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + query, params).fetchall()
            text = "\n".join(r[0] for r in rows)
            out["plans"][name] = text
            print(f"--- {mode} {name}\n{text}", flush=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--modes", nargs="+", default=["timescaledb", "partitioned"])
    p.add_argument("--hours", type=float, default=24.0)
    p.add_argument("--json", type=Path, help="write the results here")
    args = p.parse_args()
    svc = start_services()
    results = []
    try:
        print(f"PostgreSQL {svc.pg_version}, TimescaleDB {svc.timescaledb or 'absent'}", flush=True)
        for mode in args.modes:
            if mode == "timescaledb" and not svc.timescaledb:
                print("timescaledb: not usable on this server, skipped")
                continue
            results.append(plans(svc, mode, args.hours))
    finally:
        svc.stop()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
