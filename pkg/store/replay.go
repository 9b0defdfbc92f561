package store

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// ReplayFilter selects stored messages to run through the routes again.
// Zero fields do not filter; at least one field must be set.
type ReplayFilter struct {
	Since, Until       time.Time // received_at in [Since, Until)
	MessageType        string
	TriggerEvent       string
	SendingApplication string
	SendingFacility    string
	IDs                []uuid.UUID
}

func (f ReplayFilter) empty() bool {
	return f.Since.IsZero() && f.Until.IsZero() && f.MessageType == "" && f.TriggerEvent == "" &&
		f.SendingApplication == "" && f.SendingFacility == "" && len(f.IDs) == 0
}

// Replay queues the accepted messages matching f in the outbox again, in
// arrival order, and returns how many were queued. Deterministic event IDs
// make the replay idempotent: events already written are not duplicated. A
// message still waiting in the outbox is not queued twice.
func (s *Store) Replay(ctx context.Context, f ReplayFilter) (int64, error) {
	if f.empty() {
		return 0, fmt.Errorf("replay: give a time range, type, sender or message IDs")
	}
	tag, err := s.pool.Exec(ctx, replayInsert, f.args()...)
	if err != nil {
		return 0, fmt.Errorf("replay: %w", err)
	}
	return tag.RowsAffected(), nil
}

// QueueStats describes the router's backlog.
type QueueStats struct {
	Depth       int64         // outbox rows waiting
	OldestAge   time.Duration // age of the oldest waiting row, 0 when empty
	DeadLetters int64         // unresolved dead letters
}

// QueueStats reads the backlog figures exported as metrics.
func (s *Store) QueueStats(ctx context.Context) (QueueStats, error) {
	var q QueueStats
	var oldest float64
	err := s.pool.QueryRow(ctx, `
		SELECT (SELECT count(*) FROM outbox),
		       coalesce((SELECT extract(epoch FROM now() - created_at) FROM outbox ORDER BY id LIMIT 1), 0),
		       (SELECT count(*) FROM dead_letters WHERE resolved_at IS NULL)`).Scan(&q.Depth, &oldest, &q.DeadLetters)
	if err != nil {
		return q, fmt.Errorf("queue stats: %w", err)
	}
	q.OldestAge = time.Duration(oldest * float64(time.Second))
	return q, nil
}
