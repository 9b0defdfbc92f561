-- Message search by routing exception (GET /api/v1/messages?status=
-- dead_lettered or unrouted, and the console's message browser): the
-- matching messages newest first, without reading the others.
--
-- message_routing_exception_idx (status) WHERE status <> 'routed'
-- (migration 00004) found the exceptions but not in the list's order, so
-- PostgreSQL walked messages_received_id_idx newest first and probed
-- message_routing for each message until a page was full: with 0.3 % of
-- messages dead-lettered (make bench-console, 1,000,000 messages) 38,000
-- messages for the first page, 94 ms p95 alone and 327 ms with 4
-- clients, and more the rarer dead letters are. Reading all the
-- exceptions and sorting them was no better (docs/api.md). The order
-- has to be in the index, so message_routing gets a copy of the
-- message's received_at and the index becomes (status, received_at,
-- message_id): a page is the next 51 entries of one status, each message
-- then read by key, whatever the share of exceptions. status leads so
-- that dead letters are not searched for among the (ten times more)
-- unrouted messages.
--
-- The router copies received_at when it writes the routing row
-- (pkg/store, queueOutcome). A router of an earlier release, still
-- running while the routers are rolled (docs/operations.md, Upgrading),
-- does not name the column: a trigger fills it in then, only for a row
-- written without it (the WHEN clause is checked without calling the
-- function, so the router's own writes do not pay for it).
-- messages.received_at never changes once stored, so the copy cannot go
-- stale.
--
-- Cost on the router: 8 bytes per routing row and a look-up of its
-- message by key (cached: the router has just read the message; not
-- measurable in a pgbench of the upsert alone). The index stays partial,
-- with entries for exceptions only; it replaces the (status) index,
-- whose every use it serves.
--
-- No transaction, for a large table: existing rows are filled in batches
-- of 10,000, each committed, so that no row stays locked for long and the
-- router keeps writing; NOT NULL is then proved by a constraint validated
-- without blocking writes, and the index is built concurrently. Every
-- step can run again after an interruption. Filling rewrites every row:
-- 13 s for the bench's 969,817 routing rows on a busy 2-core machine,
-- and the table's files double (138 to 288 MB there) until vacuum hands
-- the old versions' space to new rows.

-- +goose NO TRANSACTION

-- +goose Up

ALTER TABLE message_routing ADD COLUMN IF NOT EXISTS received_at timestamptz;

COMMENT ON COLUMN message_routing.received_at IS 'The message''s received_at (messages.received_at, which never changes), copied so that exceptions can be listed newest first from message_routing_exception_idx. Written by the router; filled in by a trigger for a writer that does not name it.';

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION message_routing_fill_received_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    SELECT m.received_at INTO NEW.received_at FROM messages m WHERE m.id = NEW.message_id;
    RETURN NEW;
END
$$;
-- +goose StatementEnd

COMMENT ON FUNCTION message_routing_fill_received_at() IS 'Fills in message_routing.received_at from the message for a writer that does not name it (a router of an earlier release during an upgrade; migration 00012).';

DROP TRIGGER IF EXISTS message_routing_fill_received_at ON message_routing;
CREATE TRIGGER message_routing_fill_received_at BEFORE INSERT OR UPDATE ON message_routing
    FOR EACH ROW WHEN (NEW.received_at IS NULL) EXECUTE FUNCTION message_routing_fill_received_at();

-- The rows written before the trigger, in message_id order, 10,000 per
-- transaction (upto is the batch's last key; NULL for the last batch).
-- Each row's message is read by key: a subquery rather than a join, so
-- that no batch can be planned as a scan of messages.
-- +goose StatementBegin
DO $$
DECLARE
    done uuid := '00000000-0000-0000-0000-000000000000';
    upto uuid;
BEGIN
    LOOP
        SELECT message_id INTO upto FROM message_routing WHERE message_id > done ORDER BY message_id OFFSET 9999 LIMIT 1;
        IF upto IS NULL THEN
            UPDATE message_routing r SET received_at = (SELECT m.received_at FROM messages m WHERE m.id = r.message_id)
            WHERE r.message_id > done AND r.received_at IS NULL;
            COMMIT;
            EXIT;
        END IF;
        UPDATE message_routing r SET received_at = (SELECT m.received_at FROM messages m WHERE m.id = r.message_id)
        WHERE r.message_id > done AND r.message_id <= upto AND r.received_at IS NULL;
        COMMIT;
        done := upto;
    END LOOP;
END
$$;
-- +goose StatementEnd

-- SET NOT NULL alone would scan the table holding a lock that stops
-- every reader and writer; a validated CHECK lets it skip the scan, and
-- VALIDATE blocks neither.
ALTER TABLE message_routing DROP CONSTRAINT IF EXISTS message_routing_received_at_not_null;
ALTER TABLE message_routing ADD CONSTRAINT message_routing_received_at_not_null CHECK (received_at IS NOT NULL) NOT VALID;
ALTER TABLE message_routing VALIDATE CONSTRAINT message_routing_received_at_not_null;
ALTER TABLE message_routing ALTER COLUMN received_at SET NOT NULL;
ALTER TABLE message_routing DROP CONSTRAINT message_routing_received_at_not_null;

DROP INDEX CONCURRENTLY IF EXISTS message_routing_exception_received_idx;
CREATE INDEX CONCURRENTLY message_routing_exception_received_idx ON message_routing (status, received_at, message_id)
    WHERE status <> 'routed';
DROP INDEX CONCURRENTLY IF EXISTS message_routing_exception_idx;
ALTER INDEX message_routing_exception_received_idx RENAME TO message_routing_exception_idx;

COMMENT ON INDEX message_routing_exception_idx IS 'Message search by routing exception (status dead_lettered or unrouted), newest first: GET /api/v1/messages?status= and the console''s message browser; the routed messages, the great majority, are not in it (migration 00012).';

-- +goose Down

DROP INDEX CONCURRENTLY IF EXISTS message_routing_exception_status_idx;
CREATE INDEX CONCURRENTLY message_routing_exception_status_idx ON message_routing (status) WHERE status <> 'routed';
DROP INDEX CONCURRENTLY IF EXISTS message_routing_exception_idx;
ALTER INDEX message_routing_exception_status_idx RENAME TO message_routing_exception_idx;
DROP TRIGGER IF EXISTS message_routing_fill_received_at ON message_routing;
DROP FUNCTION IF EXISTS message_routing_fill_received_at();
ALTER TABLE message_routing DROP COLUMN IF EXISTS received_at;
