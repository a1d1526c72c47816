"""The ingest service: MQTT session → edge validation → hand-off → batched, idempotent writes → acks.

Threads, all owned here and stopped by `stop()`:

    paho network loop (MqttConsumer)  → raw deque (bounded by the MQTT 5 Receive Maximum)
    decoder                            → validates, hands each accepted message to the sink at once,
                                         builds batches (flush on size or age) → write queue (bounded)
    writer                             → commits a batch (retrying with back-off while the database is
                                         away), then acknowledges its messages in receipt order
    registry listener                  → LISTEN yiju_registry: devices registered, changed or
                                         disabled reach the registry cache at their commit
    housekeeping                       → periodic full registry refresh, offline sweep for silent devices

Registry: the cache is loaded whole at start, updated from the registry's change notifications
(storage.registry_events) and reloaded every `registry_refresh_s` as a safety net. A message whose
device the cache does not know is looked up directly before it may be dead-lettered `unknown_device`
(at most `registry_miss_lookups_per_s`): a dead letter must never be the result of Yiju's own lag.

At-least-once: a message is acknowledged only after the batch holding it (its rows, or its dead
letter) is committed. While the database is away nothing is acknowledged, the broker stops sending
once Receive Maximum messages are unacknowledged, and holds the rest in the persistent session.
"""

from __future__ import annotations

import gc
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry

from alerts.config import AlertSettings
from devices.catalog import FAMILIES
from devices.contract import (
    HANDED_OFF,
    Channel,
    DeadLetterReason,
    Decoded,
    Family,
    Refusal,
    subscriptions,
    topic,
)
from ingest.decode import Downlink, EdgeValidator, Registry, event_fields
from ingest.handoff import MessageSink, NullSink, hand_off_refusal
from ingest.messages import RawMessage
from ingest.metrics import UNKNOWN_FAMILY, IngestMetrics, ingest_metrics
from ingest.mqtt_adapter import MqttConsumer
from ingest.source import MessageSource, SourceFactory
from storage.db import Connection, connect
from storage.dead_letters import DeadLetterRow
from storage.messages import EventRow, IngestWriter, Rejected, TelemetryRow, WriteBatch, WriteResult
from storage.presence import OfflineRule, PresenceRow, community_alert_overrides, mark_silent_offline
from storage.registry import RegisteredDevice, load_community_ids, load_device_refs
from storage.registry_events import RegistryListener
from yiju.errors import ConfigurationError, DatabaseUnavailable, StorageError, YijuError
from yiju.settings import Settings

log = logging.getLogger(__name__)

# builds a NamedTuple row without the Python-level `__new__` it generates (one frame less per message)
_row = tuple.__new__
CHUNK = 256  # messages decoded between two looks at the batch's age (≤ 1 ms of decoding)
RAW_QUEUE_SLACK = 2  # the raw deque may exceed Receive Maximum by this factor before the callback waits
STOP_TIMEOUT_S = 15.0


@dataclass(slots=True)
class _Pending:
    """A batch on its way to the database, with everything needed after the commit."""

    batch: WriteBatch = field(default_factory=WriteBatch)
    tokens: list[tuple[int, int, int]] = field(default_factory=list)  # (mid, qos, generation)
    telemetry: list[Decoded] = field(default_factory=list)
    events: list[Decoded] = field(default_factory=list)
    # de-duplication within the batch by the natural key (device, ts, seq) and table: (device, seq,
    # telemetry?) → ts of the first message with them; a second ts for the same triple (a device
    # reusing a seq within one batch) goes to `more_keys`. Hashing a tuple of ints, not an aware
    # datetime (whose hash calls utcoffset and builds a temporary): ≈ 1 µs less per message.
    keys: dict[tuple[int, int, bool], datetime] = field(default_factory=dict)
    more_keys: set[tuple[tuple[int, int, bool], datetime]] = field(default_factory=set)
    families: dict[str, int] = field(default_factory=dict)
    dl_counts: dict[tuple[str, str], int] = field(default_factory=dict)
    first_received: float = 0.0  # epoch s of the oldest message
    started: float = 0.0  # monotonic, for the flush age
    has_status: bool = False


@dataclass
class IngestStats:
    """Totals since start, for tests and the command's log line."""

    received: int = 0
    accepted: int = 0
    dead_lettered: int = 0
    committed_batches: int = 0
    stored: int = 0
    duplicates: int = 0
    points: int = 0
    acked: int = 0
    db_failures: int = 0


class IngestService:
    def __init__(
        self,
        settings: Settings,
        *,
        database_url: str,
        mqtt_url: str,
        sink: MessageSink | None = None,
        client_id: str | None = None,
        metrics: IngestMetrics | None = None,
        source: SourceFactory | None = None,
    ) -> None:
        """`source`: where messages come from instead of the MQTT session (scale-out mode: a JetStream
        partition, docs/scale-out.md); everything after the source is the same."""
        self.settings = settings
        self.cfg = settings.ingest
        self.database_url = database_url
        self.sink: MessageSink = sink or NullSink()
        # the process's metric set (yiju.metrics); a private, unexposed one for tests and benchmarks
        self.metrics: IngestMetrics = metrics or ingest_metrics(CollectorRegistry())
        self.stats = IngestStats()
        prefix = settings.mqtt.topic_prefix
        self.prefix = prefix
        self.validator = EdgeValidator(
            prefix,
            max_payload_bytes=self.cfg.max_payload_bytes,
            max_past=self.cfg.max_past,
            max_future=self.cfg.max_future,
        )
        shared = self.cfg.shared_subscription
        if shared is None:
            shared = self.cfg.workers > 1
        group = (self.cfg.shared_group or settings.mqtt.shared_group) if shared else None
        self.consumer: MessageSource
        if source is not None:
            self.consumer = source(self._on_messages, self._on_broker_state)
        else:
            self.consumer = MqttConsumer(
                mqtt_url,
                client_id=client_id or settings.mqtt.client_id,
                filters=subscriptions(prefix, group),
                on_message=self._on_message,
                on_batch=self._on_messages,
                on_state=self._on_broker_state,
                session_expiry_s=settings.mqtt.session_expiry_s,
                receive_maximum=self.cfg.receive_maximum,
                keepalive_s=settings.mqtt.keepalive_s,
                ca_file=settings.mqtt.ca_file,
            )
        self.writer = IngestWriter(database_url, settings.database)
        self._raw: deque[RawMessage] = deque()
        self._raw_cap = self.cfg.receive_maximum * RAW_QUEUE_SLACK
        self._raw_ready = threading.Event()
        self._decoder_waiting = False
        self._write_q: queue.Queue[_Pending | None] = queue.Queue(maxsize=self.cfg.write_queue_batches)
        self._stopping = threading.Event()  # stop taking new messages; flush what we have
        self._abort = threading.Event()  # give up on retries (stop deadline passed)
        self._registry = Registry({}, {}, {})
        self._registry_loaded_at = 0.0  # monotonic; 0 = never
        # Every change of the cache (full reload, notified devices, a miss looked up) holds this lock
        # across its database read and its update, so changes apply in the order they were read;
        # the decoder reads without it (single-key lookups on dicts updated in place).
        self._registry_lock = threading.Lock()
        self._registry_conn: Connection | None = None
        self._listener = RegistryListener(database_url)
        self._lookup_budget = float(self.cfg.registry_miss_lookups_per_s)
        self._lookup_budget_at = time.monotonic()
        self._presence: dict[int, list[Any]] = {}
        self._points = {f: FAMILIES[f].points for f in Family}  # devices.catalog.points_of, minus a lookup
        self._now_epoch = -1.0
        self._now = datetime.now(UTC)
        self._presence_due = 0.0
        self._status_devs: set[int] = set()  # devices with a status message not yet written
        self._threads: list[threading.Thread] = []
        self._started = False

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        if self.cfg.gc_gen0_threshold:
            # process-wide, deliberately: the long-lived startup heap leaves the collector's scans
            # and collections become rare (the hot path makes little cyclic garbage)
            gc.freeze()
            gc.set_threshold(self.cfg.gc_gen0_threshold, 20, 20)
        self.metrics.last_commit.set(time.time())
        for name, target in (
            ("ingest-writer", self._write_loop),
            ("ingest-registry", self._listen_loop),
            ("ingest-decoder", self._decode_loop),
            ("ingest-housekeeping", self._housekeeping_loop),
        ):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        self.consumer.start()

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Flush and acknowledge what has been received, then disconnect. Messages still unwritten
        after `timeout_s` (database away) stay unacknowledged and are redelivered to the next session."""
        if not self._started:
            return
        self._stopping.set()
        self._raw_ready.set()
        deadline = time.monotonic() + timeout_s
        for t in self._threads:
            if t.name not in ("ingest-housekeeping", "ingest-registry"):
                t.join(max(0.1, deadline - time.monotonic()))
        self._abort.set()
        for t in self._threads:
            t.join(5.0)
        self.consumer.stop()
        self.writer.close()
        self._close_registry_conn()
        self._started = False

    def __enter__(self) -> IngestService:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def alive(self) -> bool:
        return all(t.is_alive() for t in self._threads)

    # -- network thread --------------------------------------------------------------------------

    def _on_message(self, raw: RawMessage) -> None:
        self._raw.append(raw)
        if self._decoder_waiting:
            self._raw_ready.set()
        # The broker honours our Receive Maximum, so this only triggers with a broker that does not:
        # hold the network thread rather than grow without bound.
        while len(self._raw) > self._raw_cap and not self._stopping.is_set():
            time.sleep(0.01)

    def _on_messages(self, raws: list[RawMessage]) -> None:
        self._raw.extend(raws)
        if self._decoder_waiting:
            self._raw_ready.set()
        while len(self._raw) > self._raw_cap and not self._stopping.is_set():
            time.sleep(0.01)

    def _on_broker_state(self, connected: bool, reason: str) -> None:
        self.metrics.connected.set(1 if connected else 0)

    # -- registry --------------------------------------------------------------------------------

    def _registry_db(self, timeout_s: float) -> Connection:
        """The connection the registry reads use (under `_registry_lock`)."""
        conn = self._registry_conn
        if conn is None or conn.closed:
            conn = self._registry_conn = connect(self.database_url, autocommit=True, timeout_s=timeout_s)
        return conn

    def _close_registry_conn(self) -> None:
        with self._registry_lock:
            if self._registry_conn is not None:
                self._registry_conn.close()
                self._registry_conn = None

    def _load_registry(self, timeout_s: float) -> bool:
        """Reload the whole cache; False (keeping the previous one) if the database cannot be read."""
        with self._registry_lock:
            try:
                conn = self._registry_db(timeout_s)
                rows = load_device_refs(conn)
                communities = load_community_ids(conn)
            except (DatabaseUnavailable, StorageError) as exc:
                log.warning("registry not refreshed: %s", exc)
                self._drop_registry_conn()
                return False
            registry = Registry({}, {}, communities)
            self._apply(registry, rows, ())
            self._registry = registry
            self._registry_loaded_at = time.monotonic()
        return True

    def _load_devices(self, uids: set[str], timeout_s: float) -> list[RegisteredDevice] | None:
        """Read `uids` and apply what the registry says of them now (rows, or their absence)."""
        with self._registry_lock:
            try:
                rows = load_device_refs(self._registry_db(timeout_s), sorted(uids))
            except (DatabaseUnavailable, StorageError) as exc:
                log.warning("registry lookup of %d device(s) failed: %s", len(uids), exc)
                self._drop_registry_conn()
                return None
            self._apply(self._registry, rows, uids)
        return rows

    def _drop_registry_conn(self) -> None:
        if self._registry_conn is not None:
            self._registry_conn.close()
            self._registry_conn = None

    @staticmethod
    def _apply(registry: Registry, rows: list[RegisteredDevice], asked: set[str] | tuple[()]) -> None:
        """Write `rows` into the cache in place; uids `asked` for but not found are gone."""
        devices, disabled = registry.devices, registry.disabled
        found = set()
        for r in rows:
            uid = r.ref.uid
            found.add(uid)
            if r.enabled:
                devices[uid] = r.ref
                disabled.pop(uid, None)
            else:
                disabled[uid] = r.ref
                devices.pop(uid, None)
        for uid in set(asked) - found:
            devices.pop(uid, None)
            disabled.pop(uid, None)

    def _ensure_registry(self) -> bool:
        """Wait until the registry has been loaded once (a verdict of 'unknown device' must never rest
        on a registry that could not be read). False on stop."""
        backoff = self.cfg.db_retry_initial_s
        while not self._registry_loaded_at:
            if self._load_registry(timeout_s=2.0):
                return True
            if self._abort.wait(backoff):
                return False
            backoff = min(backoff * 2, self.cfg.db_retry_max_s)
        return True

    def _look_up_unknown(self, uid: str) -> bool:
        """A message of a device the cache does not know: ask the registry directly (waiting for the
        database if it is away) unless the lookup budget is spent. True if the cache now knows it."""
        now = time.monotonic()
        rate = float(self.cfg.registry_miss_lookups_per_s)
        self._lookup_budget = min(rate, self._lookup_budget + (now - self._lookup_budget_at) * rate)
        self._lookup_budget_at = now
        if self._lookup_budget < 1.0:
            self.metrics.registry_lookups.labels("over_budget").inc()
            return False
        self._lookup_budget -= 1.0
        backoff = self.cfg.db_retry_initial_s
        while (rows := self._load_devices({uid}, timeout_s=2.0)) is None:
            if self._abort.wait(backoff):
                return False
            backoff = min(backoff * 2, self.cfg.db_retry_max_s)
        self.metrics.registry_lookups.labels("found" if rows else "not_found").inc()
        return bool(rows)

    # -- registry listener thread ------------------------------------------------------------------

    def _listen_loop(self) -> None:
        """LISTEN for registry changes and apply them; after every (re)connect reload everything, since
        changes committed while nobody listened were not announced to us."""
        backoff = self.cfg.db_retry_initial_s
        while not self._abort.is_set():
            try:
                self._listener.open(timeout_s=2.0)
            except DatabaseUnavailable as exc:
                log.warning("registry changes not followed: %s; retrying", exc)
                if self._abort.wait(backoff):
                    break
                backoff = min(backoff * 2, self.cfg.db_retry_max_s)
                continue
            backoff = self.cfg.db_retry_initial_s
            self._load_registry(timeout_s=2.0)
            try:
                while not self._abort.is_set():
                    changes = self._listener.wait(timeout_s=0.5)
                    if not changes:
                        continue
                    if any(c.uids is None for c in changes):
                        self.metrics.registry_changes.labels("everything").inc()
                        self._load_registry(timeout_s=2.0)
                    else:
                        uids = set().union(*(c.uids or () for c in changes))
                        self.metrics.registry_changes.labels("devices").inc()
                        self._load_devices(uids, timeout_s=2.0)
            except DatabaseUnavailable as exc:
                log.warning("registry listener: %s; reconnecting", exc)
        self._listener.close()

    # -- decoder thread ----------------------------------------------------------------------------

    def _decode_loop(self) -> None:
        try:
            self._decode_loop_inner()
        except Exception:  # a bug: log it loudly; the un-acked messages are redelivered on restart
            log.exception("ingest decoder failed")
            raise

    def _decode_loop_inner(self) -> None:
        if not self._ensure_registry():
            return
        cfg = self.cfg
        raw_q = self._raw
        batch_size = cfg.batch_size
        flush_age = cfg.flush_age_s
        pending = _Pending()
        process, popleft = self._process, raw_q.popleft
        while True:
            if raw_q:
                if not pending.tokens:
                    pending.started = time.monotonic()
                    pending.first_received = raw_q[0].received_at
                # up to CHUNK messages without the per-message checks of the batch's size and age
                for _ in range(min(len(raw_q), batch_size - len(pending.tokens), CHUNK)):
                    process(popleft(), pending)
                if len(pending.tokens) >= batch_size or time.monotonic() - pending.started >= flush_age:
                    pending = self._flush(pending)
                continue
            # nothing waiting
            if pending.tokens and time.monotonic() - pending.started >= flush_age:
                pending = self._flush(pending)
            if self._stopping.is_set():
                if pending.tokens or self._presence:
                    self._flush(pending, force_presence=True)
                self._put(None)
                return
            wait_s = flush_age if pending.tokens else 0.5
            if pending.tokens:
                wait_s = max(0.0, flush_age - (time.monotonic() - pending.started))
            self._raw_ready.clear()
            self._decoder_waiting = True
            if not raw_q:
                self._raw_ready.wait(wait_s)
            self._decoder_waiting = False

    def _process(self, raw: RawMessage, p: _Pending) -> None:  # noqa: PLR0912, PLR0915 - hot path, inlined
        p.tokens.append((raw.mid, raw.qos, raw.generation))
        if raw.received_at != self._now_epoch:  # the messages of one network read share it
            self._now_epoch = raw.received_at
            self._now = datetime.fromtimestamp(raw.received_at, UTC)
        now = self._now
        result = self.validator.validate(raw, self._registry, now)
        if not isinstance(result, Decoded):
            decoded = self._not_decoded(raw, p, now, result)
            if decoded is None:
                return
            result = decoded
        device, channel, ts, seq, _, body, payload = result
        fam = device.family  # a StrEnum: counts merge with the refusals' plain strings
        p.families[fam] = p.families.get(fam, 0) + 1
        try:
            self.sink.submit(result)
        except Exception:  # the engine's bug must not stop storage; it is logged with its trace
            log.exception("alert hand-off failed for a %s message", fam.value)
        dev = device.id
        is_tel = channel is Channel.TELEMETRY
        key = (dev, seq, is_tel)
        first = p.keys.get(key)
        if first is None:
            p.keys[key] = ts
        elif first == ts or (key, ts) in p.more_keys:
            return  # the same message twice in one batch (a redelivery): acked, stored once
        else:
            p.more_keys.add((key, ts))
        if is_tel:
            points = self._points[fam](body.data)
            p.batch.telemetry.append(_row(TelemetryRow, (ts, dev, seq, now, payload, points)))
            p.telemetry.append(result)
        else:
            kind, code, chan = event_fields(result)
            p.batch.events.append(EventRow(ts, dev, seq, now, kind, code, chan, payload))
            p.events.append(result)
        # presence: [last_seen epoch, last_seq, online, status, heartbeat_s]
        entry = self._presence.get(dev)
        if channel is Channel.STATUS:
            online = body.state == "online"
            status = body.state if online or not body.reason else str(body.reason)[:64]
            hb = body.heartbeat_s
            if entry is None:
                self._presence[dev] = [raw.received_at, seq, online, status, hb]
            else:
                entry[0], entry[1], entry[2], entry[3] = raw.received_at, seq, online, status
                if hb is not None:
                    entry[4] = hb
            p.has_status = True
            self._status_devs.add(dev)
        elif entry is None:
            self._presence[dev] = [raw.received_at, seq, True, "online", None]
        else:
            entry[0], entry[1], entry[2], entry[3] = raw.received_at, seq, True, "online"

    def _not_decoded(
        self, raw: RawMessage, p: _Pending, now: datetime, result: Refusal | Downlink
    ) -> Decoded | None:
        """A message the edge did not accept at once: the decoded message after the registry lookup
        of a device the cache did not know, else None (acknowledged with the batch: ignored, or
        dead-lettered and, for a known device, told to the sink)."""
        if (
            isinstance(result, Refusal)
            and result.reason is DeadLetterReason.UNKNOWN_DEVICE
            and result.device_uid is not None
            and self._look_up_unknown(result.device_uid)
        ):
            again = self.validator.validate(raw, self._registry, now)
            if isinstance(again, Decoded):
                return again
            result = again
        if isinstance(result, Downlink):
            self.metrics.ignored.labels("own_command").inc()
            return None
        family = result.family or UNKNOWN_FAMILY
        p.families[family] = p.families.get(family, 0) + 1
        self._dead_letter(p, raw.topic, raw.payload, now, result)
        self._refused(raw, result, now)
        return None

    def _refused(self, raw: RawMessage, refusal: Refusal, now: datetime) -> None:
        """A known device's schema violation (out-of-range readings → alarm) or telemetry refused for
        its timestamp (→ clock_skew) also goes to the sink."""
        if refusal.reason in HANDED_OFF and refusal.device_uid:
            hand_off_refusal(
                self.sink,
                self._registry.devices.get(refusal.device_uid),
                channel=self.validator.topic(raw.topic).channel,
                received_at=now,
                reason=refusal.reason,
                detail=refusal.detail,
                payload=raw.payload,
            )

    def _dead_letter(
        self, p: _Pending, topic_text: str, payload: bytes, now: datetime, refusal: Refusal
    ) -> None:
        keep = self.cfg.dead_letter_payload_bytes
        refusal = self._registry.attribute(refusal, topic_text, self.prefix)
        p.batch.dead_letters.append(DeadLetterRow(now, topic_text, payload[:keep], len(payload), refusal))
        k = (refusal.family or UNKNOWN_FAMILY, refusal.reason.value)
        p.dl_counts[k] = p.dl_counts.get(k, 0) + 1

    def _flush(self, p: _Pending, force_presence: bool = False) -> _Pending:
        now_m = time.monotonic()
        presence = self._presence
        if presence and (force_presence or now_m >= self._presence_due):
            p.batch.presence = _presence_rows(presence.items())
            self._presence = {}
            self._status_devs = set()
            self._presence_due = now_m + self.cfg.presence_flush_s
        elif p.has_status:
            # status changes (online/offline, Last Will) go with their own batch; the last_seen of
            # devices that only sent data waits for the presence_flush_s cadence (an upsert per
            # data message was most of the database's work per message in bench/ingest)
            changed = [(dev, e) for dev in self._status_devs if (e := presence.pop(dev, None)) is not None]
            p.batch.presence = _presence_rows(changed)
            self._status_devs = set()
        for family, n in p.families.items():
            self.metrics.received.labels(family).inc(n)
        self.stats.received += len(p.tokens)
        self.metrics.held.inc(len(p.tokens))
        self._put(p)
        return _Pending()

    def _put(self, item: _Pending | None) -> None:
        while True:
            try:
                self._write_q.put(item, timeout=0.5)
                return
            except queue.Full:
                if self._abort.is_set():
                    return
            finally:
                self.metrics.queue_depth.labels("raw").set(len(self._raw))
                self.metrics.queue_depth.labels("write_batches").set(self._write_q.qsize())

    # -- writer thread -------------------------------------------------------------------------------

    def _write_loop(self) -> None:
        while True:
            try:
                p = self._write_q.get(timeout=0.5)
            except queue.Empty:
                if self._abort.is_set():
                    return
                continue
            if p is None:
                return
            if not self._commit(p):
                return  # aborted while the database was away: leave the rest unacknowledged
            sent = self.consumer.ack(p.tokens)
            now = time.time()
            self.stats.acked += sent
            self.metrics.held.dec(len(p.tokens))
            self.metrics.last_commit.set(now)
            if p.tokens:
                self.metrics.ack_lag_seconds.observe(now - p.first_received)

    def _commit(self, p: _Pending) -> bool:
        """Write the batch, retrying until it is committed; False only if stop's deadline passed."""
        backoff = self.cfg.db_retry_initial_s
        batch = p.batch
        outage_since: float | None = None
        while True:
            t0 = time.perf_counter()
            try:
                result = self.writer.write(batch)
            except (DatabaseUnavailable, StorageError) as exc:
                kind = "unavailable" if isinstance(exc, DatabaseUnavailable) else "error"
                self.metrics.db_errors.labels(kind).inc()
                self.stats.db_failures += 1
                if outage_since is None:
                    outage_since = time.monotonic()
                    log.warning(
                        "batch of %d not written (%s); retrying, nothing acked meanwhile", len(p.tokens), exc
                    )
                if self._abort.wait(backoff):
                    return False
                backoff = min(backoff * 2, self.cfg.db_retry_max_s)
                continue
            break
        if outage_since is not None:
            log.info("database back after %.1f s; batch committed", time.monotonic() - outage_since)
        self.metrics.write_seconds.observe(time.perf_counter() - t0)
        if result.rejected:
            extra = self._rejected_dead_letters(p, result.rejected)
            if not self._commit(_Pending(batch=WriteBatch(dead_letters=extra))):
                return False
        self._account(p, result)
        return True

    def _rejected_dead_letters(self, p: _Pending, rejected: list[Rejected]) -> list[DeadLetterRow]:
        rows: list[DeadLetterRow] = []
        for r in rejected:
            d = p.telemetry[r.index] if r.kind == "telemetry" else p.events[r.index]
            refusal = Refusal(
                DeadLetterReason.SCHEMA_VIOLATION,
                f"database refused the document: {r.error}",
                d.device.uid,
                d.device.family.value,
            )
            tp = topic(self.prefix, d.device.community, d.device.uid, d.channel)
            tmp = _Pending()
            self._dead_letter(tmp, tp, d.payload, d.received_at, refusal)
            rows.extend(tmp.batch.dead_letters)
            for k, n in tmp.dl_counts.items():
                p.dl_counts[k] = p.dl_counts.get(k, 0) + n
        return rows

    def _account(self, p: _Pending, result: WriteResult) -> None:
        m = self.metrics
        now = time.time()
        n_msgs = len(p.tokens)
        m.batch_size.observe(n_msgs)
        for (family, reason), n in p.dl_counts.items():
            m.dead_letters.labels(family, reason).inc(n)
            self.stats.dead_lettered += n
        # keyed by the Family member itself, a StrEnum (its `.value` is a Python-level property, per
        # message here); the label is its string
        stored_by_family: dict[Family, int] = {}
        observe = m.publish_to_commit_seconds.observe
        for d in p.telemetry:
            fam = d.device.family
            stored_by_family[fam] = stored_by_family.get(fam, 0) + 1
        for d in p.events:
            fam = d.device.family
            stored_by_family[fam] = stored_by_family.get(fam, 0) + 1
        # publish-to-commit lag, sampled (one in 16) to keep the hot path cheap
        for d in p.telemetry[::16]:
            observe(now - d.ts.timestamp())
        for d in p.events[::16]:
            observe(now - d.ts.timestamp())
        for fam, n in stored_by_family.items():
            m.written.labels(fam, "stored").inc(n)
        if result.duplicates:
            m.written.labels("any", "duplicate").inc(result.duplicates)
        if result.points:
            m.points.labels("any").inc(result.points)
        self.stats.accepted += len(p.telemetry) + len(p.events)
        self.stats.stored += result.telemetry + result.events
        self.stats.duplicates += result.duplicates
        self.stats.points += result.points
        self.stats.committed_batches += 1

    # -- housekeeping thread ------------------------------------------------------------------------

    def _housekeeping_loop(self) -> None:
        sweep_due = time.monotonic() + self.cfg.presence_sweep_s
        while not self._abort.wait(1.0):
            if self._stopping.is_set():
                continue
            now_m = time.monotonic()
            try:
                if (
                    now_m - self._registry_loaded_at >= self.cfg.registry_refresh_s
                    and self._registry_loaded_at
                ):
                    self._load_registry(timeout_s=5.0)
                if now_m >= sweep_due:
                    sweep_due = now_m + self.cfg.presence_sweep_s
                    self._sweep()
            except YijuError as exc:
                log.warning("ingest housekeeping: %s", exc)

    def _sweep(self) -> None:
        try:
            conn = connect(self.database_url, autocommit=True, timeout_s=2.0)
        except DatabaseUnavailable:
            return
        try:
            rules = offline_rules(self.settings.alerts, community_alert_overrides(conn))
            gone = mark_silent_offline(conn, rules, datetime.now(UTC))
            if gone:
                log.info(
                    "%d device(s) silent for their families' missed heartbeats: marked offline", len(gone)
                )
        except Exception as exc:  # noqa: BLE001 - the sweep is retried on its next turn
            log.warning("offline sweep failed: %s", exc)
        finally:
            conn.close()


def _presence_rows(entries: Iterable[tuple[int, list[Any]]]) -> list[PresenceRow]:
    """Presence rows of (device id, [last_seen epoch, last_seq, online, status, heartbeat_s]); the
    devices seen in one network read share its receive time, and one datetime for it (a presence
    flush covers most devices: thousands of rows every `presence_flush_s`)."""
    seen_at: dict[float, datetime] = {}
    rows = []
    for dev, e in entries:
        at = seen_at.get(e[0])
        if at is None:
            at = seen_at[e[0]] = datetime.fromtimestamp(e[0], UTC)
        rows.append(_row(PresenceRow, (dev, at, e[1], e[2], e[3], e[4])))
    return rows


def offline_rules(alerts: AlertSettings, overrides: dict[int, dict[str, Any]]) -> list[OfflineRule]:
    """The presence sweep's offline rule per family — the alert engine's (`engine.offline_after_s`):
    the family's heartbeat (unless the device announced one) × its missed heartbeats, smoke and gas
    alarms hourly, chargers every 3 minutes — and the communities that override them."""

    def of(th: AlertSettings, community_id: int | None) -> list[OfflineRule]:
        out = []
        for family in Family:
            group = getattr(th, family.value)
            out.append(
                OfflineRule(family.value, int(group.heartbeat_s), int(group.missed_heartbeats), community_id)
            )
        return out

    rules = of(alerts, None)
    defaults = {(r.family, r.heartbeat_s, r.misses) for r in rules}
    for community_id, override in sorted(overrides.items()):
        try:
            th = alerts.with_overrides(override)
        except ConfigurationError as exc:
            log.warning("community %d: %s; its devices are swept with the defaults", community_id, exc)
            continue
        rules += [r for r in of(th, community_id) if (r.family, r.heartbeat_s, r.misses) not in defaults]
    return rules
