"""`yiju linkage test --chain X`: commission an escalation chain with a drill.

Starts a drill incident of the chain (marked 演练/drill in every notification: the SIP prompt says
演练, SMS and webhooks carry drill=true, GB/T 26875.3 frames have the test bit), runs an escalation
worker in this process with the configured channels until the drill ends (or --timeout), prints
each attempt and outcome as it happens, and exits 0 only if every delivery got through.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from yiju.commands.base import Subparsers
from yiju.errors import InputError

if TYPE_CHECKING:
    from storage.escalation import AuditEntry
    from yiju.settings import Settings

GOOD = frozenset({"delivered", "answered", "acknowledged"})


def _line(entry: AuditEntry) -> str:
    stamp = entry.at.strftime("%H:%M:%S")
    what = ", ".join(
        f"{k}={v}" for k, v in entry.detail.items() if k not in ("key",) and v not in (None, "", [])
    )
    return f"{stamp}  {entry.kind:<13} {what}"


def _cmd_test(args: argparse.Namespace, settings: Settings) -> int:
    # loaded when the command runs, so that `yiju --help` stays fast (tests/test_cli_startup.py)
    from alerts.escalation.channels import build_channels
    from alerts.escalation.worker import EscalationWorker, start_drill
    from storage import escalation as store
    from storage.db import connection
    from yiju.stack import resolve_database

    url = resolve_database(settings)  # a drill needs the database, never the broker
    with connection(url) as conn:
        chain = store.find_chain(conn, args.chain)
        if chain is None:
            raise InputError(f"no chain {args.chain!r} (give its name or id; see GET /api/v1/linkage/chains)")
        incident = start_drill(
            conn, community_id=chain.community_id, chain_id=chain.id, actor="cli", now=datetime.now(UTC)
        )
        store.wake_workers(conn)
        conn.commit()
    print(
        f"drill incident {incident.id} of chain {chain.name!r} (v{chain.version}) started"
        " — 演练, not a real alarm"
    )
    channels = build_channels(settings.linkage, settings.state_dir / "prompts")
    missing = sorted(
        {c for s in chain.definition["steps"] for c in s["channels"]} - set(channels) - {"console"}
    )
    if missing:
        print(f"warning: channel(s) {', '.join(missing)} not configured here; those steps will fail")
    worker = EscalationWorker(url, settings.linkage, channels, worker_id="cli-linkage-test")
    seen = 0
    deadline = time.monotonic() + args.timeout
    state = "open"
    with worker:
        while time.monotonic() < deadline:
            with connection(url) as conn:
                timeline = store.audit_of(conn, incident.id)
                row = store.get_incident(conn, incident.id)
            for entry in timeline[seen:]:
                print(_line(entry), flush=True)
            seen = len(timeline)
            state = row.state if row else "gone"
            if state != "open":
                break
            time.sleep(0.5)
        else:
            with connection(url) as conn:
                store.end_incident(conn, incident.id, "cancelled", actor="cli", detail={"reason": "timeout"})
                conn.commit()
            print(f"timeout after {args.timeout:g} s: drill cancelled")
    with connection(url) as conn:
        rows = store.outbox_of(conn, incident.id)
    bad = [r for r in rows if r.status not in GOOD and r.status != "cancelled"]
    print(f"drill {incident.id}: {state}; {len(rows)} deliveries, {len(rows) - len(bad)} ok")
    for r in bad:
        print(f"  FAILED {r.channel:<9} {r.target_name} {r.address}: {r.status} {r.outcome or ''}")
    return 0 if rows and not bad else 1


def register(sub: Subparsers) -> None:
    p = sub.add_parser("linkage", help="emergency linkage: commission a chain with a drill")
    lsub = p.add_subparsers(dest="linkage_command", required=True, metavar="ACTION")
    t = lsub.add_parser("test", help="test-fire a chain (a drill) and follow every attempt")
    t.add_argument("--chain", required=True, help="chain name or id")
    t.add_argument(
        "--timeout", type=float, default=600.0, help="give up after this many seconds (default 600)"
    )
    t.set_defaults(handler=_cmd_test)
