"""Settings of an indicator assessment (indicators.md §5): what counts as "one fault", the record
intervals, the thresholds the report applies. Defaults cite their source in the convention of the rule
settings (description text, then ` — [LABEL] source`); a community overrides them under
`communities.settings["indicators"]`, and a single report may override them again (API query, CLI flag).
The report prints the values it used.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from yiju.errors import InputError


class FaultUnit(StrEnum):
    """What one deduction counts (Jiangsu items [8] [14] [16]: "有一处不符合要求或缺一处扣…分")."""

    FACILITY = "facility"  # each facility (device, or CCTV channel) non-conforming at any time in the period
    FACILITY_DAY = "facility_day"  # each day a facility was non-conforming
    OPEN_AT_END = "open_at_end"  # each facility still non-conforming when the period ends


FAULT_UNIT_INFO: dict[FaultUnit, tuple[str, str]] = {
    FaultUnit.FACILITY: ("每处设施（设备或视频通道）计一次", "each facility (device or camera channel) once"),
    FaultUnit.FACILITY_DAY: ("每处设施每个故障日计一次", "each facility-day with a fault"),
    FaultUnit.OPEN_AT_END: ("仅计期末仍未修复的设施", "only facilities still faulty at the period's end"),
}


SETTING_LABELS: dict[str, tuple[str, str]] = {
    "fault_unit": ("一处故障的计法", "One fault counts"),
    "smoke_test_interval_days": ("烟感测试记录间隔（天）", "Detector test interval (days)"),
    "fire_maintenance_interval_days": (
        "消防设施维保记录间隔（天）",
        "Fire facility maintenance interval (days)",
    ),
    "retention_days_min": ("录像保存最少天数", "Minimum CCTV retention (days)"),
    "monitored_online_min": ("集中监控最低上报率", "Minimum reporting share for central monitoring"),
}


class IndicatorSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    fault_unit: FaultUnit = Field(
        default=FaultUnit.FACILITY,
        description="What counts as one fault for the per-fault deductions — the seed's wording "
        "'有一处不符合要求或缺一处扣0.5分' counts places (处), i.e. facilities [S] Jiangsu evaluation "
        "method, basic items [8] [14] [16]",
    )
    smoke_test_interval_days: int = Field(
        default=30,
        ge=1,
        le=366,
        description="A smoke / electrical-fire detector needs a test record (device self-test or manual "
        "test) at least this often — [V] detector manuals (monthly test); GB 25201-2010 sets the "
        "periods per facility, exact interval [NOT FOUND]",
    )
    fire_maintenance_interval_days: int = Field(
        default=365,
        ge=1,
        le=366,
        description="Fire facilities need a maintenance / inspection record (维保/检测) at least this often, "
        "per device or for the whole system — [NOT FOUND] GB 25201-2010 (annual test is the common "
        "reading; the clause was not retrieved)",
    )
    retention_days_min: float = Field(
        default=30.0,
        ge=1,
        description="CCTV recordings kept at least this many days — [S] Jiangsu basic item [16] "
        "(监控录像存储时间不少于30天)",
    )
    monitored_online_min: float = Field(
        default=0.9,
        gt=0,
        le=1,
        description="Improvement item [5]: a family counts as centrally monitored when at least this share "
        "of its devices reported in the period — [NOT FOUND]: configurable",
    )

    def with_overrides(self, overrides: dict[str, Any] | None) -> IndicatorSettings:
        if not overrides:
            return self
        try:
            return IndicatorSettings.model_validate({**self.model_dump(), **overrides})
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise InputError(f"indicator setting {where}: {first['msg']}") from exc
