"""The MQTT contract, version 1: topic layout, channels, the envelope, and the frozen types that the
rest of Yiju sees after a message has been decoded at the edge.

Topic layout (docs/mqtt.md):

    {prefix}/v1/{community}/{device}/{channel}

    channel     direction   QoS  retained  payload
    telemetry   up          1    no        Envelope with `data` = the family's telemetry model
    event       up          1    no        Envelope with `event` = one of the family's events
    status      up          1    yes       Envelope with `state` online|offline (also the Last Will)
    cmd         down        1    no        CommandMessage (id, command, params)
    cmd_ack     up          1    no        Envelope with the command id and the outcome

Every upward message carries the device's own timestamp (`ts`, ISO 8601 with an offset) and a
per-device sequence number (`seq`), so that gaps, duplicates and reordering can be detected
(domain.md §3). A v2 contract would live beside this one under `{prefix}/v2/…`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, NamedTuple

CONTRACT_VERSION = 1
ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
_ID_RE = re.compile(ID_PATTERN)


class Family(StrEnum):
    EBIKE_CHARGER = "ebike_charger"
    SMOKE_ALARM = "smoke_alarm"
    GAS_ALARM = "gas_alarm"
    LIGHT = "light"
    ELEVATOR = "elevator"
    ACCESS_DOOR = "access_door"
    CCTV_RECORDER = "cctv_recorder"


class Channel(StrEnum):
    TELEMETRY = "telemetry"
    EVENT = "event"
    STATUS = "status"
    COMMAND = "cmd"
    COMMAND_ACK = "cmd_ack"


UPLINK_CHANNELS = (Channel.TELEMETRY, Channel.EVENT, Channel.STATUS, Channel.COMMAND_ACK)


@dataclass(frozen=True, slots=True)
class Topic:
    prefix: str
    version: int
    community: str
    device: str
    channel: Channel

    def __str__(self) -> str:
        return f"{self.prefix}/v{self.version}/{self.community}/{self.device}/{self.channel.value}"


class DeadLetterReason(StrEnum):
    """Why an inbound message was refused; stored in `dead_letters.reason` and used as a metric label.

    Shared by ingest (which records them) and the simulator's bad-input set (which provokes them).
    """

    MALFORMED_JSON = "malformed_json"  # not UTF-8 JSON, or not a JSON object
    SCHEMA_VIOLATION = "schema_violation"  # JSON, but not the family's model for the channel
    UNKNOWN_DEVICE = "unknown_device"  # no registered device with the topic's id
    TOPIC_MISMATCH = "topic_mismatch"  # envelope device != topic device, or topic community != device's
    FAMILY_MISMATCH = "family_mismatch"  # envelope family != the registered family
    TIMESTAMP_OUT_OF_WINDOW = "timestamp_out_of_window"  # device time too far in the past or future
    OVERSIZE = "oversize"  # payload larger than the configured limit (checked first)
    BAD_TOPIC = "bad_topic"  # topic not {prefix}/v1/<community>/<device>/<channel>
    UNSUPPORTED_VERSION = "unsupported_version"  # topic or envelope contract version not served
    DEVICE_DISABLED = "device_disabled"  # registered but disabled in the registry
    ENGINE_OUTPUT_REFUSED = "engine_output_refused"  # what the engine made of it was refused by the database


# Refusals of a known device's message that ingest still hands to the alert engine (and the engine
# evaluates): a schema violation may be a reading out of the physical range (sensor_implausible), a
# timestamp out of window a wrong clock (clock_skew).
HANDED_OFF = frozenset({DeadLetterReason.SCHEMA_VIOLATION, DeadLetterReason.TIMESTAMP_OUT_OF_WINDOW})


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why an inbound message was refused, and whose it is as far as known: what ingest's edge
    decides (ingest/decode.py) and a dead letter records (storage/dead_letters.py). `family` is the
    one the message claimed or the device's, as text (a refused message may name any)."""

    reason: DeadLetterReason
    detail: str
    device_uid: str | None = None
    family: str | None = None
    # whose it is: the registered device the topic names (its id and community), else the community
    # the topic names if that is registered (resolved by ingest, `Registry.attribute`)
    device_id: int | None = None
    community_id: int | None = None


class TopicError(ValueError):
    """A topic that does not follow the contract; `reason` is the dead-letter reason code."""

    def __init__(self, reason: DeadLetterReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def topic(prefix: str, community: str, device: str, channel: Channel) -> str:
    return f"{prefix}/v{CONTRACT_VERSION}/{community}/{device}/{channel.value}"


def parse_topic(text: str, prefix: str) -> Topic:
    """Split a topic into its parts, or raise `TopicError` saying what is wrong with it."""
    parts = text.split("/")
    if len(parts) != 5 or parts[0] != prefix:
        raise TopicError(
            DeadLetterReason.BAD_TOPIC, f"expected {prefix}/v1/<community>/<device>/<channel>, got {text!r}"
        )
    _, version, community, device, channel = parts
    if version != f"v{CONTRACT_VERSION}":
        raise TopicError(
            DeadLetterReason.UNSUPPORTED_VERSION, f"contract version {version!r} is not served here"
        )
    if not _ID_RE.match(community) or not _ID_RE.match(device):
        raise TopicError(DeadLetterReason.BAD_TOPIC, f"community and device ids must match {ID_PATTERN}")
    try:
        chan = Channel(channel)
    except ValueError:
        raise TopicError(DeadLetterReason.BAD_TOPIC, f"unknown channel {channel!r}") from None
    return Topic(prefix, CONTRACT_VERSION, community, device, chan)


def loose_topic_ids(text: str, prefix: str) -> tuple[str | None, str | None]:
    """(community, device) a topic names where it has the contract's shape up to them, whatever is
    wrong after (version, channel, extra levels): whose a refused message is, for the dead-letter view."""
    parts = text.split("/")
    if len(parts) < 4 or parts[0] != prefix:
        return None, None
    community, device = parts[2], parts[3]
    return (
        community if _ID_RE.match(community) else None,
        device if _ID_RE.match(device) else None,
    )


def subscriptions(prefix: str, shared_group: str | None = None) -> list[str]:
    """The topic filter ingest subscribes to: everything under the prefix, optionally as a shared group.

    Not only the contract's uplink topics: whatever reaches the broker under the prefix — another
    contract version, an unknown channel, a topic of the wrong shape — is received and dead-lettered
    with its reason (`bad_topic`, `unsupported_version`), never left unseen. The broker ACL
    (devices/credentials.py) lets devices and gateways write a subset of it; Yiju's own commands on
    `cmd` topics come back too and are recognised as such (ingest.decode.Downlink)."""
    filters = [f"{prefix}/#"]
    if shared_group:
        return [f"$share/{shared_group}/{f}" for f in filters]
    return filters


@dataclass(frozen=True, slots=True)
class DeviceRef:
    """What ingest knows about a registered device (from the cached registry)."""

    id: int
    uid: str
    community: str
    community_id: int
    family: Family


class Decoded(NamedTuple):  # immutable; a tuple because one is built per message (8× cheaper, issue 18)
    """One accepted uplink message, as every consumer past the edge sees it.

    `body` is the validated message (telemetry, event, status or command ack of the device's family):
    the pydantic model, or for the common valid telemetry and status message its compiled mirror
    (`devices.fastpath`: the same fields, values, properties and methods); `payload` is the original
    JSON, stored as it came.
    """

    device: DeviceRef
    channel: Channel
    ts: datetime
    seq: int
    received_at: datetime
    body: Any
    payload: bytes
