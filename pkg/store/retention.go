package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// This file holds the statements of retention (pkg/retention): deleting
// old raw messages with what hangs off them, old events and old audit
// rows, in short transactions that each read a bounded window of an index
// in time order. What must stay, and why:
//
//   - A message still in the outbox (not routed yet, or queued for a
//     replay), or with an open dead letter: an analyst or the router still
//     needs it.
//   - A message an alert points at (alerts.message_id), with all its
//     events: alerts are clinical records (acknowledged by name, audited)
//     and their lineage (alert -> score event -> raw message) stays whole.
//     Alerts themselves are never deleted here.
//   - A message one of whose current observations (per-patient state) was
//     observed at or after the observations cutoff (a clinical time in the
//     future of its arrival): see RetentionCutoffs.
//   - An event a delivery points at (the alert notification sent, or still
//     to be sent), or the event of a patient's current score (the API shows
//     its payload), and the message it came from.
//
// Everything else of a message goes with it in one transaction: its
// events (an event never outlives its raw message, which is its lineage
// and from which a replay rebuilds it), its observations (all older than
// the observations cutoff), its routing outcome and resolved dead letters,
// and its batch once no message of the batch is left.

// RetentionCutoffs say what a retention pass may delete. A zero time
// deletes nothing of that kind.
type RetentionCutoffs struct {
	// Messages: messages received before it, and everything of theirs.
	Messages time.Time
	// Observations: a message is deleted only when every current
	// observation it set was observed before it. A score computed at a
	// clinical time T reads values observed after T minus its freshness
	// window, so scores at times at least that window after Observations
	// come out exactly as if nothing had been deleted.
	Observations time.Time
	// Events: events recorded (written by the router) before it.
	Events time.Time
	// Audit: audit_log rows written before it.
	Audit time.Time
}

// Tables a retention pass deletes from, in the order reports list them.
const (
	RetainMessages       = "messages"
	RetainBatches        = "batches"
	RetainMessageRouting = "message_routing"
	RetainDeadLetters    = "dead_letters"
	RetainObservations   = "observations"
	RetainEvents         = "events"
	RetainAudit          = "audit_log"
)

// RetentionTables lists the tables in report order.
var RetentionTables = []string{RetainMessages, RetainBatches, RetainMessageRouting, RetainDeadLetters,
	RetainObservations, RetainEvents, RetainAudit}

// Removed counts the rows of one table a pass deleted (or, in a dry run,
// would delete) and the span of their times: received_at, created_at,
// routed_at, observed_at, recorded_at or at, as the table has.
type Removed struct {
	Rows           int64
	Oldest, Newest time.Time // zero when Rows is 0
}

// Add merges o into r.
func (r *Removed) Add(o Removed) {
	if o.Rows == 0 {
		return
	}
	if r.Rows == 0 || o.Oldest.Before(r.Oldest) {
		r.Oldest = o.Oldest
	}
	if r.Rows == 0 || o.Newest.After(r.Newest) {
		r.Newest = o.Newest
	}
	r.Rows += o.Rows
}

// ErrRetentionBusy is returned by BeginRetention while another session
// (another router, or "router retention") runs a pass.
var ErrRetentionBusy = errors.New("store: another retention pass is running")

// retentionLock is the session advisory lock one pass holds from start to
// end, so that only one process in a cluster deletes at a time. Next to
// eventSeqLock; the listener's de-duplication locks are 64-bit hashes.
const retentionLock = 7262733

// Bounds on each batch transaction. A pass deletes old rows nobody else
// writes, so a wait means something is wrong (a long-running transaction
// holding a row): give up the batch and let the caller retry later rather
// than queue behind it.
const (
	retentionLockWait         = 2 * time.Second // for the lock of a pass that just ended, see BeginRetention
	retentionLockTimeout      = 5 * time.Second
	retentionStatementTimeout = time.Minute
)

// RetentionSession is one retention pass: a connection holding the
// retention lock, the cutoffs, and where each table's walk has got to.
// Each Next call is one short transaction over at most n rows of an index
// (messages by (received_at, id), events by seq, audit rows by id), so a
// pass holds no lock for long, stops at any call boundary,
// and a pass that stopped is simply run again: the walks start over and
// what was deleted is gone. Not safe for concurrent use.
type RetentionSession struct {
	conn   *pgxpool.Conn
	cut    RetentionCutoffs
	dryRun bool

	msgAt    time.Time // messages walk: last (received_at, id) read
	msgID    uuid.UUID
	seq      int64              // events walk: last seq read
	auditID  int64              // audit walk: last id read
	batches  map[uuid.UUID]bool // dry run: batches counted already
	released bool
}

// BeginRetention takes the retention lock on a connection of its own and
// returns the pass, or ErrRetentionBusy. A dry run deletes nothing: each
// Next reads in a read-only snapshot and reports what the same call would
// have deleted. Close the session to release the lock.
func (s *Store) BeginRetention(ctx context.Context, cut RetentionCutoffs, dryRun bool) (*RetentionSession, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("retention: acquire connection: %w", err)
	}
	// A pass that ended with its connection broken (cancelled mid-
	// statement, say) closed that connection, and its server process
	// releases the lock only as it exits, a moment later: wait briefly
	// before calling the lock busy.
	deadline := time.Now().Add(retentionLockWait)
	for {
		var ok bool
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, retentionLock).Scan(&ok); err != nil {
			conn.Release()
			return nil, fmt.Errorf("retention: lock: %w", err)
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			conn.Release()
			return nil, ErrRetentionBusy
		}
		select {
		case <-ctx.Done():
			conn.Release()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return &RetentionSession{conn: conn, cut: cut, dryRun: dryRun, batches: map[uuid.UUID]bool{}}, nil
}

// Close releases the retention lock and the connection. If the lock
// cannot be released cleanly the connection is closed, which releases it
// on the server: a pooled connection must never keep it.
func (rs *RetentionSession) Close() {
	if rs.released {
		return
	}
	rs.released = true
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := rs.conn.Exec(ctx, `SELECT pg_advisory_unlock($1)`, retentionLock); err != nil {
		c := rs.conn.Hijack()
		c.Close(ctx)
		return
	}
	rs.conn.Release()
}

// exists is a correlated test written as a scalar subquery, which the
// planner always runs per row through the index on the correlated column;
// an EXISTS it may instead turn into a hash of the whole subquery table,
// read again for every window.
func exists(from, where string) string {
	return `coalesce((SELECT true FROM ` + from + ` WHERE ` + where + ` LIMIT 1), false)`
}

// messageKeptSQL is true for a message that must stay (see the top of
// this file); $2 is the observations cutoff. Every test reads an index on
// its referencing column.
var messageKeptSQL = `(` + exists("outbox o", "o.message_id = m.id") +
	` OR ` + exists("dead_letters d", "d.message_id = m.id AND d.resolved_at IS NULL") +
	` OR ` + exists("alerts a", "a.message_id = m.id") +
	` OR ` + exists("observations ob", "ob.message_id = m.id AND ob.observed_at >= $2") +
	` OR ` + exists("events e", "e.message_id = m.id AND ("+
	exists("deliveries dl", "dl.event_id = e.id")+" OR "+exists("scores s", "s.event_id = e.id")+")") + `)`

// retentionMessagesSQL reads the next window of messages received before
// the cutoff ($1) after the cursor ($3, $4), at most $5, and whether each
// must stay. It reads messages_received_id_idx from the cursor on.
var retentionMessagesSQL = `SELECT m.id, m.received_at, m.batch_id, ` + messageKeptSQL + ` AS kept
	FROM messages m
	WHERE m.received_at < $1 AND (m.received_at, m.id) > ($3, $4)
	ORDER BY m.received_at, m.id LIMIT $5`

// retentionBatchesGoneSQL finds, among batches $3, those none of whose
// messages would stay in this pass: a dry run counts them where the real
// pass deletes them, once their last message has gone.
var retentionBatchesGoneSQL = `SELECT b.id, b.received_at FROM batches b
	WHERE b.id = ANY($3) AND NOT ` + exists("messages m", "m.batch_id = b.id AND (m.received_at >= $1 OR "+messageKeptSQL+")")

// retentionEventsSQL reads the next window of events after seq $4, at most
// $5, whether each is old ($3 the events cutoff), must stay, or goes with
// its message in this pass (the message walk deletes it, or in a dry run
// counts it). It reads events_pkey from the cursor on.
var retentionEventsSQL = `SELECT ev.seq, ev.recorded_at, ev.recorded_at < $3 AS old,
	(` + exists("deliveries dl", "dl.event_id = ev.id") + ` OR ` + exists("scores s", "s.event_id = ev.id") +
	` OR ` + exists("alerts a", "a.message_id = ev.message_id") + `) AS kept,
	` + exists("messages m", "m.id = ev.message_id AND m.received_at < $1 AND NOT "+messageKeptSQL) + ` AS with_message
	FROM events ev WHERE ev.seq > $4 ORDER BY ev.seq LIMIT $5`

// retentionAuditSQL reads the next window of audit rows after id $1, at
// most $2, through audit_log_pkey. Rows are written with at = now() and an
// increasing id, so id order is time order (but for overlapping
// transactions); a window ordered by (at, id) would sort every old row
// each time, as audit_log_at_idx holds at alone.
const retentionAuditSQL = `SELECT id, at FROM audit_log WHERE id > $1 ORDER BY id LIMIT $2`

// messageChildren are the rows deleted with their message, before it, and
// the time each reports.
var messageChildren = []struct{ table, at string }{
	{RetainObservations, "observed_at"},
	{RetainEvents, "recorded_at"},
	{RetainMessageRouting, "routed_at"},
	{RetainDeadLetters, "created_at"},
}

// never is a cutoff before every stored time: a disabled kind selects
// nothing.
var never = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)

func orNever(t time.Time) time.Time {
	if t.IsZero() {
		return never
	}
	return t
}

// tx runs fn in a short transaction on the session's connection: read-only
// in one snapshot for a dry run, bounded by lock and statement timeouts.
func (rs *RetentionSession) tx(ctx context.Context, fn func(pgx.Tx) error) error {
	opts := pgx.TxOptions{}
	if rs.dryRun {
		opts = pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}
	}
	return pgx.BeginTxFunc(ctx, rs.conn, opts, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, fmt.Sprintf(`SET LOCAL lock_timeout = %d; SET LOCAL statement_timeout = %d`,
			retentionLockTimeout.Milliseconds(), retentionStatementTimeout.Milliseconds())); err != nil {
			return fmt.Errorf("set timeouts: %w", err)
		}
		return fn(tx)
	})
}

// span reads count(*), min and max of a time column.
func span(row pgx.Row) (Removed, error) {
	var r Removed
	var oldest, newest *time.Time
	if err := row.Scan(&r.Rows, &oldest, &newest); err != nil {
		return r, err
	}
	if oldest != nil {
		r.Oldest, r.Newest = *oldest, *newest
	}
	return r, nil
}

// NextMessages deletes (or in a dry run counts) the messages that may go
// among the next n received before the messages cutoff, with their
// events, observations, routing rows, resolved dead letters and emptied
// batches, in one transaction. more is false once the walk has passed the
// cutoff. The cursor moves only when the transaction commits, so an
// error or a cancelled context leaves it to be read again.
func (rs *RetentionSession) NextMessages(ctx context.Context, n int) (removed map[string]Removed, more bool, err error) {
	if rs.cut.Messages.IsZero() {
		return nil, false, nil
	}
	var lastAt time.Time
	var lastID uuid.UUID
	var counted []uuid.UUID // dry run: batches counted in this window
	err = rs.tx(ctx, func(tx pgx.Tx) error {
		removed, counted = map[string]Removed{}, nil
		rows, err := tx.Query(ctx, retentionMessagesSQL, rs.cut.Messages, orNever(rs.cut.Observations), orNever(rs.msgAt), rs.msgID, n)
		if err != nil {
			return fmt.Errorf("read messages: %w", err)
		}
		var ids, batchIDs []uuid.UUID
		var gone Removed
		read := 0
		for rows.Next() {
			var id uuid.UUID
			var at time.Time
			var batch *uuid.UUID
			var kept bool
			if err := rows.Scan(&id, &at, &batch, &kept); err != nil {
				rows.Close()
				return fmt.Errorf("read messages: %w", err)
			}
			read++
			lastAt, lastID = at, id
			if kept {
				continue
			}
			ids = append(ids, id)
			gone.Add(Removed{Rows: 1, Oldest: at, Newest: at})
			if batch != nil && !rs.batches[*batch] {
				batchIDs = append(batchIDs, *batch)
			}
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read messages: %w", err)
		}
		more = read == n
		if len(ids) == 0 {
			return nil
		}
		verb := "count"
		for _, c := range messageChildren {
			q := `SELECT count(*), min(` + c.at + `), max(` + c.at + `) FROM ` + c.table + ` WHERE message_id = ANY($1)`
			if !rs.dryRun {
				verb = "delete"
				q = `WITH d AS (DELETE FROM ` + c.table + ` WHERE message_id = ANY($1) RETURNING ` + c.at + `)
					SELECT count(*), min(` + c.at + `), max(` + c.at + `) FROM d`
			}
			r, err := span(tx.QueryRow(ctx, q, ids))
			if err != nil {
				return fmt.Errorf("%s %s: %w", verb, c.table, err)
			}
			removed[c.table] = r
		}
		if rs.dryRun {
			removed[RetainMessages] = gone
			var b Removed
			if len(batchIDs) > 0 {
				rows, err := tx.Query(ctx, retentionBatchesGoneSQL, rs.cut.Messages, orNever(rs.cut.Observations), batchIDs)
				if err != nil {
					return fmt.Errorf("count batches: %w", err)
				}
				var id uuid.UUID
				var at time.Time
				_, err = pgx.ForEachRow(rows, []any{&id, &at}, func() error {
					counted = append(counted, id)
					b.Add(Removed{Rows: 1, Oldest: at, Newest: at})
					return nil
				})
				if err != nil {
					return fmt.Errorf("count batches: %w", err)
				}
			}
			removed[RetainBatches] = b
			return nil
		}
		r, err := span(tx.QueryRow(ctx, `WITH d AS (DELETE FROM messages WHERE id = ANY($1) RETURNING received_at)
			SELECT count(*), min(received_at), max(received_at) FROM d`, ids))
		if err != nil {
			return fmt.Errorf("delete messages: %w", err)
		}
		removed[RetainMessages] = r
		if len(batchIDs) > 0 {
			r, err := span(tx.QueryRow(ctx, `WITH d AS (DELETE FROM batches b WHERE b.id = ANY($1)
					AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.batch_id = b.id) RETURNING received_at)
				SELECT count(*), min(received_at), max(received_at) FROM d`, batchIDs))
			if err != nil {
				return fmt.Errorf("delete batches: %w", err)
			}
			removed[RetainBatches] = r
		}
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("retention: messages: %w", err)
	}
	// A dry run counts a batch once, in the first window holding one of
	// its messages; the real pass deletes it in the window where its last
	// message goes.
	for _, id := range counted {
		rs.batches[id] = true
	}
	if !lastAt.IsZero() {
		rs.msgAt, rs.msgID = lastAt, lastID
	}
	return removed, more, nil
}

// NextEvents deletes (or counts) the events that may go among the next n
// by seq: recorded before the events cutoff and not kept. The walk ends at
// the first event recorded at or after the cutoff that does not go with
// its message: seq follows commit order, so the events after it are
// younger (but for transactions that overlapped, whose stragglers the next
// pass takes). Events that go with their message are the message walk's;
// run it first.
func (rs *RetentionSession) NextEvents(ctx context.Context, n int) (removed Removed, more bool, err error) {
	if rs.cut.Events.IsZero() {
		return Removed{}, false, nil
	}
	var last int64
	err = rs.tx(ctx, func(tx pgx.Tx) error {
		removed = Removed{}
		rows, err := tx.Query(ctx, retentionEventsSQL, orNever(rs.cut.Messages), orNever(rs.cut.Observations), rs.cut.Events, rs.seq, n)
		if err != nil {
			return fmt.Errorf("read events: %w", err)
		}
		var seqs []int64
		read := 0
		stop := false
		for rows.Next() {
			var seq int64
			var at time.Time
			var old, kept, withMessage bool
			if err := rows.Scan(&seq, &at, &old, &kept, &withMessage); err != nil {
				rows.Close()
				return fmt.Errorf("read events: %w", err)
			}
			read++
			if withMessage {
				last = seq
				continue
			}
			if !old {
				stop = true
				rows.Close()
				break
			}
			last = seq
			if !kept {
				seqs = append(seqs, seq)
				removed.Add(Removed{Rows: 1, Oldest: at, Newest: at})
			}
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read events: %w", err)
		}
		more = !stop && read == n
		if rs.dryRun || len(seqs) == 0 {
			return nil
		}
		r, err := span(tx.QueryRow(ctx, `WITH d AS (DELETE FROM events WHERE seq = ANY($1) RETURNING recorded_at)
			SELECT count(*), min(recorded_at), max(recorded_at) FROM d`, seqs))
		if err != nil {
			return fmt.Errorf("delete events: %w", err)
		}
		removed = r
		return nil
	})
	if err != nil {
		return Removed{}, false, fmt.Errorf("retention: events: %w", err)
	}
	if last > rs.seq {
		rs.seq = last
	}
	return removed, more, nil
}

// NextAudit deletes (or counts) the audit rows written before the audit
// cutoff among the next n by id. The walk ends at the first row written at
// or after the cutoff.
func (rs *RetentionSession) NextAudit(ctx context.Context, n int) (removed Removed, more bool, err error) {
	if rs.cut.Audit.IsZero() {
		return Removed{}, false, nil
	}
	var lastID int64
	err = rs.tx(ctx, func(tx pgx.Tx) error {
		removed = Removed{}
		rows, err := tx.Query(ctx, retentionAuditSQL, rs.auditID, n)
		if err != nil {
			return fmt.Errorf("read audit rows: %w", err)
		}
		var ids []int64
		read, stop := 0, false
		for rows.Next() {
			var id int64
			var at time.Time
			if err := rows.Scan(&id, &at); err != nil {
				rows.Close()
				return fmt.Errorf("read audit rows: %w", err)
			}
			read++
			if !at.Before(rs.cut.Audit) {
				stop = true
				rows.Close()
				break
			}
			ids = append(ids, id)
			lastID = id
			removed.Add(Removed{Rows: 1, Oldest: at, Newest: at})
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read audit rows: %w", err)
		}
		more = !stop && read == n
		if rs.dryRun || len(ids) == 0 {
			return nil
		}
		r, err := span(tx.QueryRow(ctx, `WITH d AS (DELETE FROM audit_log WHERE id = ANY($1) RETURNING at)
			SELECT count(*), min(at), max(at) FROM d`, ids))
		if err != nil {
			return fmt.Errorf("delete audit rows: %w", err)
		}
		removed = r
		return nil
	})
	if err != nil {
		return Removed{}, false, fmt.Errorf("retention: audit: %w", err)
	}
	if lastID > rs.auditID {
		rs.auditID = lastID
	}
	return removed, more, nil
}
