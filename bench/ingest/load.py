"""Load for the ingest benchmark: the simulator's typical-compound traffic, re-stamped at publish time.

The simulator (`simulators.behaviour.background`) produces the realistic family mix of a typical
compound. Each message is split around its `ts` value once; at publish time the current wall-clock
instant is put in, so ingest's publish-to-commit histogram measures the real lag. The stream is
replayed in a loop; a replay carries new timestamps, so its natural keys (device, ts, seq) are new.

Publishing uses the simulator's raw-socket `WireConnection` (pre-encoded QoS 1 PUBLISH packets in
64 KiB batches, bulk PUBACK parsing): a paho publisher would be the bottleneck.
"""

from __future__ import annotations

import itertools
import select
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from devices import mqtt_wire as wire
from devices.catalog import decode, points_of
from devices.contract import Channel
from simulators import behaviour
from simulators.compound import Fleet, Size, generate_fleet
from simulators.mqtt_publisher import PublishStats, WireConnection, plain_address

CST = timezone(timedelta(hours=8))
TS_LEN = len(datetime.now(CST).isoformat(timespec="microseconds"))
TS_KEY = b'"ts":"'


@dataclass(frozen=True, slots=True)
class Template:
    """A PUBLISH packet minus its packet id and timestamp: head + pid + pre + ts + post."""

    head: bytes
    pre: bytes
    post: bytes
    table: str  # telemetry | device_events
    points: int


def bench_fleet(compounds: int, seed: int = 7) -> Fleet:
    return generate_fleet(Size.TYPICAL, compounds, seed, prefix="bench")


def templates(fleet: Fleet, prefix: str, n: int) -> list[Template]:
    """The first `n` messages of the fleet's normal traffic, as re-stampable PUBLISH templates."""
    start = datetime.now(UTC) - timedelta(days=1)
    family_of = {d.uid: d.family for d in fleet.devices}
    out: list[Template] = []
    for m in itertools.islice(behaviour.fleet_background(fleet, start, None), n):
        i = m.payload.index(TS_KEY) + len(TS_KEY)
        j = m.payload.index(b'"', i)
        a, b = m.payload[:i], m.payload[j:]
        topic = m.topic(prefix)
        head = wire.publish_head(topic, len(a) + TS_LEN + len(b))
        pts = 0
        if m.channel is Channel.TELEMETRY:
            pts = len(points_of(family_of[m.device], decode(family_of[m.device], m.channel, m.payload)))
        table = "telemetry" if m.channel is Channel.TELEMETRY else "device_events"
        out.append(Template(head, b"\x00" + a, b, table, pts))
    return out


@dataclass
class PublishReport:
    sent: int = 0
    acked: int = 0
    failed: int = 0
    seconds: float = 0.0
    max_behind_s: float = 0.0  # how far the publisher fell behind its schedule (paced runs)
    points: int = 0
    errors: list[str] | None = None


TICK_S = 0.002


def publish(
    url: str,
    tpl: list[Template],
    *,
    rate: float | None,
    duration_s: float,
    start_at: float,
    connections: int = 1,
    report: Any = None,
    ready: Any = None,
    go: Any = None,
) -> PublishReport:
    """Publish for `duration_s` from the epoch instant `start_at` (or once `go` is set, after
    setting `ready`), at `rate` msg/s (None: as fast as the broker's in-flight window allows).
    Puts the report on the `report` queue if given."""
    stats = PublishStats()
    address = plain_address(url)
    conns = [
        WireConnection(address, f"bench-pub-{time.monotonic_ns()}-{k}", stats) for k in range(connections)
    ]
    rep = PublishReport()
    n_tpl = len(tpl)
    i = 0
    pts = 0
    if ready is not None:  # connected and prepared: the caller starts its meters, then says go
        ready.set()
        go.wait()
        start_at = time.time()
    while time.time() < start_at:
        time.sleep(0.001)
    t0 = time.monotonic()
    end = t0 + duration_s
    try:
        while True:
            now = time.monotonic()
            if now >= end:
                break
            target = int((now - t0) * rate) if rate else i + 512
            if rate and i < target - rate * TICK_S:
                rep.max_behind_s = max(rep.max_behind_s, (target - i) / rate)
            ts = datetime.now(CST).isoformat(timespec="microseconds").encode()
            while i < target:
                t = tpl[i % n_tpl]
                c = conns[i % connections] if connections > 1 else conns[0]
                c.publish(t.head, t.pre + ts + t.post)
                pts += t.points
                i += 1
            for c in conns:
                c.flush()
                c.read(0)
            if rate:
                ahead = t0 + (i + 1) / rate - time.monotonic()
                if ahead > 0:
                    time.sleep(min(ahead, TICK_S))
        rep.seconds = time.monotonic() - t0
        deadline = time.monotonic() + 600
        for c in conns:
            c.flush()
        while stats.in_flight > 0 and time.monotonic() < deadline:
            for c in conns:
                c.read(0.01)
    finally:
        for c in conns:
            c.close(5.0)
    rep.sent, rep.acked, rep.failed, rep.points = stats.published, stats.acked, stats.failed, pts
    rep.errors = stats.errors[:5]
    if report is not None:
        report.put(rep)
    return rep


def expected_totals(tpl: list[Template], sent: int) -> tuple[int, int, int]:
    """(telemetry rows, device_events rows, points rows) of the first `sent` messages of the loop."""
    full, rest = divmod(sent, len(tpl))
    tel = ev = pts = 0
    for k, t in enumerate(tpl):
        reps = full + (1 if k < rest else 0)
        if t.table == "telemetry":
            tel += reps
            pts += reps * t.points
        else:
            ev += reps
    return tel, ev, pts


def drain_qos1(url: str, topic_filter: str, *, quiet_s: float, ready: Any, result: Any) -> None:
    """A bare QoS 1 subscriber on a raw socket (PUBACKs sent in bulk, no processing): the broker's
    delivery ceiling without a Python MQTT client's per-message cost. Stops after `quiet_s` without
    a message; puts (count, first, last) (monotonic) on `result`."""
    address = plain_address(url)
    sock = socket.create_connection((address.host, address.port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(
        wire.encode_connect(f"bench-drain-{time.monotonic_ns()}", keepalive_s=60, receive_maximum=65_535)
    )
    buf = bytearray()
    got, first, last = 0, 0.0, 0.0
    state = "connack"
    idle_since = time.monotonic()
    try:
        while True:
            r, _, _ = select.select([sock], [], [], 0.05)
            now = time.monotonic()
            if not r:
                if got and now - idle_since > quiet_s:
                    break
                continue
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            buf += chunk
            acks = []
            frames, pos = wire.split_frames(buf)
            for head, start, stop in frames:
                kind = head >> 4
                if kind == wire.PacketType.PUBLISH:
                    acks.append(wire.read_publish(buf, head, start, stop)[2])
                elif kind == wire.PacketType.CONNACK and state == "connack":
                    state = "suback"
                    sock.sendall(wire.encode_subscribe(1, topic_filter, qos=1))
                elif kind == wire.PacketType.SUBACK:
                    ready.set()
            del buf[:pos]
            if acks:
                if not got:
                    first = now
                got += len(acks)
                last = idle_since = now
                sock.sendall(wire.encode_pubacks(acks))
    finally:
        sock.close()
    result.put((got, first, last))
