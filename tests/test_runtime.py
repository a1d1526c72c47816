"""The runtime's own parts: commands requested through the API reach the device over MQTT, and the
device's acknowledgement is applied to the command."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from devices.contract import Channel, topic
from devices.envelope import CommandAckMessage, CommandMessage
from storage import commands, registry
from storage.db import connection
from yiju.runtime import Runtime
from yiju.settings import Settings
from yiju.stack import Endpoints

WAIT_S = 30.0


def _until(predicate: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_api_command_is_sent_and_its_ack_applied(settings: Settings, db_url: str) -> None:
    assert settings.mqtt.url is not None
    with connection(db_url) as conn:
        registry.upsert_community(conn, registry.CommunityIn("c1", "一区"))
        registry.upsert_devices(conn, [registry.DeviceIn("gas-1", "c1", "gas_alarm")])
        device_id = conn.execute("SELECT id FROM devices WHERE uid = 'gas-1'").fetchone()[0]  # type: ignore[index]
        conn.commit()

    prefix = settings.mqtt.topic_prefix
    received: list[CommandMessage] = []
    subscribed = threading.Event()
    device = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"{prefix}-gas-1", protocol=MQTTProtocolVersion.MQTTv5
    )
    device.on_subscribe = lambda *a: subscribed.set()
    device.on_message = lambda c, u, m: received.append(CommandMessage.model_validate_json(m.payload))
    port = int(settings.mqtt.url.rsplit(":", 1)[1])
    device.connect("127.0.0.1", port)
    device.loop_start()
    try:
        device.subscribe(topic(prefix, "c1", "gas-1", Channel.COMMAND), qos=1)
        assert subscribed.wait(WAIT_S)
        with Runtime(settings, Endpoints(db_url, settings.mqtt.url, "test")):
            engine_uuid = uuid.uuid4()
            with connection(db_url) as conn:  # the engine's own command: it publishes that one itself
                commands.insert_command(
                    conn,
                    command_uuid=engine_uuid,
                    device_id=device_id,
                    name="close_valve",
                    params={},
                    requested_by="engine",
                    requested_at=datetime.now(UTC),
                    alarm_id=None,
                )
                conn.commit()
            command_uuid = uuid.uuid4()
            with connection(db_url) as conn:  # what the API does: record the command as pending
                commands.insert_command(
                    conn,
                    command_uuid=command_uuid,
                    device_id=device_id,
                    name="close_valve",
                    params={},
                    requested_by="user:operator",
                    requested_at=datetime.now(UTC),
                    alarm_id=None,
                )
                conn.commit()
            _until(lambda: received, "the command on the device's cmd topic")
            assert [m.id for m in received] == [command_uuid]  # never the engine's command
            assert received[0].command == "close_valve"
            with connection(db_url) as conn:
                status = conn.execute("SELECT status FROM commands WHERE command_uuid = %s", (command_uuid,))
                assert status.fetchone() == ("sent",)

            ack = CommandAckMessage(
                v=1, device="gas-1", family="gas_alarm", ts=datetime.now(UTC), seq=1, id=command_uuid, ok=True
            )
            device.publish(
                topic(prefix, "c1", "gas-1", Channel.COMMAND_ACK), ack.model_dump_json().encode(), qos=1
            ).wait_for_publish(WAIT_S)

            def acknowledged() -> bool:
                with connection(db_url) as conn:
                    row = conn.execute(
                        "SELECT c.status, count(k.id) FROM commands c "
                        "LEFT JOIN command_acks k ON k.command_id = c.id "
                        "WHERE c.command_uuid = %s GROUP BY c.status",
                        (command_uuid,),
                    ).fetchone()
                return row == ("acknowledged", 1)

            _until(acknowledged, "the command to be marked acknowledged")
    finally:
        device.disconnect()
        device.loop_stop()
