package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/aortahealth/aorta/internal/pgtest"
	"github.com/aortahealth/aorta/pkg/store"
)

// alertStory is what the router stores for one alert: a message that
// raised it and one that last changed it (resolved it, or escalated it
// while open), both received the same day, each with an
// observation.recorded and a score.calculated event and the alert's event
// (alert.raised, then alert.resolved or alert.escalated), each alert event
// delivered to one destination; the raising message also set an
// observation. The alert points at the second message, as the router
// leaves it.
type alertStory struct {
	alert               uuid.UUID
	raiseMsg, changeMsg uuid.UUID
	// byAge are the raising message's observation and score events: kept
	// by nothing once the alert is not, they go by the events cutoff
	// while their message stays for its delivered alert.raised event.
	byAge []uuid.UUID
	// alertEvents are the alert's two events and the second message's
	// other events, kept with the alert.
	alertEvents []uuid.UUID
	deliveries  []int64
}

// alertState says how a story's alert ends up.
type alertState struct {
	status  string  // open or resolved
	updated float64 // days since it last changed (updated_at)
	// resolved is the days since it was resolved, for a resolved alert
	// acknowledged after; 0 is updated.
	resolved float64
	acked    float64 // days since it was acknowledged; 0: never
	// deliveries are the statuses of the alert.raised and second event's
	// deliveries: delivered, dead, or pending (retrying: attempted and
	// failed, due again later).
	deliveries [2]string
}

// story stores an alert of patient (one open alert per patient and rule)
// whose messages were received days ago.
func (s *retentionSeed) story(patient string, days float64, st alertState) alertStory {
	s.t.Helper()
	var a alertStory
	a.raiseMsg, a.changeMsg = s.message(days, nil, "accepted"), s.message(days, nil, "accepted")
	obs := s.event(a.raiseMsg, "observation.recorded", days)
	s.observation(a.raiseMsg, obs, days)
	a.byAge = []uuid.UUID{obs, s.event(a.raiseMsg, "score.calculated", days)}
	raised := s.event(a.raiseMsg, "alert.raised", days)
	second := "alert.escalated"
	if st.status == "resolved" {
		second = "alert.resolved"
	}
	scoreEv := s.event(a.changeMsg, "score.calculated", days)
	changed := s.event(a.changeMsg, second, days)
	a.alertEvents = []uuid.UUID{raised, changed, scoreEv, s.event(a.changeMsg, "observation.recorded", days)}

	a.alert = uuid.New()
	var ackBy *string
	var ackAt, resolvedAt *time.Time
	if st.acked > 0 {
		by, at := "nurse", s.ago(st.acked)
		ackBy, ackAt = &by, &at
	}
	if st.status == "resolved" {
		at := s.ago(st.updated)
		if st.resolved > 0 {
			at = s.ago(st.resolved)
		}
		resolvedAt = &at
	}
	s.exec(`INSERT INTO alerts (id, patient_key, patient_id, rule, score, severity, level, status, raised_at, updated_at, last_notified_at,
			score_event_id, score_at, message_id, acknowledged_by, acknowledged_at, resolved_at)
		VALUES ($1, $2, 'P', 'news2', 'news2', 'urgent', 1, $3, $4, $5, $5, $6, $4, $7, $8, $9, $10)`,
		a.alert, patient, st.status, s.ago(days), s.ago(st.updated), scoreEv, a.changeMsg, ackBy, ackAt, resolvedAt)
	for i, ev := range []uuid.UUID{raised, changed} {
		a.deliveries = append(a.deliveries, s.delivery(ev, a.alert, st.deliveries[i], days))
	}
	return a
}

// delivery queues ev of alert to a webhook, days ago, in the status given.
func (s *retentionSeed) delivery(ev, alert uuid.UUID, status string, days float64) int64 {
	s.t.Helper()
	var attempts int
	var deliveredAt *time.Time
	var lastError *string
	switch status {
	case "delivered":
		at := s.ago(days)
		attempts, deliveredAt = 1, &at
	case "dead":
		e := "HTTP 500"
		attempts, lastError = 8, &e
	case "pending": // retrying: failed, due again in a minute
		e := "HTTP 503"
		attempts, lastError = 3, &e
	}
	var id int64
	err := s.conn.QueryRow(context.Background(), `INSERT INTO deliveries (event_id, alert_id, destination, kind, status, attempts,
			next_attempt_at, last_attempt_at, last_error, created_at, delivered_at)
		VALUES ($1, $2, 'pager', 'webhook', $3, $4, now() + interval '1 minute', $5, $6, $5, $7) RETURNING id`,
		ev, alert, status, attempts, s.ago(days), lastError, deliveredAt).Scan(&id)
	if err != nil {
		s.t.Fatalf("insert delivery: %v", err)
	}
	return id
}

// ref names one row: its table and id.
type ref struct {
	table string
	id    any
}

func refs(table string, ids ...uuid.UUID) []ref {
	var out []ref
	for _, id := range ids {
		out = append(out, ref{table, id})
	}
	return out
}

func deliveryRefs(ids ...int64) []ref {
	var out []ref
	for _, id := range ids {
		out = append(out, ref{"deliveries", id})
	}
	return out
}

// all are every row of the story.
func (a alertStory) all() []ref {
	out := append(refs("alerts", a.alert), refs("messages", a.raiseMsg, a.changeMsg)...)
	out = append(out, refs("events", a.byAge...)...)
	out = append(out, refs("events", a.alertEvents...)...)
	return append(out, deliveryRefs(a.deliveries...)...)
}

// kept are the rows of a story whose alert stays: all but the raising
// message's observation and score events, which go by age.
func (a alertStory) kept() []ref {
	out := append(refs("alerts", a.alert), refs("messages", a.raiseMsg, a.changeMsg)...)
	out = append(out, refs("events", a.alertEvents...)...)
	return append(out, deliveryRefs(a.deliveries...)...)
}

// What a pass deletes of a story whose alert stays: the raising message's
// two events older than the events cutoff.
var storyKept = map[string]int64{store.RetainEvents: 2}

// What a pass deletes of a story whose alert goes: everything.
var storyGone = map[string]int64{store.RetainAlerts: 1, store.RetainDeliveries: 2, store.RetainMessages: 2,
	store.RetainEvents: 6, store.RetainObservations: 1}

// alertPolicy is the cutoffs of these tests: messages 90 days, events 30,
// audit (and alerts) 365.
func alertPolicy(s *retentionSeed) store.RetentionCutoffs {
	return store.RetentionCutoffs{Messages: s.ago(90), Observations: s.ago(90), Events: s.ago(30), Audit: s.ago(365)}
}

// alertCase seeds rows, runs passes and says what each deletes and which
// rows are gone and which stay at the end.
type alertCase struct {
	name string
	// seed stores the case's rows for patient; gone and kept are the rows
	// that must be gone, and stay, after the passes.
	seed func(s *retentionSeed, patient string) (gone, kept []ref)
	// passes run in turn, each with its cutoffs and the rows per table it
	// must delete; the last one's cutoffs run once more and must delete
	// nothing.
	passes []alertPass
}

type alertPass struct {
	cut  func(*retentionSeed) store.RetentionCutoffs
	want map[string]int64
}

var alertCases = []alertCase{
	{
		name: "resolved a year ago, delivered and dead: goes with its deliveries, messages and events in one pass",
		seed: func(s *retentionSeed, p string) (gone, kept []ref) {
			a := s.story(p, 400, alertState{status: "resolved", updated: 370, deliveries: [2]string{"delivered", "dead"}})
			return a.all(), nil
		},
		passes: []alertPass{{alertPolicy, storyGone}},
	},
	{
		name: "resolved a year ago: goes in a pass of alerts alone, its messages and events in a later pass",
		seed: func(s *retentionSeed, p string) (gone, kept []ref) {
			a := s.story(p, 400, alertState{status: "resolved", updated: 370, deliveries: [2]string{"delivered", "delivered"}})
			return a.all(), nil
		},
		passes: []alertPass{
			{func(s *retentionSeed) store.RetentionCutoffs { return store.RetentionCutoffs{Audit: s.ago(365)} },
				map[string]int64{store.RetainAlerts: 1, store.RetainDeliveries: 2}},
			{alertPolicy, map[string]int64{store.RetainMessages: 2, store.RetainEvents: 6, store.RetainObservations: 1}},
		},
	},
	{
		name: "open for more than a year: stays",
		seed: func(s *retentionSeed, p string) (gone, kept []ref) {
			a := s.story(p, 400, alertState{status: "open", updated: 400, deliveries: [2]string{"delivered", "delivered"}})
			return refs("events", a.byAge...), a.kept()
		},
		passes: []alertPass{{alertPolicy, storyKept}},
	},
	{
		name: "acknowledged a year ago, still open: stays",
		seed: func(s *retentionSeed, p string) (gone, kept []ref) {
			a := s.story(p, 400, alertState{status: "open", updated: 380, acked: 380, deliveries: [2]string{"delivered", "delivered"}})
			return refs("events", a.byAge...), a.kept()
		},
		passes: []alertPass{{alertPolicy, storyKept}},
	},
	{
		name: "resolved a year ago, a delivery still retrying: stays with its delivered one",
		seed: func(s *retentionSeed, p string) (gone, kept []ref) {
			a := s.story(p, 400, alertState{status: "resolved", updated: 370, deliveries: [2]string{"delivered", "pending"}})
			return refs("events", a.byAge...), a.kept()
		},
		passes: []alertPass{{alertPolicy, storyKept}},
	},
	{
		name: "resolved within the audit retention: stays",
		seed: func(s *retentionSeed, p string) (gone, kept []ref) {
			a := s.story(p, 400, alertState{status: "resolved", updated: 200, deliveries: [2]string{"delivered", "delivered"}})
			return refs("events", a.byAge...), a.kept()
		},
		passes: []alertPass{{alertPolicy, storyKept}},
	},
	{
		name: "resolved a year ago, acknowledged since: stays",
		seed: func(s *retentionSeed, p string) (gone, kept []ref) {
			a := s.story(p, 400, alertState{status: "resolved", updated: 10, resolved: 370, acked: 10, deliveries: [2]string{"delivered", "delivered"}})
			return refs("events", a.byAge...), a.kept()
		},
		passes: []alertPass{{alertPolicy, storyKept}},
	},
}

// Retention deletes a resolved alert that last changed before the audit
// cutoff with its deliveries, all finished, and then (in the same pass or
// a later one) its messages and events; it never deletes an open alert,
// acknowledged or not, one with a delivery still pending, or one that
// changed within the audit retention, nor what they keep. Each case runs
// alone and all run together in one database, in windows of 1, 2 and
// 500: a dry run reports exactly what the pass then deletes, table by
// table with the same times, and a second pass deletes nothing.
func TestRetentionAlerts(t *testing.T) {
	t.Parallel()
	for _, n := range []int{1, 2, 500} {
		for _, c := range alertCases {
			t.Run(fmt.Sprintf("%s/batch %d", c.name, n), func(t *testing.T) {
				t.Parallel()
				runAlertCase(t, n, []alertCase{c})
			})
		}
		t.Run(fmt.Sprintf("all together/batch %d", n), func(t *testing.T) {
			t.Parallel()
			// Passes of one cutoff each: the cases of one pass.
			var together []alertCase
			for _, c := range alertCases {
				if len(c.passes) == 1 {
					together = append(together, c)
				}
			}
			runAlertCase(t, n, together)
		})
	}
}

// runAlertCase seeds the cases in one database, each for a patient of its
// own, and runs their passes together (the cases of one pass each).
func runAlertCase(t *testing.T, n int, cases []alertCase) {
	st, url := pgtest.NewStore(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	s := &retentionSeed{t: t, conn: conn, now: time.Now()}
	var gone, kept []ref
	for i, c := range cases {
		g, k := c.seed(s, fmt.Sprintf("HOSP/A%d", i))
		gone, kept = append(gone, g...), append(kept, k...)
	}
	passes := cases[0].passes
	if len(cases) > 1 {
		want := map[string]int64{}
		for _, c := range cases {
			for table, rows := range c.passes[0].want {
				want[table] += rows
			}
		}
		passes = []alertPass{{alertPolicy, want}}
	}

	for i, p := range passes {
		cut := p.cut(s)
		before := tableCounts(t, conn)
		dry, err := pass(ctx, st, cut, true, n)
		if err != nil {
			t.Fatalf("pass %d: dry run: %v", i+1, err)
		}
		if got := rowsOf(dry); fmt.Sprint(got) != fmt.Sprint(p.want) {
			t.Errorf("pass %d: dry run would delete %v\nwant %v", i+1, got, p.want)
		}
		if after := tableCounts(t, conn); fmt.Sprint(after) != fmt.Sprint(before) {
			t.Errorf("pass %d: dry run changed the tables: %v, was %v", i+1, after, before)
		}
		real, err := pass(ctx, st, cut, false, n)
		if err != nil {
			t.Fatalf("pass %d: %v", i+1, err)
		}
		if got := rowsOf(real); fmt.Sprint(got) != fmt.Sprint(p.want) {
			t.Errorf("pass %d deleted %v\nwant %v", i+1, got, p.want)
		}
		for _, table := range store.RetentionTables {
			if dry[table] != real[table] {
				t.Errorf("pass %d: %s: dry run reported %+v, the pass deleted %+v", i+1, table, dry[table], real[table])
			}
		}
		after := tableCounts(t, conn)
		for table, was := range before {
			if got := was - after[table]; got != p.want[table] {
				t.Errorf("pass %d: %s: %d rows gone, want %d", i+1, table, got, p.want[table])
			}
		}
		if r := real[store.RetainAlerts]; r.Rows > 0 && !r.Newest.Before(cut.Audit) {
			t.Errorf("pass %d deleted alerts last changed up to %s, after the cutoff %s", i+1, r.Newest, cut.Audit)
		}
	}

	for _, r := range gone {
		if exists(t, conn, r) {
			t.Errorf("%s %v is still there, want it deleted", r.table, r.id)
		}
	}
	for _, r := range kept {
		if !exists(t, conn, r) {
			t.Errorf("%s %v was deleted, want it kept", r.table, r.id)
		}
	}

	again, err := pass(ctx, st, passes[len(passes)-1].cut(s), false, n)
	if err != nil {
		t.Fatalf("second pass: %v", err)
	}
	if got := rowsOf(again); len(got) != 0 {
		t.Errorf("second pass deleted %v, want nothing", got)
	}
}

func exists(t *testing.T, conn *pgx.Conn, r ref) bool {
	t.Helper()
	var n int
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM `+r.table+` WHERE id = $1`, r.id).Scan(&n); err != nil {
		t.Fatalf("%s %v: %v", r.table, r.id, err)
	}
	return n == 1
}
