"""docs/mqtt.md and docs/api.md agree with the code: their reference tables (alarm types, check
names, dead-letter reasons, the timestamp window, the silent-fault wait, CSV columns) are generated
from it (yiju/doc_tables.py) and must be regenerated when it changes."""

from __future__ import annotations

import pytest

from devices.alarms import AlarmType, Check
from devices.contract import DeadLetterReason
from yiju import doc_tables


@pytest.mark.parametrize("doc_name", sorted(doc_tables.TABLES))
def test_generated_tables_are_current(doc_name: str) -> None:
    text = (doc_tables.DOCS / doc_name).read_text(encoding="utf-8")
    assert doc_tables.render(doc_name, text) == text, (
        f"docs/{doc_name} is stale: run .venv/bin/python -m yiju.doc_tables"
    )


def test_every_name_the_api_returns_is_documented() -> None:
    mqtt = (doc_tables.DOCS / "mqtt.md").read_text(encoding="utf-8")
    api = (doc_tables.DOCS / "api.md").read_text(encoding="utf-8")
    for name in [*AlarmType, *Check, *DeadLetterReason]:
        assert f"| `{name.value}` |" in mqtt, name
    for reason in DeadLetterReason:
        assert f"| `{reason.value}` |" in api, reason
    assert "`evacuation_route`" in api and "GET /dead-letters" in api
    assert "now − 3 days" in mqtt and "now + 5 minutes" in mqtt
