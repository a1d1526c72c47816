"""The rule core's inputs and outputs, its per-device state and the primitives every rule uses.

Time: the core works in seconds since the epoch (floats) on **device time**: durations, confirmation
timers and deadlines are measured between message timestamps (`Decoded.ts`), so a replayed or
accelerated stream gives the same results as real time. Timers that must fire while a device is
silent are evaluated by `tick(now)`, where `now` is the engine clock (wall or event-time watermark,
`AlertSettings.clock`). Nothing here does I/O; `DeviceState` is owned by the caller and updated in
place by each evaluation, and serialises to a small JSON document (`to_json`/`from_json`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import IntEnum
from typing import Any

from alerts.core.records import FAMILY_STATES, ClockWindow, Count, FamilyState, Fault, Flap, Hold, Said
from devices.alarms import ALARM_INFO, AlarmType, Check, Finding, Severity
from devices.contract import Family

SEQ_WINDOW = 64  # duplicate detection window (a 64-bit mask of recently evaluated sequence numbers)


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


# a `Finding` (a compliance decision) is the pure vocabulary's (`devices.alarms`): storage records it as
# it is (storage.findings.FindingRow)
Output = RaiseAlarm | ClearAlarm | Escalate | Finding | SendCommand | Linkage


# ---------------------------------------------------------------------------------------------
# State


class Admit(IntEnum):
    """What `DeviceState.admit` decided about a message."""

    NEW = 0  # not evaluated before: evaluate it
    DUPLICATE = 1  # the same natural key was already evaluated (a redelivery): skip it
    RESTART = 2  # the device's counter restarted: a new epoch begins with this message; evaluate it


@dataclass(slots=True)
class SeqEpoch:
    """One lifetime of a device's sequence counter (from a boot or factory reset to the next).

    Within an epoch `seq` and `ts` rise together (the contract: +1 per message, original `ts` kept
    when a buffer is flushed), so `seq` alone names a message of the epoch; the 64-bit `mask` remembers
    which of the `SEQ_WINDOW` numbers up to `max_seq` were evaluated. `max_ts` is the newest device
    time of the epoch, `start_ts` the time of the message that began it, `online` the natural key
    (seq, ts) of its newest online announcement (the retained one the broker delivers again).
    """

    max_seq: int
    mask: int
    max_ts: float
    start_ts: float
    online: tuple[int, float] | None = None

    def mark(self, seq: int) -> Admit:
        """`seq` ≤ `max_seq`: a duplicate if its bit is set, else set it. Older than the window: NEW
        (it cannot be ruled out, and a missed alarm is worse than a repeated evaluation)."""
        back = self.max_seq - seq
        if back >= SEQ_WINDOW:
            return Admit.NEW
        bit = 1 << back
        if self.mask & bit:
            return Admit.DUPLICATE
        self.mask |= bit
        return Admit.NEW

    def advance(self, seq: int, ts: float) -> None:
        shift = seq - self.max_seq
        self.mask = ((self.mask << shift) | 1) & _MASK if shift < SEQ_WINDOW else 1
        self.max_seq = seq
        self.max_ts = max(self.max_ts, ts)

    def to_json(self) -> list[Any]:
        return [self.max_seq, self.mask, self.max_ts, self.start_ts, *(self.online or ())]

    @classmethod
    def from_json(cls, doc: list[Any]) -> SeqEpoch:
        online = (int(doc[4]), float(doc[5])) if len(doc) >= 6 else None
        return cls(int(doc[0]), int(doc[1]), float(doc[2]), float(doc[3]), online)


_MASK = (1 << SEQ_WINDOW) - 1
# version of the serialised form (`to_json`); 1 = before sequence epochs, 2 = obligations as
# positional lists in `marks` ("o:<kind>:<port>", "l:<action>"; migration 0020 rewrites them), 3 =
# the other records as positional lists in `marks` too ("f:<type>", "sf:<key>", "ps:<port>", "ck",
# "bs", …; migration 0026 rewrites them, alerts/core/records.py reads them)
STATE_FORM = 4


class Stage(IntEnum):
    """Where an obligation stands (an auto-cutoff or a linkage action owed by a deadline)."""

    WAITING = 0  # the device's own action is awaited until the deadline
    COMMANDED = 1  # missed: Yiju sent the command, its effect is awaited until the verification deadline
    ESCALATED = 2  # the command did not take effect either: escalated, no further deadline


@dataclass(frozen=True, slots=True)
class Obligation:
    """An action a device owes by a deadline (device time). `t0` is the trigger's instant and
    `deadline` the end of the current stage. An auto-cutoff lists the `ports` still to lose power
    (alerts/core/charger.py); a fire linkage action the `signals` that confirmed the fire
    (alerts/core/linkage.py). Replaced, never changed in place (`dataclasses.replace`)."""

    t0: float
    deadline: float
    stage: Stage = Stage.WAITING
    ports: tuple[int, ...] = ()
    signals: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"t0": self.t0, "deadline": self.deadline, "stage": int(self.stage)}
        if self.ports:
            doc["ports"] = list(self.ports)
        if self.signals:
            doc["signals"] = list(self.signals)
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Obligation:
        return cls(
            float(doc["t0"]),
            float(doc["deadline"]),
            Stage(int(doc.get("stage", 0))),
            tuple(int(p) for p in doc.get("ports", ())),
            tuple(str(x) for x in doc.get("signals", ())),
        )

    @classmethod
    def from_form2_cut(cls, ob: list[Any]) -> Obligation:
        """Form 2's "o:<kind>:<port>" = [trigger ts, deadline ts, stage, ports…]."""
        return cls(float(ob[0]), float(ob[1]), Stage(int(ob[2])), tuple(int(p) for p in ob[3:]))

    @classmethod
    def from_form2_action(cls, ob: list[Any]) -> Obligation:
        """Form 2's "l:<action>" = [trigger ts, deadline ts, stage, confirming signals?]."""
        signals = tuple(str(x) for x in ob[3]) if len(ob) > 3 and ob[3] else ()
        return cls(float(ob[0]), float(ob[1]), Stage(int(ob[2])), signals=signals)


CutKey = tuple[str, int]  # (trigger kind, port; 0 = post-wide) of an auto-cutoff obligation


class DeviceState:
    """Per-device rule state: small, with slots, serialisable (well under 2 KB for a typical device).

    `open`: alarm types this engine has raised and not cleared (→ time raised).
    `marks`: scalars under short keys — timers ("t:<name>" = since when a condition holds), flap-held
    clears ("q:<type>" = since), conditions a device reported ("ev:<kind>" = 1) and linkage actions
    its reports show done ("sat:<action>" = 1). Everything else is a typed record
    (alerts/core/records.py): `flaps` and `holds` by alarm type, `counts` by name, `faults` by fault
    key (alerts/core/faults.py), the clock offset and its window (alerts/core/clock.py), `exempt`:
    linkage actions the device cannot take part in now (→ why), and `family`: the family's own record
    (`ChargerState`, `CctvState`, …; None until its rules first need it).
    `cuts`: a charging post's auto-cutoff obligations by (trigger kind, port); `actions`: the linkage
    actions this device owes by action name (`Obligation`).
    `epoch` / `prev_epoch`: duplicate detection on the contract's natural key (device, ts, seq), see
    `admit`; the previous epoch is kept so that a late copy of a message from before a counter
    restart is still recognised. `restarts` counts the counter restarts seen.
    """

    __slots__ = ("actions", "clock_offset_s", "clock_window", "counts", "cuts", "epoch", "exempt",
                 "family", "faults", "flaps", "heartbeat_s", "holds", "last_admit", "last_rx", "last_ts",
                 "marks", "open", "prev_epoch", "restarts")  # fmt: skip

    def __init__(self) -> None:
        self.last_ts = 0.0
        self.last_rx = 0.0  # receipt time of the newest evaluated message (the service's replay filter)
        self.epoch: SeqEpoch | None = None
        self.prev_epoch: SeqEpoch | None = None
        self.restarts = 0
        self.last_admit = Admit.NEW  # the verdict on the newest message (not persisted)
        self.heartbeat_s = 0  # 0: the family default
        self.open: dict[str, float] = {}
        self.marks: dict[str, float] = {}
        self.cuts: dict[CutKey, Obligation] = {}
        self.actions: dict[str, Obligation] = {}
        self.faults: dict[str, Fault] = {}
        # made when first written (None until then): most devices never need them, and an empty
        # dict costs 64 bytes a device
        self.flaps: dict[str, Flap] | None = None
        self.holds: dict[str, Hold] | None = None
        self.counts: dict[str, Count] | None = None
        self.exempt: dict[str, str] | None = None
        self.clock_offset_s = 0.0  # receive − device time of the newest message (alerts/core/clock.py)
        self.clock_window: ClockWindow | None = None
        self.family: FamilyState | None = None

    @property
    def max_seq(self) -> int:
        return -1 if self.epoch is None else self.epoch.max_seq

    def admit(self, seq: int, ts: float, *, online: bool = False) -> Admit:
        """Decide whether the message (seq, ts) of this device was already evaluated, and record it.

        Duplicates follow the natural key (device, ts, seq): only a message already evaluated is one.
        A counter restart (reboot, factory reset, the simulator's second run) shows as a `seq` not
        above the epoch's highest with a newer `ts`, or as an online announcement with a `seq` not above
        the highest that is not the one already seen (a reboot whose clock came back wrong): it starts
        a new epoch, and its messages are evaluated however low their numbers (docs/mqtt.md §3).
        """
        verdict = self._admit(seq, ts, online)
        self.last_admit = verdict
        return verdict

    def _admit(self, seq: int, ts: float, online: bool) -> Admit:  # noqa: PLR0911 - one return per case
        e, prev = self.epoch, self.prev_epoch
        if e is None:
            self.epoch = SeqEpoch(seq, 1, ts, ts, (seq, ts) if online else None)
            return Admit.NEW
        key = (seq, ts)
        if online and (key == e.online or (prev is not None and key == prev.online)):
            return Admit.DUPLICATE  # the retained status, delivered again on a re-subscription
        if prev is not None and ts < e.start_ts:  # from before the restart: the previous epoch's
            if seq > prev.max_seq:  # one it had not delivered yet (a buffer flushed late)
                prev.advance(seq, ts)
                return Admit.NEW
            return prev.mark(seq)  # or a late copy
        if seq > e.max_seq:
            e.advance(seq, ts)
            if online:
                e.online = key
            return Admit.NEW
        if ts > e.max_ts or online:  # not above the highest number, but newer: a new counter
            self.prev_epoch = e
            self.epoch = SeqEpoch(seq, 1, ts, ts, key if online else None)
            self.restarts += 1
            return Admit.RESTART
        return e.mark(seq)

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "v": STATE_FORM,
            "t": self.last_ts,
            "x": self.last_rx,
            "h": self.heartbeat_s,
            "o": self.open,
            "m": self.marks,
        }
        if self.epoch is not None:
            doc["e"] = self.epoch.to_json()
        if self.prev_epoch is not None:
            doc["p"] = self.prev_epoch.to_json()
        if self.restarts:
            doc["n"] = self.restarts
        if self.cuts:
            doc["cuts"] = {f"{kind}:{port}": ob.to_json() for (kind, port), ob in self.cuts.items()}
        if self.actions:
            doc["actions"] = {action: ob.to_json() for action, ob in self.actions.items()}
        if self.clock_offset_s:
            doc["clock_offset_s"] = self.clock_offset_s
        if self.clock_window is not None:
            doc["clock_window"] = self.clock_window.to_json()
        records = (
            ("flaps", self.flaps),
            ("faults", self.faults),
            ("holds", self.holds),
            ("counts", self.counts),
        )
        for name, by_key in records:
            if by_key:
                doc[name] = {key: r.to_json() for key, r in by_key.items()}
        if self.exempt:
            doc["exempt"] = dict(self.exempt)
        if self.family is not None and (family := self.family.to_json()):
            doc[self.family.KEY] = family
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> DeviceState:
        """Reads the current form, form 3 (the records as positional lists in `m`: migration 0026
        rewrites stored ones the same way), form 2 (obligations as positional lists in `m` too:
        migration 0020) and form 1 (`s` highest seq, `k` mask, no times: the newest device time `t`
        stands in for the epoch's; migration 0007 rewrites stored form-1 states)."""
        st = cls()
        st.last_ts = float(doc.get("t", 0.0))
        st.last_rx = float(doc.get("x", 0.0))
        if "e" in doc:
            st.epoch = SeqEpoch.from_json(doc["e"])
        elif int(doc.get("s", -1)) >= 0:
            st.epoch = SeqEpoch(int(doc["s"]), int(doc.get("k", 0)), st.last_ts, 0.0)
        if "p" in doc:
            st.prev_epoch = SeqEpoch.from_json(doc["p"])
        st.restarts = int(doc.get("n", 0))
        st.heartbeat_s = int(doc.get("h", 0))
        st.open = {str(k): float(v) for k, v in doc.get("o", {}).items()}
        marks = dict(doc.get("m", {}))
        for key in [k for k in marks if k.startswith(("o:", "l:"))]:  # form 2 (and 1)
            ob = marks.pop(key)
            if key[0] == "o":
                _, kind, port = key.split(":")
                st.cuts[(kind, int(port))] = Obligation.from_form2_cut(ob)
            else:
                st.actions[key[2:]] = Obligation.from_form2_action(ob)
        if int(doc.get("v", 1)) < STATE_FORM:  # form 3 and older
            st._read_form3_marks(marks)
        else:
            st.marks = marks
        st._read_records(doc)
        return st

    def _read_records(self, doc: dict[str, Any]) -> None:
        """The typed records of the state document (`to_json`)."""
        for key, ob_doc in doc.get("cuts", {}).items():
            kind, port = key.rsplit(":", 1)
            self.cuts[(kind, int(port))] = Obligation.from_json(ob_doc)
        for action, ob_doc in doc.get("actions", {}).items():
            self.actions[str(action)] = Obligation.from_json(ob_doc)
        self.clock_offset_s = float(doc.get("clock_offset_s", self.clock_offset_s))
        if "clock_window" in doc:
            self.clock_window = ClockWindow.from_json(doc["clock_window"])
        self.faults.update((k, Fault.from_json(v)) for k, v in doc.get("faults", {}).items())
        if doc.get("flaps"):
            self.flaps = {k: Flap.from_json(v) for k, v in doc["flaps"].items()}
        if doc.get("holds"):
            self.holds = {k: Hold.from_json(v) for k, v in doc["holds"].items()}
        if doc.get("counts"):
            self.counts = {k: Count.from_json(v) for k, v in doc["counts"].items()}
        if doc.get("exempt"):
            self.exempt = {str(k): str(v) for k, v in doc["exempt"].items()}
        for key, family in FAMILY_STATES.items():
            if key in doc:
                self.family = family.from_json(doc[key])

    def _read_form3_marks(self, marks: dict[str, Any]) -> None:
        """Form 3 kept every record as a positional list under a mark key (alerts/core/records.py
        names each); the scalars stay marks. Migration 0026 rewrites stored form-3 states the same
        way."""
        flaps: dict[str, Flap] = {}
        holds: dict[str, Hold] = {}
        counts: dict[str, Count] = {}
        exempt: dict[str, str] = {}
        for key, v in marks.items():
            head, _, name = key.partition(":")
            if head == "f" and name:
                flaps[name] = Flap.from_form3(v)
            elif head == "h" and name:
                holds[name] = Hold.from_form3(v)
            elif head == "c" and name:
                counts[name] = Count.from_form3(v)
            elif head == "rf" and name:
                self.faults[name] = Fault.from_form3_reported(v)
            elif head == "sf" and name:
                self.faults[name] = Fault.from_form3_seen(v)
            elif head == "ex" and name:
                exempt[name] = str(v)
            elif key == "co":
                self.clock_offset_s = float(v)
            elif key == "ck":
                self.clock_window = ClockWindow.from_form3(v)
            elif not self._family_form3(key, v) and isinstance(v, int | float):
                self.marks[key] = v  # a timer, a flag
        self.flaps, self.holds, self.counts, self.exempt = (
            flaps or None,
            holds or None,
            counts or None,
            exempt or None,
        )

    def _family_form3(self, key: str, v: Any) -> bool:
        for family in FAMILY_STATES.values():
            record = self.family if isinstance(self.family, family) else family()
            if record.take_form3(key, v):
                self.family = record
                return True
        return False


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
        if st.holds and (hold := st.holds.get(type)) is not None:
            hold.said = Said.RAISE  # a rule of its own still sees the condition (see `hold`)
        if type in st.open and not repeat:
            return False
        if type not in st.open:
            flaps = st.flaps
            if flaps is None:
                flaps = st.flaps = {}
            flap = flaps.get(type)
            if flap is not None and ts - flap.since <= self.flap_window_s:
                flap.count += 1
            else:
                flaps[type] = Flap(1, ts)
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
        if st.holds and (hold := st.holds.get(type)) is not None:
            hold.said = Said.CLEAR  # held open by another source of the same alarm type (see `hold`)
            return False
        flap = st.flaps.get(type) if st.flaps else None
        if flap is not None and flap.count >= self.flap_max and ts - flap.since <= self.flap_window_s:
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
                if self.st.flaps:
                    self.st.flaps.pop(type, None)
                if self.st.open.pop(type, None) is not None:
                    self.items.append(ClearAlarm(type, to_dt(now), {"after_flapping": True}))

    def hold(self, type: AlarmType) -> Hold:
        """Keep `type` open against the rules' own clears until `release` (a second source of the same
        alarm type, e.g. an out-of-range reading refused at the edge). The hold counts the good
        messages since and what the rules said in the current evaluation (`Hold`)."""
        if self.st.holds is None:
            self.st.holds = {}
        hold = self.st.holds[type] = Hold()
        return hold

    def release_after(self, type: AlarmType, good: int, ts: float) -> None:
        """Count one good message against a hold; after `good` of them, drop the hold and clear the
        alarm unless a rule of its own raised it again in this evaluation."""
        holds = self.st.holds
        hold = holds.get(type) if holds else None
        if holds is None or hold is None:
            return
        hold.good += 1
        said = hold.said
        hold.said = Said.NOTHING
        if hold.good >= good:
            del holds[type]
            if said is not Said.RAISE:
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
        counts = self.st.counts
        if counts is None:
            counts = self.st.counts = {}
        c = counts.get(key)
        if c is None or ts - c.since > window_s:
            c = counts[key] = Count(0, ts)
        c.n += 1
        return c.n

    def reset_count(self, key: str) -> None:
        if self.st.counts:
            self.st.counts.pop(key, None)

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
