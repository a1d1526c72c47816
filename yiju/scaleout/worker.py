"""The partition worker: leases partitions of the ingest stream and, for each, runs ingest's own
decode → store pipeline (`IngestService` with a JetStream source) feeding an alert engine
(`AlertService`) scoped to the partition's communities.

Guarantees (docs/scale-out.md):
- One holder per partition: a lease in a JetStream KV bucket whose entries expire `lease_ttl_s`
  after their last write; taken with create-if-absent, renewed every third of the TTL by
  compare-and-swap on the revision we wrote. A worker that cannot renew for half the TTL stops the
  partition itself, before anyone else may take it.
- Acknowledged only when done: a batch is acknowledged to JetStream (AckPolicy.ALL, its last
  message) after its rows are committed *and* the engine has evaluated it and committed the rule
  state of the devices it touched (`AlertService.sync`), in the same transactions as the outputs
  (alerts/service.py `_persist`). A worker killed at any point leaves its partition's unacknowledged
  messages to the next holder, which recreates the consumer from the acknowledgement floor, so they
  come again, in stream order, before anything newer. Storage absorbs the copies by the natural key,
  the engine by the sequence window in the stored state (a message already evaluated is a duplicate:
  no output twice).
- Fair share: a worker takes at most ceil(P / live workers) partitions (workers announce themselves
  in the same bucket) and hands back a surplus partition gracefully (drained and acknowledged).
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from alerts.commands import CommandPublisher
from alerts.metrics import AlertMetrics
from alerts.service import AlertService
from ingest.messages import RawMessage
from ingest.metrics import IngestMetrics
from ingest.service import IngestService
from ingest.source import BatchCallback, MessageSource, StateCallback
from storage.db import connection
from storage.registry import load_community_ids
from yiju.errors import MessagingUnavailable, YijuError
from yiju.scaleout.bridge import stream_spec
from yiju.scaleout.jetstream import Incoming, JetStreamLink, Leases, PullFeed
from yiju.scaleout.subjects import (
    RECEIVED_HEADER,
    TOPIC_HEADER,
    decode_topic,
    partition_filter,
    partition_of,
    stream_name,
)
from yiju.settings import Settings

log = logging.getLogger(__name__)
SYNC_TIMEOUT_S = 60.0
WORKER_KEY = "w."
PARTITION_KEY = "p."


class PartitionSource:
    """`ingest.source.MessageSource` over one partition's pull consumer."""

    def __init__(
        self,
        feed: PullFeed,
        on_batch: BatchCallback,
        on_state: StateCallback,
        *,
        settled: Callable[[], bool],
        fetch_batch: int,
        generation: int,
    ) -> None:
        self._feed = feed
        self._on_batch = on_batch
        self._on_state = on_state
        self._settled = settled
        self._fetch_batch = fetch_batch
        self._generation = generation
        self.subscribed = threading.Event()
        self.broken = threading.Event()  # the engine could not confirm a batch: restart the partition
        self.fetched = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"fetch-{feed.durable}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10.0)

    def _run(self) -> None:
        self.subscribed.set()
        self._on_state(True, "bound")
        last = 0  # consumer sequence of the last message handed on
        while not self._stop.is_set() and not self.broken.is_set():
            try:
                msgs = self._feed.fetch(self._fetch_batch, timeout_s=1.0)
            except MessagingUnavailable as exc:
                # a fetch given up on may have had messages delivered that we will never see; with
                # AckPolicy.ALL a later ack would cover them: restart from the ack floor instead
                log.warning(
                    "partition %s: fetch failed (%s); restarting from the ack floor", self._feed.durable, exc
                )
                self.broken.set()
                break
            for i, m in enumerate(msgs):
                if m.consumer_seq != last + 1 or m.delivered > 1:
                    # a delivery we never saw, or a redelivery behind newer messages: order is lost
                    log.warning(
                        "partition %s: delivery gap at %d; restarting from the ack floor",
                        self._feed.durable,
                        m.stream_seq,
                    )
                    self.broken.set()
                    msgs = msgs[:i]
                    break
                last = m.consumer_seq
            if msgs:
                self.fetched += len(msgs)
                self._on_batch([self._raw(m) for m in msgs])
        self._on_state(False, "stopped")

    def _raw(self, m: Incoming) -> RawMessage:
        topic = decode_topic(m.headers.get(TOPIC_HEADER, ""))
        try:
            received = float(m.headers.get(RECEIVED_HEADER, ""))
        except ValueError:
            received = time.time()
        return RawMessage(topic, m.payload, m.stream_seq, self._generation, received, 1)

    def ack(self, tokens: list[tuple[int, int, int]]) -> int:
        """After ingest committed the batch: wait for the engine, then acknowledge its last message."""
        if not tokens:
            return 0
        if self.broken.is_set() or not self._settled():
            self.broken.set()
            log.error(
                "partition %s: the engine did not confirm a batch; not acknowledged", self._feed.durable
            )
            return 0
        try:
            self._feed.ack_through(max(mid for mid, _, _ in tokens))
        except MessagingUnavailable as exc:  # redelivered to whoever holds the partition next
            log.warning("partition %s: ack failed: %s", self._feed.durable, exc)
            return 0
        return len(tokens)


@dataclass
class _Partition:
    number: int
    revision: int
    engine: AlertService
    ingest: IngestService
    feed: PullFeed
    source: PartitionSource | None = None
    renewed_at: float = field(default_factory=time.monotonic)  # last successful write of the lease

    def healthy(self) -> bool:
        return self.source is not None and not self.source.broken.is_set() and self.ingest.alive


@dataclass
class WorkerStats:
    acquired: int = 0
    released: int = 0
    lost: int = 0
    restarts: int = 0


class PartitionWorker:
    def __init__(
        self,
        settings: Settings,
        *,
        database_url: str,
        nats_url: str,
        worker_id: str,
        publisher: CommandPublisher | None = None,
        ingest_metrics: IngestMetrics | None = None,
        alert_metrics: AlertMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.scale = settings.scale
        self.prefix = settings.mqtt.topic_prefix
        self.database_url = database_url
        self.worker_id = worker_id
        self.publisher = publisher
        self._ingest_metrics = ingest_metrics
        self._alert_metrics = alert_metrics
        self.stats = WorkerStats()
        self.link = JetStreamLink(
            nats_url,
            name=worker_id,
            ca_file=self.scale.nats_ca_file,
            credentials_file=self.scale.nats_credentials_file,
        )
        self.held: dict[int, _Partition] = {}
        self._leases: Leases | None = None
        self._me_rev: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="partition-leases", daemon=True)
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self.link.start()
        self.link.ensure_stream(stream_spec(self.prefix, self.scale))
        self._leases = self.link.leases(
            f"{self.prefix.replace('-', '_')}_leases",
            ttl_s=self.scale.lease_ttl_s,
            replicas=self.scale.replicas,
        )
        self._thread.start()

    def stop(self) -> None:
        """Hand every partition back: drain, acknowledge, release the lease."""
        self._stop.set()
        if self._thread.ident is not None:  # not started when start() failed (the error says why)
            self._thread.join(30.0)
        for n in list(self.held):
            self._release(n)
        if self._leases is not None and self._me_rev is not None:
            with contextlib.suppress(MessagingUnavailable):
                self._leases.release(self._me_key, self._me_rev)
        self.link.stop()

    def __enter__(self) -> PartitionWorker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def _me_key(self) -> str:
        return f"{WORKER_KEY}{self.worker_id}"

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    # ------------------------------------------------------------------ the lease loop

    def _run(self) -> None:
        period = self.scale.lease_ttl_s / 3
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                self._round()
            except YijuError as exc:
                log.warning("worker %s: lease round: %s", self.worker_id, exc)
            # a lease we could not renew for half its TTL may be someone else's soon: stop first
            for n, part in list(self.held.items()):
                if time.monotonic() - part.renewed_at > self.scale.lease_ttl_s / 2:
                    log.error("worker %s: partition %d not renewed in time; stopping it", self.worker_id, n)
                    self._drop(n)
            self._stop.wait(max(0.05, period - (time.monotonic() - t0)))

    def _round(self) -> None:
        leases = self._leases
        assert leases is not None
        # announce ourselves (the live-worker count sets everyone's fair share)
        if self._me_rev is not None:
            self._me_rev = leases.renew(self._me_key, self.worker_id, self._me_rev)
        if self._me_rev is None:
            self._me_rev = leases.acquire(self._me_key, self.worker_id)
        self._renew_all()
        for n, part in list(self.held.items()):
            if not part.healthy():
                log.warning("worker %s: partition %d unhealthy; restarting it", self.worker_id, n)
                self.stats.restarts += 1
                revision = part.revision
                self._drop(n)
                self._open(n, revision)
        holders = leases.holders()
        workers = max(1, sum(1 for k in holders if k.startswith(WORKER_KEY)))
        target = self.scale.max_partitions_per_worker or math.ceil(self.scale.partitions / workers)
        if len(self.held) > target:
            self._release(max(self.held))
            return
        for n in range(self.scale.partitions):
            if len(self.held) >= target or self._stop.is_set():
                break
            key = f"{PARTITION_KEY}{n}"
            if n in self.held or key in holders:
                continue
            rev = leases.acquire(key, self.worker_id)
            if rev is not None:
                self._open(n, rev)
                self._renew_all()  # opening takes a moment: keep the others' leases fresh

    def _renew_all(self) -> None:
        assert self._leases is not None
        for n, part in list(self.held.items()):
            rev = self._leases.renew(f"{PARTITION_KEY}{n}", self.worker_id, part.revision)
            if rev is None:
                log.error("worker %s: lease of partition %d lost", self.worker_id, n)
                self.stats.lost += 1
                self._drop(n)
            else:
                part.revision = rev
                part.renewed_at = time.monotonic()

    # ------------------------------------------------------------------ one partition

    def _communities(self, n: int) -> frozenset[int]:
        with connection(self.database_url) as conn:
            codes = load_community_ids(conn)
        return frozenset(cid for code, cid in codes.items() if partition_of(code, self.scale.partitions) == n)

    def _open(self, n: int, revision: int) -> None:
        """Start partition `n` (lease held at `revision`); on failure give the lease back."""
        try:
            communities = self._communities(n)
            engine = AlertService(
                self.database_url,
                self.settings.alerts,
                publisher=self.publisher,
                metrics=self._alert_metrics,
                communities=communities,
                name=f"partition-{n}",
                replay=False,
            )
            engine.start()
        except YijuError as exc:
            log.error("worker %s: partition %d: engine not started: %s", self.worker_id, n, exc)
            self._give_back(n, revision)
            return
        try:
            feed = self.link.open_consumer(
                stream_name(self.prefix),
                f"p{n}",
                partition_filter(self.prefix, n),
                ack_wait_s=self.scale.ack_wait_s,
                max_ack_pending=self.scale.max_ack_pending,
                replicas=self.scale.replicas,
                deadline_s=self.scale.lease_ttl_s,
            )
        except MessagingUnavailable as exc:
            log.error("worker %s: partition %d: consumer not opened: %s", self.worker_id, n, exc)
            engine.stop()
            self._give_back(n, revision)
            return
        holder: list[PartitionSource] = []

        def source(on_batch: BatchCallback, on_state: StateCallback) -> MessageSource:
            src = PartitionSource(
                feed,
                on_batch,
                on_state,
                settled=lambda: engine.sync(SYNC_TIMEOUT_S),
                fetch_batch=self.scale.fetch_batch,
                generation=revision,
            )
            holder.append(src)
            return src

        ingest = IngestService(
            self.settings,
            database_url=self.database_url,
            mqtt_url="",
            sink=engine,
            client_id=f"{self.worker_id}-p{n}",
            metrics=self._ingest_metrics,
            source=source,
        )
        part = _Partition(n, revision, engine, ingest, feed, holder[0])
        ingest.start()
        self.held[n] = part
        self.stats.acquired += 1
        log.info("worker %s: partition %d taken (%d communities)", self.worker_id, n, len(communities))

    def _give_back(self, n: int, revision: int) -> None:
        try:
            assert self._leases is not None
            self._leases.release(f"{PARTITION_KEY}{n}", revision)
        except MessagingUnavailable:
            pass

    def _stop_partition(self, part: _Partition) -> None:
        part.ingest.stop()  # flushes, waits for the engine, acknowledges
        part.engine.stop()
        part.feed.close()

    def _release(self, n: int) -> None:
        part = self.held.pop(n)
        self._stop_partition(part)
        self._give_back(n, part.revision)
        self.stats.released += 1
        log.info("worker %s: partition %d handed back", self.worker_id, n)

    def _drop(self, n: int) -> None:
        """Stop partition `n` without giving the lease back (it is lost, or is about to be)."""
        part = self.held.pop(n)
        try:
            self._stop_partition(part)
        except YijuError as exc:
            log.warning("worker %s: partition %d stop: %s", self.worker_id, n, exc)
