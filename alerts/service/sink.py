"""The engine's intake: ingest's `MessageSink` side, a bounded queue with back-pressure.

Contract:
- `put(item)` returns once the item is queued. While the queue is full it waits, re-checking every
  `SUBMIT_WAIT_S` whether the service is stopping (back-pressure on purpose: ingest's decoder slows
  down and the broker holds the rest, at-least-once). The first wait of a put is counted
  (`backpressure_waits`).
- Only an item arriving while the service is not running or stopping is dropped, counted and
  logged (every 10,000th): its stored copy is replayed on the next start (recovery.py).
- `Rejected` carries a refusal of a known device's telemetry that the engine still evaluates: a
  schema violation (maybe an out-of-range reading: sensor_implausible) or a timestamp outside
  ingest's window (a wrong clock: clock_skew).
- `batch(timeout_s)` is the worker's side: up to `BATCH_MAX` items in arrival order, waiting at most
  `timeout_s` for the first.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass
from datetime import datetime

from alerts.metrics import AlertMetrics
from alerts.service.events import EngineStats
from devices.contract import Channel, DeadLetterReason, Decoded, DeviceRef

log = logging.getLogger(__name__)
BATCH_MAX = 500
SUBMIT_WAIT_S = 0.2  # back-pressure: re-check for stop this often while the queue is full


@dataclass(frozen=True, slots=True)
class Rejected:
    """A refusal handed over by ingest (schema violation of a known device)."""

    device: DeviceRef
    channel: Channel
    received_at: datetime
    payload: bytes
    reason: DeadLetterReason = DeadLetterReason.SCHEMA_VIOLATION  # or TIMESTAMP_OUT_OF_WINDOW


Item = Decoded | Rejected


@dataclass(frozen=True, slots=True)
class Barrier:
    """`AlertService.sync()`: `done` once everything queued before it is evaluated and its rule state
    committed, with `failed` also set when that batch met an error (it may not all be evaluated)."""

    done: threading.Event
    failed: threading.Event


class Intake:
    """The bounded queue between ingest's decoding thread and the engine's worker."""

    def __init__(
        self,
        size: int,
        *,
        stop: threading.Event,
        stats: EngineStats,
        lock: threading.Lock,
        metrics: AlertMetrics,
    ) -> None:
        self._queue: queue.Queue[Item | Barrier] = queue.Queue(size)
        self._stop = stop
        self._stats = stats
        self._lock = lock
        self._metrics = metrics
        self.running = False
        self.idle = threading.Event()  # set by the worker when it has nothing queued

    def put(self, item: Item | Barrier) -> None:
        waited = False
        while self.running and not self._stop.is_set():
            self.idle.clear()
            try:
                self._queue.put(item, timeout=SUBMIT_WAIT_S)
                return
            except queue.Full:
                if not waited:
                    waited = True
                    with self._lock:
                        self._stats.backpressure_waits += 1
                    self._metrics.backpressure_waits.inc()
        # not running, or stopping: nobody would evaluate it (the stored copy is replayed on start)
        with self._lock:
            self._stats.dropped += 1
            n = self._stats.dropped
        self._metrics.dropped_on_stop.inc()
        if n == 1 or n % 10_000 == 0:
            log.warning("alert engine not running: %d message(s) not evaluated (replayed on start)", n)

    def batch(self, timeout_s: float) -> list[Item | Barrier]:
        try:
            first: Item | Barrier | None = self._queue.get(timeout=timeout_s)
        except queue.Empty:
            first = None
        batch = [first] if first is not None else []
        while len(batch) < BATCH_MAX:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        self._metrics.queue_depth.set(self._queue.qsize())
        return batch

    def empty(self) -> bool:
        return self._queue.empty()

    def depth(self) -> int:
        return self._queue.qsize()
