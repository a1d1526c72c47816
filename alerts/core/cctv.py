"""CCTV recorders: the retention check (domain.md §5.3; ≥ 30 days, 国务院令第799号 Art.17 [S2]) per
channel, channel offline, recording stopped, disk faults.

A channel complies when retention days (now − earliest recording) ≥ 30, no recording gap longer than
the tolerance lies in the last 30 days, and it is online and recording. Gaps come from Yiju's own
history of the channel's recording state (stopped → started) and from gaps the recorder reports.
Evaluated on every recorder report and at least daily (`tick`); a finding is written when a channel's
verdict changes and once a day otherwise.

Marks per channel n: "c<n>" = [flags (1 online, 2 recording), stopped since (0: recording), verdict
bits (-1: never evaluated), last evaluation, earliest recording (0: unknown)]; "g<n>" = [[gap end,
gap seconds], …] within the last retention window.
"""

from __future__ import annotations

from typing import Any

from alerts.config import AlertSettings, CctvRules
from alerts.core import faults
from alerts.core.model import Out
from devices.alarms import AlarmType, Check
from devices.envelope import EventMessage, TelemetryMessage
from devices.families import cctv_recorder as fam

A = AlarmType
DAY_S = 86_400.0
RETENTION_SHORT, GAP, OFFLINE, NOT_RECORDING = 1, 2, 4, 8
REASONS = (
    (RETENTION_SHORT, "retention_short"),
    (GAP, "recording_gap"),
    (OFFLINE, "channel_offline"),
    (NOT_RECORDING, "recording_stopped"),
)
MAX_GAPS = 8


def _channel(out: Out, n: int) -> list[Any]:
    ch: list[Any] = out.st.marks.setdefault(f"c{n}", [3, 0.0, -1, 0.0, 0.0])
    return ch


def _add_gap(out: Out, n: int, end: float, seconds: float, r: CctvRules) -> None:
    if seconds <= r.gap_tolerance_s:
        return
    gaps: list[list[float]] = out.st.marks.setdefault(f"g{n}", [])
    gaps.append([end, round(seconds, 1)])
    gaps.sort()
    del gaps[:-MAX_GAPS]


def _recording(out: Out, n: int, recording: bool, ts: float, r: CctvRules) -> None:
    ch = _channel(out, n)
    if recording:
        if ch[1]:
            _add_gap(out, n, ts, ts - ch[1], r)
        ch[0] |= 2
        ch[1] = 0.0
    else:
        if not ch[1]:
            ch[1] = ts
        ch[0] &= ~2


def _online(out: Out, n: int, online: bool) -> None:
    ch = _channel(out, n)
    ch[0] = (ch[0] | 1) if online else (ch[0] & ~1)


def evaluate(out: Out, now: float, r: CctvRules, *, force: bool = False) -> None:
    """Decide every channel's verdict; write findings on change or daily; keep the alarms in step."""
    window = r.retention_days * DAY_S
    any_bits = 0
    offline: list[int] = []
    stopped: list[int] = []
    for key in [k for k in out.st.marks if k[0] == "c" and k[1:].isdigit()]:
        n = int(key[1:])
        ch = out.st.marks[key]
        gaps = [g for g in out.st.marks.get(f"g{n}", []) if g[0] >= now - window]
        if gaps:
            out.st.marks[f"g{n}"] = gaps
        else:
            out.st.marks.pop(f"g{n}", None)
        bits = 0
        retention_days = (now - ch[4]) / DAY_S if ch[4] else None
        if retention_days is not None and retention_days < r.retention_days:
            bits |= RETENTION_SHORT
        if gaps:
            bits |= GAP
        off = out.held(f"t:off{n}", not ch[0] & 1, now, r.channel_offline_confirm_s)
        rec_stopped = bool(ch[1]) and now - ch[1] >= r.channel_offline_confirm_s
        if off:
            bits |= OFFLINE
            offline.append(n)
        if rec_stopped and ch[0] & 1:
            bits |= NOT_RECORDING
            stopped.append(n)
        any_bits |= bits
        if bits != ch[2] or force or now - ch[3] >= r.daily_evaluation_s:
            reasons = [name for bit, name in REASONS if bits & bit]
            out.finding(
                Check.CCTV_RETENTION,
                reasons[0] if reasons else "retention_ok",
                bits == 0,
                now,
                channel=n,
                deadline_s=r.retention_days * DAY_S,
                measured_s=None if retention_days is None else retention_days * DAY_S,
                details={
                    "retention_days": None if retention_days is None else round(retention_days, 2),
                    "reasons": reasons,
                    "gaps": gaps,
                },
            )
            ch[2], ch[3] = bits, now
    _alarm(out, A.CCTV_RETENTION_SHORT, any_bits & RETENTION_SHORT, now, {})
    _alarm(out, A.CCTV_RECORDING_GAP, any_bits & GAP, now, {})
    _alarm(out, A.CCTV_CHANNEL_OFFLINE, bool(offline), now, {"channels": offline})
    _alarm(out, A.CCTV_RECORDING_STOPPED, bool(stopped), now, {"channels": stopped})


def _alarm(out: Out, type: AlarmType, on: int | bool, ts: float, details: dict[str, Any]) -> None:
    if on:
        out.raise_(type, ts, details)
    else:
        out.clear(type, ts)


def telemetry(out: Out, msg: TelemetryMessage[fam.Telemetry], ts: float, th: AlertSettings) -> None:
    r = th.cctv_recorder
    t = msg.data
    for c in t.channels:
        _online(out, c.channel, c.online)
        _recording(out, c.channel, c.recording, ts, r)
        if c.earliest_recording is not None:
            _channel(out, c.channel)[4] = c.earliest_recording.timestamp()
    faults.sync(out, {} if t.disk_healthy else {"disk": A.CCTV_DISK_FAULT}, "disk", ts)
    evaluate(out, ts, r)


def event(out: Out, msg: EventMessage[fam.Event], ts: float, th: AlertSettings) -> None:
    r = th.cctv_recorder
    ev = msg.event
    if isinstance(ev, fam.ChannelOffline | fam.ChannelOnline):
        _online(out, ev.channel, isinstance(ev, fam.ChannelOnline))
    elif isinstance(ev, fam.RecordingStopped | fam.RecordingStarted):
        _recording(out, ev.channel, isinstance(ev, fam.RecordingStarted), ts, r)
    elif isinstance(ev, fam.Gap):
        _channel(out, ev.channel)
        _add_gap(out, ev.channel, ev.end.timestamp(), (ev.end - ev.start).total_seconds(), r)
    elif isinstance(ev, fam.DiskFault):
        faults.reported(out, "disk", A.CCTV_DISK_FAULT, ev.active, ts)
        return
    elif isinstance(ev, fam.DiskFull):
        faults.reported(out, "disk_full", A.CCTV_DISK_FAULT, ev.active, ts)
        return
    evaluate(out, ts, r)
