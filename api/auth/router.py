"""Login and logout, the current user, users and API keys (admin), and the audit log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, status
from fastapi.security import HTTPAuthorizationCredentials

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
from api.deps import Admin, Conn, Editor, Reader, _bearer, app_settings
from api.errors import ERROR_RESPONSES, ApiError, not_found
from api.pagination import Cursor, Limit, Page, decode_int_cursor, page_by_id
from storage import users
from yiju.settings import Settings

router = APIRouter(tags=["auth"], responses={k: ERROR_RESPONSES[k] for k in (403, 404)})

Id = Annotated[int, Path(ge=1, le=2**62)]


@router.post("/auth/login", summary="Log in with a username and password; returns a bearer token")
def login(
    body: LoginRequest, conn: Conn, settings: Annotated[Settings, Depends(app_settings)]
) -> LoginResponse:
    user = users.authenticate(conn, body.username, body.password)
    if user is None:
        raise ApiError(401, "wrong username or password")
    token, expires = users.issue_token(conn, user.id, settings.api.token_ttl)
    users.audit(
        conn,
        actor=f"user:{user.username}",
        action="login",
        target_type="user",
        target_id=str(user.id),
        community_id=None,
    )
    return LoginResponse(token=token, expires_at=expires, user=UserOut.of(user))


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
    return page_by_id([AuditEntry(**r) for r in rows], limit, lambda e: e.id)
