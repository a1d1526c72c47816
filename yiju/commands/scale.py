"""`yiju bridge` and `yiju partition-worker`: the two processes of scale-out mode (docs/scale-out.md).

Each runs until SIGTERM/SIGINT, then stops cleanly (a worker drains and hands its partitions back).
A process killed instead loses nothing: what it had not acknowledged is redelivered (MQTT to a
bridge's session, JetStream to the partition's next holder).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import threading
from types import FrameType
from typing import TYPE_CHECKING

from yiju.commands.base import Subparsers

if TYPE_CHECKING:
    from yiju.settings import Settings

log = logging.getLogger("yiju.scale")
STATUS_INTERVAL_S = 60.0


def _stop_event() -> threading.Event:
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    return stop


def _name(given: str | None, kind: str) -> str:
    return given or f"yiju-{kind}-{socket.gethostname()}-{os.getpid()}"


def _cmd_bridge(args: argparse.Namespace, settings: Settings) -> int:
    from yiju.metrics import ProcessMetrics, serve_metrics
    from yiju.scaleout.bridge import Bridge
    from yiju.scaleout.metrics import BridgeCollector
    from yiju.stack import resolve

    endpoints = resolve(settings)
    stop = _stop_event()
    # a bridge keeps its MQTT session across restarts: give each bridge a fixed --id
    bridge = Bridge(
        settings,
        mqtt_url=endpoints.mqtt_url,
        nats_url=settings.scale.nats_url,
        client_id=_name(args.id, "bridge"),
    )
    process = ProcessMetrics("bridge")
    process.registry.register(BridgeCollector(bridge))
    # bound before the bridge starts: a busy port fails at once (YIJU_METRICS__PORT; 0: off)
    exporter = serve_metrics(process.registry, settings.metrics.host, settings.metrics.port)
    bridge.start()
    log.info("bridge %s up: %s → %s", bridge.consumer.client_id, endpoints.mqtt_url, settings.scale.nats_url)
    log.info("metrics %s", exporter.url)
    if bridge.consumer.subscribed.wait(settings.mqtt.connect_timeout_s * 4):
        log.info("bridge %s subscribed", bridge.consumer.client_id)
    try:
        while not stop.wait(STATUS_INTERVAL_S if bridge.alive else 0.1):
            if not bridge.alive:
                log.error("the bridge's publisher died; exiting so that the supervisor restarts it")
                return 1
            s = bridge.stats
            log.info(
                "received %d, confirmed %d, acked %d, retries %d", s.received, s.confirmed, s.acked, s.retries
            )
    finally:
        bridge.stop()
        exporter.stop()
    return 0


def _cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from alerts.commands import CommandSender
    from alerts.metrics import alert_metrics
    from ingest.metrics import ingest_metrics
    from ingest.mqtt_adapter import MqttCommandPublisher
    from yiju.metrics import ProcessMetrics, serve_metrics
    from yiju.scaleout.metrics import WorkerCollector
    from yiju.scaleout.worker import PartitionWorker
    from yiju.stack import resolve

    endpoints = resolve(settings)
    stop = _stop_event()
    worker_id = _name(args.id, "worker")
    commands = MqttCommandPublisher(
        endpoints.mqtt_url, client_id=f"{worker_id}-commands", ca_file=settings.mqtt.ca_file
    )
    commands.start()
    process = ProcessMetrics("partition-worker")
    worker = PartitionWorker(
        settings,
        database_url=endpoints.database_url,
        nats_url=settings.scale.nats_url,
        worker_id=worker_id,
        publisher=CommandSender(commands, settings.mqtt.topic_prefix),
        ingest_metrics=ingest_metrics(process.registry),
        alert_metrics=alert_metrics(process.registry),
    )
    process.registry.register(WorkerCollector(worker))
    exporter = serve_metrics(process.registry, settings.metrics.host, settings.metrics.port)
    log.info("metrics %s", exporter.url)
    try:
        worker.start()
        log.info("partition worker %s up (%d partitions in all)", worker_id, settings.scale.partitions)
        while not stop.wait(STATUS_INTERVAL_S if worker.alive else 0.1):
            if not worker.alive:
                log.error("the lease loop died; exiting so that the supervisor restarts the worker")
                return 1
            log.info("partitions held: %s", sorted(worker.held))
    finally:
        worker.stop()
        commands.stop()
        exporter.stop()
    return 0


def register(sub: Subparsers) -> None:
    p = sub.add_parser("bridge", help="scale-out: MQTT → NATS JetStream (docs/scale-out.md)")
    p.add_argument(
        "--id", default=None, help="MQTT session and NATS name; fixed per bridge (default: host-pid)"
    )
    p.set_defaults(handler=_cmd_bridge)
    p = sub.add_parser(
        "partition-worker",
        help="scale-out: JetStream partitions → storage and alert rules (docs/scale-out.md)",
    )
    p.add_argument("--id", default=None, help="worker name in the lease bucket (default: host-pid)")
    p.set_defaults(handler=_cmd_worker)
