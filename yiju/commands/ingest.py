"""`yiju ingest [--workers N]`: MQTT ingest as one process, or N supervised worker processes."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from types import FrameType
from typing import TYPE_CHECKING

from yiju.commands.base import Subparsers

if TYPE_CHECKING:
    from yiju.settings import Settings

log = logging.getLogger("yiju.ingest")

RESTART_BACKOFF_MAX_S = 30.0
STATUS_INTERVAL_S = 60.0


def worker_client_id(settings: Settings, index: int) -> str:
    """Worker i always reuses session `{client_id}-{i}`: a restarted worker resumes its own session
    and receives what the broker held for it (Mosquitto queues shared-subscription messages for an
    offline member of the group until it returns or its session expires)."""
    return f"{settings.mqtt.client_id}-{index}"


def _run_worker(settings: Settings, index: int) -> int:
    from ingest.metrics import ingest_metrics
    from ingest.service import IngestService
    from yiju.metrics import DatabaseCollector, ProcessMetrics, serve_metrics
    from yiju.stack import resolve

    endpoints = resolve(settings)
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    process = ProcessMetrics("ingest")
    # the first worker also exports the per-community freshness (once, not once per worker)
    process.registry.register(DatabaseCollector(endpoints.database_url, fleet=index == 0))
    port = settings.ingest.metrics_port + index if settings.ingest.metrics_port else 0
    exporter = serve_metrics(process.registry, settings.ingest.metrics_host, port)
    service = IngestService(
        settings,
        database_url=endpoints.database_url,
        mqtt_url=endpoints.mqtt_url,
        client_id=worker_client_id(settings, index),
        metrics=ingest_metrics(process.registry),
    )
    service.start()
    log.info(
        "ingest worker %d up: session %s, metrics %s",
        index,
        worker_client_id(settings, index),
        exporter.url,
    )
    try:
        while not stop.wait(STATUS_INTERVAL_S if service.alive else 0.1):
            if not service.alive:
                log.error("an ingest thread died; exiting so the supervisor restarts the worker")
                return 1
            s = service.stats
            log.info(
                "received %d, stored %d (+%d duplicates), dead letters %d, points %d, acked %d",
                s.received,
                s.stored,
                s.duplicates,
                s.dead_lettered,
                s.points,
                s.acked,
            )
    finally:
        service.stop()
        exporter.stop()
    return 0


def _supervise(workers: int) -> int:
    """Start N workers (`python -m yiju.cli ingest --worker-index i`), restart any that dies."""
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)

    def spawn(i: int) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "yiju.cli", "ingest", "--worker-index", str(i)],
            # the workers split the load through the MQTT 5 shared group
            env={**os.environ, "YIJU_INGEST__SHARED_SUBSCRIPTION": "true"},
        )

    procs = {i: spawn(i) for i in range(workers)}
    backoff = dict.fromkeys(procs, 1.0)
    try:
        while not stop.wait(0.5):
            for i, proc in list(procs.items()):
                if proc.poll() is not None:
                    log.error(
                        "ingest worker %d exited with %s; restarting in %.0f s",
                        i,
                        proc.returncode,
                        backoff[i],
                    )
                    if stop.wait(backoff[i]):
                        break
                    backoff[i] = min(backoff[i] * 2, RESTART_BACKOFF_MAX_S)
                    procs[i] = spawn(i)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + 30
        for proc in procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
    return 0


def _cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    if args.worker_index is not None:
        return _run_worker(settings, args.worker_index)
    workers = args.workers or settings.ingest.workers
    if workers == 1:
        return _run_worker(settings, 0)
    from yiju.stack import resolve

    resolve(settings)  # fail here, once, if the endpoints are not configured
    return _supervise(workers)


def register(sub: Subparsers) -> None:
    p = sub.add_parser("ingest", help="consume device messages from MQTT into the database")
    p.add_argument(
        "--workers", type=int, default=None, help="processes in the shared subscription (default: setting)"
    )
    p.add_argument("--worker-index", type=int, default=None, help=argparse.SUPPRESS)
    p.set_defaults(handler=_cmd_ingest)
