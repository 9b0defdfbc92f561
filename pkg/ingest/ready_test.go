package ingest_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/aortahealth/aorta/internal/pgtest"
	"github.com/aortahealth/aorta/pkg/ingest"
)

// gauge reads one unlabelled gauge from reg.
func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	for _, f := range families {
		if f.GetName() == name && len(f.GetMetric()) == 1 {
			return f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no gauge %s", name)
	return 0
}

// setReadOnly turns default_transaction_read_only on or off for the
// database at dbURL, from the maintenance database, and ends the
// database's sessions when turning it on: ALTER DATABASE reaches new
// sessions only. Turning it off leaves the read-only sessions alone; the
// ingester must get past them by itself.
func setReadOnly(t *testing.T, dbURL string, on bool) {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	name := strings.TrimPrefix(u.Path, "/")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, pgtest.ServerURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	db := pgx.Identifier{name}.Sanitize()
	if !on {
		if _, err := c.Exec(ctx, `ALTER DATABASE `+db+` RESET default_transaction_read_only`); err != nil {
			t.Fatalf("reset default_transaction_read_only: %v", err)
		}
		return
	}
	if _, err := c.Exec(ctx, `ALTER DATABASE `+db+` SET default_transaction_read_only = on`); err != nil {
		t.Fatalf("set default_transaction_read_only: %v", err)
	}
	if _, err := c.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1`, name); err != nil {
		t.Fatalf("end the database's sessions: %v", err)
	}
}

// TestCommitFailureState makes the database refuse writes for real and
// follows what the ingester reports: nothing before a failure; the
// failure, its time and SQLSTATE, a failing readiness check and the gauge
// at 1 after a frame was refused; the check passing again once the hold
// has passed without a commit (while the failure itself is still
// reported); and everything cleared by the first commit after the
// database takes writes again.
func TestCommitFailureState(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, dbURL := pgtest.NewStore(t)
	var skew atomic.Int64 // added to the ingester's clock
	now := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	reg := prometheus.NewRegistry()
	const hold = time.Minute
	in, err := ingest.New(st, ingest.Config{StoreRetryBudget: time.Second, CommitFailureHold: hold, Metrics: ingest.NewMetrics(reg), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(in.Close)

	check := func(stage string, wantFailure bool, wantCheck string) *ingest.CommitFailure {
		t.Helper()
		f := in.CommitFailure()
		if (f != nil) != wantFailure {
			t.Errorf("%s: CommitFailure() = %+v, want a failure: %v", stage, f, wantFailure)
		}
		err := in.CheckCommits(ctx)
		if wantCheck == "" && err != nil || wantCheck != "" && (err == nil || !strings.Contains(err.Error(), wantCheck)) {
			t.Errorf("%s: CheckCommits = %v, want %q", stage, err, wantCheck)
		}
		want := 0.0
		if wantFailure {
			want = 1
		}
		if got := gauge(t, reg, "aorta_commit_failing"); got != want {
			t.Errorf("%s: aorta_commit_failing = %v, want %v", stage, got, want)
		}
		return f
	}
	check("before any commit", false, "")
	if code, _, _ := ackOf(t, mustServe(t, in, msg("R1", ""))); code != "AA" {
		t.Fatalf("first message answered %s, want AA", code)
	}
	check("after a commit", false, "")

	setReadOnly(t, dbURL, true)
	refuse := func(cid string) {
		t.Helper()
		resp, err := in.ServeMLLP(ctx, conn, msg(cid, ""))
		if resp != nil || !errors.Is(err, ingest.ErrNotStored) {
			t.Fatalf("%s on a read-only database: resp %q err %v, want no answer and ErrNotStored", cid, resp, err)
		}
	}
	refuse("R2")
	first := check("after a refused frame", true, "SQLSTATE 25006")
	refuse("R3")
	second := check("after another refused frame", true, "commits failing since")
	if first != nil && second != nil && (!second.Since.Equal(first.Since) || !second.At.After(first.At)) {
		t.Errorf("second failure since %v at %v, want since %v (the first failure in a row) and later than %v", second.Since, second.At, first.Since, first.At)
	}

	// No commit for longer than the hold: ready again by this check, so
	// that traffic can come back and show whether the database writes;
	// the failure itself is still the last thing known.
	skew.Store(int64(hold))
	check("a hold after the last failure", true, "")
	skew.Store(0)

	setReadOnly(t, dbURL, false)
	// The pool may still hold sessions opened read-only; each fails once
	// and is closed, within the retry budget or the next frame's.
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := in.ServeMLLP(ctx, conn, msg("R4", ""))
		if err == nil {
			if code, _, _ := ackOf(t, resp); code != "AA" {
				t.Fatalf("R4 answered %s, want AA", code)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("R4 still not stored 30 s after the database took writes again: %v", err)
		}
	}
	check("after a commit on the writable database", false, "")
}

func mustServe(t *testing.T, in *ingest.Ingester, frame []byte) []byte {
	t.Helper()
	resp, err := in.ServeMLLP(context.Background(), conn, frame)
	if err != nil {
		t.Fatalf("ServeMLLP: %v", err)
	}
	return resp
}
