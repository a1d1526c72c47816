"""The FastAPI application: REST under /api/v1, the live alarm stream, and the console under /console/.

`create_app(settings)` is the only entry point; the lifespan builds the connection pool once and, on
shutdown, stops every live stream before closing it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CollectorRegistry
from psycopg_pool import ConnectionPool

from api.alarms.router import router as alarms_router
from api.alarms.stream import StreamHub
from api.alarms.stream import router as stream_router
from api.auth.router import router as auth_router
from api.commands.router import router as commands_router
from api.communities.router import router as communities_router
from api.compliance.router import router as compliance_router
from api.dead_letters.router import router as dead_letters_router
from api.devices.router import router as devices_router
from api.errors import ERROR_RESPONSES, install_error_handlers
from api.indicators.router import router as indicators_router
from api.linkage.router import router as linkage_router
from api.metrics import ApiMetrics, MetricsMiddleware, RouteTemplates
from yiju.errors import ConfigurationError
from yiju.settings import Settings

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

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = settings.database
        pool: ConnectionPool = ConnectionPool(
            url,
            min_size=db.pool_min_size,
            max_size=db.pool_max_size,
            timeout=db.connect_timeout_s,
            kwargs={"options": "-c timezone=UTC", "application_name": "yiju-api"},
            open=False,
        )
        pool.open(wait=False)
        hub = StreamHub(url, heartbeat_s=settings.api.stream_heartbeat_s)
        api_metrics.watch_streams(lambda: hub.open_streams)
        app.state.pool = pool
        app.state.settings = settings
        app.state.streams = hub
        try:
            yield
        finally:
            await hub.close()
            pool.close()

    app = FastAPI(
        title="Yiju API",
        version=version("yiju"),
        description=DESCRIPTION,
        openapi_tags=TAGS,
        lifespan=lifespan,
        responses={401: ERROR_RESPONSES[401], 422: ERROR_RESPONSES[422]},
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
    ):
        app.include_router(router, prefix=API_PREFIX)

    app.mount("/console", StaticFiles(directory=STATIC_DIR, html=True), name="console")

    @app.get("/", include_in_schema=False)
    def _root() -> RedirectResponse:
        return RedirectResponse("/console/")

    @app.get("/healthz", include_in_schema=False)
    def _health() -> dict[str, str]:
        return {"status": "ok"}

    return app
