"""`yiju compliance`: the compliance summary of a community over a window (domain.md §5)."""

from __future__ import annotations

import argparse
import json
import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from yiju.commands.base import Subparsers
from yiju.errors import InputError

if TYPE_CHECKING:
    from storage import findings
    from yiju.settings import Settings

# The database is imported when the command runs, so that `yiju --help` starts fast.

_WINDOW = re.compile(r"^(\d+)([dh])$")
CHECK_LABELS = {
    "auto_cutoff": "自动断电 auto-cutoff",
    "protection_config": "保护设置 protection settings",
    "fault_alarm": "故障报警 fault alarm",
    "cctv_retention": "录像保存 CCTV retention",
    "linkage": "消防/燃气联动 linkage",
    "rescue": "困人救援 rescue",
    "self_test": "探测器自检 self-test records",
}


def parse_window(text: str) -> timedelta:
    match = _WINDOW.match(text)
    if not match:
        raise InputError(f"window must look like 30d or 12h, got {text!r}")
    n, unit = int(match.group(1)), match.group(2)
    return timedelta(days=n) if unit == "d" else timedelta(hours=n)


def summary_json(s: findings.ComplianceSummary, code: str) -> dict[str, Any]:
    def line(x: findings.SummaryLine) -> dict[str, Any]:
        return {
            "check": x.check_name,
            "family": x.family,
            "device": x.device_uid,
            "total": x.total,
            "compliant": x.compliant,
            "failed": x.failed,
            "share": round(x.share, 4),
            "worst_measured_s": x.worst_measured_s,
            "failing_channels": list(x.failing_channels),
            "late": x.late,
            "not_cut": x.not_cut,
        }

    return {
        "community": code,
        "window_start": s.window_start.isoformat(),
        "window_end": s.window_end.isoformat(),
        "by_check": [line(x) for x in s.by_check],
        "by_family": [line(x) for x in s.by_family],
        "failing_devices": [line(x) for x in s.failing_devices],
    }


def summary_table(s: findings.ComplianceSummary, code: str) -> str:
    out = [f"community {code}: {s.window_start:%Y-%m-%d %H:%M} – {s.window_end:%Y-%m-%d %H:%M} UTC", ""]
    out.append(
        f"{'check':<28} {'family':<14} {'total':>7} {'ok':>7} {'failed':>7} {'share':>7}"
        f" {'late':>5} {'not_cut':>7} {'worst_s':>8}"
    )
    for x in [*s.by_check, *s.by_family]:
        label = CHECK_LABELS.get(x.check_name, x.check_name) if x.family is None else ""
        worst = "" if x.worst_measured_s is None else f"{x.worst_measured_s:.1f}"
        out.append(
            f"{label:<28} {x.family or 'all':<14} {x.total:>7} {x.compliant:>7} {x.failed:>7} {x.share:>7.1%}"
            f" {x.late:>5} {x.not_cut:>7} {worst:>8}"
        )
    if not s.by_check:
        out.append("(no findings in this window)")
    if s.failing_devices:
        out += ["", "devices with failures:"]
        out += [
            f"  {x.device_uid:<40} {x.check_name:<18} failed {x.failed} of {x.total}"
            + (f" (channels {', '.join(map(str, x.failing_channels))})" if x.failing_channels else "")
            for x in s.failing_devices
        ]
    return "\n".join(out)


def _cmd_compliance(args: argparse.Namespace, settings: Settings) -> int:
    from storage import findings
    from storage.db import connection
    from storage.registry import require_community
    from yiju.stack import resolve_database

    window = parse_window(args.window)
    end = datetime.now(UTC)
    with connection(resolve_database(settings)) as conn:
        community = require_community(conn, args.community)
        summary = findings.compliance_summary(conn, community.id, end - window, end)
    if args.json:
        print(json.dumps(summary_json(summary, community.code), ensure_ascii=False, indent=2))
    else:
        print(summary_table(summary, community.code))
    return 0


def register(sub: Subparsers) -> None:
    p = sub.add_parser("compliance", help="compliance summary of a community over a window")
    p.add_argument("--community", required=True, help="community code")
    p.add_argument("--window", default="30d", help="how far back, e.g. 30d (default) or 12h")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(handler=_cmd_compliance)
