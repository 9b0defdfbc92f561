-- Retention of alerts (pkg/store/retention.go): a pass deletes a resolved
-- alert, with its deliveries, once it last changed (updated_at) before the
-- audit cutoff, walking resolved alerts by (updated_at, id). Without this
-- index the walk would read every alert; with it, each window is a range
-- of the index from the cursor, and open alerts (which the router updates
-- at every score) are not in it at all.
--
-- Cost on the router: one more index entry when an alert is resolved, or
-- a resolved one acknowledged; none when an open alert is updated (it is
-- not in the index). Alerts are rare.
--
-- Built concurrently, so that a large alerts table keeps taking writes
-- while it is built; an invalid index left by a build that failed is
-- dropped first.

-- +goose NO TRANSACTION

-- +goose Up

DROP INDEX CONCURRENTLY IF EXISTS alerts_resolved_idx;
CREATE INDEX CONCURRENTLY alerts_resolved_idx ON alerts (updated_at, id) WHERE status = 'resolved';

COMMENT ON INDEX alerts_resolved_idx IS 'Retention: resolved alerts by when they last changed, oldest first; a pass deletes those that last changed before the audit cutoff.';

-- +goose Down

DROP INDEX CONCURRENTLY IF EXISTS alerts_resolved_idx;
