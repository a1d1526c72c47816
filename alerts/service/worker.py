"""The worker: the one thread that evaluates messages in arrival order and runs the timers.

Contract:
- `run()` first replays what a crash lost (recovery.py; `replayed` is set after it, even if it
  failed; skipped with `replay=False`: a scale-out partition worker), then loops until stopped:
  take a batch from the intake (waiting at most min(`tick_s`, 0.1 s)), evaluate it and persist
  its outputs (persistence.py), tick the due timers every `tick_s`, write the dirty states behind
  every `state_flush_s`. A database error of a context lookup or of the write-behind is logged and
  counted (`errors`) and retried on the next turn. It returns once stopping with nothing queued
  (the queued messages are evaluated first).
- A `Barrier` (`AlertService.sync`) in a batch is released once the batch's other items are
  evaluated and the dirty rule states committed; marked failed if that batch met an error.
- Evaluation hands each message to the pure rule core (`alerts.core.engine`) with the device's
  context, state and community settings; a fire alarm signal's `Linkage` is fanned out to the
  building's devices (`engine.fire_linkage`), whose obligations become state even when nothing is
  emitted yet.
- The engine clock (`now`): wall time, or with `clock="event"` the event-time watermark — the newest
  device time seen that is not more than `event_clock_max_lead_s` ahead of the watermark or the
  wall clock (a device clock far ahead must not fire everyone's timers). A message stamped with its
  receipt time (its own was out of window) does not move it.
- Timers: after each message or tick the device's next due time (`engine.next_due`) is offered to
  the heap (timers.py), so a tick runs the due devices only.
- Once persistence gave up (stopping with the database down) batches are counted as dropped, not
  evaluated: their stored copies are replayed on the next start.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime

from alerts.config import AlertSettings
from alerts.core import clock, engine
from alerts.core.implausible import out_of_range
from alerts.core.model import Admit, DeviceContext, DeviceState, Linkage, Output
from alerts.metrics import AlertMetrics
from alerts.service.contexts import Contexts
from alerts.service.events import EngineStats
from alerts.service.outputs import Work
from alerts.service.persistence import Persistence
from alerts.service.recovery import replay
from alerts.service.sink import Barrier, Intake, Item, Rejected
from alerts.service.states import RuleStates
from alerts.service.timers import TimerHeap
from devices.contract import DeadLetterReason
from storage.db import translated
from yiju.errors import YijuError

log = logging.getLogger(__name__)


class Worker:
    def __init__(
        self,
        settings: AlertSettings,
        *,
        intake: Intake,
        contexts: Contexts,
        states: RuleStates,
        store: Persistence,
        stop: threading.Event,
        stats: EngineStats,
        lock: threading.Lock,
        metrics: AlertMetrics,
        wall_clock: Callable[[], float],
        replay: bool = True,
        refresh_contexts: Callable[[], None] = lambda: None,
    ) -> None:
        self._settings = settings
        self._refresh_contexts = refresh_contexts
        self._replay_on_start = replay
        self._intake = intake
        self._contexts = contexts
        self._states = states
        self._store = store
        self._stop = stop
        self._stats = stats
        self._lock = lock
        self._metrics = metrics
        self._wall = wall_clock
        self._watermark = 0.0
        self.timers = TimerHeap()
        self.replayed = threading.Event()

    def now(self) -> float:
        """The engine clock (seconds since the epoch)."""
        if self._settings.clock == "event":
            return self._watermark or self._wall()
        return self._wall()

    def schedule(self, device_id: int) -> None:
        """(Re)compute the device's next tick time; offer it to the heap."""
        ctx = self._contexts.cached(device_id)
        st = self._states.get(device_id)
        if ctx is None or st is None:
            return
        self.timers.offer(device_id, engine.next_due(ctx, st, self._contexts.settings_for(ctx.community_id)))

    # ------------------------------------------------------------------ the loop

    def run(self) -> None:
        try:
            try:
                if self._replay_on_start:
                    self._recover()
            finally:
                self.replayed.set()
            self._loop()
        finally:
            self._finish()

    def _finish(self) -> None:
        """Write the rule state and close the connection, here on the thread that owns it: a stop
        that stopped waiting for this thread must not use the connection beside it (psycopg's
        connections are not for two threads at once; that gave "wrong nesting level" errors)."""
        try:
            if self._store.conn is not None and not self._store.gave_up:
                with translated():
                    self._store.flush_states()
        except YijuError as exc:
            log.error("alert engine: rule state not written at stop (%s); the next start replays", exc)
        finally:
            self._store.close()

    def _recover(self) -> None:
        replay(
            self._store,
            settings=self._settings,
            contexts=self._contexts,
            states=self._states,
            stop=self._stop,
            process=self.process,
            count=self._count_replayed,
        )

    def _loop(self) -> None:
        next_tick = time.monotonic()
        next_flush = time.monotonic() + self._settings.state_flush_s
        next_refresh = time.monotonic() + self._settings.context_refresh_s
        while True:
            batch = self._intake.batch(min(self._settings.tick_s, 0.1))
            barriers = [b for b in batch if isinstance(b, Barrier)]
            items = [m for m in batch if not isinstance(m, Barrier)]
            try:
                with translated():
                    if items:
                        self.process(items)
                    barriers = self._settle(barriers)
                    if time.monotonic() >= next_tick:
                        next_tick = time.monotonic() + self._settings.tick_s
                        self._tick()
                    if time.monotonic() >= next_refresh:
                        next_refresh = time.monotonic() + self._settings.context_refresh_s
                        self._refresh_contexts()
                    if time.monotonic() >= next_flush and not self._store.gave_up:
                        next_flush = time.monotonic() + self._settings.state_flush_s
                        self._store.flush_states()
            except YijuError as exc:  # context lookups and the write-behind flush: retried next turn
                self._stats.errors += 1
                log.error("alert engine: %s", exc)
                self._store.reconnect()
            for b in barriers:  # the batch before them met an error: their callers must not rely on it
                b.failed.set()
                b.done.set()
            if self._intake.empty():
                self._intake.idle.set()
                if self._stop.is_set():
                    return

    def _settle(self, barriers: list[Barrier]) -> list[Barrier]:
        """Commit the rule state of what was evaluated and release `sync()` callers; [] once done."""
        if not barriers or self._store.gave_up:
            return barriers
        self._store.flush_states()
        for b in barriers:
            b.done.set()
        return []

    def _count_replayed(self, n: int) -> None:
        self._stats.replayed += n
        self._metrics.replayed.inc(n)

    def process(self, batch: list[Item]) -> None:
        """Evaluate a batch, then write its outputs (retrying until they are written or we stop)."""
        if self._store.gave_up:
            with self._lock:
                self._stats.dropped += len(batch)
            self._metrics.dropped_on_stop.inc(len(batch))
            return
        work = self._evaluate_batch(batch)
        if work:
            self._store.persist_retrying(work)

    # ------------------------------------------------------------------ evaluation

    def _evaluate_batch(self, batch: Iterable[Item]) -> Work:
        work: Work = []
        max_lead = self._settings.event_clock_max_lead_s
        states, stats, metrics = self._states, self._stats, self._metrics
        for msg in batch:
            ctx = self._contexts.get(msg.device.id, self._store.conn)
            if ctx is None:
                stats.unknown_devices += 1
                continue
            st = states.state(ctx.device_id)
            th = self._contexts.settings_for(ctx.community_id)
            if isinstance(msg, Rejected):
                outputs = self._rejected(ctx, st, msg, th)
                received_at = msg.received_at
            else:
                ts = msg.ts.timestamp()
                if clock.claimed_ts(msg) is not None:
                    pass  # stamped with its receive time (the device's was out of window): not device time
                elif not self._watermark or ts <= self._watermark + max_lead or ts <= self._wall() + max_lead:
                    self._watermark = max(self._watermark, ts)
                outputs = engine.evaluate(ctx, st, msg, th)
                if st.last_admit is Admit.DUPLICATE:
                    stats.duplicates += 1
                    metrics.duplicates.inc()
                elif st.last_admit is Admit.RESTART:
                    stats.counter_restarts += 1
                    metrics.counter_restarts.inc()
                    log.info("device %s restarted its sequence counter at %d", ctx.uid, msg.seq)
                received_at = msg.received_at
                stats.processed += 1
                metrics.evaluated.inc()
            rx = received_at.timestamp()
            st.last_rx = max(st.last_rx, rx)
            states.received(received_at)
            states.dirty.add(ctx.device_id)
            if outputs:
                work.append((ctx, outputs, received_at))
                work.extend(self._fan_out(ctx, outputs, received_at))
            self.schedule(ctx.device_id)
        stats.batches += 1
        return work

    def _rejected(
        self, ctx: DeviceContext, st: DeviceState, msg: Rejected, th: AlertSettings
    ) -> list[Output]:
        if msg.reason is DeadLetterReason.TIMESTAMP_OUT_OF_WINDOW:
            claimed = clock.envelope_ts(msg.payload)
            if claimed is None:
                return []
            return engine.refuse_clock(ctx, st, claimed, msg.received_at.timestamp(), th)
        found = out_of_range(ctx.family, msg.channel, msg.payload)
        if found is None:
            return []
        # the envelope's time if it is plausible, else the receipt time
        ts = found.ts if found.ts is not None else msg.received_at
        if abs((ts - msg.received_at).total_seconds()) > 3 * 86_400:
            ts = msg.received_at
        outputs = engine.reject(ctx, st, ts.timestamp(), th, seq=found.seq, detail=found.detail)
        if outputs:
            self._stats.implausible += 1
            self._metrics.implausible.inc()
        return outputs

    def _fan_out(self, ctx: DeviceContext, outputs: list[Output], received_at: datetime | None) -> Work:
        """A fire alarm signal: the building's devices, with their states, to the rule core, which
        decides whether the fire is confirmed and who must act (engine.fire_linkage)."""
        extra: Work = []
        for out in outputs:
            if not isinstance(out, Linkage) or out.building_id is None:
                continue
            members = [
                (member, self._states.state(member.device_id))
                for member in self._contexts.building(out.building_id, ctx.community_id)
            ]
            th = self._contexts.settings_for(ctx.community_id)
            for target, produced in engine.fire_linkage(out, members, th):
                extra.append((target, produced, received_at))
            for target, _ in members:  # obligations are state even when nothing is emitted yet
                self._states.dirty.add(target.device_id)
                self.schedule(target.device_id)
        return extra

    def _tick(self) -> None:
        """Run the timers of the devices that are due (heap), not of the whole fleet."""
        now = self.now()
        self._stats.ticks += 1
        work: Work = []
        touched: list[int] = []
        for device_id in self.timers.pop_due(now):
            ctx = self._contexts.cached(device_id)
            st = self._states.get(device_id)
            if ctx is None or st is None:
                continue
            touched.append(device_id)
            outputs = engine.tick(ctx, st, now, self._contexts.settings_for(ctx.community_id))
            if outputs:
                self._states.dirty.add(device_id)
                work.append((ctx, outputs, None))
        for device_id in touched:  # after the loop: a due time not yet passed waits for a later tick
            self.schedule(device_id)
        self._metrics.timers_fired.inc(len(touched))
        self._metrics.timers_pending.set(len(self.timers))
        self._metrics.last_tick.set(time.time())
        if work:
            self._store.persist_retrying(work)
