package integration

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aortahealth/aorta/internal/hl7sim"
	"github.com/aortahealth/aorta/internal/pgtest"
)

// make demo, end to end: the real hl7sim binary feeds the real listener
// and router, with the shipped routes.yaml, and the events the demo shows
// must be there: every patient admitted, every adult scored at every
// reading, the child's scores skipped, and an emergency NEWS2 alert raised
// for the deteriorating patient.

// hl7simBin is the hl7sim binary TestMain built.
var hl7simBin string

// demoSimTimeout bounds the simulated feed's run: with --fast it sends
// without pausing and waits only for the ACKs.
const demoSimTimeout = 2 * time.Minute

func TestDemo(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t)
	l := startListener(t, dbURL)
	shippedRoutes, err := filepath.Abs(filepath.Join("..", "routes.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	startRouter(t, dbURL, shippedRoutes)
	db := openDB(t, dbURL)

	// Four readings past the alert: the sepsis screen follows at the next.
	const patients, readings = 5, hl7sim.AlertReading + 4
	ctx, cancel := context.WithTimeout(context.Background(), demoSimTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, hl7simBin, "--addr", l.MLLPAddr, "--fast", "--count", strconv.Itoa(readings),
		"--patients", strconv.Itoa(patients), "--seed", "7", "--log-level", "debug")
	cmd.Env = []string{}
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "GORACE"} {
		if v, ok := os.LookupEnv(k); ok {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("hl7sim: %v (after %v); output:\n%s", err, time.Since(start).Round(time.Millisecond), out)
	}
	if strings.Contains(string(out), "WARNING: DATA RACE") {
		t.Errorf("the race detector reported a data race in hl7sim:\n%s", out)
	}
	t.Logf("hl7sim sent %d messages in %v", patients*(readings+2), time.Since(start).Round(time.Millisecond))
	waitDrained(t, db, drainTimeout)

	if n := count(t, db, `SELECT count(*) FROM message_routing WHERE status <> 'routed'`); n != 0 {
		t.Errorf("%d messages not routed (dead-lettered or unrouted)", n)
	}
	ward, err := hl7sim.NewWard(hl7sim.Options{Patients: patients, Seed: 7, Child: true, Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	var deteriorating hl7sim.Patient
	for _, p := range ward.Patients() {
		key := p.PatientKey()
		if n := len(events(t, db, "e.patient_key = $1 AND e.type = 'patient.admitted'", key)); n != 1 {
			t.Errorf("%s: %d patient.admitted, want 1", key, n)
		}
		scores := map[string][]demoScore{}
		for _, e := range events(t, db, "e.patient_key = $1 AND e.type = 'score.calculated'", key) {
			var s demoScore
			if err := json.Unmarshal(e.Payload, &s); err != nil {
				t.Fatalf("%s: score payload: %v", key, err)
			}
			// The score of each reading at its own time. The router may
			// add the patient's current picture (a score at a later
			// reading's time) when it takes several readings in one batch,
			// which --fast makes likely.
			if !s.CurrentPicture {
				scores[s.Score] = append(scores[s.Score], s)
			}
		}
		skipped := len(events(t, db, "e.patient_key = $1 AND e.type = 'score.skipped'", key))
		// Every reading is scored three times; the lab result on
		// admission once more, for SIRS.
		if p.Child {
			if len(scores) != 0 || skipped != 3*readings+1 {
				t.Errorf("%s (a child): %d scores calculated and %d skipped, want none and %d", key, len(scores), skipped, 3*readings+1)
			}
			continue
		}
		for name, want := range map[string]int{"news2": readings, "qsofa": readings, "sirs": readings + 1} {
			if got := len(scores[name]); got != want {
				t.Errorf("%s: %d %s score.calculated, want %d", key, got, name, want)
			}
		}
		for i, s := range scores["sirs"] {
			if i > 0 && !s.Complete { // the first, from the lab result, has no vital signs yet
				t.Errorf("%s: SIRS %d incomplete, missing %v", key, i, s.Missing)
			}
		}
		if skipped != 0 {
			t.Errorf("%s (an adult): %d score.skipped", key, skipped)
		}
		var totals []int
		for _, s := range scores["news2"] {
			if !s.Complete {
				t.Errorf("%s: incomplete NEWS2, missing %v", key, s.Missing)
			}
			totals = append(totals, s.Total)
		}
		if p.Deteriorates {
			deteriorating = p
			want := []int{0, 0, 0, 1, 4, 4, 9, 14, 16, 15}[:readings]
			if !reflect.DeepEqual(totals, want) {
				t.Errorf("%s: NEWS2 totals %v, want %v", key, totals, want)
			}
		} else {
			for i, total := range totals {
				if total != 0 {
					t.Errorf("%s: NEWS2 %d at reading %d, want a stable 0", key, total, i)
				}
			}
		}
	}
	if deteriorating.MRN == "" {
		t.Fatal("no deteriorating patient in the ward")
	}

	// The alerts: an emergency straight away for the deteriorating
	// patient (the simulator keeps NEWS2 at 4 or less, with no single red
	// score, until then), the sepsis screen one reading later, and none for
	// anyone else.
	raised := map[string]string{} // patient key/rule -> severity
	for _, e := range events(t, db, "e.type LIKE 'alert.%'") {
		if e.Type != "alert.raised" {
			t.Errorf("%s: %s (rule %s), want only alert.raised", e.PatientKey, e.Type, e.payloadString("rule"))
			continue
		}
		raised[e.PatientKey+" "+e.payloadString("rule")] = e.payloadString("severity")
	}
	key := deteriorating.PatientKey()
	want := map[string]string{key + " news2": "emergency", key + " sepsis-screen": "sepsis-screen"}
	if !reflect.DeepEqual(raised, want) {
		t.Errorf("alerts raised %v, want %v", raised, want)
	}
	var severity, location, status string
	queryRow(t, db, `SELECT severity, coalesce((SELECT location FROM patients WHERE patient_key = a.patient_key), ''), status
		FROM alerts a WHERE patient_key = $1 AND rule = 'news2'`, []any{key}, &severity, &location, &status)
	if severity != "emergency" || status != "open" || !strings.HasPrefix(location, deteriorating.Ward+"^") {
		t.Errorf("news2 alert of %s: %s, %s, at %q; want an open emergency at %s", key, severity, status, location, deteriorating.Location())
	}
}

// demoScore is what TestDemo reads of a score.calculated payload.
type demoScore struct {
	Score    string   `json:"score"`
	Total    int      `json:"total"`
	Risk     string   `json:"risk"`
	Complete bool     `json:"complete"`
	Missing  []string `json:"missing"`
	// CurrentPicture is true for a score computed at a later time than
	// the message's own readings.
	CurrentPicture bool `json:"current_picture"`
}
