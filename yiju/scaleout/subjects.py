"""Subjects of the ingest stream and the partition function (docs/scale-out.md §分区).

A bridge publishes `{prefix}.in.<community>.<device>`; the stream's subject transform stores it as
`{prefix}.p.<n>.<community>.<device>` with n = `partition(P, community)`. The partition is the
community, not the device, because the fire linkage of the rule core (engine.fire_linkage) reads the
state of every device of a building: a compound's devices must be evaluated in one process. Every
message of a device still lands in one partition, in order.

`partition_of` mirrors the server's function — FNV-1a (32 bit) of the token, modulo P (nats-server's
subject transform, `getHashPartition`) — so that a worker knows which communities' timers are its
own before any of their messages arrive; `tests/test_scaleout.py` checks it against the server.
"""

from __future__ import annotations

from urllib.parse import quote, unquote

from devices.contract import loose_topic_ids

FNV32_OFFSET = 0x811C9DC5
FNV32_PRIME = 0x01000193
NO_ID = "_"  # the subject token of a topic that names no valid community or device (dead-lettered later)
TOPIC_HEADER = "Yiju-Topic"  # the MQTT topic, percent-encoded (any bytes a device sent)
RECEIVED_HEADER = "Yiju-Rx"  # epoch seconds at which the bridge received it from MQTT


def partition_of(token: str, partitions: int) -> int:
    h = FNV32_OFFSET
    for byte in token.encode():
        h = ((h ^ byte) * FNV32_PRIME) & 0xFFFFFFFF
    return h % partitions


def stream_name(prefix: str) -> str:
    return f"{prefix.upper().replace('-', '_')}_INGEST"


def source_subject(prefix: str) -> str:
    return f"{prefix}.in.*.*"


def transformed_subject(prefix: str, partitions: int) -> str:
    return f"{prefix}.p.{{{{partition({partitions},1)}}}}.{{{{wildcard(1)}}}}.{{{{wildcard(2)}}}}"


def partition_filter(prefix: str, partition: int) -> str:
    return f"{prefix}.p.{partition}.>"


def publish_subject(prefix: str, mqtt_topic: str) -> str:
    community, device = loose_topic_ids(mqtt_topic, prefix)
    return f"{prefix}.in.{community or NO_ID}.{device or NO_ID}"


def encode_topic(mqtt_topic: str) -> str:
    return quote(mqtt_topic, safe="/+#$-_.~:@")


def decode_topic(header: str) -> str:
    return unquote(header)
