-- Retention (pkg/retention, "router retention"): the indexes that deleting
-- old messages and events needs, and autovacuum settings that keep up with
-- batched deletes.
--
-- Deleting a row checks every foreign key that points at it with a query on
-- the referencing column; without an index there that query reads the whole
-- referencing table once per deleted row. observations.message_id and
-- alerts.message_id had none. scores.event_id is read to keep the event
-- behind each patient's current score (the API shows its payload).
--
-- Cost on ingest: nothing on messages (the listener's table gains no index).
-- The router writes one more index entry per observation row it inserts and
-- per score it saves; alerts are rare.

-- +goose Up

CREATE INDEX observations_message_idx ON observations (message_id);
CREATE INDEX alerts_message_idx ON alerts (message_id);
CREATE INDEX scores_event_idx ON scores (event_id);

-- A retention pass deletes about one interval's worth of the oldest rows,
-- a small share of each table. With the default scale factor (0.2) a
-- table would hold a fifth of itself in dead rows before autovacuum came;
-- at 0.02 it comes after a few passes, and the space is reused by new rows
-- instead of growing the files. Raw bodies live in the TOAST tables.
ALTER TABLE messages SET (autovacuum_vacuum_scale_factor = 0.02, toast.autovacuum_vacuum_scale_factor = 0.02);
ALTER TABLE events SET (autovacuum_vacuum_scale_factor = 0.02, toast.autovacuum_vacuum_scale_factor = 0.02);
ALTER TABLE observations SET (autovacuum_vacuum_scale_factor = 0.02);
ALTER TABLE message_routing SET (autovacuum_vacuum_scale_factor = 0.02);

COMMENT ON INDEX observations_message_idx IS 'Retention: finds the observations of a message being deleted, and serves the foreign-key check on deleting messages.';
COMMENT ON INDEX alerts_message_idx IS 'Retention: a message behind an alert is kept; serves the foreign-key check on deleting messages.';
COMMENT ON INDEX scores_event_idx IS 'Retention: the event behind a patient''s current score is kept.';

-- +goose Down

ALTER TABLE message_routing RESET (autovacuum_vacuum_scale_factor);
ALTER TABLE observations RESET (autovacuum_vacuum_scale_factor);
ALTER TABLE events RESET (autovacuum_vacuum_scale_factor, toast.autovacuum_vacuum_scale_factor);
ALTER TABLE messages RESET (autovacuum_vacuum_scale_factor, toast.autovacuum_vacuum_scale_factor);
DROP INDEX scores_event_idx;
DROP INDEX alerts_message_idx;
DROP INDEX observations_message_idx;
