"""The indicator report: scores, summary, charts' data and a fingerprint, built from one evidence extract.

Contract: `build(extract, settings, generated_at)` is pure. The fingerprint is the SHA-256 of the
canonical JSON of the extract and the settings (the period is part of the extract), so the same data,
period and settings give the same fingerprint and the same report; only `generated_at` differs.
`as_json()` is the platform form; `alerts.indicators.render` makes the HTML and PDF from the same object.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from alerts.indicators.config import FAULT_UNIT_INFO, IndicatorSettings
from alerts.indicators.scoring import (
    CCTV_FAULTS,
    LAMP_FAULTS,
    VERDICT_LABELS,
    Facts,
    ItemResult,
    Verdict,
    fmt,
    score_facts,
)
from devices.alarms import Check, Severity
from storage.indicators import Extract, ManualRow

SCHEMES: dict[str, tuple[str, str]] = {
    "jiangsu_basic": ("江苏省宜居住区评价 · 基础类", "Jiangsu livable-area evaluation · basic"),
    "jiangsu_improve": ("江苏省宜居住区评价 · 提升类", "Jiangsu livable-area evaluation · improvement"),
    "yantai": ("烟台市美好社区创建指标", "Yantai beautiful-community indicators"),
    "green": ("绿色社区创建标准", "Green community creation standard"),
    "zhumadian": ("驻马店老旧小区改造内容", "Zhumadian renovation content"),
}


@dataclass(frozen=True, slots=True)
class Summary:
    device_points: float  # scored items' points
    device_points_max: float
    scored_items: int
    gate_items: tuple[str, ...]  # "jiangsu_basic 33: 2 of 3"
    verdicts: dict[str, int]  # verdict items by verdict
    manual_items: tuple[str, ...]  # scheme:item with manual evidence recorded


@dataclass(frozen=True, slots=True)
class Charts:
    lamp_working_rate: tuple[tuple[str, float], ...]  # (local date, share of lamps without a fault)
    retention_days: tuple[tuple[str, float], ...]  # ("uid#ch", days), shortest first
    cutoff_delays_s: tuple[float, ...]
    ack_minutes: tuple[float, ...]  # fault → acknowledgement of acknowledged fault alarms


@dataclass(frozen=True, slots=True)
class Report:
    community_id: int
    community_code: str
    community_name: str
    period_start: datetime
    period_end: datetime
    timezone: str
    generated_at: datetime
    fingerprint: str
    settings: IndicatorSettings
    items: tuple[ItemResult, ...]
    summary: Summary
    charts: Charts
    manual: tuple[ManualRow, ...]


def _canonical(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _canonical(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    return value


def _plain(value: object) -> object:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    raise TypeError(f"not part of an extract: {type(value).__name__}")


def fingerprint(x: Extract, s: IndicatorSettings) -> str:
    """SHA-256 of the extract (every row, field by field, in the extract's order) and the settings."""
    parts: dict[str, object] = {}
    for f in dataclasses.fields(x):
        value = getattr(x, f.name)
        if isinstance(value, tuple) and value and dataclasses.is_dataclass(value[0]):
            names = [g.name for g in dataclasses.fields(value[0])]
            parts[f.name] = [names, [[getattr(row, n) for n in names] for row in value]]
        else:
            parts[f.name] = value
    blob = json.dumps(
        {"extract": parts, "settings": s.model_dump(mode="json")},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
        default=_plain,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def _charts(f: Facts) -> Charts:
    lamps = f.family("light")
    faulty: dict[str, set[int]] = defaultdict(set)
    for d in lamps:
        for a in f.alarms_by_device.get(d.id, []):
            if a.type in LAMP_FAULTS:
                for day in f.days(a.first_at, a.cleared_at or f.x.end):
                    faulty[day.isoformat()].add(d.id)
    rate = (
        tuple(
            (day.isoformat(), round(1 - len(faulty[day.isoformat()]) / len(lamps), 4))
            for day in f.period_days()
        )
        if lamps
        else ()
    )
    retention: dict[str, float] = {}
    uid = {d.id: d.uid for d in f.devices.values()}
    for x in f.x.findings:
        if x.check_name == Check.CCTV_RETENTION and x.latest_measured_s is not None and x.device_id in uid:
            retention[f"{uid[x.device_id]}#{x.channel}"] = round(x.latest_measured_s / 86_400, 2)
    faults = LAMP_FAULTS | CCTV_FAULTS
    acks = tuple(
        round((a.acknowledged_at - a.first_at).total_seconds() / 60, 2)
        for a in f.x.alarms
        if a.acknowledged_at is not None
        and a.device_id in f.devices
        and (a.type in faults or a.severity == Severity.CRITICAL or "fault" in a.type)
    )
    return Charts(
        rate,
        tuple(sorted(retention.items(), key=lambda kv: (kv[1], kv[0]))),
        f.x.cutoff_delays_s,
        acks,
    )


def _summary(items: list[ItemResult], manual: tuple[ManualRow, ...]) -> Summary:
    scored = [i for i in items if i.verdict is Verdict.SCORED and i.points_max is not None]
    verdicts: dict[str, int] = defaultdict(int)
    for i in items:
        if i.verdict is not Verdict.SCORED:
            verdicts[i.verdict.value] += 1
    return Summary(
        device_points=round(sum(i.score or 0.0 for i in scored), 2),
        device_points_max=sum(i.points_max or 0.0 for i in scored),
        scored_items=len(scored),
        gate_items=tuple(
            f"{SCHEMES[i.scheme][0]} [{i.number}]: {fmt(i.score or 0)} / {fmt(i.points_max or 0)}"
            for i in items
            if i.gate
        ),
        verdicts=dict(sorted(verdicts.items())),
        manual_items=tuple(dict.fromkeys(f"{m.scheme}:{m.item}" for m in manual)),
    )


def build(x: Extract, s: IndicatorSettings, generated_at: datetime) -> Report:
    facts = Facts(x, s)
    items = score_facts(facts)
    return Report(
        community_id=x.community_id,
        community_code=x.community_code,
        community_name=x.community_name,
        period_start=x.start,
        period_end=x.end,
        timezone=x.timezone,
        generated_at=generated_at,
        fingerprint=fingerprint(x, s),
        settings=s,
        items=tuple(items),
        summary=_summary(items, x.manual),
        charts=_charts(facts),
        manual=x.manual,
    )


def as_json(r: Report) -> dict[str, Any]:
    """The report for platforms: everything the PDF says, as data."""
    out: dict[str, Any] = _canonical(r)
    out["settings"] = r.settings.model_dump(mode="json")
    out["settings_labels"] = {"fault_unit": FAULT_UNIT_INFO[r.settings.fault_unit][0]}
    for item, raw in zip(r.items, out["items"], strict=True):
        raw["verdict_label"] = VERDICT_LABELS[item.verdict][0]
        raw["scheme_label"] = SCHEMES[item.scheme][0]
    return out
