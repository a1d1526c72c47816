# ruff: noqa: PLC0415, E501 - a benchmark imports lazily and prints
"""Storage per compound, measured: bytes per stored message in both storage modes, and the simulator's
normal message rate of one typical compound, giving the disk a compound needs for the default
retention (docs/operations.md, "Sizing").

    .venv/bin/python bench/storage/size.py [--messages 100000]

Writes the simulator's typical-compound traffic (bench/ingest/load.py) through the ingest writer
into a fresh database per mode (private PostgreSQL from tests/harness.py), then measures the tables
with their indexes: raw in partitioned mode; raw and after `compress_chunk` in TimescaleDB mode.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench" / "ingest")]

# points are arrays in telemetry since migration 0028; points_legacy holds older ones (empty here)
TABLES = ("telemetry", "points_legacy", "device_events")


def normal_rate(fleet) -> tuple[float, float]:
    """Messages per second of the simulator's normal traffic over one simulated day, and the share
    of telemetry."""
    from devices.contract import Channel
    from simulators import behaviour

    start = datetime(2026, 6, 1, tzinfo=UTC)
    end = start + timedelta(days=1)
    n = tel = 0
    for m in behaviour.fleet_background(fleet, start, end):
        n += 1
        tel += m.channel is Channel.TELEMETRY
    return n / 86400, tel / max(1, n)


def sizes(url: str) -> dict[str, int]:
    from storage.db import connection

    out = {}
    with connection(url, autocommit=True) as conn:
        tsdb = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
        for t in TABLES:
            if tsdb:
                row = conn.execute("SELECT hypertable_size(%s::regclass)", (t,)).fetchone()
            else:
                row = conn.execute(
                    "SELECT coalesce(sum(pg_total_relation_size(inhrelid)), 0) FROM pg_inherits "
                    "WHERE inhparent = %s::regclass",
                    (t,),
                ).fetchone()
            out[t] = int(row[0] or 0)
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--messages", type=int, default=100_000)
    args = p.parse_args()
    from harness import start_services
    from load import bench_fleet, templates
    from run import PREFIX, db_ceiling

    from storage.db import connection
    from yiju.commands.simulate import register_fleet

    fleet = bench_fleet(1)
    rate, tel_share = normal_rate(fleet)
    print(
        f"typical compound: {fleet.device_count():,} devices, normal traffic {rate:.2f} msg/s ({tel_share:.0%} telemetry)"
    )
    tpl = templates(fleet, PREFIX, 100_000)
    services = start_services()
    try:
        modes = ["partitioned"] + (["timescaledb"] if services.timescaledb else [])
        for mode in modes:
            url = services.create_database(mode)
            register_fleet(url, fleet)
            db_ceiling(url, tpl, args.messages, 2000)
            with connection(url, autocommit=True) as conn:
                conn.execute("VACUUM ANALYZE")
                pts = conn.execute("SELECT count(*) FROM points").fetchone()[0]
            raw = sizes(url)
            report = [(f"{mode} raw", raw)]
            if mode == "timescaledb":
                with connection(url, autocommit=True) as conn:
                    for t in TABLES:
                        conn.execute(
                            "SELECT compress_chunk(c, if_not_compressed => true) FROM show_chunks(%s::regclass) c",
                            (t,),
                        )
                report.append(("timescaledb compressed", sizes(url)))
            for label, s in report:
                per_msg = sum(s.values()) / args.messages
                day = per_msg * rate * 86400
                print(
                    f"{label:24} {per_msg:7.0f} B/message ({', '.join(f'{t} {s[t] / args.messages:.0f}' for t in TABLES)}); "
                    f"{pts / args.messages:.1f} points/message; {day / 1e6:,.0f} MB/day, {day * 365 / 1e9:,.1f} GB/year at {rate:.1f} msg/s"
                )
            services.drop_database(url)
    finally:
        services.stop()


if __name__ == "__main__":
    main()
