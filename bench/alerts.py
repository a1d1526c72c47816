"""Alert engine benchmark: one command, three figures.

    .venv/bin/python bench/alerts.py [--seconds 10] [--rate 2000] [--devices 7000]

1. rule-core throughput: messages/s evaluated by the pure core on one core (no I/O), and what the
   timers cost: a tick scanning every device vs the heap's per-message `next_due`;
2. rule-state memory per device after typical traffic (tracemalloc) and its JSON size;
3. publish-to-alarm-persisted latency p50/p99: probe events (access-door forced-open, one alarm
   update each) published to the real broker while background telemetry flows at `--rate` msg/s,
   through ingest into the engine service, timed until the engine's bus reports the alarm committed.

Services: the test harness's private PostgreSQL and Mosquitto (or YIJU_TEST_DATABASE_URL /
YIJU_TEST_MQTT_URL). Target (issue 5): p99 ≤ 50 ms at 2,000 msg/s; ≤ 2 KB state per device.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import sys
import threading
import time
import tracemalloc
from collections import deque
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from harness import start_services  # noqa: E402
from ingest_support import Msg, Publisher, register_fleet  # noqa: E402

from alerts.config import AlertSettings  # noqa: E402
from alerts.core import engine  # noqa: E402
from alerts.core.model import DeviceContext, DeviceState  # noqa: E402
from alerts.service import AlertService, EngineEvent  # noqa: E402
from devices import catalog, samples  # noqa: E402
from devices.contract import Channel, Decoded, DeviceRef, Family, topic  # noqa: E402
from ingest.service import IngestService  # noqa: E402
from storage.alarms import AlarmChange  # noqa: E402
from storage.migrate import migrate  # noqa: E402
from yiju.settings import DatabaseSettings, MqttSettings, Settings  # noqa: E402

T0 = datetime(2026, 6, 1, tzinfo=UTC)


def _decoded(
    family: Family, device_id: int, seq: int, ts: datetime, channel: Channel, index: int = 0
) -> Decoded:
    raw = samples.payload(family, channel, device=f"d{device_id}", seq=seq, ts=ts.isoformat(), index=index)
    body = catalog.decode(family, channel, raw)
    return Decoded(DeviceRef(device_id, f"d{device_id}", "c1", 1, family), channel, ts, seq, ts, body, raw)


def core_figures(devices: int) -> dict[str, float]:
    th = AlertSettings()
    families = list(Family)
    ctxs = [
        DeviceContext(i, f"d{i}", 1, families[i % len(families)], building_id=i % 40) for i in range(devices)
    ]
    # a compound's traffic: mostly telemetry, some events, for every device
    msgs: list[tuple[DeviceContext, Decoded]] = []
    for rnd in range(3):
        for ctx in ctxs:
            ts = T0 + timedelta(seconds=60 * rnd + ctx.device_id % 60)
            channel = Channel.EVENT if rnd == 2 and ctx.device_id % 10 == 0 else Channel.TELEMETRY
            msgs.append((ctx, _decoded(ctx.family, ctx.device_id, rnd + 1, ts, channel)))
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    states = {c.device_id: DeviceState() for c in ctxs}
    start = time.perf_counter()
    for ctx, msg in msgs:
        engine.evaluate(ctx, states[ctx.device_id], msg, th)
    elapsed = time.perf_counter() - start
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    state_bytes = sum(
        s.size_diff for s in after.compare_to(before, "filename") if "alerts" in s.traceback[0].filename
    )
    json_sizes = [len(json.dumps(s.to_json())) for s in states.values()]
    # throughput without tracemalloc's overhead
    states = {c.device_id: DeviceState() for c in ctxs}
    start = time.perf_counter()
    for ctx, msg in msgs:
        engine.evaluate(ctx, states[ctx.device_id], msg, th)
    fast = time.perf_counter() - start
    # timers: what a per-second tick costs scanning every device (the old loop) vs the heap's
    # bookkeeping (`next_due` after each evaluation; a tick then pops only the due devices)
    now = (T0 + timedelta(seconds=200)).timestamp()
    start = time.perf_counter()
    for ctx in ctxs:
        engine.tick(ctx, states[ctx.device_id], now, th)
    scan = time.perf_counter() - start
    start = time.perf_counter()
    for ctx in ctxs:
        engine.next_due(ctx, states[ctx.device_id], th)
    due = time.perf_counter() - start
    return {
        "core_msgs_per_s": len(msgs) / fast,
        "core_msgs_per_s_traced": len(msgs) / elapsed,
        "state_bytes_per_device": state_bytes / devices,
        "state_json_bytes_mean": statistics.fmean(json_sizes),
        "state_json_bytes_max": max(json_sizes),
        "full_scan_tick_ms_per_7000_devices": 1000 * scan * 7000 / devices,
        "next_due_us_per_message": 1e6 * due / devices,
    }


_achieved = mp.get_context("fork").Value("d", 0.0)


def _background(
    url: str, prefix: str, devices: list[tuple[Family, str]], rate: float, seconds: float
) -> None:
    """Telemetry from `devices` at `rate` msg/s for `seconds` (a child process)."""
    pub = Publisher(url, "bench-load")
    payloads = [(topic(prefix, "c1", uid, Channel.TELEMETRY), family, uid) for family, uid in devices]
    start = time.perf_counter()
    n = 0
    seq = 1_000_000
    while time.perf_counter() - start < seconds:
        target = start + n / rate
        delay = target - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        name, family, uid = payloads[n % len(payloads)]
        raw = samples.payload(
            family, Channel.TELEMETRY, device=uid, seq=seq, ts=datetime.now(UTC).isoformat()
        )
        pub.client.publish(name, raw, qos=1)
        seq += 1
        n += 1
    _achieved.value = n / (time.perf_counter() - start)
    pub.close()


def latency_figures(seconds: float, rate: float) -> dict[str, float]:
    svc = start_services()
    try:
        db_url = svc.create_database()
        migrate(db_url, DatabaseSettings())
        prefix = "bench"
        settings = Settings(
            database=DatabaseSettings(url=db_url),
            mqtt=MqttSettings(url=svc.mqtt_url, topic_prefix=prefix, client_id="bench-ingest"),
        )
        fleet = register_fleet(db_url, per_family=30)
        probes = fleet[Family.ACCESS_DOOR]
        sent: dict[str, deque[float]] = {uid: deque() for uid in probes}
        latencies: list[float] = []
        engine_part: list[float] = []  # ingest received → alarm committed and on the bus
        lock = threading.Lock()

        def on_event(ev: EngineEvent) -> None:
            if ev.kind != "alarm" or not isinstance(ev.payload, AlarmChange):
                return
            if ev.payload.alarm.type != "door_forced_open":
                return
            now = time.perf_counter()
            if ev.received_at is not None:
                engine_part.append((datetime.now(UTC) - ev.received_at).total_seconds())
            with lock:
                q = sent.get(ev.payload.alarm.device_uid)
                if q:
                    latencies.append(now - q.popleft())

        engine_svc = AlertService(db_url, settings.alerts)
        engine_svc.subscribe(on_event)
        ingest = IngestService(settings, database_url=db_url, mqtt_url=svc.mqtt_url, sink=engine_svc)
        engine_svc.start()
        ingest.start()
        pub = Publisher(svc.mqtt_url, "bench-pub")
        background = [(f, uid) for f, uids in fleet.items() if f is not Family.ACCESS_DOOR for uid in uids]
        # the background load comes from another process, as devices do (not through this one's GIL)
        loader = mp.get_context("fork").Process(
            target=_background, args=(svc.mqtt_url, prefix, background, rate, seconds + 1.0)
        )
        loader.start()
        time.sleep(1.0)  # let the load reach its rate
        seq = 1
        start = time.perf_counter()
        n = 0
        probes_per_s = 20.0
        try:
            while time.perf_counter() - start < seconds:
                target = start + n / probes_per_s
                delay = target - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                ts = datetime.now(UTC).isoformat()
                uid = probes[n % len(probes)]
                raw = samples.payload(Family.ACCESS_DOOR, Channel.EVENT, device=uid, seq=seq, ts=ts, index=2)
                with lock:
                    sent[uid].append(time.perf_counter())
                pub.publish([Msg(topic(prefix, "c1", uid, Channel.EVENT), raw, 0, "device_events")])
                seq += 1
                n += 1
            loader.join(30)
            achieved = _achieved.value
            engine_svc.wait_idle(30)
            time.sleep(0.5)
        finally:
            if loader.is_alive():
                loader.terminate()
            pub.close()
            ingest.stop()
            engine_svc.stop()
        lat = sorted(latencies)
        if not lat:
            return {"achieved_rate": achieved, "probes": 0}
        return {
            "achieved_rate": achieved,
            "probes": len(lat),
            "p50_ms": 1000 * lat[len(lat) // 2],
            "p99_ms": 1000 * lat[min(len(lat) - 1, int(len(lat) * 0.99))],
            "max_ms": 1000 * lat[-1],
            "engine_dropped": engine_svc.stats.dropped,
            "received_to_persisted_p50_ms": 1000 * statistics.median(engine_part) if engine_part else -1,
            "received_to_persisted_p99_ms": 1000 * sorted(engine_part)[int(len(engine_part) * 0.99)]
            if engine_part
            else -1,
        }
    finally:
        svc.stop()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--rate", type=float, default=2000.0)
    p.add_argument("--devices", type=int, default=7000)
    p.add_argument("--skip-latency", action="store_true")
    args = p.parse_args()
    figures = core_figures(args.devices)
    for k, v in figures.items():
        print(f"{k:32} {v:12.1f}")
    if not args.skip_latency:
        for k, v in latency_figures(args.seconds, args.rate).items():
            print(f"{k:32} {v:12.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
