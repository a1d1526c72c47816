"""The indicator report as HTML (console page, and the source of the PDF), Chinese first.

Pure string building: every value from the database is escaped; charts are inline SVG drawn here (no
plotting library: the charts are simple bars, and the PDF embeds them as vectors). One font family,
Noto Sans CJK SC (Debian's fonts-noto-cjk), is set on `html` and on the page margin boxes, so headers
and footers never fall back to another face; its Latin glyphs serve the digits and English.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from html import escape

from alerts.indicators.config import FAULT_UNIT_INFO, SETTING_LABELS
from alerts.indicators.period import zone
from alerts.indicators.report import SCHEMES, Report
from alerts.indicators.scoring import VERDICT_LABELS, Deduction, ItemResult, Verdict, fmt

FONT = "Noto Sans CJK SC"
APPENDIX_ROWS = 60  # per item, in the HTML and PDF; the JSON form has every piece

_T: dict[str, tuple[str, str]] = {
    "title": ("智慧社区指标核验报告", "Smart-community indicator verification report"),
    "community": ("社区", "Community"),
    "period": ("核验期间", "Period"),
    "generated": ("生成时间", "Generated at"),
    "fingerprint": ("证据指纹（SHA-256）", "Evidence fingerprint (SHA-256)"),
    "settings": ("核验设置", "Settings used"),
    "summary": ("汇总", "Summary"),
    "device_points": ("设备数据可证明项得分", "Device-evidenced items"),
    "gates": ("门槛项", "Gate items"),
    "verdicts": ("结论项", "Verdict items"),
    "manual": ("现场核验记录", "On-site evidence"),
    "no_manual": (
        "尚无现场核验记录。需现场核验的项目不计分。",
        "No on-site evidence recorded; such items are not scored.",
    ),
    "no": ("编号", "No."),
    "item": ("指标", "Indicator"),
    "points": ("分值", "Points"),
    "rule": ("评分规则（原文）", "Scoring rule (seed)"),
    "source": ("数据来源", "Data source"),
    "score": ("得分 / 结论", "Score / verdict"),
    "arith": ("计算", "Arithmetic"),
    "reasons": ("扣分原因", "Deductions"),
    "evidence": ("证据", "Evidence"),
    "appendix": ("附录：扣分证据", "Appendix: evidence of each deduction"),
    "charts": ("图表", "Charts"),
    "lamp_rate": ("每日亮灯率（无故障灯具占比）", "Lamp working rate per day"),
    "retention": ("各通道录像保存天数（最短 30 路）", "Retention days per channel (shortest 30)"),
    "cutoff": ("自动断电时延（秒）", "Auto-cutoff delays (s)"),
    "ack": ("故障至确认时间（分钟）", "Fault to acknowledgement (min)"),
    "none": ("无数据", "no data"),
    "fault_unit": ("一处故障的计法", "One fault counts"),
    "who": ("记录人", "Recorded by"),
}
_LEVELS = {
    "basic": ("基础性", "basic"),
    "guided": ("引导性", "guided"),
    "innovative": ("创新性", "innovative"),
}


def t(key: str, lang: str) -> str:
    zh, en = _T[key]
    return zh if lang == "zh" else en


def _local(dt: datetime, tz: str) -> str:
    return dt.astimezone(zone(tz)).strftime("%Y-%m-%d %H:%M")


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _css(lang: str, r: Report) -> str:
    page_zh = '"第 " counter(page) " 页 / 共 " counter(pages) " 页"'
    page_en = '"Page " counter(page) " of " counter(pages)'
    head = f"{t('title', lang)} · {r.community_name}".replace('"', "'")
    return f"""
@page {{
  size: A4 landscape; margin: 18mm 12mm 14mm 12mm;
  @top-center {{ content: "{_e(head)}"; font-family: "{FONT}"; font-size: 8pt; color: #555; }}
  @bottom-center {{ content: {page_zh if lang == "zh" else page_en}; font-family: "{FONT}"; font-size: 8pt; }}
  @bottom-right {{ content: "{r.fingerprint[:12]}"; font-family: "{FONT}"; font-size: 7pt; color: #888; }}
}}
html {{ font-family: "{FONT}"; font-size: 9pt; color: #111; }}
body {{ margin: 0; }}
h1 {{ font-size: 20pt; margin: 40mm 0 8mm; }}
h2 {{ font-size: 13pt; border-bottom: 1px solid #999; margin-top: 8mm; }}
h3 {{ font-size: 10.5pt; margin: 4mm 0 2mm; }}
table {{ border-collapse: collapse; width: 100%; margin: 2mm 0; }}
thead {{ display: table-header-group; }}
th, td {{ border: 1px solid #bbb; padding: 1.2mm 1.5mm; vertical-align: top; text-align: left; }}
th {{ background: #eef1f5; }}
tr {{ break-inside: avoid; }}
.cover {{ page-break-after: always; }}
.cover td {{ border: none; padding: 1mm 0; }}
.score {{ font-weight: bold; white-space: nowrap; }}
.arith {{ word-break: keep-all; }}
col.c-no {{ width: 4%; }} col.c-item {{ width: 11%; }} col.c-points {{ width: 4%; }}
col.c-rule {{ width: 18%; }} col.c-source {{ width: 16%; }} col.c-score {{ width: 11%; }}
col.c-arith {{ width: 12%; }} col.c-reasons {{ width: 13%; }} col.c-evidence {{ width: 11%; }}
table.items, table.evidence {{ table-layout: fixed; }}
table.items td:last-child {{ word-break: break-all; }}
.v-met {{ color: #1a7f37; }} .v-partly {{ color: #9a6700; }} .v-not_met {{ color: #cf222e; }}
.v-no_evidence, .v-manual {{ color: #57606a; }}
.small {{ font-size: 7.5pt; color: #444; }}
.appendix {{ page-break-before: always; }}
svg text {{ font-family: "{FONT}"; }}
.lang {{ float: right; font-size: 9pt; }}
@media screen {{
  body {{ max-width: 1100px; margin: 16px auto; padding: 0 12px; }}
  h1 {{ margin-top: 8px; }}
}}
"""


def _bars(
    data: Sequence[tuple[str, float]], *, unit: str, threshold: float | None = None, ymax: float | None = None
) -> str:
    """A plain vertical bar chart as SVG."""
    if not data:
        return ""
    w, h, left, bottom = 680, 170, 40, 34
    top = max([v for _, v in data] + [threshold or 0, ymax or 0]) or 1.0
    n = len(data)
    bw = (w - left - 6) / n
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
        f'font-family="{FONT}">'
    ]
    parts.append(f'<line x1="{left}" y1="{h - bottom}" x2="{w}" y2="{h - bottom}" stroke="#888"/>')
    parts.append(f'<text x="2" y="12" font-size="9">{_e(fmt(top))} {_e(unit)}</text>')
    for i, (label, v) in enumerate(data):
        bh = (h - bottom - 16) * (v / top)
        x = left + i * bw
        parts.append(
            f'<rect x="{x + 1:.1f}" y="{h - bottom - bh:.1f}" width="{max(bw - 2, 1):.1f}" height="{bh:.1f}" '
            f'fill="#4a78b5"><title>{_e(label)}: {_e(fmt(v))}</title></rect>'
        )
        if n <= 31 and (n <= 12 or i % max(1, n // 10) == 0):
            parts.append(
                f'<text x="{x + bw / 2:.1f}" y="{h - bottom + 11}" font-size="7" text-anchor="middle">'
                f"{_e(label[-5:])}</text>"
            )
    if threshold is not None:
        y = h - bottom - (h - bottom - 16) * (threshold / top)
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{w}" y2="{y:.1f}" stroke="#cf222e" stroke-dasharray="4 3"/>'
        )
        parts.append(
            f'<text x="{w - 4}" y="{y - 3:.1f}" font-size="8" text-anchor="end" fill="#cf222e">'
            f"{_e(fmt(threshold))}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _histogram(values: Sequence[float], bins: int, unit: str) -> str:
    if not values:
        return ""
    hi = max(values) or 1.0
    width = hi / bins
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, int(v / width))] += 1
    return _bars(
        [(f"{fmt(i * width)}–{fmt((i + 1) * width)}", float(c)) for i, c in enumerate(counts)], unit=unit
    )


def _verdict(v: Verdict, lang: str) -> str:
    zh, en = VERDICT_LABELS[v]
    return f'<span class="v-{v.value}">{_e(zh if lang == "zh" else en)}</span>'


def _item_row(i: ItemResult, lang: str) -> str:
    zh = lang == "zh"
    if i.points_max is not None:
        result = f'<span class="score">{fmt(i.score or 0)} / {fmt(i.points_max)}</span>'
    else:
        levels = "".join(
            f"<div>{_e(_LEVELS[lv.name][0 if zh else 1])}：{_verdict(lv.verdict, lang)}"
            f'<div class="small">{_e(lv.zh if zh else lv.en)}</div></div>'
            for lv in i.levels
        )
        result = _verdict(i.verdict, lang) + levels
    reasons = "".join(
        f"<div>{'−' + fmt(d.points) + ' ' if d.points and i.points_max else ''}{_e(d.zh if zh else d.en)}"
        "</div>"
        for d in _grouped(i)
    )
    refs = ", ".join(dict.fromkeys(e.ref for d in i.deductions for e in d.evidence))
    return (
        f"<tr><td>{_e(i.number)}</td><td>{_e(i.title_zh if zh else i.title_en)}</td>"
        f"<td>{_e(fmt(i.points_max)) if i.points_max is not None else '—'}</td>"
        f'<td class="small">{_e(i.rule_zh if zh else i.rule_en)}</td>'
        f'<td class="small">{_e(i.source_zh if zh else i.source_en)}</td>'
        f'<td>{result}</td><td class="arith">{_e(i.arithmetic)}</td>'
        f'<td class="small">{reasons}</td>'
        f'<td class="small">{_e(refs[:300])}{"…" if len(refs) > 300 else ""}</td></tr>'
    )


def _grouped(i: ItemResult) -> list[Deduction]:
    """Deductions with the same reason shown once with a count (the appendix lists each)."""
    seen: dict[str, int] = {}
    first: dict[str, Deduction] = {}
    for d in i.deductions:
        seen[d.zh] = seen.get(d.zh, 0) + 1
        first.setdefault(d.zh, d)
    out: list[Deduction] = []
    for key, n in seen.items():
        d = first[key]
        out.append(Deduction(d.points * n, f"{d.zh} × {n}", f"{d.en} × {n}", d.evidence) if n > 1 else d)
    return out


def render_html(r: Report, lang: str = "zh") -> str:
    """The whole report as one HTML document (the same for the screen and for the PDF)."""
    return "".join(_cover(r, lang))


def _cover(r: Report, lang: str) -> list[str]:
    zh = lang == "zh"
    tz = r.timezone
    out = [
        f'<!doctype html><html lang="{"zh-CN" if zh else "en"}"><head><meta charset="utf-8">',
        f"<title>{_e(t('title', lang))} · {_e(r.community_name)}"
        f"</title><style>{_css(lang, r)}</style></head><body>",
        '<section class="cover">',
    ]
    out += [
        f"<h1>{_e(t('title', lang))}</h1><table>",
        f"<tr><td>{_e(t('community', lang))}</td><td"
        f">{_e(r.community_name)}（{_e(r.community_code)}）</td></tr>",
        f"<tr><td>{_e(t('period', lang))}</td><td>{_e(_local(r.period_start, tz))} – "
        f"{_e(_local(r.period_end, tz))}（{_e(tz)}）</td></tr>",
        f"<tr><td>{_e(t('generated', lang))}</td><td>{_e(_local(r.generated_at, tz))}</td></tr>",
        f"<tr><td>{_e(t('fingerprint', lang))}</td><td class='small'>{_e(r.fingerprint)}</td></tr>",
        f"<tr><td>{_e(t('settings', lang))}</td><td class='small'>",
        f"{_e(t('fault_unit', lang))}：{_e(FAULT_UNIT_INFO[r.settings.fault_unit][0 if zh else 1])}<br>",
    ]
    for name, value in r.settings.model_dump(mode="json").items():
        if name != "fault_unit":
            text = SETTING_LABELS.get(name, (name, name))[0 if zh else 1]
            out.append(f"{_e(text)}：{_e(value)} <span class='small'>({_e(name)})</span><br>")
    out.append("</td></tr></table></section>")
    for section in (_summary, _tables, _manual, _charts, _appendix):
        out += section(r, lang)
    return out


def _summary(r: Report, lang: str) -> list[str]:
    s = r.summary
    return [
        f"<h2>{_e(t('summary', lang))}</h2><table>",
        f"<tr><th>{_e(t('device_points', lang))}</th><td class='score'>{fmt(s.device_points)} / "
        f"{fmt(s.device_points_max)}（{s.scored_items}）</td></tr>",
        f"<tr><th>{_e(t('gates', lang))}</th><td>{'<br>'.join(_e(g) for g in s.gate_items)}</td></tr>",
        f"<tr><th>{_e(t('verdicts', lang))}</th><td>"
        + "，".join(f"{_verdict(Verdict(k), lang)} {v}" for k, v in s.verdicts.items())
        + "</td></tr>",
        f"<tr><th>{_e(t('manual', lang))}</th><td>{_e('，'.join(s.manual_items) or '—')}</td></tr></table>",
    ]


def _tables(r: Report, lang: str) -> list[str]:
    zh = lang == "zh"
    out: list[str] = []
    for scheme, (szh, sen) in SCHEMES.items():
        rows = [i for i in r.items if i.scheme == scheme]
        if not rows:
            continue
        cols = ("no", "item", "points", "rule", "source", "score", "arith", "reasons", "evidence")
        out.append(f"<h2>{_e(szh if zh else sen)}</h2><table class='items'><colgroup>")
        out += [f'<col class="c-{k}">' for k in cols]
        out.append("</colgroup><thead><tr>")
        out += [f"<th>{_e(t(k, lang))}</th>" for k in cols]
        out.append("</tr></thead><tbody>")
        out += [_item_row(i, lang) for i in rows]
        out.append("</tbody></table>")
    return out


def _manual(r: Report, lang: str) -> list[str]:
    out = [f"<h2>{_e(t('manual', lang))}</h2>"]
    if r.manual:
        out.append(
            f"<table><thead><tr><th>{_e(t('no', lang))}</th><th>{_e(t('item', lang))}</th>"
            f"<th>{_e(t('score', lang))}</th><th>{_e(t('evidence', lang))}"
            f"</th><th>{_e(t('who', lang))}</th></tr></thead><tbody>"
        )
        for m in r.manual:
            verdict = _verdict(Verdict(m.verdict), lang) if m.verdict else "—"
            out.append(
                f"<tr><td>{_e(m.scheme)}</td><td>{_e(m.item)}</td><td>{verdict}</td>"
                f"<td>{_e(m.finding)}<div class='small'>{_e(m.observed_on)}"
                f"{' · ' + str(len(m.attachments)) + ' 附件' if m.attachments else ''}"
                f"</div></td><td>{_e(m.recorded_by)}</td></tr>"
            )
        out.append("</tbody></table>")
    else:
        out.append(f"<p class='small'>{_e(t('no_manual', lang))}</p>")
    return out


def _charts(r: Report, lang: str) -> list[str]:
    zh = lang == "zh"
    c = r.charts
    out = [f"<h2>{_e(t('charts', lang))}</h2>"]
    for key, svg in (
        ("lamp_rate", _bars([(d, v * 100) for d, v in c.lamp_working_rate], unit="%", ymax=100)),
        (
            "retention",
            _bars(
                list(c.retention_days[:30]), unit="天" if zh else "d", threshold=r.settings.retention_days_min
            ),
        ),
        ("cutoff", _histogram(c.cutoff_delays_s, 10, "次" if zh else "n")),
        ("ack", _histogram(c.ack_minutes, 10, "条" if zh else "n")),
    ):
        out.append(f"<h3>{_e(t(key, lang))}</h3>{svg or '<p class=small>' + _e(t('none', lang)) + '</p>'}")
    return out


def _appendix(r: Report, lang: str) -> list[str]:
    """Each deduction's evidence, one row per piece; beyond APPENDIX_ROWS per item the rest is counted
    and left to the JSON form, which carries all of it under the same fingerprint."""
    zh = lang == "zh"
    out = [f'<section class="appendix"><h2>{_e(t("appendix", lang))}</h2>']
    for i in r.items:
        rows = [(d, e) for d in i.deductions for e in d.evidence]
        if not rows:
            continue
        out.append(
            f"<h3>{_e(SCHEMES[i.scheme][0 if zh else 1])} [{_e(i.number)}"
            f"] {_e(i.title_zh if zh else i.title_en)}</h3>"
        )
        out.append(
            "<table class='evidence'><colgroup><col style='width:30%'><col style='width:70%'></colgroup>"
            f"<thead><tr><th>{_e(t('reasons', lang))}</th><th"
            f">{_e(t('evidence', lang))}</th></tr></thead><tbody>"
        )
        for d, e in rows[:APPENDIX_ROWS]:
            out.append(
                f"<tr><td>{_e(d.zh if zh else d.en)}</td><td>{_e(e.zh if zh else e.en)}"
                f" <span class='small'>[{_e(e.ref)}]</span></td></tr>"
            )
        out.append("</tbody></table>")
        if len(rows) > APPENDIX_ROWS:
            more = len(rows) - APPENDIX_ROWS
            text = (
                f"其余 {more} 条证据见 JSON 导出（同一证据指纹）"
                if zh
                else f"{more} more pieces of evidence in the JSON export (same fingerprint)"
            )
            out.append(f"<p class='small'>{_e(text)}</p>")
    out.append("</section></body></html>")
    return out
