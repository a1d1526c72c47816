"""The live alarm stream (Server-Sent Events), resumable after a dropped connection.

Every alarm transition is an event whose id comes from `alarm_transitions.id`. A stream:

1. LISTENs on `yiju_alarm_events` (an async psycopg connection) *before* reading anything, so nothing
   committed after that point can slip between the replay and the live part;
2. replays the transitions with id > `since` (the `Last-Event-ID` header or `?since=`), in order;
3. follows the notifications, reading each named transition.

The SSE `id:` sent with each event is a high watermark (the largest transition id sent so far), so
a client that reconnects with it gets every later event exactly once (transition ids commit in id
order: storage/alarms.py serialises their writers). Each stream owns one pump task that the
response cancels when the client disconnects and the hub cancels at shutdown. Blocking reads run in
worker threads (`asyncio.to_thread`) on the app's pool; the event loop only waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from psycopg_pool import ConnectionPool

from api.alarms.schemas import LatestEvent, StreamEvent
from api.deps import Conn, Reader
from api.errors import ERROR_RESPONSES, invalid
from devices.alarms import Severity
from storage import alarms, api_queries
from storage.alarms import AlarmEvent

log = logging.getLogger("yiju.api.stream")

router = APIRouter(tags=["alarms"], responses={k: ERROR_RESPONSES[k] for k in (403, 404)})

RECONNECT_BACKOFF_S = (0.5, 1.0, 2.0, 5.0)
CLIENT_RETRY_MS = 2000
REPLAY_PAGE = 500
SENT_MEMORY = 50_000  # ids remembered to drop duplicates between replay and notifications


@dataclass
class _Subscription:
    community_ids: list[int] | None
    severities: frozenset[str] | None
    watermark: int
    queue: asyncio.Queue[tuple[str, Any]] = field(default_factory=asyncio.Queue)
    sent: set[int] = field(default_factory=set)

    def wants(self, event: AlarmEvent) -> bool:
        if self.community_ids is not None and event.alarm.community_id not in self.community_ids:
            return False
        return self.severities is None or event.alarm.severity in self.severities

    def offer(self, event: AlarmEvent) -> None:
        tid = event.transition.id
        if tid in self.sent:
            return
        self.sent.add(tid)
        if len(self.sent) > SENT_MEMORY:
            floor = self.watermark - SENT_MEMORY // 2
            self.sent = {i for i in self.sent if i > floor}
        self.watermark = max(self.watermark, tid)
        if self.wants(event):
            self.queue.put_nowait(("alarm", (self.watermark, event)))


class StreamHub:
    """Owns the pump task of every open stream; `close()` stops them all (application shutdown)."""

    def __init__(self, database_url: str, *, heartbeat_s: float) -> None:
        self._url = database_url
        self.heartbeat_s = heartbeat_s
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def open_streams(self) -> int:
        return len(self._tasks)

    def start(self, pool: ConnectionPool[Any], sub: _Subscription) -> asyncio.Task[None]:
        if self._closed:
            raise RuntimeError("the stream hub is shut down")
        task = asyncio.create_task(self._pump(pool, sub), name="yiju-alarm-stream")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def close(self) -> None:
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _pump(self, pool: ConnectionPool[Any], sub: _Subscription) -> None:
        attempt = 0
        try:
            while True:
                try:
                    await self._listen_and_follow(pool, sub)
                except (psycopg.OperationalError, OSError) as exc:
                    delay = RECONNECT_BACKOFF_S[min(attempt, len(RECONNECT_BACKOFF_S) - 1)]
                    attempt += 1
                    log.warning("alarm stream lost the database (%s); retrying in %.1fs", exc, delay)
                    await asyncio.sleep(delay)
        finally:
            sub.queue.put_nowait(("end", None))

    async def _listen_and_follow(self, pool: ConnectionPool[Any], sub: _Subscription) -> None:
        aconn = await psycopg.AsyncConnection.connect(
            self._url, autocommit=True, application_name="yiju-api-stream"
        )
        async with aconn:
            await aconn.execute(f"LISTEN {alarms.NOTIFY_CHANNEL}")
            # replay from the watermark: events committed before LISTEN took effect, or while away
            while True:
                batch = await asyncio.to_thread(_after, pool, sub.watermark, sub.community_ids)
                for event in batch:
                    sub.offer(event)
                if len(batch) < REPLAY_PAGE:
                    break
            sub.queue.put_nowait(("ready", sub.watermark))
            while True:
                got_any = False
                async for note in aconn.notifies(timeout=self.heartbeat_s):
                    got_any = True
                    try:
                        tid = int(note.payload)
                    except ValueError:
                        log.warning("ignoring a malformed alarm notification %r", note.payload)
                        continue
                    if tid in sub.sent:
                        continue
                    found = await asyncio.to_thread(_one, pool, tid)
                    if found:
                        sub.offer(found[0])
                if not got_any:
                    sub.queue.put_nowait(("ping", None))


def _after(pool: ConnectionPool[Any], after_id: int, community_ids: list[int] | None) -> list[AlarmEvent]:
    with pool.connection() as conn:
        return alarms.transitions_after(conn, after_id, community_ids=community_ids, limit=REPLAY_PAGE)


def _one(pool: ConnectionPool[Any], transition_id: int) -> list[AlarmEvent]:
    with pool.connection() as conn:
        event = alarms.get_transition(conn, transition_id)
    return [event] if event is not None else []


def _latest(pool: ConnectionPool[Any]) -> int:
    with pool.connection() as conn:
        return api_queries.latest_transition_id(conn)


async def _sse(hub: StreamHub, pool: ConnectionPool[Any], sub: _Subscription) -> AsyncIterator[str]:
    task = hub.start(pool, sub)
    try:
        yield f"retry: {CLIENT_RETRY_MS}\n\n"
        while True:
            kind, payload = await sub.queue.get()
            if kind == "end":
                return
            if kind == "ping":
                yield ": keep-alive\n\n"
            elif kind == "ready":
                yield f'id: {payload}\nevent: ready\ndata: {{"last_event_id": {payload}}}\n\n'
            else:
                watermark, event = payload
                data = StreamEvent.of(event).model_dump_json()
                yield f"id: {watermark}\nevent: alarm\ndata: {data}\n\n"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _severities(values: Sequence[Severity] | None) -> frozenset[str] | None:
    return frozenset(s.value for s in values) if values else None


@router.get(
    "/alarms/stream",
    summary="Live alarm events (Server-Sent Events), resumable with Last-Event-ID or ?since=",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": (
                "`text/event-stream`. `event: ready` once the replay is done; then `event: alarm` with a "
                "StreamEvent as data and `id:` the high-watermark event id to resume from."
            ),
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        }
    },
)
async def stream(
    *,
    request: Request,
    principal: Reader,
    community_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    severity: Annotated[list[Severity] | None, Query(description="Only these severities")] = None,
    since: Annotated[
        int | None, Query(ge=0, le=2**62, description="Replay events after this id (else start now)")
    ] = None,
    last_event_id: Annotated[
        str | None, Header(max_length=30, description="Set by EventSource on reconnect")
    ] = None,
) -> StreamingResponse:
    resume = since
    if resume is None and last_event_id is not None:
        if not last_event_id.isdigit() or int(last_event_id) > 2**62:
            raise invalid("header.last-event-id", "must be an event id from this stream")
        resume = int(last_event_id)
    pool: ConnectionPool[Any] = request.app.state.pool
    hub: StreamHub = request.app.state.streams
    if resume is None:
        resume = await asyncio.to_thread(_latest, pool)
    sub = _Subscription(
        community_ids=principal.scope_for(community_id),
        severities=_severities(severity),
        watermark=resume,
    )
    return StreamingResponse(
        _sse(hub, pool, sub),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@router.get("/alarms/events/latest", summary="The newest alarm event id (to start a stream from now)")
def latest_event(principal: Reader, conn: Conn) -> LatestEvent:
    return LatestEvent(last_event_id=api_queries.latest_transition_id(conn))
