"""Dead-letter bodies: a refused inbound message as the integrator needs it while commissioning."""

from __future__ import annotations

import base64
from datetime import datetime

from pydantic import BaseModel, Field

from storage.dead_letters import StoredDeadLetter


class DeadLetterOut(BaseModel):
    id: int
    received_at: datetime
    reason: str = Field(description="Why it was refused: a DeadLetterReason (docs/mqtt.md §8)")
    detail: str = Field(description="What exactly was wrong, e.g. the failing field")
    topic: str
    community_id: int | None = Field(description="The community it concerns, if known")
    device_id: int | None = Field(description="The registered device the topic names, if any")
    device_uid: str | None
    family: str | None
    payload_size: int = Field(description="Size of the message as received, bytes")
    payload_truncated: bool = Field(description="Only the first bytes are kept (ingest setting)")
    payload_text: str | None = Field(description="The kept bytes as UTF-8 text; null if they are not")
    payload_base64: str = Field(description="The kept bytes, exactly")

    @classmethod
    def of(cls, d: StoredDeadLetter) -> DeadLetterOut:
        try:
            text: str | None = d.payload.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        return cls(
            id=d.id,
            received_at=d.received_at,
            reason=d.reason,
            detail=d.detail,
            topic=d.topic,
            community_id=d.community_id,
            device_id=d.device_id,
            device_uid=d.device_uid,
            family=d.family,
            payload_size=d.payload_size,
            payload_truncated=d.payload_size > len(d.payload),
            payload_text=text,
            payload_base64=base64.b64encode(d.payload).decode(),
        )
