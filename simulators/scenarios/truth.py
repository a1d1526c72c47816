"""Scenarios with ground truth: each injects one situation into a compound's message stream and says
exactly which alarms and compliance findings a correct engine must produce from it — and nothing else.

Ground-truth format (the contract with the engine's end-to-end tests):

    Scenario(name, description, community, start, end, devices, messages,
             expected_alarms, expected_findings, expected_dead_letters, expected_rows, registrations)

    ExpectedAlarm(type, device_uid, severity, earliest, latest, received=False)
        an alarm of `type` on the device whose first occurrence (alarms.first_at) lies in
        [earliest, latest] (device time; the engine stamps alarms with device time). `received`:
        the device's clock lay outside ingest's timestamp window, so the alarm carries the receive
        time — here the simulated instant the message goes on the wire (`SimMessage.at`); a run that
        publishes a simulated stream in real time stamps it with the wall clock instead.
    ExpectedFinding(check, kind, device_uid, compliant, earliest, latest, channel=0,
                    outcome=None, measured_s=None)
        a compliance finding whose observed_at lies in [earliest, latest]; `channel` is the port
        (chargers) or camera channel (recorders), 0 for the device itself; when given, its
        details.outcome (auto-cutoff: in_time / not_cut / late) and its measured_s (± 0.01 s) as
        stored — a late cut revises the not_cut finding of its obligation in place.
    ExpectedDeadLetter(reason, topic, device_uid)
        one dead letter with that reason for the message published on `topic` (relative to the prefix).
    expected_rows: {"telemetry": n, "device_events": m} for the scenario's devices, when the
        scenario is about exact storage (duplicates must not create rows), else None.
    Registration(at, device)
        a device that is not in the compound's registry until `at`: whoever plays the scenario
        registers it then (as POST /devices or a CSV import would), before publishing any message at
        or after `at` — and its first messages follow at once.

Matching rules: every expected item matches exactly one produced item (same type/check, kind, device,
channel, compliant) inside its window; every alarm and finding the engine produces for
`Scenario.devices` between `start` and `end` must be expected. Escalations and commands are not part
of the ground truth. What an engine would do after `end` (e.g. `device_offline` because the stream
stops) is out of scope: evaluate with the engine clock at `end`. Each scenario speaks only for its
own devices (`devices`); run alongside the normal background, the other devices raise nothing.

Times: messages are stamped in simulated time from `start`; the engine must judge durations and
deadlines by device time (AlertSettings.clock = "event" for accelerated runs). Every scenario ends
with reports after its last deadline, so an engine that evaluates deadlines when a device's next
message arrives reaches the same verdicts as one with a timer. Thresholds come from the family
`DEFAULTS` (devices/families/*.py), which the engine's settings extend, so both sides agree.

Linkage scope (fire): a fire alarm in a building must release the access doors on the evacuation
routes of that building (its unit doors), recall its elevators and force its common lighting on
(GB 50396-2007 §9.0.1(2), GB 50116-2013, GB 50034-2013 §7.3.4); gas high alarm → that detector's valve.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from devices.alarms import AlarmType, Check, Severity
from simulators.compound import SimDevice
from simulators.stream import SimMessage


@dataclass(frozen=True, slots=True)
class ExpectedAlarm:
    type: AlarmType
    device_uid: str
    severity: Severity
    earliest: datetime
    latest: datetime
    received: bool = False


@dataclass(frozen=True, slots=True)
class ExpectedFinding:
    check: Check
    kind: str
    device_uid: str
    compliant: bool
    earliest: datetime
    latest: datetime
    channel: int = 0
    outcome: str | None = None
    measured_s: float | None = None


@dataclass(frozen=True, slots=True)
class ExpectedDeadLetter:
    reason: str  # devices.contract.DeadLetterReason value
    topic: str  # relative to the topic prefix
    device_uid: str | None


@dataclass(frozen=True, slots=True)
class Registration:
    at: datetime
    device: SimDevice


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    description: str
    community: str
    start: datetime
    end: datetime
    devices: tuple[str, ...]
    messages: tuple[SimMessage, ...]
    expected_alarms: tuple[ExpectedAlarm, ...] = ()
    expected_findings: tuple[ExpectedFinding, ...] = ()
    expected_dead_letters: tuple[ExpectedDeadLetter, ...] = ()
    expected_rows: dict[str, int] | None = field(default=None, hash=False, compare=False)
    registrations: tuple[Registration, ...] = ()
