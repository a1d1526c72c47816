"""Prometheus metrics of the alert engine. Labels never carry a device id (cardinality)."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge


@dataclass(frozen=True)
class AlertMetrics:
    evaluated: Counter
    duplicates: Counter
    alarms_raised: Counter
    alarms_cleared: Counter
    findings: Counter
    commands: Counter
    implausible: Counter
    replayed: Counter
    dropped_on_stop: Counter
    unwritten_on_stop: Counter
    persist_retries: Counter
    backpressure_waits: Counter
    queue_depth: Gauge


_lock = threading.Lock()
_instances: dict[int, AlertMetrics] = {}


def alert_metrics(registry: CollectorRegistry = REGISTRY) -> AlertMetrics:
    """The engine metrics on `registry`, created once (several engines in one process share them)."""
    with _lock:
        found = _instances.get(id(registry))
        if found is None:
            found = _instances[id(registry)] = _create(registry)
        return found


def _create(r: CollectorRegistry) -> AlertMetrics:
    def c(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
        return Counter(f"yiju_alerts_{name}", doc, labels, registry=r)

    return AlertMetrics(
        evaluated=c("evaluated", "Messages evaluated by the rule core (replayed ones included)"),
        duplicates=c("duplicates", "Messages skipped as already evaluated (sequence window)"),
        alarms_raised=c("alarms_raised", "Alarm raises and repeat occurrences persisted"),
        alarms_cleared=c("alarms_cleared", "Alarms cleared by the engine"),
        findings=c("findings", "Compliance findings produced", ("compliant",)),
        commands=c("commands", "Commands to devices recorded by the engine"),
        implausible=c("implausible", "Out-of-range readings refused at the edge and raised as alarms"),
        replayed=c("replayed", "Stored messages re-read after a restart (crash recovery)"),
        dropped_on_stop=c(
            "dropped_on_stop", "Messages not evaluated because the engine was stopping or not running"
        ),
        unwritten_on_stop=c(
            "unwritten_on_stop", "Outputs (alarms, findings, commands) not written: database down at stop"
        ),
        persist_retries=c("persist_retries", "Failed attempts to write a batch's outputs (then retried)"),
        backpressure_waits=c("backpressure_waits", "Hand-offs that waited for room in the engine queue"),
        queue_depth=Gauge("yiju_alerts_queue_depth", "Messages waiting for the engine", registry=r),
    )
