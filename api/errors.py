"""Error responses: one JSON shape for every failure, and no input that can produce a 500.

    {"error": "<code>", "message": "<human text>", "fields": [{"field": "query.limit", "reason": "..."}]}

Validation errors are 422 with the field and the reason; unknown ids (and objects outside the caller's
communities, so that their existence is not revealed) are 404; Yiju's own errors are translated here.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from yiju.errors import DatabaseUnavailable, InputError, StorageError

log = logging.getLogger("yiju.api")


class FieldError(BaseModel):
    field: str = Field(examples=["query.limit"])
    reason: str = Field(examples=["Input should be less than or equal to 500"])


class ErrorBody(BaseModel):
    error: str = Field(examples=["not_found"])
    message: str = Field(examples=["alarm 42 not found"])
    fields: list[FieldError] = Field(default_factory=list)


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Missing or invalid credentials"},
    403: {"model": ErrorBody, "description": "The role may not do this"},
    404: {"model": ErrorBody, "description": "Unknown id, or outside the caller's communities"},
    422: {"model": ErrorBody, "description": "Invalid input: the field and the reason"},
    429: {"model": ErrorBody, "description": "Too many requests; retry after `Retry-After` seconds"},
    503: {"model": ErrorBody, "description": "The database is unreachable or slow; retry shortly"},
}
# Retry-After of a 503 (the database is restarting or overloaded): long enough not to hammer it.
DATABASE_RETRY_AFTER_S = 5

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    422: "validation_error",
    429: "too_many_requests",
    503: "unavailable",
}


class ApiError(StarletteHTTPException):
    """An HTTP error with our body; raise it from routers."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        fields: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(status_code=status, detail=message, headers=headers)
        self.fields = fields or []


def too_many(message: str, retry_after_s: float) -> ApiError:
    """429 with `Retry-After` (whole seconds, at least 1)."""
    return ApiError(429, message, headers={"Retry-After": str(max(1, math.ceil(retry_after_s)))})


def not_found(what: str, ident: object) -> ApiError:
    return ApiError(404, f"{what} {ident} not found")


def invalid(field: str, reason: str) -> ApiError:
    return ApiError(422, f"{field}: {reason}", fields=[FieldError(field=field, reason=reason)])


def _body(
    status: int, message: str, fields: list[FieldError] | None = None, code: str | None = None
) -> JSONResponse:
    body = ErrorBody(error=code or _CODES.get(status, "error"), message=message, fields=fields or [])
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def _field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(p) for p in loc)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        # a route that authenticates inside its endpoint (api/deps.py `ReadCall`) leaves this check:
        # invalid credentials are a 401 before anything about the query is said, as for every route
        authenticate: Callable[[], Awaitable[bool]] | None = getattr(request.state, "authenticate", None)
        if authenticate is not None:
            try:
                valid = await authenticate()
            except DatabaseUnavailable as lost:
                return await _db_down(request, lost)
            if not valid:
                return _body(401, "missing, invalid or expired credentials")
        fields = [
            FieldError(field=_field_name(e.get("loc", ())), reason=str(e.get("msg", "")))
            for e in exc.errors()
        ]
        message = "; ".join(f"{f.field}: {f.reason}" for f in fields) or "invalid request"
        return _body(422, message, fields)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        fields = exc.fields if isinstance(exc, ApiError) else []
        response = _body(exc.status_code, str(exc.detail), fields)
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    @app.exception_handler(InputError)
    async def _input(request: Request, exc: InputError) -> JSONResponse:
        return _body(422, str(exc), code="invalid_input")

    @app.exception_handler(DatabaseUnavailable)
    async def _db_down(request: Request, exc: DatabaseUnavailable) -> JSONResponse:
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc)
        response = _body(503, str(exc))
        response.headers["Retry-After"] = str(DATABASE_RETRY_AFTER_S)
        return response

    @app.exception_handler(StorageError)
    async def _storage(request: Request, exc: StorageError) -> JSONResponse:
        log.warning("storage error on %s %s: %s", request.method, request.url.path, exc)
        return _body(409, str(exc), code="conflict")
