"""Every scenario's ground truth is well-formed and matches what it injects.

Two levels: structural checks (devices, windows, sequence numbers, payloads), and a replay of each
scenario through the pure rule core (`alerts.core.engine`, device time, event clock, fire linkage
fanned out by building) whose alarms and findings must be exactly the expected ones.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import datetime

import pytest
from pydantic import ValidationError

from alerts.config import AlertSettings, DeviceParams
from alerts.core import engine
from alerts.core.implausible import out_of_range
from alerts.core.model import ClearAlarm, DeviceContext, DeviceState, Linkage, RaiseAlarm
from devices import catalog
from devices.alarms import ALARM_INFO, Finding
from devices.contract import Channel, DeadLetterReason, Decoded, DeviceRef, TopicError, parse_topic, topic
from ingest.config import IngestSettings
from simulators.compound import Compound, Size, generate_compound
from simulators.emitter import CST
from simulators.scenarios import FAULT_ALARM_DEADLINE_S, SCENARIOS, Picker, Scenario, build
from simulators.stream import SimMessage
from storage.alarms import SOURCES

START = datetime(2026, 6, 1, 20, 0, tzinfo=CST)  # evening: lamps are due on
PREFIX = "yiju"


@pytest.fixture(scope="module")
def compound() -> Compound:
    return generate_compound("sim001", Size.SMALL, seed=3)


@pytest.fixture(scope="module")
def scenarios(compound: Compound) -> dict[str, Scenario]:
    return {s.name: s for s in build(SCENARIOS, compound, START)}


def test_all_scenarios_fit_one_small_compound_on_separate_devices(scenarios: dict[str, Scenario]) -> None:
    assert set(scenarios) == set(SCENARIOS)
    owners: dict[str, str] = {}
    for s in scenarios.values():
        for uid in s.devices:
            assert uid not in owners, f"{uid} used by {owners.get(uid)} and {s.name}"
            owners[uid] = s.name


def test_scenarios_are_deterministic(compound: Compound, scenarios: dict[str, Scenario]) -> None:
    again = {s.name: s for s in build(SCENARIOS, compound, START)}
    for name, s in scenarios.items():
        assert again[name].messages == s.messages
        assert again[name].expected_alarms == s.expected_alarms
        assert again[name].expected_findings == s.expected_findings


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_ground_truth_is_well_formed(name: str, compound: Compound, scenarios: dict[str, Scenario]) -> None:
    s = scenarios[name]
    assert s.description and s.messages and s.start <= s.end
    talking = {m.device for m in s.messages}
    assert talking <= set(s.devices) | {m.device for m in s.messages if m.raw_topic}
    for a in s.expected_alarms:
        assert a.device_uid in s.devices and a.device_uid in talking
        assert a.severity is ALARM_INFO[a.type].severity
        assert s.start <= a.earliest <= a.latest <= s.end, a
    for f in s.expected_findings:
        assert f.device_uid in s.devices and f.device_uid in talking
        assert f.kind
        assert s.start <= f.earliest <= f.latest <= s.end, f
    for d in s.expected_dead_letters:
        assert DeadLetterReason(d.reason)
        assert d.topic in {m.raw_topic for m in s.messages}
    # per device: seq increasing in device time (a counter may restart: a lower seq, a later ts), every
    # valid payload decodes; devices registered during the scenario talk only from their registration
    late = {r.device.uid: r for r in s.registrations}
    last: dict[str, tuple[datetime, int]] = {}
    for m in s.messages:
        if m.raw_topic is not None:
            continue
        device = late[m.device].device if m.device in late else compound.device(m.device)
        if m.device in late:
            assert m.at >= late[m.device].at
        body = catalog.accept(device.family, m.channel, m.payload)  # what ingest accepts
        ts, seq = body.ts, body.seq  # type: ignore[attr-defined]
        assert ts <= m.at
        if m.device in last and not (s.expected_rows and ts < m.at):  # flushed buffers come unordered
            prev_ts, prev_seq = last[m.device]
            assert ts >= prev_ts and (seq > prev_seq or ts > prev_ts), (m.device, seq, prev_seq)
        last[m.device] = (ts, seq)
    assert [m.at for m in s.messages] == sorted(m.at for m in s.messages)


def test_bad_inputs_are_refused_for_the_labelled_reason(
    compound: Compound, scenarios: dict[str, Scenario]
) -> None:
    s = scenarios["bad_input"]
    assert {d.reason for d in s.expected_dead_letters} >= {
        "malformed_json", "schema_violation", "unknown_device", "topic_mismatch", "family_mismatch",
        "timestamp_out_of_window", "oversize", "bad_topic", "unsupported_version",
    }  # fmt: skip
    by_topic = defaultdict(list)
    for d in s.expected_dead_letters:
        by_topic[d.topic].append(d.reason)
    for m, d in zip(s.messages, s.expected_dead_letters, strict=True):
        topic = f"{PREFIX}/{m.raw_topic}"
        assert d.topic == m.raw_topic
        if d.reason == "oversize":
            assert len(m.payload) > 64 * 1024
            continue
        if d.reason in ("bad_topic", "unsupported_version"):
            with pytest.raises(TopicError) as info:
                parse_topic(topic, PREFIX)
            assert info.value.reason == d.reason
            continue
        t = parse_topic(topic, PREFIX)
        if d.reason == "unknown_device":
            with pytest.raises(KeyError):
                compound.device(t.device)
            continue
        family = compound.device(t.device).family
        if d.reason in ("malformed_json", "schema_violation"):
            with pytest.raises(ValidationError):
                catalog.decode(family, t.channel, m.payload)
            continue
        body = catalog.decode(family, t.channel, m.payload)
        if d.reason == "topic_mismatch":
            assert body.device != t.device or t.community != compound.community.code  # type: ignore[attr-defined]
        elif d.reason == "family_mismatch":
            assert body.family is not family  # type: ignore[attr-defined]
        else:
            assert d.reason == "timestamp_out_of_window"
            assert abs((body.ts - m.at).total_seconds()) > 3 * 86_400  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------------------------
# Replay through the pure rule core


@dataclass
class Produced:
    alarms: list[tuple[str, str, datetime]]  # (uid, type, first_at)
    findings: list[tuple[str, Finding]]


def _contexts(compound: Compound) -> dict[str, DeviceContext]:
    """The contexts the engine service builds from the registered compound (rule_state.load_contexts
    + AlertService._add_context): the community's location, the building's floors, device metadata."""
    buildings = {b.code: i + 1 for i, b in enumerate(compound.buildings)}
    floors = {b.code: b.floors for b in compound.buildings}
    lat, lon = compound.community.site or (None, None)
    out = {}
    for i, d in enumerate(compound.devices):
        loc = compound.location(d.location)
        params, problems = DeviceParams.from_metadata(d.metadata())
        assert problems == []
        out[d.uid] = DeviceContext(
            device_id=i + 1,
            uid=d.uid,
            community_id=1,
            family=d.family,
            building_id=buildings.get(loc.building) if loc.building else None,
            location_id=None,
            evacuation_route=loc.evacuation_route,
            latitude=lat,
            longitude=lon,
            floors=params.floors or (floors[loc.building] if loc.building else None),
            rated_speed_mps=params.rated_speed_mps,
            held_open_s=params.held_open_s,
        )
    return out


WINDOW = IngestSettings()  # ingest's timestamp window, relative to the receive time (m.at here)


def _as_ingest_stamps(channel: Channel, ts: datetime, received: datetime) -> datetime:
    """Ingest keeps an event, status or ack whose time lies outside its window at the receive time
    (its telemetry is refused: a bad-input message, raw_topic, see `_refused_for_its_time`)."""
    return received if _outside(ts, received) and channel is not Channel.TELEMETRY else ts


def _outside(ts: datetime, received: datetime) -> bool:
    return ts < received - WINDOW.max_past or ts > received + WINDOW.max_future


def _refused_for_its_time(ctx: DeviceContext, m: SimMessage) -> datetime | None:
    """The device's time of telemetry ingest refuses for its timestamp alone (in ingest's order of
    checks: schema, envelope device and family, then the window), else None."""
    if m.channel is not Channel.TELEMETRY:
        return None
    try:
        body = catalog.decode(ctx.family, m.channel, m.payload)
    except (ValidationError, ValueError):
        return None
    ts: datetime = body.ts  # type: ignore[attr-defined]
    if body.device != m.device or body.family is not ctx.family:  # type: ignore[attr-defined]
        return None
    return ts if _outside(ts, m.at) else None


def replay(s: Scenario, compound: Compound, th: AlertSettings) -> Produced:
    ctxs = _contexts(compound)
    for i, r in enumerate(s.registrations):  # registered during the scenario
        loc = compound.location(r.device.location)
        ctxs[r.device.uid] = DeviceContext(
            device_id=100_000 + i,
            uid=r.device.uid,
            community_id=1,
            family=r.device.family,
            building_id=None,
            location_id=None,
            evacuation_route=loc.evacuation_route,
        )
    states: dict[str, DeviceState] = defaultdict(DeviceState)
    open_: set[tuple[str, str]] = set()
    produced = Produced([], [])

    def collect(uid: str, outputs: list[object]) -> None:
        for o in outputs:
            if isinstance(o, RaiseAlarm):
                assert o.source in SOURCES, o  # storage refuses any other (and the CHECK would)
            if isinstance(o, RaiseAlarm) and (uid, o.type) not in open_:
                open_.add((uid, o.type))
                produced.alarms.append((uid, o.type, o.at))
            elif isinstance(o, ClearAlarm):
                open_.discard((uid, o.type))
            elif isinstance(o, Finding):
                # a revision (a late cut after its not_cut) replaces the row, as storage does
                for i, (u, f) in enumerate(produced.findings):
                    if u == uid and f.dedup_key == o.dedup_key:
                        produced.findings[i] = (uid, replace(o, observed_at=f.observed_at))
                        break
                else:
                    produced.findings.append((uid, o))
            elif isinstance(o, Linkage) and o.building_id is not None:
                building = [(c, states[u]) for u, c in ctxs.items() if c.building_id == o.building_id]
                for ctx, outputs in engine.fire_linkage(o, building, th):
                    collect(ctx.uid, outputs)

    watermark = 0.0
    for m in s.messages:
        if m.raw_topic is not None:  # refused at the edge (bad-input set); out-of-range → the engine
            if (
                f"{PREFIX}/{m.raw_topic}" == topic(PREFIX, m.community, m.device, m.channel)
                and m.device in ctxs
            ):
                ctx = ctxs[m.device]
                found = out_of_range(ctx.family, m.channel, m.payload)
                if found is not None and found.ts is not None:
                    collect(
                        m.device,
                        engine.reject(
                            ctx,
                            states[m.device],
                            found.ts.timestamp(),
                            th,
                            seq=found.seq,
                            detail=found.detail,
                        ),
                    )
                refused = _refused_for_its_time(ctx, m)
                if refused is not None:  # ingest hands it to the engine: a wrong clock
                    collect(
                        m.device, engine.refuse_clock(ctx, states[m.device], refused, m.at.timestamp(), th)
                    )
            continue
        ctx = ctxs[m.device]
        body = catalog.accept(ctx.family, m.channel, m.payload)  # as ingest accepts it
        ref = DeviceRef(ctx.device_id, ctx.uid, compound.community.code, 1, ctx.family)
        ts = _as_ingest_stamps(m.channel, body.ts, m.at)  # type: ignore[attr-defined]
        decoded = Decoded(ref, m.channel, ts, body.seq, m.at, body, m.payload)  # type: ignore[attr-defined]
        collect(m.device, engine.evaluate(ctx, states[m.device], decoded, th))
        if ts == body.ts:  # type: ignore[attr-defined]
            watermark = max(watermark, ts.timestamp())  # a receive time is not device time
        for uid in s.devices:  # the event clock ticks every device the scenario speaks for
            if uid in states:
                collect(uid, engine.tick(ctxs[uid], states[uid], watermark, th))
    return produced


def test_scenario_thresholds_agree_with_the_engine_settings() -> None:
    assert AlertSettings().fault_alarm_deadline_s == FAULT_ALARM_DEADLINE_S


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_engine_produces_exactly_the_ground_truth(
    name: str, compound: Compound, scenarios: dict[str, Scenario]
) -> None:
    s = scenarios[name]
    th = AlertSettings(clock="event")
    got = replay(s, compound, th)
    alarms = list(got.alarms)
    for exp in s.expected_alarms:
        hits = [a for a in alarms if a[0] == exp.device_uid and a[1] == exp.type]
        assert len(hits) == 1, f"{name}: expected one {exp.type} on {exp.device_uid}, got {hits}"
        assert exp.earliest <= hits[0][2] <= exp.latest, f"{name}: {exp} raised at {hits[0][2]}"
        alarms.remove(hits[0])
    assert alarms == [], f"{name}: unexpected alarms {alarms}"
    findings = list(got.findings)
    for f in s.expected_findings:
        hits = [
            x
            for x in findings
            if x[0] == f.device_uid
            and x[1].check is f.check
            and x[1].kind == f.kind
            and x[1].compliant == f.compliant
            and x[1].channel == f.channel
        ]
        assert len(hits) == 1, f"{name}: expected one {f}, got {hits}"
        got_f = hits[0][1]
        assert f.earliest <= got_f.observed_at <= f.latest, f"{name}: {f} observed {got_f}"
        if f.outcome is not None:
            assert got_f.details.get("outcome") == f.outcome, f"{name}: {got_f}"
        if f.measured_s is not None:
            assert got_f.measured_s is not None and abs(got_f.measured_s - f.measured_s) < 0.01, got_f
        findings.remove(hits[0])
    assert findings == [], f"{name}: unexpected findings {findings}"


def test_scenarios_can_share_a_compound_with_a_picker(compound: Compound) -> None:
    picker = Picker(compound)
    first = build(["charger_overload"], compound, START, picker=picker)[0]
    second = build(["charger_overload"], compound, START, picker=picker)[0]
    assert set(first.devices).isdisjoint(second.devices)
    assert all(m.channel in Channel for m in first.messages)
