"""Indicator scoring: the seeds' rules applied to an evidence extract (indicators.md; seeds 000–004).

Contract: `score_all(extract, settings)` is pure — no I/O, no clock — and deterministic: the same extract
and settings give the same results in the same order. Every result says which rule it applied (the
seed's wording), where its data came from, the arithmetic (`2 − 3 × 0.5 = 0.5`), and for each deduction
the evidence (device, channel, alarm, finding or record ids). What device data cannot show is never
scored: such items (or levels) are `manual` or `no_evidence`, and manual findings are reported beside
them, never turned into points.

Jiangsu items score points (floors at 0, "扣完为止"); Yantai, green-community and Zhumadian items are
verdicts (met / partly / not met) per level.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from alerts.indicators.config import FAULT_UNIT_INFO, FaultUnit, IndicatorSettings
from devices.alarms import ALARM_INFO, Check
from devices.alarms import AlarmType as A
from storage.indicators import AlarmRow, DeviceRow, Extract, FindingAgg, RecordRow


class Verdict(StrEnum):
    SCORED = "scored"  # points computed from device data
    MET = "met"
    PARTLY = "partly"
    NOT_MET = "not_met"
    NO_EVIDENCE = "no_evidence"  # device data cannot show it (yet)
    MANUAL = "manual"  # needs an on-site look: see the manual evidence


VERDICT_LABELS: dict[Verdict, tuple[str, str]] = {
    Verdict.SCORED: ("已计分", "scored"),
    Verdict.MET: ("达到", "met"),
    Verdict.PARTLY: ("部分达到", "partly met"),
    Verdict.NOT_MET: ("未达到", "not met"),
    Verdict.NO_EVIDENCE: ("无设备证据", "no device evidence"),
    Verdict.MANUAL: ("需现场核验", "on-site check"),
}


@dataclass(frozen=True, slots=True)
class Evidence:
    ref: str  # "alarm:12", "finding:34", "device:cam-03", "record:5"
    device: str | None
    zh: str
    en: str


@dataclass(frozen=True, slots=True)
class Deduction:
    points: float
    zh: str
    en: str
    evidence: tuple[Evidence, ...]


@dataclass(frozen=True, slots=True)
class Level:
    name: str  # basic | guided | innovative
    verdict: Verdict
    zh: str
    en: str


@dataclass(frozen=True, slots=True)
class ItemResult:
    scheme: str
    number: str
    title_zh: str
    title_en: str
    rule_zh: str  # the seed's scoring rule, verbatim
    rule_en: str
    points_max: float | None
    score: float | None
    verdict: Verdict
    arithmetic: str
    source_zh: str
    source_en: str
    deductions: tuple[Deduction, ...] = ()
    levels: tuple[Level, ...] = ()
    gate: bool = False  # all-or-nothing points (improvement [5]+[6], the +1 of basic [33])


def fmt(x: float) -> str:
    """2.0 → "2", 0.5 → "0.5", 1.7000000001 → "1.7"."""
    text = f"{round(x, 2):.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def per_fault(points_max: float, n: int, each: float) -> tuple[float, str]:
    """Score and arithmetic of "−each per fault, floor 0"."""
    raw = round(points_max - n * each, 4)
    score = max(0.0, raw)
    if n == 0:
        return points_max, f"{fmt(points_max)} − 0 = {fmt(points_max)}"
    text = f"{fmt(points_max)} − {n} × {fmt(each)} = {fmt(raw)}"
    return score, text if raw >= 0 else f"{text} → 0（扣完为止）"


# ---------------------------------------------------------------------------------------------
# Facts derived from the extract


LAMP_FAULTS = frozenset({A.LAMP_FAILURE, A.LIGHTING_CONTROLLER_FAULT, A.DEVICE_OFFLINE, A.SENSOR_IMPLAUSIBLE})
DOOR_FAULTS = frozenset(
    {A.DOOR_CONTROLLER_FAULT, A.DOOR_TAMPER, A.DOOR_HELD_OPEN, A.DOOR_FORCED_OPEN, A.DEVICE_OFFLINE}
)
CCTV_FAULTS = frozenset(
    {
        A.CCTV_RETENTION_SHORT,
        A.CCTV_RECORDING_GAP,
        A.CCTV_CHANNEL_OFFLINE,
        A.CCTV_RECORDING_STOPPED,
        A.CCTV_DISK_FAULT,
        A.DEVICE_OFFLINE,
    }
)
ELEVATOR_UNSAFE = frozenset(
    {
        A.ELEVATOR_OVERSPEED,
        A.ELEVATOR_OVERTRAVEL,
        A.ELEVATOR_DOOR_OPEN_WHILE_MOVING,
        A.ELEVATOR_STOP_OUTSIDE_DOOR_ZONE,
        A.ELEVATOR_SAFETY_CIRCUIT,
        A.RESCUE_OVERDUE,
    }
)


def label(alarm_type: str, lang: str = "zh") -> str:
    """The alarm type's name in the report's language (the raw value for an unknown type)."""
    try:
        info = ALARM_INFO[A(alarm_type)]
    except ValueError:
        return alarm_type
    return info.zh if lang == "zh" else info.en


class Facts:
    """Indexes over one extract, computed once for all items."""

    def __init__(self, x: Extract, s: IndicatorSettings) -> None:
        self.x = x
        self.s = s
        try:
            self.tz = ZoneInfo(x.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            self.tz = ZoneInfo("Asia/Shanghai")
        self.devices = {d.id: d for d in x.devices if d.enabled}
        self.by_family: dict[str, list[DeviceRow]] = defaultdict(list)
        for d in self.devices.values():
            self.by_family[d.family].append(d)
        self.alarms_by_device: dict[int, list[AlarmRow]] = defaultdict(list)
        for a in x.alarms:
            if a.device_id in self.devices:
                self.alarms_by_device[a.device_id].append(a)
        self.records_by_device: dict[int | None, list[RecordRow]] = defaultdict(list)
        self.system_records: dict[str, list[RecordRow]] = defaultdict(list)  # device_id NULL, by family
        for r in x.records:
            if r.device_id is None:
                self.system_records[r.family].append(r)
            else:
                self.records_by_device[r.device_id].append(r)
        self.findings_by_device: dict[int, list[FindingAgg]] = defaultdict(list)
        for f in x.findings:
            if f.device_id in self.devices:
                self.findings_by_device[f.device_id].append(f)

    def family(self, name: str) -> list[DeviceRow]:
        return self.by_family.get(name, [])

    def reported(self, d: DeviceRow) -> bool:
        """Whether the device was heard from in or after the period's start (presence as read)."""
        return d.last_seen is not None and d.last_seen >= self.x.start

    def reported_share(self, family: str) -> tuple[int, int]:
        devs = self.family(family)
        return sum(1 for d in devs if self.reported(d)), len(devs)

    def days(self, a: datetime, b: datetime) -> Iterable[date]:
        """Local calendar days that [a, b) touches, clipped to the period."""
        a, b = max(a, self.x.start), min(b, self.x.end)
        if a >= b:
            return []
        first = a.astimezone(self.tz).date()
        last = (b - timedelta(microseconds=1)).astimezone(self.tz).date()
        return [first + timedelta(days=i) for i in range((last - first).days + 1)]

    def period_days(self) -> list[date]:
        return list(self.days(self.x.start, self.x.end))

    def faults(
        self,
        devices: list[DeviceRow],
        alarm_types: frozenset[A],
        *,
        per_channel: bool = False,
        failing_checks: frozenset[str] = frozenset(),
    ) -> dict[tuple[object, ...], list[Evidence]]:
        """Fault units (by the settings' unit) of these devices, each with its evidence. A device not
        heard from in the period is non-conforming too ("缺一处": its function cannot be shown)."""
        out: dict[tuple[object, ...], list[Evidence]] = defaultdict(list)
        for d in devices:
            if not self.reported(d):
                ev = Evidence(f"device:{d.uid}", d.uid, "期内无数据（设备未上报）", "no data in the period")
                for k in self._units(d.id, 0, self.x.start, None):
                    out[k].append(ev)
                continue
            for a in self.alarms_by_device.get(d.id, []):
                if a.type in alarm_types:
                    self._alarm_units(out, d, a, per_channel=per_channel)
            for f in self.findings_by_device.get(d.id, []):
                if f.check_name in failing_checks and f.compliant < f.total:
                    self._finding_units(out, d, f)
            if per_channel:
                _fold_device_level(out, d.id)
        return out

    def _units(
        self, device_id: int, channel: int, since: datetime, until: datetime | None
    ) -> list[tuple[object, ...]]:
        """The fault units of one non-conformity from `since` to `until` (None: still open)."""
        unit = self.s.fault_unit
        if unit is FaultUnit.OPEN_AT_END and until is not None and until < self.x.end:
            return []
        if unit is FaultUnit.FACILITY_DAY:
            return [(device_id, channel, day) for day in self.days(since, until or self.x.end)]
        return [(device_id, channel)]

    def _alarm_units(
        self, out: dict[tuple[object, ...], list[Evidence]], d: DeviceRow, a: AlarmRow, *, per_channel: bool
    ) -> None:
        until = "未恢复" if a.cleared_at is None else f"至 {self.local(a.cleared_at)}"
        until_en = "not cleared" if a.cleared_at is None else f"until {self.local(a.cleared_at)}"
        for ch in a.channels if per_channel and a.channels else (0,):
            where = f"{d.uid}#{ch}" if ch else d.uid
            ev = Evidence(
                f"alarm:{a.id}",
                d.uid,
                f"{where} {label(a.type)} 自 {self.local(a.first_at)} {until}",
                f"{where} {label(a.type, 'en')} from {self.local(a.first_at)} {until_en}",
            )
            for k in self._units(d.id, ch, a.first_at, a.cleared_at):
                out[k].append(ev)

    def _finding_units(
        self, out: dict[tuple[object, ...], list[Evidence]], d: DeviceRow, f: FindingAgg
    ) -> None:
        unit = self.s.fault_unit
        if unit is FaultUnit.OPEN_AT_END and f.latest_compliant:
            return
        where = f"{d.uid}#{f.channel}" if f.channel else d.uid
        failed = f.total - f.compliant
        ev = Evidence(
            "finding:" + ",".join(str(i) for i in f.failing_ids),
            d.uid,
            f"{where} {f.check_name}/{f.kind} 不合格 {failed} 次（共 {f.total} 次评估）",
            f"{where} {f.check_name}/{f.kind} failed {failed} of {f.total} evaluations",
        )
        if unit is FaultUnit.FACILITY_DAY:  # each non-compliant evaluation counts as a day (CCTV: daily)
            for i in range(failed):
                out[(d.id, f.channel, f"eval{i}")].append(ev)
        else:
            out[(d.id, f.channel)].append(ev)

    def local(self, t: datetime) -> str:
        return t.astimezone(self.tz).strftime("%m-%d %H:%M")

    def manual(self, scheme: str, item: str) -> list[str | None]:
        return [m.verdict for m in self.x.manual if m.scheme == scheme and m.item == item]


def _fold_device_level(out: dict[tuple[object, ...], list[Evidence]], device_id: int) -> None:
    """A recorder-level fault (an alarm naming no channel, e.g. retention short) counts once, and not
    on top of the channel faults that the per-channel findings name: its evidence joins theirs."""
    mine = [k for k in out if k[0] == device_id]
    level = [k for k in mine if k[1] == 0]
    channels = [k for k in mine if k[1] != 0]
    if not level or not channels:
        return
    extra = [e for k in level for e in out.pop(k)]
    for k in channels:
        out[k].extend(extra)


def _unit(f: Facts, lang: str = "zh") -> str:
    zh, en = FAULT_UNIT_INFO[f.s.fault_unit]
    return zh if lang == "zh" else en


def _deductions(
    faults: dict[tuple[object, ...], list[Evidence]], each: float, zh: str, en: str
) -> tuple[Deduction, ...]:
    out = []
    for key in sorted(faults, key=str):
        evs = faults[key]
        out.append(Deduction(each, zh, en, tuple(dict.fromkeys(evs))))
    return tuple(out)


# ---------------------------------------------------------------------------------------------
# Jiangsu livable-area evaluation (seed 000), basic table


def _jiangsu_8(f: Facts) -> ItemResult:
    lamps = f.family("light")
    faults = f.faults(lamps, LAMP_FAULTS)
    score, arithmetic = per_fault(2.0, len(faults), 0.1)
    ok, total = f.reported_share("light")
    return ItemResult(
        "jiangsu_basic",
        "8",
        "公共区域照明设施完好",
        "Public-area lighting intact",
        "[8]和[9]符合要求得2分；有一处设施不符合要求则扣0.1分，扣完为止。",
        "[8]+[9] conform: 2 points; −0.1 per non-conforming facility, floor 0.",
        2.0,
        score if lamps else 0.0,
        Verdict.SCORED,
        arithmetic if lamps else "未登记照明设备：无法证明 → 0",
        f"照明设备 {total} 台，期内上报 {ok} 台；灯具故障/控制器故障/离线告警与期内无数据（{_unit(f)}）",
        f"{total} lamps, {ok} reported; lamp/controller faults, offline, no data ({_unit(f, 'en')})",
        _deductions(faults, 0.1, "照明设施不符合要求", "lighting facility not conforming"),
    )


def _overdue(f: Facts, d: DeviceRow, kinds: frozenset[str], interval_days: int) -> datetime | bool | None:
    """The newest qualifying record of a device (device- or system-level); False when none at all."""
    newest: datetime | None = None
    for r in (*f.records_by_device.get(d.id, ()), *f.system_records.get(d.family, ())):
        if r.kind in kinds:
            newest = r.performed_at if newest is None else max(newest, r.performed_at)
    if newest is None:
        return False
    return newest if newest < f.x.end - timedelta(days=interval_days) else None


def _jiangsu_10(f: Facts) -> ItemResult:
    detectors = f.family("smoke_alarm")
    s = f.s
    shortfalls: list[Deduction] = []
    for d in detectors:
        problems_zh, problems_en = [], []
        test = _overdue(f, d, frozenset({"test"}), s.smoke_test_interval_days)
        if test is not None:
            last = "无记录" if test is False else f"最近 {f.local(test)}"  # type: ignore[arg-type]
            problems_zh.append(f"测试记录超期（要求每 {s.smoke_test_interval_days} 天，{last}）")
            problems_en.append(f"test overdue (every {s.smoke_test_interval_days} d)")
        maint = _overdue(f, d, frozenset({"maintenance", "inspection"}), s.fire_maintenance_interval_days)
        if maint is not None:
            last = "无记录" if maint is False else f"最近 {f.local(maint)}"  # type: ignore[arg-type]
            problems_zh.append(f"检修维护记录超期（要求每 {s.fire_maintenance_interval_days} 天，{last}）")
            problems_en.append(f"maintenance overdue (every {s.fire_maintenance_interval_days} d)")
        if problems_zh:
            ev = Evidence(
                f"device:{d.uid}",
                d.uid,
                f"{d.uid}：" + "；".join(problems_zh),
                f"{d.uid}: " + "; ".join(problems_en),
            )
            shortfalls.append(
                Deduction(
                    0.5, "定期检修维护或记录不完整", "periodic maintenance or records incomplete", (ev,)
                )
            )
    if not detectors:
        score, arithmetic = 0.0, "消防设施、电气火灾报警装置缺失（未登记）→ 0"
    else:
        score, arithmetic = per_fault(2.0, len(shortfalls), 0.5)
    return ItemResult(
        "jiangsu_basic",
        "10",
        "消防设施、电气火灾报警装置定期检修维护且记录完整",
        "Fire facilities and electrical-fire alarms maintained, records complete",
        "消防设施、电气火灾报警装置缺失不得分；设施设置符合要求得2分；如不满足定期进行检修和维护的要求，或记录不完整，则扣0.5分，扣完为止。",
        "Missing: 0. Conforming: 2. Periodic inspection/maintena"
        "nce not met, or records incomplete: −0.5 each, floor 0.",
        2.0,
        score,
        Verdict.SCORED,
        arithmetic,
        f"烟感/电气火灾探测器 {len(detectors)} 台；测试记录（含设"
        f"备自检）间隔 {s.smoke_test_interval_days} 天，"
        f"检修维护记录间隔 {s.fire_maintenance_interval_days} 天"
        f"（GB 25201-2010）；期内记录 {f.x.records_in_period} 条",
        f"{len(detectors)} detectors; tests (incl. self-tests) every {s.smoke_test_interval_days} d, "
        f"maintenance every {s.fire_maintenance_interval_days}"
        f" d; {f.x.records_in_period} records in the period",
        tuple(shortfalls),
    )


def _jiangsu_14(f: Facts) -> ItemResult:
    doors = f.family("access_door")
    faults = f.faults(doors, DOOR_FAULTS)
    score, arithmetic = per_fault(2.0, len(faults), 0.5)
    ok, total = f.reported_share("access_door")
    return ItemResult(
        "jiangsu_basic",
        "14",
        "主要出入口、楼栋单元门安装门禁系统",
        "Access control at main entrances and unit doors",
        "无门禁系统或无安保人员均不得分；符合要求均可得2分；有一处不符合或缺一处均扣0.5分，扣完为止。",
        "No access control (or no guards): 0. Conforming: 2. Each fault: −0.5, floor 0.",
        2.0,
        score if doors else 0.0,
        Verdict.SCORED,
        arithmetic if doors else "无门禁系统（未登记）→ 0",
        f"门禁 {total} 处，期内上报 {ok} 处；门禁故障、防拆、强行开门、长时"
        f"间未关、离线（{_unit(f)}）；安保人员需现场核验",
        f"{total} doors, {ok} reported; controller faults, t"
        "amper, forced, held open, offline; guards: on site",
        _deductions(faults, 0.5, "门禁不符合要求", "access door not conforming"),
    )


def _channels(f: Facts) -> int:
    chans = {(x.device_id, x.channel) for x in f.x.findings if x.check_name == Check.CCTV_RETENTION}
    recorders = {d.id for d in f.family("cctv_recorder")}
    with_channels = {dev for dev, _ in chans}
    return len({c for c in chans if c[0] in recorders}) + len(recorders - with_channels)


def _jiangsu_16(f: Facts) -> ItemResult:
    recorders = f.family("cctv_recorder")
    faults = f.faults(
        recorders, CCTV_FAULTS, per_channel=True, failing_checks=frozenset({Check.CCTV_RETENTION.value})
    )
    score, arithmetic = per_fault(2.0, len(faults), 0.5)
    return ItemResult(
        "jiangsu_basic",
        "16",
        "安防监控接入物业值班室且录像保存不少于30天",
        "CCTV connected to the duty room, recordings kept ≥ 30 days",
        "安防监控设施缺失不得分；符合要求均可得2分；有一处不符合要求或缺一处扣0.5分，扣完为止。",
        "CCTV missing: 0. Conforming: 2. Each fault: −0.5, floor 0.",
        2.0,
        score if recorders else 0.0,
        Verdict.SCORED,
        arithmetic if recorders else "安防监控设施缺失（未登记录像机）→ 0",
        f"录像机 {len(recorders)} 台、通道 {_channels(f)} 路"
        f"；每路：录像保存天数 ≥ {fmt(f.s.retention_days_min)}、"
        f"录像中断、通道离线、录像停止、硬盘故障（{_unit(f)}）",
        f"{len(recorders)} recorders, {_channels(f)} channels;"
        f" retention ≥ {fmt(f.s.retention_days_min)} d, gaps, "
        "offline, recording stopped, disk faults",
        _deductions(faults, 0.5, "监控通道不符合要求", "CCTV channel not conforming"),
    )


def _charger_functions(f: Facts) -> tuple[list[Evidence], list[Evidence], bool]:
    """(cutoff failures, silent faults, cutoff demonstrated) of the community's posts in the period."""
    cut_fail: list[Evidence] = []
    silent: list[Evidence] = []
    demonstrated = False
    for d in f.family("ebike_charger"):
        for x in f.findings_by_device.get(d.id, []):
            failed = x.total - x.compliant
            ref = "finding:" + ",".join(str(i) for i in x.failing_ids)
            if x.check_name in (Check.AUTO_CUTOFF, Check.PROTECTION_CONFIG):
                demonstrated = demonstrated or x.compliant > 0
                if failed:
                    cut_fail.append(
                        Evidence(
                            ref,
                            d.uid,
                            f"{d.uid} {x.check_name}/{x.kind} 失败 {failed} 次",
                            f"{d.uid} {x.check_name}/{x.kind} failed {failed}×",
                        )
                    )
            elif x.check_name == Check.FAULT_ALARM and failed:
                silent.append(
                    Evidence(
                        ref,
                        d.uid,
                        f"{d.uid} 故障未报警（{x.kind}）{failed} 次",
                        f"{d.uid} fault without alarm ({x.kind}) {failed}×",
                    )
                )
    return cut_fail, silent, demonstrated


def _jiangsu_33(f: Facts) -> ItemResult:
    posts = f.family("ebike_charger")
    cut_fail, silent, demonstrated = _charger_functions(f)
    deductions: list[Deduction] = []
    if not posts:
        score, arithmetic = 0.0, "设施缺失（未登记充电桩）→ 0"
    else:
        bonus = bool(demonstrated and not cut_fail and not silent)
        score = 3.0 if bonus else 2.0
        arithmetic = f"2 + {1 if bonus else 0} = {fmt(score)}"
        if cut_fail:
            deductions.append(Deduction(1.0, "自动断电功能未达到", "auto power-off failed", tuple(cut_fail)))
        elif not demonstrated:
            deductions.append(
                Deduction(
                    1.0,
                    "期内无自动断电的设备证据（无触发、无保护设置上报）",
                    "auto power-off not evidenced in the period",
                    (),
                )
            )
        if silent:
            deductions.append(
                Deduction(
                    1.0,
                    "故障报警功能未达到（静默故障）",
                    "fault alarm function failed (silent faults)",
                    tuple(silent),
                )
            )
    return ItemResult(
        "jiangsu_basic",
        "33",
        "电动自行车充电桩位，具备自动断电、故障报警功能",
        "E-bike charging posts with auto power-off and fault alarm",
        "设施缺失不得分；设有或预留电动自行车充电桩位得2分；具备自动断电、故障报警等功能得1分。",
        "Missing: 0. Posts installed or reserved: 2. Auto power-off and fault alarm functions: +1.",
        3.0,
        score,
        Verdict.SCORED,
        arithmetic,
        f"充电桩 {len(posts)} 台；自动断电核查（每次触发的断电时延）、保护设置核查、故障报警核查（静默故障）",
        f"{len(posts)} posts; auto-cutoff findings (delay per "
        "trigger), protection settings, silent-fault findings",
        tuple(deductions),
        gate=True,
    )


# ---------------------------------------------------------------------------------------------
# Jiangsu improvement table


def _unsafe(f: Facts, d: DeviceRow) -> list[Evidence]:
    return [
        Evidence(
            f"alarm:{a.id}",
            d.uid,
            f"{d.uid} {label(a.type)} {f.local(a.first_at)}",
            f"{d.uid} {label(a.type, 'en')} {f.local(a.first_at)}",
        )
        for a in f.alarms_by_device.get(d.id, [])
        if a.type in ELEVATOR_UNSAFE
    ]


def _improve_1(f: Facts) -> ItemResult:
    retrofits = [d for d in f.family("elevator") if d.retrofit]
    safe, deductions = 0, []
    for d in retrofits:
        bad = _unsafe(f, d)
        if not f.reported(d):
            bad.append(Evidence(f"device:{d.uid}", d.uid, f"{d.uid} 期内无数据", f"{d.uid} no data"))
        if bad:
            deductions.append(
                Deduction(
                    1.0,
                    "加装电梯未证明安全运行",
                    "retrofitted elevator not shown operating safely",
                    tuple(bad),
                )
            )
        else:
            safe += 1
    score = float(min(2, safe))
    return ItemResult(
        "jiangsu_improve",
        "1",
        "既有建筑加装电梯并安全运行",
        "Elevators added to existing buildings, operating safely",
        "加装1部即可加1分，满分为2分。",
        "+1 per added elevator, max 2.",
        2.0,
        score,
        Verdict.SCORED,
        f"min(2, {safe}) = {fmt(score)}",
        f"登记为加装的电梯 {len(retrofits)} 部，期内无超速、冲顶蹲底"
        f"、开门走车、门区外停梯、安全回路断路、困人救援超时且有上报的 {safe} 部",
        f"{len(retrofits)} retrofitted elevators, {safe} reported without safety alarms in the period",
        tuple(deductions),
    )


def _improve_5_6(f: Facts) -> ItemResult:
    missing: list[Deduction] = []
    parts_zh, parts_en = [], []
    for family, zh, en in (("light", "公共照明", "lighting"), ("elevator", "电梯", "elevators")):
        ok, total = f.reported_share(family)
        share = ok / total if total else 0.0
        parts_zh.append(f"{zh} {ok}/{total}")
        parts_en.append(f"{en} {ok}/{total}")
        if share < f.s.monitored_online_min:
            missing.append(
                Deduction(
                    2.0,
                    f"{zh}未集中监控（上报率 {share:.0%} < {f.s.monitored_online_min:.0%}）",
                    f"{en} not centrally monitored ({share:.0%})",
                    (),
                )
            )
    if "met" not in f.manual("jiangsu_improve", "5"):
        missing.append(
            Deduction(
                2.0,
                "风机、排污泵不在平台设备范围内：需现场核验记录",
                "fans and sewage pumps: no device family, record an on-site finding",
                (),
            )
        )
    linkage_ok = sum(x.compliant for x in f.x.findings if x.check_name == Check.LINKAGE)
    if linkage_ok == 0:
        missing.append(
            Deduction(
                2.0, "期内无联动执行记录（门禁释放、燃气切断）", "no linkage executions in the period", ()
            )
        )
    if "met" not in f.manual("jiangsu_improve", "6"):
        missing.append(
            Deduction(2.0, "应急呼救系统：无呼叫记录证据", "emergency call system: no evidence of calls", ())
        )
    score = 0.0 if missing else 2.0
    return ItemResult(
        "jiangsu_improve",
        "5+6",
        "设备集中监控的智能化系统；应急呼救系统与门禁、燃气报警、入侵报警有效联动",
        "Centralised monitoring; emergency call system linked with access control, gas and intrusion alarms",
        "[5]和[6]符合要求即可得2分，不符合要求不得分。",
        "[5] and [6] conforming: 2; otherwise 0.",
        2.0,
        score,
        Verdict.SCORED,
        "2（全部符合）" if not missing else f"0（{len(missing)} 项未证明）",
        "上报率 " + "，".join(parts_zh) + f"；联动执行 {linkage_ok} 次",
        "reported " + ", ".join(parts_en) + f"; {linkage_ok} linkage executions",
        tuple(Deduction(0.0, d.zh, d.en, d.evidence) for d in missing),
        gate=True,
    )


# ---------------------------------------------------------------------------------------------
# Yantai, green community, Zhumadian: verdicts


def _share_verdict(ok: int, total: int, minimum: float) -> Verdict:
    if total == 0:
        return Verdict.NOT_MET
    return Verdict.MET if ok / total >= minimum else Verdict.PARTLY if ok else Verdict.NOT_MET


def _worst(levels: Iterable[Verdict]) -> Verdict:
    order = [Verdict.NOT_MET, Verdict.PARTLY, Verdict.NO_EVIDENCE, Verdict.MANUAL, Verdict.MET]
    present = set(levels)
    return next((v for v in order if v in present), Verdict.NO_EVIDENCE)


def _verdict_item(  # noqa: PLR0917 - the columns of an item's table row, in the table's order
    scheme: str,
    number: str,
    title_zh: str,
    title_en: str,
    rule_zh: str,
    rule_en: str,
    levels: list[Level],
    src: tuple[str, str],
) -> ItemResult:
    verdict = _worst(lv.verdict for lv in levels if lv.name == "basic") if levels else Verdict.NO_EVIDENCE
    return ItemResult(
        scheme,
        number,
        title_zh,
        title_en,
        rule_zh,
        rule_en,
        None,
        None,
        verdict,
        "",
        src[0],
        src[1],
        (),
        tuple(levels),
    )


def _family_level(f: Facts, family: str, name: str, zh: str, en: str) -> Level:
    ok, total = f.reported_share(family)
    return Level(
        name,
        _share_verdict(ok, total, f.s.monitored_online_min),
        f"{zh} {total} 台，期内上报 {ok} 台",
        f"{en}: {ok}/{total} reported",
    )


def _manual_level(  # noqa: PLR0917 - (facts, scheme, item, level, label zh, label en) as the tables name them
    f: Facts, scheme: str, item: str, name: str, zh: str, en: str
) -> Level:
    verdicts = [v for v in f.manual(scheme, f"{item}.{name}") if v]
    if verdicts:
        v = Verdict(verdicts[-1])
        return Level(name, v, f"{zh}（现场核验记录）", f"{en} (on-site record)")
    return Level(name, Verdict.MANUAL, f"{zh}：需现场核验", f"{en}: on-site check")


def _acked(f: Facts) -> tuple[int, int]:
    alarms = [a for a in f.x.alarms if a.device_id in f.devices]
    return sum(1 for a in alarms if a.acknowledged_at is not None), len(alarms)


def _yantai(f: Facts) -> list[ItemResult]:
    lamps_l = _family_level(f, "light", "innovative", "照明接入平台", "lighting on the platform")
    cut_fail, silent, demonstrated = _charger_functions(f)
    posts = f.family("ebike_charger")
    charging = (
        Verdict.NOT_MET
        if not posts
        else Verdict.MET
        if demonstrated and not cut_fail and not silent
        else Verdict.PARTLY
    )
    acked, alarms = _acked(f)
    linkage_ok = sum(x.compliant for x in f.x.findings if x.check_name == Check.LINKAGE)
    doors = _family_level(f, "access_door", "basic", "门禁", "access doors")
    cctv = _family_level(f, "cctv_recorder", "basic", "视频监控", "video surveillance")
    basic_safety = Level(
        "basic", _worst([doors.verdict, cctv.verdict]), f"{doors.zh}；{cctv.zh}", f"{doors.en}; {cctv.en}"
    )
    warn = Verdict.PARTLY if alarms else Verdict.NO_EVIDENCE  # call-system evidence: none yet, so never met
    return [
        _verdict_item(
            "yantai",
            "11",
            "智慧照明",
            "Smart lighting",
            "基础性：室外照明系统化规划并有控制系统；引导性：分区、定时、感应控制；创新性：接入社区智慧服务平台",
            "basic: planned with a control system; guided: zone"
            "d/timed/sensor control; innovative: on the platform",
            [
                _family_level(f, "light", "basic", "照明设备", "lamps"),
                _manual_level(f, "yantai", "11", "guided", "分区/定时/感应控制策略", "control strategy"),
                lamps_l,
            ],
            ("照明设备上报率", "lamp reporting share"),
        ),
        _verdict_item(
            "yantai",
            "23",
            "绿色能源",
            "Green energy",
            "基础性：非机动车充电设施并落实消防安全管理；引导性：智能换电柜；创新性：光伏+储能",
            "basic: e-bike charging with fire-safety management; g"
            "uided: battery-swap cabinets; innovative: PV + storage",
            [
                Level(
                    "basic",
                    charging,
                    f"充电桩 {len(posts)} 台；自动断电/故障报警核查失败 {len(cut_fail) + len(silent)} 项",
                    f"{len(posts)} posts; {len(cut_fail) + len(silent)} function failures",
                ),
                Level(
                    "guided",
                    Verdict.NO_EVIDENCE,
                    "换电柜不在平台设备范围内",
                    "battery-swap cabinets: no device family",
                ),
                Level(
                    "innovative",
                    Verdict.NO_EVIDENCE,
                    "光伏储能不在平台设备范围内",
                    "PV + storage: no device family",
                ),
            ],
            ("充电桩核查结果", "charging-post findings"),
        ),
        _verdict_item(
            "yantai",
            "26",
            "应急救援",
            "Emergency rescue",
            "基础性：周边应急救援站；引导性：专业培训的救援队伍；创新性：平台预警、地图定位、一键呼救、联动报警，实现“零延时”预警救援",
            "basic: rescue station nearby; guided: trained team; in"
            "novative: platform warning, one-key help, linked alarms",
            [
                _manual_level(f, "yantai", "26", "basic", "应急救援站", "rescue station"),
                _manual_level(f, "yantai", "26", "guided", "救援队伍", "rescue team"),
                Level(
                    "innovative",
                    warn,
                    f"平台告警 {alarms} 条（已确认 {acked}）；联动执行 {linkage_ok} 次；呼叫系统无证据",
                    f"{alarms} alarms ({acked} acknowledged);"
                    f" {linkage_ok} linkage executions; calls: no evidence",
                ),
            ],
            ("告警与联动记录", "alarms and linkage records"),
        ),
        _verdict_item(
            "yantai",
            "27",
            "智慧平安",
            "Smart safety",
            "基础性：楼宇对讲、出入口管理、视频监控；引导性：数据采集利用、响应居民求助；创新性：人脸识别、数字身份",
            "basic: intercom, entrances, video; guided: data use, r"
            "esponse to calls for help; innovative: face recognition",
            [
                basic_safety,
                Level(
                    "guided",
                    Verdict.PARTLY if acked else Verdict.NO_EVIDENCE,
                    f"告警已确认 {acked}/{alarms}",
                    f"alarms acknowledged {acked}/{alarms}",
                ),
                _manual_level(f, "yantai", "27", "innovative", "人脸识别/数字身份", "face recognition"),
            ],
            ("门禁与视频监控上报率", "doors and CCTV reporting"),
        ),
        _verdict_item(
            "yantai",
            "28",
            "韧性治理",
            "Resilient governance",
            "基础性：防控机制与应急物资；引导性：全周期风险预警与快速响应；创新性：消防应急、火灾等纳入智慧平台",
            "basic: prevention and supplies; guided: full-cycle warning"
            " and response; innovative: fire emergencies on the platform",
            [
                _manual_level(f, "yantai", "28", "basic", "应急物资与机制", "supplies and mechanism"),
                Level(
                    "guided",
                    Verdict.PARTLY if acked else Verdict.NO_EVIDENCE,
                    f"告警 {alarms} 条，已确认 {acked}",
                    f"{alarms} alarms, {acked} acknowledged",
                ),
                _family_level(
                    f, "smoke_alarm", "innovative", "消防探测器接入平台", "fire detectors on the platform"
                ),
            ],
            ("告警处置与消防探测器上报", "alarm handling, detectors reporting"),
        ),
        _verdict_item(
            "yantai",
            "31",
            "智慧物业",
            "Smart property management",
            "基础性：物业管理平台，“平台+管家”服务；引导性：任务清单；创新性：增值服务",
            "basic: property platform; guided: task lists; innovative: value-added services",
            [
                Level(
                    "basic",
                    Verdict.MET if acked else Verdict.PARTLY,
                    f"值班室确认告警 {acked}/{alarms}",
                    f"duty room acknowledged {acked}/{alarms}",
                ),
                Level(
                    "guided",
                    Verdict.PARTLY if f.x.records_in_period else Verdict.MANUAL,
                    f"期内维保/巡检记录 {f.x.records_in_period} 条",
                    f"{f.x.records_in_period} maintenance records",
                ),
                _manual_level(f, "yantai", "31", "innovative", "增值服务", "value-added services"),
            ],
            ("告警确认与维保记录", "acknowledgements and records"),
        ),
    ]


def _others(f: Facts) -> list[ItemResult]:
    doors = _family_level(f, "access_door", "basic", "门禁", "access doors")
    cctv = _family_level(f, "cctv_recorder", "basic", "视频监控", "video surveillance")
    cctv_faults = f.faults(
        f.family("cctv_recorder"),
        CCTV_FAULTS,
        per_channel=True,
        failing_checks=frozenset({Check.CCTV_RETENTION.value}),
    )
    lamp_faults = f.faults(f.family("light"), LAMP_FAULTS)
    open_lamps = [
        k for k, evs in lamp_faults.items() if any("未恢复" in e.zh or "无数据" in e.zh for e in evs)
    ]
    cut_fail, silent, demonstrated = _charger_functions(f)
    fire_ok, fire_total = f.reported_share("smoke_alarm")
    posts = f.family("ebike_charger")
    retrofits = [d for d in f.family("elevator") if d.retrofit]
    unsafe = [d for d in retrofits if _unsafe(f, d)]

    def one(v: Verdict, zh: str, en: str) -> list[Level]:
        return [Level("basic", v, zh, en)]

    return [
        _verdict_item(
            "green",
            "11",
            "建设智能化安防系统",
            "An intelligent security system",
            "建设了智能化安防系统",
            "An intelligent security system is built",
            [
                Level(
                    "basic",
                    _worst([doors.verdict, cctv.verdict]),
                    f"{doors.zh}；{cctv.zh}",
                    f"{doors.en}; {cctv.en}",
                )
            ],
            ("门禁与视频监控上报率", "doors and CCTV reporting"),
        ),
        _verdict_item(
            "zhumadian",
            "11",
            "消防设施完善；电动车集中规范充电",
            "Fire facilities; e-bikes charged centrally",
            "完善消防设施，电动自行车集中规范充电，设置微型消防站",
            "fire facilities, regulated central e-bike charging, micro fire station",
            one(
                Verdict.NOT_MET
                if not fire_total or not posts
                else Verdict.MET
                if demonstrated and not cut_fail and not silent
                else Verdict.PARTLY,
                f"消防探测器 {fire_total} 台（上报 {fire_ok}）；充电桩 {len(posts)}"
                f" 台，功能核查失败 {len(cut_fail) + len(silent)} 项；微型消防站需现场核验",
                f"{fire_total} detectors ({fire_ok} reported); {len(posts)} post"
                f"s, {len(cut_fail) + len(silent)} failures; fire station on site",
            ),
            ("消防探测器与充电桩核查", "detectors and charging posts"),
        ),
        _verdict_item(
            "zhumadian",
            "12",
            "监控系统完善",
            "Surveillance system complete",
            "完善安防监控系统",
            "surveillance system complete",
            one(
                Verdict.NOT_MET
                if not f.family("cctv_recorder")
                else Verdict.MET
                if not cctv_faults
                else Verdict.PARTLY,
                f"监控通道 {_channels(f)} 路，不符合 {len(cctv_faults)} 处",
                f"{_channels(f)} channels, {len(cctv_faults)} not conforming",
            ),
            ("录像保存与通道状态", "retention and channel state"),
        ),
        _verdict_item(
            "zhumadian",
            "13/14/19",
            "庭院、楼道、地下室照明完好并及时维修",
            "Courtyard, stairwell, basement lighting intact and repaired",
            "照明设施完好，损坏及时维修",
            "lighting intact, repaired promptly",
            one(
                Verdict.NOT_MET
                if not f.family("light")
                else Verdict.MET
                if not lamp_faults
                else Verdict.PARTLY
                if not open_lamps
                else Verdict.NOT_MET,
                f"期内灯具故障 {len(lamp_faults)} 处，期末未修复或无数据 {len(open_lamps)} 处",
                f"{len(lamp_faults)} lamp faults, {len(open_lamps)} unresolved",
            ),
            ("灯具故障告警", "lamp fault alarms"),
        ),
        _verdict_item(
            "zhumadian",
            "20",
            "防盗门与楼宇对讲",
            "Security doors and intercom",
            "单元防盗门、楼宇对讲",
            "unit security doors and intercom",
            [Level("basic", doors.verdict, doors.zh, doors.en)],
            ("门禁上报率", "doors reporting"),
        ),
        _verdict_item(
            "zhumadian",
            "26",
            "加装电梯符合安全规范",
            "Retrofitted elevators meet safety codes",
            "加装电梯符合安全规范",
            "retrofitted elevators meet safety codes",
            one(
                Verdict.NO_EVIDENCE if not retrofits else Verdict.MET if not unsafe else Verdict.PARTLY,
                f"加装电梯 {len(retrofits)} 部，期内有安全告警 {len(unsafe)} 部",
                f"{len(retrofits)} retrofits, {len(unsafe)} with safety alarms",
            ),
            ("电梯安全告警", "elevator safety alarms"),
        ),
    ]


ITEMS: tuple[Callable[[Facts], ItemResult], ...] = (
    _jiangsu_8,
    _jiangsu_10,
    _jiangsu_14,
    _jiangsu_16,
    _jiangsu_33,
    _improve_1,
    _improve_5_6,
)


def score_all(x: Extract, s: IndicatorSettings) -> list[ItemResult]:
    """Every item the backend can evidence, in the order of the seeds' tables."""
    return score_facts(Facts(x, s))


def score_facts(f: Facts) -> list[ItemResult]:
    """`score_all` on indexes already built (the report builds them once for scores and charts)."""
    return [item(f) for item in ITEMS] + _yantai(f) + _others(f)
