package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/aortahealth/aorta/internal/envflag"
	"github.com/aortahealth/aorta/pkg/retention"
)

// retentionFlags are the retention settings "router serve" and "router
// retention" share. They belong to the operator (flags and environment),
// not to routes.yaml, which analysts edit.
type retentionFlags struct {
	Messages, Events, Audit string
	Batch                   int
}

func (r *retentionFlags) declare(f *envflag.Set) {
	f.String(&r.Messages, "retain-messages", "RETAIN_MESSAGES", "off",
		"delete raw messages received longer ago than this, with their events, observations and routing rows (90d, 2160h; off keeps them)")
	f.String(&r.Events, "retain-events", "RETAIN_EVENTS", "off",
		"delete events recorded longer ago than this, at most --retain-messages (off: events go with their message)")
	f.String(&r.Audit, "retain-audit", "RETAIN_AUDIT", "off",
		"delete audit_log rows older than this, and resolved alerts (with their finished deliveries) last changed longer ago; open alerts are never deleted; at least --retain-messages and --retain-events (off keeps them)")
	f.Int(&r.Batch, "retention-batch", "RETENTION_BATCH", retention.DefaultBatch,
		"rows read per retention transaction (a message brings its events and observations)")
}

// policy reads the ages and refuses a bad policy with the flags named.
func (r *retentionFlags) policy() (retention.Policy, error) {
	var p retention.Policy
	var errs []error
	for _, a := range []struct {
		flag, value string
		dst         *time.Duration
	}{{"--retain-messages", r.Messages, &p.Messages}, {"--retain-events", r.Events, &p.Events}, {"--retain-audit", r.Audit, &p.Audit}} {
		d, err := retention.ParseAge(a.value)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", a.flag, err))
		}
		*a.dst = d
	}
	if err := errors.Join(errs...); err != nil {
		return p, err
	}
	if err := p.Validate(); err != nil {
		return p, fmt.Errorf("retention refused: %w", err)
	}
	if r.Batch < 1 || r.Batch > retention.MaxBatch {
		return p, fmt.Errorf("--retention-batch=%d: want 1 to %d", r.Batch, retention.MaxBatch)
	}
	return p, nil
}

// runRetention runs one retention pass now and prints what it deleted, or
// with --dry-run what it would delete.
func runRetention(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("router retention", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: router retention [--dry-run] [flags]\n\nRuns one retention pass now with the same settings as \"router serve\" and\nprints, per table, how many rows it deleted and the oldest and newest of\ntheir times. --dry-run deletes nothing and prints what a pass would delete.\nOnly one pass runs at a time in a cluster; see docs/operations.md.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	f := envflag.New(fs)
	var d dbFlags
	d.declare(f)
	var rf retentionFlags
	rf.declare(f)
	var dryRun bool
	fs.BoolVar(&dryRun, "dry-run", false, "report what would be deleted; change nothing")
	if err := f.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	p, err := rf.policy()
	if err != nil {
		return err
	}
	if !p.Enabled() {
		return errors.New("nothing to do: set --retain-messages, --retain-events or --retain-audit (or their environment variables)")
	}
	// Interrupting stops the pass promptly: the batch in flight rolls back
	// and what committed stays deleted (and audited).
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	st, log, err := d.open(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	r, err := retention.New(st, p, retention.Options{Batch: rf.Batch, Logger: log})
	if err != nil {
		return err
	}
	rep, err := r.Pass(ctx, dryRun)
	if errors.Is(err, retention.ErrBusy) {
		return errors.New("another retention pass is running (a router or another \"router retention\"); try again later")
	}
	if rep != nil {
		if werr := rep.Write(os.Stdout); werr != nil {
			return errors.Join(err, werr)
		}
	}
	return err
}
