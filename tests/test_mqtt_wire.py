"""The MQTT 5 codec (`devices/mqtt_wire.py`), alone: framing across split reads, remaining lengths of
1–4 bytes, each packet type Yiju sends or reads, and malformed input. The same bytes are checked
against paho's own encoder where paho writes that packet, so the codec and the broker's other
clients agree on the wire."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from devices import mqtt_wire as wire
from devices.mqtt_wire import PacketType
from yiju.errors import ConfigurationError, MalformedPacket

# --- addresses ------------------------------------------------------------------------------------


def test_urls_parse_with_defaults_credentials_and_tls() -> None:
    a = wire.parse_mqtt_url("mqtt://u%40x:p%3Aw@broker.local")
    assert (a.host, a.port, a.username, a.password, a.tls) == ("broker.local", 1883, "u@x", "p:w", False)
    assert str(a) == "mqtt://broker.local:1883"
    assert wire.parse_mqtt_url("mqtts://h").port == 8883
    assert wire.parse_mqtt_url("ssl://h:9000").tls
    assert wire.parse_mqtt_url("tcp://127.0.0.1:1884").port == 1884


@pytest.mark.parametrize("url", ["http://h", "mqtt://", "h:1883", ""])
def test_a_url_that_is_not_mqtt_is_a_configuration_error(url: str) -> None:
    with pytest.raises(ConfigurationError, match="not an MQTT URL"):
        wire.parse_mqtt_url(url)


# --- variable byte integers -----------------------------------------------------------------------

# the boundaries of §1.5.5, table 1-1: 1, 2, 3 and 4 bytes
BOUNDARIES = [(0, 1), (127, 1), (128, 2), (16_383, 2), (16_384, 3), (2_097_151, 3), (2_097_152, 4),
              (268_435_455, 4)]  # fmt: skip


@pytest.mark.parametrize(("n", "size"), BOUNDARIES)
def test_varints_round_trip_at_every_size_boundary(n: int, size: int) -> None:
    raw = wire.encode_varint(n)
    assert len(raw) == size
    assert wire.decode_varint(raw, 0, len(raw)) == (n, size)
    assert wire.decode_varint(raw, 0, size - 1) is None  # cut short: wait for more


def test_varints_beyond_four_bytes_are_refused() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        wire.encode_varint(268_435_456)
    with pytest.raises(MalformedPacket):
        wire.decode_varint(b"\xff\xff\xff\xff\x01", 0, 5)


# --- framing --------------------------------------------------------------------------------------


def _stream() -> bytes:
    """A PUBACK, a 3-byte-length PUBLISH, a PINGRESP and a 4-byte-length PUBLISH, back to back."""
    big = wire.encode_publish("t/big", b"x" * 20_000)
    huge = wire.encode_publish("t/huge", b"y" * 2_100_000)
    return (
        b"\x40\x02\x00\x07"
        + big[0] + (5).to_bytes(2, "big") + big[1]
        + b"\xd0\x00"
        + huge[0] + (6).to_bytes(2, "big") + huge[1]
    )  # fmt: skip


def test_frames_of_every_length_size_are_cut_at_their_boundaries() -> None:
    data = _stream()
    frames, pos = wire.split_frames(data)
    assert pos == len(data)
    assert [f[0] >> 4 for f in frames] == [PacketType.PUBACK, PacketType.PUBLISH, PacketType.PINGRESP,
                                           PacketType.PUBLISH]  # fmt: skip
    assert frames[2][1] == frames[2][2]  # PINGRESP: an empty body
    assert frames[3][1] - frames[2][2] == 1 + 4  # the first byte and a 4-byte remaining length
    assert wire.read_publish(data, *frames[3])[2:] == (6, 1)


def test_a_stream_split_anywhere_yields_the_same_packets() -> None:
    data = _stream()
    whole = wire.split_frames(data)[0]
    want = [bytes(data[s:e]) for _, s, e in whole]
    for cut in [1, 2, 3, 4, 5, 6, 7, 20_000, len(data) - 2_100_010, len(data) - 1]:
        buf = bytearray(data[:cut])
        got: list[bytes] = []
        frames, pos = wire.split_frames(buf)
        got += [bytes(buf[s:e]) for _, s, e in frames]
        del buf[:pos]
        buf += data[cut:]
        frames, pos = wire.split_frames(buf)
        got += [bytes(buf[s:e]) for _, s, e in frames]
        assert pos == len(buf)
        assert got == want, cut


def test_byte_by_byte_arrival_loses_and_invents_nothing() -> None:
    head, tail = wire.encode_publish("yiju/v1/c/d/telemetry", b'{"a":1}')
    data = (head + b"\x00\x01" + tail) * 3 + b"\xd0\x00"
    buf = bytearray()
    kinds = []
    for byte in data:
        buf.append(byte)
        frames, pos = wire.split_frames(buf)
        kinds += [f[0] >> 4 for f in frames]
        del buf[:pos]
    assert kinds == [3, 3, 3, 13]
    assert not buf


def test_a_remaining_length_of_five_bytes_is_malformed() -> None:
    with pytest.raises(MalformedPacket, match="longer than 4 bytes"):
        wire.split_frames(b"\x30\xff\xff\xff\xff\x01" + b"\x00" * 10)


def test_fewer_than_two_bytes_and_an_unfinished_length_wait_for_more() -> None:
    assert wire.split_frames(b"") == ([], 0)
    assert wire.split_frames(b"\x30") == ([], 0)
    assert wire.split_frames(b"\x30\xff\xff") == ([], 0)
    assert wire.split_frames(b"\xd0\x00\x30\x80", 0) == ([(0xD0, 2, 2)], 2)


# --- PUBLISH --------------------------------------------------------------------------------------


Sent = list[bytes]


@pytest.fixture
def paho() -> Iterator[tuple[mqtt.Client, Sent]]:
    """A paho MQTT 5 client whose packets are captured instead of sent (its socket is one end of a
    local pair, so that paho believes it is connected)."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="dev-1", protocol=mqtt.MQTTv5)
    sent: Sent = []
    a, b = socket.socketpair()
    client._sock = a
    client._packet_queue = lambda command, packet, mid, qos, info=None: sent.append(bytes(packet))  # type: ignore[method-assign]
    try:
        yield client, sent
    finally:
        client._sock = None
        a.close()
        b.close()


def _paho_publish(
    paho: tuple[mqtt.Client, Sent],
    topic: str,
    payload: bytes,
    qos: int,
    mid: int,
    props: Properties | None = None,
) -> bytes:
    """The PUBLISH paho puts on the wire (as the broker forwards it to a subscriber)."""
    client, sent = paho
    client._send_publish(mid, topic.encode(), payload, qos, properties=props)
    return sent.pop()


@pytest.mark.parametrize("qos", [0, 1])
def test_publish_bodies_match_paho_at_qos_0_and_1(qos: int, paho: tuple[mqtt.Client, Sent]) -> None:
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    props.MessageExpiryInterval = 30
    props.UserProperty = ("k", "v")
    raw = _paho_publish(paho, "yiju/v1/小区/门-1/event", "开门".encode() * 100, qos, 513, props)
    frames, pos = wire.split_frames(raw)
    assert pos == len(raw)
    assert wire.read_publish(raw, *frames[0]) == (
        "yiju/v1/小区/门-1/event".encode(),
        "开门".encode() * 100,
        513 if qos else 0,
        qos,
    )


def test_encoded_publish_is_what_paho_sends(paho: tuple[mqtt.Client, Sent]) -> None:
    head, tail = wire.encode_publish("a/b", b"payload", retain=True)
    mine = head + (9).to_bytes(2, "big") + tail
    theirs = _paho_publish(paho, "a/b", b"payload", 1, 9)
    assert mine[1:] == theirs[1:]
    assert mine[0] == theirs[0] | 1  # retain flag
    assert wire.publish_head("a/b", 7) + (9).to_bytes(2, "big") + b"\x00payload" == theirs


@pytest.mark.parametrize(
    ("first", "body", "why"),
    [
        (0x36, b"\x00\x01a\x00\x01\x00", "QoS 3"),
        (0x32, b"\x00", "without a topic"),
        (0x32, b"\x00\x01a\x00", "packet id"),
        (0x30, b"\x00\x01a", "properties"),
        (0x30, b"\x00\x01a\x05\x01", "run past"),
        (0x30, b"\x00\x01a\xff\xff\xff\xff\x01", "run past|longer than 4"),
    ],
)
def test_malformed_publish_bodies_are_refused(first: int, body: bytes, why: str) -> None:
    with pytest.raises(MalformedPacket, match=why):
        wire.read_publish(body, first, 0, len(body))


# --- acknowledgements, CONNECT/CONNACK, SUBSCRIBE/SUBACK, DISCONNECT ------------------------------


def test_pubacks_are_four_bytes_each_and_read_back() -> None:
    raw = wire.encode_pubacks([1, 65_535, 300])
    assert raw == struct.pack(">3I", 0x40020001, 0x4002FFFF, 0x4002012C)
    frames, _ = wire.split_frames(raw)
    assert [wire.read_puback(raw[s:e]) for _, s, e in frames] == [(1, 0), (65_535, 0), (300, 0)]
    assert wire.read_puback(b"\x00\x05\x87\x00") == (5, 0x87)  # not authorized, empty properties
    with pytest.raises(MalformedPacket):
        wire.read_puback(b"\x00")


def test_connect_matches_paho(paho: tuple[mqtt.Client, Sent]) -> None:
    client, sent = paho
    client.username_pw_set("dev-1", "秘密")
    client._keepalive = 60
    client._clean_start = True
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.ReceiveMaximum = 500
    client._connect_properties = props
    client._send_connect(60)
    mine = wire.encode_connect(
        "dev-1", keepalive_s=60, username="dev-1", password="秘密", receive_maximum=500
    )
    assert mine == sent[0]
    assert wire.encode_connect("x", keepalive_s=5, clean_start=False)[9] == 0  # connect flags


def test_connack_properties_of_every_kind_are_walked() -> None:
    # session present, success; Receive Maximum after a string, a pair and a varint it must skip
    props = (
        b"\x12\x00\x03abc"  # assigned client identifier
        + b"\x26\x00\x01k\x00\x02vv"  # user property
        + b"\x0b\x80\x01"  # subscription identifier (a varint; not in a CONNACK, but walkable)
        + b"\x21\x01\xf4"  # Receive Maximum 500
        + b"\x27\x00\x01\x00\x00"  # maximum packet size
    )
    body = b"\x01\x00" + wire.encode_varint(len(props)) + props
    ack = wire.read_connack(body)
    assert ack == wire.Connack(session_present=True, reason_code=0, receive_maximum=500)
    assert not ack.refused
    assert wire.read_connack(b"\x00\x87\x00").refused
    assert wire.read_connack(b"\x00\x00").receive_maximum is None  # MQTT 3-style, no properties


@pytest.mark.parametrize(
    "body",
    [b"\x00", b"\x00\x00\x05\x21\x01", b"\x00\x00\x02\x7f\x00", b"\x00\x00\x03\x12\x00\x09", b"\x00\x00\x80"],
)
def test_malformed_connacks_are_refused(body: bytes) -> None:
    with pytest.raises(MalformedPacket):
        wire.read_connack(body)


def test_subscribe_matches_paho_and_subacks_read(paho: tuple[mqtt.Client, Sent]) -> None:
    client, sent = paho
    _, mid = client._send_subscribe(False, [(b"$share/g/yiju/#", SubscribeOptions(qos=1))])
    assert wire.encode_subscribe(mid, "$share/g/yiju/#", qos=1) == sent[0]
    assert wire.read_suback(b"\x00\x01\x00\x01") == (1, [1])
    assert wire.read_suback(b"\x00\x02\x03\x1f\x00\x00\x87") == (2, [0x87])  # reason string skipped
    with pytest.raises(MalformedPacket):
        wire.read_suback(b"\x00\x01")


def test_ping_and_disconnect() -> None:
    assert wire.split_frames(wire.PINGREQ)[0] == [(0xC0, 2, 2)]
    assert wire.split_frames(wire.DISCONNECT)[0] == [(0xE0, 2, 2)]
    assert wire.read_disconnect(b"") == 0
    assert wire.read_disconnect(b"\x8e\x00") == 0x8E  # session taken over
