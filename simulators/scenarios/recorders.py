"""CCTV recorders (domain.md §5.3): retention short of 30 days, a recording gap, a channel offline, an
unknown retention, exactly 30 days, a gap while the recorder is offline."""

from __future__ import annotations

from datetime import datetime

from devices.alarms import AlarmType, Check
from devices.contract import Family
from devices.families import access_door, cctv_recorder
from simulators.scenarios.builder import (
    SLACK_S,
    Builder,
    Factory,
    Picker,
    Script,
    channel_report,
    healthy,
    registrar,
)
from simulators.scenarios.truth import Scenario

A = AlarmType
DOOR = access_door.DEFAULTS
CCTV = cctv_recorder.DEFAULTS

SCENARIOS: dict[str, Factory] = {}
scenario = registrar(SCENARIOS)


def _recorder_ok(b: Builder, r: Script, at_s: float) -> None:
    """The first report of a recorder: every channel evaluated compliant."""
    for n in range(1, r.device.channels + 1):
        b.finding(Check.CCTV_RETENTION, "retention_ok", r.uid, True, at_s, at_s, channel=n)


@scenario("nvr_retention_short")
def nvr_retention_short(p: Picker, start: datetime) -> Scenario:
    b = Builder(
        "nvr_retention_short",
        p.compound,
        start,
        "A recorder's disk shrinks (a failing drive is dropped from the array), so channel 1 overwrites "
        "its oldest footage faster: retention falls from 30.5 to under 30 days — cctv_retention_short "
        "and a non-compliant retention finding for channel 1 (the other channels stay compliant).",
    )
    r = b.script(p.take(Family.CCTV_RECORDER), online=False).online(0)
    keep = CCTV.retention_days + 0.45  # 0.05 d clear of the limit at every report, never on it
    step = CCTV.heartbeat_s
    crossed: float | None = None
    s = 1.0
    while s <= 1 + 8 * step:
        at = b.t(s)
        chans = healthy(r.device, at)["channels"]
        chans[0] = channel_report(1, at, keep_days=keep)
        r.tele(s, channels=chans, disk_total_gb=12_000.0 if s > 1 else 16_000.0)
        if crossed is None and keep < CCTV.retention_days:
            crossed = s
        keep -= 0.1  # 2.4 h of footage lost per report
        s += step
    _recorder_ok(b, r, 1)
    assert crossed is not None
    b.alarm(A.CCTV_RETENTION_SHORT, r.uid, crossed)
    b.finding(Check.CCTV_RETENTION, "retention_short", r.uid, False, crossed, crossed, channel=1)
    return b.build()


@scenario("nvr_recording_gap")
def nvr_recording_gap(p: Picker, start: datetime) -> Scenario:
    b = Builder(
        "nvr_recording_gap",
        p.compound,
        start,
        "Channel 2 stops recording at +60 s and restarts 15 min later (tolerance 5 min): first "
        "cctv_recording_stopped, then a 900 s gap — cctv_recording_gap and non-compliant findings.",
    )
    r = b.script(p.take(Family.CCTV_RECORDER), online=False).online(0)

    def report(s: float, recording: bool) -> None:
        chans = healthy(r.device, b.t(s))["channels"]
        chans[1]["recording"] = recording
        r.tele(s, channels=chans)

    report(1, True)
    stop, restart = 60.0, 60.0 + 900
    r.event(stop, type="recording_stopped", channel=2)
    s = 1 + CCTV.heartbeat_s
    while s < restart:
        report(s, False)
        s += CCTV.heartbeat_s
    r.event(restart, type="recording_started", channel=2)
    report(restart + 1, True)
    report(restart + CCTV.heartbeat_s, True)
    _recorder_ok(b, r, 1)
    seen = 1 + CCTV.heartbeat_s  # first report at least `channel_offline_confirm_s` after the stop
    assert seen - stop >= CCTV.channel_offline_confirm_s
    b.alarm(A.CCTV_RECORDING_STOPPED, r.uid, seen)
    b.finding(Check.CCTV_RETENTION, "recording_stopped", r.uid, False, seen, seen, channel=2)
    b.alarm(A.CCTV_RECORDING_GAP, r.uid, restart)
    b.finding(Check.CCTV_RETENTION, "recording_gap", r.uid, False, restart, restart, channel=2)
    return b.build()


@scenario("nvr_channel_offline")
def nvr_channel_offline(p: Picker, start: datetime) -> Scenario:
    b = Builder(
        "nvr_channel_offline",
        p.compound,
        start,
        "Camera channel 3 goes offline at +60 s and stays offline: after the 180 s confirmation "
        "cctv_channel_offline and a non-compliant finding for channel 3.",
    )
    r = b.script(p.take(Family.CCTV_RECORDER), online=False).online(0)
    r.tele(1, channels=healthy(r.device, b.t(1))["channels"])
    r.event(60, type="channel_offline", channel=3)
    s = 1 + CCTV.heartbeat_s
    while s <= 1 + 3 * CCTV.heartbeat_s:
        chans = healthy(r.device, b.t(s))["channels"]
        chans[2].update(online=False, recording=False)
        r.tele(s, channels=chans)
        s += CCTV.heartbeat_s
    _recorder_ok(b, r, 1)
    seen = 1 + CCTV.heartbeat_s
    b.alarm(A.CCTV_CHANNEL_OFFLINE, r.uid, seen)
    b.finding(Check.CCTV_RETENTION, "channel_offline", r.uid, False, seen, seen, channel=3)
    return b.build()


@scenario("nvr_retention_unknown")
def nvr_retention_unknown(p: Picker, start: datetime) -> Scenario:
    b = Builder(
        "nvr_retention_unknown",
        p.compound,
        start,
        "A recorder's channel 4 never reports its earliest recording (an old firmware's search returns "
        "nothing for it): unknown is not compliant — a non-compliant retention_unknown finding for "
        "channel 4 and cctv_retention_short naming it, the other channels compliant.",
    )
    r = b.script(p.take(Family.CCTV_RECORDER), online=False).online(0)
    for k in range(3):
        s = 1 + k * CCTV.heartbeat_s
        chans = healthy(r.device, b.t(s))["channels"]
        del chans[3]["earliest_recording"], chans[3]["latest_recording"]
        r.tele(s, channels=chans)
    for n in range(1, r.device.channels + 1):
        ok = n != 4
        b.finding(
            Check.CCTV_RETENTION, "retention_ok" if ok else "retention_unknown", r.uid, ok, 1, channel=n
        )
    b.alarm(A.CCTV_RETENTION_SHORT, r.uid, 1)
    return b.build()


@scenario("nvr_exact_30_days")
def nvr_exact_30_days(p: Picker, start: datetime) -> Scenario:
    b = Builder(
        "nvr_exact_30_days",
        p.compound,
        start,
        "A recorder sized for exactly 30 days overwrites its oldest hour-long block whenever the disk "
        "fills: channel 1 keeps between 29.96 and 30.0 days, and the recorder reports disk_full while "
        "overwriting. Inside the hysteresis band and overwriting as designed: compliant throughout, no "
        "alarm, no flapping.",
    )
    r = b.script(p.take(Family.CCTV_RECORDER), online=False).online(0)
    keeps = (30.0, 29.975, 29.99, 29.96, 30.0, 29.97, 29.985, 29.96)
    for k, keep in enumerate(keeps):
        s = 1 + k * CCTV.heartbeat_s
        chans = healthy(r.device, b.t(s))["channels"]
        chans[0] = channel_report(1, b.t(s), keep_days=keep)
        r.tele(s, channels=chans, overwrite=True, disk_free_gb=0.0)
        if k == 2:
            r.event(s + 30, type="disk_full", active=True, overwrite=True)
    _recorder_ok(b, r, 1)
    return b.build()


@scenario("nvr_offline_gap")
def nvr_offline_gap(p: Picker, start: datetime) -> Scenario:
    b = Builder(
        "nvr_offline_gap",
        p.compound,
        start,
        "A recorder's uplink dies after its report at +1 s (no Last Will: the switch port is dead) and "
        "comes back an hour later. Offline after 3 missed 300 s reports: device_offline and every channel "
        "non-compliant (recorder_offline); back at +3601 s, the hour without evidence is a recording "
        "gap of every channel (cctv_recording_gap).",
    )
    r = b.script(p.take(Family.CCTV_RECORDER), online=False).online(0)
    r.tele(1, channels=healthy(r.device, b.t(1))["channels"])
    back = 3601.0
    keeper = b.script(p.take(Family.ACCESS_DOOR))  # keeps the event clock moving meanwhile
    keeper.every(61, back + CCTV.heartbeat_s, DOOR.heartbeat_s)
    for s in (back, back + CCTV.heartbeat_s):
        r.tele(s, channels=healthy(r.device, b.t(s))["channels"])
    due = 1 + CCTV.heartbeat_s * CCTV.missed_heartbeats
    _recorder_ok(b, r, 1)
    b.alarm(A.DEVICE_OFFLINE, r.uid, due, due + SLACK_S)
    for n in range(1, r.device.channels + 1):
        b.finding(Check.CCTV_RETENTION, "recorder_offline", r.uid, False, due, due + SLACK_S, channel=n)
        b.finding(Check.CCTV_RETENTION, "recording_gap", r.uid, False, back, channel=n)
    b.alarm(A.CCTV_RECORDING_GAP, r.uid, back)
    return b.build()
