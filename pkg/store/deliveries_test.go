package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/aortahealth/aorta/internal/pgtest"
	"github.com/aortahealth/aorta/pkg/store"
)

// queueAlert inserts what the scoring transaction would: a message, an
// alert.raised event, its alert, and one delivery per destination. It
// returns the delivery IDs in destination order.
func queueAlert(t *testing.T, url string, dests ...string) (alertID uuid.UUID, ids []int64) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	msgID, eventID, alertID := uuid.Must(uuid.NewV7()), uuid.New(), uuid.New()
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO messages (id, received_at, listener, remote_addr, raw, raw_sha256, status)
			VALUES ($1, now(), 'test', '127.0.0.1:1', 'MSH|', '\x00', 'accepted')`, msgID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO events (id, type, occurred_at, message_id, patient_id, patient_key, encounter_id, source, route, schema_version, payload)
			VALUES ($1, 'alert.raised', now() - interval '1 minute', $2, 'MRN1', 'HOSP/MRN1', 'V1', 'MON^ICU', 'vitals', 1, '{"total": 7}')`, eventID, msgID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO alerts (id, patient_key, patient_id, rule, score, severity, level, status, raised_at, updated_at, last_notified_at, score_event_id, score_at, message_id)
			VALUES ($1, 'HOSP/MRN1', 'MRN1', 'news2_high', 'news2', 'emergency', 2, 'resolved', now(), now(), now(), $2, now(), $3)`, alertID, uuid.New(), msgID); err != nil {
			return err
		}
		for _, d := range dests {
			var id int64
			if err := tx.QueryRow(ctx, `INSERT INTO deliveries (event_id, alert_id, destination, kind) VALUES ($1, $2, $3, 'webhook') RETURNING id`,
				eventID, alertID, d).Scan(&id); err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("queue alert: %v", err)
	}
	return alertID, ids
}

func claimIDs(ds []store.Delivery) map[int64]int {
	m := map[int64]int{}
	for _, d := range ds {
		m[d.ID] = d.Attempt
	}
	return m
}

func TestClaimDeliveriesReturnsEventAndAlert(t *testing.T) {
	t.Parallel()
	s, url := pgtest.NewStore(t)
	ctx := context.Background()
	alertID, ids := queueAlert(t, url, "hook")
	ds, err := s.ClaimDeliveries(ctx, []store.DeliveryClaim{{Destination: "hook", Limit: 10, Lease: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 1 {
		t.Fatalf("claimed %d rows, want 1", len(ds))
	}
	d := ds[0]
	if d.ID != ids[0] || d.AlertID != alertID || d.Attempt != 1 || d.Type != "alert.raised" || d.Destination != "hook" || d.Kind != "webhook" {
		t.Errorf("claimed %+v", d)
	}
	if d.PatientID != "MRN1" || d.PatientKey != "HOSP/MRN1" || d.EncounterID != "V1" || d.Rule != "news2_high" ||
		d.Score != "news2" || d.Severity != "emergency" || d.Level != 2 || string(d.Payload) != `{"total": 7}` {
		t.Errorf("claimed %+v, payload %s", d, d.Payload)
	}
	if d.OccurredAt.IsZero() || d.RecordedAt.IsZero() || d.CreatedAt.IsZero() {
		t.Errorf("times missing: %+v", d)
	}
	st, err := s.AlertDeliveries(ctx, alertID)
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 1 || st[0].Status != store.DeliveryPending || st[0].Attempts != 1 || st[0].LastAttemptAt == nil ||
		time.Until(st[0].NextAttemptAt) < 50*time.Second {
		t.Errorf("status after claim: %+v, want pending, 1 attempt, next attempt a lease away", st)
	}
}

func TestClaimDeliveriesLimitsAndSkipsLocked(t *testing.T) {
	t.Parallel()
	s, url := pgtest.NewStore(t)
	ctx := context.Background()
	for range 5 {
		queueAlert(t, url, "a", "b")
	}
	// Limits are per destination; a destination not asked for is untouched.
	ds, err := s.ClaimDeliveries(ctx, []store.DeliveryClaim{{Destination: "a", Limit: 3, Lease: time.Minute}, {Destination: "b", Limit: 0}})
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 3 {
		t.Fatalf("claimed %d, want 3", len(ds))
	}
	for _, d := range ds {
		if d.Destination != "a" {
			t.Errorf("claimed a row of %q", d.Destination)
		}
	}
	// The claimed rows are leased: a second claim gets only the rest.
	more, err := s.ClaimDeliveries(ctx, []store.DeliveryClaim{{Destination: "a", Limit: 10, Lease: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	if len(more) != 2 {
		t.Fatalf("second claim got %d, want the 2 unclaimed", len(more))
	}
	for id := range claimIDs(more) {
		if _, dup := claimIDs(ds)[id]; dup {
			t.Errorf("row %d claimed twice within its lease", id)
		}
	}
}

func TestClaimDeliveriesConcurrentClaimsNeverOverlap(t *testing.T) {
	t.Parallel()
	s, url := pgtest.NewStore(t)
	ctx := context.Background()
	const n = 40
	for range n {
		queueAlert(t, url, "hook")
	}
	var (
		mu  sync.Mutex
		got = map[int64]int{}
		wg  sync.WaitGroup
	)
	for range 4 {
		wg.Go(func() {
			for {
				ds, err := s.ClaimDeliveries(ctx, []store.DeliveryClaim{{Destination: "hook", Limit: 3, Lease: time.Minute}})
				if err != nil {
					t.Error(err)
					return
				}
				if len(ds) == 0 {
					return
				}
				mu.Lock()
				for _, d := range ds {
					got[d.ID]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(got) != n {
		t.Errorf("claimed %d distinct rows, want %d", len(got), n)
	}
	for id, c := range got {
		if c != 1 {
			t.Errorf("row %d claimed %d times, want once", id, c)
		}
	}
}

func TestDeliveryFencing(t *testing.T) {
	t.Parallel()
	s, url := pgtest.NewStore(t)
	ctx := context.Background()
	alertID, ids := queueAlert(t, url, "hook")
	claim := []store.DeliveryClaim{{Destination: "hook", Limit: 1, Lease: 0}}
	first, err := s.ClaimDeliveries(ctx, claim)
	if err != nil || len(first) != 1 {
		t.Fatalf("first claim: %v, %d rows", err, len(first))
	}
	// The lease (zero here) passed: another worker claims attempt 2.
	second, err := s.ClaimDeliveries(ctx, claim)
	if err != nil || len(second) != 1 || second[0].Attempt != 2 {
		t.Fatalf("second claim: %v, %+v", err, second)
	}
	// The first worker's outcome no longer counts, whatever it is.
	if err := s.MarkDelivered(ctx, ids[0], 1); !errors.Is(err, store.ErrDeliveryClaimLost) {
		t.Errorf("MarkDelivered with a stale attempt: %v, want ErrDeliveryClaimLost", err)
	}
	if _, err := s.FailDelivery(ctx, ids[0], 1, "HTTP 500", time.Hour, 10); !errors.Is(err, store.ErrDeliveryClaimLost) {
		t.Errorf("FailDelivery with a stale attempt: %v, want ErrDeliveryClaimLost", err)
	}
	if err := s.MarkDelivered(ctx, ids[0], 2); err != nil {
		t.Fatalf("MarkDelivered with the current attempt: %v", err)
	}
	// Delivered is final.
	if err := s.MarkDelivered(ctx, ids[0], 2); !errors.Is(err, store.ErrDeliveryClaimLost) {
		t.Errorf("MarkDelivered twice: %v, want ErrDeliveryClaimLost", err)
	}
	st, err := s.AlertDeliveries(ctx, alertID)
	if err != nil {
		t.Fatal(err)
	}
	if st[0].Status != store.DeliveryDelivered || st[0].DeliveredAt == nil || st[0].Attempts != 2 {
		t.Errorf("after delivery: %+v", st[0])
	}
	if more, _ := s.ClaimDeliveries(ctx, claim); len(more) != 0 {
		t.Errorf("a delivered row was claimed again: %+v", more)
	}
}

func TestFailDeliveryRetriesThenDies(t *testing.T) {
	t.Parallel()
	s, url := pgtest.NewStore(t)
	ctx := context.Background()
	alertID, ids := queueAlert(t, url, "hook")
	claim := []store.DeliveryClaim{{Destination: "hook", Limit: 1, Lease: time.Minute}}
	const maxAttempts = 3
	for attempt := 1; attempt <= maxAttempts; attempt++ {
		ds, err := s.ClaimDeliveries(ctx, claim)
		if err != nil || len(ds) != 1 || ds[0].Attempt != attempt {
			t.Fatalf("attempt %d: claim %v, %+v", attempt, err, ds)
		}
		retryIn := time.Duration(0)
		if attempt == 1 {
			retryIn = time.Hour
		}
		dead, err := s.FailDelivery(ctx, ids[0], attempt, fmt.Sprintf("HTTP 50%d", attempt), retryIn, maxAttempts)
		if err != nil {
			t.Fatal(err)
		}
		if want := attempt == maxAttempts; dead != want {
			t.Errorf("attempt %d: dead = %v, want %v", attempt, dead, want)
		}
		st, _ := s.AlertDeliveries(ctx, alertID)
		if st[0].LastError != fmt.Sprintf("HTTP 50%d", attempt) {
			t.Errorf("attempt %d: last_error %q", attempt, st[0].LastError)
		}
		if attempt == 1 {
			// Backing off: not due, so not claimable.
			if ds, _ := s.ClaimDeliveries(ctx, claim); len(ds) != 0 {
				t.Fatalf("claimed during backoff")
			}
			if time.Until(st[0].NextAttemptAt) < 50*time.Minute {
				t.Errorf("next attempt at %v, want an hour away", st[0].NextAttemptAt)
			}
			if _, err := pgxExec(url, `UPDATE deliveries SET next_attempt_at = now() WHERE id = $1`, ids[0]); err != nil {
				t.Fatal(err)
			}
		}
	}
	st, _ := s.AlertDeliveries(ctx, alertID)
	if st[0].Status != store.DeliveryDead || st[0].Attempts != maxAttempts {
		t.Errorf("after %d failures: %+v, want dead", maxAttempts, st[0])
	}
	if ds, _ := s.ClaimDeliveries(ctx, claim); len(ds) != 0 {
		t.Errorf("a dead row was claimed")
	}
}

func pgxExec(url, sql string, args ...any) (int64, error) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)
	tag, err := conn.Exec(ctx, sql, args...)
	return tag.RowsAffected(), err
}

func TestClaimCancelledLeavesRowDue(t *testing.T) {
	t.Parallel()
	s, url := pgtest.NewStore(t)
	queueAlert(t, url, "hook")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.ClaimDeliveries(ctx, []store.DeliveryClaim{{Destination: "hook", Limit: 1, Lease: time.Hour}}); err == nil {
		t.Fatal("claim with a cancelled context succeeded")
	}
	ds, err := s.ClaimDeliveries(context.Background(), []store.DeliveryClaim{{Destination: "hook", Limit: 1, Lease: time.Hour}})
	if err != nil || len(ds) != 1 || ds[0].Attempt != 1 {
		t.Errorf("after a cancelled claim: %v, %+v; want the row, attempt 1", err, ds)
	}
}

func TestHoldDeliveries(t *testing.T) {
	t.Parallel()
	s, url := pgtest.NewStore(t)
	ctx := context.Background()
	alertID, _ := queueAlert(t, url, "ok", "gone", "broken")
	held, err := s.HoldDeliveries(ctx, []string{"ok"}, map[string]string{"broken": "invalid destination: no URL"}, "unknown destination")
	if err != nil {
		t.Fatal(err)
	}
	if held["gone"] != 1 || held["broken"] != 1 || len(held) != 2 {
		t.Errorf("held %v, want gone and broken once each", held)
	}
	// Already marked: nothing rewritten.
	if again, err := s.HoldDeliveries(ctx, []string{"ok"}, map[string]string{"broken": "invalid destination: no URL"}, "unknown destination"); err != nil || len(again) != 0 {
		t.Errorf("second hold: %v, %v; want nothing new", again, err)
	}
	st, _ := s.AlertDeliveries(ctx, alertID)
	want := map[string]string{"ok": "", "gone": "unknown destination", "broken": "invalid destination: no URL"}
	for _, d := range st {
		if d.Status != store.DeliveryPending || d.Attempts != 0 || d.LastError != want[d.Destination] {
			t.Errorf("%s: %+v, want pending, 0 attempts, last_error %q", d.Destination, d, want[d.Destination])
		}
	}
}

func TestDeliveryStats(t *testing.T) {
	t.Parallel()
	s, url := pgtest.NewStore(t)
	ctx := context.Background()
	empty, err := s.DeliveryStats(ctx)
	if err != nil || len(empty) != 0 {
		t.Fatalf("empty queue: %v, %v", empty, err)
	}
	_, ids := queueAlert(t, url, "a", "b")
	queueAlert(t, url, "a")
	if _, err := pgxExec(url, `UPDATE deliveries SET created_at = now() - interval '90 seconds' WHERE id = $1`, ids[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := pgxExec(url, `UPDATE deliveries SET status = 'dead' WHERE id = $1`, ids[1]); err != nil {
		t.Fatal(err)
	}
	stats, err := s.DeliveryStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	a, b := stats["a"], stats["b"]
	if a.Pending != 2 || a.Dead != 0 || a.OldestPending < 89*time.Second || a.OldestPending > 2*time.Minute {
		t.Errorf("a: %+v, want 2 pending, oldest 90s", a)
	}
	if b.Pending != 0 || b.Dead != 1 || b.OldestPending != 0 {
		t.Errorf("b: %+v, want 1 dead", b)
	}
}
