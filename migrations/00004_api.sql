-- HTTP API: bearer tokens with roles, and the indexes behind the searches
-- the API offers (messages, events, alerts). Every list the API serves is
-- read through an index; raw bodies are never scanned.

-- +goose Up

CREATE TABLE api_tokens (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         text        NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$'),
    role         text        NOT NULL CHECK (role IN ('viewer', 'analyst', 'clinician', 'admin')),
    token_hash   bytea       NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
    created_at   timestamptz NOT NULL DEFAULT now(),
    created_by   text        NOT NULL,
    last_used_at timestamptz,
    revoked_at   timestamptz
);

COMMENT ON TABLE api_tokens IS 'Bearer tokens for the router''s HTTP API (docs/api.md), created and revoked with "router token". Only a hash of each token is kept: a lost token is revoked and replaced, never recovered.';
COMMENT ON COLUMN api_tokens.id IS 'Row ID.';
COMMENT ON COLUMN api_tokens.name IS 'Who or what holds the token (a person, a service); recorded as the actor in audit_log. Unique, and not reused after revocation, so the audit trail names one holder.';
COMMENT ON COLUMN api_tokens.role IS 'viewer: reads everything but raw message bodies; analyst: also bodies, reprocessing, dead letters and routes; clinician: also alert acknowledgement and SpO2 scales; admin: everything.';
COMMENT ON COLUMN api_tokens.token_hash IS 'SHA-256 of the whole token string ("aorta_" followed by 32 random bytes in unpadded base64url). The token itself is shown once, at creation.';
COMMENT ON COLUMN api_tokens.created_at IS 'When the token was created.';
COMMENT ON COLUMN api_tokens.created_by IS 'Who created it: "cli:" and the operating-system user that ran "router token create".';
COMMENT ON COLUMN api_tokens.last_used_at IS 'When the token last authenticated a request, updated at most once a minute; NULL when never used.';
COMMENT ON COLUMN api_tokens.revoked_at IS 'When the token was revoked; a revoked token authenticates nothing. NULL while valid.';

ALTER TABLE dead_letters ADD COLUMN resolved_by text;

COMMENT ON COLUMN dead_letters.resolved_by IS 'The API token name that reprocessed or discarded it (audited in audit_log); NULL while open.';

-- Message search (GET /api/v1/messages): newest first, keyset on
-- (received_at, id); each filter has an index of its own.
CREATE INDEX messages_received_id_idx ON messages (received_at, id);
-- It serves every query the (received_at) index served; one index fewer
-- for each stored message to update.
DROP INDEX messages_received_at_idx;
CREATE INDEX messages_type_idx ON messages (message_type, trigger_event, received_at);
CREATE INDEX messages_control_id_idx ON messages (control_id);
CREATE INDEX messages_facility_idx ON messages (sending_facility, received_at);
CREATE INDEX messages_ack_code_idx ON messages (ack_code, received_at) WHERE ack_code IS NOT NULL;
CREATE INDEX messages_not_accepted_idx ON messages (received_at) WHERE status <> 'accepted';
CREATE INDEX messages_duplicated_idx ON messages (received_at) WHERE duplicate_count > 0;
CREATE INDEX message_routing_exception_idx ON message_routing (status) WHERE status <> 'routed';

-- A bare patient identifier is resolved to its keys through patients.
CREATE INDEX patients_patient_id_idx ON patients (patient_id);

-- Event search (GET /api/v1/events) by clinical time.
CREATE INDEX events_occurred_idx ON events (occurred_at);

-- Alert lists (GET /api/v1/alerts): newest first, keyset on (raised_at, id).
CREATE INDEX alerts_raised_idx ON alerts (raised_at, id);
CREATE INDEX alerts_patient_idx ON alerts (patient_key, raised_at);

-- +goose Down

DROP INDEX alerts_patient_idx;
DROP INDEX alerts_raised_idx;
DROP INDEX events_occurred_idx;
DROP INDEX patients_patient_id_idx;
DROP INDEX message_routing_exception_idx;
DROP INDEX messages_duplicated_idx;
DROP INDEX messages_not_accepted_idx;
DROP INDEX messages_ack_code_idx;
DROP INDEX messages_facility_idx;
DROP INDEX messages_control_id_idx;
DROP INDEX messages_type_idx;
CREATE INDEX messages_received_at_idx ON messages (received_at);
DROP INDEX messages_received_id_idx;
ALTER TABLE dead_letters DROP COLUMN resolved_by;
DROP TABLE api_tokens;
