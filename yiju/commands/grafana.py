"""`yiju grafana provision` (upload the dashboards and data sources) and `yiju grafana export` (files)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from yiju.commands.base import Subparsers
from yiju.errors import ConfigurationError

if TYPE_CHECKING:
    from yiju.settings import Settings

DEFAULT_PROMETHEUS = "http://127.0.0.1:9090"


def _sources(args: argparse.Namespace, settings: Settings) -> object:
    from yiju.grafana.delivery import Sources

    url = args.postgres_url or settings.database.url
    if not url:
        raise ConfigurationError(
            "the PostgreSQL data source needs --postgres-url (a read-only role, docs/operations.md) "
            "or YIJU_DATABASE__URL"
        )
    return Sources(args.prometheus_url, url, timescaledb=not args.no_timescaledb)


def _cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    from yiju.grafana.delivery import PASSWORD_ENV, Sources, export

    sources = _sources(args, settings)
    assert isinstance(sources, Sources)
    done = export(Path(args.out), sources, dashboards_path=args.dashboards_path)
    for path in [*done.dashboards, *done.provisioning]:
        print(f"wrote {path}")
    print(f"Grafana reads the PostgreSQL password from ${PASSWORD_ENV} in its environment.")
    return 0


def _cmd_provision(args: argparse.Namespace, settings: Settings) -> int:
    from yiju.grafana.delivery import Sources, provision

    token = args.token or os.environ.get("GRAFANA_TOKEN")
    if not token:
        raise ConfigurationError("a Grafana service-account token is needed: --token T or GRAFANA_TOKEN")
    sources = _sources(args, settings)
    assert isinstance(sources, Sources)
    done = provision(args.url, token, sources, folder_uid=args.folder)
    for line in done.datasources:
        print(f"data source {line}")
    for url in done.dashboards:
        print(f"dashboard {url} (folder {done.folder})")
    return 0


def register(sub: Subparsers) -> None:
    g = sub.add_parser("grafana", help="Grafana dashboards: upload them, or write provisioning files")
    gsub = g.add_subparsers(dest="grafana_command", required=True, metavar="ACTION")

    def sources(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--prometheus-url",
            default=DEFAULT_PROMETHEUS,
            help=f"as Grafana reaches it ({DEFAULT_PROMETHEUS})",
        )
        p.add_argument(
            "--postgres-url",
            default=None,
            help="postgresql://reader[:password]@host:5432/yiju for Grafana (default: YIJU_DATABASE__URL)",
        )
        p.add_argument("--no-timescaledb", action="store_true", help="the database runs in partitioned mode")

    prov = gsub.add_parser("provision", help="upload data sources, folder and dashboards (idempotent)")
    prov.add_argument("--url", required=True, help="Grafana's URL, e.g. http://127.0.0.1:3000")
    prov.add_argument("--token", default=None, help="service-account token (default: $GRAFANA_TOKEN)")
    prov.add_argument("--folder", default="yiju", help="uid of the folder for the dashboards (yiju)")
    sources(prov)
    prov.set_defaults(handler=_cmd_provision)

    exp = gsub.add_parser("export", help="write the dashboards and Grafana's file-provisioning YAML")
    exp.add_argument("--out", required=True, help="directory (dashboards/ and provisioning/ inside)")
    exp.add_argument(
        "--dashboards-path", default=None, help="where Grafana will read the JSON (default: OUT/dashboards)"
    )
    sources(exp)
    exp.set_defaults(handler=_cmd_export)
