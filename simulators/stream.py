"""The simulator's unit of output: one MQTT message a device sends at a simulated instant.

Pure: building, merging and hashing streams does no I/O. The publisher (`simulators.mqtt_publisher`)
puts them on the wire; `SimClock` maps simulated time onto wall time for paced runs.
"""

from __future__ import annotations

import hashlib
import heapq
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from devices.contract import Channel, topic


@dataclass(frozen=True, slots=True)
class SimMessage:
    """`at` is the simulated instant the message goes on the wire. It equals the envelope's `ts`
    except for messages a device buffered during an outage and flushes later (then `ts` < `at`).

    `raw_topic` (relative to the prefix) replaces the contract topic for the bad-input set only.
    `will` is the Last Will a per-device session registers when it connects; the fleet attaches it
    to the device's first (retained, online) status message.
    """

    at: datetime
    community: str
    device: str
    channel: Channel
    payload: bytes
    retain: bool = False
    raw_topic: str | None = None
    will: bytes | None = None

    def topic(self, prefix: str) -> str:
        if self.raw_topic is not None:
            return f"{prefix}/{self.raw_topic}"
        return topic(prefix, self.community, self.device, self.channel)


def merge(*streams: Iterable[SimMessage]) -> Iterator[SimMessage]:
    """Merge time-ordered streams into one, stable for equal instants (first stream first)."""
    return heapq.merge(*streams, key=lambda m: m.at)


def digest(messages: Iterable[SimMessage], prefix: str = "yiju") -> str:
    """SHA-256 over everything that goes on the wire, in order: the determinism fingerprint."""
    h = hashlib.sha256()
    for m in messages:
        h.update(m.topic(prefix).encode())
        h.update(b"\x00R" if m.retain else b"\x00-")
        h.update(len(m.payload).to_bytes(4, "big"))
        h.update(m.payload)
        if m.will is not None:
            h.update(b"W")
            h.update(m.will)
    return h.hexdigest()


@dataclass(frozen=True, slots=True)
class SimClock:
    """Simulated time = `start` + (wall seconds since `wall0`) × `speed`.

    `speed` is the time acceleration (60 = one simulated minute per wall second); `math.inf` means
    "as fast as possible": no waiting at all.
    """

    start: datetime
    speed: float
    wall0: float

    def wall_at(self, sim: datetime) -> float:
        """The wall (monotonic) instant at which `sim` happens; -inf when unpaced."""
        if math.isinf(self.speed):
            return -math.inf
        return self.wall0 + (sim - self.start).total_seconds() / self.speed
