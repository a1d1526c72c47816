"""`yiju linkage test --chain X`: a drill through the configured channels, followed to the end."""

from __future__ import annotations

import pytest
from linkage_support import seed, webhook_receiver

from storage import escalation as store
from storage.db import connect
from yiju.cli import main
from yiju.settings import Settings


def test_linkage_test_runs_a_drill_and_reports(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert settings.database.url and settings.mqtt.url
    url = settings.database.url
    ids = seed(url)
    monkeypatch.setenv("YIJU_DATABASE__URL", url)
    monkeypatch.setenv("YIJU_MQTT__URL", settings.mqtt.url)
    with webhook_receiver() as receiver:
        with connect(url, autocommit=True) as conn:
            ep = store.create_endpoint(
                conn,
                community_id=ids["community"],
                name="119 relay",
                kind="webhook",
                config={"url": receiver.url},
                secret=receiver.secret,
            ).id
            store.save_chain(
                conn,
                community_id=ids["community"],
                name="commissioning",
                definition={
                    "steps": [
                        {"delay_s": 0, "targets": [{"kind": "console"}], "channels": ["console"]},
                        {"delay_s": 0, "targets": [{"kind": "endpoint", "ref": ep}], "channels": ["webhook"]},
                    ]
                },
            )
        assert main(["linkage", "test", "--chain", "commissioning", "--timeout", "30"]) == 0
        assert len(receiver.received) == 1 and receiver.received[0]["drill"] is True
        out = capsys.readouterr().out
        assert "演练" in out and "2 deliveries, 2 ok" in out and "outcome" in out
        # a chain whose channel is not configured here fails, saying so
        with connect(url, autocommit=True) as conn:
            store.save_chain(
                conn,
                community_id=ids["community"],
                name="sip-only",
                definition={
                    "steps": [
                        {
                            "delay_s": 0,
                            "targets": [{"kind": "console"}, {"kind": "on_duty", "group": "manager"}],
                            "channels": ["console", "sip"],
                        }
                    ]
                },
            )
            person = store.create_person(conn, community_id=ids["community"], name="王", phone="13700000000")
            store.set_schedule(conn, person.id, [([1, 2, 3, 4, 5, 6, 7], 0, 1440)])
        assert main(["linkage", "test", "--chain", "sip-only", "--timeout", "30"]) == 1
        out = capsys.readouterr().out
        assert "not configured" in out and "FAILED sip" in out
    assert main(["linkage", "test", "--chain", "nope"]) == 1
