-- Least-privilege PostgreSQL roles for Aorta (docs/operations.md, "Database
-- roles").
--
-- Run once as a superuser (or the database owner with CREATEROLE), connected
-- to Aorta's database, AFTER the migrations have been applied by the
-- migration user that owns the schema:
--
--     mllp-listener migrate --database-url postgres://aorta_owner@db/aorta
--     psql -v ON_ERROR_STOP=1 -d aorta -f docs/roles.sql
--
-- Run it again after every upgrade: a new migration may add a table that a
-- process needs, and every statement here may be repeated. The processes
-- then run with --migrate=false as the LOGIN users at the end of this file
-- (set their passwords with \password in psql, or use certificates).
--
-- Roles are cluster-wide; the grants are per database. The tables stay
-- owned by the migration user, so none of these roles can ALTER, DROP or
-- TRUNCATE anything. integration/roles_test.go runs this very file (with
-- the role names made unique) and proves that the listener and the router
-- work with these grants and that the listener cannot do more.

-- Group roles: they hold the privileges and cannot log in.
DO $$
BEGIN
    CREATE ROLE aorta_listener NOLOGIN;
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;
DO $$
BEGIN
    CREATE ROLE aorta_router NOLOGIN;
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;
DO $$
BEGIN
    CREATE ROLE aorta_api NOLOGIN;
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;
DO $$
BEGIN
    CREATE ROLE aorta_retention NOLOGIN;
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;

-- Connecting and finding the tables (PUBLIC usually has both already; an
-- installation that revoked them from PUBLIC needs these).
DO $$
BEGIN
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO aorta_listener, aorta_router, aorta_api', current_database());
END $$;
GRANT USAGE ON SCHEMA public TO aorta_listener, aorta_router, aorta_api;

-- The listener (pkg/store Save) stores what it receives and nothing else.
-- It inserts batches, messages and their outbox rows (the outbox trigger
-- only calls pg_notify, which PUBLIC may run). For de-duplication it reads
-- the sender, control ID, arrival time, hash and stored ACK of earlier
-- messages, never their bytes, and counts a re-send on the original. It
-- cannot read events or patient state, change a stored message's bytes or
-- status, or delete anything.
GRANT INSERT ON batches, messages, outbox TO aorta_listener;
GRANT SELECT (id, sending_application, sending_facility, control_id, received_at, raw_sha256, ack, duplicate_count)
    ON messages TO aorta_listener;
GRANT UPDATE (duplicate_count, last_duplicate_at) ON messages TO aorta_listener;
-- ON CONFLICT (id) / (message_id) DO NOTHING makes a retried commit
-- idempotent; the conflict columns must be readable.
GRANT SELECT (id) ON batches TO aorta_listener;
GRANT SELECT (message_id) ON outbox TO aorta_listener;

-- The router (pkg/store lanes, routing, scoring, deliveries, replay) reads
-- the messages the outbox names, never changes them, and owns everything
-- derived from them: it leases lanes, claims and completes outbox rows
-- (and queues them again for "router replay" and merges), writes events,
-- per-patient state, scores, alerts, deliveries and dead letters.
GRANT SELECT ON messages TO aorta_router;
GRANT SELECT, INSERT, UPDATE, DELETE ON outbox TO aorta_router;
GRANT SELECT, UPDATE ON router_lanes TO aorta_router;
GRANT SELECT, INSERT, UPDATE, DELETE ON routers TO aorta_router;
GRANT SELECT, INSERT ON events TO aorta_router;
GRANT SELECT, INSERT, UPDATE ON message_routing, patients, patient_links, scores, alerts, deliveries TO aorta_router;
GRANT SELECT, INSERT, UPDATE, DELETE ON observations TO aorta_router;
-- The ops summary's counts and the idle-feed states (docs/router.md, "Feeds").
GRANT SELECT, INSERT, UPDATE, DELETE ON ops_watermarks, ops_senders, ops_sender_counts, ops_route_counts, feed_status
    TO aorta_router;
GRANT SELECT, INSERT ON dead_letters, audit_log TO aorta_router;

-- The HTTP API (pkg/api, served by the router today, so the router is a
-- member) reads messages with their bodies (its own tokens decide who may
-- see them), events, state, alerts and dead letters; it acknowledges
-- alerts (an event and its deliveries), sets SpO2 scales, reprocesses
-- messages and resolves dead letters, audits each of these, and records
-- when a token was last used. Tokens are created and revoked with
-- "router token" as the migration user: a compromised process cannot mint
-- itself an admin token.
GRANT SELECT ON messages, batches, outbox, message_routing, events, observations, patients, patient_links,
    scores, alerts, deliveries, dead_letters TO aorta_api;
GRANT INSERT ON outbox, events, deliveries, audit_log TO aorta_api;
GRANT INSERT, UPDATE ON patients TO aorta_api;
GRANT UPDATE ON alerts TO aorta_api;
GRANT UPDATE (resolved_at, resolution, resolved_by) ON dead_letters TO aorta_api;
GRANT SELECT ON ops_watermarks, ops_senders, ops_sender_counts, ops_route_counts, feed_status TO aorta_api;
GRANT SELECT ON api_tokens TO aorta_api;
GRANT UPDATE (last_used_at) ON api_tokens TO aorta_api;
-- The web console (docs/console.md) keeps its sessions server-side.
GRANT SELECT, INSERT, DELETE ON console_sessions TO aorta_api;
GRANT UPDATE (last_seen_at) ON console_sessions TO aorta_api;
GRANT aorta_api TO aorta_router;

-- Retention (docs/operations.md, "Retention") is the only thing that
-- deletes stored messages, events, audit rows and alerts, so it has a role
-- of its own rather than the router's: grant it to the router's login only
-- where the router runs the passes (--retain-*), or give it to a separate
-- login that runs "router retention" from a scheduled job. It deletes a
-- resolved alert with its finished deliveries, and never updates either.
GRANT SELECT ON messages, batches, outbox, message_routing, events, observations, dead_letters, scores, alerts,
    deliveries, audit_log TO aorta_retention;
GRANT DELETE ON messages, batches, message_routing, events, observations, dead_letters, audit_log, alerts, deliveries
    TO aorta_retention;
GRANT INSERT ON audit_log TO aorta_retention;

-- Example LOGIN users, one per process, members of the group roles. Give
-- each running instance its own user if you want pg_stat_activity and the
-- server log to tell them apart.
DO $$
BEGIN
    CREATE ROLE aorta_listener_login LOGIN IN ROLE aorta_listener;
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;
DO $$
BEGIN
    CREATE ROLE aorta_router_login LOGIN IN ROLE aorta_router;
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;
