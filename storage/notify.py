"""One LISTEN connection per process, fanning PostgreSQL notifications out to in-process consumers
(`Listener`, for the event loop), and the same for a worker thread (`listen_in_thread`).

Why one: a connection per consumer (e.g. per live alarm stream) lets a single viewer exhaust
`max_connections` and starve ingest, command dispatch and upkeep (issue 10 §3). Here a process holds
exactly one extra connection however many consumers it serves.

Contract:
- `run()` connects, LISTENs on every channel, awaits `on_connect()` and only then sets `ready`; so a
  consumer that waits for `ready` before reading the database cannot miss a notification committed
  after its read. `on_connect` runs again after every reconnect: notifications sent while the
  connection was lost are gone, and the consumer catches up from the database there.
- `deliver(channel, payload)` is called on the event loop for each notification, in commit order; it
  must not block.
- A lost connection (server restart, network) is retried with backoff until `run()` is cancelled;
  TCP keepalives detect a peer that vanished without closing the socket.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable, Sequence

import psycopg
from psycopg import sql

from storage.db import connect, translated
from yiju.errors import DatabaseUnavailable

log = logging.getLogger("yiju.storage.notify")

RECONNECT_BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 5.0)
CONNECT_TIMEOUT_S = 5
# keepalive probes: a dead peer is noticed within about idle + interval x count seconds
KEEPALIVE_IDLE_S, KEEPALIVE_INTERVAL_S, KEEPALIVE_COUNT = 10, 5, 3


class Listener:
    """The process's LISTEN connection; run `run()` as a task owned by the caller, cancel it to stop."""

    def __init__(
        self,
        url: str,
        channels: Sequence[str],
        deliver: Callable[[str, str], None],
        *,
        on_connect: Callable[[], Awaitable[None]] | None = None,
        application_name: str = "yiju-listen",
    ) -> None:
        self._url = url
        self._channels = tuple(channels)
        self._deliver = deliver
        self._on_connect = on_connect
        self._application_name = application_name
        self.ready = asyncio.Event()
        self.connects = 0

    async def run(self) -> None:
        attempt = 0
        while True:
            before = self.connects
            try:
                await self._session()
            except (psycopg.OperationalError, OSError, DatabaseUnavailable) as exc:
                log.warning("notification listener lost the database: %s", str(exc).strip() or exc)
            finally:
                self.ready.clear()
            if self.connects != before:
                attempt = 0  # it was connected: start the backoff again from the shortest delay
            delay = RECONNECT_BACKOFF_S[min(attempt, len(RECONNECT_BACKOFF_S) - 1)]
            attempt += 1
            await asyncio.sleep(delay)

    async def _session(self) -> None:
        aconn = await psycopg.AsyncConnection.connect(
            self._url,
            autocommit=True,
            application_name=self._application_name,
            connect_timeout=CONNECT_TIMEOUT_S,
            keepalives=1,
            keepalives_idle=KEEPALIVE_IDLE_S,
            keepalives_interval=KEEPALIVE_INTERVAL_S,
            keepalives_count=KEEPALIVE_COUNT,
        )
        async with aconn:
            for channel in self._channels:
                await aconn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
            if self._on_connect is not None:
                await self._on_connect()
            self.connects += 1
            self.ready.set()
            async for note in aconn.notifies():
                self._deliver(note.channel, note.payload)


def listen_in_thread(
    url: str,
    channels: Sequence[str],
    *,
    on_connect: Callable[[], None],
    on_notify: Callable[[], None],
    stop: threading.Event,
    poll_s: float = 0.5,
) -> None:
    """LISTEN on `channels` from a worker thread until `stop` is set: `on_connect()` once LISTENing
    (anything committed before is for the caller to read), `on_notify()` for each notification. A lost
    connection raises `DatabaseUnavailable`; the caller decides when to call again."""
    with translated(), connect(url, autocommit=True) as conn:
        for channel in channels:
            conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
        on_connect()
        while not stop.is_set():
            for _ in conn.notifies(timeout=poll_s, stop_after=1):
                on_notify()
