package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/aortahealth/aorta/internal/pgtest"
	"github.com/aortahealth/aorta/pkg/store"
)

// TestLatestValues pins which stored observation a score at time at may
// use: the newest at or before at, inside the freshness window (a value
// exactly as old as the window no longer counts), with an allowed status,
// never retracted, never one without a value.
func TestLatestValues(t *testing.T) {
	t.Parallel()
	_, url := pgtest.NewStore(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)

	at := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	type obs struct {
		key, param, numeric, text, status string
		ago                               time.Duration // before at; negative is after
	}
	rows := []obs{
		{"hr-now", "heart_rate", "80", "", "F", 0},                    // at exactly: counts
		{"hr-old", "heart_rate", "70", "", "F", 30 * time.Minute},     // older than hr-now
		{"rr-after", "respiratory_rate", "30", "", "F", -time.Minute}, // after at: never
		{"rr-edge", "respiratory_rate", "18", "", "F", time.Hour},     // exactly the window: no longer counts
		{"spo2-in", "spo2", "95", "", "F", time.Hour - time.Second},   // just inside
		{"sbp-p", "sbp", "100", "", "P", time.Minute},                 // preliminary: not allowed here
		{"sbp-f", "sbp", "120", "", "F", 10 * time.Minute},
		{"temp-w", "temperature", "39.5", "", "W", time.Minute},     // wrong: never
		{"temp-d", "temperature", "39.4", "", "D", 2 * time.Minute}, // deleted: never, even if listed
		{"temp-c", "temperature", "37.2", "", "C", 5 * time.Minute}, // a correction counts
		{"acvpu", "consciousness", "", "V", "R", 3 * time.Minute},   // coded, unverified: allowed
		{"o2-empty", "o2_flow", "", "", "F", time.Minute},           // no value: no value
		{"wbc", "wbc", "13.5", "", "F", 23 * time.Hour},             // inside a lab's 24 h
	}
	msgID := uuid.Must(uuid.NewV7())
	eventOf := map[string]uuid.UUID{}
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO messages (id, received_at, listener, remote_addr, raw, raw_sha256, status)
			VALUES ($1, now(), 'test', '127.0.0.1:1', 'MSH|', '\x00', 'accepted')`, msgID); err != nil {
			return err
		}
		for _, o := range rows {
			eventOf[o.key] = uuid.New()
			if _, err := tx.Exec(ctx, `INSERT INTO observations (patient_key, observation_key, event_id, message_id, parameter,
				code_system, code, value_numeric, value_text, status, observed_at)
				VALUES ('HOSP/1', $1, $2, $3, $4, 'LN', 'x', nullif($5, '')::numeric, nullif($6, ''), $7, $8)`,
				o.key, eventOf[o.key], msgID, o.param, o.numeric, o.text, o.status, at.Add(-o.ago)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("seed observations: %v", err)
	}

	freshness := map[string]time.Duration{
		"heart_rate": time.Hour, "respiratory_rate": time.Hour, "spo2": time.Hour, "sbp": time.Hour,
		"temperature": time.Hour, "consciousness": time.Hour, "o2_flow": time.Hour, "wbc": 24 * time.Hour,
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	var got []store.Value
	reads := store.TxFor(tx).Pipeline()
	reads.LatestValues("HOSP/1", at, freshness, []string{"F", "C", "R", "D"}, &got)
	if err := reads.Run(ctx); err != nil {
		t.Fatal(err)
	}
	// Each parameter's value, and the observation it must come from.
	want := map[string][2]string{
		"heart_rate": {"80", "hr-now"}, "spo2": {"95", "spo2-in"}, "sbp": {"120", "sbp-f"},
		"temperature": {"37.2", "temp-c"}, "consciousness": {"V", "acvpu"}, "wbc": {"13.5", "wbc"},
	}
	seen := map[string]bool{}
	for _, v := range got {
		w, ok := want[v.Parameter]
		switch {
		case !ok:
			t.Errorf("%s = %q%q: want no value for it", v.Parameter, v.Numeric, v.Text)
		case v.Numeric+v.Text != w[0] || v.EventID != eventOf[w[1]]:
			t.Errorf("%s = %q%q from event %s; want %s from observation %s", v.Parameter, v.Numeric, v.Text, v.EventID, w[0], w[1])
		}
		seen[v.Parameter] = true
	}
	for p := range want {
		if !seen[p] {
			t.Errorf("no value for %s; want %s", p, want[p][0])
		}
	}
}

// An acknowledgement writes an event, so it must queue behind the event
// sequence lock like the router's batches: a tailer reading by seq would
// otherwise skip it when a batch with a smaller seq commits after it.
// (One that writes no event need not.)
func TestAcknowledgeAlertTakesTheEventSequenceLock(t *testing.T) {
	t.Parallel()
	s, url := pgtest.NewStore(t)
	ctx := context.Background()
	alertID, _ := queueAlert(t, url)

	holder, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close(ctx)
	tx, err := holder.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, store.EventSeqLock); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, _, err := s.AcknowledgeAlert(ctx, alertID, "nurse", time.Now(), func(ctx context.Context, tx *store.Tx, a *store.Alert) error {
			p := tx.Pipeline()
			p.InsertEvents([]store.EventRow{{ID: uuid.New(), Type: "alert.acknowledged", OccurredAt: time.Now(), MessageID: a.MessageID,
				PatientKey: a.PatientKey, Source: "aorta", Route: "alert/" + a.Rule, SchemaVersion: 1, Payload: []byte(`{}`)}})
			return p.Run(ctx)
		})
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("acknowledged (%v) while a batch held the event sequence lock", err)
	case <-time.After(300 * time.Millisecond):
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("acknowledge: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("acknowledgement still waiting after the lock was released")
	}
}
