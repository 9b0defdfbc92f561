package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// TxFor wraps a transaction, so that tests can read the per-patient state
// the way scoring does, outside Apply.
func TxFor(tx pgx.Tx) *Tx { return &Tx{tx: tx} }

// MessageSearchSQL exposes the message search query for EXPLAIN tests.
var MessageSearchSQL = messageSearchSQL

// The listener's de-duplication lookup, for a group and for a lone
// message.
const (
	DuplicatesSQL = duplicatesSQL
	SaveOneSQL    = saveOneSQL
)

// Pool is the store's connection pool, with the session settings every
// Aorta connection gets.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Ops summary statements, for EXPLAIN tests.
const (
	OpsOutboxSQL      = opsOutboxSQL
	OpsDeadLettersSQL = opsDeadLettersSQL
	OpsSendersSQL     = opsSendersSQL
	OpsRoutesSQL      = opsRoutesSQL
	OpsSeedSendersSQL = opsSeedSendersSQL
	OpsCountSenders   = opsCountSendersSQL
	OpsCountRoutes    = opsCountRoutesSQL
	OpsPendingSQL     = opsPendingSQL
	FeedSendersSQL    = feedSendersSQL
	FeedLastIDSQL     = feedLastIDSQL
)

// EventSeqLock is the advisory lock that orders event inserts by commit.
const EventSeqLock = eventSeqLock

// LookupDuplicates runs the listener's de-duplication lookup for msgs on
// conn, leaving its transaction open.
func LookupDuplicates(ctx context.Context, conn *pgx.Conn, msgs []*Message, window time.Duration) error {
	_, err := lookupDuplicates(ctx, conn, msgs, window)
	return err
}
