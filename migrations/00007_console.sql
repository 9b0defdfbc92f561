-- Web console (pkg/console, docs/console.md): server-side sessions. A
-- person logs in with an API token; the browser then holds only a random
-- session ID in an HttpOnly cookie, of which this table keeps a hash.

-- +goose Up

CREATE TABLE console_sessions (
    id_hash      bytea       PRIMARY KEY CHECK (octet_length(id_hash) = 32),
    token_id     bigint      NOT NULL REFERENCES api_tokens (id),
    created_at   timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    CHECK (expires_at > created_at)
);

-- Ending every session of a token, and looking sessions up by token.
CREATE INDEX console_sessions_token_idx ON console_sessions (token_id);

COMMENT ON TABLE console_sessions IS 'Web console sessions (docs/console.md). A row is made when someone logs in to /console with an API token and deleted at logout; a session also ends when its token is revoked (checked on every request), when it has been idle too long (last_seen_at) or at expires_at. Expired rows are deleted at the next login.';
COMMENT ON COLUMN console_sessions.id_hash IS 'SHA-256 of the session ID, the 32 random bytes the browser holds in its aorta_console cookie. The ID itself is never stored, so reading this table does not let anyone use a session.';
COMMENT ON COLUMN console_sessions.token_id IS 'The API token the session was opened with (api_tokens.id): its name is the actor audited for what the session does, its role decides what the session may do, and revoking it ends the session.';
COMMENT ON COLUMN console_sessions.created_at IS 'When the session was opened (the login).';
COMMENT ON COLUMN console_sessions.last_seen_at IS 'When the session last made a request, written at most once a minute; the session ends after the console''s idle timeout (30 minutes by default) without one.';
COMMENT ON COLUMN console_sessions.expires_at IS 'Absolute end of the session (created_at plus the console''s session lifetime, 12 hours by default), however active it is.';

-- +goose Down

DROP TABLE console_sessions;
