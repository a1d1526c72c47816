"""Downlink commands to devices: how a recorded command is sent, by the engine and by the dispatcher.

- `CommandPublisher` is what the engine and the dispatcher send through; `CommandSender` implements
  it over any topic transport (the runtime gives it the MQTT command connection): the command as a
  `CommandMessage` on the device's `cmd` topic (docs/mqtt.md).
- `send(publisher, command)` is the one publish attempt both make: True if the transport took it;
  a `YijuError` (broker unavailable) is logged and gives False. The caller marks the stored command
  `sent` or `failed` with that result (storage.commands.mark_sent).
- `CommandDispatcher.step()` sends the commands requested through the API (recorded `pending`, not
  the engine's own, which the engine publishes right after its commit) and applies the devices'
  acknowledgements. The runtime runs it in an owned loop (yiju/runtime.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from uuid import UUID

from devices.contract import Channel, topic
from devices.envelope import CommandMessage
from storage import commands as command_store
from storage.db import connection
from yiju.errors import YijuError

log = logging.getLogger(__name__)

# cmd_ack events are looked for this far behind the newest one seen (device clocks, late delivery)
ACK_LOOKBACK = timedelta(minutes=10)


class CommandPublisher(Protocol):
    """Sends a recorded command to a device (implemented by the owner of the MQTT connection)."""

    def publish_command(
        self,
        *,
        community: str,
        device: str,
        command_id: UUID,
        name: str,
        params: dict[str, Any],
        ts: datetime,
    ) -> None: ...


class Transport(Protocol):
    """Publishes bytes on a topic (ingest.mqtt_adapter.MqttCommandPublisher); raises a YijuError."""

    def publish(self, topic: str, payload: bytes) -> None: ...


@dataclass(frozen=True, slots=True)
class Command:
    """One recorded command on its way to its device."""

    community: str  # community code (topic)
    device: str  # device uid (topic)
    command_id: UUID
    name: str
    params: dict[str, Any]
    ts: datetime


class CommandSender:
    """A `CommandPublisher` over a topic transport: the command as JSON on the device's cmd topic."""

    def __init__(self, transport: Transport, prefix: str) -> None:
        self._transport = transport
        self._prefix = prefix

    def publish_command(
        self,
        *,
        community: str,
        device: str,
        command_id: UUID,
        name: str,
        params: dict[str, Any],
        ts: datetime,
    ) -> None:
        message = CommandMessage(id=command_id, ts=ts, command=name, params=params)
        where = topic(self._prefix, community, device, Channel.COMMAND)
        self._transport.publish(where, message.model_dump_json().encode())


def send(publisher: CommandPublisher, command: Command) -> bool:
    """One publish attempt: True if the transport took the command, False (logged) if it refused."""
    try:
        publisher.publish_command(
            community=command.community,
            device=command.device,
            command_id=command.command_id,
            name=command.name,
            params=command.params,
            ts=command.ts,
        )
    except YijuError as exc:
        log.warning("command %s to %s not sent: %s", command.name, command.device, exc)
        return False
    return True


class CommandDispatcher:
    """Sends commands requested through the API and applies device acknowledgements to commands."""

    def __init__(self, database_url: str, publisher: CommandPublisher) -> None:
        self._url = database_url
        self._publisher = publisher
        self._acks_since = datetime.now(UTC) - ACK_LOOKBACK

    def step(self) -> None:
        with connection(self._url) as conn:
            with conn.transaction():
                for cmd in command_store.claim_pending(conn):
                    command = Command(
                        cmd.community_code,
                        cmd.device_uid,
                        cmd.command_uuid,
                        cmd.name,
                        cmd.params,
                        datetime.now(UTC),
                    )
                    command_store.mark_sent(conn, cmd.id, ok=send(self._publisher, command))
            with conn.transaction():
                _, newest = command_store.apply_acks(conn, self._acks_since)
            self._acks_since = max(self._acks_since, newest - ACK_LOOKBACK)
