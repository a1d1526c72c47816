"""MQTT 5 on the wire, written once: broker addresses and the packet codec.

Pure: bytes in, bytes and plain values out; no sockets, no clock, no threads. Its users bring the I/O:
ingest's bulk receive path and its batched PUBACKs (`ingest/mqtt_adapter.py`), the simulator's
raw-socket `WireConnection` (`simulators/mqtt_publisher.py`) and the benchmark's load and drain
(`bench/ingest/load.py`). It lives beside the MQTT contract (`devices.contract`) because both sides of
that contract speak it and `devices` is the floor they share (tests/test_architecture.py).

Framing (OASIS MQTT 5.0 §2.1): a packet is a first byte (type << 4 | flags), a remaining length in 1–4
bytes of 7 bits each (§1.5.5), then that many bytes of body. `split_frames` cuts a receive buffer into
complete packets without copying them — `(first byte, body start, body end)` offsets into the buffer —
and says where the first incomplete one begins, which stays buffered until the rest arrives. A length
of more than 4 bytes, or a body whose own fields run past its end, raises `MalformedPacket`: the
connection is then unusable (§4.13), and what it delivered but had not acknowledged the broker sends
again on the next one (QoS 1).

Only what Yiju uses is implemented: CONNECT/CONNACK, PUBLISH (QoS 0 and 1, no topic aliases)/PUBACK,
SUBSCRIBE/SUBACK, PINGREQ/PINGRESP, DISCONNECT.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from urllib.parse import unquote, urlsplit

from yiju.errors import ConfigurationError, MalformedPacket

# --------------------------------------------------------------------------------------------------
# Broker addresses

DEFAULT_MQTT_PORT = 1883
DEFAULT_MQTTS_PORT = 8883
PLAIN_SCHEMES = frozenset({"mqtt", "tcp"})
TLS_SCHEMES = frozenset({"mqtts", "ssl"})


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False

    def __str__(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


def parse_mqtt_url(url: str) -> BrokerAddress:
    """`mqtt://[user:password@]host[:port]` (also `tcp://`), or `mqtts://` / `ssl://` for TLS; the user
    and password are percent-decoded. Anything else raises `ConfigurationError`."""
    parts = urlsplit(url)
    if parts.scheme not in PLAIN_SCHEMES | TLS_SCHEMES or not parts.hostname:
        raise ConfigurationError(
            f"not an MQTT URL: {url!r} (expected mqtt://[user:password@]host[:port] or mqtts://…)"
        )
    tls = parts.scheme in TLS_SCHEMES
    return BrokerAddress(
        host=parts.hostname,
        port=parts.port or (DEFAULT_MQTTS_PORT if tls else DEFAULT_MQTT_PORT),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        tls=tls,
    )


# --------------------------------------------------------------------------------------------------
# Packets


class PacketType(IntEnum):
    """The packet type, the high nibble of the first byte (§2.1.2)."""

    CONNECT = 1
    CONNACK = 2
    PUBLISH = 3
    PUBACK = 4
    PUBREC = 5
    PUBREL = 6
    PUBCOMP = 7
    SUBSCRIBE = 8
    SUBACK = 9
    UNSUBSCRIBE = 10
    UNSUBACK = 11
    PINGREQ = 12
    PINGRESP = 13
    DISCONNECT = 14
    AUTH = 15


MAX_REMAINING_LENGTH = 268_435_455  # 4 bytes of 7 bits (§1.5.5)
MAX_PACKET_ID = 65_535
PUBLISH_NIBBLE = PacketType.PUBLISH << 4
PINGREQ = b"\xc0\x00"
DISCONNECT = b"\xe0\x00"  # normal disconnection (reason code 0 and no properties may be omitted, §3.14.2.1)
RECEIVE_MAXIMUM = 0x21  # the CONNECT/CONNACK property (§3.1.2.11.3, §3.2.2.3.3)

Frame = tuple[int, int, int]  # (first byte, body start, body end): offsets into the buffer
PublishFields = tuple[bytes, bytes, int, int]  # (topic, payload, packet id, QoS)
Buffer = bytes | bytearray


def encode_varint(n: int) -> bytes:
    """A Variable Byte Integer (§1.5.5): remaining lengths and property lengths."""
    if not 0 <= n <= MAX_REMAINING_LENGTH:
        raise ValueError(f"{n} does not fit a variable byte integer")
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | 0x80 if n else byte)
        if not n:
            return bytes(out)


def decode_varint(buf: Buffer, pos: int, end: int) -> tuple[int, int] | None:
    """(value, position after it) of the Variable Byte Integer at `pos`, or None when `buf[:end]` ends
    inside it. More than 4 bytes raise `MalformedPacket`."""
    value, shift, i = 0, 0, pos
    while i < end:
        byte = buf[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, i
        shift += 7
        if shift == 28:
            raise MalformedPacket("a variable byte integer longer than 4 bytes")
    return None


def encode_string(text: str) -> bytes:
    """A UTF-8 Encoded String (§1.5.4): two bytes of length, then the bytes."""
    raw = text.encode()
    if len(raw) > MAX_PACKET_ID:
        raise ValueError(f"a string of {len(raw)} bytes does not fit MQTT's 65,535")
    return len(raw).to_bytes(2, "big") + raw


def packet(first: int, body: bytes) -> bytes:
    """A whole packet: first byte, remaining length, body."""
    return bytes((first,)) + encode_varint(len(body)) + body


def split_frames(buf: Buffer, pos: int = 0) -> tuple[list[Frame], int]:
    """The complete packets in `buf[pos:]`, and the position of the first incomplete one (`len(buf)`
    when none is). The remaining length is inlined: this runs once per received packet."""
    frames: list[Frame] = []
    end = len(buf)
    while end - pos >= 2:
        length, shift, i = 0, 0, pos + 1
        while True:
            if i == end:
                return frames, pos
            byte = buf[i]
            i += 1
            length |= (byte & 0x7F) << shift
            if not byte & 0x80:
                break
            shift += 7
            if shift == 28:
                raise MalformedPacket("a remaining length longer than 4 bytes")
        stop = i + length
        if stop > end:
            break
        frames.append((buf[pos], i, stop))
        pos = stop
    return frames, pos


# PUBLISH ------------------------------------------------------------------------------------------


def publish_head(topic: str, payload_len: int, *, retain: bool = False) -> bytes:
    """The part of a QoS 1 PUBLISH without properties (§3.3) before its packet id: the whole packet is
    `head + id (2 bytes) + b"\\x00" + payload`. Pre-encoding lets a publisher put a message on the wire
    at the cost of a concatenation."""
    name = encode_string(topic)
    return bytes((0x32 | retain,)) + encode_varint(len(name) + 2 + 1 + payload_len) + name


def encode_publish(topic: str, payload: bytes, *, retain: bool = False) -> tuple[bytes, bytes]:
    """A QoS 1 PUBLISH split around its packet id: `head + id.to_bytes(2, "big") + tail`."""
    return publish_head(topic, len(payload), retain=retain), b"\x00" + payload


def read_publish(buf: Buffer, first: int, start: int, stop: int) -> PublishFields:
    """(topic, payload, packet id, QoS) of the PUBLISH whose body is `buf[start:stop]`; packet id 0 at
    QoS 0. The properties are skipped (Yiju sets none and needs none). A QoS of 3, or fields running
    past the body, raise `MalformedPacket`. Inlined: this runs once per received message."""
    qos = (first >> 1) & 3
    if qos == 3 or stop - start < 3:
        raise MalformedPacket("a PUBLISH with QoS 3 or without a topic")
    t_end = start + 2 + ((buf[start] << 8) | buf[start + 1])
    j = t_end
    mid = 0
    if qos:
        if j + 2 > stop:
            raise MalformedPacket("a PUBLISH cut inside its packet id")
        mid = (buf[j] << 8) | buf[j + 1]
        j += 2
    plen, shift = 0, 0
    while True:  # the properties length
        if j >= stop:
            raise MalformedPacket("a PUBLISH cut inside its properties")
        byte = buf[j]
        j += 1
        plen |= (byte & 0x7F) << shift
        if not byte & 0x80:
            break
        shift += 7
        if shift == 28:
            raise MalformedPacket("a properties length longer than 4 bytes")
    j += plen
    if j > stop:
        raise MalformedPacket("a PUBLISH whose properties run past its end")
    return bytes(buf[start + 2 : t_end]), bytes(buf[j:stop]), mid, qos


def encode_pubacks(packet_ids: list[int]) -> bytes:
    """PUBACKs (success) for `packet_ids`, back to back: 4 bytes each, since MQTT 5 lets a PUBACK omit
    its reason code when it is Success and there are no properties (§3.4.2.1)."""
    return struct.pack(f">{len(packet_ids)}I", *[0x40020000 | mid for mid in packet_ids])


def read_puback(body: Buffer) -> tuple[int, int]:
    """(packet id, reason code) of a PUBACK body; a missing reason code is Success (0)."""
    if len(body) < 2:
        raise MalformedPacket("a PUBACK without a packet id")
    return (body[0] << 8) | body[1], body[2] if len(body) > 2 else 0


# CONNECT / CONNACK --------------------------------------------------------------------------------


def encode_connect(
    client_id: str,
    *,
    keepalive_s: int,
    clean_start: bool = True,
    username: str | None = None,
    password: str | None = None,
    receive_maximum: int | None = None,
) -> bytes:
    """An MQTT 5 CONNECT (§3.1) without a will."""
    flags = 0x02 if clean_start else 0
    tail = encode_string(client_id)
    if username is not None:
        flags |= 0x80
        tail += encode_string(username)
        if password is not None:
            flags |= 0x40
            tail += encode_string(password)
    props = b"" if receive_maximum is None else bytes((RECEIVE_MAXIMUM,)) + receive_maximum.to_bytes(2, "big")
    variable = encode_string("MQTT") + bytes((5, flags)) + keepalive_s.to_bytes(2, "big")
    return packet(PacketType.CONNECT << 4, variable + encode_varint(len(props)) + props + tail)


@dataclass(frozen=True, slots=True)
class Connack:
    session_present: bool
    reason_code: int  # 0 success; >= 0x80 refused (§3.2.2.2)
    receive_maximum: int | None  # the broker's limit on QoS 1 messages in flight to it, if it set one

    @property
    def refused(self) -> bool:
        return self.reason_code >= 0x80


# property id → its encoding (§2.2.2.2): fixed size in bytes, or one of the variable kinds
_VARINT, _BINARY, _PAIR = -1, -2, -3
_PROPERTY_SIZES = {
    0x01: 1, 0x02: 4, 0x03: _BINARY, 0x08: _BINARY, 0x09: _BINARY, 0x0B: _VARINT, 0x11: 4,
    0x12: _BINARY, 0x13: 2, 0x15: _BINARY, 0x16: _BINARY, 0x17: 1, 0x18: 4, 0x19: 1, 0x1A: _BINARY,
    0x1C: _BINARY, 0x1F: _BINARY, 0x21: 2, 0x22: 2, 0x23: 2, 0x24: 1, 0x25: 1, 0x26: _PAIR, 0x27: 4,
    0x28: 1, 0x29: 1, 0x2A: 1,
}  # fmt: skip  # (strings and binary data share a layout: two bytes of length, then the bytes)


def read_properties(buf: Buffer, pos: int, end: int) -> tuple[dict[int, bytes], int]:
    """The properties at `pos` (length, then id/value pairs) as {id: raw value}, and the position after
    them. Values are returned raw (a repeated User Property keeps its last value: Yiju reads none)."""
    got = decode_varint(buf, pos, end)
    if got is None:
        raise MalformedPacket("properties cut inside their length")
    length, i = got
    stop = i + length
    if stop > end:
        raise MalformedPacket("properties run past the packet")
    props: dict[int, bytes] = {}
    while i < stop:
        pid = buf[i]
        i += 1
        kind = _PROPERTY_SIZES.get(pid)
        if kind is None:
            raise MalformedPacket(f"unknown property 0x{pid:02x}")
        if kind == _VARINT:
            got = decode_varint(buf, i, stop)
            if got is None:
                raise MalformedPacket(f"property 0x{pid:02x} cut short")
            size = got[1] - i
        elif kind == _BINARY:
            size = 2 + _u16(buf, i, stop)
        elif kind == _PAIR:
            size = 2 + _u16(buf, i, stop)
            size += 2 + _u16(buf, i + size, stop)
        else:
            size = kind
        if i + size > stop:
            raise MalformedPacket(f"property 0x{pid:02x} runs past the properties")
        props[pid] = bytes(buf[i : i + size])
        i += size
    return props, stop


def _u16(buf: Buffer, i: int, stop: int) -> int:
    if i + 2 > stop:
        raise MalformedPacket("a length cut short")
    return (buf[i] << 8) | buf[i + 1]


def read_connack(body: Buffer) -> Connack:
    if len(body) < 2:
        raise MalformedPacket("a CONNACK shorter than 2 bytes")
    receive_max = None
    if len(body) > 2:
        props, _ = read_properties(body, 2, len(body))
        if RECEIVE_MAXIMUM in props:
            receive_max = int.from_bytes(props[RECEIVE_MAXIMUM], "big")
    return Connack(bool(body[0] & 1), body[1], receive_max)


# SUBSCRIBE / SUBACK, DISCONNECT -------------------------------------------------------------------


def encode_subscribe(packet_id: int, topic_filter: str, *, qos: int) -> bytes:
    """A SUBSCRIBE of one filter at `qos` (§3.8; no properties, default options)."""
    body = packet_id.to_bytes(2, "big") + b"\x00" + encode_string(topic_filter) + bytes((qos,))
    return packet(PacketType.SUBSCRIBE << 4 | 0x02, body)


def read_suback(body: Buffer) -> tuple[int, list[int]]:
    """(packet id, one reason code per filter: the granted QoS, or >= 0x80 refused)."""
    if len(body) < 3:
        raise MalformedPacket("a SUBACK without a packet id or properties")
    _, pos = read_properties(body, 2, len(body))
    return (body[0] << 8) | body[1], list(body[pos:])


def read_disconnect(body: Buffer) -> int:
    """The reason code of a DISCONNECT (0, normal, when omitted)."""
    return body[0] if body else 0
