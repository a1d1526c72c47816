"""Prometheus metrics of the alert engine. Labels never carry a device id (cardinality)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

PERSIST_BUCKETS_S = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True)
class AlertMetrics:
    evaluated: Counter
    duplicates: Counter
    counter_restarts: Counter
    alarms_raised: Counter
    alarms_cleared: Counter
    findings: Counter
    commands: Counter
    implausible: Counter
    replayed: Counter
    dropped_on_stop: Counter
    unwritten_on_stop: Counter
    persist_retries: Counter
    outputs_refused: Counter
    backpressure_waits: Counter
    queue_depth: Gauge
    queue_capacity: Gauge
    timers_pending: Gauge
    timers_fired: Counter
    last_tick: Gauge
    persist_seconds: Histogram


def alert_metrics(registry: CollectorRegistry) -> AlertMetrics:
    """Create the engine metrics on `registry` — once per registry: the composition root does it for
    its process (`yiju.metrics`); a second call raises prometheus_client's duplicate error."""
    r = registry

    def c(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
        return Counter(f"yiju_alerts_{name}", doc, labels, registry=r)

    return AlertMetrics(
        evaluated=c("evaluated", "Messages evaluated by the rule core (replayed ones included)"),
        duplicates=c("duplicates", "Messages skipped as already evaluated (same natural key ts, seq)"),
        counter_restarts=c(
            "counter_restarts", "Device sequence counters seen restarting (reboot, reset): new epochs"
        ),
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
        outputs_refused=c(
            "outputs_refused",
            "Outputs the database refused for their content (dead-lettered as engine_output_refused)",
        ),
        backpressure_waits=c("backpressure_waits", "Hand-offs that waited for room in the engine queue"),
        queue_depth=Gauge("yiju_alerts_queue_depth", "Messages waiting for the engine", registry=r),
        queue_capacity=Gauge(
            "yiju_alerts_queue_capacity", "Size of the engine's queue (alerts.queue_size)", registry=r
        ),
        timers_pending=Gauge(
            "yiju_alerts_timers_pending",
            "Devices with a pending rule timer (deadline, confirmation)",
            registry=r,
        ),
        timers_fired=c("timers_fired", "Device timers that came due and were evaluated by the tick"),
        last_tick=Gauge(
            "yiju_alerts_last_tick_timestamp_seconds",
            "When the engine's worker last ran its timer tick (a stuck worker stops moving it)",
            registry=r,
        ),
        persist_seconds=Histogram(
            "yiju_alerts_persist_seconds",
            "Time to write one batch's outputs (successful attempt)",
            buckets=PERSIST_BUCKETS_S,
            registry=r,
        ),
    )
