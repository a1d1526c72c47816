"""The broker as deployed: deploy/mosquitto/mosquitto.conf itself, run with a CA and certificates made
here (openssl) and the password and ACL files of `devices.credentials`. Ingest connects over TLS with
the CA pinned and stores what a device sends over TLS; plain MQTT and a client trusting another CA
are refused."""

from __future__ import annotations

import getpass
import shutil
import ssl
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from ingest_support import register_fleet, wait_for
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from devices import credentials, samples
from devices.contract import Channel, Family, topic
from ingest.mqtt_adapter import probe_broker
from ingest.service import IngestService
from storage.db import connection
from yiju.embedded import LOOPBACK, find_mosquitto, free_port, port_open
from yiju.errors import BrokerUnavailable, ConfigurationError
from yiju.settings import DatabaseSettings, IngestSettings, MqttSettings, Settings

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "deploy" / "mosquitto" / "mosquitto.conf"
PREFIX = "yjtls"
OPENSSL = shutil.which("openssl")
pytestmark = pytest.mark.skipif(OPENSSL is None, reason="openssl not installed (Debian package 'openssl')")


def _openssl(*args: str | Path) -> None:
    assert OPENSSL is not None
    subprocess.run([OPENSSL, *map(str, args)], check=True, capture_output=True, timeout=60)


def make_ca(d: Path, name: str) -> tuple[Path, Path]:
    key, cert = d / f"{name}.key", d / f"{name}.pem"
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key)
    _openssl("req", "-x509", "-new", "-key", key, "-days", "2", "-subj", f"/CN={name}", "-out", cert)
    return key, cert


def make_server_cert(d: Path, ca_key: Path, ca_cert: Path) -> tuple[Path, Path]:
    key, csr, cert, ext = d / "server.key", d / "server.csr", d / "server.pem", d / "server.ext"
    ext.write_text("subjectAltName = IP:127.0.0.1, DNS:localhost\nextendedKeyUsage = serverAuth\n")
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key)
    _openssl("req", "-new", "-key", key, "-subj", "/CN=localhost", "-out", csr)
    _openssl(
        "x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key, "-CAcreateserial",
        "-days", "2", "-extfile", ext, "-out", cert,
    )  # fmt: skip
    return key, cert


@dataclass
class Broker:
    port: int
    ca: Path
    wrong_ca: Path
    passwords: dict[str, str]

    def url(self, user: str, scheme: str = "mqtts") -> str:
        return f"{scheme}://{user}:{self.passwords[user]}@{LOOPBACK}:{self.port}"


def deployed_config(tmp: Path, port: int) -> str:
    """The shipped file with this test's paths and port; nothing else changes."""
    text = CONF.read_text()
    assert "\nlistener 8883\n" in text and "/etc/mosquitto/" in text
    text = text.replace("\nlistener 8883\n", f"\nlistener {port} {LOOPBACK}\n")
    text = text.replace("/etc/mosquitto/", f"{tmp}/")
    text = text.replace("/var/lib/mosquitto/", f"{tmp}/data/")
    # the test runs as this user (a packaged broker drops to user mosquitto) and logs to a file
    return text + f"\nuser {getpass.getuser()}\nlog_dest file {tmp}/mosquitto.log\n"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    tmp = tmp_path_factory.mktemp("tls")
    (tmp / "certs").mkdir()
    (tmp / "yiju").mkdir()
    (tmp / "data").mkdir()
    ca_key, ca = make_ca(tmp / "certs", "ca")
    make_server_cert(tmp / "certs", ca_key, ca)
    _, wrong_ca = make_ca(tmp, "other-ca")
    passwords = {"yiju-ingest": credentials.new_password(), "dev-1": credentials.new_password()}
    devices = [credentials.DeviceAccount("dev-1", "c1", credentials.hash_password(passwords["dev-1"]))]
    services = [
        credentials.ServiceAccount(
            "yiju-ingest", credentials.ServiceRole.INGEST, credentials.hash_password(passwords["yiju-ingest"])
        )
    ]
    (tmp / "yiju" / "passwd").write_text(credentials.password_file(devices, services))
    (tmp / "yiju" / "acl").write_text(credentials.acl_file(PREFIX, devices, services))
    port = free_port()
    conf = tmp / "mosquitto.conf"
    conf.write_text(deployed_config(tmp, port))
    proc = subprocess.Popen(
        [str(find_mosquitto()), "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:

        def listening() -> bool:
            log = tmp / "mosquitto.log"
            assert proc.poll() is None, log.read_text() if log.exists() else "mosquitto exited"
            return port_open(LOOPBACK, port)

        wait_for(listening, 30, "mosquitto's TLS listener")
        yield Broker(port, ca, wrong_ca, passwords)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_pinned_ca_connects_plaintext_and_wrong_ca_are_refused(broker: Broker) -> None:
    assert "mqtts://127.0.0.1" in probe_broker(broker.url("yiju-ingest"), 5, ca_file=broker.ca)
    with pytest.raises(BrokerUnavailable, match="certificate verify failed"):
        probe_broker(broker.url("yiju-ingest"), 5, ca_file=broker.wrong_ca)
    # the system trust store does not know our CA either: nothing but the pinned CA is trusted
    with pytest.raises(BrokerUnavailable, match="certificate verify failed"):
        probe_broker(broker.url("yiju-ingest"), 5)
    # plain MQTT to the TLS listener: no CONNACK, ever
    with pytest.raises(BrokerUnavailable):
        probe_broker(broker.url("yiju-ingest", scheme="mqtt"), 3)
    # and a wrong password over good TLS is refused by the broker
    wrong = f"mqtts://yiju-ingest:guess@{LOOPBACK}:{broker.port}"
    with pytest.raises(BrokerUnavailable, match="refused"):
        probe_broker(wrong, 5, ca_file=broker.ca)


def test_a_ca_file_with_a_plaintext_url_is_a_configuration_error(broker: Broker) -> None:
    with pytest.raises(ConfigurationError, match="plaintext"):
        probe_broker(broker.url("yiju-ingest", scheme="mqtt"), 3, ca_file=broker.ca)


def test_ingest_over_tls_stores_what_a_device_sends_over_tls(broker: Broker, db_url: str) -> None:
    register_fleet(db_url, per_family=0)
    with connection(db_url) as conn:
        conn.execute(
            "INSERT INTO devices (uid, community_id, family) "
            "SELECT 'dev-1', id, 'smoke_alarm' FROM communities WHERE code = 'c1'"
        )
        conn.commit()
    settings = Settings(
        database=DatabaseSettings(url=db_url),
        mqtt=MqttSettings(
            url=broker.url("yiju-ingest"),
            ca_file=broker.ca,
            topic_prefix=PREFIX,
            client_id=f"ingest-{uuid.uuid4().hex[:8]}",
        ),
        ingest=IngestSettings(metrics_port=0),
    )
    assert settings.mqtt.url is not None
    service = IngestService(settings, database_url=db_url, mqtt_url=settings.mqtt.url)
    device = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="dev-1", protocol=MQTTProtocolVersion.MQTTv5)
    device.username_pw_set("dev-1", broker.passwords["dev-1"])
    device.tls_set_context(ssl.create_default_context(cafile=str(broker.ca)))
    with service:
        wait_for(service.consumer.subscribed.is_set, 15, "ingest's subscription over TLS")
        device.connect(LOOPBACK, broker.port)
        device.loop_start()
        try:
            ts = (datetime.now(UTC) - timedelta(seconds=5)).isoformat()
            body = samples.payload(Family.SMOKE_ALARM, Channel.TELEMETRY, device="dev-1", seq=1, ts=ts)
            info = device.publish(topic(PREFIX, "c1", "dev-1", Channel.TELEMETRY), body, qos=1)
            info.wait_for_publish(15)

            def stored() -> bool:
                with connection(db_url) as conn:
                    row = conn.execute("SELECT count(*) FROM telemetry").fetchone()
                return bool(row and row[0] == 1)

            wait_for(stored, 30, "the device's message in the database")
        finally:
            device.disconnect()
            device.loop_stop()
    assert service.stats.acked >= 1
