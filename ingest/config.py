"""Settings of the ingest service (`Settings.ingest`). Plain values only; read by the composition root."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, Field


class IngestSettings(BaseModel):
    """MQTT ingest: batching, back-pressure, edge validation, presence and metrics."""

    batch_size: int = Field(
        default=2000, ge=1, le=100_000, description="A batch is flushed when it holds this many messages."
    )
    flush_age_s: float = Field(
        default=0.05,
        gt=0,
        le=60,
        description="…or when its oldest message has waited this long (bounds publish-to-commit lag).",
    )
    receive_maximum: int = Field(
        default=5000,
        ge=10,
        le=65_535,
        description="MQTT 5 Receive Maximum: unacknowledged QoS 1 messages the broker may send us. "
        "It bounds memory (nothing is held that the broker does not also hold) and, with the commit "
        "latency, the throughput of one process (≈ receive_maximum / ack lag). The broker's own "
        "per-client in-flight limit (Mosquitto max_inflight_messages) applies too.",
    )
    write_queue_batches: int = Field(
        default=2, ge=1, le=16, description="Decoded batches waiting for the writer before decoding blocks."
    )
    max_payload_bytes: int = Field(
        default=64 * 1024,
        ge=256,
        description="Larger payloads are dead-lettered as oversize before any parsing "
        "(device documents are < 4 KiB; vendor practice [V]).",
    )
    dead_letter_payload_bytes: int = Field(
        default=4096, ge=0, description="How much of a refused payload is kept in dead_letters."
    )
    max_past: timedelta = Field(
        default=timedelta(days=3),
        description="Oldest accepted device time of telemetry relative to the receive time (events, "
        "status and acks outside the window are kept at the receive time instead). Devices flush "
        "buffered data after an outage; 3 days matches the rollup refresh window so late points still "
        "reach points_hourly, and stays inside TimescaleDB's compress_after (7 d) — [NOT FOUND] no "
        "standard sets an acceptance window; chosen for storage",
    )
    max_future: timedelta = Field(
        default=timedelta(minutes=5),
        description="Newest accepted device time of telemetry relative to the receive time (a clock "
        "ahead by less is corrected for and flagged as clock_skew) — [NOT FOUND] no standard sets an "
        "acceptance window; GB 50396-2007 §5.1.3 clocks err < 10 s/day",
    )
    registry_refresh_s: float = Field(
        default=60.0,
        gt=0,
        description="Reload the whole device registry cache at least this often (a safety net: changes "
        "arrive as notifications when they commit).",
    )
    registry_miss_lookups_per_s: float = Field(
        default=50.0,
        gt=0,
        description="A message of a device the registry cache does not know is looked up in the "
        "database before it is dead-lettered unknown_device — at most this many lookups per second "
        "(a flood of made-up device ids must not hammer the database). The cache itself follows the "
        "registry's change notifications.",
    )
    presence_flush_s: float = Field(
        default=2.0,
        gt=0,
        description="last_seen/last_seq from data messages are written at most this often (status and "
        "Last-Will messages are written with their own batch).",
    )
    presence_sweep_s: float = Field(
        default=15.0,
        gt=0,
        description="How often devices that stopped sending are marked offline. When: each family's "
        "rule, the alert engine's (`alerts.<family>.heartbeat_s` unless the device announced its own "
        "`heartbeat_s`, × `missed_heartbeats`, with the community's overrides).",
    )
    shared_group: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_\-]+$",
        description="MQTT 5 shared-subscription group; unset: Settings.mqtt.shared_group.",
    )
    # Mosquitto 2.0 restores a persistent session's plain subscriptions after a broker restart but
    # not its shared ones: until the ingest session re-subscribes, messages go to "no matching
    # subscribers" and are lost (measured: 68–101 of 16,000 at 4,000 msg/s). One ingest process
    # therefore subscribes plainly; only several processes splitting the load need the shared group.
    shared_subscription: bool | None = Field(
        default=None,
        description="Join the MQTT 5 shared group (several ingest processes split the load). "
        "Unset: shared only under `yiju ingest --workers N` with N > 1; a single process uses a plain "
        "persistent subscription, which the broker restores after a restart.",
    )
    db_retry_initial_s: float = Field(default=0.2, gt=0, description="First back-off after a failed write.")
    db_retry_max_s: float = Field(default=5.0, gt=0, description="Longest back-off between write attempts.")
    metrics_port: int = Field(
        default=9108, ge=0, le=65_535, description="Prometheus /metrics port of `yiju ingest`; 0 = off."
    )
    metrics_host: str = Field(default="127.0.0.1")
    gc_gen0_threshold: int = Field(
        default=100_000,
        ge=0,
        description="Ingest allocates a few short-lived objects per message; with Python's default "
        "(700) the cyclic GC ran ~30 % of decode time (bench/ingest). At start the service freezes the "
        "objects that exist (modules, schemas) and sets this gen-0 threshold; 0 leaves the GC alone.",
    )
    workers: int = Field(default=1, ge=1, le=64, description="Processes started by `yiju ingest`.")
