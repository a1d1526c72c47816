"""Per-device credentials and the ACL, enforced by a real Mosquitto started with the generated files."""

from __future__ import annotations

import csv
import json
import stat
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from devices import credentials
from devices.contract import Channel, Family, subscriptions, topic
from devices.samples import payload
from storage import registry
from storage.db import connection
from yiju.cli import main
from yiju.embedded import LOOPBACK, MosquittoBroker

WAIT_S = 10.0
NOT_AUTHORIZED = 135  # MQTT 5 reason code 0x87
BAD_CREDENTIALS = 134  # 0x86 bad user name or password
PREFIX = "yj"


class Client:
    """A paho MQTT 5 client that records what happens to it, for assertions."""

    def __init__(self, port: int, username: str, password: str) -> None:
        self.c = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"{username}-{uuid.uuid4().hex[:6]}",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        self.c.username_pw_set(username, password)
        self.connack: ReasonCode | None = None
        self.acks: dict[int, int] = {}
        self.subacks: dict[int, list[int]] = {}
        self.received: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()
        self.c.on_connect = self._on_connect
        self.c.on_publish = self._on_publish
        self.c.on_subscribe = self._on_subscribe
        self.c.on_message = self._on_message
        self.c.connect(LOOPBACK, port)
        self.c.loop_start()
        _wait(lambda: self.connack is not None, "CONNACK")

    def _on_connect(self, c: Any, u: Any, flags: Any, rc: ReasonCode, props: Any) -> None:
        self.connack = rc

    def _on_publish(self, c: Any, u: Any, mid: int, rc: ReasonCode, props: Any) -> None:
        with self.lock:
            self.acks[mid] = rc.value

    def _on_subscribe(self, c: Any, u: Any, mid: int, rcs: list[ReasonCode], props: Any) -> None:
        with self.lock:
            self.subacks[mid] = [r.value for r in rcs]

    def _on_message(self, c: Any, u: Any, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.received.append((msg.topic, msg.payload))

    def publish(self, t: str, body: bytes) -> int:
        """QoS 1 publish; returns the PUBACK reason code."""
        info = self.c.publish(t, body, qos=1)
        _wait(lambda: info.mid in self.acks, f"PUBACK for {t}")
        return self.acks[info.mid]

    def subscribe(self, t: str) -> list[int]:
        _, mid = self.c.subscribe(t, qos=1)
        _wait(lambda: mid in self.subacks, f"SUBACK for {t}")
        return self.subacks[mid]

    def got(self, t: str) -> bool:
        with self.lock:
            return any(rt == t for rt, _ in self.received)

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def _wait(cond: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[tuple[MosquittoBroker, dict[str, str]]]:
    passwords = {"dev-a": credentials.new_password(), "dev-b": credentials.new_password()}
    passwords["ingest"] = credentials.new_password()
    devices = [
        credentials.DeviceAccount("dev-a", "c1", credentials.hash_password(passwords["dev-a"])),
        credentials.DeviceAccount("dev-b", "c1", credentials.hash_password(passwords["dev-b"])),
    ]
    services = [
        credentials.ServiceAccount(
            "ingest", credentials.ServiceRole.INGEST, credentials.hash_password(passwords["ingest"])
        )
    ]
    pw, acl = tmp_path / "passwd", tmp_path / "acl"
    pw.write_text(credentials.password_file(devices, services))
    pw.chmod(0o600)
    acl.write_text(credentials.acl_file(PREFIX, devices, services))
    broker = MosquittoBroker(tmp_path / "broker", password_file=pw, acl_file=acl)
    broker.start()
    try:
        yield broker, passwords
    finally:
        broker.stop()


def test_device_may_publish_only_its_own_topics(secured: tuple[MosquittoBroker, dict[str, str]]) -> None:
    broker, pw = secured
    ingest = Client(broker.port, "ingest", pw["ingest"])
    a = Client(broker.port, "dev-a", pw["dev-a"])
    try:
        assert ingest.connack is not None and ingest.connack.value == 0
        assert a.connack is not None and a.connack.value == 0
        assert ingest.subscribe(f"$share/g/{PREFIX}/v1/+/+/telemetry") == [1]
        ingest.subscribe(f"{PREFIX}/v1/+/+/event")

        own = topic(PREFIX, "c1", "dev-a", Channel.TELEMETRY)
        other = topic(PREFIX, "c1", "dev-b", Channel.TELEMETRY)
        other_community = topic(PREFIX, "c2", "dev-a", Channel.TELEMETRY)
        body = payload(Family.SMOKE_ALARM, Channel.TELEMETRY, device="dev-a")
        assert a.publish(other, body) == NOT_AUTHORIZED
        assert a.publish(other_community, body) == NOT_AUTHORIZED
        assert a.publish(own, body) == 0
        _wait(lambda: ingest.got(own), "the device's own message at ingest")
        # refused messages never arrive (the own one, sent after them, already has)
        assert not ingest.got(other) and not ingest.got(other_community)
        # the ingest account reads uplinks but cannot forge them
        assert ingest.publish(topic(PREFIX, "c1", "dev-b", Channel.EVENT), body) == NOT_AUTHORIZED
    finally:
        a.close()
        ingest.close()


def _matches(topic_filter: str, name: str) -> bool:
    """MQTT topic filter matching (+ one level, # the rest)."""
    f, t = topic_filter.split("/"), name.split("/")
    for i, part in enumerate(f):
        if part == "#":
            return True
        if i >= len(t) or part not in ("+", t[i]):
            return False
    return len(f) == len(t)


def test_ingest_subscribes_to_everything_the_acl_lets_devices_and_gateways_write() -> None:
    writes = credentials.device_topics(PREFIX, "c1", "dev-a")[0] + credentials.gateway_topics(PREFIX)[0]
    for w in writes:
        example = w.replace("+", "v7")  # any instance of the filter
        assert any(_matches(f, example) for f in subscriptions(PREFIX)), w
    # and ingest may read all of that under the generated ACL
    acl = credentials.acl_file(
        PREFIX, [], [credentials.ServiceAccount("i", credentials.ServiceRole.INGEST, "h")]
    )
    assert {f"topic read {f}" for f in subscriptions(PREFIX)} <= set(acl.splitlines())


def test_a_device_on_another_contract_version_reaches_ingest(
    secured: tuple[MosquittoBroker, dict[str, str]],
) -> None:
    """So it is dead-lettered `unsupported_version` (not refused unseen by the broker); an unknown
    channel is refused by the broker itself (0x87), which the device sees."""
    broker, pw = secured
    ingest = Client(broker.port, "ingest", pw["ingest"])
    a = Client(broker.port, "dev-a", pw["dev-a"])
    try:
        (sub,) = subscriptions(PREFIX)
        assert ingest.subscribe(sub) == [1]
        body = payload(Family.SMOKE_ALARM, Channel.TELEMETRY, device="dev-a")
        v2 = f"{PREFIX}/v2/c1/dev-a/telemetry"
        assert a.publish(v2, body) == 0
        assert a.publish(f"{PREFIX}/v1/c1/dev-a/bogus", body) == NOT_AUTHORIZED
        assert a.publish(f"{PREFIX}/v2/c1/dev-b/telemetry", body) == NOT_AUTHORIZED
        _wait(lambda: ingest.got(v2), "the v2 message at ingest")
    finally:
        a.close()
        ingest.close()


def test_device_reads_only_its_own_commands(secured: tuple[MosquittoBroker, dict[str, str]]) -> None:
    broker, pw = secured
    ingest = Client(broker.port, "ingest", pw["ingest"])
    a = Client(broker.port, "dev-a", pw["dev-a"])
    try:
        own_cmd = topic(PREFIX, "c1", "dev-a", Channel.COMMAND)
        other_cmd = topic(PREFIX, "c1", "dev-b", Channel.COMMAND)
        assert a.subscribe(own_cmd) == [1]
        # Mosquitto 2.0's acl_file grants the SUBACK and enforces "read" on delivery: what matters is
        # that nothing of another device ever arrives
        a.subscribe(other_cmd)
        a.subscribe(f"{PREFIX}/v1/+/+/cmd")
        assert ingest.publish(other_cmd, b"{}") == 0
        assert ingest.publish(own_cmd, b"{}") == 0
        _wait(lambda: a.got(own_cmd), "the device's own command")
        assert ingest.publish(own_cmd, b"{}") == 0
        _wait(lambda: sum(t == own_cmd for t, _ in a.received) >= 2, "the second own command")
        assert not a.got(other_cmd)
        # a device cannot send commands, not even to itself
        assert a.publish(own_cmd, b"{}") == NOT_AUTHORIZED
    finally:
        a.close()
        ingest.close()


def test_wrong_or_missing_password_is_refused(secured: tuple[MosquittoBroker, dict[str, str]]) -> None:
    broker, pw = secured
    for user, password in (("dev-a", pw["dev-b"]), ("dev-a", "guess"), ("nobody", pw["dev-a"])):
        c = Client(broker.port, user, password)
        try:
            assert c.connack is not None and c.connack.value in (BAD_CREDENTIALS, NOT_AUTHORIZED), user
        finally:
            c.close()


def test_hash_format_matches_mosquitto() -> None:
    encoded = credentials.hash_password("secret", salt=b"0123456789ab")
    iterations, salt, digest = encoded.split("$")[2:]
    assert encoded.startswith("$7$") and iterations == str(credentials.PBKDF2_ITERATIONS)
    assert salt == "MDEyMzQ1Njc4OWFi" and len(digest) == 88  # 12-byte salt, 64-byte SHA-512 digest
    assert credentials.verify_password("secret", encoded)
    assert not credentials.verify_password("Secret", encoded)
    assert not credentials.verify_password("secret", "$6$bad")
    text = credentials.password_file([credentials.DeviceAccount("d1", "c1", encoded)])
    assert credentials.parse_password_file(text) == {"d1": encoded}
    with pytest.raises(ValueError, match="must match"):
        credentials.password_file([credentials.DeviceAccount("d:1", "c1", encoded)])


def test_cli_issues_credentials_the_broker_accepts(
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("YIJU_DATABASE__URL", db_url)
    monkeypatch.setenv("YIJU_MQTT__URL", "mqtt://127.0.0.1:1")
    monkeypatch.setenv("YIJU_MQTT__TOPIC_PREFIX", PREFIX)
    monkeypatch.setenv("YIJU_STATE_DIR", str(tmp_path / "state"))
    with connection(db_url, autocommit=True) as conn:
        registry.upsert_community(conn, registry.CommunityIn("c1", "一号小区"))
        registry.upsert_devices(
            conn, [registry.DeviceIn("dev-a", "c1", "smoke_alarm"), registry.DeviceIn("dev-b", "c1", "light")]
        )
    out = tmp_path / "mqtt"
    assert main(["devices", "credentials", "--out", str(out), "--gateway-user", "sim"]) == 0
    printed = capsys.readouterr().out
    (secrets_file,) = out.glob("new-passwords-*.csv")
    assert str(secrets_file) in printed
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((out / "passwd").stat().st_mode) == 0o600
    with secrets_file.open() as f:
        issued = {r["username"]: r for r in csv.DictReader(f)}
    assert set(issued) == {"dev-a", "dev-b", "yiju-ingest", "sim"}
    passwd_text = (out / "passwd").read_text()
    assert issued["dev-a"]["password"] not in passwd_text  # stored hashed only
    with connection(db_url) as conn:
        stored = {u: h for u, _, h in registry.credentials(conn)}
    assert credentials.verify_password(issued["dev-a"]["password"], stored["dev-a"] or "")

    # a second run issues nothing and keeps every account's hash
    secrets_file.unlink()
    assert main(["devices", "credentials", "--out", str(out)]) == 0
    assert "no new passwords issued" in capsys.readouterr().out
    assert not list(out.glob("new-passwords-*.csv"))
    assert credentials.parse_password_file((out / "passwd").read_text()) == credentials.parse_password_file(
        passwd_text
    )

    broker = MosquittoBroker(tmp_path / "broker", password_file=out / "passwd", acl_file=out / "acl")
    broker.start()
    try:
        ingest = Client(broker.port, "yiju-ingest", issued["yiju-ingest"]["password"])
        a = Client(broker.port, "dev-a", issued["dev-a"]["password"])
        sim = Client(broker.port, "sim", issued["sim"]["password"])
        try:
            ingest.subscribe(f"{PREFIX}/v1/+/+/telemetry")
            own = topic(PREFIX, "c1", "dev-a", Channel.TELEMETRY)
            other = topic(PREFIX, "c1", "dev-b", Channel.TELEMETRY)
            body = payload(Family.SMOKE_ALARM, Channel.TELEMETRY, device="dev-a")
            assert a.publish(other, body) == NOT_AUTHORIZED
            assert a.publish(own, body) == 0
            assert sim.publish(other, body) == 0  # the gateway account publishes for every device
            _wait(lambda: ingest.got(own) and ingest.got(other), "uplinks at ingest")
        finally:
            for c in (a, sim, ingest):
                c.close()
    finally:
        broker.stop()


def test_cli_writes_json_schemas(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YIJU_STATE_DIR", str(tmp_path / "state"))
    assert main(["devices", "schema", "--out", str(tmp_path / "schemas")]) == 0
    files = sorted(p.name for p in (tmp_path / "schemas").glob("*.schema.json"))
    assert "ebike_charger.telemetry.schema.json" in files and "gas_alarm.cmd.schema.json" in files
    assert "cctv_recorder.cmd.schema.json" not in files  # recorders take no commands
    doc = json.loads((tmp_path / "schemas" / "elevator.event.schema.json").read_text())
    assert doc["$schema"].endswith("2020-12/schema")
