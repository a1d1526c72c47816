"""Indicator report benchmark: a 30-day score sheet of a typical compound, as JSON and as PDF.

    .venv/bin/python bench/indicators.py [--size typical] [--days 30] [--repeat 3]

Builds the simulator's compound (typical: ~6,500 devices) in a fresh database of the test harness's
private PostgreSQL (or YIJU_TEST_DATABASE_URL), then writes `--days` days of evidence shaped like a
compound's month: a daily CCTV retention finding per channel, charger cutoff findings, protection
checks, lamp / door / CCTV / offline alarms on a few per cent of devices, self-tests of the smoke alarms,
and maintenance records. It times, side by side in one run:
- extract: reading the evidence (`storage.indicators.extract`; findings are aggregated in SQL);
- score: the pure scoring and report build;
- json: extract + score + serialisation (what `GET …/indicator-report` does);
- pdf: the same plus HTML and WeasyPrint.
Targets (issue 12): JSON ≤ 2 s, PDF ≤ 5 s on a quiet machine, from findings and alarms, never from raw
telemetry. Prints a table and a JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from harness import start_services  # noqa: E402

from alerts.indicators.config import IndicatorSettings  # noqa: E402
from alerts.indicators.pdf import render_pdf  # noqa: E402
from alerts.indicators.report import as_json, build  # noqa: E402
from simulators.compound import Size, generate_fleet  # noqa: E402
from storage import indicators  # noqa: E402
from storage.db import connect  # noqa: E402
from yiju.commands.simulate import register_fleet  # noqa: E402


def seed_evidence(url: str, community_id: int, end: datetime, days: int) -> dict[str, int]:
    """Evidence rows in bulk (plain SQL: benchmark fixture data, shaped like the engine's output)."""
    start = end - timedelta(days=days)
    with connect(url, autocommit=True) as conn:
        counts = {}
        # one retention finding per recorder channel per day (8 channels per recorder), 2 % failing
        conn.execute(
            """
            INSERT INTO compliance_findings (community_id, device_id, check_name, kind, compliant,
                                             observed_at,
                                             measured_s, channel, details)
            SELECT %s, d.id, 'cctv_retention', 'retention', (d.id + ch + day) %% 50 <> 0,
                   %s::timestamptz + make_interval(days => day, hours => 3), (28 + (d.id %% 10)) * 86400.0,
                   ch, '{}'
            FROM devices d, generate_series(1, 8) ch, generate_series(0, %s - 1) day
            WHERE d.community_id = %s AND d.family = 'cctv_recorder'
            """,
            (community_id, start, days, community_id),
        )
        # each charger post: a cutoff decision every day, one in 40 late; a protection check weekly
        conn.execute(
            """
            INSERT INTO compliance_findings (community_id, device_id, check_name, kind, compliant,
                                             observed_at,
                                             measured_s, deadline_s)
            SELECT %s, d.id, 'auto_cutoff', 'over_temperature', (d.id + day) %% 40 <> 0,
                   %s::timestamptz + make_interval(days => day, hours => 20), 2 + (d.id + day) %% 90, 60
            FROM devices d, generate_series(0, %s - 1) day
            WHERE d.community_id = %s AND d.family = 'ebike_charger'
            UNION ALL
            SELECT %s, d.id, 'protection_config', 'settings', true,
                   %s::timestamptz + make_interval(days => day), NULL, NULL
            FROM devices d, generate_series(0, %s - 1, 7) day
            WHERE d.community_id = %s AND d.family = 'ebike_charger'
            """,
            (community_id, start, days, community_id, community_id, start, days, community_id),
        )
        # fault alarms on 3 % of lamps, doors, recorders and elevators, and offline alarms on 1 % of all
        conn.execute(
            """
            INSERT INTO alarms (community_id, device_id, type, severity, status, first_at, last_at,
                                cleared_at,
                                acknowledged, acknowledged_at, source, details)
            SELECT %s, d.id,
                   CASE d.family WHEN 'light' THEN 'lamp_failure'
                                 WHEN 'access_door' THEN 'door_controller_fault'
                                 WHEN 'cctv_recorder' THEN 'cctv_channel_offline'
                                 ELSE 'elevator_door_fault' END,
                   'minor', CASE WHEN d.id %% 2 = 0 THEN 'cleared' ELSE 'active' END,
                   %s::timestamptz + make_interval(days => d.id %% %s), %s::timestamptz,
                   CASE WHEN d.id %% 2 = 0
                        THEN %s::timestamptz + make_interval(days => d.id %% %s, hours => 5) END,
                   d.id %% 3 = 0,
                   CASE WHEN d.id %% 3 = 0
                        THEN %s::timestamptz + make_interval(days => d.id %% %s, mins => 7) END,
                   'device',
                   CASE WHEN d.family = 'cctv_recorder' THEN '{"channels": [2, 5]}'::jsonb ELSE '{}' END
            FROM devices d
            WHERE d.community_id = %s AND d.family IN ('light', 'access_door', 'cctv_recorder', 'elevator')
              AND d.id %% 33 = 0
            UNION ALL
            SELECT %s, d.id, 'device_offline', 'minor', 'cleared',
                   %s::timestamptz + make_interval(days => d.id %% %s), %s::timestamptz,
                   %s::timestamptz + make_interval(days => d.id %% %s, hours => 1),
                   false, NULL, 'engine', '{}'
            FROM devices d WHERE d.community_id = %s AND d.id %% 100 = 7
            """,
            (
                community_id, start, days, end, start, days, start, days, community_id,
                community_id, start, days, end, start, days, community_id,
            ),
        )  # fmt: skip
        # presence: everyone reported recently
        conn.execute(
            """
            INSERT INTO device_presence (device_id, online, status, last_seen)
            SELECT id, true, 'online', %s FROM devices WHERE community_id = %s
            ON CONFLICT (device_id) DO UPDATE SET last_seen = EXCLUDED.last_seen
            """,
            (end - timedelta(minutes=5), community_id),
        )
        # monthly self-tests of the smoke alarms (device_events, as ingest stores them), a system record
        conn.execute(
            """
            INSERT INTO device_events (ts, device_id, seq, received_at, kind, code, channel, body)
            SELECT %s::timestamptz + make_interval(days => d.id %% %s), d.id, 1, now(), 'self_test', NULL, 0,
                   '{"event": {"type": "self_test", "ok": true}}'
            FROM devices d WHERE d.community_id = %s AND d.family = 'smoke_alarm' AND d.id %% 10 <> 0
            """,
            (start, days, community_id),
        )
        conn.execute(
            """
            INSERT INTO maintenance_records (community_id, family, kind, performed_at, performed_by, result,
                                             source, recorded_by)
            VALUES (%s, 'smoke_alarm', 'maintenance', %s, '消防维保公司', 'pass', 'manual', 'bench')
            """,
            (community_id, end - timedelta(days=100)),
        )
        for table in ("devices", "compliance_findings", "alarms", "device_events"):
            row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
            counts[table] = int(row[0]) if row else 0
    return counts


def timed(fn, repeat: int) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    times, result = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", choices=[s.value for s in Size], default="typical")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    services = start_services()
    try:
        url = services.create_database(None)
        fleet = generate_fleet(Size(args.size), 1, seed=7)
        register_fleet(url, fleet)
        code = fleet.compounds[0].community.code
        with connect(url) as conn:
            row = conn.execute("SELECT id FROM communities WHERE code = %s", (code,)).fetchone()
        assert row is not None
        cid = int(row[0])
        end = datetime.now(UTC).replace(microsecond=0)
        counts = seed_evidence(url, cid, end, args.days)
        start = end - timedelta(days=args.days)
        settings = IndicatorSettings()
        with connect(url, autocommit=True) as conn:
            for table in (
                "devices",
                "device_presence",
                "compliance_findings",
                "alarms",
                "maintenance_records",
            ):
                conn.execute(f"ANALYZE {table}")
        with connect(url) as conn:
            t_extract, x = timed(lambda: indicators.extract(conn, cid, start, end), args.repeat)
            conn.rollback()
            t_score, _ = timed(lambda: build(x, settings, end), args.repeat)  # type: ignore[arg-type]

            def whole_json() -> bytes:
                ex = indicators.extract(conn, cid, start, end)
                conn.rollback()
                return json.dumps(as_json(build(ex, settings, end)), ensure_ascii=False).encode()

            def whole_pdf() -> bytes:
                ex = indicators.extract(conn, cid, start, end)
                conn.rollback()
                return render_pdf(build(ex, settings, end))

            t_json, body = timed(whole_json, args.repeat)
            t_pdf, pdf = timed(whole_pdf, args.repeat)
        figures = {
            "size": args.size,
            "days": args.days,
            **counts,
            "extract_s": round(t_extract, 3),
            "score_s": round(t_score, 3),
            "json_s": round(t_json, 3),
            "json_bytes": len(body),  # type: ignore[arg-type]
            "pdf_s": round(t_pdf, 3),
            "pdf_bytes": len(pdf),  # type: ignore[arg-type]
            "load_avg": round(os.getloadavg()[0], 2),
        }
        print(f"{'figure':<12} {'median of ' + str(args.repeat):>14}  target")
        print(f"{'extract':<12} {t_extract:>13.3f}s")
        print(f"{'score':<12} {t_score:>13.3f}s")
        print(f"{'json':<12} {t_json:>13.3f}s  ≤ 2 s")
        print(f"{'pdf':<12} {t_pdf:>13.3f}s  ≤ 5 s")
        print(json.dumps(figures))
        services.drop_database(url)
    finally:
        services.stop()


if __name__ == "__main__":
    main()
