-- Users of the API and the console, their roles and community scopes, login tokens and API keys.
-- Secrets are never stored in clear: passwords as scrypt hashes with a per-user salt, tokens and API
-- keys (high-entropy random strings) as SHA-256 digests.

CREATE TABLE users (
    id             bigserial PRIMARY KEY,
    username       text NOT NULL UNIQUE CHECK (username ~ '^[A-Za-z0-9_.@-]{1,64}$'),
    display_name   text NOT NULL DEFAULT '',
    -- admin: every community and user management; manager: registry and alarms of its communities;
    -- operator: acts on alarms and sends commands; viewer: reads only
    role           text NOT NULL CHECK (role IN ('admin', 'manager', 'operator', 'viewer')),
    password_hash  text,                    -- NULL: cannot log in with a password (integration account)
    disabled       boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- The communities a non-admin user may see; an admin sees all of them whatever is listed here.
CREATE TABLE user_communities (
    user_id       bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    community_id  bigint NOT NULL REFERENCES communities (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, community_id)
);
CREATE INDEX user_communities_community ON user_communities (community_id);

CREATE TABLE auth_tokens (
    token_hash   text PRIMARY KEY,          -- sha256 hex of the opaque bearer token
    user_id      bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    revoked_at   timestamptz
);
CREATE INDEX auth_tokens_user ON auth_tokens (user_id);
CREATE INDEX auth_tokens_expires ON auth_tokens (expires_at);

-- API keys for integrations act as the user they belong to (its role and communities).
CREATE TABLE api_keys (
    id            bigserial PRIMARY KEY,
    user_id       bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name          text NOT NULL,
    prefix        text NOT NULL,            -- first characters of the key, to recognise it in lists
    key_hash      text NOT NULL UNIQUE,     -- sha256 hex of the key
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz
);
CREATE INDEX api_keys_user ON api_keys (user_id);

CREATE INDEX audit_log_community_at ON audit_log (community_id, at DESC);
