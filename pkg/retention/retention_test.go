package retention_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/aortahealth/aorta/internal/pgtest"
	"github.com/aortahealth/aorta/pkg/retention"
	"github.com/aortahealth/aorta/pkg/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// seed stores n routed messages received daysAgo, each with one event and
// its routing row, the first kept back in the outbox when queued is set,
// and audit rows of the given ages in days (oldest first, as written).
func seed(t *testing.T, conn *pgx.Conn, n, daysAgo int, queued bool, audit ...int) {
	t.Helper()
	ctx := context.Background()
	_, err := conn.Exec(ctx, `
		INSERT INTO messages (id, received_at, listener, remote_addr, raw, raw_sha256, status)
		SELECT gen_random_uuid(), now() - $2 * interval '1 day' + i * interval '1 second', 'test', '127.0.0.1:1', 'MSH|', '\x00', 'accepted'
		FROM generate_series(1, $1) AS i`, n, daysAgo)
	if err != nil {
		t.Fatal(err)
	}
	_, err = conn.Exec(ctx, `
		INSERT INTO message_routing (message_id, status, routed_at) SELECT id, 'routed', received_at FROM messages
		WHERE NOT EXISTS (SELECT 1 FROM message_routing r WHERE r.message_id = messages.id);
		INSERT INTO events (id, type, occurred_at, recorded_at, message_id, source, route, schema_version, payload)
		SELECT gen_random_uuid(), 'observation.recorded', received_at, received_at, id, 'LAB^HOSP', 'r', 1, '{}' FROM messages
		WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.message_id = messages.id)`)
	if err != nil {
		t.Fatal(err)
	}
	if queued {
		if _, err := conn.Exec(ctx, `INSERT INTO outbox (message_id, partition_key)
			SELECT id, 1 FROM messages ORDER BY received_at LIMIT 1`); err != nil {
			t.Fatal(err)
		}
	}
	for _, days := range audit {
		if _, err := conn.Exec(ctx, `INSERT INTO audit_log (at, actor, action, target) VALUES (now() - $1 * interval '1 day', 'alice', 'message.view', 'x')`, days); err != nil {
			t.Fatal(err)
		}
	}
}

func count(t *testing.T, conn *pgx.Conn, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := conn.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func rows(rep *retention.Report) map[string]int64 {
	out := map[string]int64{}
	for k, v := range rep.Tables {
		if v.Rows > 0 {
			out[k] = v.Rows
		}
	}
	return out
}

var policy = retention.Policy{Messages: 90 * retention.Day, Events: 30 * retention.Day, Audit: 365 * retention.Day}

// A dry run reports what the pass then deletes and changes nothing, not
// even the audit log; the pass deletes it, writes one audit row with the
// counts and counts them in the metrics; a second pass deletes nothing.
func TestPassDryRunThenRealThenNothing(t *testing.T) {
	t.Parallel()
	st, url := pgtest.NewStore(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	seed(t, conn, 25, 100, true, 500, 400, 10) // 24 go (one queued), 2 audit rows go
	seed(t, conn, 5, 10, false)                // young: stay
	reg := prometheus.NewRegistry()
	r, err := retention.New(st, policy, retention.Options{Batch: 7, Metrics: retention.NewMetrics(reg)})
	if err != nil {
		t.Fatal(err)
	}
	// The queued message stays, but its event is older than the events
	// cutoff and goes: 25 events.
	want := map[string]int64{"messages": 24, "events": 25, "message_routing": 24, "audit_log": 2}
	auditBefore := count(t, conn, `SELECT count(*) FROM audit_log`)

	dry, err := r.Pass(ctx, true)
	if err != nil {
		t.Fatalf("dry run: %v", err)
	}
	if got := rows(dry); !equal(got, want) || !dry.Complete || !dry.DryRun {
		t.Errorf("dry run: %v (complete %t), want %v", got, dry.Complete, want)
	}
	if n := count(t, conn, `SELECT count(*) FROM messages`); n != 30 {
		t.Errorf("after the dry run %d messages, want all 30", n)
	}
	if n := count(t, conn, `SELECT count(*) FROM audit_log`); n != auditBefore {
		t.Errorf("the dry run wrote to the audit log: %d rows, was %d", n, auditBefore)
	}
	if got := counterValue(t, reg, "aorta_retention_runs_total", "ok"); got != 0 {
		t.Errorf("the dry run counted as a run: %v", got)
	}
	var out bytes.Buffer
	if err := dry.Write(&out); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"retention dry run: nothing was deleted; a pass now would delete 75 rows",
		"policy: messages=90d events=30d audit=365d", "TABLE", "WOULD DELETE", "messages ", "audit_log "} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("dry-run report lacks %q:\n%s", line, out.String())
		}
	}

	real, err := r.Pass(ctx, false)
	if err != nil {
		t.Fatalf("pass: %v", err)
	}
	if got := rows(real); !equal(got, want) || !real.Complete {
		t.Errorf("pass deleted %v (complete %t), want %v", got, real.Complete, want)
	}
	for table, d := range dry.Tables {
		if real.Tables[table] != d {
			t.Errorf("%s: dry run said %+v, the pass deleted %+v", table, d, real.Tables[table])
		}
	}
	if n := count(t, conn, `SELECT count(*) FROM messages`); n != 6 {
		t.Errorf("after the pass %d messages, want 6 (5 young, 1 queued)", n)
	}
	var details []byte
	if err := conn.QueryRow(ctx, `SELECT details FROM audit_log WHERE actor = 'retention' AND action = 'retention.pass'`).Scan(&details); err != nil {
		t.Fatalf("the pass's audit row: %v", err)
	}
	var d struct {
		Complete bool
		Deleted  map[string]struct{ Rows int64 }
	}
	if err := json.Unmarshal(details, &d); err != nil || !d.Complete || d.Deleted["messages"].Rows != 24 || d.Deleted["audit_log"].Rows != 2 {
		t.Errorf("audit details %s (%v): want complete, 24 messages, 2 audit rows", details, err)
	}
	for table, n := range want {
		if got := counterValue(t, reg, "aorta_retention_deleted_rows_total", table); got != float64(n) {
			t.Errorf("aorta_retention_deleted_rows_total{table=%q} = %v, want %d", table, got, n)
		}
	}

	again, err := r.Pass(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if again.Total() != 0 {
		t.Errorf("second pass deleted %v, want nothing", rows(again))
	}
	if got := counterValue(t, reg, "aorta_retention_runs_total", "ok"); got != 2 {
		t.Errorf("runs ok = %v, want 2", got)
	}
	if n := count(t, conn, `SELECT count(*) FROM audit_log WHERE actor = 'retention'`); n != 2 {
		t.Errorf("%d retention audit rows, want one per pass (2)", n)
	}
}

// A pass deletes finished alerts first, with their deliveries, so that
// the messages and events they kept go in the same pass; an open alert
// as old stays with its message. The dry run says so beforehand, and the
// report, the audit row and the metrics count the alerts and deliveries.
func TestPassDeletesFinishedAlertsFirst(t *testing.T) {
	t.Parallel()
	st, url := pgtest.NewStore(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	seed(t, conn, 3, 400, false)
	// The first message's alert was resolved 370 days ago, the second's is
	// open; each has its event delivered.
	_, err = conn.Exec(ctx, `
		INSERT INTO alerts (id, patient_key, patient_id, rule, score, severity, level, status, raised_at, updated_at, last_notified_at,
			score_event_id, score_at, message_id, resolved_at)
		SELECT gen_random_uuid(), 'HOSP/P' || n, 'P' || n, 'news2', 'news2', 'urgent', 1, s, t, t, t, e.id, t, m.id,
			CASE WHEN s = 'resolved' THEN t END
		FROM (SELECT id, row_number() OVER (ORDER BY received_at) AS n FROM messages) m
		JOIN events e ON e.message_id = m.id,
		LATERAL (SELECT CASE n WHEN 1 THEN 'resolved' ELSE 'open' END AS s, now() - interval '370 days' AS t) x
		WHERE n <= 2;
		INSERT INTO deliveries (event_id, alert_id, destination, kind, status, attempts, created_at, delivered_at)
		SELECT score_event_id, id, 'pager', 'webhook', 'delivered', 1, updated_at, updated_at FROM alerts`)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	r, err := retention.New(st, policy, retention.Options{Batch: 1, Metrics: retention.NewMetrics(reg)})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"alerts": 1, "deliveries": 1, "messages": 2, "message_routing": 2, "events": 2}

	dry, err := r.Pass(ctx, true)
	if err != nil {
		t.Fatalf("dry run: %v", err)
	}
	if got := rows(dry); !equal(got, want) {
		t.Errorf("dry run: %v, want %v", got, want)
	}
	var out bytes.Buffer
	if err := dry.Write(&out); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"cutoff: resolved alerts last changed before ", "\nalerts      ", "\ndeliveries  "} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("dry-run report lacks %q:\n%s", line, out.String())
		}
	}
	real, err := r.Pass(ctx, false)
	if err != nil {
		t.Fatalf("pass: %v", err)
	}
	if got := rows(real); !equal(got, want) {
		t.Errorf("pass deleted %v, want %v", got, want)
	}
	for table, d := range dry.Tables {
		if real.Tables[table] != d {
			t.Errorf("%s: dry run said %+v, the pass deleted %+v", table, d, real.Tables[table])
		}
	}
	if n := count(t, conn, `SELECT count(*) FROM alerts WHERE status = 'open'`); n != 1 {
		t.Errorf("%d open alerts left, want the 1", n)
	}
	if n := count(t, conn, `SELECT count(*) FROM messages m JOIN alerts a ON a.message_id = m.id`); n != 1 {
		t.Errorf("%d messages behind the open alert left, want 1", n)
	}
	if n := count(t, conn, `SELECT count(*) FROM audit_log WHERE actor = 'retention'
		AND (details->'deleted'->'alerts'->>'rows')::int = 1 AND (details->'deleted'->'deliveries'->>'rows')::int = 1
		AND details->'cutoffs' ? 'alerts'`); n != 1 {
		t.Errorf("%d audit rows recording 1 alert and 1 delivery with the alerts cutoff, want 1", n)
	}
	for table, n := range want {
		if got := counterValue(t, reg, "aorta_retention_deleted_rows_total", table); got != float64(n) {
			t.Errorf("aorta_retention_deleted_rows_total{table=%q} = %v, want %d", table, got, n)
		}
	}
	again, err := r.Pass(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if again.Total() != 0 {
		t.Errorf("second pass deleted %v, want nothing", rows(again))
	}
}

// While one pass runs, another (another router, or the command) is
// refused at once and counted as busy.
func TestPassWhileAnotherRuns(t *testing.T) {
	t.Parallel()
	st, _ := pgtest.NewStore(t)
	ctx := context.Background()
	sess, err := st.BeginRetention(ctx, store.RetentionCutoffs{}, false)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	reg := prometheus.NewRegistry()
	r, err := retention.New(st, policy, retention.Options{Metrics: retention.NewMetrics(reg)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Pass(ctx, false); !errors.Is(err, retention.ErrBusy) {
		t.Errorf("Pass while another runs: %v, want ErrBusy", err)
	}
	if got := counterValue(t, reg, "aorta_retention_runs_total", "busy"); got != 1 {
		t.Errorf("runs busy = %v, want 1", got)
	}
}

// cancelAt cancels a context when the nth statement containing sub starts.
type cancelAt struct {
	sub    string
	n      int64
	seen   atomic.Int64
	cancel context.CancelFunc
}

func (c *cancelAt) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if strings.Contains(d.SQL, c.sub) && c.seen.Add(1) == c.n {
		c.cancel()
	}
	return ctx
}

func (c *cancelAt) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// Cancelled in the middle of a batch (the third deletion of messages),
// a pass stops at once: that batch rolls back whole, the two before it
// stay deleted, the report and the audit row say so, and the next pass
// deletes the rest.
func TestPassCancelledMidway(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tracer := &cancelAt{sub: "DELETE FROM messages", n: 3, cancel: cancel}
	st, err := store.Open(context.Background(), url, store.Options{MaxConns: 4, Tracer: tracer})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	seed(t, conn, 10, 100, false)
	r, err := retention.New(st, policy, retention.Options{Batch: 2})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	rep, err := r.Pass(ctx, false)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled pass: %v, want context.Canceled", err)
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("cancelled pass took %s to stop", elapsed)
	}
	if rep == nil || rep.Complete || rep.Tables["messages"].Rows != 4 {
		t.Fatalf("cancelled pass report %+v, want incomplete with 4 messages (two batches)", rep)
	}
	if n := count(t, conn, `SELECT count(*) FROM messages`); n != 6 {
		t.Errorf("%d messages left, want 6: the cancelled batch must roll back whole", n)
	}
	if n := count(t, conn, `SELECT count(*) FROM events`); n != 6 {
		t.Errorf("%d events left, want 6 (the cancelled batch's events must stay with their messages)", n)
	}
	if n := count(t, conn, `SELECT count(*) FROM audit_log WHERE actor = 'retention' AND details->>'complete' = 'false'
		AND (details->'deleted'->'messages'->>'rows')::int = 4`); n != 1 {
		t.Errorf("%d audit rows recording the incomplete pass, want 1", n)
	}

	rest, err := r.Pass(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	if got := rest.Tables["messages"].Rows; got != 6 || !rest.Complete {
		t.Errorf("next pass deleted %d messages (complete %t), want the 6 left", got, rest.Complete)
	}
}

// Loop runs passes until its context ends, then returns.
func TestLoopStopsWithItsContext(t *testing.T) {
	t.Parallel()
	st, _ := pgtest.NewStore(t)
	r, err := retention.New(st, policy, retention.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Loop(ctx, time.Hour) }()
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Loop did not return after its context was cancelled")
	}
}

func TestNewRefuses(t *testing.T) {
	tests := []struct {
		name  string
		p     retention.Policy
		batch int
		want  string
	}{
		{"bad policy", retention.Policy{Messages: time.Hour}, 0, "--retain-messages=1h0m0s"},
		{"batch too large", policy, retention.MaxBatch + 1, "--retention-batch=10001"},
		{"batch negative", policy, -1, "--retention-batch=-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := retention.New(nil, tt.p, retention.Options{Batch: tt.batch})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New: %v, want an error naming %q", err, tt.want)
			}
		})
	}
}

func equal(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// counterValue reads one series of a counter vector from reg.
func counterValue(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetValue() == label {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{%s}", name, label)
	return 0
}
