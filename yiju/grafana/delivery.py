"""Getting the dashboards into Grafana: uploaded through its HTTP API with grafana-client (`provision`),
or written as files for Grafana's own file provisioning (`export`).

Both are idempotent: the data sources, the folder and the dashboards have fixed uids, and a second
run overwrites what the first one made (dashboards with `overwrite`, data sources by uid) instead of
adding copies. grafana-client and its HTTP errors stay in this module (translated to `ServiceError`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import niquests
import yaml
from grafana_client.api import GrafanaApi
from grafana_client.client import GrafanaClientError, GrafanaException

from yiju.errors import ConfigurationError, ServiceError
from yiju.grafana.dashboards import (
    FOLDER_UID,
    POSTGRES_TYPE,
    POSTGRES_UID,
    PROMETHEUS_UID,
    Built,
    dashboards,
)

FOLDER_TITLE = "宜居 Yiju"
# Grafana expands ${VAR} in provisioning files from its own environment: the password never lands on
# disk in the exported files (docs/operations.md, "Grafana").
PASSWORD_ENV = "YJ_GRAFANA_PG_PASSWORD"  # noqa: S105 - the name of a variable, not a password
NOT_FOUND = 404


@dataclass(frozen=True)
class Sources:
    prometheus_url: str  # as Grafana reaches it, e.g. http://127.0.0.1:9090
    postgres_url: str  # postgresql://grafana_reader[:password]@host:5432/yiju (a read-only role)
    timescaledb: bool = True


def _postgres(url: str) -> tuple[str, str, str, str | None]:
    parts = urlsplit(url)
    if parts.scheme not in {"postgresql", "postgres"} or not parts.hostname or not parts.path.strip("/"):
        raise ConfigurationError(f"not a PostgreSQL URL with a database: {url!r}")
    host = f"{parts.hostname}:{parts.port or 5432}"
    password = unquote(parts.password) if parts.password else None
    return host, parts.path.strip("/"), unquote(parts.username or "postgres"), password


def datasources(sources: Sources, *, password: str | None) -> list[dict[str, Any]]:
    """Grafana's data-source documents (the API's and file provisioning's shape is the same)."""
    host, database, user, _ = _postgres(sources.postgres_url)
    secure = {"password": password} if password is not None else {}
    return [
        {
            "uid": PROMETHEUS_UID,
            "name": "Yiju Prometheus",
            "type": "prometheus",
            "access": "proxy",
            "url": sources.prometheus_url,
            "jsonData": {"httpMethod": "POST", "timeInterval": "15s"},
            "isDefault": False,
        },
        {
            "uid": POSTGRES_UID,
            "name": "Yiju PostgreSQL",
            "type": POSTGRES_TYPE,
            "access": "proxy",
            "url": host,
            "user": user,
            "jsonData": {
                "database": database,
                "sslmode": "prefer",
                "postgresVersion": 1500,
                "timescaledb": sources.timescaledb,
                "maxOpenConns": 5,
            },
            "secureJsonData": secure,
            "isDefault": False,
        },
    ]


# ---------------------------------------------------------------------------------------------
# Files


@dataclass(frozen=True)
class Exported:
    dashboards: list[Path]
    provisioning: list[Path]


def export(out: Path, sources: Sources, *, dashboards_path: str | None = None) -> Exported:
    """`out/dashboards/<uid>.json` and `out/provisioning/{dashboards,datasources}/yiju.yaml`, ready to be
    mounted as Grafana's /etc/grafana/provisioning. `dashboards_path` is where Grafana will read the
    JSON (default: `out/dashboards` as an absolute path)."""
    board_dir = out / "dashboards"
    prov = out / "provisioning"
    for d in (board_dir, prov / "dashboards", prov / "datasources"):
        d.mkdir(parents=True, exist_ok=True)
    written = []
    for b in dashboards():
        path = board_dir / f"{b.uid}.json"
        path.write_text(json.dumps(b.json, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        written.append(path)
    provider = {
        "apiVersion": 1,
        "providers": [
            {
                "name": "yiju",
                "orgId": 1,
                "folder": FOLDER_TITLE,
                "folderUid": FOLDER_UID,
                "type": "file",
                "disableDeletion": False,
                "allowUiUpdates": False,
                "updateIntervalSeconds": 60,
                "options": {"path": dashboards_path or str(board_dir.resolve())},
            }
        ],
    }
    sources_doc = {
        "apiVersion": 1,
        "datasources": datasources(sources, password=f"${{{PASSWORD_ENV}}}"),
    }
    files = [prov / "dashboards" / "yiju.yaml", prov / "datasources" / "yiju.yaml"]
    header = "# Written by `yiju grafana export`; re-run it rather than editing (docs/operations.md).\n"
    for path, doc in zip(files, (provider, sources_doc), strict=True):
        path.write_text(header + yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return Exported(written, files)


# ---------------------------------------------------------------------------------------------
# Upload


@dataclass(frozen=True)
class Provisioned:
    folder: str
    datasources: list[str]  # "created <uid>" / "updated <uid>"
    dashboards: list[str]  # URLs Grafana answered with


def _call(what: str, fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except GrafanaException as exc:
        raise ServiceError(f"Grafana refused to {what}: HTTP {exc.status_code} {exc.message}") from exc
    except niquests.exceptions.RequestException as exc:
        raise ServiceError(f"cannot reach Grafana to {what}: {exc}") from exc


def _exists(fn: Callable[[], Any]) -> bool:
    try:
        fn()
    except GrafanaClientError as exc:
        if exc.status_code == NOT_FOUND:
            return False
        raise
    return True


def provision(
    url: str, token: str, sources: Sources, *, folder_uid: str = FOLDER_UID, timeout_s: float = 10.0
) -> Provisioned:
    """Upload the data sources, the folder and the dashboards; a second run overwrites the first."""
    # a str credential is sent as "Authorization: Bearer <token>" (grafana-client's TokenAuth)
    api: Any = GrafanaApi.from_url(url, credential=token, timeout=timeout_s)
    password = _postgres(sources.postgres_url)[3] or os.environ.get(PASSWORD_ENV)
    done = [_datasource(api, ds) for ds in datasources(sources, password=password)]
    folder = api.folder
    if not _call(f"look up folder {folder_uid}", lambda: _exists(lambda: folder.get_folder(folder_uid))):
        _call(f"create folder {folder_uid}", lambda: folder.create_folder(FOLDER_TITLE, uid=folder_uid))
    urls = [_upload(api, b, folder_uid) for b in dashboards()]
    return Provisioned(folder_uid, done, urls)


def _datasource(api: Any, ds: dict[str, Any]) -> str:
    uid: str = ds["uid"]
    client = api.datasource
    if _call(f"look up data source {uid}", lambda: _exists(lambda: client.get_datasource_by_uid(uid))):
        _call(f"update data source {uid}", lambda: client.update_datasource_by_uid(uid, ds))
        return f"updated {uid}"
    _call(f"create data source {uid}", lambda: client.create_datasource(ds))
    return f"created {uid}"


def _upload(api: Any, board: Built, folder_uid: str) -> str:
    body = {
        "dashboard": {**board.json, "id": None},
        "folderUid": folder_uid,
        "overwrite": True,
        "message": "yiju grafana provision",
    }
    answer = _call(f"save dashboard {board.uid}", lambda: api.dashboard.update_dashboard(body))
    return str(answer.get("url", board.uid)) if isinstance(answer, dict) else board.uid
