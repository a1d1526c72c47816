"""The typed records of a device's rule state (`DeviceState`, alerts/core/model.py) and their JSON form.

Each record is a small mutable dataclass with slots (the rules update them in place, as they did the
positional lists of form 3) whose JSON form names its fields and leaves out what is at its default,
so that a typical device's state stays a few hundred bytes. `to_json` and `from_json` are each other's
inverse; `from_form3` reads the positional list that form 3 kept under the record's mark key
(migration 0026 rewrites stored form-3 states the same way, `DeviceState.from_json` still reads them).

Rule-wide records: `Flap` (a raise count within the flapping window), `Hold` (an alarm type held open
against the rules' own clears), `Count` (events in a sliding window), `Fault` (a fault reported by the
device or seen in its telemetry, alerts/core/faults.py), `ClockWindow` (the clock-offset window,
alerts/core/clock.py). A family's own state is one record per device: `ChargerState`, `CctvState`,
`ElevatorState`, `SmokeState`, `GasState` (documented in the family's rule module).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, ClassVar

from devices.alarms import AlarmType


def _flag(doc: dict[str, Any], name: str) -> bool:
    return bool(doc.get(name, False))


# ---------------------------------------------------------------------------------------------
# Rule-wide records


@dataclass(slots=True)
class Flap:
    """Raises of one alarm type within the flapping window that began at `since` (model.Out)."""

    count: int
    since: float

    def to_json(self) -> dict[str, Any]:
        return {"n": self.count, "since": self.since}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Flap:
        return cls(int(doc["n"]), float(doc["since"]))

    @classmethod
    def from_form3(cls, v: list[Any]) -> Flap:
        """Form 3's "f:<type>" = [count, since]."""
        return cls(int(v[0]), float(v[1]))


class Said(IntEnum):
    """What the rules said about a held alarm type in the current evaluation (model.Out.hold)."""

    NOTHING = 0
    RAISE = 1
    CLEAR = 2


@dataclass(slots=True)
class Hold:
    """An alarm type held open until `good` messages without the condition (−1: the message that set
    the hold is counted by the engine's own release)."""

    good: int = 0
    said: Said = Said.NOTHING

    def to_json(self) -> dict[str, Any]:
        return {"good": self.good, "said": int(self.said)}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Hold:
        return cls(int(doc.get("good", 0)), Said(int(doc.get("said", 0))))

    @classmethod
    def from_form3(cls, v: list[Any]) -> Hold:
        """Form 3's "h:<type>" = [good messages, said]."""
        return cls(int(v[0]), Said(int(v[1])))


@dataclass(slots=True)
class Count:
    """Events counted in a sliding window that began at `since` (model.Out.count)."""

    n: int
    since: float

    def to_json(self) -> dict[str, Any]:
        return {"n": self.n, "since": self.since}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Count:
        return cls(int(doc["n"]), float(doc["since"]))

    @classmethod
    def from_form3(cls, v: list[Any]) -> Count:
        """Form 3's "c:<name>" = [count, window start]."""
        return cls(int(v[0]), float(v[1]))


@dataclass(slots=True)
class Fault:
    """A fault by its key (alerts/core/faults.py). `reported`: the device reports it active, since
    `at`. Otherwise its telemetry shows it since `at` and it is not reported: `decided` once the
    fault-alarm deadline has passed (silent fault), `raised` when Yiju raised the alarm at once."""

    at: float
    alarm: AlarmType
    reported: bool = False
    decided: bool = False
    raised: bool = False

    @property
    def alarm_open(self) -> bool:
        """Whether this fault keeps its alarm open."""
        return self.reported or self.decided or self.raised

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"at": self.at, "alarm": self.alarm.value}
        for name in ("reported", "decided", "raised"):
            if getattr(self, name):
                doc[name] = True
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Fault:
        return cls(
            float(doc["at"]),
            AlarmType(doc["alarm"]),
            _flag(doc, "reported"),
            _flag(doc, "decided"),
            _flag(doc, "raised"),
        )

    @classmethod
    def from_form3_reported(cls, v: list[Any]) -> Fault:
        """Form 3's "rf:<key>" = [ts, alarm type]."""
        return cls(float(v[0]), AlarmType(v[1]), reported=True)

    @classmethod
    def from_form3_seen(cls, v: list[Any]) -> Fault:
        """Form 3's "sf:<key>" = [first seen, decided, alarm type(, raised at once)]."""
        return cls(float(v[0]), AlarmType(v[2]), decided=bool(v[1]), raised=len(v) > 3)


@dataclass(slots=True)
class ClockWindow:
    """The clock-offset window (alerts/core/clock.py): its start (receive time), the least offset of
    its messages and how many there were."""

    start: float
    least: float
    n: int = 1

    def to_json(self) -> dict[str, Any]:
        return {"start": self.start, "least": self.least, "n": self.n}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> ClockWindow:
        return cls(float(doc["start"]), float(doc["least"]), int(doc["n"]))

    @classmethod
    def from_form3(cls, v: list[Any]) -> ClockWindow:
        """Form 3's "ck" = [window start, least offset, messages]."""
        return cls(float(v[0]), float(v[1]), int(v[2]))


# ---------------------------------------------------------------------------------------------
# Charging posts (alerts/core/charger.py)


@dataclass(frozen=True, slots=True)
class Stop:
    """A stop the post reported for a port, not yet seen in telemetry: when, and its reason."""

    at: float
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"at": self.at, "reason": self.reason}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Stop:
        return cls(float(doc["at"]), str(doc["reason"]))


@dataclass(frozen=True, slots=True)
class FloatWindow:
    """A port's full/float window: the session's first full report and its session time then."""

    since: float
    session_s: float

    def to_json(self) -> dict[str, Any]:
        return {"since": self.since, "session_s": self.session_s}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> FloatWindow:
        return cls(float(doc["since"]), float(doc["session_s"]))


# form 3 kept the protection issues of even earlier versions as bit flags of the two switches
_OLD_PROTECTION_BITS = {1: ("full_auto_stop_disabled",), 2: ("over_temp_cutoff_disabled",)}


def _ports(doc: dict[str, Any]) -> dict[int, Any]:
    return {int(p): v for p, v in doc.items()}


@dataclass(slots=True)
class ChargerState:
    """`protective` / `other`: stops reported per port (protective or not, PROTECTIVE_STOP_REASONS);
    `floats`: the full/float window per port; `on_ports`: the ports with power in the last telemetry;
    `protection`: the protection issues last reported (None: none reported yet)."""

    KEY: ClassVar[str] = "charger"  # its key in the state document

    protective: dict[int, Stop] = field(default_factory=dict)
    other: dict[int, Stop] = field(default_factory=dict)
    floats: dict[int, FloatWindow] = field(default_factory=dict)
    on_ports: tuple[int, ...] = ()
    protection: tuple[str, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {}
        if self.protective:
            doc["protective"] = {str(p): s.to_json() for p, s in self.protective.items()}
        if self.other:
            doc["other"] = {str(p): s.to_json() for p, s in self.other.items()}
        if self.floats:
            doc["floats"] = {str(p): w.to_json() for p, w in self.floats.items()}
        if self.on_ports:
            doc["on"] = list(self.on_ports)
        if self.protection is not None:
            doc["protection"] = list(self.protection)
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> ChargerState:
        protection = doc.get("protection")
        return cls(
            {p: Stop.from_json(s) for p, s in _ports(doc.get("protective", {})).items()},
            {p: Stop.from_json(s) for p, s in _ports(doc.get("other", {})).items()},
            {p: FloatWindow.from_json(w) for p, w in _ports(doc.get("floats", {})).items()},
            tuple(int(p) for p in doc.get("on", ())),
            None if protection is None else tuple(str(x) for x in protection),
        )

    def take_form3(self, key: str, v: Any) -> bool:
        """Form 3's mark `key`, if it is one of the charger's: "ps:<port>" / "np:<port>" = [ts,
        reason], "fw:<port>" = [since, session_s], "on" = [port…], "p" = [issue…] (or bit flags)."""
        head, _, port = key.partition(":")
        if head in ("ps", "np") and port:
            (self.protective if head == "ps" else self.other)[int(port)] = Stop(float(v[0]), str(v[1]))
        elif head == "fw" and port:
            self.floats[int(port)] = FloatWindow(float(v[0]), float(v[1]))
        elif key == "on":
            self.on_ports = tuple(int(p) for p in v)
        elif key == "p":
            if isinstance(v, int):
                v = sorted(n for bit, names in _OLD_PROTECTION_BITS.items() if v & bit for n in names)
            self.protection = tuple(str(x) for x in v)
        else:
            return False
        return True


# ---------------------------------------------------------------------------------------------
# CCTV recorders (alerts/core/cctv.py)


@dataclass(frozen=True, slots=True)
class Gap:
    """A recording gap of a channel: when it ended and how long it lasted."""

    end: float
    seconds: float


@dataclass(slots=True)
class CctvChannel:
    """One recorder channel: online and recording as last reported, recording stopped since (0:
    recording), the verdict bits of its last evaluation (−1: never evaluated) and when that was, its
    earliest recording (0: unknown), and the recording gaps within the last retention window."""

    online: bool = True
    recording: bool = True
    stopped_since: float = 0.0
    verdict: int = -1
    evaluated_at: float = 0.0
    earliest: float = 0.0
    gaps: list[Gap] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {}
        if not self.online:
            doc["online"] = False
        if not self.recording:
            doc["recording"] = False
        if self.stopped_since:
            doc["stopped_since"] = self.stopped_since
        if self.verdict != -1:
            doc["verdict"] = self.verdict
        if self.evaluated_at:
            doc["evaluated_at"] = self.evaluated_at
        if self.earliest:
            doc["earliest"] = self.earliest
        if self.gaps:
            doc["gaps"] = [[g.end, g.seconds] for g in self.gaps]  # [end, seconds] pairs
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> CctvChannel:
        return cls(
            bool(doc.get("online", True)),
            bool(doc.get("recording", True)),
            float(doc.get("stopped_since", 0.0)),
            int(doc.get("verdict", -1)),
            float(doc.get("evaluated_at", 0.0)),
            float(doc.get("earliest", 0.0)),
            [Gap(float(e), float(s)) for e, s in doc.get("gaps", ())],
        )

    @classmethod
    def from_form3(cls, v: list[Any]) -> CctvChannel:
        """Form 3's "c<n>" = [flags (1 online, 2 recording), stopped since, verdict bits, last
        evaluation, earliest recording]."""
        flags = int(v[0])
        return cls(bool(flags & 1), bool(flags & 2), float(v[1]), int(v[2]), float(v[3]), float(v[4]))


@dataclass(slots=True)
class CctvState:
    """`channels` by number; `last_report`: device time of the recorder's last report (None: none
    yet); `offline`: while it is offline; `overwrite`: its overwrite setting as last reported (None:
    unknown); `alarm_channels`: the failing channels each open channel alarm names."""

    KEY: ClassVar[str] = "cctv"  # its key in the state document

    channels: dict[int, CctvChannel] = field(default_factory=dict)
    last_report: float | None = None
    offline: bool = False
    overwrite: bool | None = None
    alarm_channels: dict[str, list[int]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {}
        if self.channels:
            doc["channels"] = {str(n): ch.to_json() for n, ch in self.channels.items()}
        if self.last_report is not None:
            doc["last_report"] = self.last_report
        if self.offline:
            doc["offline"] = True
        if self.overwrite is not None:
            doc["overwrite"] = self.overwrite
        if self.alarm_channels:
            doc["alarm_channels"] = {a: list(c) for a, c in self.alarm_channels.items()}
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> CctvState:
        overwrite = doc.get("overwrite")
        return cls(
            {n: CctvChannel.from_json(ch) for n, ch in _ports(doc.get("channels", {})).items()},
            None if doc.get("last_report") is None else float(doc["last_report"]),
            _flag(doc, "offline"),
            None if overwrite is None else bool(overwrite),
            {str(a): [int(c) for c in chans] for a, chans in doc.get("alarm_channels", {}).items()},
        )

    def take_form3(self, key: str, v: Any) -> bool:
        """Form 3's mark `key`, if it is one of the recorder's: "c<n>", "g<n>" = [[end, seconds]…],
        "cl", "ro", "ow" (1/0), "ca:<alarm>" = [channel…]."""
        if key[0] in "cg" and key[1:].isdigit():
            n = int(key[1:])
            if key[0] == "c":  # its gaps may have come first
                gaps = self.channels[n].gaps if n in self.channels else []
                self.channels[n] = CctvChannel.from_form3(v)
                self.channels[n].gaps = gaps
            else:
                self.channels.setdefault(n, CctvChannel()).gaps = [Gap(float(e), float(s)) for e, s in v]
        elif key == "cl":
            self.last_report = float(v)
        elif key == "ro":
            self.offline = bool(v)
        elif key == "ow":
            self.overwrite = bool(v)
        elif key.startswith("ca:"):
            self.alarm_channels[key[3:]] = [int(c) for c in v]
        else:
            return False
        return True


# ---------------------------------------------------------------------------------------------
# Elevators (alerts/core/elevator.py)


@dataclass(slots=True)
class Rescue:
    """The rescue clock of a trapping: its first evidence and the next escalation step."""

    t0: float
    step: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"t0": self.t0, "step": self.step}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Rescue:
        return cls(float(doc["t0"]), int(doc.get("step", 0)))


@dataclass(slots=True)
class ElevatorState:
    """`mode` as last reported; `rescue` while the clock runs; `rescued_at`: first evidence of an
    episode whose rescuer arrived (until its evidence is gone); trapped evidence from events
    (`trapped_event`) and from the last telemetry (`trapped_telemetry`)."""

    KEY: ClassVar[str] = "elevator"  # its key in the state document

    mode: str | None = None
    rescue: Rescue | None = None
    rescued_at: float | None = None
    trapped_event: bool = False
    trapped_telemetry: bool = False

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {}
        if self.mode is not None:
            doc["mode"] = self.mode
        if self.rescue is not None:
            doc["rescue"] = self.rescue.to_json()
        if self.rescued_at is not None:
            doc["rescued_at"] = self.rescued_at
        if self.trapped_event:
            doc["trapped_event"] = True
        if self.trapped_telemetry:
            doc["trapped_telemetry"] = True
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> ElevatorState:
        rescue = doc.get("rescue")
        return cls(
            None if doc.get("mode") is None else str(doc["mode"]),
            None if rescue is None else Rescue.from_json(rescue),
            None if doc.get("rescued_at") is None else float(doc["rescued_at"]),
            _flag(doc, "trapped_event"),
            _flag(doc, "trapped_telemetry"),
        )

    def take_form3(self, key: str, v: Any) -> bool:
        """Form 3's "mode", "r" = [first evidence, step], "rd", "tre", "trt"."""
        if key == "mode":
            self.mode = str(v)
        elif key == "r":
            self.rescue = Rescue(float(v[0]), int(v[1]))
        elif key == "rd":
            self.rescued_at = float(v)
        elif key == "tre":
            self.trapped_event = bool(v)
        elif key == "trt":
            self.trapped_telemetry = bool(v)
        else:
            return False
        return True


# ---------------------------------------------------------------------------------------------
# Smoke alarms (alerts/core/smoke.py)


@dataclass(slots=True)
class BatterySilence:
    """A silence while the low-battery fault is open: its start, the duration announced (None: not
    announced), whether the alarm was notified again after it, and whether it was found too long."""

    start: float
    announced_s: int | None = None
    reminded: bool = False
    too_long: bool = False

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"start": self.start}
        if self.announced_s is not None:
            doc["announced_s"] = self.announced_s
        if self.reminded:
            doc["reminded"] = True
        if self.too_long:
            doc["too_long"] = True
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> BatterySilence:
        announced = doc.get("announced_s")
        return cls(
            float(doc["start"]),
            None if announced is None else int(announced),
            _flag(doc, "reminded"),
            _flag(doc, "too_long"),
        )

    @classmethod
    def from_form3(cls, v: list[Any]) -> BatterySilence:
        """Form 3's "bs" = [start, announced duration or -1, reminded, found too long]."""
        return cls(float(v[0]), None if v[1] < 0 else int(v[1]), bool(v[2]), bool(v[3]))


@dataclass(slots=True)
class SmokeState:
    """`silence`: the battery-fault silence under way; `check_overdue`: a lapsed battery self-check
    already recorded as a finding."""

    KEY: ClassVar[str] = "smoke"  # its key in the state document

    silence: BatterySilence | None = None
    check_overdue: bool = False

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {}
        if self.silence is not None:
            doc["silence"] = self.silence.to_json()
        if self.check_overdue:
            doc["check_overdue"] = True
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> SmokeState:
        silence = doc.get("silence")
        return cls(
            None if silence is None else BatterySilence.from_json(silence), _flag(doc, "check_overdue")
        )

    def take_form3(self, key: str, v: Any) -> bool:
        """Form 3's "bs" and "bc"."""
        if key == "bs":
            self.silence = BatterySilence.from_form3(v)
        elif key == "bc":
            self.check_overdue = bool(v)
        else:
            return False
        return True


# ---------------------------------------------------------------------------------------------
# Gas alarms (alerts/core/gas.py)


@dataclass(frozen=True, slots=True)
class GasReading:
    """The last reading valid for thresholds."""

    lel_pct: float
    co_ppm: float | None = None

    def to_json(self) -> dict[str, Any]:
        return (
            {"lel_pct": self.lel_pct}
            if self.co_ppm is None
            else {"lel_pct": self.lel_pct, "co_ppm": self.co_ppm}
        )

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> GasReading:
        co = doc.get("co_ppm")
        return cls(float(doc["lel_pct"]), None if co is None else float(co))


@dataclass(slots=True)
class GasState:
    """`event_level`: the level of the device's alarm events (1 low, 2 high; latched until cleared);
    `state_level`: the level of its reported state; `reading`; `valve` as last reported ("none": no
    valve); `close_due`: when Yiju gives the valve's close signal itself."""

    KEY: ClassVar[str] = "gas"  # its key in the state document

    event_level: int = 0
    state_level: int = 0
    reading: GasReading | None = None
    valve: str = "none"
    close_due: float | None = None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {}
        if self.event_level:
            doc["event_level"] = self.event_level
        if self.state_level:
            doc["state_level"] = self.state_level
        if self.reading is not None:
            doc["reading"] = self.reading.to_json()
        if self.valve != "none":
            doc["valve"] = self.valve
        if self.close_due is not None:
            doc["close_due"] = self.close_due
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> GasState:
        reading = doc.get("reading")
        return cls(
            int(doc.get("event_level", 0)),
            int(doc.get("state_level", 0)),
            None if reading is None else GasReading.from_json(reading),
            str(doc.get("valve", "none")),
            None if doc.get("close_due") is None else float(doc["close_due"]),
        )

    def take_form3(self, key: str, v: Any) -> bool:
        """Form 3's "ge" (or the even older "ev:gas"), "gs", "gr" = [lel, co or -1], "valve", "gc"."""
        if key in ("ge", "ev:gas"):
            self.event_level = int(v)
        elif key == "gs":
            self.state_level = int(v)
        elif key == "gr":
            self.reading = GasReading(float(v[0]), None if v[1] < 0 else float(v[1]))
        elif key == "valve":
            self.valve = str(v)
        elif key == "gc":
            self.close_due = float(v)
        else:
            return False
        return True


FamilyState = ChargerState | CctvState | ElevatorState | SmokeState | GasState
# each family's record by its key in the state document
FAMILY_STATES: dict[str, type[FamilyState]] = {
    c.KEY: c for c in (ChargerState, CctvState, ElevatorState, SmokeState, GasState)
}
