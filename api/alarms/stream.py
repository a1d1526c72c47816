"""The live alarm stream (Server-Sent Events), resumable after a dropped connection.

Every alarm transition is an event whose id comes from `alarm_transitions.id`.

One process, one LISTEN connection (issue 10 §3): the `StreamHub` owns `storage.notify.Listener`
(LISTEN on `yiju_alarm_events`, `users.REVOKED_CHANNEL`, `yiju_registry`, `yiju_compliance` and
`users.PRINCIPALS_CHANNEL`) and a dispatcher task. On each
notification the dispatcher reads the new transitions once, from the last id it dispatched, and
offers them to every open stream; after a reconnect it catches up the same way, so nothing
committed while the connection was lost is missed. A stream:

1. is admitted under the caps (per user, per process) or refused with 429 and `Retry-After`;
2. waits until the listener is LISTENing, registers with the hub (live events are held meanwhile),
   and replays the transitions with id > `since` (the `Last-Event-ID` header or `?since=`) in order;
3. then delivers the held and the live events, dropping any it already sent.

The SSE `id:` sent with each event is a high watermark (the largest transition id passed so far), so
a client that reconnects with it gets every later event exactly once (transition ids commit in id
order: storage/alarms.py serialises their writers).

Streams end with `event: end` when their credential expires (token expiry), when it is revoked
(logout, API key revoked: a NOTIFY, so every API process hears it), when the client is too slow to
drain its queue, and at shutdown. Blocking reads run in worker threads (`asyncio.to_thread`) on the
app's pool; the event loop only waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from api.alarms.schemas import LatestEvent, StreamEvent
from api.deps import Conn, Principal, Reader, StreamReader
from api.errors import ERROR_RESPONSES, ApiError, invalid, too_many
from devices.alarms import Severity
from storage import alarms, findings, users
from storage.alarms import AlarmEvent
from storage.db import Database
from storage.notify import Listener
from storage.registry_events import REGISTRY_CHANNEL

log = logging.getLogger("yiju.api.stream")

router = APIRouter(tags=["alarms"], responses={k: ERROR_RESPONSES[k] for k in (403, 404)})

CLIENT_RETRY_MS = 2000
REPLAY_PAGE = 500
SENT_MEMORY = 50_000  # ids remembered to drop duplicates between replay and live events
# A client this far behind is ended (it reconnects with Last-Event-ID and replays from the database)
# rather than buffered without limit in the API's memory.
MAX_QUEUED_EVENTS = 10_000
STREAM_RETRY_AFTER_S = 30  # Retry-After of a refused stream: a slot frees when someone closes a board
LISTENER_READY_S = 5.0  # a new stream waits this long for the LISTEN connection, else 503
_LAST_EVENT_ID_MAX_DIGITS = 19


@dataclass(eq=False)
class _Subscription:
    user_id: int
    credential: str
    expires_at: datetime | None
    community_ids: list[int] | None
    severities: frozenset[str] | None
    watermark: int
    queue: asyncio.Queue[tuple[str, Any]] = field(default_factory=asyncio.Queue)
    sent: set[int] = field(default_factory=set)
    replaying: bool = True
    held: list[AlarmEvent] = field(default_factory=list)
    ended: bool = False

    def wants(self, event: AlarmEvent) -> bool:
        if self.community_ids is not None and event.alarm.community_id not in self.community_ids:
            return False
        return self.severities is None or event.alarm.severity in self.severities

    def deliver(self, event: AlarmEvent) -> None:
        """A live event: held while the replay runs, offered afterwards."""
        if self.replaying:
            self.held.append(event)
        else:
            self.offer(event)

    def offer(self, event: AlarmEvent) -> None:
        tid = event.transition.id
        if tid in self.sent or self.ended:
            return
        self.sent.add(tid)
        if len(self.sent) > SENT_MEMORY:
            floor = self.watermark - SENT_MEMORY // 2
            self.sent = {i for i in self.sent if i > floor}
        self.watermark = max(self.watermark, tid)
        if self.wants(event):
            if self.queue.qsize() >= MAX_QUEUED_EVENTS:
                self.end("too_slow")
                return
            self.queue.put_nowait(("alarm", (self.watermark, event)))

    def end(self, reason: str) -> None:
        if not self.ended:
            self.ended = True
            self.queue.put_nowait(("end", reason))


class StreamHub:
    """One LISTEN connection and one dispatcher for every open stream of this process.

    `start()` starts both tasks (owned here), `close()` cancels them and ends every stream.
    """

    def __init__(
        self,
        db: Database,
        *,
        heartbeat_s: float,
        max_total: int,
        max_per_user: int,
        on_change: Callable[[], None] = lambda: None,
        on_principals_change: Callable[[], None] = lambda: None,
    ) -> None:
        self._db = db
        # told of every alarm, registry or compliance change notified, and of every (re)connect (the
        # pages kept, api/alarms/pages.py)
        self._on_change = on_change
        # told of every change to users, memberships, tokens and keys, and of every (re)connect
        # (the callers kept, api/deps.py)
        self._on_principals_change = on_principals_change
        self.heartbeat_s = heartbeat_s
        self.max_total = max_total
        self.max_per_user = max_per_user
        self._subs: set[_Subscription] = set()
        self._admitted: dict[int, int] = {}  # user id -> streams admitted and not yet finished
        self._last_id: int | None = None  # newest transition id dispatched
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self.listener = Listener(
            db.url,
            [
                alarms.NOTIFY_CHANNEL,
                users.REVOKED_CHANNEL,
                REGISTRY_CHANNEL,
                findings.NOTIFY_CHANNEL,
                users.PRINCIPALS_CHANNEL,
            ],
            self._on_notification,
            on_connect=self._on_connect,
            application_name="yiju-api-listen",
        )

    @property
    def open_streams(self) -> int:
        return sum(self._admitted.values())

    def start(self) -> None:
        for coro, name in ((self.listener.run(), "yiju-listen"), (self._dispatch(), "yiju-stream-dispatch")):
            task = asyncio.create_task(coro, name=name)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        self._closed = True
        for sub in list(self._subs):
            sub.end("shutdown")
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- admission (caps) -----------------------------------------------------------------------

    def admit(self, user_id: int) -> Callable[[], None]:
        """Reserve a stream slot for `user_id` or raise 429; returns the release function."""
        if self._closed:
            raise ApiError(503, "the server is shutting down")
        if self.open_streams >= self.max_total:
            raise too_many(f"this server already serves {self.max_total} live streams", STREAM_RETRY_AFTER_S)
        if self._admitted.get(user_id, 0) >= self.max_per_user:
            raise too_many(
                f"at most {self.max_per_user} live streams per user; close one (another tab or device)",
                STREAM_RETRY_AFTER_S,
            )
        self._admitted[user_id] = self._admitted.get(user_id, 0) + 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                left = self._admitted[user_id] - 1
                if left:
                    self._admitted[user_id] = left
                else:
                    del self._admitted[user_id]

        return release

    # -- subscriptions --------------------------------------------------------------------------

    async def subscribe(self, sub: _Subscription) -> None:
        """Register `sub` and replay its missed events; live events are held until the replay is done."""
        try:
            await asyncio.wait_for(self.listener.ready.wait(), LISTENER_READY_S)
        except TimeoutError:
            sub.end("database_unavailable")
            return
        self._subs.add(sub)
        try:
            while True:
                batch = await asyncio.to_thread(self._read_after, sub.watermark, sub.community_ids)
                for event in batch:
                    sub.offer(event)
                if len(batch) < REPLAY_PAGE:
                    break
        except Exception:
            log.warning("live stream replay failed", exc_info=True)
            sub.end("database_unavailable")
            return
        held, sub.held, sub.replaying = sub.held, [], False
        for event in held:
            sub.offer(event)
        if not sub.ended:
            sub.queue.put_nowait(("ready", sub.watermark))

    def unsubscribe(self, sub: _Subscription) -> None:
        self._subs.discard(sub)

    # -- notifications --------------------------------------------------------------------------

    def _on_notification(self, channel: str, payload: str) -> None:
        if channel == users.PRINCIPALS_CHANNEL:
            self._on_principals_change()
            return
        if channel == users.REVOKED_CHANNEL:
            self._on_principals_change()
            for sub in list(self._subs):
                if sub.credential == payload:
                    sub.end("revoked")
            return
        self._on_change()
        if channel == alarms.NOTIFY_CHANNEL:
            self._wake.set()

    async def _on_connect(self) -> None:
        # what was committed while the listener was away was not heard
        self._on_change()
        self._on_principals_change()
        if self._last_id is None:
            self._last_id = await asyncio.to_thread(self.latest_id)
        self._wake.set()  # after a reconnect: catch up on what was committed while away

    async def _dispatch(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._last_id is None:
                continue
            try:
                while True:
                    batch = await asyncio.to_thread(self._read_after, self._last_id, None)
                    for event in batch:
                        for sub in list(self._subs):
                            sub.deliver(event)
                    if batch:
                        self._last_id = batch[-1].transition.id
                    if len(batch) < REPLAY_PAGE:
                        break
            except Exception:  # the database went away: the listener reconnects and wakes us again
                log.warning(
                    "alarm stream dispatch failed; retrying after the listener reconnects", exc_info=True
                )

    def _read_after(self, after_id: int, community_ids: list[int] | None) -> list[AlarmEvent]:
        with self._db.connection() as conn:
            return alarms.transitions_after(conn, after_id, community_ids=community_ids, limit=REPLAY_PAGE)

    def latest_id(self) -> int:
        with self._db.connection() as conn:
            return alarms.latest_transition_id(conn)


def _end_event(reason: str) -> str:
    return f"event: end\ndata: {json.dumps({'reason': reason})}\n\n"


async def _sse(hub: StreamHub, sub: _Subscription) -> AsyncIterator[str]:
    replay = asyncio.create_task(hub.subscribe(sub), name="yiju-stream-replay")
    try:
        yield f"retry: {CLIENT_RETRY_MS}\n\n"
        while True:
            timeout = hub.heartbeat_s
            if sub.expires_at is not None:
                left = (sub.expires_at - datetime.now(UTC)).total_seconds()
                if left <= 0:
                    yield _end_event("expired")
                    return
                timeout = min(timeout, left)
            try:
                kind, payload = await asyncio.wait_for(sub.queue.get(), timeout)
            except TimeoutError:
                yield ": keep-alive\n\n"
                continue
            if kind == "end":
                yield _end_event(str(payload))
                return
            if kind == "ready":
                yield f'id: {payload}\nevent: ready\ndata: {{"last_event_id": {payload}}}\n\n'
            else:
                watermark, event = payload
                data = StreamEvent.of(event).model_dump_json()
                yield f"id: {watermark}\nevent: alarm\ndata: {data}\n\n"
    finally:
        sub.ended = True
        replay.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await replay
        hub.unsubscribe(sub)  # after the replay task is gone: it cannot register the stream again


class _StreamResponse(StreamingResponse):
    """Frees the stream's slot however the response ends (even if its body never started)."""

    def __init__(self, content: AsyncIterator[str], release: Callable[[], None]) -> None:
        super().__init__(
            content,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()


def _severities(values: Sequence[Severity] | None) -> frozenset[str] | None:
    return frozenset(s.value for s in values) if values else None


def _resume_id(since: int | None, last_event_id: str | None) -> int | None:
    if since is not None or last_event_id is None:
        return since
    # ASCII digits only: str.isdigit() accepts '²', which int() then refuses (issue 10 §6)
    text = last_event_id.strip()
    if not (0 < len(text) <= _LAST_EVENT_ID_MAX_DIGITS and text.isascii() and text.isdigit()):
        raise invalid("header.last-event-id", "must be an event id from this stream")
    value = int(text)
    if value > 2**62:
        raise invalid("header.last-event-id", "must be an event id from this stream")
    return value


@router.get(
    "/alarms/stream",
    summary="Live alarm events (Server-Sent Events), resumable with Last-Event-ID or ?since=",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": (
                "`text/event-stream`. `event: ready` once the replay is done; then `event: alarm` with a "
                "StreamEvent as data and `id:` the high-watermark event id to resume from; `event: end` "
                "(reason expired, revoked, too_slow, shutdown) when the server ends the stream."
            ),
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        429: ERROR_RESPONSES[429],
    },
)
async def stream(
    *,
    request: Request,
    principal: StreamReader,
    community_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    severity: Annotated[list[Severity] | None, Query(description="Only these severities")] = None,
    since: Annotated[
        int | None, Query(ge=0, le=2**62, description="Replay events after this id (else start now)")
    ] = None,
    last_event_id: Annotated[
        str | None, Header(max_length=30, description="Set by EventSource on reconnect")
    ] = None,
) -> StreamingResponse:
    resume = _resume_id(since, last_event_id)
    scope = principal.scope_for(community_id)
    hub: StreamHub = request.app.state.streams
    release = hub.admit(principal.user.id)
    try:
        if resume is None:
            resume = await asyncio.to_thread(hub.latest_id)
        sub = _new_subscription(principal, scope, _severities(severity), resume)
    except BaseException:
        release()
        raise
    return _StreamResponse(_sse(hub, sub), release)


def _new_subscription(
    principal: Principal, scope: list[int] | None, severities: frozenset[str] | None, watermark: int
) -> _Subscription:
    return _Subscription(
        user_id=principal.user.id,
        credential=principal.credential,
        expires_at=principal.expires_at,
        community_ids=scope,
        severities=severities,
        watermark=watermark,
    )


@router.get("/alarms/events/latest", summary="The newest alarm event id (to start a stream from now)")
def latest_event(principal: Reader, conn: Conn) -> LatestEvent:
    return LatestEvent(last_event_id=alarms.latest_transition_id(conn))
