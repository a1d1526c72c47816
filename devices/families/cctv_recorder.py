"""CCTV recorders (NVR/DVR) with channels (视频监控). standards.md §6: retention ≥ 30 days.

`earliest_recording` per channel is ONVIF `EarliestRecording` / the first GB/T 28181 RecordInfo
StartTime; retention days = now − earliest_recording.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, model_validator

from devices.envelope import DeviceTime
from devices.families.common import Bool, Wire, ensure_unique

CHANNELS_MAX = 256
ChannelNo = Annotated[int, Field(strict=True, ge=1, le=CHANNELS_MAX)]
Gigabytes = Annotated[float, Field(strict=True, ge=0, le=10_000_000, allow_inf_nan=False)]


class ChannelState(Wire):
    channel: ChannelNo
    online: Bool
    recording: Bool
    earliest_recording: DeviceTime | None = Field(default=None, description="Oldest footage still kept")
    latest_recording: DeviceTime | None = Field(default=None, description="Newest footage")

    @model_validator(mode="after")
    def _ordered(self) -> ChannelState:
        if (
            self.earliest_recording is not None
            and self.latest_recording is not None
            and self.earliest_recording > self.latest_recording
        ):
            raise ValueError("earliest_recording is after latest_recording")
        return self


class Telemetry(Wire):
    channels: list[ChannelState] = Field(min_length=1, max_length=CHANNELS_MAX)
    disk_total_gb: Gigabytes = Field(gt=0)
    disk_free_gb: Gigabytes
    disk_healthy: Bool
    overwrite: Bool | None = Field(
        default=None,
        description="The recorder overwrites its oldest footage when the disk is full (循环覆盖); "
        "then a full disk is its normal state, not a fault",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Telemetry:
        ensure_unique([c.channel for c in self.channels], "channel")
        if self.disk_free_gb > self.disk_total_gb:
            raise ValueError("disk_free_gb exceeds disk_total_gb")
        return self


class ChannelOffline(Wire):
    type: Literal["channel_offline"]
    channel: ChannelNo


class ChannelOnline(Wire):
    type: Literal["channel_online"]
    channel: ChannelNo


class RecordingStopped(Wire):
    type: Literal["recording_stopped"]
    channel: ChannelNo


class RecordingStarted(Wire):
    type: Literal["recording_started"]
    channel: ChannelNo


class DiskFault(Wire):
    type: Literal["disk_fault"]
    active: Bool
    disk: int | None = Field(default=None, strict=True, ge=1, le=64)


class DiskFull(Wire):
    type: Literal["disk_full"]
    active: Bool
    overwrite: Bool | None = Field(
        default=None, description="Overwrite mode is on: the oldest footage is being overwritten"
    )


class Gap(Wire):
    """A hole in the recordings of a channel, as found by the recorder."""

    type: Literal["gap"]
    channel: ChannelNo
    start: DeviceTime
    end: DeviceTime

    @model_validator(mode="after")
    def _ordered(self) -> Gap:
        if self.end <= self.start:
            raise ValueError("gap end must be after its start")
        return self


Event = Annotated[
    ChannelOffline | ChannelOnline | RecordingStopped | RecordingStarted | DiskFault | DiskFull | Gap,
    Field(discriminator="type"),
]

# No downlink commands for recorders (domain.md §3).
Command = None


class Defaults(Wire):
    retention_days: float = Field(
        default=30.0,
        description="Video kept at least this long, d — [S2] 国务院令第799号 Art.17; GB 55029-2022 §3.5.2(5)",
    )
    retention_hysteresis_s: float = Field(
        default=3600.0,
        description="A channel's retention verdict changes only once retention is below the limit by more "
        "than this (overwrite frees the oldest footage in blocks, so a recorder sized for exactly 30 "
        "days dips just under it and must not flap), or back at the limit, s — [NOT FOUND] normatively; "
        "configurable",
    )
    gap_tolerance_s: float = Field(
        default=300.0,
        description="Longest tolerated recording gap in the last 30 days, s — [NOT FOUND] normatively "
        "(standards.md §6); configurable",
    )
    channel_offline_confirm_s: float = Field(
        default=180.0,
        description="Channel offline or not recording before alarm, s — [V] GB/T 28181 device SDKs: "
        "3 missed 60 s keepalives",
    )
    disk_free_warning_pct: float = Field(
        default=5.0,
        description="With overwrite off, disk free below this share raises the disk-full fault, % — "
        "[NOT FOUND] normatively; configurable",
    )
    heartbeat_s: int = Field(default=300, description="Report period, s — [V] vendor practice")
    missed_heartbeats: int = Field(
        default=3, description="Missed heartbeats before offline — [V] GB/T 28181 SDKs: 3 missed keepalives"
    )


DEFAULTS = Defaults()


def _seconds(a: datetime | None, b: datetime | None) -> float | None:
    return None if a is None or b is None else (b - a).total_seconds()


def points(t: Telemetry) -> list[tuple[str, int, float]]:
    out: list[tuple[str, int, float]] = [
        ("disk_total_gb", 0, t.disk_total_gb),
        ("disk_free_gb", 0, t.disk_free_gb),
        ("disk_healthy", 0, float(t.disk_healthy)),
    ]
    for c in t.channels:
        out.append(("online", c.channel, float(c.online)))
        out.append(("recording", c.channel, float(c.recording)))
        span = _seconds(c.earliest_recording, c.latest_recording)
        if span is not None:
            # recorded span in days: a proxy of retention that needs no "now"
            out.append(("recorded_days", c.channel, span / 86_400))
    return out
