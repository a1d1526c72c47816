"""End to end: every simulator scenario with ground truth (simulators/scenarios/, the bad-input set
included) published to the real broker, through ingest into the engine service and the database; each
scenario's expected alarms and findings must be there in their windows, and nothing else for its
devices (precision and recall 1.0), plus its dead letters and, where stated, its exact row counts.

The ground truth is B's contract (simulators/scenarios/truth.py docstring), compared as written:
- alarms: one row per raise (`alarms.first_at` in the expected window); whatever their status now;
- findings: compliant ones too — the engine records them (a cutoff in time, a linkage done, a
  channel's retention verified on the first report) and the ground truth expects exactly those;
- only what the engine produced for the scenario's devices between its start and its end counts
  (after its end, e.g. `device_offline` because its stream stops, is out of scope);
- escalations and commands are not part of the ground truth.

All scenarios run at once on one small compound, on separate devices, from one start time; the stream
is published in time order over one connection so the event-time clock (`AlertSettings.clock =
"event"`) sees device time advance as in real time: 73 simulated minutes in a few wall seconds.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from harness import ServiceSet
from ingest_support import wait_for

from alerts.service import AlertService
from devices.contract import subscriptions
from ingest.service import IngestService
from simulators.compound import Size, generate_fleet
from simulators.emitter import CST
from simulators.mqtt_publisher import LoadPublisher
from simulators.scenarios import SCENARIOS, Scenario, build
from simulators.stream import merge
from storage.db import connect
from yiju.commands.simulate import register_fleet, with_registrations
from yiju.settings import DatabaseSettings, MqttSettings, Settings

LONGEST_S = 2 * 3600  # every scenario ends well within this (the longest: 73 simulated minutes)


@dataclass
class Outcome:
    scenarios: dict[str, Scenario]
    alarms: list[tuple[str, str, datetime]]  # (uid, type, first_at)
    # (uid, check, kind, compliant, channel, at, details.outcome, measured_s)
    findings: list[tuple[str, str, str, bool, int, datetime, str | None, float | None]]
    dead_letters: list[tuple[str, str, str | None]]  # (reason, topic without prefix, device uid)
    rows: dict[str, Counter[str]]  # table → rows per device uid
    engine_errors: int
    implausible: int
    ran: tuple[datetime, datetime]  # wall clock: the receive times of this run


def _start(now: datetime) -> datetime:
    """The latest 20:00 (China time) whose scenarios all lie in the past: lamps are due on at night."""
    start = now.astimezone(CST).replace(hour=20, minute=0, second=0, microsecond=0)
    while start + timedelta(seconds=LONGEST_S) > now:
        start -= timedelta(days=1)
    return start


@pytest.fixture(scope="module")
def outcome(services: ServiceSet) -> Iterator[Outcome]:
    url = services.create_database(None)
    prefix = f"e2e{int(time.time() * 1000) % 10**9}"
    settings = Settings(
        database=DatabaseSettings(url=url),
        mqtt=MqttSettings(url=services.mqtt_url, topic_prefix=prefix, client_id=f"ingest-{prefix}"),
    )
    try:
        yield _run(settings, url, services.mqtt_url, prefix)
    finally:
        services.drop_database(url)


def _run(settings: Settings, url: str, mqtt_url: str, prefix: str) -> Outcome:
    fleet = generate_fleet(Size.SMALL, 1, seed=3)
    (compound,) = fleet.compounds
    register_fleet(url, fleet)
    start = _start(datetime.now(UTC))
    built = {s.name: s for s in build(SCENARIOS, compound, start)}
    messages = list(merge(*(s.messages for s in built.values())))
    # ingest subscribes to everything under the prefix: every message reaches it
    seen = [m for m in messages if _subscribed(m.topic(prefix), prefix)]
    began = datetime.now(UTC)
    engine = AlertService(url, settings.alerts.model_copy(update={"clock": "event", "tick_s": 0.05}))
    ingest = IngestService(settings, database_url=url, mqtt_url=mqtt_url, sink=engine)
    engine.start()
    ingest.start()
    try:
        wait_for(ingest.consumer.subscribed.is_set, 15, "ingest subscription")
        # one connection: the broker delivers in publish order, so device time only moves forward
        registrations = [r for s in built.values() for r in s.registrations]
        with LoadPublisher(mqtt_url, prefix, connections=1) as pub:
            # devices registered during play (register_then_publish) publish the moment they are
            for m in with_registrations(messages, registrations, url):
                pub.publish(m)
            deadline = time.monotonic() + 30
            while pub.stats.acked < len(messages) and time.monotonic() < deadline:
                pub.pump(0.05)
        try:
            wait_for(lambda: ingest.stats.acked >= len(seen), 60, "ingest committed and acked everything")
        except AssertionError:
            raise AssertionError(
                f"{len(seen)} expected: {pub.stats}, {ingest.stats}, {engine.stats}"
            ) from None
        assert engine.wait_idle(30)
        ticks = engine.stats.ticks
        wait_for(lambda: engine.stats.ticks >= ticks + 2, 10, "a timer tick after the last message")
        assert engine.wait_idle(30)
    finally:
        ingest.stop()
        engine.stop()
    with connect(url) as conn:
        alarms = conn.execute(
            "SELECT d.uid, a.type, a.first_at FROM alarms a JOIN devices d ON d.id = a.device_id"
        ).fetchall()
        found = conn.execute(
            "SELECT d.uid, f.check_name, f.kind, f.compliant, f.channel, f.observed_at, "
            "f.details->>'outcome', f.measured_s "
            "FROM compliance_findings f JOIN devices d ON d.id = f.device_id"
        ).fetchall()
        dead = conn.execute("SELECT reason, topic, device_uid FROM dead_letters").fetchall()
        rows: dict[str, Counter[str]] = {}
        for table in ("telemetry", "device_events"):
            counted = conn.execute(
                f"SELECT d.uid, count(*) FROM {table} t JOIN devices d ON d.id = t.device_id GROUP BY d.uid"
            ).fetchall()
            rows[table] = Counter(dict(counted))
    return Outcome(
        built,
        [(u, t, at) for u, t, at in alarms],
        [tuple(row) for row in found],
        [(r, t.removeprefix(prefix + "/"), d) for r, t, d in dead],
        rows,
        engine.stats.errors,
        engine.stats.implausible,
        (began, datetime.now(UTC)),
    )


def _subscribed(name: str, prefix: str) -> bool:
    """Whether one of ingest's topic filters (MQTT wildcards + and #) matches `name`."""

    def match(f: list[str], t: list[str]) -> bool:
        if not f:
            return not t
        if f[0] == "#":
            return True
        return bool(t) and f[0] in ("+", t[0]) and match(f[1:], t[1:])

    return any(match(f.split("/"), name.split("/")) for f in subscriptions(prefix))


def test_the_pipeline_ran_clean(outcome: Outcome) -> None:
    assert set(outcome.scenarios) == set(SCENARIOS)
    assert outcome.engine_errors == 0
    assert outcome.implausible == 1  # the bad-input set's 150 %LEL reading


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario_ground_truth_end_to_end(name: str, outcome: Outcome) -> None:
    s = outcome.scenarios[name]
    mine = set(s.devices)
    in_scope = s.start, s.end

    # alarms stamped with the receive time (a device clock outside ingest's window) carry this run's
    # wall-clock time, not the simulated one
    received = {(e.device_uid, e.type.value) for e in s.expected_alarms if e.received}
    alarms = [
        a
        for a in outcome.alarms
        if a[0] in mine
        and (
            in_scope[0] <= a[2] <= in_scope[1]
            or ((a[0], a[1]) in received and outcome.ran[0] <= a[2] <= outcome.ran[1])
        )
    ]
    for exp in s.expected_alarms:
        hits = [a for a in alarms if a[0] == exp.device_uid and a[1] == exp.type.value]
        assert len(hits) == 1, f"{name}: expected one {exp.type.value} on {exp.device_uid}, got {hits}"
        earliest, latest = outcome.ran if exp.received else (exp.earliest, exp.latest)
        assert earliest <= hits[0][2] <= latest, f"{name}: {exp} raised at {hits[0][2]}"
        alarms.remove(hits[0])
    assert alarms == [], f"{name}: unexpected alarms {alarms}"

    findings = [f for f in outcome.findings if f[0] in mine and in_scope[0] <= f[5] <= in_scope[1]]
    for ef in s.expected_findings:
        key = (ef.device_uid, ef.check.value, ef.kind, ef.compliant, ef.channel)
        hits = [f for f in findings if f[:5] == key]
        assert len(hits) == 1, f"{name}: expected one {key}, got {hits}"
        assert ef.earliest <= hits[0][5] <= ef.latest, f"{name}: {ef} observed at {hits[0][5]}"
        if ef.outcome is not None:
            assert hits[0][6] == ef.outcome, f"{name}: {ef} stored {hits[0]}"
        if ef.measured_s is not None:
            assert hits[0][7] is not None and abs(hits[0][7] - ef.measured_s) < 0.01, f"{name}: {hits[0]}"
        findings.remove(hits[0])
    assert findings == [], f"{name}: unexpected findings {findings}"

    if s.expected_dead_letters:
        want = Counter(
            (d.reason, d.topic, d.device_uid)
            for d in s.expected_dead_letters
            if _subscribed(f"p/{d.topic}", "p")
        )
        topics = {d.topic for d in s.expected_dead_letters}
        got = Counter(d for d in outcome.dead_letters if d[1] in topics)
        assert got == want
    if s.expected_rows is not None:
        for table, n in s.expected_rows.items():
            assert sum(outcome.rows[table][uid] for uid in s.devices) == n, table


def test_no_dead_letter_outside_the_bad_input_set(outcome: Outcome) -> None:
    expected = {d.topic for s in outcome.scenarios.values() for d in s.expected_dead_letters}
    assert [d for d in outcome.dead_letters if d[1] not in expected] == []
