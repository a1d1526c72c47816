"""CCTV recorders: the retention check (domain.md §5.3; ≥ 30 days, 国务院令第799号 Art.17 [S2]) per
channel, channel offline, recording stopped, disk faults.

A channel complies when retention days (now − earliest recording) ≥ 30, no recording gap longer than
the tolerance lies in the last 30 days, and it is online and recording. Unknown is not compliant: a
channel that never reported its earliest recording fails (`retention_unknown`), and so does every
channel of a recorder Yiju cannot reach (`recorder_offline`, from its Last Will or missed heartbeats);
when the recorder reports again, the whole silence is a recording gap of every channel, since nothing
shows it recorded meanwhile. Gaps also come from Yiju's own history of the channel's recording state
(stopped → started) and from gaps the recorder reports.

Hysteresis at the limit (`retention_hysteresis_s`): overwrite frees the oldest footage in blocks, so
a recorder sized for exactly 30 days keeps 30 days minus up to a block. Retention falls short only
below the limit minus the band, and complies again only back at the limit; inside the band the
previous verdict stands (a first verdict inside it complies).

A full disk is the normal state of a recorder that overwrites (循环覆盖): `disk_full` is a fault only
with overwrite off or unknown, and it clears when the device says so, reports overwrite on, or its
telemetry shows free space again. With overwrite off, free space under `disk_free_warning_pct` is the
fault too. A disk health fault is its own.

Evaluated on every recorder report, when it goes offline and at least daily (`tick`); a finding is
written when a channel's verdict changes and once a day otherwise. The alarms carry the evidence
(domain.md §5.3): per failing channel its earliest recording, retention days and gaps, and the limits.

State: the device's `CctvState` (alerts/core/records.py): per channel a `CctvChannel` (online and
recording, stopped since, the verdict bits of its last evaluation and when that was, its earliest
recording, its gaps within the last retention window); for the recorder the device time of its last
report, whether it is offline, its overwrite setting as last reported, and the failing channels each
open alarm names. The channel-offline confirmation timer is the mark "t:off<n>".
"""

from __future__ import annotations

from typing import Any

from alerts.config import AlertSettings, CctvRules
from alerts.core import faults
from alerts.core.model import Out, to_dt
from alerts.core.records import CctvChannel, CctvState, Fault, Gap
from devices.alarms import AlarmType
from devices.alarms import Check as C
from devices.envelope import EventMessage, TelemetryMessage
from devices.families import cctv_recorder as fam

A = AlarmType
DAY_S = 86_400.0
RETENTION_SHORT, GAP, OFFLINE, NOT_RECORDING, UNKNOWN, UNREACHABLE = 1, 2, 4, 8, 16, 32
REASONS = (
    (RETENTION_SHORT, "retention_short"),
    (UNKNOWN, "retention_unknown"),
    (UNREACHABLE, "recorder_offline"),
    (GAP, "recording_gap"),
    (OFFLINE, "channel_offline"),
    (NOT_RECORDING, "recording_stopped"),
)
MAX_GAPS = 8


def _state(out: Out) -> CctvState:
    s = out.st.family
    if not isinstance(s, CctvState):
        s = out.st.family = CctvState()
    return s


def _channel(out: Out, n: int) -> CctvChannel:
    channels = _state(out).channels
    ch = channels.get(n)
    if ch is None:
        ch = channels[n] = CctvChannel()
    return ch


def _channels(out: Out) -> list[int]:
    return sorted(_state(out).channels)


def _add_gap(ch: CctvChannel, end: float, seconds: float, r: CctvRules) -> None:
    if seconds <= r.gap_tolerance_s:
        return
    gaps = ch.gaps
    gaps.append(Gap(end, round(seconds, 1)))
    gaps.sort(key=lambda g: (g.end, g.seconds))
    del gaps[:-MAX_GAPS]


def _recording(out: Out, n: int, recording: bool, ts: float, r: CctvRules) -> None:
    ch = _channel(out, n)
    if recording:
        if ch.stopped_since:
            _add_gap(ch, ts, ts - ch.stopped_since, r)
        ch.recording = True
        ch.stopped_since = 0.0
    else:
        if not ch.stopped_since:
            ch.stopped_since = ts
        ch.recording = False


def _online(out: Out, n: int, online: bool) -> None:
    _channel(out, n).online = online


def _reported(out: Out, ts: float, silent_s: float, r: CctvRules) -> None:
    """The recorder speaks: a silence since its previous report that made it offline (or lasted as
    long) is a gap of every channel — nothing shows that it recorded meanwhile."""
    s = _state(out)
    last = s.last_report
    was_offline, s.offline = s.offline, False
    if last is not None and ts > last and (was_offline or ts - last > silent_s):
        for n in _channels(out):
            _add_gap(s.channels[n], ts, ts - last, r)
    s.last_report = max(ts, last or ts)


def offline(out: Out, at: float, th: AlertSettings) -> None:
    """The recorder went offline at `at` (Last Will, or missed heartbeats): its channels fail."""
    s = _state(out)
    s.offline = True
    if s.channels:
        evaluate(out, max(at, at if s.last_report is None else s.last_report), th.cctv_recorder)


def _iso(ts: float) -> str | None:
    return to_dt(ts).isoformat() if ts else None


def _gaps_doc(gaps: list[Gap]) -> list[dict[str, Any]]:
    return [{"start": _iso(g.end - g.seconds), "end": _iso(g.end), "seconds": g.seconds} for g in gaps]


def _retention_bits(ch: CctvChannel, retention_days: float | None, r: CctvRules) -> int:
    if retention_days is None:
        return UNKNOWN
    if retention_days < r.retention_days - r.retention_hysteresis_s / DAY_S:
        return RETENTION_SHORT
    if retention_days >= r.retention_days or ch.verdict < 0:
        return 0
    return ch.verdict & RETENTION_SHORT  # inside the band: the previous verdict stands


def evaluate(out: Out, now: float, r: CctvRules, *, force: bool = False) -> None:
    """Decide every channel's verdict; write findings on change or daily; keep the alarms in step."""
    window = r.retention_days * DAY_S
    s = _state(out)
    unreachable = s.offline
    short: list[dict[str, Any]] = []
    gapped: list[dict[str, Any]] = []
    offline: list[int] = []
    stopped: list[int] = []
    for n in _channels(out):
        ch = s.channels[n]
        gaps = ch.gaps = [g for g in ch.gaps if g.end >= now - window]
        retention_days = (now - ch.earliest) / DAY_S if ch.earliest else None
        bits = _retention_bits(ch, retention_days, r)
        if gaps:
            bits |= GAP
        if unreachable:
            bits |= UNREACHABLE
        else:
            if out.held(f"t:off{n}", not ch.online, now, r.channel_offline_confirm_s):
                bits |= OFFLINE
                offline.append(n)
            if bool(ch.stopped_since) and now - ch.stopped_since >= r.channel_offline_confirm_s and ch.online:
                bits |= NOT_RECORDING
                stopped.append(n)
        evidence = {
            "channel": n,
            "earliest_recording": _iso(ch.earliest),
            "retention_days": None if retention_days is None else round(retention_days, 2),
        }
        if bits & (RETENTION_SHORT | UNKNOWN):
            short.append({**evidence, "reason": "retention_short" if bits & RETENTION_SHORT else "unknown"})
        if gaps:
            gapped.append({"channel": n, "gaps": _gaps_doc(gaps)})
        if bits != ch.verdict or force or now - ch.evaluated_at >= r.daily_evaluation_s:
            reasons = [name for bit, name in REASONS if bits & bit]
            out.finding(
                C.CCTV_RETENTION,
                reasons[0] if reasons else "retention_ok",
                bits == 0,
                now,
                trigger_ts=now,  # one decision per evaluation (the daily one is not a redelivery)
                channel=n,
                deadline_s=window,
                measured_s=None if retention_days is None else retention_days * DAY_S,
                details={
                    **evidence,
                    "reasons": reasons,
                    "threshold_days": r.retention_days,
                    "gap_tolerance_s": r.gap_tolerance_s,
                    "gaps": _gaps_doc(gaps),
                },
            )
            ch.verdict, ch.evaluated_at = bits, now
    limits = {"threshold_days": r.retention_days, "hysteresis_s": r.retention_hysteresis_s}
    _alarm(out, A.CCTV_RETENTION_SHORT, short, now, limits)
    _alarm(
        out,
        A.CCTV_RECORDING_GAP,
        gapped,
        now,
        {"gap_tolerance_s": r.gap_tolerance_s, "window_days": r.retention_days},
    )
    _alarm(out, A.CCTV_CHANNEL_OFFLINE, [{"channel": n} for n in offline], now, {})
    _alarm(out, A.CCTV_RECORDING_STOPPED, [{"channel": n} for n in stopped], now, {})


def _alarm(
    out: Out, type: AlarmType, channels: list[dict[str, Any]], ts: float, limits: dict[str, Any]
) -> None:
    """Raise with the failing channels' evidence; raise again (new details) when they change."""
    named = _state(out).alarm_channels
    names = [c["channel"] for c in channels]
    if not channels:
        named.pop(type, None)
        out.clear(type, ts)
        return
    changed = named.get(type) != names
    named[type] = names
    out.raise_(type, ts, {"channels": channels, **limits}, repeat=changed and out.is_open(type))


def _disk(out: Out, t: fam.Telemetry, ts: float, r: CctvRules) -> None:
    s = _state(out)
    if t.overwrite is not None:
        s.overwrite = t.overwrite
    free_pct = 100.0 * t.disk_free_gb / t.disk_total_gb
    low = s.overwrite is False and free_pct < r.disk_free_warning_pct
    full = faults.is_reported(out, "disk_full")
    if low and not full:
        out.st.faults["disk_full"] = Fault(ts, A.CCTV_DISK_FAULT, reported=True)
        details = {
            "fault": "disk_full",
            "free_pct": round(free_pct, 2),
            "threshold_pct": r.disk_free_warning_pct,
        }
        out.raise_(A.CCTV_DISK_FAULT, ts, details, source="engine")
    elif not low and full and (s.overwrite is True or free_pct >= r.disk_free_warning_pct):
        faults.reported(out, "disk_full", A.CCTV_DISK_FAULT, False, ts)


def telemetry(
    out: Out, msg: TelemetryMessage[fam.Telemetry], ts: float, th: AlertSettings, silent_s: float
) -> None:
    r = th.cctv_recorder
    t = msg.data
    for c in t.channels:
        _channel(out, c.channel)
    _reported(out, ts, silent_s, r)
    for c in t.channels:
        _online(out, c.channel, c.online)
        _recording(out, c.channel, c.recording, ts, r)
        if c.earliest_recording is not None:
            _channel(out, c.channel).earliest = c.earliest_recording.timestamp()
    faults.sync(out, {} if t.disk_healthy else {"disk": A.CCTV_DISK_FAULT}, "disk", ts)
    _disk(out, t, ts, r)
    evaluate(out, ts, r)


def event(out: Out, msg: EventMessage[fam.Event], ts: float, th: AlertSettings, silent_s: float) -> None:
    r = th.cctv_recorder
    ev = msg.event
    _reported(out, ts, silent_s, r)
    if isinstance(ev, fam.ChannelOffline | fam.ChannelOnline):
        _online(out, ev.channel, isinstance(ev, fam.ChannelOnline))
    elif isinstance(ev, fam.RecordingStopped | fam.RecordingStarted):
        _recording(out, ev.channel, isinstance(ev, fam.RecordingStarted), ts, r)
    elif isinstance(ev, fam.Gap):
        _add_gap(_channel(out, ev.channel), ev.end.timestamp(), (ev.end - ev.start).total_seconds(), r)
    elif isinstance(ev, fam.DiskFault):
        faults.reported(out, "disk", A.CCTV_DISK_FAULT, ev.active, ts)
        return
    elif isinstance(ev, fam.DiskFull):
        s = _state(out)
        if ev.overwrite is not None:
            s.overwrite = ev.overwrite
        overwriting = s.overwrite is True
        # overwriting: the oldest footage makes room, a full disk is normal (retention is checked)
        faults.reported(out, "disk_full", A.CCTV_DISK_FAULT, ev.active and not overwriting, ts)
        return
    evaluate(out, ts, r)
