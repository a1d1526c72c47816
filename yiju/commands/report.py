"""`yiju report indicators`: the indicator score sheet of a community (docs/indicators.md) as PDF, HTML
or JSON. Heavy modules (the scoring, WeasyPrint) load only when the command runs."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from yiju.commands.base import Subparsers
from yiju.errors import InputError

if TYPE_CHECKING:
    from yiju.settings import Settings


def _cmd_indicators(args: argparse.Namespace, settings: Settings) -> int:
    from alerts.indicators.period import parse_period
    from alerts.indicators.render import render_html
    from alerts.indicators.report import as_json
    from alerts.indicators.service import make_report
    from storage.db import connection
    from storage.registry import require_community
    from yiju.stack import resolve_database

    out: Path | None = args.out
    if args.format == "pdf" and out is None:
        raise InputError("--format pdf needs --out FILE")
    overrides = {"fault_unit": args.fault_unit} if args.fault_unit else None
    now = datetime.now(UTC)
    with connection(resolve_database(settings)) as conn:  # the broker is never used here
        community = require_community(conn, args.community)
        start, end = parse_period(args.period, community.timezone, now)
        print(
            f"reading the evidence of {community.code} for {start:%Y-%m-%d} – {end:%Y-%m-%d} …",
            file=sys.stderr,
        )
        report = make_report(conn, community.id, start, end, now=now, overrides=overrides)
    if args.format == "json":
        data = json.dumps(as_json(report), ensure_ascii=False, indent=2).encode()
    elif args.format == "html":
        data = render_html(report, args.lang).encode()
    else:
        print("rendering the PDF …", file=sys.stderr)
        from alerts.indicators.pdf import render_pdf

        data = render_pdf(report, args.lang)
    s = report.summary
    if out is None:
        sys.stdout.buffer.write(data)
    else:
        out.write_bytes(data)
        print(f"wrote {out} ({len(data):,} bytes)", file=sys.stderr)
    print(
        f"device-evidenced items: {s.device_points:g} /"
        f" {s.device_points_max:g}; fingerprint {report.fingerprint}",
        file=sys.stderr,
    )
    return 0


def register(sub: Subparsers) -> None:
    p = sub.add_parser("report", help="reports for assessors (indicator verification)")
    reports = p.add_subparsers(dest="report", required=True, metavar="REPORT")
    r = reports.add_parser("indicators", help="the indicator score sheet of a community (docs/indicators.md)")
    r.add_argument("--community", required=True, help="community code")
    r.add_argument(
        "--period", help="local days, both included: 2026-11-01..2026-11-30 (default: the last 30 days)"
    )
    r.add_argument("--format", choices=("pdf", "html", "json"), default="pdf")
    r.add_argument("--lang", choices=("zh", "en"), default="zh")
    r.add_argument(
        "--fault-unit",
        choices=("facility", "facility_day", "open_at_end"),
        help="what one fault counts (default: the community setting, else facility)",
    )
    r.add_argument("--out", type=Path, help="file to write (stdout for html/json when omitted)")
    r.set_defaults(handler=_cmd_indicators)
