"""The bridge: MQTT 5 (persistent session, QoS 1, manual ack) → JetStream, stateless.

A message is acknowledged to the MQTT broker only after JetStream confirmed its publish (stored by
the stream's R3 quorum, or recognised as a duplicate by its `Nats-Msg-Id`), so a bridge killed at
any point loses nothing: the broker redelivers what was not acknowledged, and the re-publish is
harmless. `Nats-Msg-Id` = `<device>:<channel>:<ts>:<seq>` from the envelope — the same for every
copy of a message, whichever bridge publishes it (a payload that does not parse gets a digest of
topic and payload; the worker dead-letters it).

Per-device order: the messages of one device (all its channels) are published one after another
(the next only once JetStream confirmed the previous), devices in parallel; a message whose publish
failed is retried before any later message of its device. So the stream holds each device's messages in the
order the broker delivered them.

Threads, all owned here: paho's network loop (`MqttConsumer`) queues messages; the publisher thread
publishes them and acknowledges; the NATS link's event loop.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass

from devices.contract import subscriptions
from ingest.messages import RawMessage
from ingest.mqtt_adapter import MqttConsumer
from yiju.errors import MessagingUnavailable
from yiju.scaleout.config import ScaleSettings
from yiju.scaleout.jetstream import JetStreamLink, Outgoing, StreamSpec
from yiju.scaleout.subjects import (
    RECEIVED_HEADER,
    TOPIC_HEADER,
    encode_topic,
    publish_subject,
    source_subject,
    stream_name,
    transformed_subject,
)
from yiju.settings import Settings

log = logging.getLogger(__name__)
RETRY_MAX_S = 2.0


def stream_spec(prefix: str, scale: ScaleSettings) -> StreamSpec:
    return StreamSpec(
        name=stream_name(prefix),
        source_subject=source_subject(prefix),
        transformed=transformed_subject(prefix, scale.partitions),
        replicas=scale.replicas,
        duplicate_window_s=scale.duplicate_window_s,
        max_age_s=scale.stream_max_age_s,
        max_bytes=scale.stream_max_bytes,
    )


def message_id(topic: str, payload: bytes) -> str:
    """`device:channel:ts:seq`, the natural key of the message; a digest if the envelope is unreadable."""
    parts = topic.split("/")
    try:
        doc = json.loads(payload)
        ts, seq = doc["ts"], doc["seq"]
        if len(parts) == 5 and isinstance(ts, str) and isinstance(seq, int):
            return f"{parts[3]}:{parts[4]}:{ts}:{seq}"
    except (ValueError, KeyError, TypeError):
        pass
    digest = hashlib.sha256(topic.encode() + b"\0" + payload).hexdigest()[:40]
    return f"raw:{digest}"


@dataclass
class BridgeStats:
    received: int = 0
    confirmed: int = 0  # JetStream confirmed (stored or duplicate)
    acked: int = 0  # PUBACKs sent
    retries: int = 0  # publish rounds with at least one failure


class Bridge:
    def __init__(self, settings: Settings, *, mqtt_url: str, nats_url: str, client_id: str) -> None:
        self.settings = settings
        self.scale = settings.scale
        self.prefix = settings.mqtt.topic_prefix
        self.stats = BridgeStats()
        self.link = JetStreamLink(
            nats_url,
            name=client_id,
            request_timeout_s=self.scale.publish_timeout_s,
            ca_file=self.scale.nats_ca_file,
            credentials_file=self.scale.nats_credentials_file,
        )
        group = settings.mqtt.shared_group if self.scale.bridge_shared_subscription else None
        self.consumer = MqttConsumer(
            mqtt_url,
            client_id=client_id,
            filters=subscriptions(self.prefix, group),
            on_message=self._on_message,
            on_batch=self._on_batch,
            session_expiry_s=settings.mqtt.session_expiry_s,
            receive_maximum=settings.ingest.receive_maximum,
            keepalive_s=settings.mqtt.keepalive_s,
            ca_file=settings.mqtt.ca_file,
        )
        self._queue: deque[RawMessage] = deque()
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bridge-publisher", daemon=True)

    def start(self) -> None:
        self.link.start()
        self.link.ensure_stream(stream_spec(self.prefix, self.scale))
        self._thread.start()
        self.consumer.start()

    def stop(self) -> None:
        """Stop taking messages; what was not confirmed stays unacknowledged with the broker."""
        self.consumer.stop()
        self._stop.set()
        self._ready.set()
        self._thread.join(10.0)
        self.link.stop()

    def __enter__(self) -> Bridge:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    # paho's thread: only enqueue (the broker's Receive Maximum bounds the queue)
    def _on_message(self, raw: RawMessage) -> None:
        self._queue.append(raw)
        self._ready.set()

    def _on_batch(self, raws: list[RawMessage]) -> None:
        self._queue.extend(raws)
        self._ready.set()

    def _run(self) -> None:
        retry: list[RawMessage] = []  # failed publishes, in order: they go before anything newer
        backoff = 0.05
        limit = self.scale.bridge_batch
        while not self._stop.is_set():
            batch = list(retry)
            while len(batch) < limit and self._queue:
                batch.append(self._queue.popleft())
            if not batch:
                self._ready.clear()
                if not self._queue:
                    self._ready.wait(0.5)
                continue
            self.stats.received += len(batch) - len(retry)
            retry = self._publish(batch)
            if retry:
                self.stats.retries += 1
                if self._stop.wait(backoff):
                    return
                backoff = min(backoff * 2, RETRY_MAX_S)
            else:
                backoff = 0.05

    def _publish(self, batch: list[RawMessage]) -> list[RawMessage]:
        """Publish `batch`, acknowledge to MQTT what JetStream confirmed; return the rest, in order."""
        items = []
        for raw in batch:
            subject = publish_subject(self.prefix, raw.topic)
            items.append(
                Outgoing(
                    subject=subject,
                    payload=raw.payload,
                    msg_id=message_id(raw.topic, raw.payload),
                    headers={TOPIC_HEADER: encode_topic(raw.topic), RECEIVED_HEADER: repr(raw.received_at)},
                    order_key=subject,  # the device: all its channels, in the order the broker sent them
                )
            )
        try:
            ok = self.link.publish(items, self.scale.publish_timeout_s)
        except MessagingUnavailable as exc:
            log.warning("bridge: %d message(s) not published (%s); retrying, nothing acked", len(batch), exc)
            return batch
        done = [(raw.mid, raw.qos, raw.generation) for raw, good in zip(batch, ok, strict=True) if good]
        self.stats.confirmed += len(done)
        self.stats.acked += self.consumer.ack(done)
        return [raw for raw, good in zip(batch, ok, strict=True) if not good]

    def wait_drained(self, timeout_s: float) -> bool:
        """True once nothing received is waiting to be published (tests)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self._queue and self.stats.confirmed >= self.stats.received:
                return True
            time.sleep(0.05)
        return False
