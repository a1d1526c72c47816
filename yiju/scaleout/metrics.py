"""Prometheus series of the scale-out processes (`yiju bridge`, `yiju partition-worker`).

Read from the processes' own counters when Prometheus scrapes (collectors): nothing is added to the
message path. A partition worker also exports ingest's and the alert engine's usual series (its
`IngestService` and `AlertService` per partition share one metric set each); these are what is
particular to scale-out: the bridge's publish pipeline and the worker's leases (docs/scale-out.md).
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from yiju.scaleout.bridge import Bridge
from yiju.scaleout.worker import PartitionWorker


class BridgeCollector(Collector):
    def __init__(self, bridge: Bridge) -> None:
        self._bridge = bridge

    def collect(self) -> Iterator[Metric]:
        s, link = self._bridge.stats, self._bridge.link.stats
        for name, doc, value in (
            ("received", "MQTT messages received from the broker", s.received),
            (
                "confirmed",
                "messages JetStream confirmed (stored, or a duplicate by Nats-Msg-Id)",
                s.confirmed,
            ),
            ("acked", "MQTT acknowledgements sent (each only after JetStream confirmed)", s.acked),
            (
                "publish_retries",
                "publish rounds with at least one failure (retried, nothing acked)",
                s.retries,
            ),
            (
                "duplicates",
                "publishes JetStream already held (another bridge, or a re-publish)",
                link.duplicates,
            ),
        ):
            yield CounterMetricFamily(f"yiju_bridge_{name}", doc, value=value)
        yield GaugeMetricFamily(
            "yiju_bridge_backlog_messages",
            "received from MQTT and not yet confirmed by JetStream",
            value=max(0, s.received - s.confirmed),
        )
        yield GaugeMetricFamily(
            "yiju_bridge_up", "1 while the bridge's publisher runs", value=1 if self._bridge.alive else 0
        )


class WorkerCollector(Collector):
    def __init__(self, worker: PartitionWorker) -> None:
        self._worker = worker

    def collect(self) -> Iterator[Metric]:
        w = self._worker
        yield GaugeMetricFamily(
            "yiju_partitions_held", "partitions this worker holds the lease of", value=len(w.held)
        )
        for name, doc, value in (
            ("acquired", "partition leases taken", w.stats.acquired),
            ("released", "partitions handed back (drained and acknowledged)", w.stats.released),
            ("lost", "partition leases lost (not renewed in time): stopped at once", w.stats.lost),
            (
                "restarts",
                "partitions restarted from the ack floor (a delivery gap or an unconfirmed batch)",
                w.stats.restarts,
            ),
            (
                "consumer_retries",
                "consumer (re)creations retried (no leader, a timeout)",
                w.link.stats.consumer_retries,
            ),
        ):
            yield CounterMetricFamily(f"yiju_partition_{name}", doc, value=value)
        yield GaugeMetricFamily(
            "yiju_partition_worker_up", "1 while the lease loop runs", value=1 if w.alive else 0
        )
