"""Where ingest's raw messages come from: the MQTT session (`MqttConsumer`), or in scale-out mode a
JetStream partition (`yiju.scaleout.worker`). Both hand over `RawMessage` batches on their own thread and
acknowledge by token once the batch holding a message is committed (at-least-once)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol

from ingest.messages import RawMessage

BatchCallback = Callable[[list[RawMessage]], None]
StateCallback = Callable[[bool, str], None]


class MessageSource(Protocol):
    subscribed: threading.Event  # set once messages can flow

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def ack(self, tokens: list[tuple[int, int, int]]) -> int:
        """Acknowledge (mid, qos, generation) tokens of committed messages, in receipt order."""
        ...


# builds the source with the service's callbacks (the service owns and stops it)
SourceFactory = Callable[[BatchCallback, StateCallback], MessageSource]
