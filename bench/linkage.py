"""Emergency linkage benchmark: one command, three figures (issue 11).

    .venv/bin/python bench/linkage.py [--seconds 30] [--rate 2000] [--storm 1000] [--gbt-runs 5]

1. alarm committed → first notification attempt started (p50/p99/max), while background telemetry
   flows at `--rate` msg/s from another process through the real broker, ingest and the alert
   engine. Probe alarms are raised through storage.alarms (what the engine does) on fresh devices,
   10 per second, each starting an incident whose first step is a signed webhook to a local receiver;
   "started" is the incident's first_attempt_at (the claim), "received" the receiver's arrival.
   Target: p99 ≤ 1 s.
2. GB/T 26875.3 alarm frame confirmed by the centre when the first frame is lost: `--gbt-runs`
   sends against the test centre dropping the first frame; default 3 s confirm timeout.
   Target: ≤ 10 s including the resend.
3. alarm storm: `--storm` incidents at once, two workers (8 senders each) on one database, half
   acknowledged right after raising; every delivery exactly once (receiver's idempotency keys), no
   claim of an acknowledged incident after its acknowledgement committed, time to drain.

Services: the test harness's private PostgreSQL and Mosquitto.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from harness import start_services  # noqa: E402
from ingest_support import register_fleet  # noqa: E402
from linkage_support import centre, webhook_receiver  # noqa: E402

from alerts.escalation.channels import gbt26875 as gbt  # noqa: E402
from alerts.escalation.channels.base import Attempt  # noqa: E402
from alerts.escalation.channels.http import WebhookChannel  # noqa: E402
from alerts.escalation.config import LinkageSettings  # noqa: E402
from alerts.escalation.process import WorkerProcess  # noqa: E402
from alerts.escalation.worker import EscalationWorker  # noqa: E402
from alerts.service import AlertService  # noqa: E402
from bench.alerts import _achieved, _background  # noqa: E402
from devices.contract import Family  # noqa: E402
from ingest.service import IngestService  # noqa: E402
from storage import alarms  # noqa: E402
from storage import escalation as store  # noqa: E402
from storage.db import connect  # noqa: E402
from yiju.settings import DatabaseSettings, MqttSettings, Settings  # noqa: E402


def _pct(values: list[float], q: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, int(len(v) * q))]


def _probe_devices(url: str, community: int, n: int, prefix: str) -> list[int]:
    with connect(url, autocommit=True) as conn:
        return [
            conn.execute(
                "INSERT INTO devices (uid, community_id, family) VALUES (%s, %s, 'access_door') RETURNING id",
                (f"{prefix}{i}", community),
            ).fetchone()[0]  # type: ignore[index]
            for i in range(n)
        ]


class _RemoteReceiver:
    """The webhook receiver in a child process, as a third-party platform is (not on this GIL)."""

    secret = "s3cret"

    def __init__(self) -> None:
        self._pipe, child = mp.get_context("fork").Pipe()
        self._proc = mp.get_context("fork").Process(target=self._serve, args=(child,), daemon=True)
        self._proc.start()
        self.url = str(self._pipe.recv())

    @staticmethod
    def _serve(pipe: Any) -> None:
        with webhook_receiver(_RemoteReceiver.secret) as r:
            pipe.send(r.url)
            while True:
                if pipe.recv() == "count":
                    pipe.send(len(r.received))
                else:
                    pipe.send(len(r.received))
                    return

    def count(self) -> int:
        self._pipe.send("count")
        return int(self._pipe.recv())

    def close(self) -> int:
        self._pipe.send("stop")
        n = int(self._pipe.recv())
        self._proc.join(5)
        return n


def _webhook_chain(url: str, community: int, receiver: Any, name: str, steps: tuple[float, ...]) -> None:
    with connect(url, autocommit=True) as conn:
        ep = store.create_endpoint(
            conn,
            community_id=community,
            name=name,
            kind="webhook",
            config={"url": receiver.url},
            secret=receiver.secret,
        ).id
        definition = {
            "steps": [
                {"delay_s": d, "targets": [{"kind": "endpoint", "ref": ep}], "channels": ["webhook"]}
                for d in steps
            ]
        }
        chain = store.save_chain(conn, community_id=community, name=name, definition=definition)
        store.create_policy(conn, community_id=community, name=name, chain_id=chain.id)


def first_attempt_figures(seconds: float, rate: float, own_process: bool) -> dict[str, float]:
    svc = start_services()
    try:
        db_url = svc.create_database()
        prefix = "bench"
        settings = Settings(
            database=DatabaseSettings(url=db_url),
            mqtt=MqttSettings(url=svc.mqtt_url, topic_prefix=prefix, client_id="bench-ingest"),
        )
        fleet = register_fleet(db_url, per_family=30)
        with connect(db_url, autocommit=True) as conn:
            community = conn.execute("SELECT id FROM communities").fetchone()[0]  # type: ignore[index]
        probes_per_s = 10.0
        devices = _probe_devices(db_url, community, int(seconds * probes_per_s) + 10, "probe")
        receiver = _RemoteReceiver()
        if True:  # the same block shape as the storm part
            _webhook_chain(db_url, community, receiver, "probe", (0,))
            engine_svc = AlertService(db_url, settings.alerts)
            ingest = IngestService(settings, database_url=db_url, mqtt_url=svc.mqtt_url, sink=engine_svc)
            worker: Any = (
                WorkerProcess(db_url, LinkageSettings(), Path("/tmp/yiju-bench-prompts"))
                if own_process
                else store_worker(db_url)
            )
            engine_svc.start()
            ingest.start()
            worker.start()
            background = [
                (f, uid) for f, uids in fleet.items() if f is not Family.ACCESS_DOOR for uid in uids
            ]
            loader = mp.get_context("fork").Process(
                target=_background, args=(svc.mqtt_url, prefix, background, rate, seconds + 2.0)
            )
            loader.start()
            time.sleep(1.0)  # let the load reach its rate
            committed: dict[int, datetime] = {}
            start = time.perf_counter()
            n = 0
            try:
                with connect(db_url, autocommit=True) as conn:
                    while time.perf_counter() - start < seconds:
                        delay = start + n / probes_per_s - time.perf_counter()
                        if delay > 0:
                            time.sleep(delay)
                        change = alarms.raise_or_update(
                            conn,
                            community_id=community,
                            device_id=devices[n],
                            type="door_forced_open",
                            severity="major",
                            at=datetime.now(UTC),
                        )
                        committed[change.alarm.id] = datetime.now(UTC)  # autocommit: committed on return
                        n += 1
                deadline = time.monotonic() + 30
                while receiver.count() < n and time.monotonic() < deadline:
                    time.sleep(0.1)
                loader.join(30)
                achieved = _achieved.value
            finally:
                if loader.is_alive():
                    loader.terminate()
                worker.stop()
                ingest.stop()
                engine_svc.stop()
            with connect(db_url, autocommit=True) as conn:
                rows = conn.execute(
                    "SELECT alarm_id, first_attempt_at FROM linkage_incidents WHERE alarm_id IS NOT NULL"
                ).fetchall()
                transitions = conn.execute("SELECT count(*) FROM alarm_transitions").fetchone()[0]  # type: ignore[index]
        started = [(at - committed[a]).total_seconds() for a, at in rows if a in committed and at is not None]
        return {
            "background_rate_msg_s": achieved,
            "probes": n,
            "incidents_with_attempt": len(started),
            "first_attempt_p50_ms": 1000 * statistics.median(started),
            "first_attempt_p99_ms": 1000 * _pct(started, 0.99),
            "first_attempt_max_ms": 1000 * max(started),
            "webhooks_received": receiver.close(),
            "alarm_transitions": transitions,
            "worker_rounds": -1 if own_process else worker.rounds,
        }
    finally:
        svc.stop()


def store_worker(url: str, worker_id: str = "bench", senders: int = 8) -> EscalationWorker:
    return EscalationWorker(
        url,
        LinkageSettings(senders=senders),
        {"webhook": WebhookChannel(10)},
        worker_id=worker_id,
    )


def gbt_figures(runs: int) -> dict[str, float]:
    channel = gbt.Gbt26875Channel(gbt.GbtConfig())
    took: list[float] = []
    for i in range(runs):
        with centre(drop_first=1) as c:
            attempt = Attempt(
                idem_key=f"b:{i}",
                incident_id=i,
                alarm_id=i,
                alarm_type="fire_alarm",
                severity="critical",
                summary="1号楼 3层",
                address=f"127.0.0.1:{c.port}",
                target_name="centre",
                drill=False,
                community="bench",
                attempt=1,
                alarm_at=datetime.now(UTC),
                context={"device_id": 1},
                endpoint={"source": 1, "destination": 2},
            )
            t0 = time.perf_counter()
            outcome = channel.send(attempt)
            took.append(time.perf_counter() - t0)
            if outcome.status != "delivered" or outcome.extra["resends"] != 1:
                raise RuntimeError(f"unexpected outcome {outcome}")
    return {"gbt_runs": runs, "gbt_confirm_min_s": min(took), "gbt_confirm_max_s": max(took)}


def storm_figures(incidents: int) -> dict[str, float]:
    svc = start_services()
    try:
        db_url = svc.create_database()
        with connect(db_url, autocommit=True) as conn:
            community = conn.execute(
                "INSERT INTO communities (code, name) VALUES ('storm', 'storm') RETURNING id"
            ).fetchone()[0]  # type: ignore[index]
        devices = _probe_devices(db_url, community, incidents, "storm")
        with webhook_receiver() as receiver:
            _webhook_chain(db_url, community, receiver, "storm", (0, 2))
            workers = [store_worker(db_url, f"w{i}") for i in range(2)]
            for w in workers:
                w.start()
            acked_at: dict[int, datetime] = {}
            t0 = time.perf_counter()
            try:
                ids: list[int] = []
                with connect(db_url, autocommit=True) as conn:
                    for d in devices:
                        ids.append(
                            alarms.raise_or_update(
                                conn,
                                community_id=community,
                                device_id=d,
                                type="door_duress",
                                severity="critical",
                                at=datetime.now(UTC),
                            ).alarm.id
                        )
                    raised_s = time.perf_counter() - t0
                    for a in ids[::2]:
                        alarms.acknowledge(conn, a, actor="bench")
                        acked_at[a] = datetime.now(UTC)
                    while True:
                        open_, busy = conn.execute(
                            "SELECT (SELECT count(*) FROM linkage_incidents WHERE state = 'open'), "
                            "(SELECT count(*) FROM linkage_outbox WHERE status IN ('pending', 'sending'))"
                        ).fetchone()  # type: ignore[misc]
                        if open_ == 0 and busy == 0 and len(ids) == incidents:
                            break
                        time.sleep(0.1)
                drained_s = time.perf_counter() - t0
            finally:
                for w in workers:
                    w.stop()
            with connect(db_url, autocommit=True) as conn:
                rows = conn.execute(
                    "SELECT o.idem_key, o.status, i.alarm_id, o.claimed_at FROM linkage_outbox o "
                    "JOIN linkage_incidents i ON i.id = o.incident_id"
                ).fetchall()
        delivered = [k for k, s, _, _ in rows if s == "delivered"]
        after_ack = [k for k, _, a, c in rows if a in acked_at and c is not None and c > acked_at[a]]
        keys = receiver.keys()
        return {
            "storm_incidents": incidents,
            "storm_raise_s": raised_s,
            "storm_drain_s": drained_s,
            "storm_delivered": len(delivered),
            "storm_received_unique": len(set(keys)),
            "storm_received_duplicates": len(keys) - len(set(keys)) + len(receiver.duplicates),
            "storm_claimed_after_ack": len(after_ack),
            "storm_cancelled": sum(1 for _, s, _, _ in rows if s == "cancelled"),
            "storm_delivered_equals_received": float(sorted(delivered) == sorted(keys)),
        }
    finally:
        svc.stop()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--rate", type=float, default=2000.0)
    p.add_argument("--storm", type=int, default=1000)
    p.add_argument("--gbt-runs", type=int, default=5)
    p.add_argument("--only", choices=["first", "gbt", "storm"])
    p.add_argument(
        "--worker",
        choices=["thread", "process", "both"],
        default="both",
        help="first-attempt figure: worker thread in the ingest process, own process, or both",
    )
    args = p.parse_args()
    parts = {
        "first": lambda: {
            f"{mode}:{k}": v
            for mode in (["thread", "process"] if args.worker == "both" else [args.worker])
            for k, v in first_attempt_figures(args.seconds, args.rate, mode == "process").items()
        },
        "gbt": lambda: gbt_figures(args.gbt_runs),
        "storm": lambda: storm_figures(args.storm),
    }
    for name, run in parts.items():
        if args.only and name != args.only:
            continue
        for k, v in run().items():
            print(f"{k:34} {v:12.1f}", flush=True)
    return 0


if __name__ == "__main__":
    threading.excepthook = lambda a: print(f"thread {a.thread}: {a.exc_value!r}", file=sys.stderr)
    sys.exit(main())
