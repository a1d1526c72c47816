"""The harness's own services behave as the fault tests of later issues need: kill, restart, persist."""

from __future__ import annotations

import threading

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from storage.db import connection
from yiju.embedded import MosquittoBroker, PostgresServer

WAIT_S = 10.0


def test_killed_postgres_recovers_committed_rows(postgres_server: PostgresServer, db_url: str) -> None:
    with connection(db_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO dead_letters (received_at, topic, payload, payload_size, reason) "
            "VALUES (now(), 't', '\\x00', 1, 'committed-before-kill')"
        )
    postgres_server.kill()
    assert not postgres_server.running()
    postgres_server.start()
    with connection(db_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM dead_letters WHERE reason = 'committed-before-kill'"
        ).fetchone()
    assert row == (1,)


def _client(client_id: str) -> mqtt.Client:
    return mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5)


def _session_props() -> Properties:
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    return props


def test_broker_restart_keeps_queued_messages_of_a_persistent_session(
    mqtt_broker: MosquittoBroker, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}/persist"
    sub = _client(f"{topic_prefix}-sub")
    subscribed = threading.Event()
    sub.on_subscribe = lambda *a: subscribed.set()
    sub.connect("127.0.0.1", mqtt_broker.port, clean_start=False, properties=_session_props())
    sub.loop_start()
    sub.subscribe(topic, qos=1)
    assert subscribed.wait(WAIT_S)
    sub.disconnect()
    sub.loop_stop()

    pub = _client(f"{topic_prefix}-pub")
    pub.connect("127.0.0.1", mqtt_broker.port)
    pub.loop_start()
    pub.publish(topic, b"kept across restart", qos=1).wait_for_publish(WAIT_S)
    pub.disconnect()
    pub.loop_stop()

    mqtt_broker.restart()

    got: list[bytes] = []
    arrived = threading.Event()

    def on_message(client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        got.append(msg.payload)
        arrived.set()

    sub2 = _client(f"{topic_prefix}-sub")
    sub2.on_message = on_message
    sub2.connect("127.0.0.1", mqtt_broker.port, clean_start=False, properties=_session_props())
    sub2.loop_start()
    try:
        assert arrived.wait(WAIT_S), "queued QoS 1 message lost across a broker restart"
    finally:
        sub2.disconnect()
        sub2.loop_stop()
    assert got == [b"kept across restart"]
