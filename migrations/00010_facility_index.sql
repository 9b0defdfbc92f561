-- The facility search index made partial, for the listener's sake.
--
-- The listener's de-duplication lookup names the sender by values it
-- reads from arrays, so it can never use an index whose predicate needs
-- a constant. On a messages table autovacuum has not analysed yet (a new
-- installation's first minute, a benchmark's fresh database), the planner
-- has no statistics to tell that a control ID picks out one message, and
-- rated messages_facility_idx as good as messages_dedup_idx for the
-- lookup: every lookup then read all of the facility's messages in the
-- window, slower with every message stored. Partial, the index is out of
-- the lookup's reach; searches by facility state its predicate, which
-- also lets their generic plans use it (pkg/store, messageSearchSQL). A
-- message without MSH-4 is searched without it.
--
-- Rebuilt concurrently, so that a large table keeps taking messages while
-- it is built.

-- +goose NO TRANSACTION

-- +goose Up

DROP INDEX CONCURRENTLY IF EXISTS messages_facility_partial_idx;
CREATE INDEX CONCURRENTLY messages_facility_partial_idx ON messages (sending_facility, received_at)
    WHERE sending_facility <> '';
DROP INDEX CONCURRENTLY IF EXISTS messages_facility_idx;
ALTER INDEX messages_facility_partial_idx RENAME TO messages_facility_idx;

COMMENT ON INDEX messages_facility_idx IS 'Message search by sending facility (MSH-4), newest first: GET /api/v1/messages?facility=. Partial so that the listener''s de-duplication lookup cannot use it (migration 00010).';

-- +goose Down

DROP INDEX CONCURRENTLY IF EXISTS messages_facility_idx;
CREATE INDEX CONCURRENTLY messages_facility_idx ON messages (sending_facility, received_at);
