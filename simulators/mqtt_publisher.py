"""The simulator's MQTT side (the only simulator module that uses paho): puts `SimMessage`s on a real
MQTT 5 broker.

Two ways to connect, as the issue asks:

- `DevicePublisher` (paho): one MQTT session per device, client id = username = device uid, so the
  broker sees what it sees in production: the device's retained `status` online message and its
  Last Will (offline, retained) that the broker publishes if the session dies.
- `LoadPublisher`: a few multiplexed connections publishing many devices' messages (QoS 1, the
  broker's whole Receive Maximum in flight) as fast as the broker acknowledges them. A device always
  goes through the same connection, so its messages stay in order. It speaks MQTT 5 through
  `WireConnection`, a minimal client written for throughput (paho costs ~100 µs per message here);
  `run_load` spreads pre-serialised messages over worker processes.

Neither starts a thread: the caller's loop calls `pump()` while it waits (acknowledgements,
keep-alives) and `close()` at the end (context managers). Socket and protocol errors become
`yiju.errors.BrokerUnavailable` here.

`drain_count` is a bare subscriber that counts what arrives (benchmarks and tests).
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import resource
import select
import selectors
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from devices import mqtt_wire as wire
from devices.mqtt_wire import BrokerAddress, PacketType, encode_publish
from simulators.stream import SimMessage
from yiju.errors import BrokerUnavailable, ConfigurationError

QOS = 1  # contract v1: every uplink is QoS 1 (docs/mqtt.md)
KEEPALIVE_S = 60
CONNECT_TIMEOUT_S = 10.0
CLOSE_TIMEOUT_S = 30.0
LOAD_INFLIGHT = 1000  # per connection; Mosquitto's own cap is `max_inflight_messages`
MISC_INTERVAL_S = 1.0
FDS_PER_SESSION = 3  # the MQTT socket and paho's internal wake-up socket pair


def plain_address(url: str) -> BrokerAddress:
    """The broker of `url`; the simulator speaks plaintext MQTT only (devices on the test bench)."""
    address = wire.parse_mqtt_url(url)
    if address.tls:
        raise ConfigurationError(
            f"the simulator publishes over plaintext MQTT only: use mqtt://, not {url!r}"
        )
    return address


@dataclass(slots=True)
class PublishStats:
    """Counters of one publisher (or the sum of several): what was handed to the broker and what
    the broker acknowledged (PUBACK)."""

    published: int = 0
    acked: int = 0
    failed: int = 0
    connections: int = 0
    bytes: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def in_flight(self) -> int:
        return self.published - self.acked - self.failed

    def add(self, other: PublishStats) -> None:
        self.published += other.published
        self.acked += other.acked
        self.failed += other.failed
        self.connections += other.connections
        self.bytes += other.bytes
        self.errors.extend(other.errors)


class _Session:
    """One paho client driven by our own loop (`loop_read`/`loop_write`/`loop_misc`)."""

    def __init__(
        self,
        client_id: str,
        stats: PublishStats,
        *,
        username: str | None,
        password: str | None,
        will: tuple[str, bytes] | None,
        inflight: int,
    ) -> None:
        self.client_id = client_id
        self.stats = stats
        self.connected = False
        self.refused: str | None = None
        self.lost: str | None = None
        self.outstanding = 0
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5,
            reconnect_on_failure=False,
        )
        if username is not None:
            self.client.username_pw_set(username, password)
        if will is not None:
            self.client.will_set(will[0], will[1], qos=QOS, retain=True)
        # Our own window instead of paho's: paho re-scans its whole queue on every PUBACK once
        # messages wait behind its in-flight limit (quadratic), so it must never queue them.
        self.window = inflight
        self.client.max_inflight_messages_set(0)
        self.client.on_connect = self._on_connect
        self.client.on_publish = self._on_publish
        self.client.on_disconnect = self._on_disconnect

    def _on_connect(self, c: mqtt.Client, u: Any, flags: Any, rc: ReasonCode, p: Properties | None) -> None:
        if rc.is_failure:
            self.refused = str(rc)
            return
        receive_max = getattr(p, "ReceiveMaximum", None) if p is not None else None
        if receive_max:  # MQTT 5: the broker's limit on unacknowledged QoS 1 messages per session
            self.window = min(self.window, int(receive_max))
        self.connected = True

    def _on_publish(self, c: mqtt.Client, u: Any, mid: int, rc: ReasonCode, p: Properties | None) -> None:
        self.outstanding -= 1
        if rc.is_failure:
            self.stats.failed += 1
            if len(self.stats.errors) < 20:
                self.stats.errors.append(f"{self.client_id}: PUBACK {rc}")
        else:
            self.stats.acked += 1

    def _on_disconnect(self, c: mqtt.Client, u: Any, f: Any, rc: ReasonCode, p: Properties | None) -> None:
        if self.connected and not self.lost:
            self.lost = str(rc)
        self.connected = False

    def start_connect(self, address: BrokerAddress) -> None:
        try:
            self.client.connect(address.host, address.port, keepalive=KEEPALIVE_S, clean_start=True)
        except (OSError, ValueError) as exc:
            raise BrokerUnavailable(
                f"cannot connect to MQTT broker {address.host}:{address.port} as {self.client_id}: {exc}"
            ) from exc

    def publish(self, topic: str, payload: bytes, retain: bool) -> None:
        """Hand one message to the broker; the caller keeps `outstanding` below `window`."""
        info = self.client.publish(topic, payload, qos=QOS, retain=retain)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_AGAIN):
            raise BrokerUnavailable(f"publish by {self.client_id} failed: {mqtt.error_string(info.rc)}")
        self.outstanding += 1
        self.stats.published += 1
        self.stats.bytes += len(payload)

    def check(self) -> None:
        if self.refused:
            raise BrokerUnavailable(f"broker refused session {self.client_id}: {self.refused}")
        if self.lost:
            raise BrokerUnavailable(f"broker connection of {self.client_id} lost: {self.lost}")


class _Loop:
    """A selector over many sessions' sockets: the simulator's single network loop."""

    def __init__(self) -> None:
        self.selector = selectors.DefaultSelector()
        self.sessions: list[_Session] = []
        self._last_misc = time.monotonic()

    def add(self, session: _Session) -> None:
        sock = session.client.socket()
        if sock is None:
            raise BrokerUnavailable(f"session {session.client_id} has no socket")
        self.selector.register(sock, selectors.EVENT_READ, session)
        self.sessions.append(session)

    def pump(self, timeout_s: float = 0.0) -> None:
        for key, _ in self.selector.select(timeout=max(0.0, timeout_s)):
            key.data.client.loop_read()
        for s in self.sessions:
            if s.client.want_write():
                s.client.loop_write()
        now = time.monotonic()
        if now - self._last_misc >= MISC_INTERVAL_S:
            self._last_misc = now
            for s in self.sessions:
                s.client.loop_misc()
        for s in self.sessions:
            s.check()

    def wait_connected(self, sessions: Sequence[_Session], timeout_s: float = CONNECT_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while not all(s.connected for s in sessions):
            if time.monotonic() > deadline:
                waiting = [s.client_id for s in sessions if not s.connected][:5]
                raise BrokerUnavailable(f"no CONNACK within {timeout_s:.0f} s for {', '.join(waiting)}")
            self.pump(0.05)

    def close(self, timeout_s: float = CLOSE_TIMEOUT_S) -> None:
        """Wait (bounded) for outstanding acknowledgements, then disconnect cleanly."""
        deadline = time.monotonic() + timeout_s
        with contextlib.suppress(BrokerUnavailable):
            while any(s.outstanding > 0 and s.connected for s in self.sessions):
                if time.monotonic() > deadline:
                    break
                self.pump(0.05)
        for s in self.sessions:
            with contextlib.suppress(OSError, ValueError):
                s.client.disconnect()
                s.client.loop_write()
            sock = s.client.socket()
            if sock is not None:
                with contextlib.suppress(KeyError, ValueError):
                    self.selector.unregister(sock)
        self.selector.close()
        self.sessions.clear()


class _Publisher:
    def __init__(self, url: str, prefix: str) -> None:
        self.address = plain_address(url)
        self.prefix = prefix
        self.stats = PublishStats()
        self._loop = _Loop()

    def pump(self, timeout_s: float = 0.0) -> None:
        """Process network events for up to `timeout_s` (acks, keep-alive); raises if a session died."""
        self._loop.pump(timeout_s)

    def close(self) -> None:
        self._loop.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class DevicePublisher(_Publisher):
    """One MQTT session per device. A device connects when its first message comes (the fleet makes
    that its retained online status, carrying the Last Will to register)."""

    def __init__(
        self,
        url: str,
        prefix: str,
        *,
        password_for: Callable[[str], str | None] | None = None,
        client_id_prefix: str = "",
    ) -> None:
        super().__init__(url, prefix)
        self.password_for = password_for
        self.client_id_prefix = client_id_prefix
        self._sessions: dict[str, _Session] = {}

    @staticmethod
    def check_capacity(devices: int) -> None:
        """Refuse early, with a clear message, a device count the process cannot hold open."""
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        need = devices * FDS_PER_SESSION + 64
        if need > soft and need <= hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
        elif need > hard:
            raise ConfigurationError(
                f"{devices} per-device MQTT sessions need about {need} open files, the limit is {hard}: "
                "use --load (multiplexed connections) or fewer devices"
            )

    def _session(self, msg: SimMessage) -> _Session:
        session = self._sessions.get(msg.device)
        if session is None:
            will = (msg.topic(self.prefix), msg.will) if msg.will is not None else None
            password = self.password_for(msg.device) if self.password_for else None
            session = _Session(
                self.client_id_prefix + msg.device,
                self.stats,
                username=msg.device if self.password_for else self.address.username,
                password=password if self.password_for else self.address.password,
                will=will,
                inflight=100,
            )
            session.start_connect(self.address)
            self._loop.add(session)
            self._loop.wait_connected([session])
            self._sessions[msg.device] = session
            self.stats.connections += 1
        return session

    def publish(self, msg: SimMessage) -> None:
        session = self._session(msg)
        while session.outstanding >= session.window:
            self._loop.pump(0.01)
        session.publish(msg.topic(self.prefix), msg.payload, msg.retain)

    def drop(self, device: str) -> None:
        """Kill a device's connection without DISCONNECT, as a power cut would: the broker then
        publishes its Last Will."""
        session = self._sessions.pop(device, None)
        if session is None:
            return
        sock = session.client.socket()
        if sock is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._loop.selector.unregister(sock)
            sock.close()
        self._loop.sessions.remove(session)


class WireConnection:
    """A minimal MQTT 5 publishing session for load mode, written for throughput: pre-encoded QoS 1
    PUBLISH packets go out in batches (one `send` per batch), PUBACKs are parsed in bulk. paho spends
    ~100 µs per message on object churn, which would make the load generator the bottleneck.

    Implements CONNECT/CONNACK, PUBLISH (QoS 1)/PUBACK, PINGREQ and DISCONNECT; honours the broker's
    Receive Maximum as the in-flight window. Packet ids cycle; the window (≤ 65,535) guarantees that
    an id is never reused while in flight, since one connection's PUBACKs come back in order.
    """

    BATCH_BYTES = 64 * 1024

    def __init__(
        self, address: BrokerAddress, client_id: str, stats: PublishStats, *, inflight: int = LOAD_INFLIGHT
    ) -> None:
        self.client_id = client_id
        self.stats = stats
        self.window = min(inflight, 65_535)
        self.outstanding = 0
        self._pid = 0
        self._out: list[bytes] = []
        self._out_bytes = 0
        self._in = bytearray()
        self._last_send = time.monotonic()
        self.received = 0
        try:
            self.sock = socket.create_connection((address.host, address.port), timeout=CONNECT_TIMEOUT_S)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.sock.sendall(
                wire.encode_connect(
                    client_id, keepalive_s=KEEPALIVE_S, username=address.username, password=address.password
                )
            )
            self._read_connack()
            self.sock.settimeout(CLOSE_TIMEOUT_S)
        except OSError as exc:
            raise BrokerUnavailable(
                f"cannot connect to MQTT broker {address.host}:{address.port} as {client_id}: {exc}"
            ) from exc

    def _read_packet(self) -> tuple[int, bytes]:
        """Blocking read of one whole packet (CONNACK, SUBACK; PUBACKs are read in bulk)."""
        while True:
            frames, _ = wire.split_frames(self._in)
            if frames:
                first, start, stop = frames[0]
                body = bytes(self._in[start:stop])
                del self._in[:stop]
                return first >> 4, body
            chunk = self.sock.recv(65536)
            if not chunk:
                raise BrokerUnavailable(f"broker closed the connection of {self.client_id}")
            self._in += chunk

    def _read_connack(self) -> None:
        kind, body = self._read_packet()
        if kind != PacketType.CONNACK:
            raise BrokerUnavailable(f"expected CONNACK, got packet type {kind}")
        connack = wire.read_connack(body)
        if connack.refused:
            raise BrokerUnavailable(
                f"broker refused session {self.client_id}: reason code 0x{connack.reason_code:02x}"
            )
        if connack.receive_maximum:  # MQTT 5: the broker's limit on QoS 1 messages in flight to it
            self.window = min(self.window, connack.receive_maximum)

    def subscribe(self, topic_filter: str) -> None:
        """Subscribe at QoS 0 and wait for the SUBACK."""
        self.sock.sendall(wire.encode_subscribe(1, topic_filter, qos=0))
        kind, ack = self._read_packet()
        if kind != PacketType.SUBACK or any(code >= 0x80 for code in wire.read_suback(ack)[1] or [0x80]):
            raise BrokerUnavailable(f"subscription to {topic_filter!r} refused")

    def publish(self, head: bytes, tail: bytes) -> None:
        while self.outstanding >= self.window:
            self.flush()
            self.read(0.01)
        self._pid = self._pid % 65_535 + 1
        packet = head + self._pid.to_bytes(2, "big") + tail
        self._out.append(packet)
        self._out_bytes += len(packet)
        self.outstanding += 1
        self.stats.published += 1
        self.stats.bytes += len(packet)
        if self._out_bytes >= self.BATCH_BYTES:
            self.flush()

    def flush(self) -> None:
        if self._out:
            try:
                self.sock.sendall(b"".join(self._out))
            except OSError as exc:
                raise BrokerUnavailable(f"connection {self.client_id} failed: {exc}") from exc
            self._out.clear()
            self._out_bytes = 0
            self._last_send = time.monotonic()

    def read(self, timeout_s: float) -> None:
        """Read what the broker sent (PUBACKs) for up to `timeout_s`."""
        ready, _, _ = select.select([self.sock], [], [], max(0.0, timeout_s))
        if not ready:
            if time.monotonic() - self._last_send > KEEPALIVE_S / 2:
                self._out.append(wire.PINGREQ)
                self.flush()
            return
        try:
            chunk = self.sock.recv(1 << 20)
        except OSError as exc:
            raise BrokerUnavailable(f"connection {self.client_id} failed: {exc}") from exc
        if not chunk:
            raise BrokerUnavailable(f"broker closed the connection of {self.client_id}")
        buf = self._in
        buf += chunk
        frames, pos = wire.split_frames(buf)
        try:
            for first, start, stop in frames:
                kind = first >> 4
                if kind == PacketType.PUBLISH:  # to a subscriber (QoS 0: nothing to acknowledge)
                    self.received += 1
                elif kind == PacketType.PUBACK:
                    self.outstanding -= 1
                    _mid, reason = wire.read_puback(buf[start:stop])
                    if reason >= 0x80:
                        self.stats.failed += 1
                        if len(self.stats.errors) < 20:
                            self.stats.errors.append(f"{self.client_id}: PUBACK reason 0x{reason:02x}")
                    else:
                        self.stats.acked += 1
                elif kind == PacketType.DISCONNECT:  # from the broker
                    reason = wire.read_disconnect(buf[start:stop])
                    raise BrokerUnavailable(f"broker disconnected {self.client_id}: reason 0x{reason:02x}")
        finally:
            del buf[:pos]

    def close(self, timeout_s: float = CLOSE_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        with contextlib.suppress(OSError, BrokerUnavailable):
            self.flush()
            while self.outstanding > 0 and time.monotonic() < deadline:
                self.read(0.05)
            self.sock.sendall(wire.DISCONNECT)
        self.sock.close()


class LoadPublisher:
    """A few multiplexed connections (`WireConnection`); `publish` only waits when a connection's
    in-flight window is full. A device always goes through the same connection (order kept)."""

    def __init__(
        self,
        url: str,
        prefix: str,
        *,
        connections: int = 4,
        inflight: int = LOAD_INFLIGHT,
        client_id_prefix: str = "yiju-sim-load",
    ) -> None:
        if connections < 1:
            raise ConfigurationError("load mode needs at least one connection")
        self.address = plain_address(url)
        self.prefix = prefix
        self.stats = PublishStats()
        self._conns: list[WireConnection] = []
        try:
            for i in range(connections):
                self._conns.append(
                    WireConnection(self.address, f"{client_id_prefix}-{i}", self.stats, inflight=inflight)
                )
        except BaseException:
            self.close(timeout_s=0)
            raise
        self.stats.connections = connections

    def _route(self, device: str) -> WireConnection:
        return self._conns[zlib.crc32(device.encode()) % len(self._conns)]

    def publish_encoded(self, device: str, head: bytes, tail: bytes) -> None:
        self._route(device).publish(head, tail)

    def publish_raw(self, device: str, topic: str, payload: bytes, retain: bool = False) -> None:
        self.publish_encoded(device, *encode_publish(topic, payload, retain=retain))

    def publish(self, msg: SimMessage) -> None:
        self.publish_raw(msg.device, msg.topic(self.prefix), msg.payload, msg.retain)

    def pump(self, timeout_s: float = 0.0) -> None:
        """Send what is batched and read acknowledgements for up to `timeout_s`."""
        for c in self._conns:
            c.flush()
        per = timeout_s / len(self._conns) if self._conns else timeout_s
        for c in self._conns:
            c.read(per)

    def close(self, timeout_s: float = CLOSE_TIMEOUT_S) -> None:
        for c in self._conns:
            c.close(timeout_s)
        self._conns.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


# --------------------------------------------------------------------------------------------------
# Load mode across processes: one Python process saturates at some tens of thousands of messages
# per second, so the load run spreads pre-serialised messages over worker processes.

Prepared = list[tuple[str, bytes, bytes]]  # (device, head, tail) from `encode_publish`


@dataclass(frozen=True, slots=True)
class LoadResult:
    stats: PublishStats
    elapsed_s: float  # from the common start to the last acknowledgement of the slowest worker

    @property
    def rate(self) -> float:
        return self.stats.acked / self.elapsed_s if self.elapsed_s > 0 else 0.0


@dataclass(frozen=True, slots=True)
class _Job:
    url: str
    prefix: str
    prepare: Callable[[int], Prepared]
    index: int
    connections: int


def _load_worker(job: _Job, barrier: Any, results: Any) -> None:
    url, prefix, prepare, index, connections = job.url, job.prefix, job.prepare, job.index, job.connections
    stats = PublishStats()
    started = finished = 0.0
    try:
        messages = prepare(index)
        with LoadPublisher(
            url, prefix, connections=connections, client_id_prefix=f"yiju-sim-load-{index}"
        ) as pub:
            barrier.wait()
            started = time.monotonic()
            for device, head, tail in messages:
                pub.publish_encoded(device, head, tail)
            deadline = time.monotonic() + CLOSE_TIMEOUT_S
            while pub.stats.in_flight > 0 and time.monotonic() < deadline:
                pub.pump(0.01)
            finished = time.monotonic()
            stats = pub.stats
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises it
        stats.errors.append(f"worker {index}: {type(exc).__name__}: {exc}")
        with contextlib.suppress(Exception):
            barrier.abort()
    results.put((index, stats, started, finished))


def run_load(
    url: str,
    prefix: str,
    prepare: Callable[[int], Prepared],
    *,
    processes: int,
    connections_per_process: int = 1,
    timeout_s: float = 600.0,
) -> LoadResult:
    """Publish `prepare(i)` from worker process i (for i < processes), all starting together once
    every worker has prepared its messages and connected. `prepare` must be a picklable top-level
    function. The workers are joined (or terminated on error) before this returns."""
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(processes + 1)
    results = ctx.Queue()
    workers = [
        ctx.Process(
            target=_load_worker,
            args=(_Job(url, prefix, prepare, i, connections_per_process), barrier, results),
            name=f"yiju-sim-load-{i}",
        )
        for i in range(processes)
    ]
    for w in workers:
        w.start()
    try:
        # a worker that failed aborts the barrier; its error arrives with the results below
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait(timeout=timeout_s)
        t0 = time.monotonic()
        total = PublishStats()
        last = t0
        for _ in workers:
            _index, stats, _started, finished = results.get(timeout=timeout_s)
            total.add(stats)
            last = max(last, finished)
        for w in workers:
            w.join(timeout=CLOSE_TIMEOUT_S)
    finally:
        for w in workers:
            if w.is_alive():
                w.terminate()
                w.join()
    if total.errors and total.acked == 0:
        raise BrokerUnavailable("; ".join(total.errors[:3]))
    return LoadResult(stats=total, elapsed_s=max(last - t0, 1e-9))


# --------------------------------------------------------------------------------------------------
# A bare subscriber


def drain_count(
    url: str, topic_filter: str, expected: int, *, timeout_s: float, ready: Any = None
) -> tuple[int, float]:
    """A bare QoS 0 subscriber: count messages until `expected` arrived or `timeout_s` passed;
    returns (count, seconds from the first message to the last). `ready` (an Event) is set once
    the subscription is acknowledged."""
    stats = PublishStats()
    conn = WireConnection(plain_address(url), f"yiju-drain-{time.monotonic_ns()}", stats)
    first = last = 0.0
    try:
        conn.subscribe(topic_filter)
        if ready is not None:
            ready.set()
        deadline = time.monotonic() + timeout_s
        while conn.received < expected and time.monotonic() < deadline:
            before = conn.received
            conn.read(0.05)
            if conn.received != before:
                last = time.monotonic()
                if before == 0:
                    first = last
    finally:
        conn.close(timeout_s=0)
    return conn.received, last - first


def publish_all(publisher: DevicePublisher | LoadPublisher, messages: Iterable[SimMessage]) -> None:
    """Publish without pacing (tests, load)."""
    for m in messages:
        publisher.publish(m)
        publisher.pump(0)
