"""The one module of the ingest side that talks to paho-mqtt.

Everything paho-specific (clients, callbacks, reason codes) stays here; the rest of Yiju sees plain
URLs, our own frozen message types and `BrokerUnavailable`.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from devices import mqtt_wire as wire
from devices.mqtt_wire import BrokerAddress, parse_mqtt_url
from ingest.messages import RawMessage
from yiju.errors import BrokerUnavailable, ConfigurationError, MalformedPacket

log = logging.getLogger(__name__)

# commands kept by paho while the broker is away; beyond this, publishing a command fails loudly
COMMAND_QUEUE_MAX = 10_000
# the one paho release `_BulkClient`'s use of paho's private members is tested against
# (tests/test_paho_contract.py); pyproject.toml pins the same
PAHO_VERSION = "2.2.0"


def _secure(client: mqtt.Client, address: BrokerAddress, ca_file: Path | None) -> None:
    """Credentials and, for mqtts://, TLS with the broker's certificate verified (host name included)
    against `ca_file` alone when given (the CA is pinned), else against the system trust store."""
    if address.username:
        client.username_pw_set(address.username, address.password)
    context = _tls_context(address, ca_file)
    if context is not None:
        client.tls_set_context(context)


def _tls_context(address: BrokerAddress, ca_file: Path | None) -> ssl.SSLContext | None:
    if not address.tls:
        if ca_file is not None:
            raise ConfigurationError(
                f"a CA file is set ({ca_file}) but {address} is plaintext: use an mqtts:// URL"
            )
        return None
    try:
        # with a cafile, only that CA is trusted; without, the system's store
        context = ssl.create_default_context(cafile=None if ca_file is None else str(ca_file))
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot read the CA file {ca_file} for {address}: {exc}") from exc
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _check_tls(address: BrokerAddress, context: ssl.SSLContext, timeout_s: float) -> None:
    """One TLS handshake of our own, so that a refused certificate is reported in plain words (and no
    half-open socket is left behind, as paho's failed connect would)."""
    try:
        with (
            socket.create_connection((address.host, address.port), timeout=timeout_s) as raw,
            context.wrap_socket(raw, server_hostname=address.host),
        ):
            return
    except ssl.SSLCertVerificationError as exc:
        raise BrokerUnavailable(
            f"{address}: the broker's certificate is not trusted (certificate verify failed: "
            f"{exc.verify_message}); check YIJU_MQTT__CA_FILE"
        ) from exc
    except ssl.SSLError as exc:
        raise BrokerUnavailable(f"TLS with {address} failed: {exc.reason or exc}") from exc
    except OSError as exc:
        raise BrokerUnavailable(f"cannot connect to {address}: {exc.strerror or exc}") from exc


def probe_broker(url: str, timeout_s: float = 3.0, *, ca_file: Path | None = None) -> str:
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
    _secure(client, address, ca_file)
    context = _tls_context(address, ca_file)
    if context is not None:
        _check_tls(address, context, timeout_s)
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


# --------------------------------------------------------------------------------------------------
# The ingest consumer


ReceiveCallback = Callable[[RawMessage], None]
BatchCallback = Callable[[list[RawMessage]], None]
StateCallback = Callable[[bool, str], None]
PublishItem = wire.PublishFields  # topic, payload, packet id, QoS

RECV_BYTES = 256 * 1024  # one recv() takes up to this much: hundreds of PUBLISH packets at a time
PUBACK = 0x40


def _fresh_in_packet() -> dict[str, Any]:
    return {
        "command": 0,
        "have_remaining": 0,
        "remaining_count": [],
        "remaining_mult": 1,
        "remaining_length": 0,
        "packet": bytearray(),
        "to_process": 0,
        "pos": 0,
    }


class _BulkClient(mqtt.Client):
    """paho's Client with a bulk receive path, for the ingest session's throughput.

    Stock paho reads one packet per select() (three or more recv() calls: command byte, each
    remaining-length byte, body) and builds an MQTTMessage with a Properties object per PUBLISH;
    profiled, that was the largest cost of ingest. Here `loop_read` (which paho's loop calls when
    select() reports the socket readable) takes everything the kernel has in one recv(), frames all
    complete packets, hands QoS 0/1 PUBLISH packets on as one list of (topic, payload, packet id,
    QoS), and hands every other packet (CONNACK, SUBACK, PINGRESP, DISCONNECT, …) to paho's own
    handler unchanged. A partial packet stays buffered until the rest arrives, and the rest makes
    the socket readable again, so nothing complete ever waits in the buffer (no stall). The buffer
    belongs to one connection: `reconnect` drops it. TLS sockets (mqtts://) keep paho's path, since
    their `pending()` bytes are invisible to select(): slower per message, never stalled. Framing and
    the PUBLISH fields are `devices.mqtt_wire`'s, the codec the simulator and the benchmark use too.

    It reaches into paho, so paho is pinned to one exact version (pyproject.toml, `PAHO_VERSION`) and
    `tests/test_paho_contract.py` holds one test per private member used: `_sock`, `_loop_rc_handle`,
    `_msgtime_mutex` and `_last_bytes_received` (with paho's `time_func`), `_in_packet` and
    `_packet_handle`, `_packet_queue`; and `MQTTMessage._topic` in `MqttConsumer`. Why not a receive
    path of our own on the codec instead: bench/RESULTS.md, "MQTT framing written once".
    """

    def __init__(self, *args: Any, on_batch: Callable[[list[PublishItem]], None], **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._rx = bytearray()
        self._on_batch = on_batch

    def reconnect(self) -> MQTTErrorCode:
        self._rx = bytearray()
        return super().reconnect()

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        sock = self._sock
        if sock is None:
            return MQTTErrorCode.MQTT_ERR_NO_CONN
        if hasattr(sock, "pending"):
            return super().loop_read(max_packets)
        try:
            chunk = sock.recv(RECV_BYTES)
        except BlockingIOError:
            return MQTTErrorCode.MQTT_ERR_SUCCESS
        except (OSError, AttributeError) as err:
            log.debug("ingest session receive failed: %s", err)
            chunk = b""
        if not chunk:
            return self._loop_rc_handle(MQTTErrorCode.MQTT_ERR_CONN_LOST)
        with self._msgtime_mutex:
            self._last_bytes_received = time.monotonic()  # paho's time_func
        self._rx += chunk
        rc = self._consume(sock)
        return self._loop_rc_handle(rc) if rc else MQTTErrorCode.MQTT_ERR_SUCCESS

    def _consume(self, sock: object) -> MQTTErrorCode:
        """Frame and dispatch every complete packet in the buffer; keep a trailing partial one."""
        buf = self._rx
        try:
            frames, end = wire.split_frames(buf)
        except MalformedPacket as exc:
            log.warning("ingest session got a malformed packet: %s", exc)
            return MQTTErrorCode.MQTT_ERR_PROTOCOL  # the broker redelivers what was not acknowledged
        pos = 0
        publishes: list[PublishItem] = []
        rc = MQTTErrorCode.MQTT_ERR_SUCCESS
        for first, start, stop in frames:
            pos = stop
            if first & 0xF0 == wire.PUBLISH_NIBBLE and first & 0x06 != 0x04:  # QoS 0 or 1
                try:
                    item = wire.read_publish(buf, first, start, stop)
                except MalformedPacket as exc:
                    log.warning("ingest session got a malformed packet: %s", exc)
                    rc = MQTTErrorCode.MQTT_ERR_PROTOCOL
                    break
                if item[0]:
                    publishes.append(item)
                    continue
                # an empty topic would need a topic alias, which we never allow: paho judges it
            if publishes:
                self._on_batch(publishes)
                publishes = []
            rc = self._paho_handle(first, bytes(buf[start:stop]))
            if rc or self._sock is not sock:
                break
        else:
            pos = end
        if publishes:
            self._on_batch(publishes)
        if self._sock is sock:
            del buf[:pos]
        return rc

    def _paho_handle(self, command: int, body: bytes) -> MQTTErrorCode:
        packet = _fresh_in_packet()
        packet["command"] = command
        packet["packet"] = bytearray(body)
        packet["remaining_length"] = len(body)  # PINGREQ/PINGRESP handlers check it is 0
        self._in_packet = packet  # type: ignore[assignment]  # paho's private TypedDict
        try:
            rc: MQTTErrorCode = self._packet_handle()
        except Exception as exc:  # noqa: BLE001 - paho's MalformedPacket and friends
            log.warning("ingest session got a malformed packet: %s", exc)
            rc = MQTTErrorCode.MQTT_ERR_PROTOCOL
        self._in_packet = _fresh_in_packet()  # type: ignore[assignment]
        return rc

    def queue_raw(self, command: int, packet: bytes) -> None:
        """Queue pre-encoded packets (e.g. many PUBACKs) as one write; thread-safe like paho's ack."""
        self._packet_queue(command, packet, 0, 0)


class MqttConsumer:
    """One persistent MQTT 5 session (clean start off, session expiry set) subscribed at QoS 1 to the
    ingest topic filters (usually a shared subscription), with manual acknowledgement.

    The network loop runs on paho's own thread, owned here (`start`/`stop`). Every message is turned
    into a `RawMessage` and passed to `on_message`, which must only enqueue it. `ack` sends the
    PUBACKs once the caller has committed the messages; an ack for a message received on an earlier
    connection is not sent (its packet id means nothing now): the broker redelivers that message on
    the new connection and the idempotent writer absorbs the copy.
    """

    def __init__(
        self,
        url: str,
        *,
        client_id: str,
        filters: list[str],
        on_message: ReceiveCallback,
        on_batch: BatchCallback | None = None,
        on_state: StateCallback | None = None,
        session_expiry_s: int,
        receive_maximum: int,
        keepalive_s: int = 30,
        reconnect_min_s: float = 0.2,
        reconnect_max_s: float = 5.0,
        ca_file: Path | None = None,
    ) -> None:
        self.address = parse_mqtt_url(url)
        self.client_id = client_id
        self.filters = filters
        self._on_message_cb = on_message
        self._on_batch_cb = on_batch
        self._on_state = on_state
        self._session_expiry_s = session_expiry_s
        self._receive_maximum = receive_maximum
        self._keepalive_s = keepalive_s
        self.generation = 0
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.session_present = False
        self._client = _BulkClient(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
            manual_ack=True,
            reconnect_on_failure=True,
            on_batch=self._on_publishes,
        )
        self._client.reconnect_delay_set(
            min_delay=max(1, int(reconnect_min_s)), max_delay=max(1, int(reconnect_max_s))
        )
        _secure(self._client, self.address, ca_file)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        self._started = False

    # paho callbacks (network thread) ------------------------------------------------------------

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        props: Properties | None,
    ) -> None:
        if reason.is_failure:
            log.warning("broker %s refused ingest session %s: %s", self.address, self.client_id, reason)
            return
        self.generation += 1
        self.session_present = bool(flags.session_present)
        # Subscribing again is harmless when the session survived, and required when it did not
        # (broker restarted without persistence, or the session expired).
        client.subscribe([(f, SubscribeOptions(qos=1)) for f in self.filters])
        self.connected.set()
        log.info(
            "ingest session %s connected to %s (session present: %s)",
            self.client_id,
            self.address,
            self.session_present,
        )
        if self._on_state:
            self._on_state(True, "connected")

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: object,
        mid: int,
        reasons: list[ReasonCode],
        props: Properties | None,
    ) -> None:
        failed = [str(r) for r in reasons if r.is_failure]
        if failed:
            log.error("broker refused ingest subscriptions %s: %s", self.filters, failed)
            return
        self.subscribed.set()

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        props: Properties | None,
    ) -> None:
        self.connected.clear()
        self.subscribed.clear()
        if self._started:
            log.warning("ingest session %s lost the broker: %s; reconnecting", self.client_id, reason)
        if self._on_state:
            self._on_state(False, str(reason))

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        try:
            topic = msg.topic
        except UnicodeDecodeError:  # the contract forbids it; keep it for the dead-letter record
            topic = msg._topic.decode("utf-8", "replace")
        self._on_message_cb(
            RawMessage(topic, bytes(msg.payload), msg.mid, self.generation, time.time(), msg.qos)
        )

    def _on_publishes(self, items: list[PublishItem]) -> None:
        gen = self.generation
        now = time.time()
        out: list[RawMessage] = []
        append = out.append
        new = tuple.__new__  # the NamedTuple without its Python-level __new__: one frame less each
        for topic_bytes, payload, mid, qos in items:
            try:
                topic = topic_bytes.decode()
            except UnicodeDecodeError:  # the contract forbids it; keep it for the dead-letter record
                topic = topic_bytes.decode("utf-8", "replace")
            append(new(RawMessage, (topic, payload, mid, gen, now, qos)))
        if self._on_batch_cb is not None:
            self._on_batch_cb(out)
        else:
            for raw in out:
                self._on_message_cb(raw)

    # control (any thread) --------------------------------------------------------------------------

    def start(self) -> None:
        """Start connecting in the background; the session reconnects by itself until `stop`."""
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self._session_expiry_s
        props.ReceiveMaximum = self._receive_maximum
        self._started = True
        self._client.connect_async(
            self.address.host,
            self.address.port,
            keepalive=self._keepalive_s,
            clean_start=False,
            properties=props,
        )
        self._client.loop_start()

    def ack(self, tokens: list[tuple[int, int, int]]) -> int:
        """Acknowledge (mid, qos, generation) tokens in the order given; returns how many were sent.

        The PUBACKs go out as one write (4 bytes each: MQTT 5 allows omitting the reason code when
        it is Success, §3.4.2.1) instead of one queued packet, wake-up and send() per message."""
        gen = self.generation
        mids = [mid for mid, qos, generation in tokens if qos == 1 and generation == gen]
        if mids:
            self._client.queue_raw(PUBACK, wire.encode_pubacks(mids))
        sent = len(mids)
        for mid, qos, generation in tokens:
            if qos == 2 and generation == gen:  # not granted by our subscriptions; paho's path if ever
                self._client.ack(mid, qos)
                sent += 1
        return sent

    def stop(self) -> None:
        """Disconnect (the session and its unacknowledged messages stay with the broker)."""
        self._started = False
        try:
            self._client.disconnect()
        finally:
            self._client.loop_stop()
        self.connected.clear()


class MqttCommandPublisher:
    """Publishes downlink commands (`{prefix}/v1/{community}/{device}/cmd`, QoS 1) for the alert engine
    and the API. Its own MQTT session, on paho's network thread owned here (`start`/`stop`).

    `publish` only queues the message with paho and returns; while the broker is away paho keeps it
    and sends it after reconnecting. A command that cannot even be queued raises `BrokerUnavailable`,
    and the caller marks it failed.
    """

    def __init__(
        self, url: str, *, client_id: str, keepalive_s: int = 30, ca_file: Path | None = None
    ) -> None:
        self.address = parse_mqtt_url(url)
        self.connected = threading.Event()
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
            reconnect_on_failure=True,
        )
        self._client.max_queued_messages_set(COMMAND_QUEUE_MAX)
        _secure(self._client, self.address, ca_file)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._keepalive_s = keepalive_s

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        props: object,
    ) -> None:
        if reason.is_failure:
            log.warning("command publisher: broker refused the connection: %s", reason)
            return
        self.connected.set()

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        props: object,
    ) -> None:
        self.connected.clear()

    def start(self) -> None:
        self._client.connect_async(self.address.host, self.address.port, keepalive=self._keepalive_s)
        self._client.loop_start()

    def publish(self, topic: str, payload: bytes) -> None:
        info = self._client.publish(topic, payload, qos=1)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            raise BrokerUnavailable(f"command to {topic} not queued: {mqtt.error_string(info.rc)}")

    def stop(self) -> None:
        try:
            self._client.disconnect()
        finally:
            self._client.loop_stop()
        self.connected.clear()
