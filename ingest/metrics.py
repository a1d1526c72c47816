"""Prometheus metrics of ingest. Labels are family, reason and outcome — never a device id (cardinality
must not grow with the fleet)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from devices.contract import DeadLetterReason, Family

UNKNOWN_FAMILY = "unknown"  # the family label of a refusal that names no registered device

LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0, 30.0, 60.0)
BATCH_BUCKETS = (1, 10, 50, 100, 250, 500, 1000, 2000, 5000, 10_000)


@dataclass(frozen=True)
class IngestMetrics:
    received: Counter
    written: Counter
    points: Counter
    dead_letters: Counter
    batch_size: Histogram
    write_seconds: Histogram
    ack_lag_seconds: Histogram
    publish_to_commit_seconds: Histogram
    queue_depth: Gauge
    db_errors: Counter
    connected: Gauge
    held: Gauge
    last_commit: Gauge
    ignored: Counter
    registry_lookups: Counter
    registry_changes: Counter


def ingest_metrics(registry: CollectorRegistry) -> IngestMetrics:
    """Create the ingest metrics on `registry` — once per registry: the composition root does it for
    its process (`yiju.metrics`); a second call raises prometheus_client's duplicate error."""
    r = registry
    m = _create(r)
    # Series exist from the start at 0, so that the first messages show as an increase (a counter
    # that appears already at N has no rate until it moves again).
    for family in [*(f.value for f in Family), UNKNOWN_FAMILY]:
        m.received.labels(family)
    for family in Family:
        m.written.labels(family.value, "stored")
    for kind in ("unavailable", "error"):
        m.db_errors.labels(kind)
    # every dead-letter reason too, so a rate or an alert on any of them works before the first
    # occurrence; the label values are the closed sets of families and reasons (bounded)
    for family in [*(f.value for f in Family), UNKNOWN_FAMILY]:
        for reason in DeadLetterReason:
            m.dead_letters.labels(family, reason.value)
    return m


def _create(r: CollectorRegistry) -> IngestMetrics:
    return IngestMetrics(
        received=Counter("yiju_ingest_received", "Messages received from the broker", ["family"], registry=r),
        written=Counter(
            "yiju_ingest_written",
            "Accepted messages committed, by outcome (stored, duplicate)",
            ["family", "outcome"],
            registry=r,
        ),
        points=Counter("yiju_ingest_points", "Numeric points committed", ["family"], registry=r),
        dead_letters=Counter(
            "yiju_ingest_dead_letters", "Messages refused into dead_letters", ["family", "reason"], registry=r
        ),
        batch_size=Histogram(
            "yiju_ingest_batch_size", "Messages per committed batch", buckets=BATCH_BUCKETS, registry=r
        ),
        write_seconds=Histogram(
            "yiju_ingest_write_seconds",
            "Time to commit one batch (successful attempt)",
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        ),
        ack_lag_seconds=Histogram(
            "yiju_ingest_ack_lag_seconds",
            "From receipt to PUBACK, per batch's oldest message",
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        ),
        publish_to_commit_seconds=Histogram(
            "yiju_ingest_publish_to_commit_seconds",
            "From the device timestamp to the commit (includes device clock offset)",
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        ),
        queue_depth=Gauge(
            "yiju_ingest_queue_depth", "Messages or batches waiting, by queue", ["queue"], registry=r
        ),
        db_errors=Counter(
            "yiju_ingest_db_errors", "Failed batch writes, by kind (unavailable, error)", ["kind"], registry=r
        ),
        connected=Gauge("yiju_ingest_broker_connected", "1 while the MQTT session is up", registry=r),
        held=Gauge(
            "yiju_ingest_held_messages",
            "Messages received and handed to the writer but not yet committed and acknowledged",
            registry=r,
        ),
        last_commit=Gauge(
            "yiju_ingest_last_commit_timestamp_seconds",
            "When ingest last committed a batch (set to the start time at start)",
            registry=r,
        ),
        ignored=Counter(
            "yiju_ingest_ignored",
            "Messages acknowledged but neither stored nor dead-lettered: Yiju's own commands (own_command)",
            ["what"],
            registry=r,
        ),
        registry_lookups=Counter(
            "yiju_ingest_registry_lookups",
            "Direct registry lookups of devices the cache did not know (found, not_found, over_budget)",
            ["outcome"],
            registry=r,
        ),
        registry_changes=Counter(
            "yiju_ingest_registry_changes",
            "Registry change notifications applied (devices, everything)",
            ["kind"],
            registry=r,
        ),
    )
