"""The one interface every delivery channel implements, and the frozen records at its edge.

A channel gets an `Attempt` and returns an `Outcome`; it never raises for a delivery that failed
(network, refusal, busy, no answer): those are outcomes, with `retryable` saying whether another
attempt under the same idempotency key makes sense. `send` blocks (it runs on the worker's sender
threads, never on an event loop) and is bounded by the channel's own timeouts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from devices.alarms import ALARM_INFO, AlarmType

Status = Literal["delivered", "answered", "acknowledged", "busy", "no_answer", "failed"]


@dataclass(frozen=True, slots=True)
class Attempt:
    idem_key: str  # incident:loop:step:target:channel — sent to the provider
    incident_id: int
    alarm_id: int | None
    alarm_type: str
    severity: str
    summary: str  # Chinese, one line: what and where
    address: str  # phone number, URL or host:port
    target_name: str
    drill: bool
    community: str
    attempt: int
    alarm_at: datetime
    context: dict[str, Any] = field(default_factory=dict)
    secret: str = ""  # endpoint's signing secret (webhook)
    endpoint: dict[str, Any] = field(default_factory=dict)  # endpoint config (GB/T 26875.3 addresses…)


@dataclass(frozen=True, slots=True)
class Outcome:
    status: Status
    detail: str = ""
    retryable: bool = False
    provider_ref: str | None = None
    dtmf: str = ""  # digits received during a call
    extra: dict[str, Any] = field(default_factory=dict)


class Channel(Protocol):
    name: str

    def send(self, attempt: Attempt) -> Outcome: ...


def alarm_label(alarm_type: str) -> str:
    try:
        return ALARM_INFO[AlarmType(alarm_type)].zh
    except ValueError:
        return alarm_type


def message_zh(a: Attempt) -> str:
    """The Chinese text of a notification (SMS body, webhook `text`, voice prompt)."""
    drill = "【演练】" if a.drill else ""
    return f"{drill}【宜居】{a.community} {alarm_label(a.alarm_type)}：{a.summary}。请立即处理，按1确认。"
