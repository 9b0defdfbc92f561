package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// ErrNotWritable is returned by CheckWritable and CheckSave when the
// database answers but would refuse this process's writes.
var ErrNotWritable = errors.New("database refuses writes")

// writableSQL asks, in one statement and without writing, what decides
// whether a write on this session would be refused before it reached a
// table: a standby in recovery refuses every write (a failover pointed us
// at the wrong server, or has not finished), and transaction_read_only is
// on when default_transaction_read_only is set for the server, the
// database or the role (or in recovery). The two privilege columns are
// what every stored message needs (a row in messages and one in outbox);
// has_any_column_privilege, so that column-level grants are not mistaken
// for none, while a REVOKE on the table (which takes the column grants
// with it) is seen. batches is left out: a role without it can still store
// every message that is not a batch file, and must not be reported unable
// to store at all.
const (
	writableSQL = `SELECT pg_is_in_recovery(), current_setting('transaction_read_only') = 'on'`
	canSaveSQL  = `SELECT pg_is_in_recovery(), current_setting('transaction_read_only') = 'on', current_user,
		has_any_column_privilege('messages', 'INSERT'), has_any_column_privilege('outbox', 'INSERT')`
)

// CheckWritable reports whether a write on this process's sessions would be
// accepted, in one round trip and without writing: nil, or an error
// wrapping ErrNotWritable that names the reason (recovery, read-only), or
// the error of the query itself (the database unreachable). It is the
// readiness probe of processes whose work is writes: SELECT 1 succeeds on
// a hot standby and on a read-only database alike.
//
// What only a write reveals (a full disk, a failing trigger) is not seen
// here; callers learn it from their own writes failing.
func (s *Store) CheckWritable(ctx context.Context) error {
	return s.checkWritable(ctx, false)
}

// CheckSave is CheckWritable for the listener: it also checks that the
// session's role may INSERT into messages and outbox, as Save needs for
// every message, in the same round trip.
func (s *Store) CheckSave(ctx context.Context) error {
	return s.checkWritable(ctx, true)
}

func (s *Store) checkWritable(ctx context.Context, save bool) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("check database writable: acquire connection: %w", err)
	}
	var (
		recovery, readOnly     bool
		role                   string
		insMessages, insOutbox = true, true
	)
	if save {
		err = conn.QueryRow(ctx, canSaveSQL).Scan(&recovery, &readOnly, &role, &insMessages, &insOutbox)
	} else {
		err = conn.QueryRow(ctx, writableSQL).Scan(&recovery, &readOnly)
	}
	var notWritable error
	switch {
	case err != nil:
		notWritable = fmt.Errorf("check database writable: %w", err)
	case recovery:
		notWritable = fmt.Errorf("%w: the server is in recovery (a standby), not the primary", ErrNotWritable)
	case readOnly:
		notWritable = fmt.Errorf("%w: the session is read-only (transaction_read_only is on: default_transaction_read_only is set for the server, database or role)", ErrNotWritable)
	case !insMessages || !insOutbox:
		var tables []string
		if !insMessages {
			tables = append(tables, "messages")
		}
		if !insOutbox {
			tables = append(tables, "outbox")
		}
		notWritable = fmt.Errorf("%w: role %s has no INSERT privilege on %s", ErrNotWritable, role, strings.Join(tables, ", "))
	}
	if recovery || readOnly {
		// A session keeps the read-only default it started with: after
		// ALTER DATABASE ... RESET default_transaction_read_only, or once
		// the name we connect to leads to the primary again, only a new
		// session can tell. The write path closes the sessions its writes
		// fail on; so does the probe, lest an idle read-only session keep
		// the process unready after the database accepts writes again.
		conn.Conn().Close(context.WithoutCancel(ctx))
	}
	conn.Release()
	return notWritable
}
