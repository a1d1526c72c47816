"""The alert engine service: the I/O shell around the pure rule core.

- `submit(message)` implements ingest's `MessageSink` (structurally): non-blocking, into a bounded
  queue; a full queue drops the hand-off only (the message is still stored by ingest) and counts it.
- One owned worker thread evaluates messages in arrival order, fans fire linkages out to the
  building's devices, persists alarms / findings / commands in one short transaction per batch,
  publishes commands through a `CommandPublisher` (the composition root wires ingest's MQTT adapter)
  and then tells subscribers (the internal bus: live console, metrics, benchmarks).
- A periodic tick evaluates timers on the engine clock (`AlertSettings.clock`): the wall clock, or
  the event-time watermark (newest device time seen) for accelerated simulations.
- Rule state is written behind every `state_flush_s` and on stop; loaded on start.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import psycopg

from alerts.config import AlertSettings
from alerts.core import engine
from alerts.core.model import (
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
from devices.contract import Decoded, Family
from storage import alarms, findings, rule_state
from storage.db import connect
from yiju.errors import YijuError

log = logging.getLogger(__name__)
COMMAND_NAMESPACE = uuid.UUID("5d0f3c52-7a52-4a8e-8f38-3c3f1e0b6a11")
BATCH_MAX = 500


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


@dataclass
class EngineStats:
    processed: int = 0
    duplicates: int = 0
    dropped: int = 0
    errors: int = 0
    unknown_devices: int = 0
    batches: int = 0


class AlertService:
    def __init__(
        self,
        database_url: str,
        settings: AlertSettings,
        *,
        publisher: CommandPublisher | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._url = database_url
        self._settings = settings
        self._publisher = publisher
        self._wall = wall_clock
        self._queue: queue.Queue[Decoded] = queue.Queue(settings.queue_size)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._subscribers: list[Subscriber] = []
        self._lock = threading.Lock()
        self.stats = EngineStats()
        # owned by the worker thread
        self._conn: psycopg.Connection[Any] | None = None
        self._ctx: dict[int, DeviceContext] = {}
        self._codes: dict[int, str] = {}  # community id → code (for command topics)
        self._by_building: dict[int, list[int]] = defaultdict(list)
        self._states: dict[int, DeviceState] = {}
        self._thresholds: dict[int, AlertSettings] = {}
        self._dirty: set[int] = set()
        self._watermark = 0.0
        self._idle = threading.Event()

    # ------------------------------------------------------------------ lifecycle and MessageSink

    def subscribe(self, callback: Subscriber) -> None:
        self._subscribers.append(callback)

    def start(self) -> None:
        if self._thread is not None:
            return
        self._conn = connect(self._url)
        self._load()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="alert-engine", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Finish the queued messages, flush the rule state, close the connection."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout_s)
        self._thread = None
        if self._conn is not None:
            try:
                self._flush_states()
            finally:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> AlertService:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def submit(self, message: Decoded) -> None:
        self._idle.clear()
        try:
            self._queue.put_nowait(message)
        except queue.Full:
            with self._lock:
                self.stats.dropped += 1
                if self.stats.dropped == 1 or self.stats.dropped % 10_000 == 0:
                    log.warning("alert engine queue full: %d messages not evaluated", self.stats.dropped)

    def wait_idle(self, timeout_s: float = 10.0) -> bool:
        """Block until every submitted message is evaluated and persisted (tests, benchmarks)."""
        deadline = time.monotonic() + timeout_s
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

    def _add_context(self, row: rule_state.DeviceContextRow) -> DeviceContext:
        ctx = DeviceContext(
            device_id=row.device_id,
            uid=row.uid,
            community_id=row.community_id,
            family=Family(row.family),
            building_id=row.building_id,
            location_id=row.location_id,
            evacuation_route=row.evacuation_route,
            timezone=row.timezone,
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

    # ------------------------------------------------------------------ the worker

    def _run(self) -> None:
        next_tick = time.monotonic()
        next_flush = time.monotonic() + self._settings.state_flush_s
        while True:
            try:
                first = self._queue.get(timeout=min(self._settings.tick_s, 0.1))
            except queue.Empty:
                first = None
            batch = [first] if first is not None else []
            while len(batch) < BATCH_MAX:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                if batch:
                    self._evaluate_batch(batch)
                if time.monotonic() >= next_tick:
                    next_tick = time.monotonic() + self._settings.tick_s
                    self._tick()
                if time.monotonic() >= next_flush:
                    next_flush = time.monotonic() + self._settings.state_flush_s
                    self._flush_states()
            except (YijuError, psycopg.Error) as exc:
                self.stats.errors += 1
                log.error("alert engine batch failed: %s", exc)
                self._reconnect()
            if self._queue.empty():
                self._idle.set()
                if self._stop.is_set():
                    return

    def _reconnect(self) -> None:
        try:
            if self._conn is not None:
                self._conn.close()
            self._conn = connect(self._url)
        except YijuError as exc:
            log.error("alert engine cannot reconnect: %s", exc)
            time.sleep(1.0)

    def _evaluate_batch(self, batch: list[Decoded]) -> None:
        work: list[tuple[DeviceContext, list[Output], datetime | None]] = []
        max_lead = self._settings.event_clock_max_lead_s
        for msg in batch:
            ctx = self._context(msg.device.id)
            if ctx is None:
                self.stats.unknown_devices += 1
                continue
            ts = msg.ts.timestamp()
            if not self._watermark or ts <= self._watermark + max_lead or ts <= self._wall() + max_lead:
                self._watermark = max(self._watermark, ts)
            st = self._state(ctx.device_id)
            before = st.max_seq, st.seq_mask
            outputs = engine.evaluate(ctx, st, msg, self._th(ctx.community_id))
            if (st.max_seq, st.seq_mask) == before:
                self.stats.duplicates += 1
            self._dirty.add(ctx.device_id)
            self.stats.processed += 1
            if outputs:
                work.append((ctx, outputs, msg.received_at))
                work.extend(self._fan_out(ctx, outputs, msg.received_at))
        if work:
            self._persist(work)
        self.stats.batches += 1

    def _fan_out(
        self, ctx: DeviceContext, outputs: list[Output], received_at: datetime | None
    ) -> list[tuple[DeviceContext, list[Output], datetime | None]]:
        extra: list[tuple[DeviceContext, list[Output], datetime | None]] = []
        for out in outputs:
            if not isinstance(out, Linkage) or out.building_id is None:
                continue
            for device_id in self._by_building.get(out.building_id, []):
                target = self._ctx[device_id]
                if target.community_id != ctx.community_id:
                    continue
                st = self._state(device_id)
                produced = engine.start_linkage(target, st, out.kind, out.at, self._th(target.community_id))
                if produced:
                    self._dirty.add(device_id)
                    extra.append((target, produced, received_at))
        return extra

    def _tick(self) -> None:
        now = self.now()
        work: list[tuple[DeviceContext, list[Output], datetime | None]] = []
        for device_id, st in self._states.items():
            if not st.last_ts and not st.marks:
                continue
            ctx = self._ctx.get(device_id)
            if ctx is None:
                continue
            outputs = engine.tick(ctx, st, now, self._th(ctx.community_id))
            if outputs:
                self._dirty.add(device_id)
                work.append((ctx, outputs, None))
        if work:
            self._persist(work)

    def _flush_states(self) -> None:
        if not self._dirty or self._conn is None:
            return
        rows = [(d, self._states[d].to_json()) for d in self._dirty if d in self._states]
        with self._conn.transaction():
            rule_state.save_states(self._conn, rows)
        self._dirty.clear()

    # ------------------------------------------------------------------ persistence

    def _persist(self, work: list[tuple[DeviceContext, list[Output], datetime | None]]) -> None:
        """Write a batch's outputs in one transaction; publish commands and tell subscribers after it."""
        conn = self._conn
        assert conn is not None
        events: list[EngineEvent] = []
        to_publish: list[tuple[int, DeviceContext, SendCommand, uuid.UUID]] = []
        with conn.transaction():
            for ctx, outputs, received_at in work:
                batch = _DeviceBatch(conn, ctx, received_at)
                for out in outputs:
                    batch.write(out)
                findings.insert_findings(conn, batch.rows)
                events += batch.events
                to_publish += batch.commands
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
        with self._conn.transaction():
            findings.mark_command(self._conn, command_id, status, sent=sent)


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
            requested_by="engine",
            requested_at=out.at,
            alarm_id=alarm_id,
            details={"reason": out.reason.value},
        )
        if command_id is not None:
            self.commands.append((command_id, ctx, out, cmd_uuid))
