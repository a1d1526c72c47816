"""The alert engine service: the I/O shell around the pure rule core.

- `submit(message)` implements ingest's `MessageSink`: into a bounded queue. When the queue is full it
  waits (back-pressure: ingest's decoder slows down, the broker holds the rest — at-least-once), and
  only a message arriving while the engine is stopping or not running is counted as dropped.
  `reject(...)` takes ingest's schema refusals of known devices (out-of-range readings → alarm).
- One owned worker thread evaluates messages in arrival order, fans fire linkages out to the
  building's devices, persists alarms / findings / commands in one short transaction per batch
  (retried with back-off until it commits: the evaluated outputs are kept, never lost to a database
  outage), publishes commands through a `CommandPublisher` and then tells subscribers (the internal
  bus: live console, metrics, benchmarks).
- Timers run on the engine clock (`AlertSettings.clock`: wall, or the event-time watermark for
  accelerated simulations). A heap of each device's next due time (`engine.next_due`) makes the
  periodic tick cost the due devices only.
- Rule state is written behind every `state_flush_s`, on stop, and synchronously for the devices
  whose outputs a batch writes (so a written output and its state never disagree). Each full flush
  moves the checkpoint (`alert_checkpoint`): on start, the stored messages received after it are
  replayed through the same path (crash recovery, storage/replay.py).
"""

from __future__ import annotations

import heapq
import logging
import math
import queue
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import psycopg
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from alerts.config import AlertSettings, DeviceParams
from alerts.core import clock, engine
from alerts.core.implausible import out_of_range
from alerts.core.model import (
    Admit,
    ClearAlarm,
    DeviceContext,
    DeviceState,
    Escalate,
    Finding,
    Linkage,
    Output,
    RaiseAlarm,
    SendCommand,
)
from alerts.metrics import AlertMetrics, alert_metrics
from devices.catalog import accept
from devices.contract import Channel, DeadLetterReason, Decoded, DeviceRef, Family
from storage import alarms, dead_letters, findings, replay, rule_state
from storage import commands as command_store
from storage.db import connect
from yiju.errors import YijuError

log = logging.getLogger(__name__)
COMMAND_NAMESPACE = uuid.UUID("5d0f3c52-7a52-4a8e-8f38-3c3f1e0b6a11")
BATCH_MAX = 500
SUBMIT_WAIT_S = 0.2  # back-pressure: re-check for stop this often while the queue is full
ENGINE_NAME = "engine"  # the checkpoint row (one engine per database today)
_DB_ERRORS = (YijuError, psycopg.Error)
# Errors that the same outputs will meet again however often they are retried (a value the schema
# refuses): retrying them as if the database were down would stall the engine for every device.
_REFUSED = (psycopg.errors.IntegrityError, psycopg.errors.DataError)
REFUSED_PAYLOAD_BYTES = 8192  # the refused outputs, as text, kept in the dead letter


class CommandPublisher(Protocol):
    """Sends a recorded command to a device (implemented by the owner of the MQTT connection)."""

    def publish_command(
        self,
        *,
        community: str,
        device: str,
        command_id: uuid.UUID,
        name: str,
        params: dict[str, Any],
        ts: datetime,
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class EngineEvent:
    """What subscribers of the internal bus receive after a batch is committed."""

    kind: str  # "alarm" | "finding" | "command"
    device_id: int
    community_id: int
    payload: Any  # alarms.AlarmChange | findings.FindingRow | command dict
    received_at: datetime | None  # when ingest received the message that caused it (latency)


Subscriber = Callable[[EngineEvent], None]


@dataclass(frozen=True, slots=True)
class _Rejected:
    """A refusal handed over by ingest (schema violation of a known device)."""

    device: DeviceRef
    channel: Channel
    received_at: datetime
    payload: bytes
    reason: str = "schema_violation"  # or "timestamp_out_of_window"


_Item = Decoded | _Rejected
_Work = list[tuple[DeviceContext, list[Output], datetime | None]]


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
    persist_retries: int = 0
    unwritten: int = 0  # outputs given up at stop with the database down
    refused: int = 0  # outputs the database refuses for their content: dead-lettered, never retried
    replayed: int = 0
    implausible: int = 0
    backpressure_waits: int = 0


class AlertService:
    def __init__(
        self,
        database_url: str,
        settings: AlertSettings,
        *,
        publisher: CommandPublisher | None = None,
        wall_clock: Callable[[], float] = time.time,
        metrics: AlertMetrics | None = None,
    ) -> None:
        self._url = database_url
        self._settings = settings
        self._publisher = publisher
        self._wall = wall_clock
        self._queue: queue.Queue[_Item] = queue.Queue(settings.queue_size)
        self._stop = threading.Event()
        self._running = False
        self._thread: threading.Thread | None = None
        self._subscribers: list[Subscriber] = []
        self._lock = threading.Lock()
        self.stats = EngineStats()
        # the process's metric set (yiju.metrics); a private, unexposed one for tests and benchmarks
        self.metrics: AlertMetrics = metrics or alert_metrics(CollectorRegistry())
        self.metrics.queue_capacity.set(settings.queue_size)
        # owned by the worker thread
        self._conn: psycopg.Connection[Any] | None = None
        self._ctx: dict[int, DeviceContext] = {}
        self._codes: dict[int, str] = {}  # community id → code (for command topics)
        self._by_building: dict[int, list[int]] = defaultdict(list)
        self._states: dict[int, DeviceState] = {}
        self._thresholds: dict[int, AlertSettings] = {}
        self._dirty: set[int] = set()
        self._tainted: set[int] = set()  # in-memory state ahead of outputs that could not be written
        self._gave_up = False  # stopping with the database down: no more write attempts
        self._watermark = 0.0
        self._rx_mark: datetime | None = None  # newest receipt time evaluated (the next checkpoint)
        self._heap: list[tuple[float, int]] = []  # (engine time due, device id)
        self._queued: dict[int, float] = {}  # device id → its live heap entry
        self._idle = threading.Event()
        self._replayed = threading.Event()

    # ------------------------------------------------------------------ lifecycle and MessageSink

    def subscribe(self, callback: Subscriber) -> None:
        self._subscribers.append(callback)

    def start(self) -> None:
        if self._thread is not None:
            return
        self._conn = connect(self._url)
        self._load()
        self._stop.clear()
        self._gave_up = False
        self._running = True
        self._thread = threading.Thread(target=self._run, name="alert-engine", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Finish the queued messages, flush the rule state, close the connection. With the database
        down, outputs not written by then are logged and counted (`unwritten`), and the checkpoint
        stays where it was, so the next start replays them from the stored messages."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout_s)
        self._running = False
        self._thread = None
        if self._conn is not None:
            try:
                if not self._gave_up:
                    self._flush_states()
            except _DB_ERRORS as exc:
                log.error("alert engine: rule state not written at stop (%s); the next start replays", exc)
            finally:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> AlertService:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def submit(self, message: Decoded) -> None:
        """MessageSink: waits while the queue is full (back-pressure), returns at once otherwise."""
        self._put(message)

    def reject(
        self,
        device: DeviceRef,
        *,
        channel: Channel,
        received_at: datetime,
        reason: str,
        detail: str,
        payload: bytes,
    ) -> None:
        """MessageSink (optional): ingest refused a known device's telemetry. A schema violation may be
        a reading out of the physical range (then: sensor_implausible); a timestamp outside ingest's
        window is a wrong clock (clock_skew)."""
        if reason in ("schema_violation", "timestamp_out_of_window") and channel is Channel.TELEMETRY:
            self._put(_Rejected(device, channel, received_at, payload, reason))

    def _put(self, item: _Item) -> None:
        waited = False
        while self._running and not self._stop.is_set():
            self._idle.clear()
            try:
                self._queue.put(item, timeout=SUBMIT_WAIT_S)
                return
            except queue.Full:
                if not waited:
                    waited = True
                    with self._lock:
                        self.stats.backpressure_waits += 1
                    self.metrics.backpressure_waits.inc()
        # not running, or stopping: nobody would evaluate it (the stored copy is replayed on start)
        with self._lock:
            self.stats.dropped += 1
            n = self.stats.dropped
        self.metrics.dropped_on_stop.inc()
        if n == 1 or n % 10_000 == 0:
            log.warning("alert engine not running: %d message(s) not evaluated (replayed on start)", n)

    def wait_idle(self, timeout_s: float = 10.0) -> bool:
        """Block until every submitted message is evaluated and persisted (tests, benchmarks)."""
        deadline = time.monotonic() + timeout_s
        if not self._replayed.wait(timeout_s):
            return False
        while time.monotonic() < deadline:
            if self._queue.empty() and self._idle.wait(0.02) and self._queue.empty():
                return True
        return False

    def now(self) -> float:
        """The engine clock (seconds since the epoch)."""
        if self._settings.clock == "event":
            return self._watermark or self._wall()
        return self._wall()

    # ------------------------------------------------------------------ loading

    def _load(self) -> None:
        assert self._conn is not None
        with self._conn.transaction():
            contexts = rule_state.load_contexts(self._conn)
            overrides = rule_state.community_overrides(self._conn)
            stored = rule_state.load_states(self._conn)
        for row in contexts:
            self._add_context(row)
        for community_id, override in overrides.items():
            self._thresholds[community_id] = self._settings.with_overrides(override)
        for device_id, doc in stored.items():
            self._states[device_id] = DeviceState.from_json(doc)
            self._schedule(device_id)

    def _add_context(self, row: rule_state.DeviceContextRow) -> DeviceContext:
        params, problems = DeviceParams.from_metadata(row.metadata)
        if problems:  # the rules fall back to the community's settings for these
            log.warning("device %s: rule parameters in metadata refused: %s", row.uid, "; ".join(problems))
        ctx = DeviceContext(
            device_id=row.device_id,
            uid=row.uid,
            community_id=row.community_id,
            family=Family(row.family),
            building_id=row.building_id,
            location_id=row.location_id,
            evacuation_route=row.evacuation_route,
            timezone=row.timezone,
            latitude=row.latitude,
            longitude=row.longitude,
            floors=params.floors or row.building_floors,
            rated_speed_mps=params.rated_speed_mps,
            held_open_s=params.held_open_s,
        )
        if row.device_id not in self._ctx and row.building_id is not None:
            self._by_building[row.building_id].append(row.device_id)
        self._ctx[row.device_id] = ctx
        self._codes[row.community_id] = row.community_code
        return ctx

    def _context(self, device_id: int) -> DeviceContext | None:
        ctx = self._ctx.get(device_id)
        if ctx is None and self._conn is not None:
            with self._conn.transaction():
                rows = rule_state.load_contexts(self._conn, [device_id])
            if rows:
                ctx = self._add_context(rows[0])
        return ctx

    def _th(self, community_id: int) -> AlertSettings:
        return self._thresholds.get(community_id, self._settings)

    def _state(self, device_id: int) -> DeviceState:
        st = self._states.get(device_id)
        if st is None:
            st = self._states[device_id] = DeviceState()
        return st

    def _schedule(self, device_id: int) -> None:
        """(Re)compute the device's next tick time; push it if earlier than its live heap entry."""
        ctx = self._ctx.get(device_id)
        st = self._states.get(device_id)
        if ctx is None or st is None:
            return
        due = engine.next_due(ctx, st, self._th(ctx.community_id))
        if due == math.inf:
            return
        queued = self._queued.get(device_id)
        if queued is None or due < queued:
            self._queued[device_id] = due
            heapq.heappush(self._heap, (due, device_id))

    # ------------------------------------------------------------------ the worker

    def _run(self) -> None:
        try:
            self._replay()
        finally:
            self._replayed.set()
        next_tick = time.monotonic()
        next_flush = time.monotonic() + self._settings.state_flush_s
        while True:
            try:
                first: _Item | None = self._queue.get(timeout=min(self._settings.tick_s, 0.1))
            except queue.Empty:
                first = None
            batch = [first] if first is not None else []
            while len(batch) < BATCH_MAX:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self.metrics.queue_depth.set(self._queue.qsize())
            try:
                if batch:
                    self._process(batch)
                if time.monotonic() >= next_tick:
                    next_tick = time.monotonic() + self._settings.tick_s
                    self._tick()
                if time.monotonic() >= next_flush and not self._gave_up:
                    next_flush = time.monotonic() + self._settings.state_flush_s
                    self._flush_states()
            except _DB_ERRORS as exc:  # context lookups and the write-behind flush: retried next turn
                self.stats.errors += 1
                log.error("alert engine: %s", exc)
                self._reconnect()
            if self._queue.empty():
                self._idle.set()
                if self._stop.is_set():
                    return

    def _reconnect(self) -> bool:
        try:
            if self._conn is not None:
                self._conn.close()
            self._conn = connect(self._url, timeout_s=2.0)
            return True
        except YijuError as exc:
            log.warning("alert engine cannot reconnect: %s", exc)
            return False

    def _process(self, batch: list[_Item]) -> None:
        """Evaluate a batch, then write its outputs (retrying until they are written or we stop)."""
        if self._gave_up:
            with self._lock:
                self.stats.dropped += len(batch)
            self.metrics.dropped_on_stop.inc(len(batch))
            return
        work = self._evaluate_batch(batch)
        if work:
            self._persist_retrying(work)

    def _evaluate_batch(self, batch: Iterable[_Item]) -> _Work:
        work: _Work = []
        max_lead = self._settings.event_clock_max_lead_s
        for msg in batch:
            ctx = self._context(msg.device.id)
            if ctx is None:
                self.stats.unknown_devices += 1
                continue
            st = self._state(ctx.device_id)
            th = self._th(ctx.community_id)
            if isinstance(msg, _Rejected):
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
                    self.stats.duplicates += 1
                    self.metrics.duplicates.inc()
                elif st.last_admit is Admit.RESTART:
                    self.stats.counter_restarts += 1
                    self.metrics.counter_restarts.inc()
                    log.info("device %s restarted its sequence counter at %d", ctx.uid, msg.seq)
                received_at = msg.received_at
                self.stats.processed += 1
                self.metrics.evaluated.inc()
            rx = received_at.timestamp()
            st.last_rx = max(st.last_rx, rx)
            if self._rx_mark is None or received_at > self._rx_mark:
                self._rx_mark = received_at
            self._dirty.add(ctx.device_id)
            if outputs:
                work.append((ctx, outputs, received_at))
                work.extend(self._fan_out(ctx, outputs, received_at))
            self._schedule(ctx.device_id)
        self.stats.batches += 1
        return work

    def _rejected(
        self, ctx: DeviceContext, st: DeviceState, msg: _Rejected, th: AlertSettings
    ) -> list[Output]:
        if msg.reason == "timestamp_out_of_window":
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
            self.stats.implausible += 1
            self.metrics.implausible.inc()
        return outputs

    def _fan_out(self, ctx: DeviceContext, outputs: list[Output], received_at: datetime | None) -> _Work:
        """A fire alarm signal: the building's devices, with their states, to the rule core, which
        decides whether the fire is confirmed and who must act (engine.fire_linkage)."""
        extra: _Work = []
        for out in outputs:
            if not isinstance(out, Linkage) or out.building_id is None:
                continue
            members = [
                (self._ctx[device_id], self._state(device_id))
                for device_id in self._by_building.get(out.building_id, [])
                if self._ctx[device_id].community_id == ctx.community_id
            ]
            for target, produced in engine.fire_linkage(out, members, self._th(ctx.community_id)):
                extra.append((target, produced, received_at))
            for target, _ in members:  # obligations are state even when nothing is emitted yet
                self._dirty.add(target.device_id)
                self._schedule(target.device_id)
        return extra

    def _tick(self) -> None:
        """Run the timers of the devices that are due (heap), not of the whole fleet."""
        now = self.now()
        self.stats.ticks += 1
        work: _Work = []
        touched: list[int] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            due, device_id = heapq.heappop(heap)
            if self._queued.get(device_id) != due:
                continue  # stale: superseded by an earlier entry
            del self._queued[device_id]
            ctx = self._ctx.get(device_id)
            st = self._states.get(device_id)
            if ctx is None or st is None:
                continue
            touched.append(device_id)
            outputs = engine.tick(ctx, st, now, self._th(ctx.community_id))
            if outputs:
                self._dirty.add(device_id)
                work.append((ctx, outputs, None))
        for device_id in touched:  # after the loop: a due time not yet passed waits for a later tick
            self._schedule(device_id)
        self.metrics.timers_fired.inc(len(touched))
        self.metrics.timers_pending.set(len(self._queued))
        self.metrics.last_tick.set(time.time())
        if work:
            self._persist_retrying(work)

    def _flush_states(self) -> None:
        """Write the dirty rule states and move the checkpoint, in one transaction."""
        if self._conn is None or (not self._dirty and self._rx_mark is None):
            return
        rows = [
            (d, self._states[d].to_json())
            for d in self._dirty
            if d in self._states and d not in self._tainted
        ]
        mark = self._rx_mark
        with self._conn.transaction():
            rule_state.save_states(self._conn, rows)
            if mark is not None and not self._tainted:
                rule_state.save_checkpoint(self._conn, ENGINE_NAME, mark)
        self._dirty.clear()

    # ------------------------------------------------------------------ crash recovery

    def _replay(self) -> None:
        """Evaluate again the stored messages received after the checkpoint (what a crash lost)."""
        backoff = 0.2
        while not self._stop.is_set():
            try:
                self._replay_once()
                return
            except _DB_ERRORS as exc:
                log.warning("alert engine replay failed (%s); retrying", exc)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self._settings.persist_retry_max_s)
                self._reconnect()

    def _replay_once(self) -> None:
        assert self._conn is not None
        with self._conn.transaction():
            since = rule_state.load_checkpoint(self._conn, ENGINE_NAME)
            if since is None:  # first start: everything received from now on is ours
                started = datetime.now(UTC)
                rule_state.save_checkpoint(self._conn, ENGINE_NAME, started)
                return
        s = self._settings
        start = since - timedelta(seconds=s.replay_slack_s)
        reader = connect(self._url, autocommit=True)
        n = 0
        try:
            batch: list[_Item] = []
            for row in replay.received_since(
                reader, start, ts_lookback=timedelta(seconds=s.replay_ts_lookback_s)
            ):
                msg = self._stored_to_decoded(row)
                if msg is None:
                    continue
                n += 1
                batch.append(msg)
                if len(batch) >= BATCH_MAX:
                    self._process(batch)
                    batch = []
            if batch:
                self._process(batch)
        finally:
            reader.close()
        self.stats.replayed += n
        self.metrics.replayed.inc(n)
        if n:
            log.info("alert engine replayed %d stored message(s) received since %s", n, start.isoformat())
            self._flush_states()

    def _stored_to_decoded(self, row: replay.StoredMessage) -> Decoded | None:
        ctx = self._context(row.device_id)
        if ctx is None:
            return None
        st = self._states.get(row.device_id)
        if st is not None and row.received_at.timestamp() <= st.last_rx:
            return None  # its state already includes it (written with its outputs)
        channel = {
            "telemetry": Channel.TELEMETRY,
            "status": Channel.STATUS,
            "cmd_ack": Channel.COMMAND_ACK,
        }.get(row.kind, Channel.EVENT)
        try:
            body: Any = accept(ctx.family, channel, row.payload)  # as ingest accepted it
        except (ValidationError, ValueError) as exc:
            log.warning("replay: stored %s of device %d does not decode: %s", row.kind, row.device_id, exc)
            return None
        ref = DeviceRef(
            ctx.device_id, ctx.uid, self._codes.get(ctx.community_id, ""), ctx.community_id, ctx.family
        )
        return Decoded(ref, channel, row.ts, row.seq, row.received_at, body, row.payload)

    # ------------------------------------------------------------------ persistence

    def _persist_retrying(self, work: _Work) -> None:
        """Write the outputs until they commit; reconnect with back-off meanwhile. Only a stop while
        the database is down ends the retries: then the outputs are logged and counted as unwritten."""
        backoff = 0.1
        while True:
            try:
                t0 = time.perf_counter()
                self._persist(work)
                self.metrics.persist_seconds.observe(time.perf_counter() - t0)
                return
            except _REFUSED as exc:
                self._refused(work, exc)
                return
            except _DB_ERRORS as exc:
                self.stats.persist_retries += 1
                self.metrics.persist_retries.inc()
                if self.stats.persist_retries == 1 or backoff >= self._settings.persist_retry_max_s:
                    log.warning("alert engine: outputs not written (%s); retrying", exc)
            if self._stop.is_set():
                self._give_up(work)
                return
            self._stop.wait(backoff)
            backoff = min(backoff * 2, self._settings.persist_retry_max_s)
            self._reconnect()

    def _refused(self, work: _Work, exc: psycopg.Error) -> None:
        """The database refused a batch for its content. Write each device's outputs on their own, so
        that one bad output cannot hold back the alarms of every other device; the one that is refused
        alone is recorded as a dead letter (reason engine_output_refused) with the error, logged and
        counted — never retried forever, never dropped silently."""
        if len(work) > 1:
            for item in work:
                self._persist_retrying([item])
            return
        ((ctx, outputs, received_at),) = work
        n = len([o for o in outputs if not isinstance(o, Linkage)])
        self.stats.refused += n
        self.metrics.outputs_refused.inc(n)
        detail = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        log.error("alert engine: %d output(s) of %s refused by the database (%s)", n, ctx.uid, detail)
        text = repr(outputs).encode()
        row = dead_letters.DeadLetterRow(
            received_at=received_at or datetime.now(UTC),  # a timer's outputs have no message
            topic=f"engine/{ctx.uid}",
            payload=text[:REFUSED_PAYLOAD_BYTES],
            payload_size=len(text),
            reason=DeadLetterReason.ENGINE_OUTPUT_REFUSED.value,
            detail=detail,
            device_uid=ctx.uid,
            family=ctx.family.value,
            community_id=ctx.community_id,
            device_id=ctx.device_id,
        )
        try:
            conn = self._conn
            if conn is None or conn.closed:
                raise YijuError("no database connection")
            with conn.transaction():
                dead_letters.insert_dead_letter(conn, row)
        except _DB_ERRORS as write_exc:  # the log line above is then the only record
            log.error("alert engine: the refused outputs could not be recorded either: %s", write_exc)

    def _give_up(self, work: _Work) -> None:
        n = sum(len([o for o in outs if not isinstance(o, Linkage)]) for _, outs, _ in work)
        self._gave_up = True
        self._tainted.update(ctx.device_id for ctx, _, _ in work)
        self.stats.unwritten += n
        self.metrics.unwritten_on_stop.inc(n)
        log.error(
            "alert engine stopping with the database down: %d output(s) of %d device(s) not written; "
            "the checkpoint is not moved, so the next start replays their messages",
            n,
            len(work),
        )

    def _persist(self, work: _Work) -> None:
        """Write a batch's outputs and the state of the devices concerned in one transaction; publish
        commands and tell subscribers after it."""
        conn = self._conn
        if conn is None or conn.closed:
            raise YijuError("no database connection")
        events: list[EngineEvent] = []
        to_publish: list[tuple[int, DeviceContext, SendCommand, uuid.UUID]] = []
        devices = {ctx.device_id for ctx, _, _ in work}
        with conn.transaction():
            for ctx, outputs, received_at in work:
                batch = _DeviceBatch(conn, ctx, received_at)
                for out in outputs:
                    batch.write(out)
                findings.insert_findings(conn, batch.rows)
                events += batch.events
                to_publish += batch.commands
            rule_state.save_states(
                conn, [(d, self._states[d].to_json()) for d in devices if d in self._states]
            )
        self._count(work)
        for command_id, ctx, out, cmd_uuid in to_publish:
            self._publish(command_id, ctx, out, cmd_uuid)
            payload = {"id": command_id, "name": out.name, "params": out.params}
            events.append(EngineEvent("command", ctx.device_id, ctx.community_id, payload, None))
        for event in events:
            for callback in self._subscribers:
                try:
                    callback(event)
                except Exception:  # a subscriber's bug must not stop the engine
                    log.exception("alert engine subscriber failed")

    def _count(self, work: _Work) -> None:
        m = self.metrics
        for _, outputs, _ in work:
            for out in outputs:
                if isinstance(out, RaiseAlarm):
                    m.alarms_raised.inc()
                elif isinstance(out, ClearAlarm):
                    m.alarms_cleared.inc()
                elif isinstance(out, Finding):
                    m.findings.labels("true" if out.compliant else "false").inc()
                elif isinstance(out, SendCommand):
                    m.commands.inc()

    def _publish(self, command_id: int, ctx: DeviceContext, out: SendCommand, cmd_uuid: uuid.UUID) -> None:
        if self._publisher is None or self._conn is None:
            return
        try:
            self._publisher.publish_command(
                community=self._codes.get(ctx.community_id, ""),
                device=ctx.uid,
                command_id=cmd_uuid,
                name=out.name,
                params=out.params,
                ts=out.at,
            )
            status, sent = "sent", True
        except YijuError as exc:
            log.warning("command %s to %s not sent: %s", out.name, ctx.uid, exc)
            status, sent = "failed", False
        try:
            with self._conn.transaction():
                findings.mark_command(self._conn, command_id, status, sent=sent)
        except _DB_ERRORS as exc:  # the command is recorded; only its status is stale
            log.warning("command %d status not recorded: %s", command_id, exc)


def _finding_row(ctx: DeviceContext, f: Finding) -> findings.FindingRow:
    return findings.FindingRow(
        community_id=ctx.community_id,
        device_id=ctx.device_id,
        check_name=f.check.value,
        kind=f.kind,
        compliant=f.compliant,
        observed_at=f.observed_at,
        trigger_at=f.trigger_at,
        deadline_s=f.deadline_s,
        measured_s=f.measured_s,
        channel=f.channel,
        details=f.details,
        dedup_key=f.dedup_key,
    )


class _DeviceBatch:
    """The storage writes of one device's outputs, inside the batch transaction."""

    def __init__(
        self, conn: psycopg.Connection[Any], ctx: DeviceContext, received_at: datetime | None
    ) -> None:
        self.conn, self.ctx, self.received_at = conn, ctx, received_at
        self.alarm_ids: dict[str, int] = {}
        self.rows: list[findings.FindingRow] = []
        self.events: list[EngineEvent] = []
        self.commands: list[tuple[int, DeviceContext, SendCommand, uuid.UUID]] = []

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
                severity=out.severity.value,
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
            row = _finding_row(ctx, out)
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
        command_id = findings.insert_command(
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
