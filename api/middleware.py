"""ASGI middleware of the API: security headers on every response and a request deadline.

Both are plain ASGI (no BaseHTTPMiddleware), so streaming responses pass through untouched.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable, Sequence
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.kept import Kept

log = logging.getLogger("yiju.api")

# The console and /docs load only their own files (issue 10 §10: the duty room may have no internet,
# and nothing from elsewhere may run in it). Inline style attributes are used by the console's bars
# and by Swagger UI; scripts are files only. Framing this server's pages is refused (clickjacking of
# alarm actions); the console itself frames the indicator report it fetched (a blob: URL).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "connect-src 'self'; font-src 'self'; frame-src 'self' blob:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
)


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in SECURITY_HEADERS if k not in present]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, with_headers)


class RequestDeadline:
    """A request that has not started its response after `deadline_s` gets a 503.

    Why: a frozen or overloaded PostgreSQL makes requests hang for as long as it stays frozen
    (issue 10 §7); the statement timeout cannot help when the server does not answer at all. The
    handler's worker thread cannot be interrupted; it finishes (or fails) when the database answers,
    and whatever it sends then is dropped. Once a response has started (a live stream) the deadline no
    longer applies. Paths under `exempt` (the CSV import, long by nature) have none.
    """

    def __init__(self, app: ASGIApp, *, deadline_s: float, exempt: Iterable[str] = ()) -> None:
        self.app = app
        self.deadline_s = deadline_s
        self.exempt = tuple(exempt)
        self._abandoned: set[asyncio.Task[None]] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or str(scope.get("path", "")).startswith(self.exempt):
            await self.app(scope, receive, send)
            return
        started = False
        timed_out = False

        async def guarded(message: Message) -> None:
            nonlocal started
            if timed_out:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        task = asyncio.ensure_future(self.app(scope, receive, guarded))
        done, _ = await asyncio.wait({task}, timeout=self.deadline_s)
        if done or started:
            await task
            return
        timed_out = True
        # owned here until it ends: cancelled now, awaited by nobody, kept referenced until done
        task.cancel()
        self._abandoned.add(task)
        task.add_done_callback(self._finished)
        log.warning(
            "%s %s: no response within %.1f s; answered 503", scope["method"], scope["path"], self.deadline_s
        )
        body = json.dumps(
            {
                "error": "unavailable",
                "message": f"no answer within {self.deadline_s:g} s (the database is slow or unreachable); "
                "retry shortly",
                "fields": [],
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 503,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", b"5"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._abandoned.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.info("a request abandoned at its deadline failed later: %s", task.exception())


class InFlightLimit:
    """At most `limit` requests inside the application at once; the others wait here, on the event
    loop, holding nothing.

    Why: FastAPI runs each sync dependency and the endpoint in separate thread-pool calls, and a
    request holds its pooled connection between them. With more requests than connections, the 40
    worker threads could all end up blocked waiting for a connection while the requests holding the
    connections wait for a thread: at concurrency 100 the duty-room mix fell from 65 to 9 req/s with
    5 s pool timeouts (bench/api.py). A request needs one connection at a time, so admitting as many
    requests as the pool has connections cannot starve. A response that has started (a live stream)
    leaves the limit at once.
    """

    def __init__(self, app: ASGIApp, *, limit: int, prefix: str = "/api/") -> None:
        self.app = app
        self.prefix = prefix
        self._slots = asyncio.Semaphore(limit)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        await self._slots.acquire()
        held = True

        def release() -> None:
            nonlocal held
            if held:
                held = False
                self._slots.release()

        async def releasing(message: Message) -> None:
            if message["type"] == "http.response.start":
                release()
            await send(message)

        try:
            await self.app(scope, receive, releasing)
        finally:
            release()


_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class AfterWrites:
    """Tells each of `kept` when a write request (any method but GET, HEAD, OPTIONS) arrives
    (`write_begins`), and once when its response starts (`write_ends`) — after its commit: a route's
    connection commits before its response (api/deps.py), and a route that opens its own connection
    (the CSV import) commits inside the endpoint — or when it failed half-way (a commit may still have
    happened).

    Why: the values this process keeps (api/kept.py: alarm pages, callers) must not outlive a change
    this process made; a caller that acknowledged an alarm then reloads the board must see it
    acknowledged, without waiting for the notification to come back; and between the commit and the
    response no read may be served, or keep, what was kept from before it.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        kept: Sequence[Kept[Any, Any]],
        prefix: str = "/api/",
    ) -> None:
        self.app = app
        self.kept = tuple(kept)
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] in _READ_METHODS
            or not str(scope.get("path", "")).startswith(self.prefix)
        ):
            await self.app(scope, receive, send)
            return
        ended = False

        def end() -> None:
            nonlocal ended
            if not ended:
                ended = True
                for k in self.kept:
                    k.write_ends()

        async def after_commit(message: Message) -> None:
            if message["type"] == "http.response.start":
                end()
            await send(message)

        for k in self.kept:
            k.write_begins()
        try:
            await self.app(scope, receive, after_commit)
        finally:
            end()
