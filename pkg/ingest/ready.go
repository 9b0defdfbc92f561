package ingest

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// CommitFailure describes commits failing on the database.
type CommitFailure struct {
	// Err is the most recent attempt's error.
	Err error
	// At is when the most recent attempt failed; Since, when the first of
	// the attempts that have failed since the last success did.
	At, Since time.Time
}

// commitState is what the committers last learned about the database;
// every committer reports each attempt to it.
type commitState struct {
	mu   sync.Mutex
	last *CommitFailure // nil after a success, or before any attempt
	// reported is set once the gauge has been written: the first success
	// writes its 0, later ones need not.
	reported bool
}

// commitSucceeded records a commit: the database takes writes.
func (in *Ingester) commitSucceeded() {
	in.commits.mu.Lock()
	defer in.commits.mu.Unlock()
	if in.commits.last == nil && in.commits.reported {
		return // the usual case, at every commit: nothing to change
	}
	in.commits.last, in.commits.reported = nil, true
	in.cfg.Metrics.setCommitFailing(false)
}

// commitFailed records an attempt that failed on the database (a
// transient error; see CommitFailure).
func (in *Ingester) commitFailed(err error) {
	now := in.cfg.Now()
	in.commits.mu.Lock()
	defer in.commits.mu.Unlock()
	f := &CommitFailure{Err: err, At: now, Since: now}
	if prev := in.commits.last; prev != nil {
		f.Since = prev.Since
	}
	in.commits.last = f
	in.cfg.Metrics.setCommitFailing(true)
}

// CommitFailure returns the failure of the most recent commit attempt, nil
// when that attempt succeeded or none has been made. Only failures of the
// database count (store.IsTransient: unreachable, shutting down, read-only,
// disk full, ...): a frame whose data cannot be stored says nothing about
// the database and leaves the state as it was, and so does the
// committers' own shutdown.
func (in *Ingester) CommitFailure() *CommitFailure {
	in.commits.mu.Lock()
	defer in.commits.mu.Unlock()
	if in.commits.last == nil {
		return nil
	}
	f := *in.commits.last
	return &f
}

// CheckCommits is a readiness check (an admin.Check): it fails while
// commits fail on the database, that is while CommitFailure is not nil,
// for at most CommitFailureHold after the last failure. A commit that
// succeeds ends it at once.
//
// Why the failure expires rather than lasting until the next successful
// commit: a listener that reports not ready is given no traffic, so it
// would make no commit and stay out of rotation for good, and after a
// database restart that failed one commit on each listener, so would every
// listener. Why it is not cleared by a write of the probe's own instead: a
// probe write would put test rows among the stored messages (or need a
// table of its own), and what a probe can see without writing, the
// database in recovery, read-only or refusing our role, is checked on
// every probe by store.CheckSave, without any hold. The hold is for what
// only a real write reveals (a full disk, a failing trigger, lock
// timeouts). While traffic keeps failing, each failure renews it; once the
// load balancer has drained the listener, the hold becomes the period at
// which it tries again: ready, given traffic, and the first commit either
// ends the failure or renews it. Such a try costs no promise: a frame
// whose commit fails is never acknowledged, and its sender re-sends.
func (in *Ingester) CheckCommits(context.Context) error {
	f := in.CommitFailure()
	if f == nil {
		return nil
	}
	age := in.cfg.Now().Sub(f.At)
	if age >= in.cfg.CommitFailureHold {
		return nil
	}
	return fmt.Errorf("commits failing since %s, the last %s ago (ready again once a commit succeeds, or %s after the last failure): %w",
		f.Since.UTC().Format(time.RFC3339), age.Round(time.Second), in.cfg.CommitFailureHold, f.Err)
}
