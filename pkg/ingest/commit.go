package ingest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aortahealth/aorta/pkg/store"
)

// errStopped is returned to frames still queued when the committers stop.
var errStopped = errors.New("ingest: committer stopped")

// Retry pacing while the database is unavailable: quick enough to recover
// within a sender's patience, slow enough not to hammer a restarting server.
const (
	retryInitialBackoff = 20 * time.Millisecond
	retryMaxBackoff     = 500 * time.Millisecond
)

type job struct {
	unit store.Unit
	done chan result // buffered: the committer never blocks on a caller that gave up
}

type result struct {
	outcomes []store.Outcome
	err      error
}

// commitLoop is one committer: it takes the first waiting job, then every
// job queued behind it up to MaxGroup, and stores them in one transaction.
// While one group waits for its commit, new frames queue up for the next,
// so the fsync cost is shared by everyone who arrived meanwhile (group
// commit) without any frame waiting for a timer. It exits when ctx is done.
func (in *Ingester) commitLoop(ctx context.Context) {
	group := make([]*job, 0, in.cfg.MaxGroup)
	for {
		group = group[:0]
		select {
		case <-ctx.Done():
			return
		case j := <-in.queue:
			group = append(group, j)
		}
	drain:
		for len(group) < in.cfg.MaxGroup {
			select {
			case j := <-in.queue:
				group = append(group, j)
			default:
				break drain
			}
		}
		in.commitGroup(ctx, group, time.Now().Add(in.cfg.StoreRetryBudget))
	}
}

// commitGroup stores a group, retrying transient failures until deadline.
// A failure that is not the database being away (a constraint or encoding
// error) would fail the same way again, so the group is split and each
// frame committed alone: one poison frame never costs the others their ACK.
func (in *Ingester) commitGroup(ctx context.Context, group []*job, deadline time.Time) {
	units := make([]store.Unit, len(group))
	for i, j := range group {
		units[i] = j.unit
	}
	backoff := retryInitialBackoff
	// cause is the database's last answer other than the retry budget
	// running out: what the log and the sender's error must name (read-only,
	// disk full, shutting down), since the attempt that exhausts the budget
	// ends with no more than "context deadline exceeded".
	var cause error
	for attempt := 1; ; attempt++ {
		start := time.Now()
		actx, cancel := context.WithDeadline(ctx, deadline)
		outcomes, err := in.store.Save(actx, units, in.cfg.DedupWindow)
		cancel()
		in.cfg.Metrics.observeCommit(len(group), time.Since(start), err)
		if err == nil {
			in.commitSucceeded()
			for i, j := range group {
				j.done <- result{outcomes: outcomes[i]}
			}
			return
		}
		if ctx.Err() != nil {
			in.fail(group, fmt.Errorf("%w: %w", errStopped, err))
			return
		}
		if !store.IsTransient(err) {
			if len(group) > 1 {
				in.cfg.Logger.Warn("commit failed on data, committing frames one by one", "frames", len(group), "err", err)
				for _, j := range group {
					in.commitGroup(ctx, []*job{j}, deadline)
				}
				return
			}
			in.cfg.Logger.Error("frame cannot be stored", "err", err)
			in.fail(group, err)
			return
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			cause = err
		} else if cause != nil {
			err = fmt.Errorf("%w; last database error: %w", err, cause)
		}
		// Recorded before any frame of the group is answered, so that
		// whoever sees a frame refused sees the listener not ready.
		in.commitFailed(err)
		wait := min(backoff, time.Until(deadline))
		if wait <= 0 {
			in.cfg.Logger.Error("database unavailable, giving up on frames", "frames", len(group), "attempts", attempt, "err", err)
			in.fail(group, err)
			return
		}
		in.cfg.Logger.Warn("commit failed, retrying", "frames", len(group), "attempt", attempt, "backoff", wait, "err", err)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			in.fail(group, fmt.Errorf("%w: %w", errStopped, err))
			return
		}
		backoff = min(backoff*2, retryMaxBackoff)
	}
}

func (in *Ingester) fail(group []*job, err error) {
	for _, j := range group {
		j.done <- result{err: err}
	}
}
