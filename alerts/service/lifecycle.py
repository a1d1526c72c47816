"""`AlertService`: the engine service's lifecycle and its face to ingest (`MessageSink`).

Contract:
- `start()` connects, loads the contexts, community overrides and stored rule states (and their
  timers), then starts the one owned worker thread (worker.py), which replays first. `stop()`
  lets the worker finish what is queued, writes the rule state behind once more (not when the
  database was given up on: then the checkpoint stays and the next start replays), and closes the
  connection. Usable as a context manager.
- `submit(message)` / `reject(...)` implement ingest's `MessageSink` / `RejectSink` (sink.py:
  back-pressure, never a silent drop). `subscribe(callback)` adds a bus subscriber (events.py).
- `wait_idle()` blocks until everything submitted is evaluated and persisted (tests, benchmarks);
  `now()` is the engine clock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime

from prometheus_client import CollectorRegistry

from alerts.commands import CommandPublisher
from alerts.config import AlertSettings
from alerts.metrics import AlertMetrics, alert_metrics
from alerts.service.contexts import Contexts
from alerts.service.events import EngineStats, Subscriber
from alerts.service.persistence import ENGINE_NAME, Persistence
from alerts.service.sink import Barrier, Intake, Rejected
from alerts.service.states import RuleStates
from alerts.service.worker import Worker
from devices.contract import HANDED_OFF, Channel, DeadLetterReason, Decoded, DeviceRef
from storage import rule_state
from yiju.errors import ConfigurationError

log = logging.getLogger(__name__)


class AlertService:
    def __init__(
        self,
        database_url: str,
        settings: AlertSettings,
        *,
        publisher: CommandPublisher | None = None,
        wall_clock: Callable[[], float] = time.time,
        metrics: AlertMetrics | None = None,
        communities: frozenset[int] | None = None,
        name: str = ENGINE_NAME,
        replay: bool = True,
    ) -> None:
        """`communities`: evaluate (load, tick) only the devices of these communities — a scale-out
        partition worker's share (docs/scale-out.md); None: all. `name`: the checkpoint row.
        `replay`: replay stored messages after the checkpoint on start (single-node crash recovery;
        a partition worker relies on JetStream's redelivery of what it did not acknowledge instead)."""
        self._settings = settings
        self._scope = communities
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._registry_revision = -1  # as of the last read of the contexts (owned by the worker thread)
        self._lingering: threading.Thread | None = None  # a worker a stop stopped waiting for
        self._subscribers: list[Subscriber] = []
        self._lock = threading.Lock()
        self.stats = EngineStats()
        # the process's metric set (yiju.metrics); a private, unexposed one for tests and benchmarks
        self.metrics: AlertMetrics = metrics or alert_metrics(CollectorRegistry())
        self.metrics.queue_capacity.set(settings.queue_size)
        self.intake = Intake(
            settings.queue_size, stop=self._stop, stats=self.stats, lock=self._lock, metrics=self.metrics
        )
        # owned by the worker thread
        self.contexts = Contexts(settings)
        self._states = RuleStates()
        self._store = Persistence(
            database_url,
            settings,
            states=self._states,
            contexts=self.contexts,
            stop=self._stop,
            stats=self.stats,
            metrics=self.metrics,
            publisher=publisher,
            subscribers=self._subscribers,
            name=name,
        )
        self._worker = Worker(
            settings,
            intake=self.intake,
            contexts=self.contexts,
            states=self._states,
            store=self._store,
            stop=self._stop,
            stats=self.stats,
            lock=self._lock,
            metrics=self.metrics,
            wall_clock=wall_clock,
            replay=replay,
            refresh_contexts=self._refresh_contexts,
        )

    # ------------------------------------------------------------------ lifecycle and MessageSink

    def subscribe(self, callback: Subscriber) -> None:
        self._subscribers.append(callback)

    def start(self) -> None:
        if self._thread is not None:
            return
        if self._lingering is not None and self._lingering.is_alive():
            # a stop gave up waiting for it: it still owns the connection, the queue and the states
            raise ConfigurationError("the alert engine's previous worker is still finishing; start later")
        self._store.open()
        self._load()
        self._stop.clear()
        self.intake.running = True
        self._thread = threading.Thread(target=self._worker.run, name="alert-engine", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Finish the queued messages, flush the rule state, close the connection. With the database
        down, outputs not written by then are logged and counted (`unwritten`), and the checkpoint
        stays where it was, so the next start replays them from the stored messages."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout_s)
        self.intake.running = False
        if self._thread.is_alive():
            # still evaluating or retrying writes: it flushes the rule state and closes its own
            # connection when it is done (Worker._finish); touching that connection here would race it
            log.error(
                "alert engine: the worker is still finishing %d queued messages after %g s; it writes "
                "the rule state and closes its connection when done",
                self.intake.depth(),
                timeout_s,
            )
            self._lingering = self._thread
        self._thread = None

    def __enter__(self) -> AlertService:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def submit(self, message: Decoded) -> None:
        """MessageSink: waits while the queue is full (back-pressure), returns at once otherwise."""
        self.intake.put(message)

    def reject(
        self,
        device: DeviceRef,
        *,
        channel: Channel,
        received_at: datetime,
        reason: DeadLetterReason,
        detail: str,
        payload: bytes,
    ) -> None:
        """MessageSink (optional): ingest refused a known device's telemetry. A schema violation may be
        a reading out of the physical range (then: sensor_implausible); a timestamp outside ingest's
        window is a wrong clock (clock_skew)."""
        if reason in HANDED_OFF and channel is Channel.TELEMETRY:
            self.intake.put(Rejected(device, channel, received_at, payload, reason))

    def sync(self, timeout_s: float = 30.0) -> bool:
        """Block until every message submitted before this call is evaluated, its outputs written and
        the rule state of every device it touched committed (scale-out: a partition worker
        acknowledges JetStream only after this, so a redelivered message meets the state that
        includes it). False if that did not happen within `timeout_s` (database away, stopping)."""
        barrier = Barrier(threading.Event(), threading.Event())
        self.intake.put(barrier)
        return barrier.done.wait(timeout_s) and not barrier.failed.is_set()

    def wait_idle(self, timeout_s: float = 10.0) -> bool:
        """Block until every submitted message is evaluated and persisted (tests, benchmarks)."""
        deadline = time.monotonic() + timeout_s
        if not self._worker.replayed.wait(timeout_s):
            return False
        while time.monotonic() < deadline:
            if self.intake.empty() and self.intake.idle.wait(0.02) and self.intake.empty():
                return True
        return False

    def now(self) -> float:
        """The engine clock (seconds since the epoch)."""
        return self._worker.now()

    # ------------------------------------------------------------------ loading

    def _refresh_contexts(self) -> None:
        """On the worker thread, every `context_refresh_s`: if the registry's revision moved (migration
        0027), the registry as it is now (Contexts.refresh); otherwise one one-row read. The engine
        evaluates nothing meanwhile, so the whole read happens only after an edit."""
        conn = self._store.conn
        if conn is None:
            return
        with conn.transaction():
            revision = rule_state.registry_revision(conn)
            if revision == self._registry_revision:
                return
            scope = sorted(self._scope) if self._scope is not None else None
            contexts = rule_state.load_contexts(conn, community_ids=scope)
            overrides = rule_state.community_overrides(conn)
        self._registry_revision = revision
        changed = self.contexts.refresh(contexts, overrides)
        with self._lock:
            self.stats.context_refreshes += 1
        for device_id in changed:  # its deadlines may depend on what changed (e.g. held_open_s)
            self._worker.schedule(device_id)
        if changed:
            log.info("alert engine: registry re-read, %d device context(s) changed", len(changed))

    def _load(self) -> None:
        conn = self._store.conn
        assert conn is not None
        with conn.transaction():
            self._registry_revision = rule_state.registry_revision(conn)
            contexts = rule_state.load_contexts(conn)
            overrides = rule_state.community_overrides(conn)
            stored = rule_state.load_states(conn)
        if self._scope is not None:  # another partition's devices are another worker's
            contexts = [row for row in contexts if row.community_id in self._scope]
            mine = {row.device_id for row in contexts}
            stored = {d: doc for d, doc in stored.items() if d in mine}
        self.contexts.load(contexts, overrides)
        for device_id in self._states.load(stored):
            self._worker.schedule(device_id)
