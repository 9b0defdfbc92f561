package router

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/aortahealth/aorta/pkg/route"
	"github.com/aortahealth/aorta/pkg/store"
)

// TestResult is the outcome of one route test.
type TestResult struct {
	Name     string
	Line     int
	Failures []string // empty when the test passed
}

// testReceivedAt is the arrival time given to test messages; events carry
// clinical time, so it only matters to messages that give no time at all.
var testReceivedAt = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// RunTests runs route tests against routes, without a database: each
// test's messages go through Process in order, exactly as the router
// would apply them, and corrections are linked to the observations
// recorded earlier in the same test.
func RunTests(tf *route.TestFile, routes *route.Config) []TestResult {
	results := make([]TestResult, 0, len(tf.Tests))
	for _, t := range tf.Tests {
		res := TestResult{Name: t.Name, Line: t.Line}
		known := map[[2]string]observed{} // (patient key, observation key) -> current version
		for i, tm := range t.Messages {
			// Deterministic IDs keep event IDs stable between runs.
			id := uuid.NewSHA1(uuid.NameSpaceURL, []byte(fmt.Sprintf("%s#%d", t.Name, i)))
			p, err := Process(routes, store.Work{MessageID: id, Raw: tm.Raw, ReceivedAt: testReceivedAt})
			label := fmt.Sprintf("message %d (line %d)", i+1, tm.Line)
			if err != nil {
				res.Failures = append(res.Failures, fmt.Sprintf("%s: processing failed: %v", label, err))
				continue
			}
			linkInMemory(p.Events, known)
			if i < len(t.Expect) {
				res.Failures = append(res.Failures, check(label, t.Expect[i], p)...)
			}
		}
		if len(t.Expect) > len(t.Messages) {
			res.Failures = append(res.Failures, fmt.Sprintf("%d expectations for %d messages", len(t.Expect), len(t.Messages)))
		}
		results = append(results, res)
	}
	return results
}

// linkInMemory does what the store does in its transaction: corrections
// and retractions name the event they replace, and the observation state
// follows the same rules (a recorded value stands unless it was
// preliminary).
func linkInMemory(events []store.EventRow, known map[[2]string]observed) {
	for i := range events {
		e := &events[i]
		o := e.Observation
		if o == nil || e.PatientKey == "" {
			continue
		}
		k := [2]string{e.PatientKey, o.Key}
		prior, seen := known[k]
		switch o.Change {
		case store.ObservationRecord:
			if !seen || (prior.status == "P" && o.Status != "P") {
				known[k] = observed{e.ID, o.Status}
			}
		case store.ObservationCorrect, store.ObservationRetract:
			if seen {
				if p, err := store.SetReplaces(e.Payload, prior.event); err == nil {
					e.Payload = p
				}
			}
			if !seen || prior.status != "D" && prior.status != "W" || o.Change == store.ObservationRetract {
				known[k] = observed{e.ID, o.Status}
			}
		}
	}
}

// observed is the current version of an observation in a route test.
type observed struct {
	event  uuid.UUID
	status string
}

func check(label string, exp *route.Expectation, p store.Processed) []string {
	var fails []string
	failf := func(format string, args ...any) {
		fails = append(fails, fmt.Sprintf("%s (expectation at line %d): ", label, exp.Line)+fmt.Sprintf(format, args...))
	}
	if !slices.Equal(p.Routes, exp.Routes) && !(len(p.Routes) == 0 && len(exp.Routes) == 0) {
		failf("routes %v, want %v", p.Routes, exp.Routes)
	}
	dead := p.Status == store.DeadLettered
	switch {
	case dead != exp.DeadLetter.Want:
		if dead {
			failf("dead-lettered (%s), want it processed", p.Error)
		} else {
			failf("processed, want a dead letter")
		}
	case dead && exp.DeadLetter.Reason != "" && !strings.Contains(p.Error, exp.DeadLetter.Reason):
		failf("dead-letter reason %q does not contain %q", p.Error, exp.DeadLetter.Reason)
	}
	if exp.Warnings != nil && len(p.Warnings) != *exp.Warnings {
		failf("%d warnings %v, want %d", len(p.Warnings), p.Warnings, *exp.Warnings)
	}
	if !exp.CheckEvents {
		return fails
	}
	if len(p.Events) != len(exp.Events) {
		var types []string
		for _, e := range p.Events {
			types = append(types, e.Type)
		}
		failf("%d events %v, want %d", len(p.Events), types, len(exp.Events))
		return fails
	}
	for i, want := range exp.Events {
		e := p.Events[i]
		got := map[string]any{
			"type": e.Type, "occurred_at": e.OccurredAt, "patient_id": e.PatientID, "patient_key": e.PatientKey,
			"encounter_id": e.EncounterID, "source": e.Source, "route": e.Route, "payload": json.RawMessage(e.Payload),
		}
		if ok, diff := route.SubsetMatch(want.Want, got); !ok {
			failf("event %d (%s), expected at line %d:\n%s", i+1, e.Type, want.Line, indent(diff))
		}
	}
	return fails
}

func indent(s string) string {
	return "        " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n        ")
}
