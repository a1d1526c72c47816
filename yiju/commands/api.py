"""`yiju api` (serve the REST API and the console) and `yiju users add` (create a login)."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import TYPE_CHECKING

from yiju.commands.base import Subparsers

if TYPE_CHECKING:
    from yiju.settings import Settings

# Imports of what a command needs happen when it runs, so that `yiju --help` starts fast.

# storage.users.Role's values, spelt out so that the parser needs no database import
# (tests/test_cli_startup.py checks that they match)
ROLE_NAMES = ("admin", "manager", "operator", "viewer")

# Open live streams are ended by the app at shutdown; this bounds how long uvicorn waits for them.
GRACEFUL_SHUTDOWN_S = 3


def _resolved(settings: Settings) -> Settings:
    from yiju.stack import resolve

    endpoints = resolve(settings)
    database = settings.database.model_copy(update={"url": endpoints.database_url})
    return settings.model_copy(update={"database": database})


def _cmd_api(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from api.app import create_app
    from api.metrics import ApiMetrics
    from yiju.metrics import DatabaseCollector, ProcessMetrics, serve_metrics

    settings = _resolved(settings)
    host = args.host or settings.api.host
    port = args.port if args.port is not None else settings.api.port
    assert settings.database.url is not None
    process = ProcessMetrics("api")
    api_metrics = ApiMetrics.create(process.registry)
    process.registry.register(DatabaseCollector(settings.database.url, fleet=False))
    exporter = serve_metrics(process.registry, settings.metrics.host, settings.metrics.port)
    print(f"Yiju API and console on http://{host}:{port}/console/  (OpenAPI: /docs)")
    print(f"metrics {exporter.url}")
    with exporter:
        uvicorn.run(
            create_app(settings, api_metrics),
            host=host,
            port=port,
            log_level=settings.log_level.lower(),
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        )
    return 0


def _cmd_users_add(args: argparse.Namespace, settings: Settings) -> int:
    from storage.db import connection
    from storage.users import Role, community_ids_by_code, create_user
    from yiju.errors import InputError

    password: str | None = None
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise InputError("--password-stdin: standard input held no password (one line is read)")
    elif not args.no_password:
        if not sys.stdin.isatty():  # getpass would fall back to reading (and echoing) a pipe, or fail
            raise InputError(
                "no terminal to ask for the password: pipe it in with --password-stdin, "
                f"e.g. `printf '%s\\n' \"$PW\" | yiju users add {args.username} --role {args.role} "
                "--password-stdin` (or --no-password for an integration account that uses API keys)"
            )
        password = getpass.getpass(f"password for {args.username}: ")
    settings = _resolved(settings)
    assert settings.database.url is not None
    with connection(settings.database.url) as conn:
        communities = community_ids_by_code(conn, args.community)
        user = create_user(
            conn,
            username=args.username,
            role=Role(args.role),
            password=password,
            community_ids=communities,
            display_name=args.display_name,
        )
        conn.commit()
    scope = "all communities" if user.all_communities else f"communities {sorted(user.community_ids)}"
    print(f"user {user.username} (id {user.id}) role {user.role.value}, {scope}")
    return 0


def register(sub: Subparsers) -> None:
    api = sub.add_parser("api", help="serve the REST API and the duty-room console")
    api.add_argument("--host", default=None, help="listen address (default: settings api.host)")
    api.add_argument("--port", type=int, default=None, help="listen port (default: settings api.port)")
    api.set_defaults(handler=_cmd_api)

    users = sub.add_parser("users", help="manage API and console users")
    users_sub = users.add_subparsers(dest="users_command", required=True, metavar="ACTION")
    add = users_sub.add_parser("add", help="create a user (asks for the password)")
    add.add_argument("username")
    add.add_argument("--role", required=True, choices=ROLE_NAMES)
    add.add_argument(
        "--community", action="append", default=[], help="community code or id (repeat for several)"
    )
    add.add_argument("--display-name", default="")
    add.add_argument("--no-password", action="store_true", help="an integration account (API keys only)")
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    add.set_defaults(handler=_cmd_users_add)
