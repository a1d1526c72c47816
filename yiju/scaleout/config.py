"""Settings of scale-out mode (`Settings.scale`, docs/scale-out.md). Plain values only."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field


class ScaleSettings(BaseModel):
    """single: one process does ingest and rules (`yiju run`, the demo, a small site). jetstream:
    `yiju bridge` (MQTT → JetStream) and `yiju partition-worker` (JetStream → storage and rules) do
    it, on as many machines as needed; `yiju run` then serves the API, dispatch and upkeep only."""

    mode: Literal["single", "jetstream"] = Field(default="single", description="single or jetstream.")
    nats_url: str = Field(
        default="nats://127.0.0.1:4222",
        description="Comma-separated NATS servers of the cluster: nats://[user:password@]host:port, or "
        "tls://… for TLS.",
    )
    nats_ca_file: Path | None = Field(
        default=None, description="CA certificate (PEM) that signed the NATS servers' certificates."
    )
    nats_credentials_file: Path | None = Field(
        default=None, description="NATS .creds file (JWT + nkey seed) instead of user:password."
    )
    partitions: int = Field(
        default=16,
        ge=1,
        le=1024,
        description="P of partition(P, community): the most partition workers that can share the work. "
        "Fixed once the stream exists (changing it moves communities between partitions).",
    )
    replicas: int = Field(
        default=3, ge=1, le=5, description="JetStream replicas of the stream, consumers, leases."
    )
    duplicate_window_s: float = Field(
        default=120.0,
        gt=0,
        description="JetStream drops a publish whose Nats-Msg-Id it stored this recently (JetStream's "
        "default, 2 min); later copies are absorbed by the natural key and the engine's sequence window.",
    )
    stream_max_age_s: float = Field(
        default=7 * 24 * 3600.0,
        gt=0,
        description="Messages not consumed within this are dropped — as long as the MQTT session expiry.",
    )
    stream_max_bytes: int = Field(
        default=20 * 1024**3,
        gt=0,
        description="Stream size limit; when full, new publishes are refused (bridges hold and retry, "
        "MQTT keeps the rest), never old messages dropped.",
    )
    publish_timeout_s: float = Field(default=5.0, gt=0, description="Wait for JetStream's publish ack.")
    bridge_batch: int = Field(default=1000, ge=1, description="Messages a bridge publishes at once.")
    bridge_shared_subscription: bool = Field(
        default=False,
        description="False: each bridge holds its own plain persistent subscription and publishes every "
        "message (JetStream deduplicates) — survives a Mosquitto 2.0 restart. True: the bridges share one "
        "$share group (load split, but Mosquitto 2.0 forgets shared subscriptions on restart).",
    )
    lease_ttl_s: float = Field(
        default=10.0,
        ge=1,
        description="A partition's lease expires this long after its holder's last renewal (KV TTL); a "
        "dead worker's partitions are taken over after at most this.",
    )
    ack_wait_s: float = Field(
        default=60.0, gt=0, description="JetStream redelivers a message unacknowledged this long."
    )
    max_ack_pending: int = Field(
        default=5000, ge=1, description="Unacknowledged messages per partition (memory bound per partition)."
    )
    fetch_batch: int = Field(default=500, ge=1, description="Messages per pull request.")
    max_partitions_per_worker: int = Field(
        default=0, ge=0, description="0: a fair share (partitions / live workers, rounded up)."
    )
