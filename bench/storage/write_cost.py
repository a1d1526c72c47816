"""PostgreSQL's CPU for two things ingest writes besides the rows (migration 0030, issue 18).

    .venv/bin/python bench/storage/write_cost.py [--rounds 3] [--messages 30000]

(1) presence upserts (`storage.presence.upsert_presence`, half the bench fleet's devices per upsert,
    as a presence flush): server backend CPU per upserted row with the `last_seen` index migration
    0030 dropped put back (no update can be HOT) and without it (this schema), alternately;
(2) compression of wide values: the bench load's telemetry rows over 50 points (the chargers' wide
    messages, compressed inline) copied into a pglz and an lz4 table, alternately, with the values
    re-made so that each is compressed anew: backend CPU per row to write them, and the time to read
    them back (one metric unnested from every row, and every body as text).
The figure is the backend's CPU (/proc/<pid>/stat), so it holds on a loaded machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench" / "ingest")]

import run  # noqa: E402
from harness import start_services  # noqa: E402
from load import bench_fleet, templates  # noqa: E402

from storage.db import connection  # noqa: E402
from storage.presence import PresenceRow, upsert_presence  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")
READ_ONE_METRIC = (
    "SELECT sum(p.value) FROM wide_{} t, unnest(t.point_metrics, t.point_channels, t.point_values)"
    " AS p (metric, channel, value) WHERE p.metric = 'ambient_temp_c'"
)
PRESENCE_INDEX = "CREATE INDEX device_presence_online_last_seen ON device_presence (last_seen) WHERE online"


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def _presence(conn: Any, ids: list[int], start: datetime, upserts: int) -> float:
    pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    before, rows = _cpu_s(pid), 0
    for k in range(upserts):
        at = start + timedelta(seconds=2 * k)
        batch = [PresenceRow(d, at, k, True, "online", None) for d in ids[k % 2 :: 2]]
        with conn.cursor() as cur:
            upsert_presence(cur, batch)
        conn.commit()
        rows += len(batch)
    return round((_cpu_s(pid) - before) / rows * 1e6, 2)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--messages", type=int, default=30_000)
    args = p.parse_args()
    svc = start_services()
    out: dict[str, Any] = {"date": datetime.now(UTC).isoformat(timespec="seconds")}
    try:
        fleet = bench_fleet(1)
        n_dev = sum(1 for _ in fleet.devices)
        tpl = templates(fleet, run.PREFIX, args.messages + n_dev)[n_dev:]
        url = run.fresh_db(svc, fleet)
        run.db_ceiling(url, tpl, args.messages, 2000)  # the bench load, written by IngestWriter
        with connection(url) as conn:
            ids = [int(r[0]) for r in conn.execute("SELECT id FROM devices ORDER BY id").fetchall()]
            start = datetime.now(UTC)
            presence: dict[str, list[float]] = {"with the last_seen index": [], "without (0030)": []}
            for rnd in range(args.rounds):
                for label, figures in presence.items():
                    if label.startswith("with "):
                        conn.execute(PRESENCE_INDEX)
                    else:
                        conn.execute("DROP INDEX IF EXISTS device_presence_online_last_seen")
                    conn.commit()
                    at = start + timedelta(hours=rnd, minutes=30 * (label.startswith("with ")))
                    figures.append(_presence(conn, ids, at, 30))
            out["presence_backend_cpu_us_per_row"] = presence
            out["presence_rows_per_upsert"] = len(ids) // 2
        with connection(url, autocommit=True) as conn:
            pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
            wide = conn.execute(
                "SELECT count(*) FROM telemetry WHERE cardinality(point_values) > 50"
            ).fetchone()
            out["wide_rows"] = [wide[0], conn.execute("SELECT count(*) FROM telemetry").fetchone()[0]]
            for method in ("pglz", "lz4"):
                conn.execute(
                    f"CREATE TABLE wide_{method} (ts timestamptz, device_id int, "
                    f"body jsonb COMPRESSION {method}, "
                    f"point_metrics text[] COMPRESSION {method}, point_channels smallint[], "
                    f"point_values float8[] COMPRESSION {method})"
                )
            write: dict[str, list[float]] = {"pglz": [], "lz4": []}
            read: dict[str, list[float]] = {"pglz": [], "lz4": []}
            for rnd in range(args.rounds):
                for method in ("pglz", "lz4") if rnd % 2 == 0 else ("lz4", "pglz"):
                    before = _cpu_s(pid)
                    for _ in range(5):  # new datums (a cast, an append): each compressed anew
                        conn.execute(
                            f"INSERT INTO wide_{method} SELECT ts, device_id, body::text::jsonb, "
                            "point_metrics || '{}'::text[], point_channels, point_values || '{}'::float8[] "
                            "FROM telemetry WHERE cardinality(point_values) > 50"
                        )
                    write[method].append(round((_cpu_s(pid) - before) / (5 * wide[0]) * 1e6, 1))
                    t0 = time.perf_counter()
                    conn.execute(READ_ONE_METRIC.format(method))
                    conn.execute(f"SELECT sum(length(body::text)) FROM wide_{method}")
                    read[method].append(round((time.perf_counter() - t0) * 1e3, 1))
            out["wide_rows_backend_cpu_us_per_row_written"] = write
            out["wide_rows_read_ms"] = read
            out["wide_table_bytes"] = {
                m: conn.execute(f"SELECT pg_total_relation_size('wide_{m}')").fetchone()[0] for m in write
            }
        out["loadavg"] = os.getloadavg()
        print(json.dumps(out, indent=2))
    finally:
        svc.stop()


if __name__ == "__main__":
    main()
