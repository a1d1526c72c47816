"""Persistence: the engine's connection, its batch transactions, retries, refusals, state write-behind.

Contract:
- `persist_retrying(work)` writes a batch's outputs and the rule state of the devices concerned in
  one transaction (outputs.py), then publishes the recorded commands and tells subscribers — only
  after the commit. On a database error it reconnects and retries with back-off (up to
  `persist_retry_max_s`) until it commits: evaluated outputs are kept, never lost to an outage.
- Only a stop while the database is down ends the retries (`gave_up`): the outputs are logged and
  counted (`unwritten`), their devices' states are tainted, and the checkpoint stays where it was,
  so the next start replays their messages.
- Outputs the database refuses for their content (`DataRefused`: integrity or data errors, which a
  retry meets again) are written device by device, so one bad output holds back no other device's
  alarms; the one refused alone becomes a dead letter (`engine_output_refused`), logged and counted.
- `flush_states()` writes the dirty rule states and moves the checkpoint in one transaction (the
  write-behind, every `state_flush_s` and at stop).
- A published command is marked `sent` or `failed` (storage.commands.mark_sent); a status that
  cannot be written is logged: the command itself is recorded.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from datetime import UTC, datetime

from alerts.commands import Command, CommandPublisher, send
from alerts.config import AlertSettings
from alerts.core.model import ClearAlarm, DeviceContext, Linkage, RaiseAlarm, SendCommand
from alerts.metrics import AlertMetrics
from alerts.service.contexts import Contexts
from alerts.service.events import EngineEvent, EngineStats, Subscriber
from alerts.service.outputs import DeviceBatch, Recorded, Work
from alerts.service.states import RuleStates
from devices.alarms import Finding
from devices.contract import DeadLetterReason, Refusal
from storage import commands as command_store
from storage import dead_letters, findings, rule_state
from storage.db import Connection, close_quietly, connect, translated
from yiju.errors import DataRefused, YijuError

log = logging.getLogger(__name__)
ENGINE_NAME = "engine"  # the checkpoint row (one engine per database today)
# Storage work here runs inside `storage.db.translated()`, so every database failure arrives as a
# YijuError; `DataRefused` among them is what the same outputs meet again however often they are
# retried (a value the schema refuses): retrying it as if the database were down would stall the
# engine for every device.
REFUSED_PAYLOAD_BYTES = 8192  # the refused outputs, as text, kept in the dead letter


class Persistence:
    def __init__(
        self,
        database_url: str,
        settings: AlertSettings,
        *,
        states: RuleStates,
        contexts: Contexts,
        stop: threading.Event,
        stats: EngineStats,
        metrics: AlertMetrics,
        publisher: CommandPublisher | None,
        subscribers: list[Subscriber],
        name: str = ENGINE_NAME,
    ) -> None:
        self.url = database_url
        self.name = name  # the checkpoint row
        self._settings = settings
        self._states = states
        self._contexts = contexts
        self._stop = stop
        self._stats = stats
        self._metrics = metrics
        self._publisher = publisher
        self._subscribers = subscribers
        self.conn: Connection | None = None
        self.gave_up = False  # stopping with the database down: no more write attempts

    # ------------------------------------------------------------------ the connection

    def open(self) -> None:
        self.conn = connect(self.url)
        self.gave_up = False

    def close(self) -> None:
        close_quietly(self.conn)
        self.conn = None

    def reconnect(self) -> bool:
        try:
            close_quietly(self.conn)
            self.conn = connect(self.url, timeout_s=2.0)
            return True
        except YijuError as exc:
            log.warning("alert engine cannot reconnect: %s", exc)
            return False

    # ------------------------------------------------------------------ rule state write-behind

    def flush_states(self) -> None:
        """Write the dirty rule states and move the checkpoint, in one transaction."""
        states = self._states
        if self.conn is None or (not states.dirty and states.rx_mark is None):
            return
        rows = states.dirty_rows()
        mark = states.rx_mark
        with translated(), self.conn.transaction():
            rule_state.save_states(self.conn, rows)
            if mark is not None and not states.tainted:
                rule_state.save_checkpoint(self.conn, self.name, mark)
        states.dirty.clear()

    # ------------------------------------------------------------------ outputs

    def persist_retrying(self, work: Work) -> None:
        """Write the outputs until they commit; reconnect with back-off meanwhile. Only a stop while
        the database is down ends the retries: then the outputs are logged and counted as unwritten."""
        backoff = 0.1
        while True:
            try:
                t0 = time.perf_counter()
                with translated():
                    self._persist(work)
                self._metrics.persist_seconds.observe(time.perf_counter() - t0)
                return
            except DataRefused as exc:
                self._refused(work, exc)
                return
            except YijuError as exc:
                self._stats.persist_retries += 1
                self._metrics.persist_retries.inc()
                if self._stats.persist_retries == 1 or backoff >= self._settings.persist_retry_max_s:
                    log.warning("alert engine: outputs not written (%s); retrying", exc)
            if self._stop.is_set():
                self._give_up(work)
                return
            self._stop.wait(backoff)
            backoff = min(backoff * 2, self._settings.persist_retry_max_s)
            self.reconnect()

    def _refused(self, work: Work, exc: DataRefused) -> None:
        """The database refused a batch for its content. Write each device's outputs on their own, so
        that one bad output cannot hold back the alarms of every other device; the one that is refused
        alone is recorded as a dead letter (reason engine_output_refused) with the error, logged and
        counted — never retried forever, never dropped silently."""
        if len(work) > 1:
            for item in work:
                self.persist_retrying([item])
            return
        ((ctx, outputs, received_at),) = work
        n = len([o for o in outputs if not isinstance(o, Linkage)])
        self._stats.refused += n
        self._metrics.outputs_refused.inc(n)
        cause = exc.__cause__ or exc  # the database's own error class names the constraint kind
        text_of = str(cause).strip()
        detail = f"{type(cause).__name__}: {text_of.splitlines()[0] if text_of else ''}"
        log.error("alert engine: %d output(s) of %s refused by the database (%s)", n, ctx.uid, detail)
        text = repr(outputs).encode()
        row = dead_letters.DeadLetterRow(
            received_at=received_at or datetime.now(UTC),  # a timer's outputs have no message
            topic=f"engine/{ctx.uid}",
            payload=text[:REFUSED_PAYLOAD_BYTES],
            payload_size=len(text),
            refusal=Refusal(
                DeadLetterReason.ENGINE_OUTPUT_REFUSED,
                detail,
                ctx.uid,
                ctx.family.value,
                device_id=ctx.device_id,
                community_id=ctx.community_id,
            ),
        )
        try:
            conn = self.conn
            if conn is None or conn.closed:
                raise YijuError("no database connection")
            with translated(), conn.transaction():
                dead_letters.insert_dead_letter(conn, row)
        except YijuError as write_exc:  # the log line above is then the only record
            log.error("alert engine: the refused outputs could not be recorded either: %s", write_exc)

    def _give_up(self, work: Work) -> None:
        n = sum(len([o for o in outs if not isinstance(o, Linkage)]) for _, outs, _ in work)
        self.gave_up = True
        self._states.tainted.update(ctx.device_id for ctx, _, _ in work)
        self._stats.unwritten += n
        self._metrics.unwritten_on_stop.inc(n)
        log.error(
            "alert engine stopping with the database down: %d output(s) of %d device(s) not written; "
            "the checkpoint is not moved, so the next start replays their messages",
            n,
            len(work),
        )

    def _persist(self, work: Work) -> None:
        """Write a batch's outputs and the state of the devices concerned in one transaction; publish
        commands and tell subscribers after it."""
        conn = self.conn
        if conn is None or conn.closed:
            raise YijuError("no database connection")
        events: list[EngineEvent] = []
        to_publish: list[Recorded] = []
        devices = {ctx.device_id for ctx, _, _ in work}
        with conn.transaction():
            for ctx, outputs, received_at in work:
                batch = DeviceBatch(conn, ctx, received_at)
                for out in outputs:
                    batch.write(out)
                findings.insert_findings(conn, batch.rows)
                events += batch.events
                to_publish += batch.commands
            rule_state.save_states(conn, self._states.rows(devices))
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

    def _count(self, work: Work) -> None:
        m = self._metrics
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
        if self._publisher is None or self.conn is None:
            return
        command = Command(
            self._contexts.code(ctx.community_id), ctx.uid, cmd_uuid, out.name, out.params, out.at
        )
        sent = send(self._publisher, command)
        try:
            with translated(), self.conn.transaction():
                command_store.mark_sent(self.conn, command_id, ok=sent)
        except YijuError as exc:  # the command is recorded; only its status is stale
            log.warning("command %d status not recorded: %s", command_id, exc)
