package consolebench

import (
	"context"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/aortahealth/aorta/internal/pgtest"
	"github.com/aortahealth/aorta/pkg/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// A small seed goes into a migrated database with every constraint and
// foreign key checked, writes what it says it wrote, and gives every view
// of the bench something to find; the plan check sees each view's
// statements.
func TestSeedAndViews(t *testing.T) {
	t.Parallel()
	st, url := pgtest.NewStore(t)
	ctx := context.Background()
	plan := Plan{Messages: 6000, Days: 10, Patients: 500, DeadLetters: 60, Alerts: 30, Seed: 3}
	res, err := Seed(ctx, url, plan, 2, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	count := func(sql string) int64 {
		t.Helper()
		var n int64
		if err := conn.QueryRow(ctx, sql).Scan(&n); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return n
	}
	for _, c := range []struct {
		table string
		want  int64
	}{
		{"messages", res.Messages}, {"events", res.Events}, {"message_routing", res.Routing},
		{"dead_letters", res.DeadLetters}, {"alerts", res.Alerts}, {"patients", res.Patients},
		{"observations", res.Observations}, {"scores", res.Scores},
	} {
		if got := count("SELECT count(*) FROM " + c.table); got != c.want || got == 0 {
			t.Errorf("%s: %d rows, the seed reported %d (want both above 0)", c.table, got, c.want)
		}
	}
	if res.Messages != int64(plan.Messages) {
		t.Errorf("%d messages, want %d", res.Messages, plan.Messages)
	}
	// The routing rows agree with the events, the statuses with the
	// messages.
	if n := count(`SELECT count(*) FROM message_routing r WHERE r.events <> (SELECT count(*) FROM events e WHERE e.message_id = r.message_id)`); n != 0 {
		t.Errorf("%d routing rows count other events than they have", n)
	}
	if n := count(`SELECT count(*) FROM messages m LEFT JOIN message_routing r ON r.message_id = m.id
		WHERE (m.status = 'accepted') <> (r.message_id IS NOT NULL)`); n != 0 {
		t.Errorf("%d messages: accepted without routing, or routed without being accepted", n)
	}
	// The routing rows' copy of received_at, which the exception searches
	// are ordered by, is the message's.
	if n := count(`SELECT count(*) FROM message_routing r JOIN messages m ON m.id = r.message_id WHERE r.received_at <> m.received_at`); n != 0 {
		t.Errorf("%d routing rows with another received_at than their message's", n)
	}
	if n := count(`SELECT count(*) FROM dead_letters d JOIN message_routing r USING (message_id) WHERE r.status <> 'dead_lettered'`); n != 0 {
		t.Errorf("%d dead letters of messages not dead-lettered", n)
	}
	if n := count(`SELECT count(*) FROM scores s LEFT JOIN events e ON e.id = s.event_id WHERE e.type IS DISTINCT FROM 'score.calculated'`); n != 0 {
		t.Errorf("%d scores without their score.calculated event", n)
	}
	if n := count(`SELECT count(*) FROM messages WHERE status = 'rejected' AND (ack_code NOT IN ('AR', 'AE') OR error_code IS NULL)`); n != 0 {
		t.Errorf("%d rejected messages without AR/AE and an error code", n)
	}
	if n := count(`SELECT count(*) FROM dead_letters WHERE resolved_at IS NULL`); n == 0 || n == res.DeadLetters {
		t.Errorf("%d of %d dead letters open, want some but not all", n, res.DeadLetters)
	}

	s, err := readSamples(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	s.CursorText = "unused"
	// Each filtered search finds something: a bench of empty answers
	// would time nothing.
	for _, f := range []store.MessageFilter{{ControlID: s.ControlID}, {SendingApplication: idleSender.App, SendingFacility: idleSender.Facility}, {Patient: s.PatientID}, {SendingApplication: s.Sender},
		{Status: "rejected"}, {Status: "dead_lettered"}, {Status: "unrouted"}, {Since: s.End.Add(-4*24*time.Hour - time.Hour), Until: s.End.Add(-4 * 24 * time.Hour)}, {After: &s.Cursor}} {
		f.Limit = apiPage
		ms, err := st.MessageSearch(ctx, f)
		if err != nil {
			t.Fatalf("search %+v: %v", f, err)
		}
		if len(ms) == 0 {
			t.Errorf("search %+v found nothing", f)
		}
	}
	if p, err := st.PatientScores(ctx, s.PatientID); err != nil || len(p.Scores) == 0 {
		t.Errorf("scores of %s: %+v, %v; want a score", s.PatientID, p, err)
	}

	// The plan check sees every API view's SELECTs.
	tr := &capture{}
	traced, err := store.Open(ctx, url, store.Options{MaxConns: 2, Tracer: tr})
	if err != nil {
		t.Fatal(err)
	}
	defer traced.Close()
	for _, v := range apiViews(s) {
		pcs, err := checkPlans(ctx, traced, tr, conn, v, map[string]bool{"messages": true})
		if err != nil {
			t.Errorf("%s: %v", v.Name, err)
			continue
		}
		if len(pcs) == 0 {
			t.Errorf("%s: no statement explained", v.Name)
		}
		var indexes []string
		for _, pc := range pcs {
			if pc.ExecMS <= 0 || pc.Statement == "" {
				t.Errorf("%s: plan %+v lacks its statement or time", v.Name, pc)
			}
			indexes = append(indexes, pc.Indexes...)
		}
		// An idle feed's messages are read through the sender index
		// (migration 00008), not by walking everyone's newest first.
		if v.Name == "messages of the idle feed" && !slices.Contains(indexes, "messages_sender_idx") {
			t.Errorf("%s: indexes %v, want messages_sender_idx", v.Name, indexes)
		}
	}
}
