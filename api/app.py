"""The FastAPI application: REST under /api/v1, the live alarm stream, and the console under /console/.

`create_app(settings)` is the only entry point; the lifespan builds the connection pool once, starts
the live-stream hub (one LISTEN connection) and the token purge, and on shutdown stops them (every
live stream ended) before closing the pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CollectorRegistry

from api.alarms.pages import AlarmPages
from api.alarms.router import router as alarms_router
from api.alarms.stream import StreamHub
from api.alarms.stream import router as stream_router
from api.auth.gate import HashGate
from api.auth.router import router as auth_router
from api.commands.router import router as commands_router
from api.communities.router import router as communities_router
from api.compliance.pages import ComplianceSummaries
from api.compliance.router import router as compliance_router
from api.dead_letters.router import router as dead_letters_router
from api.deps import Callers
from api.devices.router import router as devices_router
from api.docs import install_docs
from api.errors import ERROR_RESPONSES, install_error_handlers
from api.indicators.router import router as indicators_router
from api.linkage.router import router as linkage_router
from api.metrics import ApiMetrics, MetricsMiddleware, RouteTemplates
from api.middleware import AfterWrites, InFlightLimit, RequestDeadline, SecurityHeaders
from api.sites.router import router as sites_router
from storage import throttle, users
from storage.db import Database
from yiju.errors import ConfigurationError, YijuError
from yiju.settings import Settings

log = logging.getLogger("yiju.api")

STATIC_DIR = Path(__file__).resolve().parent / "static"
API_PREFIX = "/api/v1"

DESCRIPTION = """
Yiju (宜居) monitoring API for smart residential communities: the device registry, telemetry,
alarms with their full history, compliance summaries and device commands, plus a live alarm stream.

**Authentication.** `POST /api/v1/auth/login` returns a bearer token (send `Authorization: Bearer …`);
integrations use an API key (`X-API-Key: …`). Every user has a role (admin, manager, operator,
viewer) and sees only its communities: objects of other communities answer 404.

**Pagination.** Lists return `{"items": [...], "next_cursor": ...}`; pass `cursor=<next_cursor>`.

**Errors.** `{"error", "message", "fields": [{"field", "reason"}]}`; 422 for invalid input.
"""

TAGS = [
    {"name": "auth", "description": "Login, users, API keys, the audit log"},
    {"name": "communities", "description": "Communities and buildings, with per-building status"},
    {"name": "devices", "description": "Device registry, presence, CSV import, telemetry"},
    {"name": "alarms", "description": "Alarms, their lifecycle and history, and the live stream"},
    {"name": "compliance", "description": "Compliance check summaries (auto-cutoff, fault alarm, CCTV, …)"},
    {"name": "commands", "description": "Commands down to devices and their status"},
    {"name": "dead letters", "description": "Inbound messages ingest refused, with the reason"},
    {
        "name": "linkage",
        "description": "Emergency linkage: people, on-duty roster, chains, policies, incidents",
    },
]


def create_app(settings: Settings, metrics: ApiMetrics | None = None) -> FastAPI:
    """The application for `settings`; `settings.database.url` must be set (the CLI resolves it).
    `metrics`: the process's API metric set (yiju.metrics); unset, a private unexposed one."""
    url = settings.database.url
    api_metrics = metrics or ApiMetrics.create(CollectorRegistry())
    if url is None:
        raise ConfigurationError("the API needs a database URL (YIJU_DATABASE__URL or a running local stack)")
    api = settings.api
    alarm_pages = AlarmPages()
    summaries = ComplianceSummaries()

    def kept_changed() -> None:
        # an alarm, registry or compliance notification, or a reconnect (api/alarms/pages.py)
        alarm_pages.changed()
        summaries.changed()

    callers = Callers()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = settings.database
        database = Database(
            url,
            min_size=db.pool_min_size,
            max_size=db.pool_max_size,
            timeout_s=db.connect_timeout_s,
            statement_timeout_s=api.statement_timeout_s,
            application_name="yiju-api",
        )
        database.open()
        hub = StreamHub(
            database,
            heartbeat_s=api.stream_heartbeat_s,
            max_total=api.stream_max_total,
            max_per_user=api.stream_max_per_user,
            on_change=kept_changed,
            on_principals_change=callers.changed,
        )
        alarm_pages.listening = summaries.listening = callers.listening = hub.listener.ready.is_set
        app.state.db = database
        api_metrics.watch_streams(lambda: hub.open_streams)
        app.state.settings = settings
        app.state.streams = hub
        app.state.alarm_pages = alarm_pages
        app.state.compliance_summaries = summaries
        app.state.callers = callers
        app.state.login_gate = HashGate(api.login_max_concurrent_hashes, api.login_hash_wait_s)
        hub.start()
        upkeep = asyncio.create_task(_purge_expired(database, settings), name="yiju-api-token-purge")
        try:
            yield
        finally:
            upkeep.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await upkeep
            await hub.close()
            database.close()

    app = FastAPI(
        title="Yiju API",
        version=version("yiju"),
        description=DESCRIPTION,
        openapi_tags=TAGS,
        lifespan=lifespan,
        docs_url=None,  # served locally by api.docs (FastAPI's own page loads Swagger UI from a CDN)
        redoc_url=None,
        responses={401: ERROR_RESPONSES[401], 422: ERROR_RESPONSES[422], 503: ERROR_RESPONSES[503]},
    )
    install_error_handlers(app)
    app.add_middleware(MetricsMiddleware, metrics=api_metrics, routes=RouteTemplates(app))
    for router in (
        auth_router,
        communities_router,
        devices_router,
        stream_router,  # before /alarms/{alarm_id}, which would otherwise match /alarms/stream
        alarms_router,
        compliance_router,
        commands_router,
        indicators_router,
        dead_letters_router,
        linkage_router,
        sites_router,
    ):
        app.include_router(router, prefix=API_PREFIX)

    install_docs(app)
    app.mount("/console", StaticFiles(directory=STATIC_DIR, html=True), name="console")

    @app.get("/", include_in_schema=False)
    def _root() -> RedirectResponse:
        return RedirectResponse("/console/")

    @app.get("/favicon.ico", include_in_schema=False)
    def _favicon() -> RedirectResponse:
        # browsers ask the root for it on pages that name none (/docs, a JSON response)
        return RedirectResponse("/console/favicon.svg", status_code=301)

    @app.get("/healthz", include_in_schema=False)
    def _health() -> dict[str, str]:
        return {"status": "ok"}

    # innermost first: as many requests inside as the pool has connections (each needs one at a
    # time, so none can starve); a write's response drops the alarm pages and callers kept (api/kept.py);
    # the deadline counts the wait for a slot; headers on every response.
    # The CSV import is long by nature (up to 200,000 rows); everything else answers or gets a 503.
    app.add_middleware(InFlightLimit, limit=settings.database.pool_max_size, prefix=f"{API_PREFIX}/")
    app.add_middleware(AfterWrites, kept=(alarm_pages, summaries, callers), prefix=f"{API_PREFIX}/")
    app.add_middleware(
        RequestDeadline, deadline_s=api.request_deadline_s, exempt=(f"{API_PREFIX}/devices/import",)
    )
    app.add_middleware(SecurityHeaders)
    return app


async def _purge_expired(database: Database, settings: Settings) -> None:
    """Owned by the lifespan (cancelled at shutdown): expired tokens and ended login windows go."""
    interval_s = settings.api.token_purge_interval.total_seconds()
    window = settings.api.login_window

    def purge() -> tuple[int, int]:
        with database.connection() as conn:
            return users.purge_expired_tokens(conn), throttle.purge(conn, window)

    while True:
        try:
            tokens, windows = await asyncio.to_thread(purge)
            if tokens or windows:
                log.info("purged %d expired token(s) and %d login window(s)", tokens, windows)
        except YijuError as exc:
            log.warning("token purge failed (retrying next round): %s", exc)
        await asyncio.sleep(interval_s)
