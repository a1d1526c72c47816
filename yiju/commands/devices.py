"""`yiju devices …`: import a CSV into the registry, publish JSON Schemas, issue MQTT credentials."""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from devices import credentials
from devices.csv_import import CsvFileError, parse_csv
from yiju.commands.base import Subparsers
from yiju.errors import InputError

if TYPE_CHECKING:
    from yiju.settings import Settings

# The registry, the database and the message catalogue are imported when a command runs, so that
# `yiju --help` starts fast.

SECRET_FILE_MODE = 0o600
DEFAULT_INGEST_USER = "yiju-ingest"


def _write_secret(path: Path, text: str) -> None:
    """Create/replace a file readable by its owner only (the mode is set before any byte is written)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, SECRET_FILE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, SECRET_FILE_MODE)
    tmp.replace(path)


def _cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    path = Path(args.file)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        plan = parse_csv(data, community=args.community)
    except CsvFileError as exc:
        raise InputError(f"{path}: {exc}") from exc
    from storage import registry
    from storage.db import connection
    from yiju.stack import resolve

    url = resolve(settings).database_url
    with connection(url) as conn:
        if args.community_name:
            registry.upsert_community(conn, registry.CommunityIn(args.community, args.community_name))
        registry.require_community(conn, args.community)
        counts = registry.import_plan(conn, plan)
        conn.commit()
    for error in plan.errors:
        print(f"rejected: {error}")
    rows = {d.uid: d.row for d in plan.devices}
    for uid in counts.refused:
        print(
            f"rejected: row {rows.get(uid, '?')}, column device_uid: {uid!r} is registered in another "
            "community or is a reserved MQTT username (an admin moves devices with PATCH /devices/{id})"
        )
    print(
        f"{path}: {plan.rows_total} row(s); imported {len(plan.devices) - len(counts.refused)} device(s) "
        f"({counts.inserted} new, {counts.updated} updated) into community {args.community}; "
        f"rejected {len(plan.rejected_rows) + len(counts.refused)} row(s)"
    )
    return 1 if plan.errors or counts.refused else 0


def _cmd_schema(args: argparse.Namespace, settings: Settings) -> int:
    from devices import catalog

    schemas = catalog.json_schemas()
    if args.out is None:
        print(json.dumps(schemas, ensure_ascii=False, indent=2))
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, schema in schemas.items():
        doc = {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
        (out / f"{name}.schema.json").write_text(json.dumps(doc, ensure_ascii=False, indent=2) + "\n")
    print(f"wrote {len(schemas)} JSON Schema file(s) to {out}")
    return 0


def _service_accounts(
    args: argparse.Namespace, roles_path: Path, existing: dict[str, str], issued: list[tuple[str, str, str]]
) -> list[credentials.ServiceAccount]:
    """Service accounts are remembered (`services`: name role) so that a later run keeps them."""
    roles: dict[str, credentials.ServiceRole] = {}
    if roles_path.exists():
        for line in roles_path.read_text().splitlines():
            name, _, role = line.partition(" ")
            if name and role:
                roles[name] = credentials.ServiceRole(role)
    if not roles and not args.ingest_user:
        roles[DEFAULT_INGEST_USER] = credentials.ServiceRole.INGEST
    roles.update(dict.fromkeys(args.ingest_user, credentials.ServiceRole.INGEST))
    roles.update(dict.fromkeys(args.gateway_user, credentials.ServiceRole.GATEWAY))
    services: list[credentials.ServiceAccount] = []
    for name, role in sorted(roles.items()):
        encoded = existing.get(name)
        if encoded is None or args.rotate_services:
            password = credentials.new_password()
            encoded = credentials.hash_password(password)
            issued.append((name, f"service:{role.value}", password))
        services.append(credentials.ServiceAccount(name, role, encoded))
    return services


def _write_issued(out: Path, issued: list[tuple[str, str, str]]) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = out / f"new-passwords-{stamp}.csv"
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["username", "community", "password"])
    writer.writerows(issued)
    _write_secret(path, buf.getvalue())
    return path


def _cmd_credentials(args: argparse.Namespace, settings: Settings) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    passwd_path, acl_path = out / "passwd", out / "acl"
    existing = credentials.parse_password_file(passwd_path.read_text()) if passwd_path.exists() else {}
    issued: list[tuple[str, str, str]] = []  # (username, community or role, password)

    services = _service_accounts(args, out / "services", existing, issued)

    from storage import registry
    from storage.db import connection
    from yiju.stack import resolve

    url = resolve(settings).database_url
    with connection(url) as conn:
        if args.community:
            registry.require_community(conn, args.community)
        # one username namespace on the broker: a service account named like a device is refused
        # (InputError naming it) before anything is issued, and its name is reserved from now on
        registry.reserve_mqtt_usernames(
            conn, [s.username for s in services], "service account (yiju devices credentials)"
        )
        conn.commit()
        new_hashes: dict[str, str] = {}
        for uid, community, encoded in registry.credentials(conn, community=args.community):
            if encoded is None or args.rotate:
                password = credentials.new_password()
                new_hashes[uid] = credentials.hash_password(password)
                issued.append((uid, community, password))
        # the passwords reach disk before their hashes are committed: none is ever lost
        secrets_path = _write_issued(out, issued) if issued else None
        registry.set_credentials_hashes(conn, new_hashes)
        conn.commit()
        accounts = [
            credentials.DeviceAccount(uid, community, encoded)
            for uid, community, encoded in registry.credentials(conn)
            if encoded is not None
        ]
    prefix = settings.mqtt.topic_prefix
    duplicates = credentials.duplicate_usernames(accounts, services)
    if duplicates:
        raise InputError(f"MQTT username(s) used twice, nothing written: {', '.join(duplicates)}")
    _write_secret(passwd_path, credentials.password_file(accounts, services))
    acl_path.write_text(credentials.acl_file(prefix, accounts, services))
    (out / "services").write_text("".join(f"{s.username} {s.role.value}\n" for s in services))
    print(f"password file: {passwd_path} ({len(accounts)} device(s), {len(services)} service account(s))")
    print(f"ACL file:      {acl_path} (topic prefix {prefix!r})")
    if secrets_path is not None:
        print(
            f"new passwords: {secrets_path} ({len(issued)} account(s), mode 0600; shown once, stored hashed)"
        )
    if not issued:
        print("no new passwords issued")
    print("reload the broker to apply (Mosquitto: SIGHUP)")
    return 0


def register(sub: Subparsers) -> None:
    devices = sub.add_parser("devices", help="device registry: CSV import, JSON Schemas, MQTT credentials")
    dsub = devices.add_subparsers(dest="devices_command", required=True, metavar="ACTION")

    imp = dsub.add_parser(
        "import", help="import devices from a CSV file (per-row report; exit 1 if any row rejected)"
    )
    imp.add_argument("file", help="CSV file (UTF-8, UTF-8 with BOM, or GBK)")
    imp.add_argument("--community", required=True, help="community code")
    imp.add_argument("--community-name", help="create or rename the community with this name")
    imp.set_defaults(handler=_cmd_import)

    schema = dsub.add_parser("schema", help="JSON Schema of every MQTT message (stdout, or one file each)")
    schema.add_argument("--out", help="directory for <family>.<channel>.schema.json files")
    schema.set_defaults(handler=_cmd_schema)

    cred = dsub.add_parser("credentials", help="issue device passwords; write Mosquitto passwd + acl files")
    cred.add_argument("--out", required=True, help="directory for passwd, acl and new-passwords-*.csv")
    cred.add_argument("--community", help="issue passwords only for this community's devices")
    cred.add_argument("--rotate", action="store_true", help="new passwords for devices that already have one")
    cred.add_argument(
        "--ingest-user",
        action="append",
        default=[],
        metavar="NAME",
        help=f"service account reading all uplinks (default at first: {DEFAULT_INGEST_USER}); kept",
    )
    cred.add_argument(
        "--gateway-user",
        action="append",
        default=[],
        metavar="NAME",
        help="account publishing for all devices (e.g. load-mode simulator); kept afterwards",
    )
    cred.add_argument("--rotate-services", action="store_true", help="new passwords for the service accounts")
    cred.set_defaults(handler=_cmd_credentials)
