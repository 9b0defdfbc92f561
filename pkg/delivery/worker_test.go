package delivery_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/aortahealth/aorta/internal/pgtest"
	"github.com/aortahealth/aorta/pkg/delivery"
	"github.com/aortahealth/aorta/pkg/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var secret = []byte("test-secret-0123456789")

// Identifiers the log must never show.
const (
	patientIDPrefix = "PATID-93817"
	encounterID     = "ENC-55123"
)

// queued is one alert event queued for some destinations.
type queued struct {
	alertID, eventID uuid.UUID
	ids              map[string]int64 // delivery ID by destination
}

// queueAlerts inserts what the scoring transaction would, n times: a
// message, an alert.raised event, its alert, and one delivery per
// destination, each alert in its own transaction.
func queueAlerts(t *testing.T, url string, n int, dests ...string) []queued {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var qs []queued
	for i := range n {
		q := queued{alertID: uuid.New(), eventID: uuid.New(), ids: map[string]int64{}}
		msgID := uuid.Must(uuid.NewV7())
		pid := fmt.Sprintf("%s-%s", patientIDPrefix, uuid.NewString()[:8])
		err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `INSERT INTO messages (id, received_at, listener, remote_addr, raw, raw_sha256, status)
				VALUES ($1, now(), 'test', '127.0.0.1:1', 'MSH|', '\x00', 'accepted')`, msgID); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `INSERT INTO events (id, type, occurred_at, message_id, patient_id, patient_key, encounter_id, source, route, schema_version, payload)
				VALUES ($1, 'alert.raised', now() - interval '1 minute', $2, $3, 'HOSP/' || $3, $4, 'MON^ICU', 'vitals', 1,
					jsonb_build_object('total', 7 + $5::int, 'severity', 'urgent', 'location', 'ICU^12^B'))`,
				q.eventID, msgID, pid, encounterID, i); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `INSERT INTO alerts (id, patient_key, patient_id, rule, score, severity, level, status, raised_at, updated_at, last_notified_at, score_event_id, score_at, message_id)
				VALUES ($1, 'HOSP/' || $2, $2, 'news2_high', 'news2', 'emergency', 2, 'open', now(), now(), now(), $3, now(), $4)`,
				q.alertID, pid, uuid.New(), msgID); err != nil {
				return err
			}
			for _, d := range dests {
				kind := "webhook"
				if strings.HasPrefix(d, "log") {
					kind = "log"
				}
				var id int64
				if err := tx.QueryRow(ctx, `INSERT INTO deliveries (event_id, alert_id, destination, kind) VALUES ($1, $2, $3, $4) RETURNING id`,
					q.eventID, q.alertID, d, kind).Scan(&id); err != nil {
					return err
				}
				q.ids[d] = id
			}
			return nil
		})
		if err != nil {
			t.Fatalf("queue alert: %v", err)
		}
		qs = append(qs, q)
	}
	return qs
}

// row is a deliveries row as the tests check it.
type row struct {
	status    string
	attempts  int
	lastError string
}

func deliveryRow(t *testing.T, url string, id int64) row {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var r row
	if err := conn.QueryRow(ctx, `SELECT status, attempts, coalesce(last_error, '') FROM deliveries WHERE id = $1`, id).
		Scan(&r.status, &r.attempts, &r.lastError); err != nil {
		t.Fatal(err)
	}
	return r
}

func countRows(t *testing.T, url, where string, args ...any) int {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM deliveries WHERE `+where, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// eventually polls cond until it holds or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// fastOptions make tests quick: a short poll interval, and a log that
// records info lines (log destinations refuse one that does not) nowhere.
func fastOptions() delivery.Options {
	return delivery.Options{
		PollInterval: 20 * time.Millisecond,
		Logger:       slog.New(slog.NewJSONHandler(io.Discard, nil)),
	}
}

// start runs w until the test ends; the test fails if Run does not return
// promptly after cancellation.
func start(t *testing.T, w *delivery.Worker) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("Run did not return after cancellation")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// request is a webhook request as a receiver saw it.
type request struct {
	at         time.Time
	deliveryID int64
	eventID    string
	body       delivery.Body
	verifyErr  error
	header     http.Header
}

// receiver records every request and answers with respond.
type receiver struct {
	srv     *httptest.Server
	mu      sync.Mutex
	reqs    []request
	respond func(w http.ResponseWriter, r *http.Request, n int) // n counts requests from 1
}

func newReceiver(t *testing.T, respond func(w http.ResponseWriter, r *http.Request, n int)) *receiver {
	t.Helper()
	rc := &receiver{respond: respond}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	req := request{at: time.Now(), eventID: r.Header.Get(delivery.HeaderEvent), header: r.Header.Clone()}
	req.deliveryID, _ = strconv.ParseInt(r.Header.Get(delivery.HeaderDelivery), 10, 64)
	req.verifyErr = delivery.Verify(secret, r.Header.Get(delivery.HeaderTimestamp), r.Header.Get(delivery.HeaderSignature), raw, time.Minute, time.Now())
	if err := json.Unmarshal(raw, &req.body); err != nil {
		req.verifyErr = fmt.Errorf("body: %w", err)
	}
	rc.mu.Lock()
	rc.reqs = append(rc.reqs, req)
	n := len(rc.reqs)
	rc.mu.Unlock()
	if rc.respond != nil {
		rc.respond(w, r, n)
	}
}

func (rc *receiver) requests() []request {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]request(nil), rc.reqs...)
}

func (rc *receiver) count() int { return len(rc.requests()) }

func webhook(url string) delivery.Destination {
	return delivery.Destination{Kind: delivery.KindWebhook, URL: url, Secret: secret,
		Timeout: 2 * time.Second, MaxAttempts: 10, Backoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}
}

// metric reads one series from reg: a counter's or gauge's value, or a
// histogram's sample count; -1 when absent.
func metric(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue next
				}
			}
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				return m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				return m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return -1
}

func TestWebhookDeliveredOn2xx(t *testing.T) {
	t.Parallel()
	for _, code := range []int{http.StatusOK, http.StatusAccepted, http.StatusNoContent} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			t.Parallel()
			st, url := pgtest.NewStore(t)
			rc := newReceiver(t, func(w http.ResponseWriter, _ *http.Request, _ int) { w.WriteHeader(code) })
			q := queueAlerts(t, url, 1, "hook")[0]
			reg := prometheus.NewRegistry()
			opts := fastOptions()
			opts.Metrics = delivery.NewMetrics(reg, st)
			w := delivery.New(st, map[string]delivery.Destination{"hook": webhook(rc.srv.URL)}, opts)
			start(t, w)
			w.Wake()
			id := q.ids["hook"]
			eventually(t, 10*time.Second, "delivered", func() bool { return deliveryRow(t, url, id).status == store.DeliveryDelivered })

			reqs := rc.requests()
			if len(reqs) != 1 {
				t.Fatalf("%d requests, want 1", len(reqs))
			}
			r := reqs[0]
			if r.verifyErr != nil {
				t.Errorf("Verify: %v", r.verifyErr)
			}
			for h, want := range map[string]string{
				"Content-Type": "application/json", "User-Agent": "aorta/1",
				delivery.HeaderDelivery: strconv.FormatInt(id, 10), delivery.HeaderEvent: q.eventID.String(),
			} {
				if got := r.header.Get(h); got != want {
					t.Errorf("%s = %q, want %q", h, got, want)
				}
			}
			b := r.body
			if b.DeliveryID != id || b.EventID != q.eventID || b.AlertID != q.alertID || b.Type != "alert.raised" ||
				!strings.HasPrefix(b.PatientID, patientIDPrefix) || b.PatientKey != "HOSP/"+b.PatientID ||
				b.EncounterID == nil || *b.EncounterID != encounterID || b.OccurredAt.IsZero() || b.RecordedAt.IsZero() {
				t.Errorf("body %+v", b)
			}
			var p map[string]any
			if err := json.Unmarshal(b.Payload, &p); err != nil || p["total"] != float64(7) {
				t.Errorf("payload %s (%v), want the event's", b.Payload, err)
			}
			if got := deliveryRow(t, url, id); got.attempts != 1 || got.lastError != "" {
				t.Errorf("row %+v, want delivered at attempt 1", got)
			}
			if got := metric(t, reg, "aorta_deliveries_total", map[string]string{"destination": "hook", "result": "delivered"}); got != 1 {
				t.Errorf("delivered counter = %v, want 1", got)
			}
			if got := metric(t, reg, "aorta_delivery_seconds", map[string]string{"destination": "hook"}); got != 1 {
				t.Errorf("attempt histogram count = %v, want 1", got)
			}
			if got := metric(t, reg, "aorta_deliveries_pending", map[string]string{"destination": "hook"}); got != 0 {
				t.Errorf("pending gauge = %v, want 0", got)
			}
		})
	}
}

// TestWebhookRetriesThenSucceeds fails the first attempts in each way a
// receiver can fail, then recovers: the delivery arrives, within the
// backoff bounds, and the failures are recorded.
func TestWebhookRetriesThenSucceeds(t *testing.T) {
	t.Parallel()
	const failures = 2
	tests := []struct {
		name    string
		fail    func(w http.ResponseWriter, r *http.Request)
		wantErr string
	}{
		{"HTTP 500", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusInternalServerError) }, "HTTP 500"},
		{"HTTP 404 is retried, not dropped", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNotFound) }, "HTTP 404"},
		{"HTTP 400 is retried, not dropped", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusBadRequest) }, "HTTP 400"},
		{"redirect is not followed", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://127.0.0.1:1/elsewhere", http.StatusTemporaryRedirect)
		}, "HTTP 307"},
		{"timeout", func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		}, "no answer within"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st, url := pgtest.NewStore(t)
			rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) {
				if n <= failures {
					tt.fail(w, r)
				}
			})
			dest := webhook(rc.srv.URL)
			dest.Timeout = time.Second
			dest.Backoff, dest.MaxBackoff = 20*time.Millisecond, 200*time.Millisecond
			id := queueAlerts(t, url, 1, "hook")[0].ids["hook"]
			start(t, delivery.New(st, map[string]delivery.Destination{"hook": dest}, fastOptions()))
			eventually(t, 15*time.Second, "delivered", func() bool { return deliveryRow(t, url, id).status == store.DeliveryDelivered })

			got := deliveryRow(t, url, id)
			if got.attempts != failures+1 || !strings.Contains(got.lastError, tt.wantErr) {
				t.Errorf("row %+v, want %d attempts and last_error containing %q", got, failures+1, tt.wantErr)
			}
			reqs := rc.requests()
			if len(reqs) != failures+1 {
				t.Fatalf("%d requests, want %d", len(reqs), failures+1)
			}
			// Each wait is a jittered delay in [0, cap], cap doubling per
			// attempt; allow the attempt itself and some polls.
			slack := dest.Timeout + 500*time.Millisecond
			for i := 1; i < len(reqs); i++ {
				gap := reqs[i].at.Sub(reqs[i-1].at)
				if limit := min(dest.Backoff<<(i-1), dest.MaxBackoff) + slack; gap > limit {
					t.Errorf("wait before attempt %d: %s, want at most %s", i+1, gap, limit)
				}
				if reqs[i].verifyErr != nil {
					t.Errorf("attempt %d: %v", i+1, reqs[i].verifyErr)
				}
			}
		})
	}
}

func TestWebhookRetriesWhileConnectionRefused(t *testing.T) {
	t.Parallel()
	st, url := pgtest.NewStore(t)
	// An address nobody listens on, until the receiver "comes back" there.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	id := queueAlerts(t, url, 1, "hook")[0].ids["hook"]
	start(t, delivery.New(st, map[string]delivery.Destination{"hook": webhook("http://" + addr + "/alerts")}, fastOptions()))
	eventually(t, 10*time.Second, "two refused attempts", func() bool {
		r := deliveryRow(t, url, id)
		return r.attempts >= 2 && strings.Contains(r.lastError, "refused")
	})
	if r := deliveryRow(t, url, id); r.status != store.DeliveryPending {
		t.Fatalf("row %+v while the receiver is down, want pending", r)
	}
	l, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen again on %s: %v", addr, err)
	}
	var got atomic.Int32
	srv := &httptest.Server{Listener: l, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		got.Add(1)
	})}}
	srv.Start()
	defer srv.Close()
	eventually(t, 10*time.Second, "delivered once the receiver is back", func() bool {
		return deliveryRow(t, url, id).status == store.DeliveryDelivered
	})
	if got.Load() != 1 {
		t.Errorf("receiver got %d requests, want 1", got.Load())
	}
}

func TestWebhookDeadAfterMaxAttempts(t *testing.T) {
	t.Parallel()
	st, url := pgtest.NewStore(t)
	rc := newReceiver(t, func(w http.ResponseWriter, _ *http.Request, _ int) { w.WriteHeader(http.StatusBadGateway) })
	dest := webhook(rc.srv.URL)
	dest.MaxAttempts = 3
	reg := prometheus.NewRegistry()
	opts := fastOptions()
	opts.Metrics = delivery.NewMetrics(reg, st)
	id := queueAlerts(t, url, 1, "hook")[0].ids["hook"]
	start(t, delivery.New(st, map[string]delivery.Destination{"hook": dest}, opts))
	eventually(t, 10*time.Second, "dead", func() bool { return deliveryRow(t, url, id).status == store.DeliveryDead })
	time.Sleep(300 * time.Millisecond) // nothing more is sent
	if n := rc.count(); n != 3 {
		t.Errorf("%d requests, want exactly max_attempts = 3", n)
	}
	if r := deliveryRow(t, url, id); r.attempts != 3 || !strings.Contains(r.lastError, "HTTP 502") {
		t.Errorf("row %+v, want 3 attempts, last_error HTTP 502", r)
	}
	for result, want := range map[string]float64{"delivered": 0, "failed": 2, "dead": 1} {
		if got := metric(t, reg, "aorta_deliveries_total", map[string]string{"destination": "hook", "result": result}); got != want {
			t.Errorf("aorta_deliveries_total{result=%q} = %v, want %v", result, got, want)
		}
	}
	if got := metric(t, reg, "aorta_deliveries_dead", map[string]string{"destination": "hook"}); got != 1 {
		t.Errorf("dead gauge = %v, want 1", got)
	}
	if got := metric(t, reg, "aorta_deliveries_pending", map[string]string{"destination": "hook"}); got != 0 {
		t.Errorf("pending gauge = %v, want 0", got)
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	t.Parallel()
	for _, code := range []int{http.StatusTooManyRequests, http.StatusServiceUnavailable} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			t.Parallel()
			st, url := pgtest.NewStore(t)
			rc := newReceiver(t, func(w http.ResponseWriter, _ *http.Request, n int) {
				if n == 1 {
					w.Header().Set("Retry-After", "1")
					w.WriteHeader(code)
				}
			})
			dest := webhook(rc.srv.URL)
			dest.Backoff, dest.MaxBackoff = time.Millisecond, 10*time.Second // jitter alone would retry at once
			id := queueAlerts(t, url, 1, "hook")[0].ids["hook"]
			start(t, delivery.New(st, map[string]delivery.Destination{"hook": dest}, fastOptions()))
			eventually(t, 10*time.Second, "delivered", func() bool { return deliveryRow(t, url, id).status == store.DeliveryDelivered })
			reqs := rc.requests()
			if len(reqs) != 2 {
				t.Fatalf("%d requests, want 2", len(reqs))
			}
			// Retry-After has one-second resolution; the wait is measured
			// from the end of the first attempt, which took a moment.
			if gap := reqs[1].at.Sub(reqs[0].at); gap < 950*time.Millisecond {
				t.Errorf("retried after %s, want at least the 1s Retry-After", gap)
			}
			if r := deliveryRow(t, url, id); !strings.Contains(r.lastError, "Retry-After 1s") {
				t.Errorf("last_error %q, want it to mention Retry-After", r.lastError)
			}
		})
	}
}

// TestReceiverOutageLosesNothing: a receiver that fails for a while, some
// of its failures after it had processed the request (its answer lost),
// ends up with every alert exactly once when it de-duplicates.
func TestReceiverOutageLosesNothing(t *testing.T) {
	t.Parallel()
	st, url := pgtest.NewStore(t)
	const n, outage = 30, 14
	var (
		mu        sync.Mutex
		processed int
		seen      = map[uuid.UUID]int{} // the receiver's de-duplicated store
	)
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, k int) {
		if k <= outage && k%2 == 1 {
			w.WriteHeader(http.StatusServiceUnavailable) // down: nothing processed
			return
		}
		// Processed; during the outage the answer is lost.
		mu.Lock()
		processed++
		mu.Unlock()
		if k <= outage {
			w.WriteHeader(http.StatusInternalServerError)
		}
	})
	qs := queueAlerts(t, url, n, "hook")
	start(t, delivery.New(st, map[string]delivery.Destination{"hook": webhook(rc.srv.URL)}, fastOptions()))
	eventually(t, 20*time.Second, "all delivered", func() bool {
		return countRows(t, url, "status = 'delivered'") == n
	})
	mu.Lock()
	defer mu.Unlock()
	for _, r := range rc.requests() {
		if r.verifyErr != nil {
			t.Errorf("delivery %d: %v", r.deliveryID, r.verifyErr)
		}
	}
	// Replay what the receiver processed, de-duplicating by alert ID (one
	// event per alert here, so the same as by event ID).
	for _, r := range rc.requests() {
		seen[r.body.AlertID]++
	}
	for _, q := range qs {
		if seen[q.alertID] == 0 {
			t.Errorf("alert %s never received", q.alertID)
		}
	}
	if len(seen) != n {
		t.Errorf("receiver has %d distinct alerts, want %d", len(seen), n)
	}
	if processed <= n {
		t.Errorf("processed %d requests for %d alerts: the test should have caused duplicates", processed, n)
	}
}

// TestSlowWebhookDoesNotDelayOthers: the oldest rows belong to a webhook
// that never answers, yet another webhook's and a log destination's rows
// are all delivered before the first of its attempts even times out.
func TestSlowWebhookDoesNotDelayOthers(t *testing.T) {
	t.Parallel()
	st, url := pgtest.NewStore(t)
	var slowEnded atomic.Int64 // unix nanos when the first slow attempt gave up
	slow := newReceiver(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		<-r.Context().Done()
		slowEnded.CompareAndSwap(0, time.Now().UnixNano())
	})
	fast := newReceiver(t, nil)
	const n = 12
	queueAlerts(t, url, n, "slow")
	queueAlerts(t, url, n, "fast", "log")
	slowDest := webhook(slow.srv.URL)
	slowDest.Timeout = 3 * time.Second
	start(t, delivery.New(st, map[string]delivery.Destination{
		"slow": slowDest, "fast": webhook(fast.srv.URL), "log": {Kind: delivery.KindLog},
	}, fastOptions()))
	eventually(t, 20*time.Second, "fast and log delivered", func() bool {
		return countRows(t, url, "destination IN ('fast', 'log') AND status = 'delivered'") == 2*n
	})
	done := time.Now()
	if ended := slowEnded.Load(); ended != 0 && time.Unix(0, ended).Before(done) {
		t.Errorf("the other destinations finished %s after the slow webhook's first timeout; want before",
			done.Sub(time.Unix(0, ended)))
	}
	if got := slow.count(); got != delivery.DefaultConcurrency {
		t.Errorf("slow webhook has %d requests in flight, want its %d slots and no more", got, delivery.DefaultConcurrency)
	}
}

// TestTwoWorkersNeverSendTheSameRowConcurrently runs two workers, as two
// router processes would, on one database against a flaky receiver.
func TestTwoWorkersNeverSendTheSameRowConcurrently(t *testing.T) {
	t.Parallel()
	st, url := pgtest.NewStore(t)
	st2, err := store.Open(context.Background(), url, store.Options{ApplicationName: "aorta-test-2", MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st2.Close)
	const n = 60
	var (
		mu        sync.Mutex
		inflight  = map[int64]int{}
		overlaps  []int64
		successes = map[int64]int{}
	)
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, k int) {
		id, _ := strconv.ParseInt(r.Header.Get(delivery.HeaderDelivery), 10, 64)
		mu.Lock()
		inflight[id]++
		if inflight[id] > 1 {
			overlaps = append(overlaps, id)
		}
		mu.Unlock()
		time.Sleep(time.Duration(k%7) * 3 * time.Millisecond)
		mu.Lock()
		inflight[id]--
		fail := k%5 == 0
		if !fail {
			successes[id]++
		}
		mu.Unlock()
		if fail {
			w.WriteHeader(http.StatusInternalServerError)
		}
	})
	qs := queueAlerts(t, url, n, "hook")
	dest := webhook(rc.srv.URL)
	dest.Backoff, dest.MaxBackoff = time.Millisecond, 5*time.Millisecond
	dests := map[string]delivery.Destination{"hook": dest}
	start(t, delivery.New(st, dests, fastOptions()))
	start(t, delivery.New(st2, dests, fastOptions()))
	eventually(t, 20*time.Second, "all delivered", func() bool { return countRows(t, url, "status = 'delivered'") == n })
	mu.Lock()
	defer mu.Unlock()
	if len(overlaps) > 0 {
		t.Errorf("deliveries sent concurrently by two workers: %v", overlaps)
	}
	for _, q := range qs {
		if successes[q.ids["hook"]] != 1 {
			t.Errorf("delivery %d succeeded %d times, want once (no crash, so no duplicate)", q.ids["hook"], successes[q.ids["hook"]])
		}
	}
}

// TestCrashedClaimIsSentAfterTheLease: a worker claimed a row and died
// before sending it; another worker sends it once the lease has passed,
// not before.
func TestCrashedClaimIsSentAfterTheLease(t *testing.T) {
	t.Parallel()
	st, url := pgtest.NewStore(t)
	rc := newReceiver(t, nil)
	id := queueAlerts(t, url, 1, "hook")[0].ids["hook"]
	const lease = time.Second
	claimed := time.Now()
	ds, err := st.ClaimDeliveries(context.Background(), []store.DeliveryClaim{{Destination: "hook", Limit: 1, Lease: lease}})
	if err != nil || len(ds) != 1 {
		t.Fatalf("claim: %v, %d rows", err, len(ds))
	}
	// The claimer is gone. A healthy worker starts at once.
	w := delivery.New(st, map[string]delivery.Destination{"hook": webhook(rc.srv.URL)}, fastOptions())
	start(t, w)
	w.Wake()
	eventually(t, 10*time.Second, "delivered", func() bool { return deliveryRow(t, url, id).status == store.DeliveryDelivered })
	reqs := rc.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	if waited := reqs[0].at.Sub(claimed); waited < lease-50*time.Millisecond {
		t.Errorf("sent %s after the dead worker's claim, before its %s lease ended", waited, lease)
	}
	if r := deliveryRow(t, url, id); r.attempts != 2 {
		t.Errorf("attempts = %d, want 2 (the dead worker's and this one)", r.attempts)
	}
	// The dead worker's outcome, should it come back, no longer counts.
	if err := st.MarkDelivered(context.Background(), id, ds[0].Attempt); err == nil {
		t.Errorf("stale claim recorded an outcome")
	}
}

// TestShutdownWaitsForSendsInFlight: cancelling Run lets the send in
// flight finish and be recorded.
func TestShutdownWaitsForSendsInFlight(t *testing.T) {
	t.Parallel()
	st, url := pgtest.NewStore(t)
	release, arrived := make(chan struct{}), make(chan struct{}, 1)
	rc := newReceiver(t, func(http.ResponseWriter, *http.Request, int) {
		arrived <- struct{}{}
		<-release
	})
	id := queueAlerts(t, url, 1, "hook")[0].ids["hook"]
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	returned := make(chan struct{})
	go func() {
		delivery.New(st, map[string]delivery.Destination{"hook": webhook(rc.srv.URL)}, fastOptions()).Run(ctx)
		close(returned)
	}()
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("no request")
	}
	cancel()
	select {
	case <-returned:
		t.Fatal("Run returned while a send was in flight")
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	select {
	case <-returned:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after the send finished")
	}
	if r := deliveryRow(t, url, id); r.status != store.DeliveryDelivered {
		t.Errorf("row %+v, want the in-flight send recorded as delivered", r)
	}
	if rc.count() != 1 {
		t.Errorf("%d requests, want 1", rc.count())
	}
}

func TestUnknownDestinationStaysPending(t *testing.T) {
	t.Parallel()
	st, url := pgtest.NewStore(t)
	rc := newReceiver(t, nil)
	q := queueAlerts(t, url, 1, "hook", "gone", "broken")[0]
	reg := prometheus.NewRegistry()
	opts := fastOptions()
	opts.Metrics = delivery.NewMetrics(reg, st)
	broken := webhook(rc.srv.URL)
	broken.Secret = nil
	w := delivery.New(st, map[string]delivery.Destination{"hook": webhook(rc.srv.URL), "broken": broken}, opts)
	start(t, w)
	eventually(t, 10*time.Second, "hook delivered and the others held", func() bool {
		return deliveryRow(t, url, q.ids["hook"]).status == store.DeliveryDelivered &&
			deliveryRow(t, url, q.ids["gone"]).lastError != "" && deliveryRow(t, url, q.ids["broken"]).lastError != ""
	})
	time.Sleep(200 * time.Millisecond) // several polls: still not sent, not dropped
	if r := deliveryRow(t, url, q.ids["gone"]); r != (row{store.DeliveryPending, 0, "unknown destination"}) {
		t.Errorf("gone: %+v, want pending, 0 attempts, unknown destination", r)
	}
	if r := deliveryRow(t, url, q.ids["broken"]); r.status != store.DeliveryPending || r.attempts != 0 ||
		!strings.HasPrefix(r.lastError, "invalid destination: webhook secret") {
		t.Errorf("broken: %+v, want pending, 0 attempts, invalid destination", r)
	}
	if rc.count() != 1 {
		t.Errorf("%d requests, want only hook's", rc.count())
	}
	for _, dest := range []string{"gone", "broken"} {
		if got := metric(t, reg, "aorta_deliveries_pending", map[string]string{"destination": dest}); got != 1 {
			t.Errorf("pending{destination=%q} = %v, want 1", dest, got)
		}
		if got := metric(t, reg, "aorta_deliveries_oldest_pending_age_seconds", map[string]string{"destination": dest}); got <= 0 {
			t.Errorf("oldest pending age{destination=%q} = %v, want > 0", dest, got)
		}
	}
	// Configured again (routes.yaml reloaded): sent.
	w.SetDestinations(map[string]delivery.Destination{"hook": webhook(rc.srv.URL), "gone": webhook(rc.srv.URL), "broken": webhook(rc.srv.URL)})
	eventually(t, 10*time.Second, "held rows delivered", func() bool { return countRows(t, url, "status = 'delivered'") == 3 })
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestLogDestination(t *testing.T) {
	t.Parallel()
	st, url := pgtest.NewStore(t)
	var buf syncBuffer
	q := queueAlerts(t, url, 1, "log")[0]
	reg := prometheus.NewRegistry()
	opts := fastOptions()
	opts.Logger = slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	opts.Metrics = delivery.NewMetrics(reg, st)
	start(t, delivery.New(st, map[string]delivery.Destination{"log": {Kind: delivery.KindLog}}, opts))
	id := q.ids["log"]
	eventually(t, 10*time.Second, "delivered", func() bool { return deliveryRow(t, url, id).status == store.DeliveryDelivered })

	var alerts []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if m["msg"] == "alert" {
			alerts = append(alerts, m)
		}
	}
	if len(alerts) != 1 {
		t.Fatalf("%d alert lines, want 1:\n%s", len(alerts), buf.String())
	}
	want := map[string]any{
		"level": "INFO", "destination": "log", "delivery_id": float64(id), "event_id": q.eventID.String(),
		"alert_id": q.alertID.String(), "type": "alert.raised", "rule": "news2_high", "score": "news2",
		"severity": "urgent", "alert_level": float64(2), "score_total": float64(7),
	}
	for k, v := range want {
		if alerts[0][k] != v {
			t.Errorf("%s = %v, want %v", k, alerts[0][k], v)
		}
	}
	// No patient identifier, encounter or location anywhere in the log.
	for _, phi := range []string{patientIDPrefix, encounterID, "ICU^12"} {
		if strings.Contains(buf.String(), phi) {
			t.Errorf("log contains %q:\n%s", phi, buf.String())
		}
	}
	for _, k := range []string{"patient_id", "patient_key", "encounter_id", "location", "payload"} {
		if _, ok := alerts[0][k]; ok {
			t.Errorf("alert line has %s", k)
		}
	}
	if got := metric(t, reg, "aorta_deliveries_total", map[string]string{"destination": "log", "result": "delivered"}); got != 1 {
		t.Errorf("delivered counter = %v, want 1", got)
	}
}

// TestLogDestinationRefusesASilentLog: a log that drops info lines would
// swallow the alert, so the delivery fails (and is retried) instead.
func TestLogDestinationRefusesASilentLog(t *testing.T) {
	t.Parallel()
	st, url := pgtest.NewStore(t)
	id := queueAlerts(t, url, 1, "log")[0].ids["log"]
	opts := fastOptions()
	opts.Logger = slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))
	start(t, delivery.New(st, map[string]delivery.Destination{"log": {Kind: delivery.KindLog, Backoff: time.Hour}}, opts))
	eventually(t, 10*time.Second, "failed attempt", func() bool { return deliveryRow(t, url, id).attempts == 1 && deliveryRow(t, url, id).lastError != "" })
	if r := deliveryRow(t, url, id); r.status != store.DeliveryPending {
		t.Errorf("row %+v, want pending for retry", r)
	}
}
