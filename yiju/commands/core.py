"""Core commands: db migrate / maintain, doctor, run, demo, version."""

from __future__ import annotations

import argparse
import signal
from typing import TYPE_CHECKING

from yiju import __version__
from yiju.commands.base import Subparsers

if TYPE_CHECKING:
    from yiju.settings import Settings

# What a command needs is imported when it runs, so that `yiju --help` starts fast.


def _cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from storage.migrate import migrate
    from yiju.stack import resolve_database

    report = migrate(resolve_database(settings), settings.database)
    print(f"storage mode: {report.mode} ({report.mode_reason})")
    if report.applied:
        for m in report.applied:
            print(f"applied {m.version:04d}_{m.name}")
    else:
        print(f"nothing to apply ({report.already_applied} migration(s) already applied)")
    return 0


def _cmd_maintain(args: argparse.Namespace, settings: Settings) -> int:
    from storage.db import connection
    from storage.timeseries import run_maintenance
    from yiju.stack import resolve_database

    with connection(resolve_database(settings), autocommit=True) as conn:
        report = run_maintenance(conn, settings.database)
    if report.mode == "timescaledb":
        print("storage mode timescaledb: compression, retention and rollups run as TimescaleDB jobs")
        failing = [job for job in report.jobs if job.last_run_status == "Failed"]
        print(f"policy jobs: {len(report.jobs)}, last scheduled run failed: {len(failing)}")
        for run in report.fallback_runs:
            outcome = "ok" if run.ok else f"FAILED: {run.error}"
            what = f"job {run.job_id} {run.proc_name} on {run.target}"
            print(f"ran {what} itself ({run.seconds:.1f} s): {outcome}")
    else:
        print(
            f"partitions created: {report.partitions_created}; dropped: {', '.join(report.dropped) or 'none'}"
        )
    print(f"rollup ranges refreshed for late data: {len(report.late_ranges)}")
    if any(not run.ok for run in report.fallback_runs):
        return 1
    return 0


def _cmd_doctor(args: argparse.Namespace, settings: Settings) -> int:
    from yiju.doctor import run_checks

    checks = run_checks(settings)
    for check in checks:
        print(check.line())
    return 0 if all(c.ok for c in checks) else 1


def _cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from yiju.demo import run_demo

    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop cleanly on SIGTERM as on Ctrl-C
    return run_demo(settings, duration_s=args.duration, port=args.port)


def _cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from yiju.metrics import serve_metrics
    from yiju.runtime import Runtime, serve_until_signal
    from yiju.stack import resolve

    signal.signal(signal.SIGTERM, signal.default_int_handler)
    endpoints = resolve(settings)
    runtime = Runtime(settings, endpoints)
    server = runtime.api_server(port=args.port)
    # bound before anything starts, so that a busy port fails at once
    exporter = serve_metrics(runtime.process.registry, settings.metrics.host, settings.metrics.port)
    with exporter, runtime:
        where = f"http://{server.config.host}:{server.config.port}/console/"
        print(f"Yiju running: ingest, alert engine, command dispatch, upkeep; API and console on {where}")
        print(f"metrics {exporter.url}")
        serve_until_signal(server)
    print("stopped")
    return 0


def _cmd_version(args: argparse.Namespace, settings: Settings) -> int:
    print(f"yiju {__version__}")
    return 0


def register(sub: Subparsers) -> None:
    db = sub.add_parser("db", help="database schema and upkeep")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    db_sub.add_parser("migrate", help="apply pending schema migrations (idempotent)").set_defaults(
        handler=_cmd_migrate
    )
    db_sub.add_parser(
        "maintain",
        help="one round of upkeep: partitions, retention, late rollups; TimescaleDB: run failing policy jobs",
    ).set_defaults(handler=_cmd_maintain)

    sub.add_parser("doctor", help="check the database, its storage mode and the broker").set_defaults(
        handler=_cmd_doctor
    )
    demo = sub.add_parser(
        "demo", help="the whole stack on private local services with a simulated compound and the console"
    )
    demo.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    demo.add_argument("--port", type=int, default=None, help="console/API port (default: settings, 8080)")
    demo.set_defaults(handler=_cmd_demo)
    run = sub.add_parser(
        "run",
        help="ingest, alert engine, command dispatch, upkeep and the API against the configured servers",
    )
    run.add_argument("--port", type=int, default=None, help="API port (default: settings)")
    run.set_defaults(handler=_cmd_run)
    sub.add_parser("version", help="print the version").set_defaults(handler=_cmd_version)
