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
// finished alerts with their deliveries, old raw messages with what hangs
// off them, old events and old audit rows, in short transactions that
// each read a bounded window of an index in time order. What must stay,
// and why:
//
//   - An alert that is still open (acknowledged or not: acknowledging
//     does not close it, only a falling score resolves it), whatever its
//     age; a resolved alert that last changed (updated_at: every change,
//     acknowledgement included, sets it) at or after the audit cutoff:
//     alerts are clinical records, acknowledged by name and audited, kept
//     as long as the audit trail; and a resolved alert with a delivery
//     not finished (pending: waiting, being sent or retrying), whose
//     notification must still go out. An alert that goes takes its
//     deliveries (all delivered or dead) with it, in the same statement:
//     they are its notification history.
//   - A message an alert points at (alerts.message_id), with all its
//     events, while the alert stays: the alert's lineage (alert -> score
//     event -> raw message) stays whole as long as the alert.
//   - A message still in the outbox (not routed yet, or queued for a
//     replay), or with an open dead letter: an analyst or the router still
//     needs it.
//   - A message one of whose current observations (per-patient state) was
//     observed at or after the observations cutoff (a clinical time in the
//     future of its arrival): see RetentionCutoffs.
//   - An event a delivery points at (an alert notification sent, or still
//     to be sent, while its alert stays; a feed notification, which
//     belongs to no alert and is never deleted here), or the event of a
//     patient's current score (the API shows its payload), and the
//     message it came from.
//
// Everything else of a message goes with it in one transaction: its
// events (an event never outlives its raw message, which is its lineage
// and from which a replay rebuilds it), its observations (all older than
// the observations cutoff), its routing outcome and resolved dead letters,
// and its batch once no message of the batch is left.
//
// A pass deletes alerts first: once an alert and its deliveries are gone,
// nothing of the above keeps its messages and events, and the message and
// event walks of the same pass delete them when they are old enough. They
// normally are: the audit retention is at least the messages and events
// retentions (pkg/retention), and an alert's messages arrived before it
// last changed.

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
	// Audit: audit_log rows written before it, and resolved alerts last
	// changed (updated_at) before it, with their deliveries.
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
	RetainAlerts         = "alerts"
	RetainDeliveries     = "deliveries"
)

// RetentionTables lists the tables in report order, which is the order a
// pass deletes in: alerts first, so that the messages and events they
// kept can go in the same pass.
var RetentionTables = []string{RetainAlerts, RetainDeliveries, RetainMessages, RetainBatches, RetainMessageRouting,
	RetainDeadLetters, RetainObservations, RetainEvents, RetainAudit}

// Removed counts the rows of one table a pass deleted (or, in a dry run,
// would delete) and the span of their times: updated_at (alerts),
// created_at (deliveries, dead letters), received_at, routed_at,
// observed_at, recorded_at or at, as the table has.
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
// (resolved alerts by (updated_at, id), messages by (received_at, id),
// events by seq, audit rows by id), so a pass holds no lock for long,
// stops at any call boundary, and a pass that stopped is simply run again:
// the walks start over and what was deleted is gone. Not safe for
// concurrent use.
type RetentionSession struct {
	conn   *pgxpool.Conn
	cut    RetentionCutoffs
	dryRun bool

	alertAt  time.Time // alerts walk: last (updated_at, id) read
	alertID  uuid.UUID
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

// deliveryUnfinished is true for a delivery dl that has not reached its
// end: pending (waiting, being sent or retrying). It names the finished
// statuses, so that a status added later keeps its alert.
func deliveryUnfinished(dl string) string {
	return dl + `.status NOT IN ('delivered', 'dead')`
}

// alertGoesSQL is true for an alert (alias a) that a pass deletes, cut
// the parameter holding the audit cutoff: resolved, last changed before
// the cutoff, and with no delivery unfinished. It reads
// deliveries_alert_idx.
func alertGoesSQL(a, cut string) string {
	return `(` + a + `.status = 'resolved' AND ` + a + `.updated_at < ` + cut + ` AND NOT ` +
		exists("deliveries ud", "ud.alert_id = "+a+".id AND "+deliveryUnfinished("ud")) + `)`
}

// messageKept is true for a message that must stay (see the top of this
// file); $2 is the observations cutoff. Every test reads an index on its
// referencing column.
//
// A real pass has deleted the alerts that go (with their deliveries)
// before it reads messages, so an alert or a delivery it finds stays:
// dryAudit is "". A dry run deleted nothing: it names the parameter of the
// audit cutoff in dryAudit, and an alert then keeps a message only if it
// does not go, a delivery an event only if its alert does not go (or it
// has none: a feed's). A real pass that tested the alerts' fate as well
// would try to delete the message of an alert whose last delivery
// finished after the alerts walk passed it, and fail on its foreign key.
func messageKept(dryAudit string) string {
	return `(` + exists("outbox o", "o.message_id = m.id") +
		` OR ` + exists("dead_letters d", "d.message_id = m.id AND d.resolved_at IS NULL") +
		` OR ` + alertKeeps("m.id", dryAudit) +
		` OR ` + exists("observations ob", "ob.message_id = m.id AND ob.observed_at >= $2") +
		` OR ` + exists("events e", "e.message_id = m.id AND ("+deliveryKeeps("e.id", dryAudit)+
		" OR "+exists("scores s", "s.event_id = e.id")+")") + `)`
}

// alertKeeps is true when an alert that stays points at the message msg.
// It reads alerts_message_idx.
func alertKeeps(msg, dryAudit string) string {
	if dryAudit == "" {
		return exists("alerts a", "a.message_id = "+msg)
	}
	return exists("alerts a", "a.message_id = "+msg+" AND NOT "+alertGoesSQL("a", dryAudit))
}

// deliveryKeeps is true when a delivery that stays points at the event
// ev. It reads deliveries_event_id_destination_key, and for a dry run
// alerts_pkey.
func deliveryKeeps(ev, dryAudit string) string {
	if dryAudit == "" {
		return exists("deliveries dl", "dl.event_id = "+ev)
	}
	return exists("deliveries dl", "dl.event_id = "+ev+" AND (dl.alert_id IS NULL OR "+
		exists("alerts da", "da.id = dl.alert_id AND NOT "+alertGoesSQL("da", dryAudit))+")")
}

// retentionMessagesSQL reads the next window of messages received before
// the cutoff ($1) after the cursor ($3, $4), at most $5, and whether each
// must stay. It reads messages_received_id_idx from the cursor on.
// retentionMessagesDrySQL is the dry run's, $6 the audit cutoff.
var retentionMessagesSQL, retentionMessagesDrySQL = retentionMessages(""), retentionMessages("$6")

func retentionMessages(dryAudit string) string {
	return `SELECT m.id, m.received_at, m.batch_id, ` + messageKept(dryAudit) + ` AS kept
	FROM messages m
	WHERE m.received_at < $1 AND (m.received_at, m.id) > ($3, $4)
	ORDER BY m.received_at, m.id LIMIT $5`
}

// retentionBatchesGoneSQL finds, among batches $3, those none of whose
// messages would stay in this pass ($4 the audit cutoff): a dry run counts
// them where the real pass deletes them, once their last message has gone.
var retentionBatchesGoneSQL = `SELECT b.id, b.received_at FROM batches b
	WHERE b.id = ANY($3) AND NOT ` + exists("messages m", "m.batch_id = b.id AND (m.received_at >= $1 OR "+messageKept("$4")+")")

// retentionEventsSQL reads the next window of events after seq $4, at most
// $5, whether each is old ($3 the events cutoff), must stay, or goes with
// its message in this pass (the message walk deletes it, or in a dry run
// counts it). It reads events_pkey from the cursor on.
// retentionEventsDrySQL is the dry run's, $6 the audit cutoff.
var retentionEventsSQL, retentionEventsDrySQL = retentionEvents(""), retentionEvents("$6")

func retentionEvents(dryAudit string) string {
	return `SELECT ev.seq, ev.recorded_at, ev.recorded_at < $3 AS old,
	(` + deliveryKeeps("ev.id", dryAudit) + ` OR ` + exists("scores s", "s.event_id = ev.id") +
		` OR ` + alertKeeps("ev.message_id", dryAudit) + `) AS kept,
	` + exists("messages m", "m.id = ev.message_id AND m.received_at < $1 AND NOT "+messageKept(dryAudit)) + ` AS with_message
	FROM events ev WHERE ev.seq > $4 ORDER BY ev.seq LIMIT $5`
}

// retentionAlertsSQL reads the next window of resolved alerts last changed
// before the audit cutoff ($1) after the cursor ($2, $3), at most $4, and
// whether each must stay for a delivery not finished. It reads
// alerts_resolved_idx (migration 00013) from the cursor on: open alerts
// are not in it.
var retentionAlertsSQL = `SELECT a.id, a.updated_at, ` +
	exists("deliveries ud", "ud.alert_id = a.id AND "+deliveryUnfinished("ud")) + ` AS kept
	FROM alerts a
	WHERE a.status = 'resolved' AND a.updated_at < $1 AND (a.updated_at, a.id) > ($2, $3)
	ORDER BY a.updated_at, a.id LIMIT $4`

// retentionDeleteAlertsSQL deletes the alerts $1 that are still resolved
// and last changed before the cutoff $2 (a row acknowledged since the
// window was read is re-checked and stays), and in the same statement
// the deliveries of those deleted, all finished. A delivery queued or
// still pending for one of them is not deleted, and the alert's foreign
// key then fails the statement at its end: the batch rolls back whole and
// is read again (pkg/retention retries it).
var retentionDeleteAlertsSQL = `WITH a AS (
		DELETE FROM alerts WHERE id = ANY($1) AND status = 'resolved' AND updated_at < $2 RETURNING id, updated_at),
	d AS (DELETE FROM deliveries dl WHERE dl.alert_id IN (SELECT id FROM a) AND NOT ` + deliveryUnfinished("dl") + ` RETURNING created_at)
	SELECT a.n, a.oldest, a.newest, d.n, d.oldest, d.newest
	FROM (SELECT count(*) AS n, min(updated_at) AS oldest, max(updated_at) AS newest FROM a) a,
		(SELECT count(*) AS n, min(created_at) AS oldest, max(created_at) AS newest FROM d) d`

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

// NextAlerts deletes (or in a dry run counts) the resolved alerts last
// changed before the audit cutoff among the next n, with their
// deliveries, in one transaction; an alert with a delivery not finished
// stays. more is false once the walk has passed the cutoff. Run it before
// NextMessages and NextEvents: a real pass's message and event walks keep
// what any alert still in the table points at, so the alerts that go must
// be gone first for the same pass to delete their messages and events (a
// dry run's walks leave out the alerts this walk counts).
func (rs *RetentionSession) NextAlerts(ctx context.Context, n int) (removed map[string]Removed, more bool, err error) {
	if rs.cut.Audit.IsZero() {
		return nil, false, nil
	}
	var lastAt time.Time
	var lastID uuid.UUID
	err = rs.tx(ctx, func(tx pgx.Tx) error {
		removed = map[string]Removed{}
		rows, err := tx.Query(ctx, retentionAlertsSQL, rs.cut.Audit, orNever(rs.alertAt), rs.alertID, n)
		if err != nil {
			return fmt.Errorf("read alerts: %w", err)
		}
		var ids []uuid.UUID
		var gone Removed
		read := 0
		for rows.Next() {
			var id uuid.UUID
			var at time.Time
			var kept bool
			if err := rows.Scan(&id, &at, &kept); err != nil {
				rows.Close()
				return fmt.Errorf("read alerts: %w", err)
			}
			read++
			lastAt, lastID = at, id
			if kept {
				continue
			}
			ids = append(ids, id)
			gone.Add(Removed{Rows: 1, Oldest: at, Newest: at})
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read alerts: %w", err)
		}
		more = read == n
		if len(ids) == 0 {
			return nil
		}
		if rs.dryRun {
			r, err := span(tx.QueryRow(ctx, `SELECT count(*), min(created_at), max(created_at) FROM deliveries WHERE alert_id = ANY($1)`, ids))
			if err != nil {
				return fmt.Errorf("count deliveries: %w", err)
			}
			removed[RetainAlerts], removed[RetainDeliveries] = gone, r
			return nil
		}
		var a, d Removed
		var aOldest, aNewest, dOldest, dNewest *time.Time
		if err := tx.QueryRow(ctx, retentionDeleteAlertsSQL, ids, rs.cut.Audit).Scan(&a.Rows, &aOldest, &aNewest,
			&d.Rows, &dOldest, &dNewest); err != nil {
			return fmt.Errorf("delete alerts: %w", err)
		}
		if aOldest != nil {
			a.Oldest, a.Newest = *aOldest, *aNewest
		}
		if dOldest != nil {
			d.Oldest, d.Newest = *dOldest, *dNewest
		}
		removed[RetainAlerts], removed[RetainDeliveries] = a, d
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("retention: alerts: %w", err)
	}
	if !lastAt.IsZero() {
		rs.alertAt, rs.alertID = lastAt, lastID
	}
	return removed, more, nil
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
		q, args := retentionMessagesSQL, []any{rs.cut.Messages, orNever(rs.cut.Observations), orNever(rs.msgAt), rs.msgID, n}
		if rs.dryRun {
			q, args = retentionMessagesDrySQL, append(args, orNever(rs.cut.Audit))
		}
		rows, err := tx.Query(ctx, q, args...)
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
				rows, err := tx.Query(ctx, retentionBatchesGoneSQL, rs.cut.Messages, orNever(rs.cut.Observations), batchIDs,
					orNever(rs.cut.Audit))
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
		q, args := retentionEventsSQL, []any{orNever(rs.cut.Messages), orNever(rs.cut.Observations), rs.cut.Events, rs.seq, n}
		if rs.dryRun {
			q, args = retentionEventsDrySQL, append(args, orNever(rs.cut.Audit))
		}
		rows, err := tx.Query(ctx, q, args...)
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
