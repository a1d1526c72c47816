"""One device's voice: its sequence counter and the contract v1 messages it sends.

Every payload is validated by the family's models from `devices.catalog` and serialised with
`model_dump_json`, so whatever the simulator sends matches the published contract; a scenario that
builds an invalid message fails loudly here instead of producing dead letters by accident (the
bad-input set builds its payloads by hand, on purpose).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from devices.catalog import FAMILIES
from devices.contract import CONTRACT_VERSION, Channel
from devices.envelope import StatusMessage
from simulators.compound import SimDevice
from simulators.stream import SimMessage

# Devices in China keep local time; the offset in every timestamp makes it unambiguous.
CST = timezone(timedelta(hours=8))
FIRMWARE = "sim-1.0"


def iso(at: datetime) -> str:
    return at.astimezone(CST).isoformat()


class Emitter:
    """Builds one device's messages with a strictly increasing `seq` (starting at 0)."""

    __slots__ = ("device", "heartbeat_s", "seq", "spec")

    def __init__(self, device: SimDevice, heartbeat_s: int) -> None:
        self.device = device
        self.spec = FAMILIES[device.family]
        self.seq = 0
        self.heartbeat_s = heartbeat_s

    def _envelope(self, ts: datetime) -> dict[str, Any]:
        seq = self.seq
        self.seq += 1
        return {
            "v": CONTRACT_VERSION,
            "device": self.device.uid,
            "family": self.device.family.value,
            "ts": ts.astimezone(CST),
            "seq": seq,
        }

    def _msg(
        self,
        at: datetime,
        channel: Channel,
        payload: bytes,
        *,
        retain: bool = False,
        will: bytes | None = None,
    ) -> SimMessage:
        return SimMessage(at, self.device.community, self.device.uid, channel, payload, retain, None, will)

    def telemetry(self, at: datetime, data: dict[str, Any], *, sent_at: datetime | None = None) -> SimMessage:
        """Telemetry stamped `at`; `sent_at` (later) for a message flushed from the device's buffer."""
        model = self.spec.telemetry_message.model_validate({**self._envelope(at), "data": data})
        return self._msg(sent_at or at, Channel.TELEMETRY, model.model_dump_json(exclude_none=True).encode())

    def event(self, at: datetime, event: dict[str, Any], *, sent_at: datetime | None = None) -> SimMessage:
        model = self.spec.event_message.model_validate({**self._envelope(at), "event": event})
        return self._msg(sent_at or at, Channel.EVENT, model.model_dump_json(exclude_none=True).encode())

    def status(self, at: datetime, state: str, *, reason: str | None = None) -> SimMessage:
        return self._msg(at, Channel.STATUS, self._status(at, state, reason), retain=True)

    def _status(self, at: datetime, state: str, reason: str | None) -> bytes:
        model = StatusMessage.model_validate(
            {
                **self._envelope(at),
                "state": state,
                "reason": reason,
                "firmware": FIRMWARE,
                "heartbeat_s": self.heartbeat_s,
            }
        )
        return model.model_dump_json(exclude_none=True).encode()

    def online(self, at: datetime) -> SimMessage:
        """The retained online status that opens a session, carrying the Last Will (offline) the
        session registers. The will takes its `seq` now: the broker publishes it unchanged later."""
        will = self._status(at, "offline", "last_will")
        msg = self._status(at, "online", None)
        return self._msg(at, Channel.STATUS, msg, retain=True, will=will)
