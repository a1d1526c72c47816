"""Metric names in the telemetry row as text[] or as smallint ids of a dictionary: PostgreSQL's CPU per
message for each (issue 18, migration 0028 chose text[]).

    .venv/bin/python bench/storage/metric_arrays.py [--rows 200000] [--rounds 3]

Two copies of the telemetry hypertable (or partitioned table) of a fresh database, one with
`point_metrics text[]`, one with `smallint[]`, each filled by binary COPY of the same messages (the
typical charger's 6 points and a 330-byte body), alternately; the figure is the server backend's CPU
(/proc/<pid>/stat) per row, so it holds under load. The client side is the same for both (the arrays
are pre-encoded bytes, as storage/messages.py sends them).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from harness import start_services  # noqa: E402

from storage.db import connection  # noqa: E402
from storage.messages import JSONB_V1, _float8_array, _int2_array, _text_array  # noqa: E402

METRICS = ("power_w", "port_temp_c", "port_temp_c", "current_a", "voltage_v", "energy_wh")
CHANNELS = (1, 1, 2, 1, 1, 1)
BODY = b'{"v":1,"data":{"ports":[{"port":1,"power_w":312.5,"current_a":1.42}]}}' + b" " * 260
TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def _copy(conn: Any, table: str, rows: int, start: datetime, metrics: bytes) -> float:
    pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    before = _cpu_s(pid)
    channels = _int2_array(CHANNELS)
    copy = (
        f"COPY {table} (ts, device_id, seq, received_at, body, point_metrics, point_channels, "
        "point_values) FROM STDIN (FORMAT BINARY)"
    )
    with conn.transaction(), conn.cursor() as cur, cur.copy(copy) as cp:
        cp.set_types(["timestamptz", "int4", "int8", "timestamptz", "bytea", "bytea", "bytea", "bytea"])
        for i in range(rows):
            ts = start + timedelta(milliseconds=i)
            values = _float8_array((300.0 + i % 7, 41.5, 39.0, 1.4, 229.0, float(i)))
            cp.write_row((ts, 1 + i % 6500, i, ts, JSONB_V1 + BODY, metrics, channels, values))
    return (_cpu_s(pid) - before) / rows * 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=200_000)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    svc = start_services()
    try:
        url = svc.create_database(None)
        with connection(url, autocommit=True) as conn:
            mode = conn.execute("SELECT value FROM yiju_meta WHERE key = 'storage_mode'").fetchone()[0]
            for table, kind in (("bench_text", "text[]"), ("bench_ids", "smallint[]")):
                cols = (
                    "ts timestamptz NOT NULL, device_id integer NOT NULL, seq bigint NOT NULL, "
                    "received_at timestamptz NOT NULL, body jsonb NOT NULL, "
                    f"point_metrics {kind}, point_channels smallint[], point_values double precision[]"
                )
                conn.execute("SELECT yiju_create_timeseries(%s, %s, 'ts', interval '1 day')", (table, cols))
                conn.execute(f"CREATE UNIQUE INDEX ON {table} (device_id, ts, seq)")
                if mode == "partitioned":
                    conn.execute(
                        f"CREATE TABLE {table}_p PARTITION OF {table} "
                        "FOR VALUES FROM (MINVALUE) TO (MAXVALUE)"
                    )
            text, ids = _text_array(METRICS), _int2_array(tuple(range(1, len(METRICS) + 1)))
            start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
            figures: dict[str, list[float]] = {"text[]": [], "smallint[]": []}
            for rnd in range(args.rounds):
                at = start + timedelta(hours=rnd)
                figures["text[]"].append(round(_copy(conn, "bench_text", args.rows, at, text), 2))
                figures["smallint[]"].append(round(_copy(conn, "bench_ids", args.rows, at, ids), 2))
            sizes = {
                t: conn.execute("SELECT pg_column_size(point_metrics) FROM " + t + " LIMIT 1").fetchone()[0]
                for t in ("bench_text", "bench_ids")
            }
        out = {"mode": mode, "rows": args.rows, "backend_cpu_us_per_row": figures, "array_bytes": sizes}
        print(json.dumps(out))
    finally:
        svc.stop()


if __name__ == "__main__":
    main()
