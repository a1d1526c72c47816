"""The frozen type a raw MQTT message becomes at the edge (nothing paho-specific survives it)."""

from __future__ import annotations

from typing import NamedTuple


class RawMessage(NamedTuple):  # immutable; a tuple because one is built per message
    topic: str
    payload: bytes
    mid: int
    generation: int  # connection generation: acks for an older connection are never sent
    received_at: float  # epoch seconds, taken in the network callback
    qos: int = 1
