"""The simulator: compound generator, deterministic normal behaviour, the MQTT publishers against the
real broker (retained status, Last Will, load mode), and `yiju simulate` end to end."""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from harness import ServiceSet
from paho.mqtt.enums import CallbackAPIVersion

from alerts.config import AlertSettings
from alerts.core import engine
from alerts.core.model import DeviceContext, DeviceState, RaiseAlarm
from devices import catalog
from devices.contract import Channel, Decoded, DeviceRef, Family
from devices.envelope import StatusMessage
from simulators import behaviour
from simulators.compound import SIZES, Size, generate_compound, generate_fleet
from simulators.emitter import CST
from simulators.mqtt_publisher import DevicePublisher, LoadPublisher, drain_count, publish_all
from simulators.stream import SimMessage, digest
from storage import registry
from storage.db import connection
from yiju.cli import main
from yiju.errors import BrokerUnavailable

START = datetime(2026, 6, 1, 17, 0, tzinfo=CST)


def _stream(seed: int, hours: float = 2.0) -> list[SimMessage]:
    fleet = generate_fleet(Size.SMALL, 2, seed)
    return list(behaviour.fleet_background(fleet, START, START + timedelta(hours=hours)))


# ---------------------------------------------------------------------------------------------
# Generator and behaviour (pure)


def test_sizes_follow_the_domain_proportions() -> None:
    small = generate_compound("c1", Size.SMALL, 1)
    assert 400 <= len(small.devices) <= 700
    typical = generate_compound("c1", Size.TYPICAL, 1).counts()
    # domain.md §2: ~7,000 devices; ~60 elevators; ~30 posts; ~3,000 smoke and gas; ~400 lamps;
    # ~120 doors; ~300 channels on ~15 recorders
    assert 5_500 <= sum(typical.values()) <= 8_000
    assert 50 <= typical["elevator"] <= 75
    assert 25 <= typical["ebike_charger"] <= 40
    assert 2_500 <= typical["smoke_alarm"] <= 3_300 and 2_500 <= typical["gas_alarm"] <= 3_300
    assert 300 <= typical["light"] <= 500 and 90 <= typical["access_door"] <= 150
    assert typical["cctv_recorder"] == SIZES[Size.TYPICAL].recorders
    assert sum(generate_compound("c1", Size.LARGE, 1).counts().values()) > 15_000


def test_compound_is_consistent_and_deterministic() -> None:
    a, b = generate_compound("c1", Size.SMALL, 5), generate_compound("c1", Size.SMALL, 5)
    assert a == b
    assert a != generate_compound("c1", Size.SMALL, 6)
    uids = [d.uid for d in a.devices]
    assert len(set(uids)) == len(uids)
    codes = {loc.code for loc in a.locations}
    assert all(d.location in codes for d in a.devices)
    assert all(p.ports in (10, 12) for p in a.of(Family.EBIKE_CHARGER))
    assert any(e.retrofit for e in a.of(Family.ELEVATOR))
    doors = a.of(Family.ACCESS_DOOR)
    assert {a.location(d.location).evacuation_route for d in doors} == {True, False}
    fleet = generate_fleet(Size.SMALL, 3, 5)
    all_uids = [d.uid for d in fleet.devices]
    assert len(set(all_uids)) == len(all_uids) == sum(len(c.devices) for c in fleet.compounds)


def test_same_seed_same_message_stream() -> None:
    first = _stream(11)
    assert digest(first) == digest(_stream(11))
    assert digest(first) != digest(_stream(12))
    assert (
        hashlib.sha256(b"".join(m.payload for m in first)).hexdigest()
        == hashlib.sha256(b"".join(m.payload for m in _stream(11))).hexdigest()
    )


def test_stream_is_valid_ordered_and_sequenced() -> None:
    msgs = _stream(3)
    fleet = generate_fleet(Size.SMALL, 2, 3)
    family = {d.uid: d.family for d in fleet.devices}
    assert [m.at for m in msgs] == sorted(m.at for m in msgs)
    last: dict[str, int] = {}
    first_channel: dict[str, Channel] = {}
    for m in msgs:
        body: Any = catalog.decode(family[m.device], m.channel, m.payload)
        assert body.ts == m.at and body.device == m.device and body.family is family[m.device]
        first_channel.setdefault(m.device, m.channel)
        # seq: strictly increasing; the Last Will took the number before the online status
        assert body.seq > last.get(m.device, 0)
        last[m.device] = body.seq
        if m.will is not None:
            will = StatusMessage.model_validate_json(m.will)
            assert will.state == "offline" and will.seq == body.seq - 1 and m.retain
    assert set(first_channel.values()) == {Channel.STATUS}
    channels = Counter(m.channel for m in msgs)
    assert channels[Channel.TELEMETRY] > channels[Channel.EVENT] > 0


def test_normal_traffic_raises_no_alarm_in_the_rule_core() -> None:
    """Healthy means healthy: four evening hours of a small compound through the engine."""
    compound = generate_compound("c1", Size.SMALL, 9)
    ctxs = {
        d.uid: DeviceContext(i + 1, d.uid, 1, d.family, building_id=1, evacuation_route=False)
        for i, d in enumerate(compound.devices)
    }
    states: dict[str, DeviceState] = defaultdict(DeviceState)
    th = AlertSettings(clock="event")
    raised = []
    for m in behaviour.background(compound.devices, START, START + timedelta(hours=4), seed=9):
        ctx = ctxs[m.device]
        body: Any = catalog.decode(ctx.family, m.channel, m.payload)
        ref = DeviceRef(ctx.device_id, ctx.uid, "c1", 1, ctx.family)
        out = engine.evaluate(
            ctx, states[m.device], Decoded(ref, m.channel, body.ts, body.seq, m.at, body, b""), th
        )
        raised += [(m.device, o.type) for o in out if isinstance(o, RaiseAlarm)]
    assert raised == []


# ---------------------------------------------------------------------------------------------
# Publishers against the real broker


class Recorder:
    """A paho subscriber that keeps every message (topic, payload, retain flag)."""

    def __init__(self, url: str, topic_filter: str) -> None:
        host, port = url.removeprefix("mqtt://").split(":")
        self.messages: list[tuple[str, bytes, bool]] = []
        self.lock = threading.RLock()
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        self.subscribed = threading.Event()
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self.subscribed.set()
        self.client.connect(host, int(port))
        self.client.subscribe(topic_filter, qos=1)
        self.client.loop_start()

    def _on_message(self, c: mqtt.Client, u: Any, m: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append((m.topic, m.payload, bool(m.retain)))

    def wait_for(self, pred: Any, timeout_s: float = 15.0) -> list[tuple[str, bytes, bool]]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.lock:
                found = [x for x in self.messages if pred(x)]
            if found:
                return found
            time.sleep(0.02)
        raise AssertionError("no matching message within the deadline")

    def count(self) -> int:
        with self.lock:
            return len(self.messages)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def recorder(services: ServiceSet, topic_prefix: str) -> Iterator[Recorder]:
    r = Recorder(services.mqtt_url, f"{topic_prefix}/#")
    assert r.subscribed.wait(10), "no SUBACK"
    yield r
    r.close()


def _few(seed: int = 4, n: int = 12) -> tuple[list[str], list[SimMessage]]:
    compound = generate_compound("t1", Size.SMALL, seed)
    devices = [d for d in compound.devices if d.family is Family.ACCESS_DOOR][:n]
    msgs = list(behaviour.background(devices, START, START + timedelta(minutes=10), seed=seed))
    return [d.uid for d in devices], msgs


def test_device_sessions_publish_retained_status_and_their_last_will(
    services: ServiceSet, topic_prefix: str, recorder: Recorder
) -> None:
    uids, msgs = _few()
    pub = DevicePublisher(services.mqtt_url, topic_prefix, client_id_prefix=f"{topic_prefix}-")
    try:
        publish_all(pub, msgs)
        deadline = time.monotonic() + 15
        while pub.stats.acked < len(msgs) and time.monotonic() < deadline:
            pub.pump(0.05)
        assert pub.stats.acked == pub.stats.published == len(msgs)
        assert pub.stats.connections == len(uids)
        recorder.wait_for(lambda x: recorder.count() >= len(msgs))
        victim = uids[0]
        pub.drop(victim)  # power cut: no DISCONNECT, so the broker publishes the will
        status_topic = f"{topic_prefix}/v1/t1/{victim}/status"
        wills = recorder.wait_for(lambda x: x[0] == status_topic and b'"offline"' in x[1])
        assert StatusMessage.model_validate_json(wills[0][1]).reason == "last_will"
    finally:
        pub.close()
    # a late subscriber sees the retained presence of every device: offline for the victim
    late = Recorder(services.mqtt_url, f"{topic_prefix}/v1/t1/+/status")
    try:
        retained = late.wait_for(lambda x: x[2] and x[0].endswith(f"/{victim}/status"))
        assert b'"offline"' in retained[-1][1]
        others = late.wait_for(lambda x: x[2] and x[0].endswith(f"/{uids[1]}/status"))
        assert b'"online"' in others[-1][1]
    finally:
        late.close()


def test_load_publisher_gets_every_message_acknowledged_and_delivered(
    services: ServiceSet, topic_prefix: str
) -> None:
    _, msgs = _few(n=40)
    msgs = msgs * 20  # a few thousand messages
    ready = threading.Event()
    result: list[tuple[int, float]] = []
    drain = threading.Thread(
        target=lambda: result.append(
            drain_count(services.mqtt_url, f"{topic_prefix}/#", len(msgs), timeout_s=60, ready=ready)
        )
    )
    drain.start()
    assert ready.wait(10)
    with LoadPublisher(services.mqtt_url, topic_prefix, connections=3, client_id_prefix=topic_prefix) as pub:
        publish_all(pub, msgs)
        deadline = time.monotonic() + 30
        while pub.stats.in_flight and time.monotonic() < deadline:
            pub.pump(0.05)
        assert pub.stats.acked == pub.stats.published == len(msgs)
        assert pub.stats.failed == 0
    drain.join(60)
    assert result and result[0][0] == len(msgs)


def test_publishers_report_an_unreachable_broker_as_our_error() -> None:
    with pytest.raises(BrokerUnavailable):
        LoadPublisher("mqtt://127.0.0.1:1", "p", connections=1)
    pub = DevicePublisher("mqtt://127.0.0.1:1", "p")
    _, msgs = _few(n=1)
    with pytest.raises(BrokerUnavailable), contextlib.closing(pub):
        pub.publish(msgs[0])


def test_bad_topics_go_out_as_they_are(services: ServiceSet, topic_prefix: str, recorder: Recorder) -> None:
    msg = SimMessage(START, "t1", "x", Channel.TELEMETRY, b"{not json", raw_topic="v1/t1/x/telemetry/extra")
    with LoadPublisher(services.mqtt_url, topic_prefix, connections=1, client_id_prefix=topic_prefix) as pub:
        pub.publish(msg)
    got = recorder.wait_for(lambda x: x[0] == f"{topic_prefix}/v1/t1/x/telemetry/extra")
    assert got[0][1] == b"{not json"


# ---------------------------------------------------------------------------------------------
# The command


def test_yiju_simulate_registers_and_plays_a_compound(
    services: ServiceSet, db_url: str, topic_prefix: str, recorder: Recorder, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.setenv("YIJU_DATABASE__URL", db_url)
    monkeypatch.setenv("YIJU_MQTT__URL", services.mqtt_url)
    monkeypatch.setenv("YIJU_MQTT__TOPIC_PREFIX", topic_prefix)
    truth = tmp_path / "truth.json"
    n = generate_fleet(Size.SMALL, 1, 0, prefix="cli").device_count()
    argv = [
        "simulate", "--register", "--prefix", "cli", "--duration", "300", "--speed", "0",
        "--connections", "2", "--scenario", "door_duress", "--ground-truth", str(truth),
    ]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"registered {n} devices in 1 communities ({n} new, 0 updated)" in out
    assert "acknowledged" in out and "failed 0" in out and "scenario door_duress" in out
    with connection(db_url) as conn:
        assert len(registry.list_devices(conn)) == n
        assert registry.get_community(conn, "cli001") is not None
    recorder.wait_for(lambda x: x[0].endswith("/event") and b'"duress"' in x[1])
    assert '"door_duress"' in truth.read_text()
    # again: an upsert, nothing new
    assert (
        main(
            [
                "simulate",
                "--register",
                "--prefix",
                "cli",
                "--duration",
                "1",
                "--speed",
                "0",
                "--connections",
                "1",
            ]
        )
        == 0
    )
    assert f"(0 new, {n} updated)" in capsys.readouterr().out
