"""Login and logout, the current user, users and API keys (admin), and the audit log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, status
from fastapi.security import HTTPAuthorizationCredentials

from api.auth.gate import HashGate
from api.auth.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyOut,
    AuditEntry,
    LoginRequest,
    LoginResponse,
    UserCreate,
    UserOut,
)
from api.deps import Admin, Conn, Editor, Reader, _bearer, app_settings, database
from api.errors import ERROR_RESPONSES, ApiError, not_found, too_many
from api.pagination import Cursor, Limit, Page, decode_int_cursor, page_by_id
from storage import throttle, users
from storage.users import User
from yiju.settings import Settings

router = APIRouter(tags=["auth"], responses={k: ERROR_RESPONSES[k] for k in (403, 404)})

Id = Annotated[int, Path(ge=1, le=2**62)]


@router.post(
    "/auth/login",
    summary="Log in with a username and password; returns a bearer token",
    responses={429: ERROR_RESPONSES[429]},
)
def login(
    body: LoginRequest, request: Request, settings: Annotated[Settings, Depends(app_settings)]
) -> LoginResponse:
    """Throttled per username and per client address (429 + Retry-After, audited); the password hash
    is computed in a bounded number of slots and without holding a database connection."""
    db, gate = database(request), _gate(request)
    api = settings.api
    client = request.client.host if request.client else "unknown"
    keys = {
        f"user:{body.username}": api.login_max_failures_per_user,
        f"addr:{client}": api.login_max_failures_per_address,
    }
    with db.connection() as conn:
        blocked = throttle.blocked_for(conn, keys, api.login_window)
        if blocked is not None:
            users.audit(
                conn,
                actor=f"addr:{client}",
                action="login.throttled",
                target_type="user",
                target_id=body.username,
                community_id=None,
                details={
                    "client": client,
                    "key": blocked[0].split(":", 1)[0],
                    "retry_after_s": round(blocked[1]),
                },
            )
        record = users.login_record(conn, body.username) if blocked is None else None
    if blocked is not None:
        raise too_many("too many failed logins; wait before trying again", blocked[1])
    with gate.slot():
        ok = users.verify_password(body.password, record.password_hash if record else None)
    ok = ok and record is not None and not record.disabled
    user: User | None = None
    with db.connection() as conn:
        if not ok:
            throttle.record_failure(conn, keys, api.login_window)
            users.audit(
                conn,
                actor=f"addr:{client}",
                action="login.failed",
                target_type="user",
                target_id=body.username,
                community_id=None,
                details={"client": client},
            )
        else:
            assert record is not None
            user = users.get_user(conn, record.user_id)
            assert user is not None
            throttle.clear(conn, f"user:{body.username}")
            token, expires = users.issue_token(conn, user.id, api.token_ttl)
            users.audit(
                conn,
                actor=f"user:{user.username}",
                action="login",
                target_type="user",
                target_id=str(user.id),
                community_id=None,
                details={"client": client},
            )
    if user is None:
        raise ApiError(401, "wrong username or password")
    return LoginResponse(token=token, expires_at=expires, user=UserOut.of(user))


def _gate(request: Request) -> HashGate:
    gate: HashGate = request.app.state.login_gate
    return gate


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT, summary="Revoke the current token")
def logout(
    principal: Reader,
    conn: Conn,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    if bearer is not None and users.revoke_token(conn, bearer.credentials):
        users.audit(
            conn,
            actor=principal.actor,
            action="logout",
            target_type="user",
            target_id=str(principal.user.id),
            community_id=None,
        )


@router.get("/auth/me", summary="The current user, its role and communities")
def me(principal: Reader) -> UserOut:
    return UserOut.of(principal.user)


@router.get("/users", summary="List users (admin)")
def list_users(principal: Admin, conn: Conn) -> list[UserOut]:
    return [UserOut.of(u) for u in users.list_users(conn)]


@router.post("/users", status_code=status.HTTP_201_CREATED, summary="Create a user (admin)")
def create_user(body: UserCreate, principal: Admin, conn: Conn) -> UserOut:
    user = users.create_user(
        conn,
        username=body.username,
        role=body.role,
        password=body.password,
        community_ids=frozenset(body.community_ids),
        display_name=body.display_name,
    )
    users.audit(
        conn,
        actor=principal.actor,
        action="user.create",
        target_type="user",
        target_id=str(user.id),
        community_id=None,
        details={"role": user.role.value, "community_ids": sorted(user.community_ids)},
    )
    return UserOut.of(user)


@router.post(
    "/users/{user_id}/api-keys",
    status_code=status.HTTP_201_CREATED,
    summary="Create an API key acting as this user (admin); the key is shown once",
)
def create_api_key(user_id: Id, body: ApiKeyCreate, principal: Admin, conn: Conn) -> ApiKeyCreated:
    if users.get_user(conn, user_id) is None:
        raise not_found("user", user_id)
    key, clear = users.create_api_key(conn, user_id, body.name)
    users.audit(
        conn,
        actor=principal.actor,
        action="api_key.create",
        target_type="api_key",
        target_id=str(key.id),
        community_id=None,
        details={"user_id": user_id, "name": body.name},
    )
    return ApiKeyCreated(**ApiKeyOut.of(key).model_dump(), key=clear)


@router.get("/api-keys", summary="List API keys (admin); keys themselves are never shown again")
def list_api_keys(principal: Admin, conn: Conn) -> list[ApiKeyOut]:
    return [ApiKeyOut.of(k) for k in users.list_api_keys(conn)]


@router.delete(
    "/api-keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Revoke an API key (admin)"
)
def revoke_api_key(key_id: Id, principal: Admin, conn: Conn) -> None:
    if not users.revoke_api_key(conn, key_id):
        raise not_found("active API key", key_id)
    users.audit(
        conn,
        actor=principal.actor,
        action="api_key.revoke",
        target_type="api_key",
        target_id=str(key_id),
        community_id=None,
    )


@router.get("/audit", summary="The audit log of the caller's communities, newest first (admin, manager)")
def audit_log(principal: Editor, conn: Conn, limit: Limit = 100, cursor: Cursor = None) -> Page[AuditEntry]:
    rows = users.list_audit(
        conn, community_ids=principal.community_ids, before_id=decode_int_cursor(cursor), limit=limit + 1
    )
    return page_by_id(
        [AuditEntry.model_validate(r, from_attributes=True) for r in rows], limit, lambda e: e.id
    )
