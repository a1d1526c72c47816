"""Where the database and the broker are: configured URLs, or a private local stack.

With no `YIJU_DATABASE__URL` / `YIJU_MQTT__URL`, `yiju demo` and `yiju run` start a private PostgreSQL
cluster and Mosquitto under the state directory and record their URLs in `stack.json`, so that other
commands (`yiju doctor`, `yiju db migrate`, `yiju simulate`) in another terminal find them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from urllib.parse import quote, urlsplit

from storage.db import ensure_database
from yiju.embedded import MosquittoBroker, PostgresServer, free_port
from yiju.errors import ConfigurationError
from yiju.settings import Settings

STACK_FILE = "stack.json"
DATABASE_NAME = "yiju"


@dataclass(frozen=True)
class Endpoints:
    database_url: str
    mqtt_url: str
    source: str  # "settings", "local stack (pid N)"


@dataclass(frozen=True)
class BrokerAuth:
    """How the private broker authenticates: its password and ACL files, and the account Yiju's own
    services (ingest, command sender) log in with."""

    password_file: Path
    acl_file: Path
    username: str
    password: str


def with_credentials(url: str, username: str, password: str) -> str:
    """mqtt://host:port → mqtt://username:password@host:port (both percent-encoded)."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return f"{parts.scheme}://{quote(username, safe='')}:{quote(password, safe='')}@{host}"


def _stack_file(settings: Settings) -> Path:
    return settings.state_dir / STACK_FILE


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def resolve(settings: Settings) -> Endpoints:
    """The URLs to use: the settings where given, else those of a running local stack."""
    db_url, mqtt_url, source = _resolve(settings, need_broker=True)
    assert mqtt_url is not None
    return Endpoints(db_url, mqtt_url, source)


def resolve_database(settings: Settings) -> str:
    """The database URL alone, for commands that never use the broker (`yiju db migrate`, …)."""
    return _resolve(settings, need_broker=False)[0]


def _resolve(settings: Settings, *, need_broker: bool) -> tuple[str, str | None, str]:
    db_url, mqtt_url = settings.database.url, settings.mqtt.url
    if db_url and (mqtt_url or not need_broker):
        return db_url, mqtt_url, "settings"
    recorded: dict[str, object] = {}
    path = _stack_file(settings)
    if path.exists():
        try:
            recorded = json.loads(path.read_text())
        except (OSError, ValueError):
            recorded = {}
    pid = recorded.get("pid")
    if isinstance(pid, int) and _pid_alive(pid):
        return (
            db_url or str(recorded["database_url"]),
            mqtt_url or str(recorded["mqtt_url"]),
            f"local stack (pid {pid}, {path})",
        )
    wanted = (("YIJU_DATABASE__URL", db_url), ("YIJU_MQTT__URL", mqtt_url if need_broker else "-"))
    missing = [name for name, value in wanted if not value]
    raise ConfigurationError(
        f"{' and '.join(missing)} not set and no local stack is running under {settings.state_dir}: "
        "start one with `yiju demo` (or `./dev demo`), or point Yiju at your servers"
    )


class LocalStack:
    """Private PostgreSQL + Mosquitto for the demo; stops them on exit. Reuses ports between runs.

    `before_broker(database_url)`, when given, runs once the database is up and before Mosquitto
    starts; the `BrokerAuth` it returns makes the broker refuse anonymous clients and enforce the ACL
    (issue 10 §8), and the URL handed to Yiju's services carries its account.
    """

    def __init__(
        self, settings: Settings, *, before_broker: Callable[[str], BrokerAuth] | None = None
    ) -> None:
        self.settings = settings
        self.before_broker = before_broker
        self.root = settings.state_dir.resolve()
        ports = self._load_ports()
        self.postgres = PostgresServer(self.root / "postgres", ports.get("postgres"))
        self.mosquitto = MosquittoBroker(self.root / "mosquitto", ports.get("mqtt"))

    def _load_ports(self) -> dict[str, int]:
        path = self.root / "ports.json"
        try:
            ports = {k: int(v) for k, v in json.loads(path.read_text()).items()}
        except (OSError, ValueError):
            return {"postgres": free_port(), "mqtt": free_port()}
        return ports

    def __enter__(self) -> Endpoints:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "ports.json").write_text(
            json.dumps({"postgres": self.postgres.port, "mqtt": self.mosquitto.port})
        )
        try:
            return self._start()
        except BaseException:
            self.__exit__(None, None, None)
            raise

    def _start(self) -> Endpoints:
        db_url = self.settings.database.url
        if db_url is None:
            self.postgres.start()
            ensure_database(self.postgres.url, DATABASE_NAME)
            db_url = self.postgres.url_for(DATABASE_NAME)
        mqtt_url = self.settings.mqtt.url
        if mqtt_url is None:
            auth = self.before_broker(db_url) if self.before_broker is not None else None
            if auth is not None:
                self.mosquitto.password_file = auth.password_file
                self.mosquitto.acl_file = auth.acl_file
            self.mosquitto.start()
            mqtt_url = self.mosquitto.url
            if auth is not None:
                mqtt_url = with_credentials(mqtt_url, auth.username, auth.password)
        path = _stack_file(self.settings)
        # it may hold the service account's broker password: owner only
        path.touch(mode=0o600, exist_ok=True)
        path.chmod(0o600)
        path.write_text(json.dumps({"pid": os.getpid(), "database_url": db_url, "mqtt_url": mqtt_url}))
        return Endpoints(db_url, mqtt_url, f"local stack (pid {os.getpid()})")

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        _stack_file(self.settings).unlink(missing_ok=True)
        self.mosquitto.stop()
        if self.settings.database.url is None:
            self.postgres.stop()
