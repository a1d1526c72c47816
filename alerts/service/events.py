"""What the alert engine service tells the rest of the process: bus events and its counters.

- `EngineEvent` is what a subscriber receives after the batch that caused it is committed (never
  before: a subscriber never sees an alarm the database does not hold). Subscribers run on the
  engine's worker thread; one that raises is logged and the others still run.
- `EngineStats` are the service's own counters (tests, benchmarks, `yiju doctor`); the Prometheus
  figures are `alerts.metrics.AlertMetrics`. Counters touched by the submitting thread too are
  changed under the service's lock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class EngineEvent:
    """What subscribers of the internal bus receive after a batch is committed."""

    kind: str  # "alarm" | "finding" | "command"
    device_id: int
    community_id: int
    payload: Any  # alarms.AlarmChange | findings.FindingRow | command dict
    received_at: datetime | None  # when ingest received the message that caused it (latency)


Subscriber = Callable[[EngineEvent], None]


@dataclass
class EngineStats:
    processed: int = 0
    duplicates: int = 0
    counter_restarts: int = 0  # messages that began a new sequence epoch (device reboot / reset)
    dropped: int = 0  # not evaluated: arrived while stopping / not running, or left when the DB was down
    errors: int = 0
    unknown_devices: int = 0
    batches: int = 0
    ticks: int = 0
    context_refreshes: int = 0  # registry re-reads (`context_refresh_s`)
    persist_retries: int = 0
    unwritten: int = 0  # outputs given up at stop with the database down
    refused: int = 0  # outputs the database refuses for their content: dead-lettered, never retried
    replayed: int = 0
    implausible: int = 0
    backpressure_waits: int = 0
