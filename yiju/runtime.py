"""The running system: ingest → alert engine → storage, command dispatch, storage upkeep, the API.

`yiju run` and `yiju demo` build one `Runtime` from the settings and the resolved endpoints. Every
thread here has an owner that stops it: the runtime stops its parts in reverse order of starting,
so ingest flushes (and acknowledges) what it holds before the engine and the database go away.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import uvicorn

from alerts.commands import CommandDispatcher, CommandSender
from alerts.escalation.channels import build_channels
from alerts.escalation.metrics import LinkageMetrics
from alerts.escalation.process import WorkerProcess
from alerts.escalation.worker import EscalationWorker
from alerts.metrics import alert_metrics
from alerts.service import AlertService
from api.app import create_app
from api.metrics import ApiMetrics
from ingest.metrics import ingest_metrics
from ingest.mqtt_adapter import MqttCommandPublisher
from ingest.service import IngestService
from storage.migrate import pending
from yiju.errors import ConfigurationError, YijuError
from yiju.metrics import DatabaseCollector, ProcessMetrics, UpkeepMetrics
from yiju.settings import Settings
from yiju.stack import Endpoints
from yiju.upkeep import FallbackMetrics, StorageUpkeep

log = logging.getLogger(__name__)

MAINTENANCE_INTERVAL_S = 60.0
DISPATCH_INTERVAL_S = 1.0
# Open live streams are ended by the app at shutdown; this bounds how long uvicorn waits for them.
API_GRACEFUL_SHUTDOWN_S = 3


class _Loop:
    """A named thread that runs `step` every `interval_s` until stopped; errors are logged, not fatal."""

    def __init__(self, name: str, interval_s: float, step: Callable[[], None]) -> None:
        self._name = name
        self._interval_s = interval_s
        self._step = step
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self._step()
            except YijuError as exc:
                log.warning("%s: %s", self._name, exc)
            except Exception:  # keep the loop alive; the next round may succeed
                log.exception("%s failed", self._name)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)


class Runtime:
    """Ingest, the alert engine, command dispatch and storage upkeep, started and stopped together.

    `process` is the process's metrics (yiju.metrics): every part's metric set is created on its
    registry here, once; whoever serves `/metrics` serves `runtime.process.registry`."""

    def __init__(
        self, settings: Settings, endpoints: Endpoints, process: ProcessMetrics | None = None
    ) -> None:
        self.settings = settings.model_copy(
            update={"database": settings.database.model_copy(update={"url": endpoints.database_url})}
        )
        self.endpoints = endpoints
        self.process = process or ProcessMetrics("run")
        registry = self.process.registry
        self.api_metrics = ApiMetrics.create(registry)
        self.upkeep_metrics = UpkeepMetrics.create(registry)
        registry.register(DatabaseCollector(endpoints.database_url, fleet=True))
        client_id = settings.mqtt.client_id
        self.mqtt_commands = MqttCommandPublisher(
            endpoints.mqtt_url, client_id=f"{client_id}-commands", ca_file=settings.mqtt.ca_file
        )
        self.sender = CommandSender(self.mqtt_commands, settings.mqtt.topic_prefix)
        self.engine = AlertService(
            endpoints.database_url, settings.alerts, publisher=self.sender, metrics=alert_metrics(registry)
        )
        self.ingest = IngestService(
            self.settings,
            database_url=endpoints.database_url,
            mqtt_url=endpoints.mqtt_url,
            sink=self.engine,
            metrics=ingest_metrics(registry),
        )
        self.dispatcher = CommandDispatcher(endpoints.database_url, self.sender)
        self.dispatch = _Loop("command-dispatcher", DISPATCH_INTERVAL_S, self.dispatcher.step)
        self.upkeep = StorageUpkeep(
            endpoints.database_url, self.settings.database, FallbackMetrics.create(registry)
        )
        self.maintenance = _Loop("storage-maintenance", MAINTENANCE_INTERVAL_S, self._maintain)
        # emergency linkage: alarms → incidents → calls, webhooks, SMS, GB/T 26875.3 (docs/linkage.md)
        self.linkage: EscalationWorker | WorkerProcess | None = None
        prompts = settings.state_dir / "prompts"
        if settings.linkage.enabled and settings.linkage.own_process:
            self.linkage = WorkerProcess(endpoints.database_url, settings.linkage, prompts)
        elif settings.linkage.enabled:
            channels = build_channels(settings.linkage, prompts)
            self.linkage = EscalationWorker(
                endpoints.database_url, settings.linkage, channels, metrics=LinkageMetrics.create(registry)
            )
        self._started: list[Any] = []

    def _maintain(self) -> None:
        m, t0 = self.upkeep_metrics, time.perf_counter()
        try:
            self.upkeep.step()
        except BaseException:
            m.runs.labels("error").inc()
            raise
        m.runs.labels("ok").inc()
        m.last_success.set(time.time())
        m.duration_seconds.observe(time.perf_counter() - t0)

    def start(self) -> None:
        todo = pending(self.endpoints.database_url)
        if todo:
            raise ConfigurationError(f"{len(todo)} schema migration(s) pending; run `yiju db migrate` first")
        try:
            parts: list[Any] = [self.mqtt_commands, self.engine, self.ingest, self.dispatch]
            if self.settings.scale.mode == "jetstream":
                # scale-out (docs/scale-out.md): bridges and partition workers ingest and evaluate
                parts = [self.mqtt_commands, self.dispatch]
            parts += [self.maintenance, *([self.linkage] if self.linkage is not None else [])]
            for part in parts:
                part.start()
                self._started.append(part)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        while self._started:
            part = self._started.pop()
            try:
                part.stop()
            except Exception:  # stop the rest whatever one part does
                log.exception("stopping %s failed", type(part).__name__)

    def __enter__(self) -> Runtime:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def api_server(self, host: str | None = None, port: int | None = None) -> uvicorn.Server:
        """The API and console server; run it with `serve_until_signal`."""
        config = uvicorn.Config(
            create_app(self.settings, self.api_metrics),
            host=host or self.settings.api.host,
            port=self.settings.api.port if port is None else port,
            log_level="warning",
            timeout_graceful_shutdown=API_GRACEFUL_SHUTDOWN_S,
        )
        return uvicorn.Server(config)


def serve_until_signal(server: uvicorn.Server) -> None:
    """Serve until Ctrl-C, SIGTERM or `server.should_exit`.

    uvicorn shuts down gracefully on SIGINT/SIGTERM and then re-raises the signal; that is the normal
    way to stop, so the resulting KeyboardInterrupt ends serving here and the caller stops the rest.
    """
    try:
        server.run()
    except KeyboardInterrupt:
        log.info("stopping on signal")
