"""Decoding and validation at the edge: raw MQTT message → `Decoded`, or a dead letter saying why.

Pure: no I/O, the clock and the registry snapshot are passed in. The checks run cheapest first —
size, topic, registry, then one JSON parse + schema validation (devices.catalog.decode) — and a
refused message is diagnosed further only on the failure path, so an accepted message costs one
parse. Every refusal carries a `DeadLetterReason`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from pydantic import BaseModel, ValidationError

from devices.catalog import accept as catalog_accept
from devices.contract import (
    Channel,
    DeadLetterReason,
    Decoded,
    DeviceRef,
    Refusal,
    Topic,
    TopicError,
    loose_topic_ids,
    parse_topic,
)
from devices.envelope import CommandMessage
from ingest.messages import RawMessage

DETAIL_MAX_CHARS = 500
# builds a NamedTuple without the Python-level `__new__` it generates (one frame less per message)
_decoded = tuple.__new__


@dataclass(frozen=True, slots=True)
class Downlink:
    """A command Yiju itself published on a `cmd` topic: ingest subscribes to everything under the
    prefix (so nothing a device may publish goes unseen) and therefore sees its own downlink; it is
    acknowledged and counted, not stored. Under the broker ACL no device may write a `cmd` topic."""

    device_uid: str


@dataclass(frozen=True, slots=True)
class Registry:
    """The device registry as ingest caches it: accepted devices by uid, the uids that are disabled,
    and community codes → ids. The owner (ingest.service) updates the containers in place under its
    lock; readers only look up single keys."""

    devices: dict[str, DeviceRef]
    disabled: dict[str, DeviceRef] = field(default_factory=dict)
    communities: dict[str, int] = field(default_factory=dict)

    def attribute(self, refusal: Refusal, topic: str, prefix: str) -> Refusal:
        """The refusal with the device and community it concerns filled in, where they are known: the
        registered device the topic (or the refusal) names, else the registered community it names."""
        community, device_uid = loose_topic_ids(topic, prefix)
        for uid in (refusal.device_uid, device_uid):
            device = (self.devices.get(uid) or self.disabled.get(uid)) if uid is not None else None
            if device is not None:
                return replace(refusal, device_id=device.id, community_id=device.community_id)
        cid = self.communities.get(community) if community is not None else None
        return refusal if cid is None else replace(refusal, community_id=cid)


class EdgeValidator:
    def __init__(
        self,
        prefix: str,
        *,
        max_payload_bytes: int,
        max_past: timedelta,
        max_future: timedelta,
    ) -> None:
        self.prefix = prefix
        self.max_payload_bytes = max_payload_bytes
        self.max_past = max_past
        self.max_future = max_future
        self._topics: dict[str, Topic] = {}  # topics repeat per device: parse each once
        self._window_for: datetime | None = None  # `now` the bounds below were computed for…
        self._window_tz: tzinfo | None = None  # …and the tzinfo they are expressed in
        self._lo = self._hi = datetime.min.replace(tzinfo=UTC)

    def topic(self, text: str) -> Topic:
        found = self._topics.get(text)
        if found is None:
            found = parse_topic(text, self.prefix)
            if len(self._topics) > 200_000:  # bounded: a flood of junk topics cannot grow it forever
                self._topics.clear()
            self._topics[text] = found
        return found

    def validate(  # noqa: PLR0911, PLR0912 - one return per refusal reason reads best
        self, raw: RawMessage, registry: Registry, now: datetime
    ) -> Decoded | Refusal | Downlink:
        """`now` is the time the message was received (UTC)."""
        size = len(raw.payload)
        if size > self.max_payload_bytes:
            return Refusal(DeadLetterReason.OVERSIZE, f"{size} bytes > limit {self.max_payload_bytes}")
        try:
            topic = self.topic(raw.topic)
        except TopicError as exc:
            return Refusal(exc.reason, str(exc)[:DETAIL_MAX_CHARS])
        channel = topic.channel
        if channel is Channel.COMMAND:
            try:
                CommandMessage.model_validate_json(raw.payload)
            except (ValidationError, ValueError):
                return Refusal(
                    DeadLetterReason.BAD_TOPIC,
                    "cmd is a downlink channel (and this is no command)",
                    topic.device,
                )
            return Downlink(topic.device)
        device = registry.devices.get(topic.device)
        if device is None:
            if topic.device in registry.disabled:
                return Refusal(DeadLetterReason.DEVICE_DISABLED, "device is disabled", topic.device)
            return Refusal(DeadLetterReason.UNKNOWN_DEVICE, "no such device in the registry", topic.device)
        if topic.community != device.community:
            return Refusal(
                DeadLetterReason.TOPIC_MISMATCH,
                f"topic community {topic.community!r} but the device belongs to {device.community!r}",
                topic.device,
                device.family.value,
            )
        payload = raw.payload
        if b"\\" in payload and b"\\u0000" in payload:  # a one-byte search first: escapes are rare
            # valid JSON, but PostgreSQL's jsonb cannot hold NUL characters
            return Refusal(
                DeadLetterReason.SCHEMA_VIOLATION,
                "string contains \\u0000",
                topic.device,
                device.family.value,
            )
        try:
            # a charger's reading out of its physical range is refused alone (devices.catalog.accept)
            body: Any = catalog_accept(device.family, channel, payload)
        except ValidationError as exc:
            return _diagnose(payload, exc, topic, device)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            return Refusal(DeadLetterReason.MALFORMED_JSON, _short(exc), topic.device, device.family.value)
        if body.device != topic.device:
            return Refusal(
                DeadLetterReason.TOPIC_MISMATCH,
                f"envelope device {body.device!r} on the topic of {topic.device!r}",
                topic.device,
                device.family.value,
            )
        if body.family is not device.family:
            family = device.family.value
            return Refusal(
                DeadLetterReason.FAMILY_MISMATCH,
                f"envelope family {body.family.value!r} but {topic.device!r} is registered as {family!r}",
                topic.device,
                family,
            )
        ts: datetime = body.ts
        tz = ts.tzinfo
        if now is not self._window_for or tz is not self._window_tz:  # one network read shares `now`
            # the bounds in the device time's own tzinfo object: datetimes sharing it compare field by
            # field, others through two utcoffset() calls and temporaries each (devices.fastpath)
            self._window_for, self._window_tz = now, tz
            self._lo, self._hi = (now - self.max_past).astimezone(tz), (now + self.max_future).astimezone(tz)
        if ts < self._lo or ts > self._hi:
            if channel is not Channel.TELEMETRY:
                # An alarm is never refused for the device's clock alone (a fire alarm from a detector
                # whose clock was reset must reach the duty room): events, status (a Last Will carries
                # the time of the connect that registered it) and acks are stored at the receive time;
                # the envelope keeps the device's own time as evidence (alerts/core/clock.py).
                return _decoded(Decoded, (device, channel, now, body.seq, now, body, payload))
            return Refusal(
                DeadLetterReason.TIMESTAMP_OUT_OF_WINDOW,
                f"ts {ts.isoformat()} outside [now - {self.max_past}, now + {self.max_future}]",
                topic.device,
                device.family.value,
            )
        return _decoded(Decoded, (device, channel, ts, body.seq, now, body, payload))


def _short(exc: BaseException | str) -> str:
    return str(exc).replace("\n", " ")[:DETAIL_MAX_CHARS]


def _diagnose(  # noqa: PLR0911
    payload: bytes, exc: ValidationError, topic: Topic, device: DeviceRef
) -> Refusal:
    """Name the most specific reason for a payload the schema refused (failure path only)."""
    uid, family = topic.device, device.family.value
    errors = exc.errors(include_url=False, include_input=False)
    if any(e.get("type") == "json_invalid" for e in errors):
        return Refusal(DeadLetterReason.MALFORMED_JSON, _short(errors[0]["msg"]), uid, family)
    try:
        doc = json.loads(payload)
    except (ValueError, RecursionError) as parse_error:
        return Refusal(DeadLetterReason.MALFORMED_JSON, _short(parse_error), uid, family)
    if not isinstance(doc, dict):
        return Refusal(DeadLetterReason.MALFORMED_JSON, "payload is not a JSON object", uid, family)
    if "v" in doc and doc["v"] != 1:
        return Refusal(
            DeadLetterReason.UNSUPPORTED_VERSION, f"envelope version {doc['v']!r} is not served", uid, family
        )
    if isinstance(doc.get("device"), str) and doc["device"] != topic.device:
        return Refusal(
            DeadLetterReason.TOPIC_MISMATCH,
            f"envelope device {doc['device'][:64]!r} on the topic of {topic.device!r}",
            uid,
            family,
        )
    if isinstance(doc.get("family"), str) and doc["family"] != family:
        return Refusal(
            DeadLetterReason.FAMILY_MISMATCH,
            f"envelope family {doc['family'][:64]!r} but {uid!r} is registered as {family!r}",
            uid,
            family,
        )
    where, msg = "", ""
    if errors:
        where = ".".join(str(p) for p in errors[0]["loc"])
        msg = errors[0]["msg"]
    detail = f"{len(errors)} error(s); {where}: {msg}"
    return Refusal(DeadLetterReason.SCHEMA_VIOLATION, _short(detail), uid, family)


# An event's code and channel are its first attribute of these names that is set (event_fields)
_CODE_NAMES = ("code", "kind", "reason", "method")
_CHANNEL_NAMES = ("port", "channel")
# per event class, the names of those it has: looking up an attribute a pydantic model lacks goes
# through its Python `__getattr__` and an AttributeError (≈ 3 µs each, four to six per event)
_event_names: dict[type, tuple[tuple[str, ...], tuple[str, ...]]] = {}


def _names_of(cls: type) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """The code and channel names an event class has, or None where the class cannot tell (not a
    pydantic model, or one that keeps unknown fields as attributes)."""
    found = _event_names.get(cls)
    if found is None:
        fields = getattr(cls, "model_fields", None)
        config = getattr(cls, "model_config", {})
        if not isinstance(fields, dict) or config.get("extra") == "allow":
            return None

        def has(name: str) -> bool:
            return name in fields or hasattr(cls, name)  # a field, or a property/attribute of the class

        found = _event_names[cls] = (
            tuple(n for n in _CODE_NAMES if has(n)),
            tuple(n for n in _CHANNEL_NAMES if has(n)),
        )
    return found


def event_fields(decoded: Decoded) -> tuple[str, str | None, int]:
    """(kind, code, channel) of a device_events row for an event, status or command-ack message."""
    body: Any = decoded.body
    if decoded.channel is Channel.STATUS:
        return "status", body.state, 0
    if decoded.channel is Channel.COMMAND_ACK:
        return "cmd_ack", "ok" if body.ok else (body.code or "failed"), 0
    event: BaseModel = body.event
    kind = str(getattr(event, "type", "event"))
    names = _names_of(type(event))
    code_names, channel_names = names if names is not None else (_CODE_NAMES, _CHANNEL_NAMES)
    code: Any = None
    for name in code_names:
        code = getattr(event, name, None)
        if code is not None:
            break
    channel = 0
    for name in channel_names:
        value = getattr(event, name, None)
        if isinstance(value, int):
            channel = value
            break
    if code is not None and not isinstance(code, str):
        code = str(getattr(code, "value", code))
    return kind, code, channel
