package retention

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/aortahealth/aorta/pkg/store"
)

// ErrBusy is returned by Pass while another process runs a pass.
var ErrBusy = store.ErrRetentionBusy

// Actor and action of the audit row each pass writes.
const (
	AuditActor  = "retention"
	AuditAction = "retention.pass"
)

// Bounds of a pass's retries and bookkeeping.
const (
	// retries of one batch transaction that failed for a passing reason
	// (the database briefly away, a lock wait timed out, a message queued
	// for replay while being deleted) before the pass gives up; the next
	// pass starts over.
	retries      = 3
	retryBackoff = time.Second
	// auditTimeout bounds writing the pass's audit row, which is written
	// even when the pass was cancelled (context.WithoutCancel).
	auditTimeout = 10 * time.Second
)

// Options configures a Runner.
type Options struct {
	// Batch is how many rows of an index each transaction reads, and at
	// most deletes (with a message's events and observations);
	// DefaultBatch when 0.
	Batch   int
	Logger  *slog.Logger
	Metrics *Metrics // nil counts nothing
	// Now is the clock the cutoffs are computed from; time.Now when nil.
	Now func() time.Time
}

// Runner runs retention passes with one policy.
type Runner struct {
	st     *store.Store
	policy Policy
	o      Options
}

// New returns a Runner, or the reasons the policy or batch size is
// refused.
func New(st *store.Store, p Policy, o Options) (*Runner, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if o.Batch == 0 {
		o.Batch = DefaultBatch
	}
	if o.Batch < 1 || o.Batch > MaxBatch {
		return nil, fmt.Errorf("--retention-batch=%d: want 1 to %d", o.Batch, MaxBatch)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Runner{st: st, policy: p, o: o}, nil
}

// Policy is the runner's policy.
func (r *Runner) Policy() Policy { return r.policy }

// Report is what one pass deleted, or in a dry run would delete.
type Report struct {
	DryRun   bool
	Policy   Policy
	Cutoffs  store.RetentionCutoffs
	Started  time.Time
	Duration time.Duration
	// Complete is false when the pass stopped early (cancelled, or an
	// error): Tables then hold what was deleted until it stopped.
	Complete bool
	// Transactions run (batches).
	Transactions int
	Tables       map[string]store.Removed
}

// Total is the number of rows deleted across the tables.
func (rep *Report) Total() int64 {
	var n int64
	for _, r := range rep.Tables {
		n += r.Rows
	}
	return n
}

// Pass runs one pass now: finished alerts (with their deliveries), then
// messages, then events, then audit rows, batch by batch until each walk
// reaches its cutoff. It returns ErrBusy when
// another process holds the retention lock. Cancelling ctx stops it
// between or inside a batch; the batch in flight rolls back, what
// committed stays deleted, and the next pass carries on. Except for a dry
// run, the pass writes one audit row (actor "retention") with its counts,
// even when stopped early.
func (r *Runner) Pass(ctx context.Context, dryRun bool) (*Report, error) {
	rep := &Report{DryRun: dryRun, Policy: r.policy, Started: r.o.Now(), Tables: map[string]store.Removed{}}
	rep.Cutoffs = r.policy.Cutoffs(rep.Started)
	start := time.Now()
	sess, err := r.st.BeginRetention(ctx, rep.Cutoffs, dryRun)
	if err != nil {
		if errors.Is(err, store.ErrRetentionBusy) {
			r.o.Metrics.busy()
		} else {
			r.o.Metrics.failed()
		}
		return nil, err
	}
	err = r.run(ctx, sess, rep)
	sess.Close()
	rep.Duration = time.Since(start)
	rep.Complete = err == nil
	if !dryRun {
		if aerr := r.audit(ctx, rep); aerr != nil {
			err = errors.Join(err, aerr)
		}
		r.o.Metrics.ran(rep, err)
	}
	return rep, err
}

func (r *Runner) run(ctx context.Context, sess *store.RetentionSession, rep *Report) error {
	add := func(table string, rm store.Removed) {
		t := rep.Tables[table]
		t.Add(rm)
		rep.Tables[table] = t
		if !rep.DryRun {
			r.o.Metrics.count(table, rm.Rows)
		}
	}
	// walk runs one kind's batches, each a retried transaction, until
	// its walk reports the end.
	walk := func(next func() (map[string]store.Removed, bool, error)) error {
		for more := true; more; {
			var removed map[string]store.Removed
			err := r.retry(ctx, func() (err error) {
				removed, more, err = next()
				return err
			})
			if err != nil {
				return err
			}
			rep.Transactions++
			for table, rm := range removed {
				add(table, rm)
			}
		}
		return nil
	}
	one := func(table string, next func(context.Context, int) (store.Removed, bool, error)) func() (map[string]store.Removed, bool, error) {
		return func() (map[string]store.Removed, bool, error) {
			rm, more, err := next(ctx, r.o.Batch)
			return map[string]store.Removed{table: rm}, more, err
		}
	}
	// Alerts first: the messages and events a finished alert kept can
	// then go in this pass.
	for _, next := range []func() (map[string]store.Removed, bool, error){
		func() (map[string]store.Removed, bool, error) { return sess.NextAlerts(ctx, r.o.Batch) },
		func() (map[string]store.Removed, bool, error) { return sess.NextMessages(ctx, r.o.Batch) },
		one(store.RetainEvents, sess.NextEvents),
		one(store.RetainAudit, sess.NextAudit),
	} {
		if err := walk(next); err != nil {
			return err
		}
	}
	return nil
}

// retry runs one batch, again after a failure that may pass: a
// transient database error, a lock wait that timed out, or a foreign key
// violated by a concurrent change (a replay queuing a message being
// deleted), which the batch re-reads and skips.
func (r *Runner) retry(ctx context.Context, batch func() error) error {
	for attempt := 1; ; attempt++ {
		err := batch()
		if err == nil || ctx.Err() != nil || attempt == retries || !passing(err) {
			if ctx.Err() != nil {
				return fmt.Errorf("retention pass stopped: %w", context.Cause(ctx))
			}
			return err
		}
		r.o.Logger.Warn("retention batch failed; retrying", "attempt", attempt, "err", err)
		select {
		case <-time.After(retryBackoff * time.Duration(attempt)):
		case <-ctx.Done():
			return fmt.Errorf("retention pass stopped: %w", context.Cause(ctx))
		}
	}
}

func passing(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "23503", // foreign_key_violation
			"55P03": // lock_not_available (lock_timeout)
			return true
		}
	}
	return store.IsTransient(err)
}

// audit records the pass: who (the retention actor), the policy, the
// cutoffs and the counts. No patient data: counts and times only.
func (r *Runner) audit(ctx context.Context, rep *Report) error {
	type table struct {
		Rows   int64      `json:"rows"`
		Oldest *time.Time `json:"oldest,omitempty"`
		Newest *time.Time `json:"newest,omitempty"`
	}
	details := struct {
		Policy   string            `json:"policy"`
		Complete bool              `json:"complete"`
		Cutoffs  map[string]string `json:"cutoffs"`
		Deleted  map[string]table  `json:"deleted"`
		Seconds  float64           `json:"duration_seconds"`
	}{Policy: rep.Policy.String(), Complete: rep.Complete, Cutoffs: map[string]string{}, Deleted: map[string]table{},
		Seconds: rep.Duration.Seconds()}
	for name, at := range map[string]time.Time{"messages": rep.Cutoffs.Messages, "observations": rep.Cutoffs.Observations,
		"events": rep.Cutoffs.Events, "audit_log": rep.Cutoffs.Audit, "alerts": rep.Cutoffs.Audit} {
		if !at.IsZero() {
			details.Cutoffs[name] = at.UTC().Format(time.RFC3339)
		}
	}
	for _, name := range store.RetentionTables {
		rm := rep.Tables[name]
		t := table{Rows: rm.Rows}
		if rm.Rows > 0 {
			t.Oldest, t.Newest = &rm.Oldest, &rm.Newest
		}
		details.Deleted[name] = t
	}
	b, err := json.Marshal(details)
	if err != nil {
		return fmt.Errorf("retention audit: %w", err)
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), auditTimeout)
	defer cancel()
	if err := r.st.Audit(actx, AuditActor, AuditAction, "database", b); err != nil {
		return fmt.Errorf("retention audit: %w", err)
	}
	return nil
}

// Loop runs a pass every interval until ctx is done, the first one
// interval after start-up capped at a minute (so that a start does not
// compete with the router catching up, and a restart loop does not skip
// retention). A pass another router is running is skipped; a failed one is
// logged and counted, and the next tick tries again. It returns when ctx
// is done, after the pass in flight has stopped.
func (r *Runner) Loop(ctx context.Context, interval time.Duration) {
	wait := min(interval, time.Minute)
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = interval
		rep, err := r.Pass(ctx, false)
		switch {
		case errors.Is(err, ErrBusy):
			r.o.Logger.Info("retention pass skipped: another process is running one")
		case ctx.Err() != nil:
			r.log(rep, err)
			return
		default:
			r.log(rep, err)
		}
	}
}

// log writes the pass's info line: counts and times, nothing else.
func (r *Runner) log(rep *Report, err error) {
	if rep == nil {
		r.o.Logger.Error("retention pass failed", "err", err)
		return
	}
	attrs := []any{"dry_run", rep.DryRun, "complete", rep.Complete, "duration", rep.Duration, "transactions", rep.Transactions}
	for _, name := range store.RetentionTables {
		attrs = append(attrs, name, rep.Tables[name].Rows)
	}
	if err != nil {
		r.o.Logger.Error("retention pass stopped", append(attrs, "err", err)...)
		return
	}
	r.o.Logger.Info("retention pass done", attrs...)
}

// Write prints the report as a table: per table, how many rows were (or
// would be) deleted and the oldest and newest of their times.
func (rep *Report) Write(w io.Writer) error {
	verb, head := "deleted", "DELETED"
	if rep.DryRun {
		verb, head = "would delete", "WOULD DELETE"
	}
	status := ""
	if !rep.Complete {
		status = " (stopped early; the counts are what it did until then)"
	}
	if rep.DryRun {
		fmt.Fprintf(w, "retention dry run: nothing was deleted; a pass now %s %d rows%s\n", verb, rep.Total(), status)
	} else {
		fmt.Fprintf(w, "retention pass: %s %d rows in %s%s\n", verb, rep.Total(), rep.Duration.Round(time.Millisecond), status)
	}
	fmt.Fprintf(w, "policy: %s\n", rep.Policy)
	c := rep.Cutoffs
	for _, l := range []struct {
		what string
		at   time.Time
	}{{"messages received before", c.Messages}, {"events recorded before", c.Events}, {"audit rows written before", c.Audit},
		{"resolved alerts last changed before", c.Audit}} {
		if !l.at.IsZero() {
			fmt.Fprintf(w, "cutoff: %s %s\n", l.what, l.at.UTC().Format(time.RFC3339))
		}
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "TABLE\t%s\tOLDEST\tNEWEST\n", head)
	for _, name := range store.RetentionTables {
		rm := rep.Tables[name]
		oldest, newest := "-", "-"
		if rm.Rows > 0 {
			oldest, newest = rm.Oldest.UTC().Format(time.RFC3339), rm.Newest.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", name, rm.Rows, oldest, newest)
	}
	return tw.Flush()
}
