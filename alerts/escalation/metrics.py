"""Prometheus metrics of emergency linkage, created once on the process's registry by the
composition root (yiju/runtime.py), so the process's `/metrics` endpoint exposes them with the rest.
Labels carry the channel and outcome only (never a person or number).
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# seconds; the target is ≤ 1 s to the first attempt (issue 11), acks take minutes
_FIRST_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
_ACK_BUCKETS = (5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)


@dataclass(frozen=True)
class LinkageMetrics:
    attempts: Counter
    incidents: Counter
    first_attempt_s: Histogram
    ack_s: Histogram
    rate_limited: Counter
    in_flight: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry) -> LinkageMetrics:
        """The linkage metrics on `registry` — once per registry: the composition root does it for
        the process's registry (yiju/runtime.py); tests and tools pass a private one."""
        return cls(
            attempts=Counter(
                "yiju_linkage_attempts",
                "Delivery attempts by channel and outcome",
                ("channel", "outcome"),
                registry=registry,
            ),
            incidents=Counter(
                "yiju_linkage_incidents",
                "Incidents started (drill: true/false)",
                ("drill",),
                registry=registry,
            ),
            first_attempt_s=Histogram(
                "yiju_linkage_first_attempt_seconds",
                "Alarm committed → first notification attempt started",
                buckets=_FIRST_BUCKETS,
                registry=registry,
            ),
            ack_s=Histogram(
                "yiju_linkage_ack_seconds",
                "Alarm → acknowledgement of its incident",
                buckets=_ACK_BUCKETS,
                registry=registry,
            ),
            rate_limited=Counter(
                "yiju_linkage_rate_limited",
                "Deliveries held back by a per-number rate limit",
                registry=registry,
            ),
            in_flight=Gauge("yiju_linkage_in_flight", "Deliveries being sent now", registry=registry),
        )
