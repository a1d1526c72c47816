"""Settings: one class, environment with prefix YIJU_ and nested groups, clear errors."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta

import pytest
from pydantic import ValidationError

from yiju.settings import Settings, unknown_environment


def test_defaults_work_for_the_local_demo() -> None:
    settings = Settings()
    assert settings.database.url is None  # embedded private cluster
    assert settings.mqtt.url is None
    assert settings.database.timeseries_mode == "auto"
    # GB 50396-2007 §5.2.2(3): access-control events kept ≥ 180 days
    assert settings.database.events_retention >= timedelta(days=180)


def test_nested_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YIJU_DATABASE__URL", "postgresql://u@db.example:5432/yiju")
    monkeypatch.setenv("YIJU_DATABASE__TIMESERIES_MODE", "partitioned")
    monkeypatch.setenv("YIJU_MQTT__URL", "mqtt://broker:1883")
    monkeypatch.setenv("YIJU_DATABASE__TELEMETRY_RETENTION", "P30D")
    settings = Settings()
    assert settings.database.url == "postgresql://u@db.example:5432/yiju"
    assert settings.database.timeseries_mode == "partitioned"
    assert settings.database.telemetry_retention == timedelta(days=30)
    assert settings.mqtt.url == "mqtt://broker:1883"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("YIJU_DATABASE__URL", "mysql://x", "postgresql://"),
        ("YIJU_MQTT__URL", "http://broker", "mqtt://"),
        ("YIJU_DATABASE__TIMESERIES_MODE", "cassandra", "auto"),
    ],
)
def test_bad_settings_are_refused_with_the_reason(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=message):
        Settings()


def test_misspelt_variables_are_found() -> None:
    environ = {
        "YIJU_DATABSE__URL": "postgresql://x",  # typo in the group
        "YIJU_MQTT__TOPIC_PREFX": "x",  # typo in the field
        "YIJU_MQTT__URL": "mqtt://ok",
        "YIJU_STATE_DIR": "/tmp",
        "YIJU_TEST_DATABASE_URL": "postgresql://harness",  # the test harness's own
        "PATH": "/usr/bin",
    }
    assert unknown_environment(environ) == ["YIJU_DATABSE__URL", "YIJU_MQTT__TOPIC_PREFX"]


def test_cli_refuses_misspelt_variable() -> None:
    env = {**os.environ, "YIJU_DATABSE__URL": "postgresql://x"}
    result = subprocess.run(
        [sys.executable, "-m", "yiju.cli", "version"], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 2
    assert "unknown setting(s) YIJU_DATABSE__URL" in result.stderr
