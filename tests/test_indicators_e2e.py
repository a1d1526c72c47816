"""Golden scoring cases built with the simulator and played through the whole pipeline (broker → ingest →
alert engine → database → report), compared to expectations computed by hand from the seed's rules:

- a charging post whose fault is silent (telemetry shows a blown fuse, the post never raises a fault)
  beside a post that cuts its power in time: item [33] scores 2 + 0 = 2, not 3;
- a recorder three of whose channels lose footage until retention is far under 30 days: item [16]
  scores 2 − 3 × 0.5 = 0.5;
- two smoke alarms report a self-test over MQTT, one passed and one failed, with the system's yearly
  maintenance on record: item [10] scores 2 − 1 × 0.5 = 1.5 (the passed self-test is a test record).

The community holds exactly the scenarios' devices, so nothing else (silent devices) enters the score.
"""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime, timedelta

from harness import ServiceSet
from ingest_support import wait_for

from alerts.indicators.config import IndicatorSettings
from alerts.indicators.service import make_report
from alerts.service import AlertService
from devices.contract import Family
from ingest.service import IngestService
from simulators.compound import Fleet, Size, generate_fleet
from simulators.emitter import CST
from simulators.mqtt_publisher import LoadPublisher
from simulators.scenarios import SCENARIOS, Builder, Picker, Scenario, channel_report, healthy
from simulators.scenarios.recorders import CCTV
from simulators.stream import merge
from storage import maintenance
from storage.db import connect
from storage.maintenance import NewRecord
from yiju.commands.simulate import register_fleet
from yiju.settings import DatabaseSettings, MqttSettings, Settings

FAILING = (1, 2, 3)


def three_channels_short(p: Picker, start: datetime) -> Scenario:
    """Channels 1–3 of one recorder lose 0.5 d of footage per report, from 31 d to 27 d."""
    b = Builder("three_channels_short", p.compound, start, __doc__ or "")
    r = b.script(p.take(Family.CCTV_RECORDER))
    keep = CCTV.retention_days + 1.0
    s = 2.0
    while s <= 2 + 8 * CCTV.heartbeat_s:
        at = b.t(s)
        chans = healthy(r.device, at)["channels"]
        for n in FAILING:
            chans[n - 1] = channel_report(n, at, keep_days=keep)
        r.tele(s, channels=chans)
        keep -= 0.5
        s += CCTV.heartbeat_s
    return b.build()


def self_tests(p: Picker, start: datetime) -> Scenario:
    """Two smoke alarms press their test button: one passes, one fails."""
    b = Builder("self_tests", p.compound, start, __doc__ or "")
    for ok in (True, False):
        b.script(p.take(Family.SMOKE_ALARM)).event(30, type="self_test", ok=ok)
    return b.build()


def _start(now: datetime) -> datetime:
    start = now.astimezone(CST).replace(hour=20, minute=0, second=0, microsecond=0)
    while start + timedelta(hours=2) > now:
        start -= timedelta(days=1)
    return start


def test_simulated_compound_scores_as_computed_by_hand(services: ServiceSet) -> None:
    url = services.create_database(None)
    prefix = f"ind{int(time.time() * 1000) % 10**9}"
    try:
        fleet = generate_fleet(Size.SMALL, 1, seed=11)
        (compound,) = fleet.compounds
        picker = Picker(compound)
        start = _start(datetime.now(UTC))
        scenarios = [
            SCENARIOS["charger_overtemp_cut"](picker, start),
            SCENARIOS["charger_silent_fault"](picker, start),
            three_channels_short(picker, start),
            self_tests(picker, start),
        ]
        mine = {uid for s in scenarios for uid in s.devices}
        only = dataclasses.replace(compound, devices=tuple(d for d in compound.devices if d.uid in mine))
        register_fleet(url, Fleet(fleet.seed, fleet.size, (only,)))
        _play(services, url, prefix, scenarios)

        with connect(url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT id FROM communities WHERE code = %s", (compound.community.code,)
            ).fetchone()
            assert row is not None
            maintenance.add_records(  # the fire system's yearly maintenance, by the maintenance company
                conn,
                int(row[0]),
                [NewRecord("smoke_alarm", "maintenance", start - timedelta(days=20), "消防维保公司", "pass")],
                source="manual",
                recorded_by="test",
            )
            end = datetime.now(UTC)
            report = make_report(conn, int(row[0]), start - timedelta(hours=1), end, now=end)
        items = {(i.scheme, i.number): i for i in report.items}
        silent_uid = scenarios[1].devices[0]
        charging = items[("jiangsu_basic", "33")]
        assert (charging.score, charging.arithmetic) == (2.0, "2 + 0 = 2")
        silent = [e for d in charging.deductions if "静默" in d.zh for e in d.evidence]
        assert [e.device for e in silent] == [silent_uid]
        cctv = items[("jiangsu_basic", "16")]
        assert (cctv.score, cctv.arithmetic) == (0.5, "2 − 3 × 0.5 = 0.5")
        recorder = scenarios[2].devices[0]
        where = sorted(
            {e.zh.split()[0] for d in cctv.deductions for e in d.evidence if e.ref.startswith("finding:")}
        )
        assert where == [f"{recorder}#{n}" for n in FAILING]
        fire = items[("jiangsu_basic", "10")]
        failed_test = scenarios[3].devices[1]
        assert fire.arithmetic == "2 − 1 × 0.5 = 1.5"  # the passed self-test counts as a test record
        assert [e.device for d in fire.deductions for e in d.evidence] == [failed_test]
        # the same data and period give the same report
        with connect(url) as conn:
            again = make_report(conn, int(row[0]), start - timedelta(hours=1), end, now=datetime.now(UTC))
        assert again.fingerprint == report.fingerprint and again.items == report.items
        assert report.settings == IndicatorSettings()
    finally:
        services.drop_database(url)


def _play(services: ServiceSet, url: str, prefix: str, scenarios: list[Scenario]) -> None:
    settings = Settings(
        database=DatabaseSettings(url=url),
        mqtt=MqttSettings(url=services.mqtt_url, topic_prefix=prefix, client_id=f"ingest-{prefix}"),
    )
    messages = list(merge(*(s.messages for s in scenarios)))
    engine = AlertService(url, settings.alerts.model_copy(update={"clock": "event", "tick_s": 0.05}))
    ingest = IngestService(settings, database_url=url, mqtt_url=services.mqtt_url, sink=engine)
    engine.start()
    ingest.start()
    try:
        wait_for(ingest.consumer.subscribed.is_set, 15, "ingest subscription")
        with LoadPublisher(services.mqtt_url, prefix, connections=1) as pub:
            for m in messages:
                pub.publish(m)
            deadline = time.monotonic() + 30
            while pub.stats.acked < len(messages) and time.monotonic() < deadline:
                pub.pump(0.05)
        wait_for(lambda: ingest.stats.acked >= len(messages), 60, "ingest committed and acked everything")
        assert engine.wait_idle(30)
        ticks = engine.stats.ticks
        wait_for(lambda: engine.stats.ticks >= ticks + 2, 10, "a timer tick after the last message")
        assert engine.wait_idle(30)
    finally:
        ingest.stop()
        engine.stop()
