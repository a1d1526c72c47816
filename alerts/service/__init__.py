"""The alert engine service: the I/O shell around the pure rule core (`alerts.core`).

Ingest hands every accepted message to `AlertService.submit` (its `MessageSink`); one owned worker
thread evaluates them in arrival order with the rule core, persists alarms, findings and commands
in one short transaction per batch (retried until it commits), publishes the commands, then tells
the subscribers of its bus. Rule state is written behind and a checkpoint lets a restart replay what
a crash lost.

Exports: `AlertService`, `EngineEvent`, `EngineStats`, `Subscriber`.

One module per job, each stating its contract:
- `lifecycle` — `AlertService`: start/stop, the `MessageSink` face, loading at start;
- `sink` — the bounded intake queue and its back-pressure;
- `contexts` — the device context and community threshold cache;
- `states` — rule states in memory and the write-behind's bookkeeping;
- `worker` — the worker loop: evaluation, fire fan-out, the engine clock, ticks;
- `timers` — the heap of each device's next due time;
- `recovery` — crash replay from the checkpoint;
- `persistence` — the connection, batch transactions, retries, refusals, state flush;
- `outputs` — how each rule output becomes storage writes;
- `events` — the bus event and the service's counters.
"""

from alerts.service.events import EngineEvent, EngineStats, Subscriber
from alerts.service.lifecycle import AlertService

__all__ = ["AlertService", "EngineEvent", "EngineStats", "Subscriber"]
