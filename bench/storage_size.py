"""Storage per compound: one simulated day of the simulator's typical compound (~6,500 devices, its
normal traffic), written through the ingest writer, rolled up, and measured in each storage mode.

    .venv/bin/python bench/storage_size.py [--modes partitioned timescaledb] [--hours 24]

Services: the test harness's private PostgreSQL (or YIJU_TEST_DATABASE_URL). In TimescaleDB mode the
day's chunks (raw tables and the rollup's) are compressed as the policies would, and sizes are taken
before and after; in partitioned mode there is no compression. Figures are per day; docs/storage.md
turns them into a year and into the steady state at the default retentions.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from harness import start_services  # noqa: E402

from devices.catalog import points_of  # noqa: E402
from devices.contract import Channel, Decoded  # noqa: E402
from ingest.decode import EdgeValidator, Registry, event_fields  # noqa: E402
from ingest.messages import RawMessage  # noqa: E402
from simulators import behaviour  # noqa: E402
from simulators.compound import Size, generate_fleet  # noqa: E402
from storage.db import connection  # noqa: E402
from storage.messages import EventRow, IngestWriter, TelemetryRow, WriteBatch  # noqa: E402
from storage.registry import load_device_refs  # noqa: E402
from storage.timeseries import refresh_rollup  # noqa: E402
from yiju.commands.simulate import register_fleet  # noqa: E402
from yiju.settings import DatabaseSettings  # noqa: E402

PREFIX = "bench"
# points are arrays in telemetry since migration 0028 (points_legacy: older ones, empty here); the
# rollup table behind the points_hourly view is points_rollup
TABLES = ("telemetry", "points_legacy", "device_events", "points_rollup")
BATCH = 2000


def _write_day(url: str, start: datetime, end: datetime) -> dict[str, int]:
    fleet = generate_fleet(Size.TYPICAL, 1, 7, prefix="size")
    register_fleet(url, fleet)
    with connection(url) as conn:
        reg = Registry({r.ref.uid: r.ref for r in load_device_refs(conn)})
    # device times may be days old here (a measurement, not live traffic)
    validator = EdgeValidator(
        PREFIX, max_payload_bytes=1 << 16, max_past=timedelta(days=400), max_future=timedelta(minutes=5)
    )
    writer = IngestWriter(url, DatabaseSettings())
    counts = {
        "messages": 0,
        "refused": 0,
        "telemetry": 0,
        "events": 0,
        "points": 0,
        "devices": fleet.device_count(),
    }
    batch = WriteBatch()
    now = datetime.now(UTC)
    try:
        for m in behaviour.fleet_background(fleet, start, end):
            if m.channel not in (Channel.TELEMETRY, Channel.EVENT):
                continue  # status messages update presence, not the time series
            d = validator.validate(RawMessage(m.topic(PREFIX), m.payload, 0, 0, time.time()), reg, now)
            if not isinstance(d, Decoded):
                counts["refused"] += 1
                continue
            counts["messages"] += 1
            if d.channel is Channel.TELEMETRY:
                pts = tuple(points_of(d.device.family, d.body.data))
                counts["points"] += len(pts)
                counts["telemetry"] += 1
                batch.telemetry.append(TelemetryRow(d.ts, d.device.id, d.seq, d.ts, m.payload, pts))
            else:
                kind, code, chan = event_fields(d)
                counts["events"] += 1
                batch.events.append(EventRow(d.ts, d.device.id, d.seq, d.ts, kind, code, chan, m.payload))
            if len(batch) >= BATCH:
                writer.write(batch)
                batch = WriteBatch()
        if len(batch):
            writer.write(batch)
    finally:
        writer.close()
    with connection(url, autocommit=True) as conn:
        conn.execute("DELETE FROM rollup_pending")  # refreshed in one go below
        refresh_rollup(conn, start, end)
    return counts


def _sizes_partitioned(conn: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for table in TABLES[:3]:
        row = conn.execute(
            "SELECT coalesce(sum(pg_total_relation_size(i.inhrelid)), 0) FROM pg_inherits i "
            "WHERE i.inhparent = %s::regclass",
            (table,),
        ).fetchone()
        out[table] = int(row[0])
    row = conn.execute("SELECT pg_total_relation_size('points_rollup')").fetchone()
    out["points_rollup"] = int(row[0])
    return out


def _sizes_timescaledb(conn: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for table in TABLES:
        row = conn.execute("SELECT hypertable_size(%s::regclass)", (table,)).fetchone()
        out[table] = int(row[0] or 0)
    return out


def _compress_all(conn: Any) -> None:
    for table in TABLES:
        conn.execute(
            "SELECT compress_chunk(c, if_not_compressed => true) FROM show_chunks(%s::regclass) c", (table,)
        )
    conn.execute("VACUUM ANALYZE")


def measure(svc: Any, mode: str, hours: float) -> dict[str, Any]:
    url = svc.create_database(mode)
    day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=2)
    end = day + timedelta(hours=hours)
    t0 = time.perf_counter()
    counts = _write_day(url, day, end)
    result: dict[str, Any] = {
        "mode": mode,
        "hours": hours,
        **counts,
        "write_s": round(time.perf_counter() - t0),
    }
    with connection(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        if mode == "partitioned":
            result["bytes"] = _sizes_partitioned(conn)
        else:
            result["bytes_uncompressed"] = _sizes_timescaledb(conn)
            _compress_all(conn)
            result["bytes"] = _sizes_timescaledb(conn)
        rows = conn.execute("SELECT count(*) FROM points_hourly").fetchone()
        result["rollup_rows"] = int(rows[0])
    scale = 24 / hours
    result["mb_per_day"] = {k: round(v * scale / 1e6, 1) for k, v in result["bytes"].items()}
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--modes", nargs="+", default=["partitioned", "timescaledb"])
    p.add_argument("--hours", type=float, default=24.0)
    args = p.parse_args()
    svc = start_services()
    try:
        print(f"PostgreSQL {svc.pg_version}, TimescaleDB {svc.timescaledb or 'absent'}", flush=True)
        for mode in args.modes:
            if mode == "timescaledb" and not svc.timescaledb:
                print("timescaledb: not usable on this server, skipped")
                continue
            print(json.dumps(measure(svc, mode, args.hours), indent=2), flush=True)
    finally:
        svc.stop()


if __name__ == "__main__":
    main()
