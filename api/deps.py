"""Typed dependencies shared by the routers: a database connection per request, the current principal
(from a login token or an API key) and its community scope.

Routers are plain `def` functions, so FastAPI runs them (and the blocking database calls in them) in
its thread pool, never on the event loop. A request's connection is one transaction: the mutation and
its audit-log row commit together, or neither does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from api.errors import ApiError, not_found
from api.kept import Kept
from storage import users
from storage.db import Connection, Database
from storage.users import Role, User
from yiju.settings import Settings

_bearer = HTTPBearer(auto_error=False, description="Login token from POST /api/v1/auth/login")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key of an integration")


async def app_settings(request: Request) -> Settings:
    """The settings, as a dependency (`async`: a plain `def` would cost a thread-pool hand-off)."""
    settings: Settings = request.app.state.settings
    return settings


def database(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


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


def _lookup(
    conn: Connection, bearer: HTTPAuthorizationCredentials | None, api_key: str | None
) -> Principal | None:
    if bearer is not None and bearer.credentials:
        session = users.session_for_token(conn, bearer.credentials)
        if session is not None:
            return Principal(session.user, "token", session.expires_at, session.credential)
    elif api_key:
        session = users.session_for_api_key(conn, api_key)
        if session is not None:
            return Principal(session.user, "api_key", None, session.credential)
    return None


def _principal(
    conn: Connection, bearer: HTTPAuthorizationCredentials | None, api_key: str | None
) -> Principal:
    principal = _lookup(conn, bearer, api_key)
    if principal is None:
        raise ApiError(401, "missing, invalid or expired credentials")
    return principal


_READ_METHODS = frozenset({"GET", "HEAD"})


@dataclass(frozen=True)
class _RequestSession:
    conn: Connection
    principal: Principal | None  # None: no credentials, or ones that are invalid or expired


def _session(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key)],
) -> Iterator[_RequestSession]:
    """The request's connection and, when it carries credentials, the caller looked up on it.

    Why one dependency: FastAPI runs every plain `def` dependency in its thread pool, one hand-off
    each (and a generator's exit one more), and a short request's time was mostly those hand-offs,
    the pool checkout and the commit (bench/api.py). Here one hand-off checks a connection out and
    looks the caller up, the route's queries run on the same connection, and one commit ends it.
    The lookup runs on every request here: revocation, expiry and a disabled user take effect at once
    (the hot reads keep the caller until any such change is notified: `ReadCall`, `Callers`).
    A write request is one transaction (its mutation and audit row commit together, or neither does);
    a read runs in autocommit. Connection loss becomes DatabaseUnavailable (503).
    """
    # a GET only reads (and an API key's last-used time, one row by itself): no transaction for it
    with database(request).connection(autocommit=request.method in _READ_METHODS) as conn:
        yield _RequestSession(conn, _lookup(conn, bearer, api_key))


_Session = Annotated[_RequestSession, Depends(_session, scope="function")]


async def _connection(session: _Session) -> Connection:
    return session.conn


Conn = Annotated[Connection, Depends(_connection)]


async def current_principal(session: _Session) -> Principal:
    """The caller (401 without valid credentials), from the request's session."""
    if session.principal is None:
        raise ApiError(401, "missing, invalid or expired credentials")
    return session.principal


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

T = TypeVar("T")


# How long a caller looked up is served again without a lookup (api/kept.py): every change to users,
# memberships, tokens and keys is notified (migration 0029) and drops them all; this bounds what a
# lost notification could leave, well under anything a person notices. A token past its expiry is
# never served, whatever its age.
CALLER_MAX_AGE_S = 5.0
MAX_CALLERS = 4096  # distinct credentials kept; beyond it the oldest goes


class Callers(Kept[str, Principal]):
    """The callers of the hot reads, by a digest of their credential (the raw secret is not kept)."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        super().__init__(max_age_s=CALLER_MAX_AGE_S, max_entries=MAX_CALLERS, clock=clock)
        self._now = now

    def fresh(self, value: Principal) -> bool:
        # checked on every hit: a token ends at its expiry even when kept (and notified by nobody)
        return value.expires_at is None or value.expires_at > self._now()


def credential_key(bearer: HTTPAuthorizationCredentials | None, api_key: str | None) -> str | None:
    """The key a caller is kept under: which kind of credential and its SHA-256 (None: none given)."""
    if bearer is not None and bearer.credentials:
        return "token:" + users.secret_digest(bearer.credentials)
    if api_key:
        return "apikey:" + users.secret_digest(api_key)
    return None


@dataclass(frozen=True)
class ReadCall:
    """A read request's work, run in one thread-pool call at most: connection, caller, queries and body.

    Why: the duty room's hot reads (alarm board and detail, device list, telemetry, compliance) are
    short, and with `Reader` + `Conn` FastAPI spent three thread hand-offs on each (the session's
    entry and exit, the endpoint), a large share of their server CPU (bench/api.py). An `async`
    route taking `ReadCall` hands off once: `run(work)` checks a connection out (autocommit, as any
    read), looks the caller up (401 as `Reader` gives it; every role may read), and runs
    `work(conn, principal)` — which encodes the body there too (api/fastjson.py).

    The caller is kept (`Callers`) for a few seconds, until any change to users, memberships, tokens
    or keys is notified, and never past its token's expiry: `run` then skips the lookup's query, and
    when `kept(principal)` has the answer already (a kept alarm page) it is returned on the event
    loop, with no thread and no connection at all.
    """

    db: Database
    callers: Callers
    key: str
    bearer: HTTPAuthorizationCredentials | None
    api_key: str | None

    async def run(
        self, work: Callable[[Connection, Principal], T], kept: Callable[[Principal], T | None] | None = None
    ) -> T:
        principal = self.callers.get(self.key)
        if principal is not None and kept is not None:
            answer = kept(principal)
            if answer is not None:
                return answer
        return await run_in_threadpool(self._run, work, principal)

    def _run(self, work: Callable[[Connection, Principal], T], principal: Principal | None) -> T:
        with self.db.connection(autocommit=True) as conn:
            if principal is None:
                generation, started = self.callers.generation(), self.callers.clock()
                principal = _principal(conn, self.bearer, self.api_key)
                self.callers.put(self.key, generation, principal, started)
            return work(conn, principal)

    async def authenticated(self) -> bool:
        """Whether the credentials are valid (for a request FastAPI refused before `run`)."""
        if self.callers.get(self.key) is not None:
            return True
        return await run_in_threadpool(self._look_up) is not None

    def _look_up(self) -> Principal | None:
        with self.db.connection(autocommit=True) as conn:
            return _lookup(conn, self.bearer, self.api_key)


async def read_call(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key)],
) -> ReadCall:
    """`ReadCall` for the request; without any credentials the 401 comes here, before the query
    parameters are checked, as `Reader`'s does. With credentials, a query FastAPI refuses (422) is
    refused as 401 instead when they are invalid (api/errors.py asks `request.state.authenticate`):
    authentication comes first, as with `Reader`."""
    key = credential_key(bearer, api_key)
    if key is None:
        raise ApiError(401, "missing, invalid or expired credentials")
    call = ReadCall(database(request), request.app.state.callers, key, bearer, api_key)
    request.state.authenticate = call.authenticated
    return call


FastReader = Annotated[ReadCall, Depends(read_call)]

# What each role may do (domain.md §1): viewers read; operators act on alarms and send commands;
# managers also edit their communities' registry; admins everything, users included.
_READ = frozenset(Role)
_ACT = frozenset({Role.ADMIN, Role.MANAGER, Role.OPERATOR})
_EDIT = frozenset({Role.ADMIN, Role.MANAGER})
_ADMIN = frozenset({Role.ADMIN})


def _requires(allowed: frozenset[Role], what: str, *, standalone: bool = False) -> Any:
    # `async def` although nothing here awaits: FastAPI runs a plain `def` dependency in its thread
    # pool, one hand-off per dependency and request, and this check never blocks (bench/api.py)
    async def check(principal: CurrentPrincipal) -> Principal:
        return _allowed(principal)

    async def check_standalone(principal: Annotated[Principal, Depends(standalone_principal)]) -> Principal:
        return _allowed(principal)

    def _allowed(principal: Principal) -> Principal:
        if principal.role not in allowed:
            raise ApiError(403, f"role {principal.role.value} may not {what}")
        return principal

    return Depends(check_standalone if standalone else check)


Reader = Annotated[Principal, _requires(_READ, "read")]
Operator = Annotated[Principal, _requires(_ACT, "act on alarms or send commands")]
Editor = Annotated[Principal, _requires(_EDIT, "change the registry")]
Admin = Annotated[Principal, _requires(_ADMIN, "administer users and communities")]
# the same roles, authenticated on a connection of their own (see `standalone_principal`)
StreamReader = Annotated[Principal, _requires(_READ, "read", standalone=True)]
ImportEditor = Annotated[Principal, _requires(_EDIT, "change the registry", standalone=True)]
