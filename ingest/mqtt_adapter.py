"""The one module of the ingest side that talks to paho-mqtt.

Everything paho-specific (clients, callbacks, reason codes) stays here; the rest of Yiju sees plain
URLs, our own frozen message types and `BrokerUnavailable`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from yiju.errors import BrokerUnavailable, ConfigurationError

DEFAULT_MQTT_PORT = 1883


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    username: str | None = None
    password: str | None = None

    def __str__(self) -> str:
        return f"mqtt://{self.host}:{self.port}"


def parse_mqtt_url(url: str) -> BrokerAddress:
    parts = urlsplit(url)
    if parts.scheme not in {"mqtt", "tcp"} or not parts.hostname:
        raise ConfigurationError(f"not an MQTT URL: {url!r} (expected mqtt://[user:password@]host[:port])")
    return BrokerAddress(
        host=parts.hostname,
        port=parts.port or DEFAULT_MQTT_PORT,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


def probe_broker(url: str, timeout_s: float = 3.0) -> str:
    """Connect with MQTT 5 and disconnect; return a description, or raise `BrokerUnavailable`."""
    address = parse_mqtt_url(url)
    done = threading.Event()
    result: dict[str, str] = {}

    def on_connect(
        client: mqtt.Client, userdata: object, flags: mqtt.ConnectFlags, reason: ReasonCode, props: object
    ) -> None:
        result["reason"] = str(reason)
        result["ok"] = "1" if not reason.is_failure else ""
        done.set()

    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id="",
        protocol=MQTTProtocolVersion.MQTTv5,
        reconnect_on_failure=False,
    )
    if address.username:
        client.username_pw_set(address.username, address.password)
    client.on_connect = on_connect
    try:
        client.connect(address.host, address.port, keepalive=10)
    except OSError as exc:
        raise BrokerUnavailable(f"cannot connect to {address}: {exc.strerror or exc}") from exc
    client.loop_start()
    try:
        if not done.wait(timeout_s):
            raise BrokerUnavailable(f"no CONNACK from {address} within {timeout_s:.0f} s")
        if not result.get("ok"):
            raise BrokerUnavailable(f"{address} refused the connection: {result.get('reason')}")
    finally:
        client.disconnect()
        client.loop_stop()
    return f"MQTT 5 broker at {address}"
