"""How each rule output becomes storage writes, inside the batch's transaction.

Contract (`DeviceBatch.write`, one device's outputs in their order):
- `RaiseAlarm` opens or updates the device's alarm of that type; `ClearAlarm` clears it (by the
  engine); `Escalate` records an escalation on the open alarm (none open: nothing) — each change is
  an `EngineEvent("alarm")` for after the commit.
- `Finding`s are collected (`rows`) and inserted together by the caller (`findings.insert_findings`:
  a redelivered finding is skipped by its dedup key).
- `SendCommand` records the command with a deterministic id (uuid5 of device, name, time, reason),
  so a redelivered message cannot send the same command twice; it is linked to the alarm that
  caused it. A recorded command is queued in `commands` for publishing after the commit.
- `Linkage` signals write nothing (the worker fans them out to the building's devices).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from alerts.core.model import ClearAlarm, DeviceContext, Escalate, Output, RaiseAlarm, SendCommand
from alerts.service.events import EngineEvent
from devices.alarms import Finding
from storage import alarms, findings
from storage import commands as command_store
from storage.db import Connection

COMMAND_NAMESPACE = uuid.UUID("5d0f3c52-7a52-4a8e-8f38-3c3f1e0b6a11")

# a batch's evaluated outputs: per device, its context, outputs and the receipt time of the message
# that caused them (None for a timer's)
Work = list[tuple[DeviceContext, list[Output], datetime | None]]
# a recorded command to publish after the commit: (command row id, context, output, command uuid)
Recorded = tuple[int, DeviceContext, SendCommand, uuid.UUID]


def finding_row(ctx: DeviceContext, f: Finding) -> findings.FindingRow:
    """The finding as stored: whose it is, keyed for idempotency by its own dedup key."""
    return findings.FindingRow(ctx.community_id, ctx.device_id, f, f.dedup_key)


class DeviceBatch:
    """The storage writes of one device's outputs, inside the batch transaction."""

    def __init__(self, conn: Connection, ctx: DeviceContext, received_at: datetime | None) -> None:
        self.conn, self.ctx, self.received_at = conn, ctx, received_at
        self.alarm_ids: dict[str, int] = {}
        self.rows: list[findings.FindingRow] = []
        self.events: list[EngineEvent] = []
        self.commands: list[Recorded] = []

    def _event(self, kind: str, payload: Any) -> None:
        self.events.append(
            EngineEvent(kind, self.ctx.device_id, self.ctx.community_id, payload, self.received_at)
        )

    def write(self, out: Output) -> None:
        conn, ctx = self.conn, self.ctx
        if isinstance(out, RaiseAlarm):
            change = alarms.raise_or_update(
                conn,
                community_id=ctx.community_id,
                device_id=ctx.device_id,
                type=out.type.value,
                severity=out.severity,
                at=out.at,
                source=out.source,
                details=out.details,
            )
            self.alarm_ids[out.type.value] = change.alarm.id
            self._event("alarm", change)
        elif isinstance(out, ClearAlarm):
            cleared = alarms.clear(
                conn,
                device_id=ctx.device_id,
                type=out.type.value,
                actor="engine",
                at=out.at,
                details=out.details,
            )
            if cleared is not None:
                self._event("alarm", cleared)
        elif isinstance(out, Escalate):
            open_alarm = alarms.get_open(conn, ctx.device_id, out.type.value)
            if open_alarm is not None:
                change = alarms.record_transition(
                    conn, open_alarm.id, action="escalated", actor="engine", details=out.details, at=out.at
                )
                self._event("alarm", change)
        elif isinstance(out, Finding):
            row = finding_row(ctx, out)
            self.rows.append(row)
            self._event("finding", row)
        elif isinstance(out, SendCommand):
            self._command(out)

    def _command(self, out: SendCommand) -> None:
        conn, ctx = self.conn, self.ctx
        # deterministic id: a redelivered message cannot send the same command twice
        key = f"{ctx.device_id}:{out.name}:{out.at.isoformat()}:{out.reason.value}"
        cmd_uuid = uuid.uuid5(COMMAND_NAMESPACE, key)
        alarm_id = self.alarm_ids.get(out.reason.value)
        if alarm_id is None:
            open_alarm = alarms.get_open(conn, ctx.device_id, out.reason.value)
            alarm_id = None if open_alarm is None else open_alarm.id
        command_id = command_store.insert_command(
            conn,
            command_uuid=cmd_uuid,
            device_id=ctx.device_id,
            name=out.name,
            params=out.params,
            requested_by=command_store.ENGINE_ACTOR,
            requested_at=out.at,
            alarm_id=alarm_id,
            details={"reason": out.reason.value},
        )
        if command_id is not None:
            self.commands.append((command_id, ctx, out, cmd_uuid))
