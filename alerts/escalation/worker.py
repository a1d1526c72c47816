"""The escalation worker: alarms → incidents → outbox → channels, owned by `yiju.runtime.Runtime`.

Threads, all owned and stopped by `stop()`:
- the listener holds `LISTEN yiju_alarm_events` (storage/alarms.py NOTIFYs every transition in the
  transaction that writes it) and wakes the loop;
- the loop reads alarm transitions after its cursor (one transaction with the cursor row locked, so
  each transition is handled once), starts incidents for raised alarms that a policy (or the default
  chain, for critical alarms) escalates, stops incidents on acknowledge/clear, materialises due chain
  steps into outbox rows, recovers deliveries of dead workers, and claims due rows;
- a bounded pool of sender threads runs the channels (a call blocks for its duration) and records
  each outcome; an acknowledging outcome (DTMF "1") acknowledges the incident and its alarms.

Several workers (processes) may run against one database: incidents and outbox rows are taken with
`FOR UPDATE SKIP LOCKED`, and outcomes are fenced by the worker id (storage/escalation.py).
"""

from __future__ import annotations

import logging
import socket
import threading
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from prometheus_client import CollectorRegistry

from alerts.escalation import core
from alerts.escalation.channels.base import Attempt, Channel, Outcome
from alerts.escalation.config import LinkageSettings
from alerts.escalation.metrics import LinkageMetrics
from storage import alarms as alarm_store
from storage import escalation as store
from storage.db import Connection, close_quietly, connect, translated
from storage.notify import listen_in_thread
from yiju.errors import YijuError

log = logging.getLogger(__name__)
TRANSITION_BATCH = 500
DUE_BATCH = 200
RECOVER_EVERY_S = 5.0


def _local(at: datetime, tz: str) -> datetime:
    try:
        return at.astimezone(ZoneInfo(tz))
    except (KeyError, ValueError):
        return at.astimezone(ZoneInfo("Asia/Shanghai"))


def _summary(a: store.AlarmContext) -> str:
    port = (a.details or {}).get("port")
    where = core.place_zh(
        core.Place(
            building=a.building_name,
            location=a.location_name,
            kind=a.location_kind,
            unit=a.unit,
            floor=a.floor,
            room=a.room,
            post=a.post,
            port=port if type(port) is int else None,
            charger=a.family == "ebike_charger",
        )
    )
    return where or a.device_uid


def start_incident_for_alarm(
    conn: Connection,
    alarm_id: int,
    settings: LinkageSettings,
    *,
    now: datetime,
    actor: str = "linkage",
) -> store.IncidentRow | None:
    """Start (or link into a group's) incident for an alarm, if a policy — or, for a critical alarm,
    the default chain — escalates it. Call inside a transaction."""
    if store.has_incident(conn, alarm_id):
        return None
    a = store.alarm_context(conn, alarm_id)
    if a is None or a.status != "active" or a.acknowledged:
        return None
    key = core.group_key(a.type, a.building_id, a.device_id, a.details or {})
    if key is not None:
        group = store.open_incident_of_group(conn, key)
        if group is not None:
            store.link_alarm(conn, group.id, alarm_id, a.type)
            return None
    local = _local(now, a.timezone)
    policies = [
        core.Policy(
            id=p.id,
            chain_id=p.chain_id,
            alarm_types=frozenset(p.alarm_types),
            severities=frozenset(p.severities),
            quiet_start_min=p.quiet_start_min,
            quiet_end_min=p.quiet_end_min,
            priority=p.priority,
        )
        for p in store.list_policies(conn, [a.community_id], enabled_only=True)
    ]
    policy = core.select_policy(policies, a.type, a.severity, local.hour * 60 + local.minute)
    chain_json: dict[str, Any] | None = None
    chain_id: int | None = None
    if policy is not None:
        row = store.get_chain(conn, policy.chain_id)
        if row is not None:
            chain_json, chain_id = row.definition, row.id
    if chain_json is None and core.always_escalates(a.type, a.severity):
        chain_json = settings.default_chain
    if chain_json is None:
        return None
    try:
        chain = core.Chain.from_json(chain_json)
    except core.ChainError as exc:
        log.error("alarm %d: chain %s cannot run (%s); using the default chain", alarm_id, chain_id, exc)
        if settings.default_chain is None:
            return None
        chain, chain_id = core.Chain.from_json(settings.default_chain), None
    context = {
        "community": a.community_code,
        "community_name": a.community_name,
        "timezone": a.timezone,
        "building": a.building_name,
        "location": a.location_name,
        "device_uid": a.device_uid,
        "device_id": a.device_id,
    }
    progress = core.start(chain, now.timestamp())
    assert progress.next_at is not None
    incident = store.start_incident(
        conn,
        community_id=a.community_id,
        alarm_id=alarm_id,
        group_key=key,
        drill=False,
        policy_id=policy.id if policy else None,
        chain_id=chain_id,
        chain=chain.to_json(),
        alarm_type=a.type,
        severity=a.severity,
        summary=_summary(a),
        context=context,
        alarm_at=a.first_at if a.first_at <= now else now,
        next_step_at=datetime.fromtimestamp(progress.next_at, UTC),
        actor=actor,
    )
    if incident is None and key is not None:  # another alarm of the group won the race: join it
        group = store.open_incident_of_group(conn, key)
        if group is not None:
            store.link_alarm(conn, group.id, alarm_id, a.type)
    return incident


def start_drill(
    conn: Connection, *, community_id: int, chain_id: int, actor: str, now: datetime
) -> store.IncidentRow:
    """Test-fire a chain without an alarm: an incident marked as a drill everywhere it shows."""
    row = store.get_chain(conn, chain_id)
    if row is None or row.community_id != community_id:
        raise store.LinkageNotFound(f"no chain {chain_id}")
    chain = core.Chain.from_json(row.definition)
    code, tz = store.community_timezone(conn, community_id)
    progress = core.start(chain, now.timestamp())
    assert progress.next_at is not None
    incident = store.start_incident(
        conn,
        community_id=community_id,
        alarm_id=None,
        group_key=None,
        drill=True,
        policy_id=None,
        chain_id=row.id,
        chain=chain.to_json(),
        alarm_type="drill",
        severity="critical",
        summary=f"联动演练：{row.name}",
        context={"community": code, "timezone": tz, "chain": row.name},
        alarm_at=now,
        next_step_at=datetime.fromtimestamp(progress.next_at, UTC),
        actor=actor,
    )
    assert incident is not None  # drills have no alarm and no group: nothing to conflict with
    return incident


class EscalationWorker:
    """See the module docstring. `channels` maps a channel name to its adapter; a delivery on a
    channel that is not configured fails at once with that reason (recorded, never dropped)."""

    def __init__(
        self,
        database_url: str,
        settings: LinkageSettings,
        channels: Mapping[str, Channel],
        *,
        worker_id: str | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        metrics: LinkageMetrics | None = None,
    ) -> None:
        self._url = database_url
        self.settings = settings
        self.channels = dict(channels)
        self.worker_id = worker_id or f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}"
        self._clock = clock
        # the process's metric set (yiju/runtime.py); a private, unexposed one for tests and tools
        self.metrics: LinkageMetrics = metrics or LinkageMetrics.create(CollectorRegistry())
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self._pool: ThreadPoolExecutor | None = None
        self._inflight = 0
        self._inflight_lock = threading.Lock()
        self._conn: Connection | None = None
        self._last_recover = 0.0
        self._local = threading.local()
        self._sender_conns: list[Connection] = []
        self.rounds = 0
        self._idle = threading.Condition()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._stop.clear()
        self._pool = ThreadPoolExecutor(self.settings.senders, thread_name_prefix="linkage-send")
        for name, target in (("linkage-listen", self._listen), ("linkage-loop", self._run)):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop claiming, let deliveries in flight finish (bounded by their channels' timeouts)."""
        self._stop.set()
        self._wake.set()
        for t in self._threads:
            t.join(timeout=timeout_s)
        self._threads.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._close_sender_conns()

    def _close_sender_conns(self) -> None:
        with self._inflight_lock:
            conns, self._sender_conns = self._sender_conns, []
        for conn in conns:
            close_quietly(conn)
        self._local = threading.local()

    def close(self) -> None:
        """Release the database connections of a worker driven with `step()` (never started)."""
        self._drop_conn()
        self._close_sender_conns()

    def __enter__(self) -> EscalationWorker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wake(self) -> None:
        self._wake.set()

    # ------------------------------------------------------------------ threads

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                listen_in_thread(
                    self._url,
                    (alarm_store.NOTIFY_CHANNEL, store.WAKE_CHANNEL),
                    on_connect=self._wake.set,  # anything committed before LISTEN is read by the loop
                    on_notify=self._wake.set,
                    stop=self._stop,
                )
            except YijuError as exc:
                log.warning("linkage listener: %s", exc)
                self._stop.wait(1.0)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                with translated():
                    sleep_s = self.step()
            except YijuError as exc:
                log.warning("linkage worker: %s", exc)
                self._drop_conn()
                sleep_s = 1.0
            except Exception:  # keep escalating whatever one round does
                log.exception("linkage worker round failed")
                self._drop_conn()
                sleep_s = 1.0
            with self._idle:
                self.rounds += 1
                self._idle.notify_all()
            self._wake.wait(sleep_s)
        self._drop_conn()

    def _drop_conn(self) -> None:
        close_quietly(self._conn)
        self._conn = None

    def _db(self) -> Connection:
        if self._conn is None or self._conn.closed:
            self._conn = connect(self._url)
            self._conn.autocommit = True  # each operation opens its own transaction
        return self._conn

    def wait_rounds(self, n: int, timeout_s: float) -> bool:
        """Tests: block until the loop has completed `n` more rounds."""
        with self._idle:
            target = self.rounds + n
            return self._idle.wait_for(lambda: self.rounds >= target, timeout=timeout_s)

    # ------------------------------------------------------------------ one round

    def step(self) -> float:
        """One round; returns how long to sleep before the next (a NOTIFY or a finished send wakes
        it earlier)."""
        conn = self._db()
        now = self._clock()
        if now.timestamp() - self._last_recover >= RECOVER_EVERY_S:
            self._last_recover = now.timestamp()
            resent, interrupted = store.recover_stale(conn, lease_s=self.settings.lease_s, now=now)
            if resent or interrupted:
                log.warning(
                    "linkage: %d delivery(ies) of a lost worker resent, %d interrupted", resent, interrupted
                )
        self._feed(conn, now)
        self._materialise(conn, now)
        self._claim(conn, now)
        with conn.transaction():
            store.exhaust_finished(conn)
        nxt = store.next_due_at(conn)
        if nxt is None:
            return self.settings.poll_s
        return max(0.0, min(self.settings.poll_s, (nxt - self._clock()).total_seconds()))

    def _feed(self, conn: Connection, now: datetime) -> None:
        """Alarm transitions since the cursor → incidents started, acknowledged, cleared."""
        while True:
            with conn.transaction():
                after = store.read_cursor(conn)
                events = store.alarm_transitions_after(conn, after, TRANSITION_BATCH)
                for ev in events:
                    self._on_transition(conn, ev, now)
                if events:
                    store.save_cursor(conn, events[-1].transition.id)
            if len(events) < TRANSITION_BATCH:
                return

    def _on_transition(self, conn: Connection, ev: alarm_store.AlarmEvent, now: datetime) -> None:
        t = ev.transition
        if t.action == "raised":
            incident = start_incident_for_alarm(conn, ev.alarm.id, self.settings, now=now)
            if incident is not None:
                self.metrics.incidents.labels("false").inc()
        elif t.action == "acknowledged":
            for incident_id in store.incidents_of_alarm(conn, ev.alarm.id, primary_only=False):
                store.end_incident(conn, incident_id, "acknowledged", actor=t.actor, detail={"via": "alarm"})
            inc = store.incident_of_alarm(conn, ev.alarm.id)
            if inc is not None:
                self.metrics.ack_s.observe(max(0.0, (t.at - inc.alarm_at).total_seconds()))
        elif t.action == "cleared":
            for incident_id in store.incidents_of_alarm(conn, ev.alarm.id, primary_only=True):
                store.end_incident(conn, incident_id, "cleared", actor=t.actor, detail={"via": "alarm"})

    def _materialise(self, conn: Connection, now: datetime) -> None:
        """Due chain steps of open incidents → outbox rows (each key once)."""
        with conn.transaction():
            for inc in store.due_incidents(conn, now, DUE_BATCH):
                chain = core.Chain.from_json(inc.chain)
                assert inc.next_step_at is not None
                progress = core.Progress(inc.loop, inc.next_step, inc.next_step_at.timestamp())
                due, after = core.advance(chain, progress, now.timestamp())
                people, endpoints = self._targets(conn, inc.community_id, now)
                for loop, step_index, _ in due:
                    step = chain.steps[step_index]
                    resolved = core.deliveries(step, people, endpoints)
                    rows = [
                        store.NewDelivery(
                            idem_key=core.idempotency_key(inc.id, loop, step_index, d.target, d.channel),
                            loop=loop,
                            step=step_index,
                            target=d.target,
                            target_name=d.target_name,
                            channel=d.channel,
                            address=d.address,
                            next_at=now,
                        )
                        for d in resolved.deliveries
                    ]
                    created = store.enqueue(conn, inc.id, rows)
                    store.audit(
                        conn,
                        inc.id,
                        "step",
                        {
                            "loop": loop,
                            "step": step_index,
                            "name": step.name,
                            "deliveries": created,
                            "unresolved": resolved.unresolved,
                        },
                    )
                next_at = None if after.next_at is None else datetime.fromtimestamp(after.next_at, UTC)
                store.set_progress(
                    conn, inc.id, loop=after.loop, next_step=after.next_step, next_step_at=next_at
                )

    def _targets(
        self, conn: Connection, community_id: int, now: datetime
    ) -> tuple[dict[int, core.Person], dict[int, core.Endpoint]]:
        _, tz = store.community_timezone(conn, community_id)
        local = _local(now, tz)
        weekday, minute = local.isoweekday(), local.hour * 60 + local.minute
        people: dict[int, core.Person] = {}
        for p in store.people_with_shifts(conn, community_id):
            shifts = [core.Shift(frozenset(s["weekdays"]), s["start_min"], s["end_min"]) for s in p.shifts]
            people[p.id] = core.Person(
                p.id, p.name, p.phone, p.duty_group, core.on_duty(shifts, weekday, minute)
            )
        endpoints = {
            e.id: core.Endpoint(
                e.id, e.name, e.kind, str(e.config.get("url") or e.config.get("address") or "")
            )
            for e in store.enabled_endpoints(conn, community_id)
        }
        return people, endpoints

    def _claim(self, conn: Connection, now: datetime) -> None:
        with self._inflight_lock:
            free = self.settings.senders - self._inflight
        if free <= 0:
            return
        limits = {k: [(float(w), int(n)) for w, n in v] for k, v in self.settings.rate_limits.items()}
        result = store.claim(
            conn,
            worker=self.worker_id,
            now=now,
            limit=free,
            rate_limits=limits,
            rate_limited_until=core.rate_limited_until,
        )
        if result.rate_limited:
            self.metrics.rate_limited.inc(result.rate_limited)
        for c in result.claimed:
            if c.first_for_incident:
                self.metrics.first_attempt_s.observe(max(0.0, (now - c.alarm_at).total_seconds()))
            if c.channel == "console" or self._pool is None:
                self.deliver(c)
            else:
                with self._inflight_lock:
                    self._inflight += 1
                    self.metrics.in_flight.set(self._inflight)
                self._pool.submit(self._deliver_counted, c)

    def _deliver_counted(self, c: store.Claimed) -> None:
        try:
            self.deliver(c)
        except Exception:  # a channel bug: the lease recovers the row; keep the pool alive
            log.exception("linkage delivery %s failed", c.idem_key)
        finally:
            with self._inflight_lock:
                self._inflight -= 1
                self.metrics.in_flight.set(self._inflight)
            self._wake.set()

    # ------------------------------------------------------------------ one delivery

    def _attempt(self, conn: Connection, c: store.Claimed) -> Attempt:
        secret, endpoint = "", {}
        if c.target.startswith("endpoint:"):
            e = store.get_endpoint(conn, int(c.target.split(":", 1)[1]))
            if e is not None:
                secret, endpoint = e.secret, dict(e.config)
        return Attempt(
            idem_key=c.idem_key,
            incident_id=c.incident_id,
            alarm_id=c.alarm_id,
            alarm_type=c.alarm_type,
            severity=c.severity,
            summary=c.summary,
            address=c.address,
            target_name=c.target_name,
            drill=c.drill,
            community=str(c.context.get("community", "")),
            attempt=c.attempts,
            alarm_at=c.alarm_at,
            context=c.context,
            secret=secret,
            endpoint=endpoint,
        )

    def _sender_conn(self) -> Connection:
        """The calling sender thread's own connection (kept between deliveries, closed at stop)."""
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            conn = connect(self._url, autocommit=True)
            self._local.conn = conn
            with self._inflight_lock:
                self._sender_conns.append(conn)
        return conn

    def deliver(self, c: store.Claimed) -> Outcome:
        """Send one claimed delivery and record its outcome. If recording fails (database gone), the
        row stays 'sending' and the lease recovers it (same key: the provider de-duplicates)."""
        conn = self._sender_conn()
        try:
            with translated():
                if c.channel == "console":
                    outcome = Outcome("delivered", "shown in the duty-room console")
                else:
                    channel = self.channels.get(c.channel)
                    attempt = self._attempt(conn, c)
                    if channel is None:
                        outcome = Outcome("failed", f"channel {c.channel} is not configured on this server")
                    else:
                        outcome = channel.send(attempt)
                self._record(conn, c, outcome)
        except YijuError:
            close_quietly(conn)
            raise
        return outcome

    def _record(self, conn: Connection, c: store.Claimed, outcome: Outcome) -> None:
        retry_at = None
        if outcome.retryable:
            delay = core.backoff_s(c.attempts, self.settings.retry_backoff_s)
            if delay is not None:
                retry_at = self._clock() + timedelta(seconds=delay)
        label = outcome.status if retry_at is None else "retry"
        self.metrics.attempts.labels(c.channel, label).inc()
        detail = {
            "detail": outcome.detail,
            **({"dtmf": outcome.dtmf} if outcome.dtmf else {}),
            **outcome.extra,
        }
        with conn.transaction():
            held = store.record_outcome(
                conn,
                c.id,
                worker=self.worker_id,
                status=outcome.status,
                outcome=outcome.detail[:500],
                provider_ref=outcome.provider_ref,
                detail=detail,
                retry_at=retry_at,
            )
            if not held:
                log.warning("delivery %s: outcome not recorded, row taken over after its lease", c.idem_key)
                return
            if c.alarm_id is not None and retry_at is None:
                alarm_store.record_transition(
                    conn,
                    c.alarm_id,
                    action="notified",
                    actor="linkage",
                    details={
                        "incident_id": c.incident_id,
                        "channel": c.channel,
                        "target": c.target_name,
                        "outcome": outcome.status,
                    },
                )
            if outcome.dtmf:
                store.audit(
                    conn, c.incident_id, "dtmf", {"digits": outcome.dtmf, "by": c.target_name}, outbox_id=c.id
                )
            if outcome.status == "acknowledged":
                store.acknowledge_incident(
                    conn, c.incident_id, actor=f"dtmf:{c.target_name}", via=f"{c.channel} DTMF"
                )


__all__ = ["EscalationWorker", "start_drill", "start_incident_for_alarm"]
