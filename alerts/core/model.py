"""The rule core's inputs and outputs, its per-device state and the primitives every rule uses.

Time: the core works in seconds since the epoch (floats) on **device time**: durations, confirmation
timers and deadlines are measured between message timestamps (`Decoded.ts`), so a replayed or
accelerated stream gives the same results as real time. Timers that must fire while a device is
silent are evaluated by `tick(now)`, where `now` is the engine clock (wall or event-time watermark,
`AlertSettings.clock`). Nothing here does I/O; `DeviceState` is owned by the caller and updated in
place by each evaluation, and serialises to a small JSON document (`to_json`/`from_json`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from devices.alarms import ALARM_INFO, AlarmType, Check, Severity
from devices.contract import Family

SEQ_WINDOW = 64  # duplicate detection window (a 64-bit mask of recently seen sequence numbers)


def to_dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


@dataclass(frozen=True, slots=True)
class DeviceContext:
    """What the engine knows about a device from the registry."""

    device_id: int
    uid: str
    community_id: int
    family: Family
    building_id: int | None = None
    location_id: int | None = None
    evacuation_route: bool = False
    timezone: str = "Asia/Shanghai"
    # site facts from the registry (None: not recorded; the rules fall back to a setting)
    latitude: float | None = None  # the community's location: sunset for scheduled lamps
    longitude: float | None = None
    floors: int | None = None  # elevators: floors served (device metadata, else the building's)
    rated_speed_mps: float | None = None  # elevators: rated car speed (device metadata)
    held_open_s: float | None = None  # doors: this door's own held-open limit (device metadata)


# ---------------------------------------------------------------------------------------------
# Outputs


@dataclass(frozen=True, slots=True)
class RaiseAlarm:
    type: AlarmType
    severity: Severity
    at: datetime
    source: str
    details: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ClearAlarm:
    type: AlarmType
    at: datetime
    details: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Escalate:
    """A step of an escalation ladder on an open alarm (rescue clock, cutoff not verified)."""

    type: AlarmType
    at: datetime
    details: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Finding:
    check: Check
    kind: str
    compliant: bool
    observed_at: datetime
    trigger_at: datetime | None = None
    deadline_s: float | None = None
    measured_s: float | None = None
    channel: int = 0
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def dedup_key(self) -> str:
        """Same obligation, same decision: a redelivered message must not record it twice."""
        trig = "" if self.trigger_at is None else f"{self.trigger_at.timestamp():.3f}"
        return f"{self.check.value}:{self.kind}:{self.channel}:{trig}:{int(self.compliant)}"


@dataclass(frozen=True, slots=True)
class SendCommand:
    """A command to this device (recorded in `commands`, published by the MQTT owner)."""

    name: str
    params: dict[str, Any]
    at: datetime
    reason: AlarmType


@dataclass(frozen=True, slots=True)
class Linkage:
    """Emitted when a building-wide linkage starts: the service asks every involved device's rules to
    expect its action (alerts.core.linkage)."""

    kind: str  # "fire"
    building_id: int | None
    at: datetime


Output = RaiseAlarm | ClearAlarm | Escalate | Finding | SendCommand | Linkage


# ---------------------------------------------------------------------------------------------
# State


class DeviceState:
    """Per-device rule state: small, with slots, serialisable.

    `open`: alarm types this engine has raised and not cleared (→ time raised).
    `marks`: timers, counters and pending obligations under short keys; values are floats or short
    lists of floats/ints/strings so that the whole state stays well under 2 KB for a typical device.
    """

    __slots__ = ("heartbeat_s", "last_rx", "last_ts", "marks", "max_seq", "open", "seq_mask")

    def __init__(self) -> None:
        self.last_ts = 0.0
        self.last_rx = 0.0  # receipt time of the newest evaluated message (the service's replay filter)
        self.max_seq = -1
        self.seq_mask = 0
        self.heartbeat_s = 0  # 0: the family default
        self.open: dict[str, float] = {}
        self.marks: dict[str, Any] = {}

    def seen(self, seq: int) -> bool:
        """True if `seq` was already evaluated (redelivery); records it otherwise."""
        if seq > self.max_seq:
            shift = seq - self.max_seq
            self.seq_mask = (
                ((self.seq_mask << shift) | 1) & ((1 << SEQ_WINDOW) - 1) if shift < SEQ_WINDOW else 1
            )
            self.max_seq = seq
            return False
        back = self.max_seq - seq
        if back >= SEQ_WINDOW:  # far behind: a device that restarted its counter; start again
            self.max_seq, self.seq_mask = seq, 1
            return False
        bit = 1 << back
        if self.seq_mask & bit:
            return True
        self.seq_mask |= bit
        return False

    def to_json(self) -> dict[str, Any]:
        return {
            "t": self.last_ts,
            "x": self.last_rx,
            "s": self.max_seq,
            "k": self.seq_mask,
            "h": self.heartbeat_s,
            "o": self.open,
            "m": self.marks,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> DeviceState:
        st = cls()
        st.last_ts = float(doc.get("t", 0.0))
        st.last_rx = float(doc.get("x", 0.0))
        st.max_seq = int(doc.get("s", -1))
        st.seq_mask = int(doc.get("k", 0))
        st.heartbeat_s = int(doc.get("h", 0))
        st.open = {str(k): float(v) for k, v in doc.get("o", {}).items()}
        st.marks = dict(doc.get("m", {}))
        return st


# ---------------------------------------------------------------------------------------------
# The emitter: outputs, with flapping suppression and the timer/counter primitives


class Out:
    """Collects the outputs of one evaluation and owns the primitives that touch state."""

    __slots__ = ("flap_max", "flap_window_s", "items", "st")

    def __init__(self, st: DeviceState, flap_window_s: float, flap_max: int) -> None:
        self.st = st
        self.items: list[Output] = []
        self.flap_window_s = flap_window_s
        self.flap_max = flap_max

    # alarms -----------------------------------------------------------------------------------

    def raise_(
        self,
        type: AlarmType,
        ts: float,
        details: dict[str, Any] | None = None,
        *,
        source: str = "engine",
        repeat: bool = False,
        severity: Severity | None = None,
    ) -> bool:
        """Raise `type` unless already open (then only if `repeat`: a repeated device event counts as
        another occurrence). Returns True if something was emitted."""
        st = self.st
        st.marks.pop("q:" + type, None)  # the condition is back: no pending (flap-held) clear
        hold = st.marks.get("h:" + type)
        if hold is not None:
            hold[1] = 1  # a rule of its own still sees the condition (see `hold`)
        if type in st.open and not repeat:
            return False
        if type not in st.open:
            flap = st.marks.get("f:" + type)
            if flap is not None and ts - flap[1] <= self.flap_window_s:
                flap[0] += 1
            else:
                st.marks["f:" + type] = [1, ts]
            st.open[type] = ts
        self.items.append(
            RaiseAlarm(type, severity or ALARM_INFO[type].severity, to_dt(ts), source, details or {})
        )
        return True

    def clear(self, type: AlarmType, ts: float, details: dict[str, Any] | None = None) -> bool:
        """Clear `type` if open. A flapping alarm (raised `flap_max` times within the window) is held
        open until the condition has stayed clear for a whole window (`flush_pending_clears`)."""
        st = self.st
        if type not in st.open:
            return False
        hold = st.marks.get("h:" + type)
        if hold is not None:  # held open by another source of the same alarm type (see `hold`)
            hold[1] = 2
            return False
        flap = st.marks.get("f:" + type)
        if flap is not None and flap[0] >= self.flap_max and ts - flap[1] <= self.flap_window_s:
            st.marks.setdefault("q:" + type, ts)
            return False
        del st.open[type]
        st.marks.pop("q:" + type, None)
        self.items.append(ClearAlarm(type, to_dt(ts), details or {}))
        return True

    def flush_pending_clears(self, now: float) -> None:
        for key in [k for k in self.st.marks if k.startswith("q:")]:
            since = self.st.marks[key]
            if now - since >= self.flap_window_s:
                type = AlarmType(key[2:])
                self.st.marks.pop(key)
                self.st.marks.pop("f:" + type, None)
                if self.st.open.pop(type, None) is not None:
                    self.items.append(ClearAlarm(type, to_dt(now), {"after_flapping": True}))

    def hold(self, type: AlarmType) -> None:
        """Keep `type` open against the rules' own clears until `release` (a second source of the same
        alarm type, e.g. an out-of-range reading refused at the edge). The hold records [good messages
        since, what the rules said in the current evaluation: 0 nothing, 1 raise, 2 clear]."""
        self.st.marks["h:" + type] = [0, 0]

    def release_after(self, type: AlarmType, good: int, ts: float) -> None:
        """Count one good message against a hold; after `good` of them, drop the hold and clear the
        alarm unless a rule of its own raised it again in this evaluation."""
        hold = self.st.marks.get("h:" + type)
        if hold is None:
            return
        hold[0] += 1
        said = hold[1]
        hold[1] = 0
        if hold[0] >= good:
            del self.st.marks["h:" + type]
            if said != 1:
                self.clear(type, ts, {"after_good_messages": good})

    def is_open(self, type: AlarmType) -> bool:
        return type in self.st.open

    def escalate(self, type: AlarmType, ts: float, details: dict[str, Any]) -> None:
        self.items.append(Escalate(type, to_dt(ts), details))

    def finding(
        self,
        check: Check,
        kind: str,
        compliant: bool,
        ts: float,
        *,
        trigger_ts: float | None = None,
        deadline_s: float | None = None,
        measured_s: float | None = None,
        channel: int = 0,
        details: dict[str, Any] | None = None,
    ) -> None:
        self.items.append(
            Finding(
                check,
                kind,
                compliant,
                to_dt(ts),
                None if trigger_ts is None else to_dt(trigger_ts),
                deadline_s,
                None if measured_s is None else round(measured_s, 3),
                channel,
                details or {},
            )
        )

    def command(self, name: str, params: dict[str, Any], ts: float, reason: AlarmType) -> None:
        self.items.append(SendCommand(name, params, to_dt(ts), reason))

    # timers and counters ----------------------------------------------------------------------

    def held(self, key: str, cond: bool, ts: float, confirm_s: float) -> bool:
        """True once `cond` has held continuously for `confirm_s` (device time)."""
        marks = self.st.marks
        if not cond:
            marks.pop(key, None)
            return False
        since = marks.setdefault(key, ts)
        return bool(ts - since >= confirm_s)

    def since(self, key: str) -> float | None:
        value = self.st.marks.get(key)
        return None if value is None else float(value)

    def count(self, key: str, ts: float, window_s: float) -> int:
        """Count one event in a sliding window (restarts when the window has passed)."""
        c = self.st.marks.get(key)
        if c is None or ts - c[1] > window_s:
            c = [0, ts]
            self.st.marks[key] = c
        c[0] += 1
        return int(c[0])

    def hysteresis(
        self,
        type: AlarmType,
        value: float | None,
        on: float,
        off: float,
        ts: float,
        *,
        confirm_s: float = 0.0,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Raise when `value` ≥ `on` for `confirm_s`; clear when it falls below `off` (< on)."""
        if value is None:
            return
        if self.held("t:" + type, value >= on, ts, confirm_s):
            self.raise_(type, ts, {**(details or {}), "value": value, "threshold": on})
        elif value < off:
            self.clear(type, ts, {"value": value, "clear_below": off})

    def low_hysteresis(self, type: AlarmType, value: float | None, on: float, off: float, ts: float) -> None:
        """Raise when `value` ≤ `on`; clear when it is back at or above `off` (> on)."""
        if value is None:
            return
        if value <= on:
            self.raise_(type, ts, {"value": value, "threshold": on})
        elif value >= off:
            self.clear(type, ts, {"value": value, "clear_at": off})
