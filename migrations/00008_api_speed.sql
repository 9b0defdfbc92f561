-- API speed (make bench-console, 1,000,000 stored messages): the one
-- message search the existing indexes could not serve in under 200 ms.
--
-- The console's dashboard links each sender to its messages
-- (?sender=APP&facility=FAC), newest first. Without an index ordered by
-- time within a sender, PostgreSQL walks messages_received_id_idx
-- backwards and filters: quick for a busy sender, but for a feed that went
-- quiet, the one an analyst opens from the dashboard, it reads every
-- message received since that feed's last one. Three days of silence in
-- the bench's seed: 2.3 s. messages_facility_idx only helps when the
-- facility has no other busy sender; messages_dedup_idx has the control ID
-- before the time.
--
-- Cost on ingest: one more index entry per stored message (about 100
-- bytes, as messages_dedup_idx: about 100 MB per million messages), the
-- listener's only write path. The id makes the order total, so the
-- (received_at, id) keyset of the next page is an index condition too.
--
-- Partial, for the listener's sake: its de-duplication lookup names the
-- sender too (by values from an array, which cannot prove the predicate),
-- and on a table not yet analysed the planner rated this index as good
-- as messages_dedup_idx for it, then read every message of the sender in
-- the window per lookup: 1,500 msg/s instead of 8,000 until autovacuum
-- first analysed the table. Searches add the predicate themselves, which
-- also lets their generic plans use the index; a sender without MSH-3
-- (never a valid message) is searched without it.

-- +goose Up

CREATE INDEX messages_sender_idx ON messages (sending_application, sending_facility, received_at, id)
    WHERE sending_application <> '';

COMMENT ON INDEX messages_sender_idx IS 'Message search by sender (MSH-3, and MSH-4 when given), newest first: GET /api/v1/messages?sender=&facility= and the console''s sender links; an idle feed''s messages without reading everyone else''s since.';

-- +goose Down

DROP INDEX messages_sender_idx;
