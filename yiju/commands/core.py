"""Core commands: db migrate / maintain, doctor, demo, version."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import time
from types import FrameType

from storage.db import connection
from storage.migrate import migrate
from storage.timeseries import run_maintenance
from yiju import __version__
from yiju.commands.base import Subparsers
from yiju.doctor import run_checks
from yiju.settings import Settings
from yiju.stack import LocalStack, resolve

log = logging.getLogger("yiju")

MAINTENANCE_INTERVAL_S = 60.0


def _cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    endpoints = resolve(settings)
    report = migrate(endpoints.database_url, settings.database)
    print(f"storage mode: {report.mode} ({report.mode_reason})")
    if report.applied:
        for m in report.applied:
            print(f"applied {m.version:04d}_{m.name}")
    else:
        print(f"nothing to apply ({report.already_applied} migration(s) already applied)")
    return 0


def _cmd_maintain(args: argparse.Namespace, settings: Settings) -> int:
    endpoints = resolve(settings)
    with connection(endpoints.database_url, autocommit=True) as conn:
        report = run_maintenance(conn, settings.database)
    if report.mode == "timescaledb":
        print("storage mode timescaledb: compression, retention and rollups run as TimescaleDB jobs")
    else:
        print(
            f"partitions created: {report.partitions_created}; dropped: {', '.join(report.dropped) or 'none'}"
        )
    return 0


def _cmd_doctor(args: argparse.Namespace, settings: Settings) -> int:
    checks = run_checks(settings)
    for check in checks:
        print(check.line())
    return 0 if all(c.ok for c in checks) else 1


def _cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    with LocalStack(settings) as endpoints:
        report = migrate(endpoints.database_url, settings.database)
        print(f"database  {endpoints.database_url}  (storage mode {report.mode}: {report.mode_reason})")
        print(f"broker    {endpoints.mqtt_url}")
        print("The stack is up. Device simulator, ingest and the live console are not built yet;")
        print("this demo runs the storage and the broker only. Press Ctrl-C to stop.")
        deadline = None if args.duration is None else time.monotonic() + args.duration
        try:
            while True:
                wait_s = MAINTENANCE_INTERVAL_S
                if deadline is not None:
                    wait_s = min(wait_s, max(0.0, deadline - time.monotonic()))
                if stop.wait(wait_s) or (deadline is not None and time.monotonic() >= deadline):
                    break
                with connection(endpoints.database_url, autocommit=True) as conn:
                    run_maintenance(conn, settings.database)
        except KeyboardInterrupt:
            pass
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
        "maintain", help="one round of partition upkeep, retention and rollups (partitioned mode)"
    ).set_defaults(handler=_cmd_maintain)

    sub.add_parser("doctor", help="check the database, its storage mode and the broker").set_defaults(
        handler=_cmd_doctor
    )
    demo = sub.add_parser("demo", help="run the whole stack on private local services")
    demo.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    demo.set_defaults(handler=_cmd_demo)
    sub.add_parser("version", help="print the version").set_defaults(handler=_cmd_version)
