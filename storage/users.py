"""Users, roles, community scopes, login tokens, API keys and the audit log.

Passwords are hashed with scrypt (RFC 7914) and a random per-user salt; the stored form names its
parameters so they can be raised later without invalidating existing hashes. Tokens and API keys are
256-bit random strings, so a plain SHA-256 digest is enough to store them (there is nothing to
brute-force); they are looked up by that digest.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import psycopg
from psycopg.rows import class_row, dict_row
from psycopg.types.json import Jsonb

from yiju.errors import InputError

# scrypt cost: N=2^15, r=8, p=1 needs 32 MiB and ~50-100 ms per hash (OWASP 2023 minimum is N=2^17
# with r=8 for interactive logins on servers; 2^15 keeps login fast on the small duty-room machines
# while staying far above legacy schemes). Stored with the hash, so raising it later is safe.
SCRYPT_N = 2**15
SCRYPT_R = 8
SCRYPT_P = 1
SCRYPT_MAXMEM_BYTES = 64 * 1024 * 1024
SALT_BYTES = 16
HASH_BYTES = 32
TOKEN_BYTES = 32
TOKEN_PREFIX = "yjt_"  # noqa: S105 - a visible prefix, not a secret
API_KEY_PREFIX = "yjk_"
# The one password rule, for creating a user and for logging in (api/auth/schemas.py uses the same
# constants): 8 to 256 characters, no control characters (NUL cannot be stored, and a control
# character is never typed at a login prompt).
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 256
PASSWORD_PATTERN = r"^[^\x00-\x1f\x7f]*$"  # noqa: S105 - a rule, not a secret
_PASSWORD_RE = re.compile(PASSWORD_PATTERN)
# An API key's last_used_at is written at most this often: a write per request doubled the latency of
# key-authenticated requests under load (issue 10 §11); a minute is precise enough to spot a dead key.
API_KEY_TOUCH_INTERVAL_S = 60
# Token and API-key revocations are announced here (payload `token:<sha256>` or `apikey:<id>`), so
# that every API process ends the live streams opened with them (storage/notify.py listens).
REVOKED_CHANNEL = "yiju_credentials_revoked"
# Any change to users, their communities, tokens or API keys is announced here by triggers (migration
# 0029), so that every API process drops the callers it keeps (api/deps.py).
PRINCIPALS_CHANNEL = "yiju_principals"


class Role(StrEnum):
    ADMIN = "admin"
    MANAGER = "manager"
    OPERATOR = "operator"
    VIEWER = "viewer"


@dataclass(frozen=True)
class User:
    id: int
    username: str
    display_name: str
    role: Role
    disabled: bool
    community_ids: frozenset[int]

    @property
    def all_communities(self) -> bool:
        return self.role is Role.ADMIN


@dataclass(frozen=True)
class Session:
    """An authenticated caller: the user, when its credential stops being valid (None: an API key,
    valid until revoked) and the credential's name on `REVOKED_CHANNEL`."""

    user: User
    expires_at: datetime | None
    credential: str


@dataclass(frozen=True)
class ApiKey:
    id: int
    user_id: int
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


# ---------------------------------------------------------------------------------------------
# Password hashing (pure)


def password_problem(password: str) -> str | None:
    """Why `password` breaks the password rule, or None when it satisfies it."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"password must be at least {MIN_PASSWORD_LENGTH} characters"
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"password must be at most {MAX_PASSWORD_LENGTH} characters"
    if not _PASSWORD_RE.match(password):
        return "password must not contain control characters"
    return None


def hash_password(password: str) -> str:
    problem = password_problem(password)
    if problem is not None:
        raise InputError(problem)
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str | None) -> bool:
    """Constant-time check; an unusable stored hash never matches."""
    if stored is None:
        # same work as a real check, so a missing user cannot be told apart by timing
        _scrypt(password, b"\0" * SALT_BYTES, SCRYPT_N, SCRYPT_R, SCRYPT_P)
        return False
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.urlsafe_b64decode(digest + "==")
        actual = _scrypt(password, base64.urlsafe_b64decode(salt + "=="), int(n), int(r), int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8", "surrogatepass"),
        salt=salt,
        n=n,
        r=r,
        p=p,
        maxmem=SCRYPT_MAXMEM_BYTES,
        dklen=HASH_BYTES,
    )


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def secret_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


# ---------------------------------------------------------------------------------------------
# Users


def create_user(
    conn: psycopg.Connection[Any],
    *,
    username: str,
    role: Role,
    password: str | None,
    community_ids: frozenset[int] = frozenset(),
    display_name: str = "",
) -> User:
    """Insert a user; raises InputError for a taken name or an unknown community."""
    password_hash = hash_password(password) if password is not None else None
    with conn.transaction():
        try:
            row = conn.execute(
                "INSERT INTO users (username, display_name, role, password_hash) VALUES (%s, %s, %s, %s) "
                "RETURNING id",
                (username, display_name, role.value, password_hash),
            ).fetchone()
        except psycopg.errors.UniqueViolation as exc:
            raise InputError(f"user {username!r} already exists") from exc
        except psycopg.errors.CheckViolation as exc:
            raise InputError(f"invalid username {username!r}") from exc
        assert row is not None
        user_id = int(row[0])
        _set_communities(conn, user_id, community_ids)
    user = get_user(conn, user_id)
    assert user is not None
    return user


def _set_communities(conn: psycopg.Connection[Any], user_id: int, community_ids: frozenset[int]) -> None:
    if not community_ids:
        return
    found = conn.execute("SELECT id FROM communities WHERE id = ANY(%s)", (sorted(community_ids),)).fetchall()
    missing = set(community_ids) - {int(r[0]) for r in found}
    if missing:
        raise InputError(f"unknown community id(s): {sorted(missing)}")
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO user_communities (user_id, community_id) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            [(user_id, c) for c in sorted(community_ids)],
        )


def community_ids_by_code(conn: psycopg.Connection[Any], codes: list[str]) -> frozenset[int]:
    """Community ids for codes (or ids written as text); InputError naming the unknown ones."""
    found: set[int] = set()
    for code in codes:
        row = conn.execute(
            "SELECT id FROM communities WHERE code = %s OR id::text = %s", (code, code)
        ).fetchone()
        if row is None:
            raise InputError(f"unknown community {code!r}")
        found.add(int(row[0]))
    return frozenset(found)


_USER_SELECT = """
    SELECT u.id, u.username, u.display_name, u.role, u.disabled,
           coalesce(array_agg(uc.community_id) FILTER (WHERE uc.community_id IS NOT NULL), '{}') AS cids
    FROM users u LEFT JOIN user_communities uc ON uc.user_id = u.id
"""


def _user(row: dict[str, Any]) -> User:
    return User(
        id=int(row["id"]),
        username=row["username"],
        display_name=row["display_name"],
        role=Role(row["role"]),
        disabled=bool(row["disabled"]),
        community_ids=frozenset(int(c) for c in row["cids"]),
    )


def get_user(conn: psycopg.Connection[Any], user_id: int) -> User | None:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(_USER_SELECT + " WHERE u.id = %s GROUP BY u.id", (user_id,))
        row = cur.fetchone()
    return _user(row) if row else None


def get_user_by_username(conn: psycopg.Connection[Any], username: str) -> User | None:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(_USER_SELECT + " WHERE u.username = %s GROUP BY u.id", (username,))
        row = cur.fetchone()
    return _user(row) if row else None


def display_names(conn: psycopg.Connection[Any], usernames: Sequence[str]) -> dict[str, str]:
    """username → display name (the username when the display name is empty), for alarm histories."""
    rows = conn.execute(
        "SELECT username, COALESCE(NULLIF(display_name, ''), username) FROM users WHERE username = ANY(%s)",
        (list(usernames),),
    ).fetchall()
    return {str(u): str(n) for u, n in rows}


def list_users(conn: psycopg.Connection[Any]) -> list[User]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(_USER_SELECT + " GROUP BY u.id ORDER BY u.id")
        return [_user(r) for r in cur.fetchall()]


@dataclass(frozen=True)
class LoginRecord:
    """What checking a login needs, read before the (slow) hash is computed without a connection."""

    user_id: int
    password_hash: str | None
    disabled: bool


def login_record(conn: psycopg.Connection[Any], username: str) -> LoginRecord | None:
    row = conn.execute(
        "SELECT id, password_hash, disabled FROM users WHERE username = %s", (username,)
    ).fetchone()
    return LoginRecord(int(row[0]), row[1], bool(row[2])) if row else None


# ---------------------------------------------------------------------------------------------
# Tokens and API keys


def issue_token(conn: psycopg.Connection[Any], user_id: int, ttl: timedelta) -> tuple[str, datetime]:
    """A new opaque bearer token and its expiry; only its digest is stored."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
    expires = datetime.now(UTC) + ttl
    conn.execute(
        "INSERT INTO auth_tokens (token_hash, user_id, expires_at) VALUES (%s, %s, %s)",
        (secret_digest(token), user_id, expires),
    )
    return token, expires


def session_for_token(conn: psycopg.Connection[Any], token: str) -> Session | None:
    """The session of a login token, with its user, in one query: it runs on every API request, and a
    round trip more per request was a measurable share of the API's time (bench/api.py)."""
    digest = secret_digest(token)
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            """
            SELECT u.id, u.username, u.display_name, u.role, u.disabled, t.expires_at,
                   coalesce(array_agg(uc.community_id) FILTER (WHERE uc.community_id IS NOT NULL), '{}')
                       AS cids
            FROM auth_tokens t
            JOIN users u ON u.id = t.user_id
            LEFT JOIN user_communities uc ON uc.user_id = u.id
            WHERE t.token_hash = %s AND t.revoked_at IS NULL AND t.expires_at > now() AND NOT u.disabled
            GROUP BY u.id, t.expires_at
            """,
            (digest,),
        )
        row = cur.fetchone()
    return Session(_user(row), row["expires_at"], f"token:{digest}") if row else None


def revoke_token(conn: psycopg.Connection[Any], token: str) -> bool:
    digest = secret_digest(token)
    cur = conn.execute(
        "UPDATE auth_tokens SET revoked_at = now() WHERE token_hash = %s AND revoked_at IS NULL", (digest,)
    )
    if cur.rowcount > 0:
        conn.execute("SELECT pg_notify(%s, %s)", (REVOKED_CHANNEL, f"token:{digest}"))
    return cur.rowcount > 0


def purge_expired_tokens(conn: psycopg.Connection[Any]) -> int:
    """Delete tokens expired for more than a day (kept that long to explain a just-expired login)."""
    return conn.execute("DELETE FROM auth_tokens WHERE expires_at < now() - interval '1 day'").rowcount


def create_api_key(conn: psycopg.Connection[Any], user_id: int, name: str) -> tuple[ApiKey, str]:
    """A new API key for `user_id`; the clear key is returned once and never stored."""
    key = API_KEY_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "INSERT INTO api_keys (user_id, name, prefix, key_hash) VALUES (%s, %s, %s, %s) "
            "RETURNING id, user_id, name, prefix, created_at, last_used_at, revoked_at",
            (user_id, name, key[:10], secret_digest(key)),
        )
        row = cur.fetchone()
    assert row is not None
    return ApiKey(**row), key


def list_api_keys(conn: psycopg.Connection[Any], user_id: int | None = None) -> list[ApiKey]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT id, user_id, name, prefix, created_at, last_used_at, revoked_at FROM api_keys "
            "WHERE %(uid)s::bigint IS NULL OR user_id = %(uid)s ORDER BY id",
            {"uid": user_id},
        )
        return [ApiKey(**r) for r in cur.fetchall()]


def revoke_api_key(conn: psycopg.Connection[Any], key_id: int) -> bool:
    cur = conn.execute(
        "UPDATE api_keys SET revoked_at = now() WHERE id = %s AND revoked_at IS NULL", (key_id,)
    )
    if cur.rowcount > 0:
        conn.execute("SELECT pg_notify(%s, %s)", (REVOKED_CHANNEL, f"apikey:{key_id}"))
    return cur.rowcount > 0


def session_for_api_key(conn: psycopg.Connection[Any], key: str) -> Session | None:
    row = conn.execute(
        "SELECT k.id, k.user_id, "
        "k.last_used_at IS NULL OR k.last_used_at < now() - make_interval(secs => %s) "
        "FROM api_keys k JOIN users u ON u.id = k.user_id "
        "WHERE k.key_hash = %s AND k.revoked_at IS NULL AND NOT u.disabled",
        (API_KEY_TOUCH_INTERVAL_S, secret_digest(key)),
    ).fetchone()
    if row is None:
        return None
    if row[2]:
        # the condition is repeated so that concurrent requests write it once
        conn.execute(
            "UPDATE api_keys SET last_used_at = now() WHERE id = %s "
            "AND (last_used_at IS NULL OR last_used_at < now() - make_interval(secs => %s))",
            (row[0], API_KEY_TOUCH_INTERVAL_S),
        )
    user = get_user(conn, int(row[1]))
    return Session(user, None, f"apikey:{row[0]}") if user else None


# ---------------------------------------------------------------------------------------------
# Audit log


def audit(
    conn: psycopg.Connection[Any],
    *,
    actor: str,
    action: str,
    target_type: str,
    target_id: str | None,
    community_id: int | None,
    details: dict[str, Any] | None = None,
) -> None:
    """Record one mutation by a person or an integration (call inside the mutation's transaction)."""
    conn.execute(
        "INSERT INTO audit_log (actor, action, target_type, target_id, community_id, details) "
        "VALUES (%s, %s, %s, %s, %s, %s)",
        (actor, action, target_type, target_id, community_id, Jsonb(details or {})),
    )


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One entry of the audit log."""

    id: int
    at: datetime
    actor: str
    action: str
    target_type: str
    target_id: str | None
    community_id: int | None
    details: dict[str, Any]


def list_audit(
    conn: psycopg.Connection[Any],
    *,
    community_ids: frozenset[int] | None,
    before_id: int | None,
    limit: int,
) -> list[AuditRecord]:
    """Newest first; `community_ids=None` means every community (and entries without one)."""
    with conn.cursor(row_factory=class_row(AuditRecord)) as cur:
        cur.execute(
            "SELECT id, at, actor, action, target_type, target_id, community_id, details FROM audit_log "
            "WHERE (%(all)s OR community_id = ANY(%(cids)s)) "
            "AND (%(before)s::bigint IS NULL OR id < %(before)s) ORDER BY id DESC LIMIT %(limit)s",
            {
                "all": community_ids is None,
                "cids": sorted(community_ids or ()),
                "before": before_id,
                "limit": limit,
            },
        )
        return cur.fetchall()
