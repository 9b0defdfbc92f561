package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/aortahealth/aorta/pkg/delivery"
	"github.com/aortahealth/aorta/pkg/mllp"
)

// End-to-end alerting: the alerts the shipped rules raise from the scores
// of scoring_test.go, their restraint (suppression, escalation, resolution
// only on a complete score), acknowledgement through the API, and their
// delivery: PostgreSQL NOTIFY, the log, and signed webhooks that fail,
// recover or die.

// Webhook destinations the tests add to the shipped routes.yaml. The key
// reaches the router through its environment (secret_env), as in
// production.
const (
	webhookSecretEnv = "AORTA_TEST_WEBHOOK_SECRET"
	webhookSecret    = "integration-test-webhook-hmac-key"
)

// deliveryBound is the generous bound within which every alert must reach
// its destinations once they accept it. It is no latency target.
const deliveryBound = 60 * time.Second

// webhookDest is a webhook destination added to the shipped routes.
type webhookDest struct {
	name, url   string
	timeout     string
	maxAttempts int
}

// routesWithWebhooks writes, in the test's temporary directory, the
// shipped routes.yaml plus the given webhook destinations (backoff 100ms,
// max_backoff 1s, the key from webhookSecretEnv), added to the
// destinations of every alert rule, and returns its path.
func routesWithWebhooks(t *testing.T, hooks ...webhookDest) string {
	t.Helper()
	b, err := os.ReadFile(shippedRoutes(t))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	var add strings.Builder
	var names []string
	for _, h := range hooks {
		fmt.Fprintf(&add, "  %s:\n    webhook:\n      url: %s\n      secret_env: %s\n      timeout: %s\n    max_attempts: %d\n    backoff: 100ms\n    max_backoff: 1s\n",
			h.name, h.url, webhookSecretEnv, h.timeout, h.maxAttempts)
		names = append(names, h.name)
	}
	const section = "\ndestinations:\n"
	if n := strings.Count(s, section); n != 1 {
		t.Fatalf("shipped routes.yaml has %d top-level destinations sections, want 1: update routesWithWebhooks", n)
	}
	s = strings.Replace(s, section, section+add.String(), 1)
	const rule = "    destinations: [database, log]\n"
	if n := strings.Count(s, rule); n < 2 {
		t.Fatalf("shipped routes.yaml has %d alert rules with %q, want the news2 and sepsis-screen rules: update routesWithWebhooks", n, strings.TrimSpace(rule))
	}
	s = strings.ReplaceAll(s, rule, "    destinations: [database, log, "+strings.Join(names, ", ")+"]\n")
	p := filepath.Join(t.TempDir(), "routes.yaml")
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// webhookHit is a webhook request the receiver accepted.
type webhookHit struct {
	Body delivery.Body
	At   time.Time
}

// webhookReceiver is an alert receiver on 127.0.0.1 written as the
// package doc of pkg/delivery tells receivers to be: it checks every
// request's signature with delivery.Verify and de-duplicates by
// X-Aorta-Event. It answers failStatus while failing; with hold set,
// requests wait (until released, or until the sender gives up) before
// being answered.
type webhookReceiver struct {
	srv     *httptest.Server
	release func()

	mu         sync.Mutex
	failing    bool
	failStatus int
	hold       chan struct{}
	requests   int
	failures   int
	inflight   int
	perEvent   map[uuid.UUID]int // verified requests per event
	accepted   map[uuid.UUID]webhookHit
	duplicates map[uuid.UUID]int // accepted again after the first time
	problems   []string          // bad signatures, headers that disagree with the body
}

func newWebhookReceiver(t *testing.T, failing bool, failStatus int, hold bool) *webhookReceiver {
	t.Helper()
	h := &webhookReceiver{failing: failing, failStatus: failStatus,
		perEvent: map[uuid.UUID]int{}, accepted: map[uuid.UUID]webhookHit{}, duplicates: map[uuid.UUID]int{}}
	if hold {
		h.hold = make(chan struct{})
	}
	var once sync.Once
	h.release = func() {
		once.Do(func() {
			if h.hold != nil {
				close(h.hold)
			}
		})
	}
	h.srv = httptest.NewServer(h) // 127.0.0.1:0
	t.Cleanup(h.srv.Close)        // after the router (started later) has stopped
	return h
}

func (h *webhookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	now := time.Now()
	if err != nil {
		http.Error(w, "read", http.StatusBadRequest)
		return
	}
	verr := delivery.Verify([]byte(webhookSecret), r.Header.Get(delivery.HeaderTimestamp), r.Header.Get(delivery.HeaderSignature), body, 5*time.Minute, now)
	var b delivery.Body
	jerr := json.Unmarshal(body, &b)
	h.mu.Lock()
	h.requests++
	if verr != nil || jerr != nil {
		h.problems = append(h.problems, fmt.Sprintf("request %d: signature %v, body %v", h.requests, verr, jerr))
		h.mu.Unlock()
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	if ev := r.Header.Get(delivery.HeaderEvent); ev != b.EventID.String() || r.Header.Get(delivery.HeaderDelivery) != fmt.Sprint(b.DeliveryID) {
		h.problems = append(h.problems, fmt.Sprintf("request %d: headers event %s delivery %s, body event %s delivery %d",
			h.requests, ev, r.Header.Get(delivery.HeaderDelivery), b.EventID, b.DeliveryID))
	}
	h.perEvent[b.EventID]++
	hold := h.hold
	h.inflight++
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		h.inflight--
		h.mu.Unlock()
	}()
	if hold != nil {
		select {
		case <-hold:
		case <-r.Context().Done():
			return
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.failing {
		h.failures++
		w.WriteHeader(h.failStatus)
		return
	}
	if _, ok := h.accepted[b.EventID]; ok {
		h.duplicates[b.EventID]++
	} else {
		h.accepted[b.EventID] = webhookHit{Body: b, At: now}
	}
	w.WriteHeader(http.StatusOK)
}

// recover makes the receiver answer 200 from now on.
func (h *webhookReceiver) recover() {
	h.mu.Lock()
	h.failing = false
	h.mu.Unlock()
}

// snapshot returns copies of what the receiver counted.
func (h *webhookReceiver) snapshot() (requests, failures, inflight int, accepted map[uuid.UUID]webhookHit, duplicates map[uuid.UUID]int, perEvent map[uuid.UUID]int, problems []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	accepted = make(map[uuid.UUID]webhookHit, len(h.accepted))
	for k, v := range h.accepted {
		accepted[k] = v
	}
	duplicates = make(map[uuid.UUID]int, len(h.duplicates))
	for k, v := range h.duplicates {
		duplicates[k] = v
	}
	perEvent = make(map[uuid.UUID]int, len(h.perEvent))
	for k, v := range h.perEvent {
		perEvent[k] = v
	}
	return h.requests, h.failures, h.inflight, accepted, duplicates, perEvent, append([]string(nil), h.problems...)
}

// startWebhookRig starts a listener and a router whose routes are the
// shipped ones plus hooks.
func startWebhookRig(t *testing.T, hooks ...webhookDest) *scoringRig {
	t.Helper()
	return startScoring(t, routesWithWebhooks(t, hooks...), webhookSecretEnv+"="+webhookSecret)
}

// alertEvents returns the alert.* events matching a condition, in seq order.
func alertEvents(t *testing.T, db *pgxpool.Pool, where string, args ...any) []eventRec {
	t.Helper()
	if where == "" {
		where = "true"
	}
	return events(t, db, "e.type LIKE 'alert.%' AND "+where, args...)
}

// alertRow is an alerts row.
type alertRow struct {
	ID             uuid.UUID
	Rule, Score    string
	Severity       string
	Level          int
	Status         string
	ScoreEventID   uuid.UUID
	MessageID      uuid.UUID
	AcknowledgedBy string
	Resolved       bool
}

// alertsOf returns a patient's alerts, oldest first.
func alertsOf(t *testing.T, db *pgxpool.Pool, patientKey string) []alertRow {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	rows, err := db.Query(ctx, `SELECT id, rule, score, severity, level, status, score_event_id, message_id,
			coalesce(acknowledged_by, ''), resolved_at IS NOT NULL
		FROM alerts WHERE patient_key = $1 ORDER BY raised_at, id`, patientKey)
	if err != nil {
		t.Fatalf("query alerts: %v", err)
	}
	defer rows.Close()
	var out []alertRow
	for rows.Next() {
		var a alertRow
		if err := rows.Scan(&a.ID, &a.Rule, &a.Score, &a.Severity, &a.Level, &a.Status, &a.ScoreEventID, &a.MessageID, &a.AcknowledgedBy, &a.Resolved); err != nil {
			t.Fatalf("scan alerts: %v", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("query alerts: %v", err)
	}
	return out
}

// deliveryCounts returns the deliveries of one destination by status.
func deliveryCounts(t *testing.T, db *pgxpool.Pool, destination string) map[string]int {
	t.Helper()
	return countsBy(t, db, "count deliveries", `SELECT status, count(*) FROM deliveries WHERE destination = $1 GROUP BY status`, destination)
}

// waitDelivered waits until every delivery to destination is delivered,
// and there are want of them.
func waitDelivered(t *testing.T, db *pgxpool.Pool, destination string, want int) {
	t.Helper()
	eventually(t, deliveryBound, fmt.Sprintf("%d deliveries to %s delivered", want, destination), func() (bool, string) {
		c := deliveryCounts(t, db, destination)
		return c["delivered"] == want && c["pending"] == 0 && c["dead"] == 0, fmt.Sprintf("deliveries by status: %v", c)
	})
}

// alertNote is a NOTIFY on aorta_alerts, as the test received it.
type alertNote struct {
	At      time.Time
	Raw     string
	EventID uuid.UUID `json:"event_id"`
	AlertID uuid.UUID `json:"alert_id"`
	Type    string    `json:"type"`
	Rule    string    `json:"rule"`
	Sev     string    `json:"severity"`
	Patient string    `json:"patient_key"`
}

// listenAlerts LISTENs on aorta_alerts with a connection of its own and
// returns the notifications as they arrive. The LISTEN is in place when it
// returns; the connection is closed when the test ends.
func listenAlerts(t *testing.T, dbURL string) <-chan alertNote {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cctx, ccancel := context.WithTimeout(ctx, ioTimeout)
	conn, err := pgx.Connect(cctx, dbURL)
	if err == nil {
		_, err = conn.Exec(cctx, "LISTEN aorta_alerts")
	}
	ccancel()
	if err != nil {
		cancel()
		t.Fatalf("LISTEN aorta_alerts: %v", err)
	}
	out := make(chan alertNote, 1024)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(out)
		for {
			n, err := conn.WaitForNotification(ctx)
			if err != nil {
				return // the test ended (ctx), or the connection failed: the test sees notifications missing
			}
			note := alertNote{At: time.Now(), Raw: n.Payload}
			if err := json.Unmarshal([]byte(n.Payload), &note); err != nil {
				note.Type = "unparsable: " + err.Error()
			}
			select {
			case out <- note:
			default: // the test stopped reading; never block the connection
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		conn.Close(context.Background())
	})
	return out
}

// nextNote waits up to d for a notification.
func nextNote(t *testing.T, notes <-chan alertNote, d time.Duration) (alertNote, bool) {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case n, ok := <-notes:
		return n, ok
	case <-timer.C:
		return alertNote{}, false
	}
}

// --- the tests ---

// TestAlertLifecycle follows one patient's NEWS2 alert through the shipped
// rule: raised at 5 (urgent), suppressed while the score stays at that
// level or wavers below the peak, escalated at 7 (emergency), acknowledged
// through the API (audited, delivered like the alert), kept open by an
// incomplete low score, resolved by a complete low score, and a new alert
// raised by a new deterioration.
func TestAlertLifecycle(t *testing.T) {
	t.Parallel()
	rig := startScoring(t, "")
	const mrn, key = "ALC01", "GENHOSP/ALC01"
	step := func(cid, hhmm string, v vitals) {
		t.Helper()
		rig.apply(nursingSet(cid, mrn, hhmm, v))
	}
	news2Events := func() []eventRec {
		t.Helper()
		return alertEvents(t, rig.db, "e.patient_key = $1 AND e.payload->>'rule' = 'news2'", key)
	}

	step("AL-1", "1000", setUrgent)
	raised := news2Events()
	score1 := onlyScore(t, rig.db, "AL-1", "news2")
	if len(raised) != 1 || raised[0].Type != "alert.raised" {
		t.Fatalf("after NEWS2 5: alert events %+v, want one alert.raised", raised)
	}
	r := raised[0]
	alertID := uuid.MustParse(r.payloadString("alert_id"))
	if diffs := payloadDiff(t, r.Payload, fmt.Sprintf(`{"rule": "news2", "score": "news2", "severity": "urgent", "level": 2, "status": "open",
		"previous_severity": null, "total": 5, "complete": true, "missing": [], "score_event_id": %q,
		"patient": {"id": "ALC01", "key": %q}, "encounter_id": null}`, score1.ID, key)); len(diffs) > 0 {
		t.Errorf("alert.raised payload:\n  %s", strings.Join(diffs, "\n  "))
	}
	if r.ControlID != "AL-1" || r.PatientKey != key {
		t.Errorf("alert.raised from message %s for %s, want AL-1 for %s", r.ControlID, r.PatientKey, key)
	}
	as := alertsOf(t, rig.db, key)
	if len(as) != 1 || as[0].ID != alertID || as[0].Status != "open" || as[0].Severity != "urgent" || as[0].Level != 2 ||
		as[0].ScoreEventID != score1.ID || as[0].MessageID != messageID(t, rig.db, "AL-1") {
		t.Fatalf("alerts %+v, want one open urgent (level 2) alert %s from score %s of AL-1", as, alertID, score1.ID)
	}
	checkLineage(t, rig.db, score1, "AL-1")
	t.Logf("NEWS2 5: alert %s raised (urgent), lineage alert -> score %s -> %d observations -> AL-1", alertID, score1.ID, len(score1.P.Inputs))

	// The same level again: nothing to say, the alert follows the score.
	step("AL-2", "1015", setUrgent6)
	score2 := onlyScore(t, rig.db, "AL-2", "news2")
	as = alertsOf(t, rig.db, key)
	if n := len(news2Events()); n != 1 || score2.P.Total != 6 || len(as) != 1 || as[0].Status != "open" || as[0].ScoreEventID != score2.ID {
		t.Errorf("NEWS2 6 after 5: %d alert events (want 1), alerts %+v; want one open alert following score %s", n, as, score2.ID)
	}

	step("AL-3", "1030", setEmergency)
	evs := news2Events()
	if len(evs) != 2 || evs[1].Type != "alert.escalated" {
		t.Fatalf("after NEWS2 7: alert events %v, want raised then escalated", typesOf(evs))
	}
	if diffs := payloadDiff(t, evs[1].Payload, fmt.Sprintf(`{"alert_id": %q, "severity": "emergency", "level": 3, "previous_severity": "urgent", "total": 7, "status": "open"}`,
		alertID)); len(diffs) > 0 {
		t.Errorf("alert.escalated payload:\n  %s", strings.Join(diffs, "\n  "))
	}
	// Wavering below the peak (5) and back to it (7): no word.
	step("AL-4", "1040", setUrgent)
	step("AL-5", "1045", setEmergency)
	as = alertsOf(t, rig.db, key)
	if n := len(news2Events()); n != 2 || len(as) != 1 || as[0].Severity != "emergency" || as[0].Level != 3 {
		t.Errorf("NEWS2 5 then 7 after escalating: %d alert events (want 2), alerts %+v (want one, still emergency)", n, as)
	}
	t.Logf("NEWS2 6: suppressed; NEWS2 7: escalated to emergency; 5 then 7 again: suppressed, one open alert")

	// Acknowledgement through the API.
	ackPath := "/api/v1/alerts/" + alertID.String() + "/ack"
	adeyemi := apiToken(t, rig.dbURL, "nurse.adeyemi", "clinician")
	house := apiToken(t, rig.dbURL, "dr.house", "clinician")
	if code, _ := apiCall(t, rig.r.APIAddr, http.MethodPost, ackPath, "", ""); code != http.StatusUnauthorized {
		t.Errorf("ack without a token: %d, want 401", code)
	}
	if code, _ := apiCall(t, rig.r.APIAddr, http.MethodPost, "/api/v1/alerts/"+uuid.NewString()+"/ack", adeyemi, ""); code != http.StatusNotFound {
		t.Errorf("ack of an unknown alert: %d, want 404", code)
	}
	if code, _ := apiCall(t, rig.r.APIAddr, http.MethodPost, "/api/v1/alerts/not-an-id/ack", adeyemi, ""); code != http.StatusBadRequest {
		t.Errorf("ack of a malformed ID: %d, want 400", code)
	}
	code, body := apiCall(t, rig.r.APIAddr, http.MethodPost, ackPath, adeyemi, "")
	if code != http.StatusOK || body["acknowledged_by"] != "nurse.adeyemi" || body["already_acknowledged"] != false || body["status"] != "open" {
		t.Fatalf("ack: %d %v, want 200 acknowledged by nurse.adeyemi, still open", code, body)
	}
	code, body = apiCall(t, rig.r.APIAddr, http.MethodPost, ackPath, house, "")
	if code != http.StatusOK || body["already_acknowledged"] != true || body["acknowledged_by"] != "nurse.adeyemi" {
		t.Errorf("second ack: %d %v, want 200, already acknowledged by nurse.adeyemi", code, body)
	}
	acks := alertEvents(t, rig.db, "e.type = 'alert.acknowledged' AND e.payload->>'alert_id' = $1", alertID.String())
	var audits int
	var actor string
	queryRow(t, rig.db, `SELECT count(*), coalesce(max(actor), '') FROM audit_log WHERE action = 'alert.acknowledge' AND target = $1`,
		[]any{alertID.String()}, &audits, &actor)
	as = alertsOf(t, rig.db, key)
	if len(acks) != 1 || acks[0].payloadString("acknowledged_by") != "nurse.adeyemi" || audits != 1 || actor != "nurse.adeyemi" ||
		as[0].AcknowledgedBy != "nurse.adeyemi" || as[0].Status != "open" {
		t.Errorf("after two acks: %d alert.acknowledged events, %d audit rows by %q, alert %+v; want one event and one audit row by nurse.adeyemi, alert open",
			len(acks), audits, actor, as[0])
	}
	t.Logf("acknowledged by nurse.adeyemi: 1 event, 1 audit row; the second ack changed nothing")

	// 65 minutes later, a low set without a temperature (the 10:45 one is
	// stale): incomplete, it proves nothing, the alert stays open.
	low := setWell
	low.temp = ""
	step("AL-6", "1150", low)
	s6 := onlyScore(t, rig.db, "AL-6", "news2")
	as = alertsOf(t, rig.db, key)
	if s6.P.Complete || s6.P.Total != 0 || len(as) != 1 || as[0].Status != "open" {
		t.Errorf("incomplete low score (complete %v, total %d): alerts %+v; want it incomplete and the alert still open", s6.P.Complete, s6.P.Total, as)
	}
	if n := len(alertEvents(t, rig.db, "e.patient_key = $1 AND e.type = 'alert.resolved'", key)); n != 0 {
		t.Errorf("%d alert.resolved events after an incomplete score, want 0", n)
	}

	step("AL-7", "1200", setWell)
	s7 := onlyScore(t, rig.db, "AL-7", "news2")
	evs = news2Events()
	as = alertsOf(t, rig.db, key)
	if got := strings.Join(typesOf(evs), ","); got != "alert.raised,alert.escalated,alert.acknowledged,alert.resolved" {
		t.Errorf("alert events %s, want raised, escalated, acknowledged, resolved", got)
	}
	if len(as) != 1 || as[0].Status != "resolved" || !as[0].Resolved || as[0].ScoreEventID != s7.ID {
		t.Errorf("alerts %+v, want the alert resolved by the complete score %s", as, s7.ID)
	}
	for _, e := range evs {
		if e.payloadString("alert_id") != alertID.String() {
			t.Errorf("%s names alert %s, want %s", e.Type, e.payloadString("alert_id"), alertID)
		}
	}

	// A new deterioration is a new alert.
	step("AL-8", "1215", setUrgent)
	as = alertsOf(t, rig.db, key)
	if len(as) != 2 || as[1].ID == alertID || as[1].Status != "open" || as[1].Severity != "urgent" {
		t.Errorf("after resolving and NEWS2 5 again: alerts %+v, want a second, new open urgent alert", as)
	}
	if n := len(alertsOfRule(t, rig.db, key, "sepsis-screen")); n != 0 {
		t.Errorf("%d sepsis-screen alerts, want none (qSOFA stayed below 2)", n)
	}
	// Every alert event goes to the log destination (the worker) and none
	// is lost.
	nEvents := len(news2Events())
	waitDelivered(t, rig.db, "log", nEvents)
	t.Logf("incomplete low score kept the alert open; complete low score resolved it; new alert raised after; %d alert events, %d log deliveries delivered", nEvents, nEvents)
	checkNoPHI(t, "router", rig.r.log, mrn, "SCORETEST")
}

func typesOf(es []eventRec) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Type
	}
	return out
}

func alertsOfRule(t *testing.T, db *pgxpool.Pool, patientKey, rule string) []alertRow {
	t.Helper()
	var out []alertRow
	for _, a := range alertsOf(t, db, patientKey) {
		if a.Rule == rule {
			out = append(out, a)
		}
	}
	return out
}

// TestAlertRules sends one set per patient and checks which of the shipped
// rules raise an alert at which severity: NEWS2 ≥ 5 urgent, ≥ 7 emergency,
// a single parameter scoring 3 low-medium, qSOFA ≥ 2 sepsis-screen, an
// incomplete score that is already high enough raises, a well patient
// raises nothing. Each alert points at the score that raised it.
func TestAlertRules(t *testing.T) {
	t.Parallel()
	rig := startScoring(t, "")
	noTemp := setUrgent
	noTemp.temp = ""
	type raise struct{ rule, severity string }
	for i, tc := range []struct {
		name     string
		set      vitals
		want     []raise
		complete bool
	}{
		{"NEWS2 5: urgent", setUrgent, []raise{{"news2", "urgent"}}, true},
		{"NEWS2 7: emergency at once", setEmergency, []raise{{"news2", "emergency"}}, true},
		{"a single parameter scoring 3: low-medium", setSingle3, []raise{{"news2", "low-medium"}}, true},
		{"qSOFA 2 with NEWS2 4: sepsis screen only", setSepsis, []raise{{"sepsis-screen", "sepsis-screen"}}, true},
		{"incomplete NEWS2 already 5: urgent", noTemp, []raise{{"news2", "urgent"}}, false},
		{"well: nothing", setWell, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cid, mrn := fmt.Sprintf("AR-%d", i), fmt.Sprintf("ALR%02d", i)
			key := "GENHOSP/" + mrn
			rig.apply(nursingSet(cid, mrn, "1000", tc.set))
			evs := alertEvents(t, rig.db, "e.patient_key = $1", key)
			var got []raise
			for _, e := range evs {
				if e.Type != "alert.raised" {
					t.Errorf("%s event, want only alert.raised", e.Type)
				}
				got = append(got, raise{e.payloadString("rule"), e.payloadString("severity")})
				scoreName := map[string]string{"news2": "news2", "sepsis-screen": "qsofa"}[e.payloadString("rule")]
				s := onlyScore(t, rig.db, cid, scoreName)
				var complete bool
				json.Unmarshal(mustField(e.Payload, "complete"), &complete)
				if e.payloadString("score_event_id") != s.ID.String() || e.payloadString("score") != scoreName || complete != tc.complete {
					t.Errorf("%s alert: score %s event %s complete %v; want %s score %s, complete %v", e.payloadString("rule"),
						e.payloadString("score"), e.payloadString("score_event_id"), complete, scoreName, s.ID, tc.complete)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("alerts raised %v, want %v", got, tc.want)
			}
			as := alertsOf(t, rig.db, key)
			if len(as) != len(tc.want) {
				t.Errorf("%d alerts rows, want %d", len(as), len(tc.want))
			}
			for _, a := range as {
				if a.Status != "open" || a.MessageID != messageID(t, rig.db, cid) {
					t.Errorf("alert %+v, want open, from message %s", a, cid)
				}
			}
			t.Logf("%s: raised %v", cid, got)
		})
	}
}

// mustField returns a top-level field of a JSON object, null when absent.
func mustField(obj []byte, key string) []byte {
	var m map[string]json.RawMessage
	if json.Unmarshal(obj, &m) != nil || m[key] == nil {
		return []byte("null")
	}
	return m[key]
}

// TestAlertNotify LISTENs on the shipped routes' NOTIFY channel
// (aorta_alerts) and checks that each alert event of a patient arrives, in
// order, as one notification whose payload names the event, the alert, its
// rule, severity and patient: raised, escalated, acknowledged (through the
// API) and resolved.
func TestAlertNotify(t *testing.T) {
	t.Parallel()
	rig := startScoring(t, "")
	notes := listenAlerts(t, rig.dbURL)
	const mrn, key = "ALN01", "GENHOSP/ALN01"

	rig.apply(nursingSet("AN-1", mrn, "1000", setUrgent), nursingSet("AN-2", mrn, "1010", setEmergency))
	var alertID uuid.UUID
	queryRow(t, rig.db, `SELECT id FROM alerts WHERE patient_key = $1`, []any{key}, &alertID)
	okonjo := apiToken(t, rig.dbURL, "nurse.okonjo", "clinician")
	if code, _ := apiCall(t, rig.r.APIAddr, http.MethodPost, "/api/v1/alerts/"+alertID.String()+"/ack", okonjo, ""); code != http.StatusOK {
		t.Fatalf("ack: %d, want 200", code)
	}
	rig.apply(nursingSet("AN-3", mrn, "1030", setWell))

	evs := alertEvents(t, rig.db, "e.patient_key = $1", key)
	if got := strings.Join(typesOf(evs), ","); got != "alert.raised,alert.escalated,alert.acknowledged,alert.resolved" {
		t.Fatalf("alert events %s, want raised, escalated, acknowledged, resolved", got)
	}
	wantSeverity := []string{"urgent", "emergency", "emergency", "emergency"}
	for i, e := range evs {
		n, ok := nextNote(t, notes, deliveryBound)
		if !ok {
			t.Fatalf("no notification for %s (%d of %d) within %v", e.Type, i+1, len(evs), deliveryBound)
		}
		var keys []string
		var m map[string]any
		json.Unmarshal([]byte(n.Raw), &m)
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		if n.EventID != e.ID || n.AlertID != alertID || n.Type != e.Type || n.Rule != "news2" || n.Sev != wantSeverity[i] || n.Patient != key ||
			strings.Join(keys, ",") != "alert_id,event_id,patient_key,rule,severity,type" {
			t.Errorf("notification %d: %s; want event %s (%s) of alert %s, rule news2, severity %s, patient %s, and only those keys",
				i+1, n.Raw, e.ID, e.Type, alertID, wantSeverity[i], key)
		}
	}
	if n, ok := nextNote(t, notes, 500*time.Millisecond); ok {
		t.Errorf("an extra notification: %s", n.Raw)
	}
	t.Logf("LISTEN aorta_alerts: %d notifications, one per alert event, in order, payloads verified", len(evs))
}

// TestAlertWebhookRecovers sends alerts of several patients while a
// webhook receiver answers 503, lets the deliveries retry (backoff 100ms,
// max_backoff 1s), then lets the receiver recover, and checks that every
// alert event reached it exactly once by event ID (duplicates, which at
// least once allows, are counted and reported), with a valid signature,
// and that every delivery row is delivered.
func TestAlertWebhookRecovers(t *testing.T) {
	t.Parallel()
	hook := newWebhookReceiver(t, true, http.StatusServiceUnavailable, false)
	rig := startWebhookRig(t, webhookDest{name: "rapid-response", url: hook.srv.URL + "/hooks/aorta", timeout: "5s", maxAttempts: 50})

	const patients = 6
	var msgs [][]byte
	for p := range patients {
		mrn := fmt.Sprintf("AWR%02d", p)
		msgs = append(msgs, nursingSet(fmt.Sprintf("AW-%d-1", p), mrn, "1000", setUrgent)) // raised
		switch {
		case p < 3:
			msgs = append(msgs, nursingSet(fmt.Sprintf("AW-%d-2", p), mrn, "1015", setEmergency)) // escalated
		case p >= 4:
			msgs = append(msgs, nursingSet(fmt.Sprintf("AW-%d-2", p), mrn, "1015", setSepsis)) // news2 resolved, sepsis-screen raised
		}
	}
	rig.apply(msgs...)
	evs := alertEvents(t, rig.db, "")
	const wantEvents = patients + 3 + 2 + 2
	if len(evs) != wantEvents {
		t.Fatalf("%d alert events (%v), want %d: 6 raised, 3 escalated, 2 resolved, 2 sepsis-screen raised", len(evs), typesOf(evs), wantEvents)
	}
	// Every delivery fails at least twice before the receiver recovers.
	eventually(t, deliveryBound, "every webhook delivery to fail twice", func() (bool, string) {
		var rows, retried int
		queryRow(t, rig.db, `SELECT count(*), count(*) FILTER (WHERE attempts >= 2 AND status = 'pending' AND last_error LIKE 'HTTP 503%')
			FROM deliveries WHERE destination = 'rapid-response'`, nil, &rows, &retried)
		return rows == wantEvents && retried == wantEvents, fmt.Sprintf("%d of %d rows failed twice with 503", retried, rows)
	})
	_, failuresBefore, _, accepted, _, _, _ := hook.snapshot()
	if len(accepted) != 0 {
		t.Fatalf("the receiver accepted %d events while failing", len(accepted))
	}
	recovered := time.Now()
	hook.recover()
	waitDelivered(t, rig.db, "rapid-response", wantEvents)
	t.Logf("receiver recovered after %d failed requests; all %d deliveries delivered %v later", failuresBefore, wantEvents, time.Since(recovered).Round(time.Millisecond))

	requests, failures, _, accepted, duplicates, perEvent, problems := hook.snapshot()
	for _, p := range problems {
		t.Errorf("receiver: %s", p)
	}
	for _, e := range evs {
		hit, ok := accepted[e.ID]
		if !ok {
			t.Errorf("alert event %s (%s of %s) never reached the receiver: lost", e.ID, e.Type, e.PatientKey)
			continue
		}
		b := hit.Body
		if b.Type != e.Type || b.AlertID.String() != e.payloadString("alert_id") || b.PatientKey != e.PatientKey || b.PatientID != e.PatientID ||
			!b.OccurredAt.Equal(e.OccurredAt) || string(mustField(b.Payload, "alert_id")) != fmt.Sprintf("%q", e.payloadString("alert_id")) {
			t.Errorf("event %s: body type %s alert %s patient %s/%s occurred %v; want %s %s %s/%s %v",
				e.ID, b.Type, b.AlertID, b.PatientKey, b.PatientID, b.OccurredAt, e.Type, e.payloadString("alert_id"), e.PatientKey, e.PatientID, e.OccurredAt)
		}
	}
	if len(accepted) != len(evs) {
		t.Errorf("receiver accepted %d distinct events, want %d", len(accepted), len(evs))
	}
	dup := 0
	for id, n := range duplicates {
		dup += n
		t.Logf("duplicate: event %s accepted %d more time(s) (at least once delivery)", id, n)
	}
	var attempts int
	queryRow(t, rig.db, `SELECT coalesce(sum(attempts), 0) FROM deliveries WHERE destination = 'rapid-response'`, nil, &attempts)
	var notDelivered int
	queryRow(t, rig.db, `SELECT count(*) FROM deliveries WHERE destination = 'rapid-response' AND (status <> 'delivered' OR delivered_at IS NULL)`, nil, &notDelivered)
	if notDelivered != 0 {
		t.Errorf("%d rapid-response deliveries not delivered", notDelivered)
	}
	sent := 0
	for _, n := range perEvent {
		sent += n
	}
	if sent != attempts || requests != attempts {
		t.Errorf("receiver saw %d requests (%d signed and verified), deliveries count %d attempts: they should agree", requests, sent, attempts)
	}
	waitDelivered(t, rig.db, "log", wantEvents)
	t.Logf("%d alert events: each received once by event ID after %d failed requests (503); %d requests in all, %d duplicates; %d signatures verified, %d bad",
		len(evs), failures, requests, dup, sent, len(problems))
}

// TestAlertWebhookDeadLetter sends alerts to a webhook that hangs and then
// fails (500) with max_attempts 2: the deliveries end dead, while the
// patients' scoring, alerting and log deliveries carry on undelayed.
func TestAlertWebhookDeadLetter(t *testing.T) {
	t.Parallel()
	hook := newWebhookReceiver(t, true, http.StatusInternalServerError, true)
	rig := startWebhookRig(t, webhookDest{name: "dead-end", url: hook.srv.URL + "/aorta", timeout: "30s", maxAttempts: 2})
	t.Cleanup(hook.release) // before the router stops: nothing hangs at shutdown

	rig.apply(nursingSet("DL-0", "ADL00", "1000", setUrgent))
	eventually(t, deliveryBound, "the first webhook request to hang in the receiver", func() (bool, string) {
		_, _, inflight, _, _, _, _ := hook.snapshot()
		return inflight >= 1, fmt.Sprintf("%d requests in flight", inflight)
	})

	// While that request hangs, other patients are scored and alerted.
	const others = 5
	start := time.Now()
	var msgs [][]byte
	for p := 1; p <= others; p++ {
		msgs = append(msgs, nursingSet(fmt.Sprintf("DL-%d", p), fmt.Sprintf("ADL%02d", p), "1000", setUrgent))
	}
	rig.apply(msgs...)
	took := time.Since(start)
	for p := 1; p <= others; p++ {
		cid := fmt.Sprintf("DL-%d", p)
		onlyScore(t, rig.db, cid, "news2")
		if n := len(alertEvents(t, rig.db, "m.control_id = $1 AND e.type = 'alert.raised'", cid)); n != 1 {
			t.Errorf("%s: %d alert.raised, want 1", cid, n)
		}
	}
	var first struct {
		status   string
		attempts int
	}
	queryRow(t, rig.db, `SELECT d.status, d.attempts FROM deliveries d JOIN events e ON e.id = d.event_id JOIN messages m ON m.id = e.message_id
		WHERE d.destination = 'dead-end' AND m.control_id = 'DL-0'`, nil, &first.status, &first.attempts)
	if first.status != "pending" || first.attempts != 1 {
		t.Errorf("DL-0's webhook delivery: %s after %d attempts; want its first attempt still in flight", first.status, first.attempts)
	}
	// The log destination is not held up by the dead webhook either.
	waitDelivered(t, rig.db, "log", others+1)
	t.Logf("with a webhook request hanging: %d more patients scored and alerted in %v, %d log deliveries delivered",
		others, took.Round(time.Millisecond), others+1)

	hook.release()
	eventually(t, deliveryBound, "every dead-end delivery to be dead", func() (bool, string) {
		c := deliveryCounts(t, rig.db, "dead-end")
		return c["dead"] == others+1, fmt.Sprintf("deliveries by status: %v", c)
	})
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	rows, err := rig.db.Query(ctx, `SELECT event_id, attempts, coalesce(last_error, ''), delivered_at IS NULL FROM deliveries WHERE destination = 'dead-end'`)
	if err != nil {
		t.Fatal(err)
	}
	_, _, _, accepted, _, perEvent, problems := hook.snapshot()
	n := 0
	for rows.Next() {
		var id uuid.UUID
		var attempts int
		var lastErr string
		var undelivered bool
		if err := rows.Scan(&id, &attempts, &lastErr, &undelivered); err != nil {
			t.Fatal(err)
		}
		n++
		if attempts != 2 || !strings.Contains(lastErr, "500") || !undelivered || perEvent[id] != 2 {
			t.Errorf("dead delivery of %s: %d attempts, last_error %q, receiver saw %d requests; want 2 attempts, an HTTP 500 reason, 2 requests",
				id, attempts, lastErr, perEvent[id])
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("receiver: %s", p)
	}
	if len(accepted) != 0 {
		t.Errorf("the receiver accepted %d events; it never answers 2xx", len(accepted))
	}
	m := scrape(t, rig.r.HTTPAddr)
	if dead := m[`aorta_deliveries_dead{destination="dead-end"}`]; dead != others+1 {
		t.Errorf("aorta_deliveries_dead{destination=\"dead-end\"} = %v, want %d", dead, others+1)
	}
	t.Logf("%d dead-end deliveries dead after 2 attempts each (HTTP 500), counted by aorta_deliveries_dead", n)
}

// TestAlertLatency sends 50 deteriorating sets (10 patients, 5 sets each:
// NEWS2 0, 3, 5, 7, 8) over one MLLP connection at a modest pace and
// measures, per message, the time from the ACK reaching the test to its
// NEWS2 score (recorded_at) and, per alert (raised low-medium, escalated
// urgent, escalated emergency), from the ACK to its recorded_at, to its
// NOTIFY reaching a LISTEN connection and to its webhook request reaching a
// receiver. It logs p50/p99 and asserts only that every alert arrived
// within a generous bound.
func TestAlertLatency(t *testing.T) {
	t.Parallel()
	hook := newWebhookReceiver(t, false, 0, false)
	rig := startWebhookRig(t, webhookDest{name: "rapid-response", url: hook.srv.URL + "/hooks/aorta", timeout: "5s", maxAttempts: 10})
	notes := listenAlerts(t, rig.dbURL)
	const (
		patients = 10
		pace     = 40 * time.Millisecond
	)
	sets := []vitals{setWell, setSingle3, setUrgent, setEmergency, setWorse}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := mllp.Dial(ctx, rig.l.MLLPAddr)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	acked := map[string]time.Time{}
	var ackRTT []float64
	for round, v := range sets {
		for p := range patients {
			cid := fmt.Sprintf("LA-%02d-%d", p, round)
			raw := nursingSet(cid, fmt.Sprintf("ALT%02d", p), fmt.Sprintf("10%02d", round*10), v)
			sent := time.Now()
			ack, err := c.Send(ctx, raw)
			if err != nil {
				t.Fatalf("send %s: %v", cid, err)
			}
			acked[cid] = time.Now()
			ackRTT = append(ackRTT, acked[cid].Sub(sent).Seconds())
			if code, id := msaOf(ack); code != "AA" || id != cid {
				t.Fatalf("send %s: %s/%s, want AA", cid, code, id)
			}
			time.Sleep(pace)
		}
	}
	const wantAlerts = patients * 3
	arrived := map[uuid.UUID]time.Time{}
	deadline := time.Now().Add(deliveryBound)
	for len(arrived) < wantAlerts && time.Now().Before(deadline) {
		n, ok := nextNote(t, notes, time.Until(deadline))
		if !ok {
			break
		}
		arrived[n.EventID] = n.At
	}
	waitDrained(t, rig.db, drainTimeout)
	waitDelivered(t, rig.db, "rapid-response", wantAlerts)

	evs := alertEvents(t, rig.db, "")
	if len(evs) != wantAlerts || len(arrived) != wantAlerts {
		t.Fatalf("%d alert events, %d notifications, want %d each (per patient: raised, escalated, escalated)", len(evs), len(arrived), wantAlerts)
	}
	_, _, _, accepted, duplicates, _, problems := hook.snapshot()
	for _, p := range problems {
		t.Errorf("receiver: %s", p)
	}
	var toScore, toAlert, toNotify, toWebhook []float64
	for cid, ackAt := range acked {
		s := onlyScore(t, rig.db, cid, "news2")
		toScore = append(toScore, s.RecordedAt.Sub(ackAt).Seconds())
	}
	bySeverity := map[string]int{}
	for _, e := range evs {
		ackAt := acked[e.ControlID]
		bySeverity[e.Type+" "+e.payloadString("severity")]++
		toAlert = append(toAlert, e.RecordedAt.Sub(ackAt).Seconds())
		nAt, ok := arrived[e.ID]
		hit, hok := accepted[e.ID]
		if !ok || !hok {
			t.Errorf("alert event %s (%s): NOTIFY received %v, webhook received %v", e.ID, e.Type, ok, hok)
			continue
		}
		toNotify = append(toNotify, nAt.Sub(ackAt).Seconds())
		toWebhook = append(toWebhook, hit.At.Sub(ackAt).Seconds())
		if nAt.Sub(ackAt) > deliveryBound || hit.At.Sub(ackAt) > deliveryBound {
			t.Errorf("alert event %s arrived %v (NOTIFY) and %v (webhook) after its ACK, beyond %v", e.ID, nAt.Sub(ackAt), hit.At.Sub(ackAt), deliveryBound)
		}
	}
	want := map[string]int{"alert.raised low-medium": patients, "alert.escalated urgent": patients, "alert.escalated emergency": patients}
	if fmt.Sprint(bySeverity) != fmt.Sprint(want) {
		t.Errorf("alert events by type and severity %v, want %v", bySeverity, want)
	}
	t.Logf("%d sets (%d patients x %d) sent over one connection, one every %v; %d alert events, %d webhook duplicates",
		len(acked), patients, len(sets), pace, len(evs), len(duplicates))
	t.Logf("MLLP send -> ACK:                        %s", quantiles(ackRTT))
	t.Logf("ACK -> NEWS2 score.calculated recorded_at: %s", quantiles(toScore))
	t.Logf("ACK -> alert event recorded_at:           %s", quantiles(toAlert))
	t.Logf("ACK -> NOTIFY aorta_alerts received:      %s", quantiles(toNotify))
	t.Logf("ACK -> webhook request received:          %s", quantiles(toWebhook))
	m := scrape(t, rig.r.HTTPAddr)
	if n := m.sum("aorta_router_ack_to_alert_seconds_count"); n > 0 {
		t.Logf("router's aorta_router_ack_to_alert_seconds (stored -> alert committed): mean %.1f ms over %v alert events",
			1000*m.sum("aorta_router_ack_to_alert_seconds_sum")/n, n)
	}
	t.Logf("(recorded_at is the router transaction's start, so it can precede the ACK reaching the test by a hair; NOTIFY and webhook times are after commit)")
}
