"""Commands down to devices: request one (stored as pending for the MQTT side to send) and follow it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, status
from pydantic import ValidationError

from api.commands.schemas import CommandCreate, CommandOut
from api.deps import Conn, Operator, Reader
from api.devices.router import visible_device
from api.errors import ERROR_RESPONSES, ApiError, FieldError, invalid, not_found
from api.pagination import Cursor, Limit, Page, decode_int_cursor, page_by_id
from devices.catalog import FAMILIES
from storage import alarms, commands, users

router = APIRouter(tags=["commands"], responses={k: ERROR_RESPONSES[k] for k in (403, 404)})

CommandStatus = Literal["pending", "sent", "acknowledged", "rejected", "verified", "failed", "expired"]


@router.post("/commands", status_code=status.HTTP_201_CREATED, summary="Send a command to a device")
def send_command(body: CommandCreate, principal: Operator, conn: Conn) -> CommandOut:
    device = visible_device(conn, principal, body.device_id)
    adapter = FAMILIES[device.family].command_adapter
    if adapter is None:
        raise invalid("body.command", f"{device.family} devices take no commands")
    try:
        typed = adapter.validate_python({**body.params, "command": body.command})
    except ValidationError as exc:
        fields = [
            FieldError(field=".".join(["body", "params", *(str(p) for p in e["loc"][1:])]), reason=e["msg"])
            for e in exc.errors()
        ]
        raise ApiError(422, f"invalid command for {device.family}", fields=fields) from None
    if body.alarm_id is not None:
        alarm = alarms.get(conn, body.alarm_id)
        if alarm is None or alarm.community_id != device.community_id:
            raise not_found("alarm", body.alarm_id)
    params = typed.model_dump(mode="json", exclude={"command"}, exclude_none=True)
    command_id = commands.insert_command(
        conn,
        command_uuid=uuid.uuid4(),
        device_id=body.device_id,
        name=body.command,
        params=params,
        requested_by=principal.actor,
        requested_at=datetime.now(UTC),
        alarm_id=body.alarm_id,
    )
    row = commands.get_command(conn, command_id) if command_id is not None else None
    assert row is not None  # a fresh uuid is never a redelivery
    users.audit(
        conn,
        actor=principal.actor,
        action="command.send",
        target_type="command",
        target_id=str(row.id),
        community_id=device.community_id,
        details={"device_id": body.device_id, "command": body.command, "params": params},
    )
    return CommandOut.of(row)


@router.get("/commands/{command_id}", summary="A command's status and acknowledgements")
def get_command(
    command_id: Annotated[int, Path(ge=1, le=2**62)], principal: Reader, conn: Conn
) -> CommandOut:
    row = commands.get_command(conn, command_id)
    if row is None or not principal.sees(row.community_id):
        raise not_found("command", command_id)
    return CommandOut.of(row)


@router.get("/commands", summary="Commands, newest first")
def list_commands(
    *,
    principal: Reader,
    conn: Conn,
    community_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    device_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    status: CommandStatus | None = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Page[CommandOut]:
    rows = commands.list_commands(
        conn,
        community_ids=principal.scope_for(community_id),
        device_id=device_id,
        status=status,
        before_id=decode_int_cursor(cursor),
        limit=limit + 1,
    )
    return page_by_id([CommandOut.of(r) for r in rows], limit, lambda c: c.id)
