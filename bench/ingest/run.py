# ruff: noqa: TID251, PLC0415, E501 - a benchmark drives paho directly and imports lazily in child processes
"""Ingest benchmark: one command, three measurements on private PostgreSQL + Mosquitto.

    .venv/bin/python bench/ingest/run.py [--duration 60] [--rate 20000] [--workers 1] [--devices 2000]

(a) broker ceiling: pre-serialised QoS 1 publishers → a bare paho subscriber (QoS 1, auto-ack);
(b) database ceiling: IngestWriter.write of the same rows in batches (binary COPY, one commit each);
(c) end to end: publishers at --rate for --duration s → `yiju ingest` → committed rows; msg/s,
    points/s, p50/p99 publish-to-commit lag (from ingest's histogram), CPU and peak RSS per process.
Prints a Markdown block for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion  # noqa: E402

from devices import samples  # noqa: E402
from devices.catalog import decode, points_of  # noqa: E402
from devices.contract import Channel, Family, topic  # noqa: E402
from storage.db import connection  # noqa: E402
from storage.ingest_writer import IngestWriter, TelemetryRow, WriteBatch  # noqa: E402
from yiju.settings import DatabaseSettings  # noqa: E402

PREFIX = "bench"
COMMUNITY = "bench1"
# device mix of a mid-size compound (share of devices per family)
MIX = {
    Family.SMOKE_ALARM: 0.40,
    Family.LIGHT: 0.18,
    Family.EBIKE_CHARGER: 0.10,
    Family.ACCESS_DOOR: 0.10,
    Family.CCTV_RECORDER: 0.08,
    Family.GAS_ALARM: 0.08,
    Family.ELEVATOR: 0.06,
}
EVENT_SHARE = 0.05
TS_MARK = "2000-01-01T00:00:00.000000+00:00"
SEQ_MARK = 987654321987


def fleet(n: int) -> list[tuple[Family, str]]:
    out: list[tuple[Family, str]] = []
    for family, share in MIX.items():
        out += [(family, f"{family.value[:5]}-{i}") for i in range(max(1, int(n * share)))]
    return out


def register(db_url: str, devices: list[tuple[Family, str]]) -> None:
    with connection(db_url) as conn:
        cid = conn.execute(
            "INSERT INTO communities (code, name) VALUES (%s, %s) RETURNING id", (COMMUNITY, COMMUNITY)
        ).fetchone()[0]
        with conn.cursor().copy("COPY devices (uid, community_id, family) FROM STDIN") as cp:
            for family, uid in devices:
                cp.write_row((uid, cid, family.value))
        conn.commit()


def templates(devices: list[tuple[Family, str]]) -> list[tuple[str, bytes, bytes, bytes, int]]:
    """(topic, before-ts, between ts and seq, after-seq, points) per message kind of each device."""
    out = []
    for family, uid in devices:
        kinds = [Channel.TELEMETRY] * int(1 / EVENT_SHARE - 1)
        if samples.EVENTS[family]:
            kinds.append(Channel.EVENT)
        for ch in kinds:
            p = samples.payload(family, ch, device=uid, seq=SEQ_MARK, ts=TS_MARK)
            n_points = len(points_of(family, decode(family, ch, p))) if ch is Channel.TELEMETRY else 0
            a, rest = p.split(TS_MARK.encode())
            b, c = rest.split(str(SEQ_MARK).encode())
            out.append((topic(PREFIX, COMMUNITY, uid, ch), a, b, c, n_points))
    return out


def publisher(
    url: str, idx: int, n_proc: int, rate: float, duration: float, total: mp.Value, devices_n: int
) -> None:
    """Publish this process's share of `rate` for `duration` s, QoS 1, fresh ts and seq each time."""
    from ingest.mqtt_adapter import parse_mqtt_url

    addr = parse_mqtt_url(url)
    tpl = templates(fleet(devices_n))
    c = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{idx}", protocol=MQTTProtocolVersion.MQTTv5
    )
    c.max_inflight_messages_set(1000)
    c.max_queued_messages_set(0)
    c.connect(addr.host, addr.port)
    c.loop_start()
    my_rate = rate / n_proc
    t0 = time.monotonic()
    seq = idx * 10**12
    i = idx
    sent = 0
    while True:
        el = time.monotonic() - t0
        if el >= duration:
            break
        target = int(el * my_rate) + 200
        # keep at most one in-flight window outstanding: paho rescans its whole queue on every PUBACK
        while sent < target and len(c._out_messages) < 1000:
            t, a, b, cc, _ = tpl[i % len(tpl)]
            i += n_proc
            seq += 1
            ts = datetime.now(UTC).isoformat(timespec="microseconds").encode()
            c.publish(t, a + ts + b + str(seq).encode() + cc, qos=1)
            sent += 1
        time.sleep(0.001)
    while len(c._out_messages) > 0:  # wait for the broker's PUBACKs
        time.sleep(0.05)
    c.disconnect()
    c.loop_stop()
    with total.get_lock():
        total.value += sent


def run_publishers(url: str, procs: int, rate: float, duration: float, devices_n: int) -> tuple[int, float]:
    total = mp.Value("q", 0)
    ps = [
        mp.Process(target=publisher, args=(url, i, procs, rate, duration, total, devices_n))
        for i in range(procs)
    ]
    t0 = time.monotonic()
    for p in ps:
        p.start()
    for p in ps:
        p.join()
    return int(total.value), time.monotonic() - t0


# --- (a) broker ceiling -------------------------------------------------------------------------


def broker_ceiling(url: str, procs: int, seconds: float, devices_n: int) -> float:
    """Publishers flat out for `seconds`; the bare subscriber's receive rate (first to last message)."""
    from ingest.mqtt_adapter import parse_mqtt_url

    addr = parse_mqtt_url(url)
    got = 0
    stamps: list[float] = [0.0, 0.0]

    def on_message(c, u, m) -> None:
        nonlocal got
        now = time.monotonic()
        if not got:
            stamps[0] = now
        stamps[1] = now
        got += 1

    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-sub", protocol=MQTTProtocolVersion.MQTTv5)
    sub.on_message = on_message
    sub.connect(addr.host, addr.port)
    sub.subscribe(f"{PREFIX}/v1/+/+/+", qos=1)
    sub.loop_start()
    time.sleep(0.5)
    run_publishers(url, procs, 10**6, seconds, devices_n)
    last = -1
    while got != last:  # drain
        last = got
        time.sleep(1.0)
    sub.disconnect()
    sub.loop_stop()
    return got / max(1e-6, stamps[1] - stamps[0])


# --- (b) database ceiling -----------------------------------------------------------------------


def db_ceiling(db_url: str, devices_n: int, n_msgs: int, batch: int) -> tuple[float, float]:
    tpl = [t for t in templates(fleet(devices_n)) if t[4] > 0]
    devs = {}
    with connection(db_url) as conn:
        for uid, did in conn.execute("SELECT uid, id FROM devices").fetchall():
            devs[uid] = did
    rows: list[TelemetryRow] = []
    now = datetime.now(UTC)
    for i in range(n_msgs):
        t, a, b, c, _ = tpl[i % len(tpl)]
        uid = t.split("/")[3]
        family = Family(next(f for f in Family if uid.startswith(f.value[:5])))
        body = a + now.isoformat().encode() + b + str(i).encode() + c
        msg = decode(family, Channel.TELEMETRY, body)
        pts = tuple(points_of(family, msg))
        rows.append(TelemetryRow(now, devs[uid], i, now, body, pts))
    w = IngestWriter(db_url, DatabaseSettings())
    n_points = sum(len(r.points) for r in rows)
    t0 = time.perf_counter()
    for k in range(0, len(rows), batch):
        w.write(WriteBatch(telemetry=rows[k : k + batch]))
    el = time.perf_counter() - t0
    w.close()
    return n_msgs / el, n_points / el


# --- (c) end to end ------------------------------------------------------------------------------


def _cpu_s(pid: int) -> float:
    try:
        parts = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0


def _hwm_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _children(pid: int) -> list[int]:
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if int((p / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(p.name))
            except (OSError, ValueError, IndexError):
                pass
    return out


def _histogram(port: int, name: str) -> list[tuple[float, float]]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out = []
    for line in text.splitlines():
        if line.startswith(f"{name}_bucket"):
            le = line.split('le="')[1].split('"')[0]
            out.append((float("inf") if le == "+Inf" else float(le), float(line.rsplit(" ", 1)[1])))
    return out


def _quantile(buckets: list[tuple[float, float]], q: float) -> float:
    total = buckets[-1][1] if buckets else 0
    if not total:
        return float("nan")
    prev_le, prev_c = 0.0, 0.0
    for le, c in buckets:
        if c >= q * total:
            if le == float("inf"):
                return prev_le
            return prev_le + (le - prev_le) * ((q * total - prev_c) / max(1e-9, c - prev_c))
        prev_le, prev_c = le, c
    return prev_le


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--rate", type=float, default=20_000.0)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--publishers", type=int, default=2)
    ap.add_argument("--devices", type=int, default=2000)
    ap.add_argument("--ceiling-messages", type=int, default=200_000)
    args = ap.parse_args()

    from harness import start_services

    services = start_services()
    results: dict[str, object] = {}
    try:
        db_url = services.create_database(None)
        devices = fleet(args.devices)
        register(db_url, devices)
        print(f"fleet: {len(devices)} devices; storage mode {services.default_mode}", flush=True)

        rate_a = broker_ceiling(services.mqtt_url, args.publishers, 10.0, args.devices)
        print(f"(a) broker ceiling: {rate_a:,.0f} msg/s", flush=True)
        db_b = services.create_database(None)
        register(db_b, devices)
        rate_b, pts_b = db_ceiling(db_b, args.devices, min(args.ceiling_messages, 100_000), 2000)
        print(f"(b) database ceiling: {rate_b:,.0f} msg/s ({pts_b:,.0f} points/s)", flush=True)

        port = 19108
        env = {k: v for k, v in os.environ.items() if not k.startswith("YIJU_")}
        env.update(
            YIJU_DATABASE__URL=db_url,
            YIJU_MQTT__URL=services.mqtt_url,
            YIJU_MQTT__TOPIC_PREFIX=PREFIX,
            YIJU_INGEST__METRICS_PORT=str(port),
            YIJU_LOG_LEVEL="WARNING",
        )
        cmd = [sys.executable, "-m", "yiju.cli", "ingest", "--workers", str(args.workers)]
        ingest = subprocess.Popen(cmd, cwd=ROOT, env=env)
        time.sleep(3.0)
        pids = [ingest.pid, *_children(ingest.pid)] if args.workers > 1 else [ingest.pid]
        cpu0 = {p: _cpu_s(p) for p in pids}
        mq_pid = services.broker._proc.pid if services.broker and services.broker._proc else 0
        pg_pids = _children(services.postgres.postmaster_pid() or 0) if services.postgres else []
        other0 = (_cpu_s(mq_pid), sum(_cpu_s(p) for p in pg_pids))
        t0 = time.monotonic()
        sent, pub_s = run_publishers(
            services.mqtt_url, args.publishers, args.rate, args.duration, args.devices
        )
        with connection(db_url) as conn:

            def stored() -> int:
                r = conn.execute(
                    "SELECT (SELECT count(*) FROM telemetry) + (SELECT count(*) FROM device_events)"
                )
                conn.commit()
                return int(r.fetchone()[0])

            deadline = time.monotonic() + 120
            while stored() < sent and time.monotonic() < deadline:
                time.sleep(0.2)
            el = time.monotonic() - t0
            n = stored()
            pts = conn.execute("SELECT count(*) FROM points").fetchone()[0]
            dls = conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0]
        pids_now = [ingest.pid, *_children(ingest.pid)] if args.workers > 1 else [ingest.pid]
        cpu = sum(_cpu_s(p) - cpu0.get(p, 0.0) for p in pids_now)
        hwm = max(_hwm_mb(p) for p in pids_now)
        mq_cpu = _cpu_s(mq_pid) - other0[0]
        pg_cpu = (
            sum(_cpu_s(p) for p in _children(services.postgres.postmaster_pid() or 0)) - other0[1]
            if services.postgres
            else 0.0
        )
        lag = []
        for w in range(args.workers):
            lag += _histogram(port + w, "yiju_ingest_publish_to_commit_seconds") if w == 0 else []
        ingest.terminate()
        ingest.wait(30)
        rate_c = n / el
        results = {
            "sent": sent,
            "stored": n,
            "lost": sent - n,
            "dead_letters": dls,
            "seconds": round(el, 1),
            "publish_seconds": round(pub_s, 1),
            "msg_per_s": round(rate_c),
            "points_per_s": round(pts / el),
            "p50_lag_s": round(_quantile(lag, 0.5), 3),
            "p99_lag_s": round(_quantile(lag, 0.99), 3),
            "ingest_cpu_cores": round(cpu / el, 2),
            "ingest_peak_rss_mb": round(hwm, 1),
            "mosquitto_cpu_cores": round(mq_cpu / el, 2),
            "postgres_cpu_cores": round(pg_cpu / el, 2),
            "broker_ceiling": round(rate_a),
            "db_ceiling": round(rate_b),
            "db_ceiling_points": round(pts_b),
            "ratio_c_to_min_ab": round(rate_c / min(rate_a, rate_b), 2),
        }
        print(json.dumps(results, indent=2))
        print(
            f"\n| run | msg/s | points/s | p50 lag | p99 lag | ingest CPU | ingest peak RSS | lost |\n|---|---|---|---|---|---|---|---|\n"
            f"| (a) broker only | {rate_a:,.0f} | | | | | | |\n| (b) DB COPY only | {rate_b:,.0f} | {pts_b:,.0f} | | | | | |\n"
            f"| (c) end to end, offered {args.rate:,.0f}/s for {args.duration:.0f} s, {args.workers} worker(s) | {rate_c:,.0f} | "
            f"{pts / el:,.0f} | {results['p50_lag_s']} s | {results['p99_lag_s']} s | {cpu / el:.2f} cores | {hwm:.0f} MB | {sent - n} |\n"
            f"\n(c)/min(a,b) = {results['ratio_c_to_min_ab']}"
        )
    finally:
        services.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
