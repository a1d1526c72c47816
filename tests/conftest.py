"""Fixtures: real PostgreSQL and Mosquitto (see harness.py), fresh databases, unique topic prefixes."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import pytest
from harness import MODES, ServiceSet, start_services

from yiju.embedded import MosquittoBroker, PostgresServer
from yiju.settings import DatabaseSettings, MqttSettings, Settings


class _Started:
    """The session's services, started on first use (the report header or the first fixture)."""

    services: ServiceSet | None = None
    error: Exception | None = None


def _get_services() -> ServiceSet:
    if _Started.services is None and _Started.error is None:
        try:
            _Started.services = start_services()
        except Exception as exc:  # noqa: BLE001 - shown in the header and raised by every fixture
            _Started.error = exc
    if _Started.services is None:
        raise RuntimeError(f"test services could not start: {_Started.error}") from _Started.error
    return _Started.services


def pytest_report_header(config: pytest.Config) -> list[str]:
    if config.pluginmanager.has_plugin("dsession"):
        # pytest-xdist's controller runs no test: each worker starts (and reaps) its own set
        return ["yiju services: a private PostgreSQL and Mosquitto per xdist worker (tests/harness.py)"]
    try:
        return _get_services().header()
    except RuntimeError as exc:
        return [f"yiju services: NOT AVAILABLE — {exc}"]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _Started.services is not None:
        _Started.services.stop()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Files with a test marked `slow` run first (in their order; the rest keep theirs): on xdist
    workers (./dev test) the minute-long end-to-end tests then overlap the many short ones instead of
    starting last and leaving one worker running them alone."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow") is not None}
    items.sort(key=lambda item: item.path not in slow_files)  # stable: order within a file is kept


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings in tests come from the fixtures, never from the developer's shell."""
    for key in list(os.environ):
        if key.startswith("YIJU_") and not key.startswith("YIJU_TEST_"):
            monkeypatch.delenv(key)


@pytest.fixture(scope="session")
def services() -> ServiceSet:
    return _get_services()


@pytest.fixture
def make_db(services: ServiceSet) -> Iterator[Callable[[str | None], str]]:
    """Factory of fresh migrated databases: make_db("partitioned") / make_db("timescaledb")."""
    created: list[str] = []

    def make(mode: str | None = None) -> str:
        url = services.create_database(mode)
        created.append(url)
        return url

    yield make
    for url in created:
        services.drop_database(url)


@pytest.fixture
def db_url(make_db: Callable[[str | None], str]) -> str:
    """A fresh database in the best mode this server offers."""
    return make_db(None)


@pytest.fixture(params=MODES)
def storage_mode(request: pytest.FixtureRequest, services: ServiceSet) -> str:
    """Parametrises a test over both storage modes; TimescaleDB skips (saying why) when absent."""
    mode: str = request.param
    if mode == "timescaledb" and not services.timescaledb:
        pytest.skip(
            "TimescaleDB is not usable on this PostgreSQL (not installed, or not in "
            "shared_preload_libraries); hypertable mode not testable here"
        )
    return mode


@pytest.fixture
def topic_prefix() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def settings(services: ServiceSet, db_url: str, topic_prefix: str) -> Settings:
    return Settings(
        database=DatabaseSettings(url=db_url),
        mqtt=MqttSettings(
            url=services.mqtt_url, topic_prefix=topic_prefix, client_id=f"ingest-{topic_prefix}"
        ),
    )


@pytest.fixture
def postgres_server(services: ServiceSet) -> Iterator[PostgresServer]:
    """The private cluster, for tests that stop or kill it; restarted afterwards if left down."""
    if services.postgres is None:
        pytest.skip("YIJU_TEST_DATABASE_URL points at an external server; this test must stop/kill it")
    yield services.postgres
    if not services.postgres.running():
        services.postgres.start()


@pytest.fixture
def mqtt_broker(services: ServiceSet) -> Iterator[MosquittoBroker]:
    """The private broker, for tests that stop, restart or kill it; restarted afterwards if left down."""
    if services.broker is None:
        pytest.skip("YIJU_TEST_MQTT_URL points at an external broker; this test must stop/kill it")
    yield services.broker
    if not services.broker.running():
        services.broker.start()
