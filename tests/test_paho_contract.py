"""The contract between ingest's `_BulkClient` (ingest/mqtt_adapter.py) and paho's private members.

`_BulkClient` replaces paho's one-packet-per-read receive path with a bulk one and so relies on parts of
paho that are not its API. paho is pinned to one release (pyproject.toml); each test here checks one
private member against a real Mosquitto, so that an upgrade of the pin fails here, by name, instead of
in production. The members: `_sock`, `_loop_rc_handle`, `_msgtime_mutex` + `_last_bytes_received`
(with `time_func`), `_in_packet` + `_packet_handle`, `_packet_queue`, and `MQTTMessage._topic`.
"""

from __future__ import annotations

import socket
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from importlib.metadata import version
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from harness import ServiceSet
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion

from devices import mqtt_wire as wire
from ingest.mqtt_adapter import PAHO_VERSION, PUBACK, PublishItem, _BulkClient, _fresh_in_packet

ROOT = Path(__file__).resolve().parent.parent
DEADLINE_S = 10.0


class Session:
    """A `_BulkClient` connected to the test broker, driven by hand (no network thread)."""

    def __init__(self, url: str, client_id: str) -> None:
        self.batches: list[list[PublishItem]] = []
        self.connected = threading.Event()
        self.disconnects: list[str] = []
        self.client = _BulkClient(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
            manual_ack=True,
            on_batch=self.batches.append,
        )
        self.client.on_connect = lambda *a: self.connected.set()
        self.client.on_disconnect = lambda c, u, f, reason, p: self.disconnects.append(str(reason))
        address = wire.parse_mqtt_url(url)
        self.client.connect(address.host, address.port, keepalive=60)
        self.until(self.connected.is_set)

    def until(self, done: Callable[[], bool]) -> None:
        deadline = time.monotonic() + DEADLINE_S
        while not done():
            assert time.monotonic() < deadline, "the broker did not answer in time"
            self.client.loop(timeout=0.05)


@pytest.fixture
def session(services: ServiceSet, topic_prefix: str) -> Iterator[Session]:
    s = Session(services.mqtt_url, f"contract-{topic_prefix}")
    try:
        yield s
    finally:
        s.client.disconnect()


def test_paho_is_pinned_to_the_release_the_contract_was_checked_against() -> None:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert f"paho-mqtt=={PAHO_VERSION}" in deps
    assert version("paho-mqtt") == PAHO_VERSION


def test_sock_is_the_connected_plain_socket(session: Session) -> None:
    # connecting ran through our loop_read: the CONNACK was framed by the codec, handled by paho
    assert isinstance(session.client._sock, socket.socket)
    assert session.client._sock is session.client.socket()
    assert not hasattr(session.client._sock, "pending")  # plaintext: the bulk path, not paho's


def test_loop_rc_handle_closes_reports_and_returns_the_loss(session: Session) -> None:
    sock = session.client._sock
    assert sock is not None
    sock.shutdown(socket.SHUT_RD)  # the next recv() returns b"", as when the broker goes away
    assert session.client.loop_read() == MQTTErrorCode.MQTT_ERR_CONN_LOST
    assert session.client._sock is None
    assert len(session.disconnects) == 1


def test_last_bytes_received_under_msgtime_mutex_is_what_paho_keepalive_reads(session: Session) -> None:
    client = session.client
    assert mqtt.time_func is time.monotonic  # _BulkClient stamps with time.monotonic()
    assert isinstance(client._msgtime_mutex, type(threading.Lock()))
    before = client._last_bytes_received
    client.publish("contract/none", b"x", qos=0)  # no reply expected; a PINGREQ gets one
    client._packet_queue(0xC0, wire.PINGREQ, 0, 0)
    session.until(lambda: client._last_bytes_received > before)  # the PINGRESP, through loop_read
    # paho's keep-alive judges silence by that member: pretend the broker has been silent too long
    with client._msgtime_mutex:
        client._last_bytes_received = time.monotonic() - 120
    client._check_keepalive()
    assert client._ping_t > 0  # it sent a PINGREQ and waits for the answer
    session.until(lambda: client._ping_t == 0)  # PINGRESP: framed by the codec, handled by paho


def test_in_packet_has_the_fields_packet_handle_reads() -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
    assert set(client._in_packet) == set(_fresh_in_packet())
    client._in_packet = _fresh_in_packet() | {"command": 0xD0}  # type: ignore[assignment]
    assert client._packet_handle() == MQTTErrorCode.MQTT_ERR_SUCCESS  # a PINGRESP
    client._in_packet = _fresh_in_packet() | {"command": 0xD0, "remaining_length": 1}  # type: ignore[assignment]
    assert client._packet_handle() == MQTTErrorCode.MQTT_ERR_PROTOCOL  # it reads remaining_length


def test_packet_handle_takes_the_body_from_in_packet(session: Session, topic_prefix: str) -> None:
    got: list[tuple[int, list[int]]] = []
    session.client.on_subscribe = lambda c, u, mid, reasons, p: got.append((mid, [r.value for r in reasons]))
    _, mid = session.client.subscribe(f"{topic_prefix}/contract/#", qos=1)
    session.until(lambda: bool(got))  # the SUBACK's body reached paho's handler
    assert got == [(mid, [1])]


def test_publishes_come_back_in_batches_and_packet_queue_sends_raw_acks(
    session: Session, topic_prefix: str
) -> None:
    done: list[int] = []
    session.client.on_subscribe = lambda *a: done.append(1)
    session.client.subscribe(f"{topic_prefix}/contract/#", qos=1)
    session.until(lambda: bool(done))
    for _ in range(3):
        session.client.publish(f"{topic_prefix}/contract/a", b"one", qos=1)
    session.until(lambda: sum(len(b) for b in session.batches) == 3)
    items = [item for batch in session.batches for item in batch]
    assert [(t, p, q) for t, p, _mid, q in items] == [(f"{topic_prefix}/contract/a".encode(), b"one", 1)] * 3
    # our PUBACKs for them, raw (`queue_raw` is `_packet_queue`): the broker takes them (it would
    # disconnect on garbage), and a raw PINGREQ after them is answered
    session.client.queue_raw(PUBACK, wire.encode_pubacks([mid for _t, _p, mid, _q in items]))
    session.client._packet_queue(0xC0, wire.PINGREQ, 0, 0)
    before = session.client._last_bytes_received
    session.until(lambda: session.client._last_bytes_received > before)
    assert session.disconnects == []


def test_mqtt_message_keeps_the_raw_topic_in_underscore_topic() -> None:
    msg = mqtt.MQTTMessage(1, b"yiju/\xff")
    assert msg._topic == b"yiju/\xff"
    with pytest.raises(UnicodeDecodeError):
        _ = msg.topic
