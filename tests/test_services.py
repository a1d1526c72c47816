"""The harness's own services behave as the fault tests of later issues need: kill, restart, persist."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

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


def test_a_stale_lock_naming_a_recycled_pid_does_not_stop_a_restart(
    postgres_server: PostgresServer, db_url: str
) -> None:
    """A killed postmaster leaves postmaster.pid behind; by the restart its pid may belong to another
    process (pids wrap), which PostgreSQL takes for a running server unless the lock is cleared."""
    postgres_server.stop()
    lock = postgres_server.data_dir / "postmaster.pid"
    # a live pid of the server's own user (PostgreSQL ignores pids it may not signal, and its
    # parent's and grandparent's), not a postmaster: as another cluster's backend would be
    with subprocess.Popen([*postgres_server._owner, "sleep", "60"]) as other:
        try:
            pid = other.pid
            if postgres_server._owner:  # runuser's child
                children = Path(f"/proc/{pid}/task/{pid}/children")
                deadline = time.monotonic() + WAIT_S
                while not children.read_text().split() and time.monotonic() < deadline:
                    time.sleep(0.01)
                pid = int(children.read_text().split()[0])
            lock.write_text(f"{pid}\n{postgres_server.data_dir}\n")
            postgres_server.start()
            assert postgres_server.running()
        finally:
            other.kill()
    with connection(db_url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


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
