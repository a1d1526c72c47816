"""The escalation core: which chain an alarm starts, when each step of a frozen chain is due, who is
on duty, and what one step delivers to whom. Pure: no I/O, no clock reads, no randomness.

    Chain.from_json(data) / chain.to_json()          the definition stored with a chain and frozen
                                                     into an incident when it starts
    select_policy(policies, alarm_type, severity, minute_of_day) -> Policy | None
    group_key(alarm_type, building_id, device_id, details) -> str | None
    start(chain, at) -> Progress                     the first step's due time
    advance(chain, progress, now) -> (due, Progress) every step due at `now`, in order, and what is
                                                     left; Progress.next_at is None when done
    on_duty(shifts, weekday, minute_of_day) -> bool
    deliveries(step, people, endpoints) -> [Delivery] one per (target, channel) a step reaches
    idempotency_key(incident, loop, step, target, channel) -> str

Timing contract: step 0 of loop 0 is due `steps[0].delay_s` after the incident started; step i is
due `steps[i].delay_s` after step i-1 of the same loop; step 0 of loop k > 0 is due
`repeat_delay_s + steps[0].delay_s` after the last step of loop k-1. A chain runs `loops` times
(OnCall #2622 / ThingsBoard #12501: a repeat that never happens is a bug — tests cover every loop).
Steps are never skipped: an `advance` after a long pause returns every step that fell due, so none
is lost, and the caller stops them all at once when the incident is acknowledged or cleared.

Quiet hours hold back only non-critical alarms; the types in `ALWAYS_ESCALATE` (fire, gas high,
trapped passenger, auto-cutoff failed, linkage failed — issue 11, domain.md §6) and every critical
alarm always escalate.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from devices.alarms import AlarmType

TargetKind = Literal["console", "person", "on_duty", "endpoint"]
ChannelName = Literal["console", "sip", "sms", "voice", "webhook", "gbt26875"]
PERSON_CHANNELS: frozenset[str] = frozenset({"sip", "sms", "voice"})
ENDPOINT_CHANNELS: frozenset[str] = frozenset({"webhook", "gbt26875"})
ALL_CHANNELS: frozenset[str] = PERSON_CHANNELS | ENDPOINT_CHANNELS | {"console"}
ALWAYS_ESCALATE: frozenset[str] = frozenset(
    {
        AlarmType.FIRE_ALARM,
        AlarmType.GAS_HIGH_ALARM,
        AlarmType.ELEVATOR_TRAPPED,
        AlarmType.AUTO_CUTOFF_FAILED,
        AlarmType.LINKAGE_FAILED,
    }
)
MAX_STEPS = 20
MAX_LOOPS = 10


class ChainError(ValueError):
    """A chain definition that cannot run (the API turns it into a 422)."""


@dataclass(frozen=True, slots=True)
class Target:
    kind: TargetKind
    ref: int | None = None  # person or endpoint id
    group: str | None = None  # duty group of an on_duty target

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "ref": self.ref, "group": self.group}


@dataclass(frozen=True, slots=True)
class Step:
    delay_s: float
    targets: tuple[Target, ...]
    channels: tuple[str, ...]
    name: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "delay_s": self.delay_s,
            "targets": [t.to_json() for t in self.targets],
            "channels": list(self.channels),
        }


@dataclass(frozen=True, slots=True)
class Chain:
    steps: tuple[Step, ...]
    loops: int = 1
    repeat_delay_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "steps": [s.to_json() for s in self.steps],
            "loops": self.loops,
            "repeat_delay_s": self.repeat_delay_s,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Chain:
        """Validate and build a chain; raises `ChainError` saying what is wrong."""
        try:
            if not isinstance(data, Mapping) or not isinstance(data.get("steps"), list):
                raise ChainError("a chain is an object with a list of steps")
            if not all(isinstance(s, Mapping) for s in data["steps"]):
                raise ChainError("every step is an object")
            raw_steps = list(data["steps"])
            loops = int(data.get("loops", 1))
            repeat = float(data.get("repeat_delay_s", 0.0))
            steps = tuple(_step(i, s) for i, s in enumerate(raw_steps))
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
            if isinstance(exc, ChainError):
                raise
            raise ChainError(f"malformed chain: {exc}") from None
        if not 1 <= len(steps) <= MAX_STEPS:
            raise ChainError(f"a chain has 1 to {MAX_STEPS} steps")
        if not 1 <= loops <= MAX_LOOPS:
            raise ChainError(f"loops must be 1 to {MAX_LOOPS}")
        if not 0 <= repeat <= 86_400:
            raise ChainError("repeat_delay_s must be 0 to 86400")
        return cls(steps, loops, repeat)


def _step(i: int, s: Mapping[str, Any]) -> Step:  # noqa: PLR0912 - one check per rule, in order
    delay = float(s.get("delay_s", 0))
    if not 0 <= delay <= 86_400:  # NaN fails this too
        raise ChainError(f"step {i}: delay_s must be 0 to 86400")
    channels = tuple(str(c) for c in s.get("channels", ()))
    unknown = set(channels) - ALL_CHANNELS
    if unknown:
        raise ChainError(f"step {i}: unknown channel(s) {sorted(unknown)}")
    targets: list[Target] = []
    raw_targets = s.get("targets", ())
    if not isinstance(raw_targets, list) or not all(isinstance(t, Mapping) for t in raw_targets):
        raise ChainError(f"step {i}: targets is a list of objects")
    if not isinstance(s.get("channels", []), list):
        raise ChainError(f"step {i}: channels is a list")
    for t in raw_targets:
        kind = t.get("kind")
        if kind == "console":
            targets.append(Target("console"))
        elif kind in ("person", "endpoint"):
            ref = t.get("ref")
            if not isinstance(ref, int) or isinstance(ref, bool) or ref < 1:
                raise ChainError(f"step {i}: a {kind} target needs a positive integer ref")
            targets.append(Target(kind, ref=ref))
        elif kind == "on_duty":
            group = t.get("group")
            if not isinstance(group, str) or not group:
                raise ChainError(f"step {i}: an on_duty target needs a duty group")
            targets.append(Target("on_duty", group=group))
        else:
            raise ChainError(f"step {i}: unknown target kind {kind!r}")
    if not targets:
        raise ChainError(f"step {i}: no targets")
    people = any(t.kind in ("person", "on_duty") for t in targets)
    if people and not set(channels) & PERSON_CHANNELS:
        raise ChainError(f"step {i}: people need a channel among {sorted(PERSON_CHANNELS)}")
    return Step(delay, tuple(targets), channels, str(s.get("name", ""))[:100])


# ---------------------------------------------------------------------------------------------
# Policies


@dataclass(frozen=True, slots=True)
class Policy:
    id: int
    chain_id: int
    alarm_types: frozenset[str] = frozenset()  # empty: every type
    severities: frozenset[str] = frozenset()  # empty: every severity
    quiet_start_min: int | None = None
    quiet_end_min: int | None = None
    priority: int = 100


def in_window(start_min: int, end_min: int, minute: int) -> bool:
    """Is `minute` (of the day) inside [start, end)? end <= start wraps over midnight."""
    if start_min < end_min:
        return start_min <= minute < end_min
    return minute >= start_min or minute < end_min


def always_escalates(alarm_type: str, severity: str) -> bool:
    return severity == "critical" or alarm_type in ALWAYS_ESCALATE


def select_policy(
    policies: Iterable[Policy], alarm_type: str, severity: str, minute_of_day: int
) -> Policy | None:
    """The matching policy with the lowest priority (then id), or None. A policy in its quiet hours
    does not match a non-critical alarm."""
    best: Policy | None = None
    for p in policies:
        if p.alarm_types and alarm_type not in p.alarm_types:
            continue
        if p.severities and severity not in p.severities:
            continue
        quiet = p.quiet_start_min is not None and p.quiet_end_min is not None
        if (
            quiet
            and not always_escalates(alarm_type, severity)
            and in_window(p.quiet_start_min or 0, p.quiet_end_min or 0, minute_of_day)
        ):
            continue
        if best is None or (p.priority, p.id) < (best.priority, best.id):
            best = p
    return best


def group_key(
    alarm_type: str, building_id: int | None, device_id: int, details: Mapping[str, Any]
) -> str | None:
    """The linked group an alarm belongs to: a fire and the linkage failures it causes in its
    building are one incident; a gas high alarm and its valve's failure are one incident."""
    if alarm_type == AlarmType.FIRE_ALARM and building_id is not None:
        return f"fire:b{building_id}"
    if alarm_type == AlarmType.GAS_HIGH_ALARM:
        return f"gas:d{device_id}"
    if alarm_type == AlarmType.LINKAGE_FAILED:
        if "valve" in str(details.get("action", "")):
            return f"gas:d{device_id}"
        if building_id is not None:
            return f"fire:b{building_id}"
    return None


# ---------------------------------------------------------------------------------------------
# Timing


@dataclass(frozen=True, slots=True)
class Progress:
    loop: int
    next_step: int
    next_at: float | None  # None: the chain is exhausted


def start(chain: Chain, at: float) -> Progress:
    return Progress(0, 0, at + chain.steps[0].delay_s)


def _following(chain: Chain, loop: int, step: int, started_at: float) -> Progress:
    """The step after (loop, step), which started at `started_at`."""
    if step + 1 < len(chain.steps):
        return Progress(loop, step + 1, started_at + chain.steps[step + 1].delay_s)
    if loop + 1 < chain.loops:
        return Progress(loop + 1, 0, started_at + chain.repeat_delay_s + chain.steps[0].delay_s)
    return Progress(loop + 1, 0, None)


def advance(chain: Chain, progress: Progress, now: float) -> tuple[list[tuple[int, int, float]], Progress]:
    """Every (loop, step, due_at) due at `now`, oldest first, and the progress after them."""
    due: list[tuple[int, int, float]] = []
    p = progress
    while p.next_at is not None and p.next_at <= now:
        due.append((p.loop, p.next_step, p.next_at))
        p = _following(chain, p.loop, p.next_step, p.next_at)
    return due, p


# ---------------------------------------------------------------------------------------------
# Targets


@dataclass(frozen=True, slots=True)
class Shift:
    weekdays: frozenset[int]  # ISO 1..7
    start_min: int
    end_min: int


def on_duty(shifts: Sequence[Shift], weekday: int, minute_of_day: int) -> bool:
    """On duty at this local time? A shift that wraps over midnight belongs to the day it starts."""
    for s in shifts:
        if s.start_min < s.end_min:
            if weekday in s.weekdays and s.start_min <= minute_of_day < s.end_min:
                return True
        else:
            yesterday = 7 if weekday == 1 else weekday - 1
            if (weekday in s.weekdays and minute_of_day >= s.start_min) or (
                yesterday in s.weekdays and minute_of_day < s.end_min
            ):
                return True
    return False


@dataclass(frozen=True, slots=True)
class Person:
    id: int
    name: str
    phone: str
    duty_group: str
    on_duty: bool  # at the time the step is started


@dataclass(frozen=True, slots=True)
class Endpoint:
    id: int
    name: str
    kind: str  # webhook | gbt26875
    address: str


@dataclass(frozen=True, slots=True)
class Delivery:
    target: str  # console | person:<id> | endpoint:<id>
    target_name: str
    channel: str
    address: str


@dataclass(frozen=True, slots=True)
class Resolved:
    deliveries: list[Delivery] = field(default_factory=list)
    unresolved: list[str] = field(default_factory=list)  # why a target reached nobody


def deliveries(  # noqa: PLR0912 - one branch per target kind
    step: Step, people: Mapping[int, Person], endpoints: Mapping[int, Endpoint]
) -> Resolved:
    """What one step sends: every (target, channel) pair that fits, each once. A person target uses
    the step's person channels; an on-duty target every person of the group on duty now; an endpoint
    its own kind (if the step lists it). Targets that reach nobody are reported, never dropped."""
    out: list[Delivery] = []
    why: list[str] = []
    seen: set[tuple[str, str]] = set()

    def add(d: Delivery) -> None:
        if (d.target, d.channel) not in seen:
            seen.add((d.target, d.channel))
            out.append(d)

    person_channels = [c for c in step.channels if c in PERSON_CHANNELS]
    for t in step.targets:
        if t.kind == "console":
            add(Delivery("console", "值班室", "console", ""))
        elif t.kind == "person":
            person = people.get(t.ref or 0)
            if person is None:
                why.append(f"person {t.ref} not found or disabled")
                continue
            for c in person_channels:
                add(Delivery(f"person:{person.id}", person.name, c, person.phone))
        elif t.kind == "on_duty":
            group = sorted(
                (p for p in people.values() if p.duty_group == t.group and p.on_duty), key=lambda p: p.id
            )
            if not group:
                why.append(f"nobody on duty in group {t.group}")
            for person in group:
                for c in person_channels:
                    add(Delivery(f"person:{person.id}", person.name, c, person.phone))
        else:
            endpoint = endpoints.get(t.ref or 0)
            if endpoint is None:
                why.append(f"endpoint {t.ref} not found or disabled")
            elif endpoint.kind not in step.channels:
                why.append(f"endpoint {t.ref} is {endpoint.kind}, not a channel of this step")
            else:
                add(Delivery(f"endpoint:{endpoint.id}", endpoint.name, endpoint.kind, endpoint.address))
    return Resolved(out, why)


def idempotency_key(incident_id: int, loop: int, step: int, target: str, channel: str) -> str:
    """incident:loop:step:target:channel — unique in the outbox and sent to the provider."""
    return f"{incident_id}:{loop}:{step}:{target}:{channel}"


# ---------------------------------------------------------------------------------------------
# Retries and rate limits


def backoff_s(attempt: int, schedule: Sequence[float]) -> float | None:
    """Delay before retry number `attempt` (1-based), or None when the retries are used up."""
    return float(schedule[attempt - 1]) if 1 <= attempt <= len(schedule) else None


def rate_limited_until(
    recent: Sequence[float], now: float, limits: Sequence[tuple[float, int]]
) -> float | None:
    """`recent`: start times of attempts to one number; `limits`: (window_s, max). None if another
    attempt may start now, else the earliest time it may."""
    until: float | None = None
    for window_s, most in limits:
        inside = sorted(t for t in recent if now - t < window_s)
        if len(inside) >= most:
            free_at = inside[len(inside) - most] + window_s
            until = free_at if until is None else max(until, free_at)
    return until


# ---------------------------------------------------------------------------------------------
# Where, for a person: the console's place line (api/static/board.js `place`), in Chinese

_KIND_ZH = {
    "lobby": "大堂",
    "stairwell": "楼梯间",
    "basement": "地下室",
    "plant_room": "设备房",
    "parking": "车库",
}


@dataclass(frozen=True)
class Place:
    building: str | None
    location: str | None  # the location's name
    kind: str | None  # the location's kind (lobby, floor, shed, …)
    unit: str | None
    floor: int | None
    room: str | None
    post: str | None  # a charging post's number in its shed
    port: int | None  # the charger port the alarm is about
    charger: bool


def place_zh(p: Place) -> str:
    """Where the alarm is, as the guard and the 119 operator need it: "1号楼 2单元 15层 1502室", or
    "1号楼 东车棚 3号桩 2号端口" for a charging post — the duty-room card's words (issue 13 §1), so
    the call and the console name the same place. "" when the registry says nothing of it."""
    port = f"{p.port}号端口" if p.port is not None and p.port > 0 else None
    if p.post is not None or (p.kind == "shed" and p.charger):
        parts = [p.building, p.location, f"{p.post}号桩" if p.post is not None else None, port]
    elif p.building and (p.unit is not None or p.floor is not None or p.room is not None):
        floor = None if p.floor is None else f"地下{-p.floor}层" if p.floor < 0 else f"{p.floor}层"
        parts = [
            p.building,
            f"{p.unit}单元" if p.unit is not None else None,
            floor or _KIND_ZH.get(p.kind or ""),
            f"{p.room}室" if p.room is not None else None,
        ]
    else:
        name = p.location
        if p.building and name and name.startswith(p.building):  # "1号楼3层" under "1号楼"
            name = name[len(p.building) :].strip() or None
        parts = [p.building, name, port]
    return " ".join(x for x in parts if x)
