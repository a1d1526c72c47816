"""Prometheus metrics of the API: requests by route template and status, latency, open live streams.

Labels are bounded: the route is the template FastAPI matched (`/api/v1/alarms/{alarm_id}`), never
the path a client sent; a path that matched no route is counted as `unmatched`. The middleware is
plain ASGI (not Starlette's BaseHTTPMiddleware) so that it never buffers a response: the live alarm
stream passes through it untouched.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.routing import Mount, compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
UNMATCHED = "unmatched"
# any other method a client invents is counted as "other" (a label value per invented word would not be)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


@dataclass(frozen=True)
class ApiMetrics:
    requests: Counter
    latency_seconds: Histogram
    in_flight: Gauge
    open_streams: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry) -> ApiMetrics:
        """Once per registry (the composition root's, or a private one for an app built in a test)."""
        return cls(
            requests=Counter(
                "yiju_api_requests",
                "HTTP requests answered, by method, route template and status code",
                ["method", "route", "status"],
                registry=registry,
            ),
            latency_seconds=Histogram(
                "yiju_api_request_duration_seconds",
                "From the request to the start of the response (headers sent), by route template; "
                "for the live stream that is the time to open it",
                ["method", "route"],
                buckets=LATENCY_BUCKETS_S,
                registry=registry,
            ),
            in_flight=Gauge("yiju_api_requests_in_flight", "Requests being handled", registry=registry),
            open_streams=Gauge(
                "yiju_api_open_streams", "Live alarm streams (Server-Sent Events) open now", registry=registry
            ),
        )

    def watch_streams(self, count: Callable[[], int]) -> None:
        """Read the number of open streams at scrape time from its owner (the stream hub)."""
        self.open_streams.set_function(lambda: float(count()))


class RouteTemplates:
    """The full route template of a handled request, e.g. `/api/v1/alarms/{alarm_id}`.

    Starlette puts the matched route in `scope["route"]`; with routers included under a prefix
    (FastAPI ≥ 0.16x keeps them as included routers), that route's own `path` lacks the prefix. The
    full templates are the application's OpenAPI paths plus its top-level routes and mounts, built
    once on first use: the first whose pattern matches the request path and that ends with the
    matched route's own path is the template."""

    def __init__(self, app: Any) -> None:
        self._app = app
        self._patterns: list[tuple[re.Pattern[str], str]] | None = None
        # the patterns whose template ends with a route's own path, in order, by that path: a request
        # tries its few candidates, not every template (bench/api.py: ~100 regex matches a request)
        self._candidates: dict[str, list[tuple[re.Pattern[str], str]]] = {}

    def _build(self) -> list[tuple[re.Pattern[str], str]]:
        out: list[tuple[re.Pattern[str], str]] = []
        for template in self._app.openapi().get("paths", {}):
            out.append((compile_path(template)[0], template))
        for route in self._app.routes:
            path = getattr(route, "path", None)
            if not isinstance(path, str) or not path:
                continue
            pattern = compile_path(path + "/{rest:path}" if isinstance(route, Mount) else path)[0]
            out.append((pattern, path))
        return out

    def of(self, scope: Scope) -> str:
        route: Any = scope.get("route")
        own = getattr(route, "path", None)
        if not isinstance(own, str) or not own:
            return UNMATCHED
        candidates = self._candidates.get(own)
        if candidates is None:
            if self._patterns is None:
                self._patterns = self._build()
            candidates = [(p, t) for p, t in self._patterns if t.endswith(own)]
            self._candidates[own] = candidates  # bounded: one entry per route of the app
        path = scope.get("path", "")
        for pattern, template in candidates:
            if pattern.match(path):
                return template
        return own  # a route of its own kind: its own template is still bounded


class MetricsMiddleware:
    """Counts and times every HTTP request (lifespan and other scopes pass straight through)."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics, routes: RouteTemplates) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        m = self.metrics
        method = scope["method"] if scope["method"] in METHODS else "other"
        t0 = time.perf_counter()
        status = 500  # an exception that escapes the app is answered 500 by the server
        route: str | None = None  # resolved once, when the response starts (routing is done by then)

        async def send_wrapper(message: Message) -> None:
            nonlocal status, route
            if message["type"] == "http.response.start" and route is None:
                status = int(message["status"])
                route = self.routes.of(scope)
                m.latency_seconds.labels(method, route).observe(time.perf_counter() - t0)
            await send(message)

        m.in_flight.inc()
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            m.in_flight.dec()
            if route is None:
                route = self.routes.of(scope)
                m.latency_seconds.labels(method, route).observe(time.perf_counter() - t0)
            m.requests.labels(method, route, str(status)).inc()
