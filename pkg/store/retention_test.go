package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/aortahealth/aorta/internal/pgtest"
	"github.com/aortahealth/aorta/pkg/store"
)

// retentionSeed writes rows of every kind retention looks at, each aged
// relative to now, and remembers which must go and which must stay.
type retentionSeed struct {
	t    *testing.T
	conn *pgx.Conn
	now  time.Time
}

func (s *retentionSeed) exec(sql string, args ...any) {
	s.t.Helper()
	if _, err := s.conn.Exec(context.Background(), sql, args...); err != nil {
		s.t.Fatalf("%s: %v", strings.Fields(sql)[0:3], err)
	}
}

func (s *retentionSeed) ago(days float64) time.Time {
	return s.now.Add(-time.Duration(days * float64(24*time.Hour)))
}

// message stores an accepted message received days ago, in batch when
// batch is not nil.
func (s *retentionSeed) message(days float64, batch *uuid.UUID, status string) uuid.UUID {
	s.t.Helper()
	id := uuid.Must(uuid.NewV7())
	var idx *int
	if batch != nil {
		n := 0
		idx = &n
	}
	s.exec(`INSERT INTO messages (id, received_at, listener, remote_addr, batch_id, batch_index, raw, raw_sha256, status, patient_key)
		VALUES ($1, $2, 'test', '127.0.0.1:1', $3, $4, 'MSH|', '\x00', $5, 'HOSP/P1')`, id, s.ago(days), batch, idx, status)
	return id
}

func (s *retentionSeed) batch(days float64) uuid.UUID {
	id := uuid.Must(uuid.NewV7())
	s.exec(`INSERT INTO batches (id, received_at, listener, remote_addr, raw, raw_sha256, header_type, message_count)
		VALUES ($1, $2, 'test', '127.0.0.1:1', 'BHS|', '\x00', 'BHS', 2)`, id, s.ago(days))
	return id
}

func (s *retentionSeed) routed(msg uuid.UUID, days float64) {
	s.exec(`INSERT INTO message_routing (message_id, status, routed_at) VALUES ($1, 'routed', $2)`, msg, s.ago(days))
}

// event writes an event of msg recorded days ago and returns its id.
func (s *retentionSeed) event(msg uuid.UUID, typ string, days float64) uuid.UUID {
	id := uuid.New()
	s.exec(`INSERT INTO events (id, type, occurred_at, recorded_at, message_id, patient_key, source, route, schema_version, payload)
		VALUES ($1, $2, $3, $3, $4, 'HOSP/P1', 'LAB^HOSP', 'r', 1, '{}')`, id, typ, s.ago(days), msg)
	return id
}

func (s *retentionSeed) observation(msg, event uuid.UUID, observedDays float64) {
	s.exec(`INSERT INTO observations (patient_key, observation_key, event_id, message_id, parameter, code_system, code, value_numeric, status, observed_at)
		VALUES ('HOSP/P1', $1, $2, $3, 'heart_rate', 'LN', '8867-4', 80, 'F', $4)`, uuid.NewString(), event, msg, s.ago(observedDays))
}

func (s *retentionSeed) deadLetter(msg uuid.UUID, days float64, resolved bool) {
	var at *time.Time
	var res *string
	if resolved {
		t, r := s.ago(days), "discarded"
		at, res = &t, &r
	}
	s.exec(`INSERT INTO dead_letters (message_id, error, attempts, created_at, resolved_at, resolution) VALUES ($1, 'x', 1, $2, $3, $4)`,
		msg, s.ago(days), at, res)
}

func (s *retentionSeed) alert(msg, scoreEvent uuid.UUID, days float64) uuid.UUID {
	id := uuid.New()
	s.exec(`INSERT INTO alerts (id, patient_key, patient_id, rule, score, severity, level, status, raised_at, updated_at, last_notified_at, score_event_id, score_at, message_id)
		VALUES ($1, 'HOSP/P1', 'P1', 'news2_high', 'news2', 'urgent', 1, 'resolved', $2, $2, $2, $3, $2, $4)`, id, s.ago(days), scoreEvent, msg)
	return id
}

func (s *retentionSeed) audit(days float64) {
	s.exec(`INSERT INTO audit_log (at, actor, action, target) VALUES ($1, 'alice', 'message.view', 'x')`, s.ago(days))
}

// counts are the rows per table, read in one go.
func tableCounts(t *testing.T, conn *pgx.Conn) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, table := range append(store.RetentionTables, "outbox", "scores") {
		var n int64
		if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM `+table).Scan(&n); err != nil {
			t.Fatalf("count %s: %v", table, err)
		}
		out[table] = n
	}
	return out
}

// pass runs one whole pass with a session, in batches of n, in the order
// pkg/retention runs it: alerts, messages, events, audit rows.
func pass(ctx context.Context, st *store.Store, cut store.RetentionCutoffs, dryRun bool, n int) (map[string]store.Removed, error) {
	sess, err := st.BeginRetention(ctx, cut, dryRun)
	if err != nil {
		return nil, err
	}
	defer sess.Close()
	total := map[string]store.Removed{}
	add := func(table string, r store.Removed) {
		t := total[table]
		t.Add(r)
		total[table] = t
	}
	for _, next := range []func(context.Context, int) (map[string]store.Removed, bool, error){sess.NextAlerts, sess.NextMessages} {
		for more := true; more; {
			var removed map[string]store.Removed
			if removed, more, err = next(ctx, n); err != nil {
				return total, err
			}
			for k, v := range removed {
				add(k, v)
			}
		}
	}
	for more := true; more; {
		var r store.Removed
		if r, more, err = sess.NextEvents(ctx, n); err != nil {
			return total, err
		}
		add(store.RetainEvents, r)
	}
	for more := true; more; {
		var r store.Removed
		if r, more, err = sess.NextAudit(ctx, n); err != nil {
			return total, err
		}
		add(store.RetainAudit, r)
	}
	return total, nil
}

func rowsOf(m map[string]store.Removed) map[string]int64 {
	out := map[string]int64{}
	for k, v := range m {
		if v.Rows > 0 {
			out[k] = v.Rows
		}
	}
	return out
}

// One pass over rows of every age and kind deletes exactly what the
// policy allows and keeps what is still needed; a dry run before it
// reports the same counts and deletes nothing; a second pass finds
// nothing. Each batch size walks the windows differently (batches split
// across windows at 1).
func TestRetentionDeletesWhatMayGoAndKeepsTheRest(t *testing.T) {
	t.Parallel()
	for _, n := range []int{1, 2, 3, 500} {
		t.Run(fmt.Sprintf("batch %d", n), func(t *testing.T) {
			t.Parallel()
			testRetentionPass(t, n)
		})
	}
}

func testRetentionPass(t *testing.T, n int) {
	st, url := pgtest.NewStore(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	s := &retentionSeed{t: t, conn: conn, now: time.Now()}
	// Messages (and observations) retention 90 days, events 30, audit 365.
	cut := store.RetentionCutoffs{Messages: s.ago(90), Observations: s.ago(90), Events: s.ago(30), Audit: s.ago(365)}

	// Goes: an old routed message with two events and an old observation.
	m := s.message(100, nil, "accepted")
	s.routed(m, 100)
	s.observation(m, s.event(m, "observation.recorded", 100), 100)
	s.event(m, "patient.admitted", 100)
	// Goes: old, rejected, never routed.
	s.message(120, nil, "rejected")
	// Goes with its resolved dead letter.
	m = s.message(100, nil, "accepted")
	s.deadLetter(m, 100, true)
	// Goes: a replayed old message's young event goes with it.
	m = s.message(95, nil, "accepted")
	s.event(m, "observation.recorded", 1)
	// Stays: still in the outbox.
	m = s.message(100, nil, "accepted")
	s.exec(`INSERT INTO outbox (message_id, partition_key) VALUES ($1, 1)`, m)
	// Stays: an open dead letter.
	m = s.message(100, nil, "accepted")
	s.deadLetter(m, 100, false)
	// Stays: behind an alert, with its events (one of which is old
	// enough for the events cutoff).
	alertMsg := s.message(100, nil, "accepted")
	scoreEv := s.event(alertMsg, "score.calculated", 100)
	alertID := s.alert(alertMsg, scoreEv, 100)
	// Stays: its alert.raised event was delivered.
	m = s.message(100, nil, "accepted")
	delivered := s.event(m, "alert.raised", 100)
	s.exec(`INSERT INTO deliveries (event_id, alert_id, destination, kind, status) VALUES ($1, $2, 'pager', 'webhook', 'delivered')`, delivered, alertID)
	// Stays: its event is a patient's current score.
	m = s.message(100, nil, "accepted")
	s.exec(`INSERT INTO scores (patient_key, score, calculated_at, total, complete, event_id) VALUES ('HOSP/P1', 'news2', $1, 3, true, $2)`,
		s.ago(100), s.event(m, "score.calculated", 100))
	// Stays: an observation whose clinical time is after the cutoff (it
	// was sent ahead of time), which new ones may be scored with.
	m = s.message(100, nil, "accepted")
	s.observation(m, s.event(m, "observation.recorded", 100), 80)
	// A batch all of whose messages go goes; one with a message queued stays.
	b := s.batch(100)
	s.message(100, &b, "accepted")
	s.message(100, &b, "accepted")
	b = s.batch(100)
	s.message(100, &b, "accepted")
	m = s.message(100, &b, "accepted")
	s.exec(`INSERT INTO outbox (message_id, partition_key) VALUES ($1, 1)`, m)
	// Stays, its old events go: younger than the messages cutoff.
	m = s.message(60, nil, "accepted")
	s.event(m, "observation.recorded", 60)
	s.event(m, "observation.recorded", 59)
	s.exec(`INSERT INTO scores (patient_key, score, calculated_at, total, complete, event_id) VALUES ('HOSP/P2', 'sirs', $1, 1, true, $2)`,
		s.ago(60), s.event(m, "score.calculated", 60))
	// Stays: young.
	m = s.message(10, nil, "accepted")
	s.routed(m, 10)
	s.event(m, "observation.recorded", 10)
	// Audit: a year and more goes.
	s.audit(400)
	s.audit(366)
	s.audit(200)

	before := tableCounts(t, conn)
	want := map[string]int64{
		store.RetainMessages:       7, // routed, rejected, resolved dead letter, replayed, 3 of the batches
		store.RetainBatches:        1,
		store.RetainMessageRouting: 1,
		store.RetainDeadLetters:    1,
		store.RetainObservations:   1,
		store.RetainEvents:         6, // 3 with their messages; by age 2 of the 60-day message and the late observation's
		store.RetainAudit:          2,
	}

	dry, err := pass(ctx, st, cut, true, n)
	if err != nil {
		t.Fatalf("dry run: %v", err)
	}
	if got := rowsOf(dry); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("dry run would delete %v\nwant %v", got, want)
	}
	if after := tableCounts(t, conn); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("dry run changed the tables: %v, was %v", after, before)
	}

	real, err := pass(ctx, st, cut, false, n)
	if err != nil {
		t.Fatalf("pass: %v", err)
	}
	if got := rowsOf(real); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("pass deleted %v\nwant %v", got, want)
	}
	for table, r := range dry {
		if real[table] != r {
			t.Errorf("%s: dry run reported %+v, the pass deleted %+v", table, r, real[table])
		}
	}
	after := tableCounts(t, conn)
	for table, was := range before {
		if got := was - after[table]; got != want[table] {
			t.Errorf("%s: %d rows gone, want %d", table, got, want[table])
		}
	}
	if r := real[store.RetainMessages]; !r.Oldest.Equal(s.ago(120).Truncate(time.Microsecond)) || !r.Newest.Equal(s.ago(95).Truncate(time.Microsecond)) {
		t.Errorf("messages deleted from %s to %s, want %s to %s", r.Oldest, r.Newest, s.ago(120), s.ago(95))
	}

	// What stays is whole: the alert's message and its old score event,
	// the delivered and current-score events, the late observation.
	var kept int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM events WHERE id = ANY($1)`, []uuid.UUID{scoreEv, delivered}).Scan(&kept); err != nil || kept != 2 {
		t.Errorf("alert and delivered events: %d of 2 kept (%v)", kept, err)
	}

	again, err := pass(ctx, st, cut, false, n)
	if err != nil {
		t.Fatalf("second pass: %v", err)
	}
	if got := rowsOf(again); len(got) != 0 {
		t.Errorf("second pass deleted %v, want nothing", got)
	}
}

// Only one pass runs at a time: a second session is refused while the
// first holds the lock, and admitted once it is closed.
func TestRetentionIsOnePassAtATime(t *testing.T) {
	t.Parallel()
	st, _ := pgtest.NewStore(t)
	ctx := context.Background()
	cut := store.RetentionCutoffs{Audit: time.Now().Add(-time.Hour)}
	first, err := st.BeginRetention(ctx, cut, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.BeginRetention(ctx, cut, true); !errors.Is(err, store.ErrRetentionBusy) {
		t.Errorf("second pass while the first runs: %v, want ErrRetentionBusy", err)
	}
	first.Close()
	first.Close() // idempotent
	second, err := st.BeginRetention(ctx, cut, false)
	if err != nil {
		t.Fatalf("after the first closed: %v", err)
	}
	second.Close()
}

// A cancelled batch rolls back whole and leaves the walk where it was: a
// new pass deletes the rest, and the total is as if never interrupted.
func TestRetentionCancelledBatchRollsBack(t *testing.T) {
	t.Parallel()
	st, url := pgtest.NewStore(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	s := &retentionSeed{t: t, conn: conn, now: time.Now()}
	for range 10 {
		m := s.message(100, nil, "accepted")
		s.routed(m, 100)
		s.event(m, "observation.recorded", 100)
	}
	cut := store.RetentionCutoffs{Messages: s.ago(90), Observations: s.ago(90)}
	sess, err := st.BeginRetention(ctx, cut, false)
	if err != nil {
		t.Fatal(err)
	}
	removed, _, err := sess.NextMessages(ctx, 3)
	if err != nil || removed[store.RetainMessages].Rows != 3 {
		t.Fatalf("first batch: %v, %v; want 3 messages", removed, err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := sess.NextMessages(cctx, 3); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled batch: %v, want context.Canceled", err)
	}
	sess.Close()
	if c := tableCounts(t, conn); c[store.RetainMessages] != 7 || c[store.RetainEvents] != 7 || c[store.RetainMessageRouting] != 7 {
		t.Errorf("after the cancelled batch: %v, want 7 messages, events and routing rows", c)
	}
	rest, err := pass(ctx, st, cut, false, 3)
	if err != nil {
		t.Fatal(err)
	}
	if got := rowsOf(rest); fmt.Sprint(got) != fmt.Sprint(map[string]int64{"events": 7, "message_routing": 7, "messages": 7}) {
		t.Errorf("next pass deleted %v, want the 7 left of each", got)
	}
}

// A tail resuming from a seq that retention deleted gets the events that
// remain after it, and the head never goes below what is stored.
func TestRetentionTailResumesAfterDeletedSeq(t *testing.T) {
	t.Parallel()
	st, url := pgtest.NewStore(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	s := &retentionSeed{t: t, conn: conn, now: time.Now()}
	m := s.message(10, nil, "accepted")
	for _, days := range []float64{50, 40, 5, 1} {
		s.event(m, "observation.recorded", days)
	}
	if _, err := pass(ctx, st, store.RetentionCutoffs{Events: s.ago(30)}, false, 10); err != nil {
		t.Fatal(err)
	}
	var seqs []int64
	rows, _ := conn.Query(ctx, `SELECT seq FROM events ORDER BY seq`)
	seqs, err = pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil || len(seqs) != 2 {
		t.Fatalf("events left: %v (%v), want 2", seqs, err)
	}
	tests := []struct {
		name  string
		after int64
		want  int
	}{
		{"from the start", 0, 2},
		{"from a deleted seq", seqs[0] - 1, 2},
		{"from the first kept", seqs[0], 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evs, head, err := st.TailEvents(ctx, store.EventFilter{After: tt.after, Limit: 100}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) != tt.want || head != seqs[1] {
				t.Errorf("tail after %d: %d events, head %d; want %d, head %d", tt.after, len(evs), head, tt.want, seqs[1])
			}
		})
	}
}

// Each window a pass reads is an index range from its cursor, never a
// scan of the table, and every check of what stays (a dry run's included)
// and every deletion of alerts is an index lookup:
// on 20,000 messages with events, and sequential scans priced out so the
// small tables of the test show the path a production-sized one takes.
func TestRetentionWindowsUseIndexes(t *testing.T) {
	t.Parallel()
	_, url := pgtest.NewStore(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, `
		INSERT INTO messages (id, received_at, listener, remote_addr, raw, raw_sha256, status)
		SELECT gen_random_uuid(), now() - n * interval '10 minutes', 'test', '127.0.0.1:1', 'MSH|', '\x00', 'accepted'
		FROM generate_series(1, 20000) AS n;
		INSERT INTO events (id, type, occurred_at, recorded_at, message_id, source, route, schema_version, payload)
		SELECT gen_random_uuid(), 'observation.recorded', received_at, received_at, id, 'LAB^HOSP', 'r', 1, '{}' FROM messages;
		INSERT INTO audit_log (at, actor, action, target) SELECT now() - n * interval '4 hours', 'a', 'b', 'c' FROM generate_series(5000, 1, -1) AS n;
		ANALYZE messages; ANALYZE events; ANALYZE audit_log`)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	cutoff, obs, audit := now.Add(-90*24*time.Hour), now.Add(-97*24*time.Hour), now.Add(-365*24*time.Hour)
	tests := []struct {
		name  string
		sql   string
		args  []any
		index []string
	}{
		{"alerts", store.RetentionAlertsSQL, []any{audit, time.Time{}, uuid.Nil, 500},
			[]string{"alerts_resolved_idx", "deliveries_alert_idx"}},
		{"delete alerts", store.RetentionDeleteAlertsSQL, []any{[]uuid.UUID{uuid.New()}, audit},
			[]string{"alerts_pkey|alerts_resolved_idx", "deliveries_alert_idx"}},
		{"messages", store.RetentionMessagesSQL, []any{cutoff, obs, time.Time{}, uuid.Nil, 500},
			[]string{"messages_received_id_idx", "outbox_message_id_key", "dead_letters_message_idx|dead_letters_open_idx", "alerts_message_idx",
				"observations_message_idx", "events_message_idx", "deliveries_event_id_destination_key", "scores_event_idx"}},
		{"messages, dry run", store.RetentionMessagesDrySQL, []any{cutoff, obs, time.Time{}, uuid.Nil, 500, audit},
			[]string{"messages_received_id_idx", "outbox_message_id_key", "dead_letters_message_idx|dead_letters_open_idx", "alerts_message_idx",
				"observations_message_idx", "events_message_idx", "deliveries_event_id_destination_key", "alerts_pkey", "deliveries_alert_idx",
				"scores_event_idx"}},
		{"batches", store.RetentionBatchesSQL, []any{cutoff, obs, []uuid.UUID{uuid.New()}, audit},
			[]string{"batches_pkey", "messages_batch_idx", "alerts_message_idx", "deliveries_alert_idx"}},
		{"events", store.RetentionEventsSQL, []any{cutoff, obs, now.Add(-30 * 24 * time.Hour), int64(0), 500},
			[]string{"events_pkey", "deliveries_event_id_destination_key", "scores_event_idx", "alerts_message_idx", "messages_pkey"}},
		{"events, dry run", store.RetentionEventsDrySQL, []any{cutoff, obs, now.Add(-30 * 24 * time.Hour), int64(0), 500, audit},
			[]string{"events_pkey", "deliveries_event_id_destination_key", "alerts_pkey", "deliveries_alert_idx", "scores_event_idx",
				"alerts_message_idx", "messages_pkey"}},
		{"audit", store.RetentionAuditSQL, []any{int64(0), 500}, []string{"audit_log_pkey"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tx, err := conn.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback(ctx)
			if _, err := tx.Exec(ctx, `SET LOCAL enable_seqscan = off`); err != nil {
				t.Fatal(err)
			}
			rows, err := tx.Query(ctx, `EXPLAIN `+tt.sql, tt.args...)
			if err != nil {
				t.Fatal(err)
			}
			lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				t.Fatal(err)
			}
			plan := strings.Join(lines, "\n")
			if testing.Verbose() {
				t.Log(plan)
			}
			if strings.Contains(plan, "Seq Scan") {
				t.Errorf("plan has a sequential scan:\n%s", plan)
			}
			for _, idx := range tt.index {
				// a|b: either index serves (the planner picks by size).
				if !slices.ContainsFunc(strings.Split(idx, "|"), func(i string) bool { return strings.Contains(plan, i) }) {
					t.Errorf("plan does not use %s:\n%s", idx, plan)
				}
			}
		})
	}
}
