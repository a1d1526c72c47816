"""Typed dependencies shared by the routers: a database connection per request, the current principal
(from a login token or an API key) and its community scope.

Routers are plain `def` functions, so FastAPI runs them (and the blocking database calls in them) in
its thread pool, never on the event loop. A request's connection is one transaction: the mutation and
its audit-log row commit together, or neither does.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from api.errors import ApiError, not_found
from storage import users
from storage.db import Connection, Database
from storage.users import Role, User
from yiju.settings import Settings

_bearer = HTTPBearer(auto_error=False, description="Login token from POST /api/v1/auth/login")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key of an integration")


def app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def database(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def _connection(request: Request) -> Iterator[Connection]:
    # commits on success, rolls back on an exception; connection loss becomes DatabaseUnavailable (503)
    with database(request).connection() as conn:
        yield conn


Conn = Annotated[Connection, Depends(_connection, scope="function")]


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user logged in with a token, or an integration with an API key."""

    user: User
    via: str  # "token" | "api_key"
    expires_at: datetime | None = None  # when the credential stops being valid (None: an API key)
    credential: str = ""  # its name on users.REVOKED_CHANNEL: "token:<sha256>" | "apikey:<id>"

    @property
    def actor(self) -> str:
        """How the principal appears in alarm transitions and the audit log."""
        return f"user:{self.user.username}" if self.via == "token" else f"apikey:{self.user.username}"

    @property
    def role(self) -> Role:
        return self.user.role

    @property
    def community_ids(self) -> frozenset[int] | None:
        """None: every community (admin)."""
        return None if self.user.all_communities else self.user.community_ids

    def sees(self, community_id: int) -> bool:
        return self.user.all_communities or community_id in self.user.community_ids

    def scope_for(self, community_id: int | None) -> list[int] | None:
        """Community ids to filter a list by: the requested one (404 if not visible), or all visible."""
        if community_id is not None:
            if not self.sees(community_id):
                raise not_found("community", community_id)
            return [community_id]
        ids = self.community_ids
        return None if ids is None else sorted(ids)


def _principal(
    conn: Connection, bearer: HTTPAuthorizationCredentials | None, api_key: str | None
) -> Principal:
    if bearer is not None and bearer.credentials:
        session = users.session_for_token(conn, bearer.credentials)
        if session is not None:
            return Principal(session.user, "token", session.expires_at, session.credential)
    elif api_key:
        session = users.session_for_api_key(conn, api_key)
        if session is not None:
            return Principal(session.user, "api_key", None, session.credential)
    raise ApiError(401, "missing, invalid or expired credentials")


def current_principal(
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key)],
    conn: Conn,
) -> Principal:
    """The caller, looked up on the request's own connection (FastAPI gives the route the same one):
    one pool checkout, one liveness check and one commit per request instead of two of each, which
    was the largest share of a short request's time (bench/api.py). The lookup runs on every request;
    revocation, expiry and a disabled user take effect at once."""
    return _principal(conn, bearer, api_key)


def standalone_principal(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key)],
) -> Principal:
    """The caller, looked up on a short connection of its own: for the routes that must not hold a
    pooled connection while they run — a live stream (it lasts for hours) and the CSV import (it
    opens its own, with the import's longer statement timeout; holding two at once could starve the
    pool that `InFlightLimit` sizes at one connection per request)."""
    with database(request).connection() as conn:
        return _principal(conn, bearer, api_key)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]

# What each role may do (domain.md §1): viewers read; operators act on alarms and send commands;
# managers also edit their communities' registry; admins everything, users included.
_READ = frozenset(Role)
_ACT = frozenset({Role.ADMIN, Role.MANAGER, Role.OPERATOR})
_EDIT = frozenset({Role.ADMIN, Role.MANAGER})
_ADMIN = frozenset({Role.ADMIN})


def _requires(allowed: frozenset[Role], what: str, *, standalone: bool = False) -> Any:
    def check(principal: CurrentPrincipal) -> Principal:
        if principal.role not in allowed:
            raise ApiError(403, f"role {principal.role.value} may not {what}")
        return principal

    def check_standalone(principal: Annotated[Principal, Depends(standalone_principal)]) -> Principal:
        return check(principal)

    return Depends(check_standalone if standalone else check)


Reader = Annotated[Principal, _requires(_READ, "read")]
Operator = Annotated[Principal, _requires(_ACT, "act on alarms or send commands")]
Editor = Annotated[Principal, _requires(_EDIT, "change the registry")]
Admin = Annotated[Principal, _requires(_ADMIN, "administer users and communities")]
# the same roles, authenticated on a connection of their own (see `standalone_principal`)
StreamReader = Annotated[Principal, _requires(_READ, "read", standalone=True)]
ImportEditor = Annotated[Principal, _requires(_EDIT, "change the registry", standalone=True)]
