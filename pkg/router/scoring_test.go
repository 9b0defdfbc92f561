package router_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/aortahealth/aorta/internal/pgtest"
	"github.com/aortahealth/aorta/pkg/event"
	"github.com/aortahealth/aorta/pkg/route"
	"github.com/aortahealth/aorta/pkg/router"
	"github.com/aortahealth/aorta/pkg/score"
	"github.com/aortahealth/aorta/pkg/store"
)

// scoringRoutes is the shipped parameter tables with a nursing route that
// computes NEWS2 and an alert rule on it.
func scoringRoutes(t *testing.T) *route.Config {
	t.Helper()
	return scoringRoutesWith(t, "", "")
}

// scoringRoutesWith is scoringRoutes with more parameters (indented as
// entries of parameters:) and more scoring keys (as entries of scoring:).
func scoringRoutesWith(t *testing.T, params, scoring string) *route.Config {
	t.Helper()
	shipped, err := os.ReadFile("../../routes.yaml")
	if err != nil {
		t.Fatal(err)
	}
	head := string(shipped)
	head = head[:strings.Index(head, "\nroutes:")]
	yaml := head + "\n" + params + `
routes:
  - name: vitals
    match: {message_type: ORU}
    events: [observations]
    handlers: [news2, qsofa]
scoring:
  freshness: {vitals: 1h}
` + scoring + `destinations:
  log: {log: true}
  database: {notify: aorta_alerts}
alerts:
  - name: news2
    score: news2
    levels:
      - {severity: emergency, when: total >= 7}
      - {severity: urgent, when: total >= 5}
      - {severity: low-medium, when: single_parameter_3}
    renotify_after: 1m
    destinations: [log, database]
`
	scores := []string{score.NameNEWS2, score.NameQSOFA, score.NameSIRS}
	c, err := route.Parse("scoring.yaml", []byte(yaml), route.Registry{Mappings: event.Mappings(), Handlers: scores, Scores: scores})
	if err != nil {
		t.Fatalf("routes: %v", err)
	}
	return c
}

// vitalsSet is a nursing NEWS2 set observed at hh:mm; empty values are left out.
type vitalsSet struct {
	rr, spo2, o2flow, sbp, hr, acvpu, temp string
}

func nursing(cid, mrn, birth, at string, v vitalsSet) string {
	s := fmt.Sprintf("MSH|^~\\&|EOBS|WARD|AORTA|HOSP|%s+0000||ORU^R01|%s|P|2.5\r", at, cid) +
		fmt.Sprintf("PID|||%s^^^HOSP^MR||DOE^JANE||%s\r", mrn, birth) +
		"PV1|1|I|WARD7^12^B\r" +
		fmt.Sprintf("OBR|1|||NEWS2|||%s+0000\r", at)
	n := 0
	obx := func(code, typ, value, unit string) {
		if value == "" {
			return
		}
		n++
		s += fmt.Sprintf("OBX|%d|%s|%s^^LN||%s|%s|||||F|||%s+0000\r", n, typ, code, value, unit, at)
	}
	obx("9279-1", "NM", v.rr, "/min")
	obx("2708-6", "NM", v.spo2, "%")
	obx("3151-8", "NM", v.o2flow, "L/min")
	obx("8480-6", "NM", v.sbp, "mm[Hg]")
	obx("8867-4", "NM", v.hr, "/min")
	obx("67775-7", "ST", v.acvpu, "")
	obx("8310-5", "NM", v.temp, "Cel")
	return s
}

type scoreRow struct {
	Total    int    `json:"total"`
	Risk     string `json:"risk"`
	Complete bool   `json:"complete"`
	Missing  []string
	Inputs   []string
}

func lastScore(t *testing.T, url, patientKey, name string) scoreRow {
	t.Helper()
	var payload []byte
	query(t, url, `SELECT payload FROM events WHERE type = 'score.calculated' AND patient_key = $1 AND payload->>'score' = $2
		ORDER BY seq DESC LIMIT 1`, []any{patientKey, name}, &payload)
	var s scoreRow
	if err := json.Unmarshal(payload, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

func alertTypes(t *testing.T, url, patientKey string) []string {
	t.Helper()
	c, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	rows, err := c.Query(context.Background(), `SELECT type FROM events WHERE type LIKE 'alert.%' AND patient_key = $1 ORDER BY seq`, patientKey)
	if err != nil {
		t.Fatal(err)
	}
	types, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return types
}

func TestScoresAndAlertsFollowThePatient(t *testing.T) {
	t.Parallel()
	st, url := pgtest.NewStore(t)
	routes := scoringRoutes(t)
	run(t, st, url, routes, "r")
	const key = "HOSP/S1"
	send := func(n int, raw string) {
		t.Helper()
		enqueue(t, st, raw)
		waitDrained(t, url, n)
	}
	// Well: RR 16, SpO2 97 on air, SBP 125, HR 75, alert, 37.0 -> 0.
	send(1, nursing("N1", "S1", "19600101", "20261126080000", vitalsSet{"16", "97", "0", "125", "75", "A", "37.0"}))
	if s := lastScore(t, url, key, "news2"); s.Total != 0 || !s.Complete || s.Risk != "low" || len(s.Inputs) != 7 {
		t.Fatalf("well patient: %+v, want a complete 0 from 7 inputs", s)
	}
	// Worse: RR 22 (2), SpO2 95 (1), SBP 105 (1), HR 95 (1) -> 5 urgent.
	send(2, nursing("N2", "S1", "19600101", "20261126083000", vitalsSet{"22", "95", "0", "105", "95", "A", "37.0"}))
	// Worse still: RR 26 (3), SpO2 91 (3), O2 2 L (2) -> 14 emergency.
	send(3, nursing("N3", "S1", "19600101", "20261126084500", vitalsSet{"26", "91", "2", "105", "95", "A", "37.0"}))
	// Over an hour later, better but without a temperature (the last one,
	// 08:45, is stale): incomplete, which proves nothing; the alert stays.
	send(4, nursing("N4", "S1", "19600101", "20261126100000", vitalsSet{"16", "97", "0", "125", "75", "A", ""}))
	if s := lastScore(t, url, key, "news2"); s.Complete || len(s.Missing) != 1 {
		t.Errorf("without temperature: %+v, want incomplete naming it", s)
	}
	// A complete, well set resolves the alert.
	send(5, nursing("N5", "S1", "19600101", "20261126101500", vitalsSet{"16", "97", "0", "125", "75", "A", "37.0"}))
	got := strings.Join(alertTypes(t, url, key), ",")
	if got != "alert.raised,alert.escalated,alert.resolved" {
		t.Errorf("alert events %q, want raised (urgent), escalated (emergency), resolved", got)
	}
	var deliveries, openAlerts int
	query(t, url, `SELECT (SELECT count(*) FROM deliveries WHERE destination = 'log'), (SELECT count(*) FROM alerts WHERE status = 'open')`, nil, &deliveries, &openAlerts)
	if deliveries != 3 || openAlerts != 0 {
		t.Errorf("log deliveries %d, open alerts %d; want 3 and 0", deliveries, openAlerts)
	}
}

// A score wavering between two levels must not page the team at every
// rise: the open alert keeps its most severe level and escalates once.
func TestWaveringScoreEscalatesOnce(t *testing.T) {
	t.Parallel()
	st, url := pgtest.NewStore(t)
	routes := scoringRoutes(t)
	run(t, st, url, routes, "r")
	const key = "HOSP/W1"
	urgent := vitalsSet{"22", "95", "0", "105", "95", "A", "37.0"}    // 2+1+1+1 = 5
	emergency := vitalsSet{"25", "93", "0", "105", "95", "A", "37.0"} // 3+2+1+1 = 7
	for i, v := range []vitalsSet{urgent, emergency, urgent, emergency, urgent} {
		enqueue(t, st, nursing(fmt.Sprintf("W%d", i), "W1", "19600101", fmt.Sprintf("202611260%d0000", i+1), v))
		waitDrained(t, url, i+1)
	}
	if got := strings.Join(alertTypes(t, url, key), ","); got != "alert.raised,alert.escalated" {
		t.Errorf("alert events %q, want one raise (urgent) and one escalation (emergency)", got)
	}
	var severity string
	var total int
	query(t, url, `SELECT a.severity, s.total FROM alerts a JOIN scores s ON s.patient_key = a.patient_key AND s.score = a.score
		WHERE a.status = 'open'`, nil, &severity, &total)
	if severity != "emergency" || total != 5 {
		t.Errorf("open alert %s with current NEWS2 %d; want it to stay emergency while the score is 5", severity, total)
	}
}

// An acknowledgement is an event, audited, and delivered like the alert
// itself so that a paging system can stop paging; a second one changes
// nothing.
func TestAcknowledgeAlert(t *testing.T) {
	t.Parallel()
	st, url := pgtest.NewStore(t)
	routes := scoringRoutes(t)
	run(t, st, url, routes, "r")
	enqueue(t, st, nursing("A1", "A1", "19600101", "20261126080000", vitalsSet{"25", "93", "0", "105", "95", "A", "37.0"}))
	waitDrained(t, url, 1)
	var id uuid.UUID
	var location string
	query(t, url, `SELECT a.id, e.payload->>'location' FROM alerts a JOIN events e ON e.type = 'alert.raised' AND (e.payload->>'alert_id')::uuid = a.id
		WHERE a.status = 'open'`, nil, &id, &location)
	// No ADT feed introduced the patient: the location comes from the
	// result's PV1-3.
	if location != "WARD7^12^B" {
		t.Errorf("alert location %q, want WARD7^12^B from PV1-3", location)
	}

	woken := 0
	api := router.New(st, routes, router.Config{ID: "api", DatabaseURL: url, OnDeliveries: func() { woken++ }})
	at := time.Date(2026, 11, 26, 8, 5, 0, 0, time.UTC)
	a, already, err := api.Acknowledge(context.Background(), id, "nurse.jones", at)
	if err != nil || already || a.AcknowledgedBy != "nurse.jones" || a.Status != "open" {
		t.Fatalf("acknowledge: %+v, already %v, %v; want acknowledged by nurse.jones and still open", a, already, err)
	}
	if _, already, err := api.Acknowledge(context.Background(), id, "dr.smith", at.Add(time.Minute)); err != nil || !already {
		t.Fatalf("second acknowledgement: already %v, %v; want already", already, err)
	}
	var events, logDeliveries, audits int
	var by string
	query(t, url, `SELECT (SELECT count(*) FROM events WHERE type = 'alert.acknowledged'),
		(SELECT max(payload->>'acknowledged_by') FROM events WHERE type = 'alert.acknowledged'),
		(SELECT count(*) FROM deliveries d JOIN events e ON e.id = d.event_id WHERE e.type = 'alert.acknowledged' AND d.destination = 'log'),
		(SELECT count(*) FROM audit_log WHERE action = 'alert.acknowledge' AND actor = 'nurse.jones' AND target = $1)`,
		[]any{id.String()}, &events, &by, &logDeliveries, &audits)
	if events != 1 || by != "nurse.jones" || logDeliveries != 1 || audits != 1 || woken != 1 {
		t.Errorf("events %d (by %q), log deliveries %d, audit rows %d, worker woken %d; want one each, by nurse.jones", events, by, logDeliveries, audits, woken)
	}
	if _, _, err := api.Acknowledge(context.Background(), uuid.New(), "nurse.jones", at); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown alert: %v, want ErrNotFound", err)
	}
}

// An unchanged open alert is sent again once renotify_after has passed
// since the last notification, and not before.
func TestRenotifyAfterInterval(t *testing.T) {
	t.Parallel()
	st, url := pgtest.NewStore(t)
	run(t, st, url, scoringRoutes(t), "r")
	urgent := vitalsSet{"22", "95", "0", "105", "95", "A", "37.0"} // 5
	send := func(n int, at string) {
		t.Helper()
		enqueue(t, st, nursing(fmt.Sprintf("R%d", n), "R1", "19600101", at, urgent))
		waitDrained(t, url, n)
	}
	send(1, "20261126080000")
	send(2, "20261126081500") // within renotify_after (1m of wall time): silent
	// A minute and more passes (the alert's last notification is moved
	// back rather than the test waiting).
	query(t, url, `UPDATE alerts SET last_notified_at = last_notified_at - interval '61 seconds' RETURNING 1`, nil, new(int))
	send(3, "20261126083000")
	send(4, "20261126084500") // just renotified: silent again
	if got := strings.Join(alertTypes(t, url, "HOSP/R1"), ","); got != "alert.raised,alert.renotified" {
		t.Errorf("alert events %q, want raised then one renotification", got)
	}
}

// A site that charts the SpO2 scale as an observation sets the patient's
// scale from the chart, and the same message is scored on it.
func TestSpO2ScaleCharted(t *testing.T) {
	t.Parallel()
	st, url := pgtest.NewStore(t)
	routes := scoringRoutesWith(t, `
  spo2_scale:
    description: NEWS2 SpO2 scale chosen for the patient
    type: coded
    codes: {L: [NEWS2SCALE]}
    answers: {"1": [1, SCALE1], "2": [2, SCALE2]}
`, "  spo2_scale: spo2_scale\n")
	run(t, st, url, routes, "r")
	// SpO2 88 on air: 3 points on scale 1, 0 on scale 2.
	set := vitalsSet{"16", "88", "0", "125", "75", "A", "37.0"}
	raw := nursing("SC1", "SC1", "19600101", "20261126080000", set)
	raw += "OBX|9|CWE|NEWS2SCALE^NEWS2 SpO2 scale^L||SCALE2^Scale 2^L||||||F|||20261126080000+0000\r"
	enqueue(t, st, raw)
	waitDrained(t, url, 1)
	var scale int
	var setBy string
	query(t, url, `SELECT spo2_scale, spo2_scale_set_by FROM patients WHERE patient_key = 'HOSP/SC1'`, nil, &scale, &setBy)
	if scale != 2 || !strings.HasPrefix(setBy, "observation ") {
		t.Errorf("patient scale %d set by %q; want 2, set by the observation", scale, setBy)
	}
	if s := lastScore(t, url, "HOSP/SC1", "news2"); s.Total != 0 || !s.Complete {
		t.Errorf("NEWS2 %+v; want a complete 0 (SpO2 88 on air scores 0 on scale 2)", s)
	}
}

func TestChildrenAreNotScored(t *testing.T) {
	t.Parallel()
	st, url := pgtest.NewStore(t)
	routes := scoringRoutes(t)
	run(t, st, url, routes, "r")
	enqueue(t, st, nursing("C1", "KID", "20150601", "20261126080000", vitalsSet{"30", "90", "2", "85", "140", "V", "39.5"}))
	waitDrained(t, url, 1)
	var skipped, calculated int
	var reason string
	query(t, url, `SELECT count(*) FILTER (WHERE type = 'score.skipped'), count(*) FILTER (WHERE type = 'score.calculated'),
		coalesce(max(payload->>'reason'), '') FROM events WHERE patient_key = 'HOSP/KID'`, nil, &skipped, &calculated, &reason)
	if skipped != 2 || calculated != 0 || !strings.Contains(reason, "16") {
		t.Errorf("skipped %d, calculated %d, reason %q; want both scores skipped for a child, with the reason", skipped, calculated, reason)
	}
	if types := alertTypes(t, url, "HOSP/KID"); len(types) != 0 {
		t.Errorf("alerts for a child: %v", types)
	}
}

func TestLateObservationRecomputesItsOwnTimeAndTheCurrentPicture(t *testing.T) {
	t.Parallel()
	st, url := pgtest.NewStore(t)
	routes := scoringRoutes(t)
	run(t, st, url, routes, "r")
	// 09:00 complete except consciousness; then consciousness charted for
	// 08:50 arrives late: the 08:50 score and the current (09:00) one are
	// recomputed, and the current one is now complete.
	enqueue(t, st, nursing("L1", "L1", "19600101", "20261126090000", vitalsSet{"16", "97", "0", "125", "75", "", "37.0"}))
	waitDrained(t, url, 1)
	enqueue(t, st, nursing("L2", "L1", "19600101", "20261126085000", vitalsSet{acvpu: "C"}))
	waitDrained(t, url, 2)
	var current []byte
	query(t, url, `SELECT e.payload FROM scores s JOIN events e ON e.id = s.event_id WHERE s.patient_key = 'HOSP/L1' AND s.score = 'news2'`, nil, &current)
	var s struct {
		AsOf     string `json:"as_of"`
		Total    int    `json:"total"`
		Complete bool   `json:"complete"`
		Current  bool   `json:"current_picture"`
	}
	json.Unmarshal(current, &s)
	if !strings.HasPrefix(s.AsOf, "2026-11-26T09:00:00") || !s.Complete || s.Total != 3 || !s.Current {
		t.Errorf("current NEWS2 %+v, want the 09:00 picture recomputed: complete, 3 (new confusion)", s)
	}
	var n int
	query(t, url, `SELECT count(*) FROM events WHERE type = 'score.calculated' AND payload->>'score' = 'news2' AND patient_key = 'HOSP/L1'`, nil, &n)
	if n != 3 {
		t.Errorf("%d NEWS2 scores, want 3 (09:00, the late 08:50, and 09:00 again)", n)
	}
}

// Two sets charted one after the other are scored the same whether the
// router applies them in one batch or in two: the first is not "late"
// because the second, which arrived after it, is in the same transaction.
// Only the second computes the 09:00 score and escalates the alert.
func TestConsecutiveSetsInOneBatchAreNotLate(t *testing.T) {
	t.Parallel()
	st, url := pgtest.NewStore(t)
	routes := scoringRoutes(t)
	// Both queued before the router starts: one lane, one batch.
	ids := enqueue(t, st,
		nursing("B1", "B1", "19600101", "20261126083000", vitalsSet{"22", "95", "0", "105", "95", "A", "37.0"}),
		nursing("B2", "B1", "19600101", "20261126090000", vitalsSet{"25", "93", "0", "105", "95", "A", "37.0"}))
	run(t, st, url, routes, "r")
	waitDrained(t, url, 2)
	var scores, recomputed, fromFirst int
	query(t, url, `SELECT count(*), count(*) FILTER (WHERE (payload->>'current_picture')::boolean),
			count(*) FILTER (WHERE message_id = $1)
		FROM events WHERE type = 'score.calculated' AND payload->>'score' = 'news2' AND patient_key = 'HOSP/B1'`,
		[]any{ids[0]}, &scores, &recomputed, &fromFirst)
	if scores != 2 || recomputed != 0 || fromFirst != 1 {
		t.Errorf("%d NEWS2 scores, %d recomputations of the current picture, %d from the first message; want 2 (one per set), none, 1",
			scores, recomputed, fromFirst)
	}
	var escalatedBy uuid.UUID
	query(t, url, `SELECT message_id FROM events WHERE type = 'alert.escalated' AND patient_key = 'HOSP/B1'`, nil, &escalatedBy)
	if escalatedBy != ids[1] {
		t.Errorf("alert escalated by message %s, want the 09:00 set's %s", escalatedBy, ids[1])
	}
}
