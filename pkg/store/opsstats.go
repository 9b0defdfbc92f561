package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// The ops aggregator keeps the counts behind OpsSummary (migration 00006):
// per sender and per route, messages per minute and per hour, and each
// sender's last message. It reads messages once each, in (received_at, id)
// order through messages_received_id_idx, from a watermark that trails now
// by a settle time; the summary adds the buckets to a direct count of the
// few messages after the watermark. The summary therefore costs the same
// whatever the size of messages, and the listener's commits touch no
// counter row (a hot row per commit would serialise ingest).

// opsAggregateLock is the transaction advisory lock one aggregation pass
// holds, so that one router at a time counts; the others skip the pass.
// Next to eventSeqLock and retentionLock.
const opsAggregateLock = 7262734

// Bucket retention: the summary reads minute buckets up to 24 h back (the
// day window's first, partial hour) and hour buckets up to 25 h back; the
// margins leave room for clock skew and for a router catching up.
const (
	opsMinuteKeep = 26 * time.Hour
	opsHourKeep   = 72 * time.Hour
)

// opsBackfill is how far back a first aggregation pass starts counting:
// the day window and its first hour. Older messages only tell the senders
// apart, which the first pass finds through an index (opsSeedSendersSQL).
const opsBackfill = 25 * time.Hour

// OpsAggregateResult says what an aggregation pass did.
type OpsAggregateResult struct {
	// Ran is false when another router held the lock: it counts instead.
	Ran bool
	// Senders and Routes are the messages counted by each watermark.
	Senders, Routes int
	// More is true when a batch was full: call again at once to catch up.
	More bool
}

const (
	opsWatermarksSQL = `SELECT name, received_at, id FROM ops_watermarks WHERE name IN ('senders', 'routes')`

	// opsSeedSendersSQL lists the distinct senders with a loose index scan
	// of messages_dedup_idx (one probe per sender, not a read of every
	// row) and takes each one's last message before $1 from
	// messages_facility_idx. Run once, by the first pass.
	opsSeedSendersSQL = `WITH RECURSIVE s AS (
			(SELECT sending_application AS a, sending_facility AS f FROM messages ORDER BY 1, 2 LIMIT 1)
			UNION ALL
			SELECT n.a, n.f FROM s CROSS JOIN LATERAL (
				SELECT sending_application AS a, sending_facility AS f FROM messages
				WHERE (sending_application, sending_facility) > (s.a, s.f) ORDER BY 1, 2 LIMIT 1) n)
		INSERT INTO ops_senders (sending_application, sending_facility, last_message_at, last_message_id)
		SELECT s.a, s.f, l.received_at, l.id FROM s CROSS JOIN LATERAL (
			SELECT received_at, id FROM messages
			WHERE sending_facility = s.f AND sending_application = s.a AND received_at <= $1
			ORDER BY received_at DESC, id DESC LIMIT 1) l
		ON CONFLICT DO NOTHING`

	// opsCountSendersSQL counts the next batch of messages after the
	// senders watermark ($1, $2) received at or before $3 (now minus the
	// settle time), $4 at most, into minute and hour buckets and the
	// senders' last messages, and returns how many it read and the last.
	opsCountSendersSQL = `WITH m AS (
			SELECT received_at, id, sending_application AS a, sending_facility AS f, status FROM messages
			WHERE (received_at, id) > ($1, $2) AND received_at <= $3
			ORDER BY received_at, id LIMIT $4),
		c AS (
			INSERT INTO ops_sender_counts AS o (width, bucket, sending_application, sending_facility, messages, rejected)
			SELECT w.width, date_trunc(w.width, m.received_at, 'UTC'), m.a, m.f, count(*), count(*) FILTER (WHERE m.status = 'rejected')
			FROM m CROSS JOIN (VALUES ('minute'), ('hour')) AS w(width)
			GROUP BY 1, 2, 3, 4
			ON CONFLICT (width, bucket, sending_application, sending_facility)
			DO UPDATE SET messages = o.messages + EXCLUDED.messages, rejected = o.rejected + EXCLUDED.rejected),
		l AS (
			INSERT INTO ops_senders AS o (sending_application, sending_facility, last_message_at, last_message_id)
			SELECT DISTINCT ON (a, f) a, f, received_at, id FROM m ORDER BY a, f, received_at DESC, id DESC
			ON CONFLICT (sending_application, sending_facility)
			DO UPDATE SET last_message_at = EXCLUDED.last_message_at, last_message_id = EXCLUDED.last_message_id
			WHERE (EXCLUDED.last_message_at, EXCLUDED.last_message_id) > (o.last_message_at, o.last_message_id))
		SELECT n.n, x.received_at, x.id FROM (SELECT count(*) AS n FROM m) n
		LEFT JOIN LATERAL (SELECT received_at, id FROM m ORDER BY received_at DESC, id DESC LIMIT 1) x ON true`

	// opsPendingSQL is when the oldest row still waiting in the outbox was
	// queued. A listener queues a message in the transaction that stores
	// it, within the settle time of its received_at, so every message
	// received more than the settle time before that has been routed (or
	// dead-lettered) and route counts may pass up to there. It reads the
	// outbox whole, like the summary (its size is the backlog), but joins
	// nothing.
	opsPendingSQL = `SELECT min(created_at) FROM outbox`

	// opsCountRoutesSQL counts the next batch of messages after the routes
	// watermark ($1, $2), received at or before $3 and before $4 (the
	// oldest unrouted message), $5 at most, by the routes that matched.
	opsCountRoutesSQL = `WITH m AS (
			SELECT received_at, id FROM messages
			WHERE (received_at, id) > ($1, $2) AND received_at <= $3 AND received_at < $4
			ORDER BY received_at, id LIMIT $5),
		c AS (
			INSERT INTO ops_route_counts AS o (width, bucket, route, messages)
			SELECT w.width, date_trunc(w.width, m.received_at, 'UTC'), route, count(*)
			FROM m JOIN message_routing r ON r.message_id = m.id CROSS JOIN LATERAL unnest(r.routes) AS route
				CROSS JOIN (VALUES ('minute'), ('hour')) AS w(width)
			WHERE r.status = 'routed'
			GROUP BY 1, 2, 3
			ON CONFLICT (width, bucket, route) DO UPDATE SET messages = o.messages + EXCLUDED.messages)
		SELECT n.n, x.received_at, x.id FROM (SELECT count(*) AS n FROM m) n
		LEFT JOIN LATERAL (SELECT received_at, id FROM m ORDER BY received_at DESC, id DESC LIMIT 1) x ON true`

	opsSetWatermarkSQL = `INSERT INTO ops_watermarks (name, received_at, id) VALUES ($1, $2, $3)
		ON CONFLICT (name) DO UPDATE SET received_at = EXCLUDED.received_at, id = EXCLUDED.id, updated_at = now()`

	opsPruneSQL = `WITH s AS (
			DELETE FROM ops_sender_counts WHERE (width = 'minute' AND bucket < $1) OR (width = 'hour' AND bucket < $2))
		DELETE FROM ops_route_counts WHERE (width = 'minute' AND bucket < $1) OR (width = 'hour' AND bucket < $2)`
)

// watermark is a position in (received_at, id) order.
type watermark struct {
	at time.Time
	id uuid.UUID
}

// readWatermarks returns the senders and routes watermarks; ok is false
// when the aggregator has never run.
func readWatermarks(ctx context.Context, q pgx.Tx) (senders, routes watermark, ok bool, err error) {
	rows, err := q.Query(ctx, opsWatermarksSQL)
	if err != nil {
		return senders, routes, false, fmt.Errorf("read ops watermarks: %w", err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var name string
		var w watermark
		if err := rows.Scan(&name, &w.at, &w.id); err != nil {
			return senders, routes, false, fmt.Errorf("read ops watermarks: %w", err)
		}
		switch name {
		case "senders":
			senders = w
		case "routes":
			routes = w
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return senders, routes, false, fmt.Errorf("read ops watermarks: %w", err)
	}
	return senders, routes, n == 2, nil
}

// AggregateOps runs one aggregation pass as of now: it counts up to batch
// messages after each watermark that were received at least settle ago,
// and prunes old buckets. settle must exceed the longest time between a
// listener stamping received_at and its transaction committing (the
// listener gives up on a frame after its 5 s store retry budget): a
// message that commits later than that behind the watermark is never
// counted, though it is stored and routed as usual. One router at a time
// runs a pass (an advisory lock); for the others it returns Ran false.
func (s *Store) AggregateOps(ctx context.Context, now time.Time, settle time.Duration, batch int) (OpsAggregateResult, error) {
	var res OpsAggregateResult
	if batch <= 0 {
		return res, errors.New("aggregate ops: batch must be positive")
	}
	horizon := now.Add(-settle)
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		res = OpsAggregateResult{}
		if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1)`, opsAggregateLock).Scan(&res.Ran); err != nil {
			return fmt.Errorf("aggregate ops: lock: %w", err)
		}
		if !res.Ran {
			return nil
		}
		senders, routes, ok, err := readWatermarks(ctx, tx)
		if err != nil {
			return fmt.Errorf("aggregate ops: %w", err)
		}
		if !ok {
			// First pass: count the last day from here on, and learn the
			// older senders from the index.
			start := watermark{at: now.Add(-opsBackfill)}
			if _, err := tx.Exec(ctx, opsSeedSendersSQL, start.at); err != nil {
				return fmt.Errorf("aggregate ops: seed senders: %w", err)
			}
			senders, routes = start, start
		}
		next, n, err := countBatch(ctx, tx, opsCountSendersSQL, senders, horizon, batch)
		if err != nil {
			return fmt.Errorf("aggregate ops: senders: %w", err)
		}
		res.Senders = n
		if _, err := tx.Exec(ctx, opsSetWatermarkSQL, "senders", next.at, next.id); err != nil {
			return fmt.Errorf("aggregate ops: senders watermark: %w", err)
		}
		var pending *time.Time
		if err := tx.QueryRow(ctx, opsPendingSQL).Scan(&pending); err != nil {
			return fmt.Errorf("aggregate ops: oldest unrouted: %w", err)
		}
		before := time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
		if pending != nil {
			before = pending.Add(-settle)
		}
		nextR, nr, err := countBatch(ctx, tx, opsCountRoutesSQL, routes, horizon, batch, before)
		if err != nil {
			return fmt.Errorf("aggregate ops: routes: %w", err)
		}
		res.Routes = nr
		if _, err := tx.Exec(ctx, opsSetWatermarkSQL, "routes", nextR.at, nextR.id); err != nil {
			return fmt.Errorf("aggregate ops: routes watermark: %w", err)
		}
		res.More = n == batch || nr == batch
		if _, err := tx.Exec(ctx, opsPruneSQL, now.Add(-opsMinuteKeep), now.Add(-opsHourKeep)); err != nil {
			return fmt.Errorf("aggregate ops: prune: %w", err)
		}
		return nil
	})
	if err != nil {
		return OpsAggregateResult{}, err
	}
	return res, nil
}

// countBatch runs one of the counting statements from w and returns the
// new watermark (w when nothing was read) and how many messages it read.
// before, when given, is the routes statement's bound.
func countBatch(ctx context.Context, tx pgx.Tx, sql string, w watermark, horizon time.Time, batch int, before ...time.Time) (watermark, int, error) {
	args := []any{w.at, w.id, horizon}
	args = append(args, anySlice(before)...)
	args = append(args, batch)
	var n int
	var at *time.Time
	var id *uuid.UUID
	if err := tx.QueryRow(ctx, sql, args...).Scan(&n, &at, &id); err != nil {
		return w, 0, err
	}
	if n == 0 || at == nil || id == nil {
		return w, 0, nil
	}
	return watermark{at: *at, id: *id}, n, nil
}

func anySlice(ts []time.Time) []any {
	out := make([]any, len(ts))
	for i, t := range ts {
		out[i] = t
	}
	return out
}
