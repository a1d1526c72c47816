"""Request and response bodies of the auth endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from storage.users import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH, PASSWORD_PATTERN, ApiKey, Role, User

Username = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.@-]{1,64}$")]
# The one password rule (storage/users.py), for creating a user and for logging in alike
Password = Annotated[
    str,
    StringConstraints(
        min_length=MIN_PASSWORD_LENGTH, max_length=MAX_PASSWORD_LENGTH, pattern=PASSWORD_PATTERN
    ),
]


class LoginRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"username": "duty1", "password": "s3cret-pass"}]}
    )
    username: Username
    password: Password


class UserOut(BaseModel):
    id: int
    username: str
    display_name: str
    role: Role
    community_ids: list[int] = Field(description="Communities the user may see (admins see all)")
    all_communities: bool

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(
            id=user.id,
            username=user.username,
            display_name=user.display_name,
            role=user.role,
            community_ids=sorted(user.community_ids),
            all_communities=user.all_communities,
        )


class LoginResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "token": "yjt_3q2-…",
                    "expires_at": "2026-11-20T20:00:00Z",
                    "user": {
                        "id": 2,
                        "username": "duty1",
                        "display_name": "值班员",
                        "role": "operator",
                        "community_ids": [1],
                        "all_communities": False,
                    },
                }
            ]
        }
    )
    token: str = Field(description="Send as `Authorization: Bearer <token>`")
    token_type: str = "bearer"  # noqa: S105 - the OAuth token type, not a secret
    expires_at: datetime
    user: UserOut


class UserCreate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "username": "duty1",
                    "password": "a-long-passphrase",
                    "role": "operator",
                    "community_ids": [1],
                    "display_name": "一号值班员",
                }
            ]
        }
    )
    username: Username
    password: Password | None = Field(
        default=None, description="Omit for an integration account that only uses API keys"
    )
    role: Role
    community_ids: list[Annotated[int, Field(ge=1, le=2**62)]] = Field(default_factory=list, max_length=1000)
    display_name: Annotated[str, StringConstraints(max_length=100, pattern=r"^[^\x00]*$")] = ""


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "fire-centre-bridge"}]})
    name: Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[^\x00]*$")]


class ApiKeyOut(BaseModel):
    id: int
    user_id: int
    name: str
    prefix: str = Field(description="First characters of the key, to recognise it")
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, key: ApiKey) -> ApiKeyOut:
        return cls(**key.__dict__)


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="The key itself; shown once, store it now (send as `X-API-Key`)")


class AuditEntry(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    target_type: str
    target_id: str | None
    community_id: int | None
    details: dict[str, Any]
