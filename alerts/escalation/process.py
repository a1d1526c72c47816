"""The escalation worker in a process of its own (`linkage.own_process = true`).

Why: in `yiju run` the worker shares one interpreter with ingest's MQTT, decoder and writer threads
and the alert engine. Under a heavy ingest load on a busy machine its loop gets the GIL too rarely
and the time from alarm to first call grows (bench/RESULTS.md, emergency linkage). The worker talks
to the rest only through PostgreSQL (the alarm NOTIFY, the outbox), so it runs unchanged in a child
process. The price: its metrics live in the child's registry, not on the parent's `/metrics`.

The parent owns the child: `stop()` asks it to stop (deliveries in flight finish), waits, and only
then terminates it; a child that dies is restarted by the next `start()` only — it is reported, and
its claimed deliveries are recovered by the lease like any dead worker's.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
from multiprocessing.synchronize import Event
from pathlib import Path

from alerts.escalation.config import LinkageSettings

log = logging.getLogger(__name__)
STOP_TIMEOUT_S = 60.0


def _child(url: str, settings: LinkageSettings, prompt_dir: Path, stop: Event, ready: Event) -> None:
    from alerts.escalation.channels import build_channels  # noqa: PLC0415 - runs in the child
    from alerts.escalation.worker import EscalationWorker  # noqa: PLC0415

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    worker = EscalationWorker(url, settings, build_channels(settings, prompt_dir))
    worker.start()
    ready.set()
    try:
        stop.wait()
    finally:
        worker.stop()


class WorkerProcess:
    """Start/stop an `EscalationWorker` in a spawned child process."""

    def __init__(self, database_url: str, settings: LinkageSettings, prompt_dir: Path) -> None:
        self._args = (database_url, settings, prompt_dir)
        self._ctx = mp.get_context("spawn")
        self._stop = self._ctx.Event()
        self._ready = self._ctx.Event()
        self._proc: mp.process.BaseProcess | None = None

    def start(self, timeout_s: float = 60.0) -> None:
        self._stop.clear()
        self._ready.clear()
        self._proc = self._ctx.Process(
            target=_child, args=(*self._args, self._stop, self._ready), name="yiju-linkage", daemon=True
        )
        self._proc.start()
        if not self._ready.wait(timeout_s):
            self.stop()
            from yiju.errors import ServiceStartError  # noqa: PLC0415 - leaf module

            raise ServiceStartError("the escalation worker process did not start")

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.is_alive()

    def stop(self) -> None:
        if self._proc is None:
            return
        self._stop.set()
        self._proc.join(STOP_TIMEOUT_S)
        if self._proc.is_alive():
            log.warning("escalation worker process did not stop in %.0f s; terminating", STOP_TIMEOUT_S)
            self._proc.terminate()
            self._proc.join(5)
        self._proc = None
