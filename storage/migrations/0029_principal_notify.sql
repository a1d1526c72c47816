-- Every change to who a caller is, and to what a credential admits, is announced on `yiju_principals`
-- (payload: the table), after its commit, to every API process: each keeps the callers it looked up
-- for a few seconds (api/deps.py) and drops them all when it hears this. Logout, revocation and the
-- purge of tokens (auth_tokens), a revoked or reassigned API key (api_keys), a user disabled, renamed,
-- deleted or given another role (users), a community membership added or removed (user_communities,
-- also when a community's deletion cascades) then take effect at once, as with a lookup per request.
-- Statement-level: one notification per statement (PostgreSQL folds equal ones in a transaction).
-- Not notified: a new user or a new token (nothing can be kept for them yet; a failed lookup is never
-- kept) and an API key's last-used time (written once a minute by the lookup itself).
CREATE FUNCTION notify_principals() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('yiju_principals', TG_TABLE_NAME);
    RETURN NULL;
END $$;

CREATE TRIGGER principals_changed AFTER UPDATE OR DELETE OR TRUNCATE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION notify_principals();
CREATE TRIGGER principals_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON user_communities
    FOR EACH STATEMENT EXECUTE FUNCTION notify_principals();
CREATE TRIGGER principals_changed AFTER UPDATE OR DELETE OR TRUNCATE ON auth_tokens
    FOR EACH STATEMENT EXECUTE FUNCTION notify_principals();
CREATE TRIGGER principals_changed AFTER UPDATE OF revoked_at, key_hash, user_id OR DELETE OR TRUNCATE
    ON api_keys FOR EACH STATEMENT EXECUTE FUNCTION notify_principals();
