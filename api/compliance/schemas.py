"""Compliance summary bodies."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class SummaryLineOut(BaseModel):
    check_name: str = Field(examples=["auto_cutoff"])
    total: int = Field(description="Obligations evaluated")
    compliant: int
    failed: int
    share: float = Field(description="Share met, 0..1 (1 when there was nothing to meet)")
    family: str | None = None
    device_id: int | None = None
    device_uid: str | None = None
    worst_measured_s: float | None = Field(default=None, description="e.g. the slowest measured cutoff delay")
    failing_channels: list[int] = Field(
        default_factory=list,
        description="Device lines: the recorder channels / charger ports with a non-compliant finding",
    )
    late: int = Field(
        default=0, description="Auto-cutoff: non-compliant because the cut came after the deadline (measured)"
    )
    not_cut: int = Field(default=0, description="Auto-cutoff: non-compliant because no cut was ever seen")


class ComplianceSummaryOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "community_id": 1,
                    "window_start": "2026-10-21T00:00:00Z",
                    "window_end": "2026-11-20T00:00:00Z",
                    "by_check": [
                        {
                            "check_name": "auto_cutoff",
                            "total": 412,
                            "compliant": 409,
                            "failed": 3,
                            "share": 0.9927,
                            "worst_measured_s": 95.0,
                            "late": 2,
                            "not_cut": 1,
                        }
                    ],
                    "by_family": [],
                    "failing_devices": [
                        {
                            "check_name": "auto_cutoff",
                            "total": 20,
                            "compliant": 17,
                            "failed": 3,
                            "share": 0.85,
                            "device_id": 7,
                            "device_uid": "chg-shed2-01",
                            "worst_measured_s": 95.0,
                            "failing_channels": [2, 5],
                            "late": 2,
                            "not_cut": 1,
                        }
                    ],
                }
            ]
        }
    )
    community_id: int
    window_start: datetime
    window_end: datetime
    by_check: list[SummaryLineOut]
    by_family: list[SummaryLineOut]
    failing_devices: list[SummaryLineOut]
