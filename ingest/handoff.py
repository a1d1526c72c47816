"""The hand-off from ingest to the alert engine (architecture.md, data flow step 2→3).

Every accepted message is submitted as soon as it is decoded, before and independent of the batch
flush, so alert latency never waits for the database. `submit` is called on the ingest decoding
thread and returns at once while the sink keeps up: a sink that needs time queues the message and
works elsewhere. A saturated sink may block it on purpose (the alert engine does: back-pressure —
the decoder slows, ingest stops reading and the broker holds the rest, so nothing is dropped);
`reject` must return at once.
Delivery to the sink is at-least-once too: a message redelivered by the broker after a crash is
submitted again, so a sink must tolerate repeats (the natural key is device + ts + seq).
"""

from __future__ import annotations

import logging
import queue
import threading
from datetime import datetime
from typing import Protocol, runtime_checkable

from devices.contract import HANDED_OFF, Channel, DeadLetterReason, Decoded, DeviceRef

log = logging.getLogger(__name__)


@runtime_checkable
class MessageSink(Protocol):
    def submit(self, message: Decoded) -> None:
        """Take one decoded message. Returns at once unless the sink is saturated: then it may wait
        (back-pressure: ingest slows, the broker holds the rest); it must not raise for a full queue."""


@runtime_checkable
class RejectSink(Protocol):
    """Optional second method of a sink: a known device's message refused at the edge (called on the
    decoding thread, must return at once). The alert engine raises `sensor_implausible` for readings
    outside the physical range (domain.md §5.2), which fail schema validation here, and `clock_skew`
    for telemetry refused for its timestamp."""

    def reject(
        self,
        device: DeviceRef,
        *,
        channel: Channel,
        received_at: datetime,
        reason: DeadLetterReason,
        detail: str,
        payload: bytes,
    ) -> None: ...


def hand_off_refusal(
    sink: MessageSink,
    device: DeviceRef | None,
    *,
    channel: Channel,
    received_at: datetime,
    reason: DeadLetterReason,
    detail: str,
    payload: bytes,
) -> None:
    """Tell a `RejectSink` about a known device's schema violation or telemetry refused for its
    timestamp (a wrong clock: `clock_skew`); a sink's bug never stops ingest."""
    if device is None or reason not in HANDED_OFF or not isinstance(sink, RejectSink):
        return
    try:
        sink.reject(
            device, channel=channel, received_at=received_at, reason=reason, detail=detail, payload=payload
        )
    except Exception:
        log.exception("alert hand-off of a refusal failed")


class NullSink:
    """Discards messages: ingest without an alert engine (benchmarks, `yiju ingest` alone)."""

    def submit(self, message: Decoded) -> None:
        return None


class QueueSink:
    """Buffers messages for a consumer thread. When the consumer falls behind by `maxsize` messages,
    new ones are dropped *from the hand-off only* (they are still stored) and counted in `dropped`:
    the stream must never stall because a downstream reader is slow."""

    def __init__(self, maxsize: int = 100_000) -> None:
        self.queue: queue.Queue[Decoded] = queue.Queue(maxsize)
        self._lock = threading.Lock()
        self.dropped = 0

    def submit(self, message: Decoded) -> None:
        try:
            self.queue.put_nowait(message)
        except queue.Full:
            with self._lock:
                self.dropped += 1
                if self.dropped == 1 or self.dropped % 10_000 == 0:
                    log.warning("hand-off queue full: %d messages not handed to the engine", self.dropped)

    def get(self, timeout_s: float | None = None) -> Decoded | None:
        """The next message, or None after `timeout_s` without one."""
        try:
            return self.queue.get(timeout=timeout_s)
        except queue.Empty:
            return None

    def drain(self) -> list[Decoded]:
        out: list[Decoded] = []
        while True:
            try:
                out.append(self.queue.get_nowait())
            except queue.Empty:
                return out
