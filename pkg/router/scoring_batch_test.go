package router_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/aortahealth/aorta/internal/pgtest"
	"github.com/aortahealth/aorta/pkg/event"
	"github.com/aortahealth/aorta/pkg/patient"
	"github.com/aortahealth/aorta/pkg/route"
	"github.com/aortahealth/aorta/pkg/score"
	"github.com/aortahealth/aorta/pkg/store"
)

// labWBC is a laboratory result of a white cell count (fresh for 24
// hours, where vital signs are for one hour) observed at at.
func labWBC(cid, mrn, at, wbc string) string {
	return fmt.Sprintf("MSH|^~\\&|LAB|HOSP|AORTA|HOSP|%s+0000||ORU^R01|%s|P|2.5\r", at, cid) +
		fmt.Sprintf("PID|||%s^^^HOSP^MR||DOE^JANE||19600101\r", mrn) +
		fmt.Sprintf("OBR|1|||CBC|||%s+0000\r", at) +
		fmt.Sprintf("OBX|1|NM|6690-2^WBC^LN||%s|10*3/uL|||||F|||%s+0000\r", wbc, at)
}

// enqueueWithIDs stores messages as enqueue does, with message IDs
// derived from their control IDs, so that two databases fed the same
// messages hold the same event IDs.
func enqueueWithIDs(t *testing.T, st *store.Store, cids []string, raws []string) {
	t.Helper()
	var units []store.Unit
	for i, raw := range raws {
		m, err := parsePatient(raw)
		if err != nil {
			t.Fatal(err)
		}
		units = append(units, store.Unit{Message: &store.Message{
			ID: uuid.NewSHA1(uuid.NameSpaceOID, []byte(cids[i])), ReceivedAt: time.Now(), Listener: "test", RemoteAddr: "127.0.0.1:1",
			Raw: []byte(raw), Status: store.StatusAccepted,
			Header: store.Header{SendingApplication: "T", ControlID: cids[i]},
			Outbox: &store.OutboxEntry{PartitionKey: patient.Partition(m), PatientKey: m},
		}})
	}
	if _, err := st.Save(context.Background(), units, 0); err != nil {
		t.Fatal(err)
	}
}

// scoringOutcome is everything scoring and alerting wrote, but for wall
// clock times: score events and the patients' current scores exactly;
// alert events, alerts and deliveries without the times they were made.
// Events are in the order of each patient's: lanes apply in any order.
func scoringOutcome(t *testing.T, url string) string {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var b strings.Builder
	for _, q := range []string{
		`SELECT id::text, type, occurred_at::text, message_id::text, coalesce(patient_key, ''), route, payload::text
			FROM events WHERE type LIKE 'score.%' ORDER BY patient_key, seq`,
		`SELECT id::text, type, message_id::text, coalesce(patient_key, ''), (payload - 'raised_at')::text
			FROM events WHERE type LIKE 'alert.%' ORDER BY patient_key, seq`,
		`SELECT patient_key, score, calculated_at::text, total::text, coalesce(risk, ''), complete::text, event_id::text
			FROM scores ORDER BY patient_key, score`,
		`SELECT id::text, patient_key, rule, severity, level::text, status, score_event_id::text, score_at::text, message_id::text
			FROM alerts ORDER BY id`,
		`SELECT event_id::text, destination FROM deliveries ORDER BY event_id, destination`,
	} {
		rows, err := c.Query(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			vals, err := rows.Values()
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintln(&b, vals...)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		b.WriteString("--\n")
	}
	return b.String()
}

// Scoring a lane's messages in one batch gives exactly what scoring them
// one batch each gives: the same scores at the same times from the same
// values (vital signs fresh for an hour and a white cell count for a day,
// at a set's own time and at a late set's current picture), the same
// current scores, and the same alerts raised, escalated, resolved and
// raised again, with the same deliveries. Scoring reads each patient's
// current scores and open alerts once per batch and keeps them itself
// while it writes; this is what would catch it keeping them wrong.
func TestScoringInOneBatchEqualsOneAtATime(t *testing.T) {
	t.Parallel()
	shipped, err := os.ReadFile("../../routes.yaml")
	if err != nil {
		t.Fatal(err)
	}
	scores := []string{score.NameNEWS2, score.NameQSOFA, score.NameSIRS}
	routes, err := route.Parse("routes.yaml", shipped, route.Registry{Mappings: event.Mappings(), Handlers: scores, Scores: scores})
	if err != nil {
		t.Fatal(err)
	}
	well := vitalsSet{"16", "97", "0", "125", "75", "A", "37.0"}
	urgent := vitalsSet{"22", "95", "0", "105", "95", "A", "38.5"}   // NEWS2 5, SIRS 3 with the WBC
	emergency := vitalsSet{"25", "93", "0", "99", "95", "A", "38.5"} // NEWS2 7+, qSOFA 2
	var cids, raws []string
	add := func(raw string) {
		cids = append(cids, fmt.Sprintf("EQ%02d", len(cids)))
		raws = append(raws, raw)
	}
	for _, mrn := range []string{"E1", "E2"} {
		add(labWBC("x", mrn, "20261126060000", "13.5"))
		add(nursing("x", mrn, "19600101", "20261126080000", well))
		add(nursing("x", mrn, "19600101", "20261126083000", urgent))
		add(nursing("x", mrn, "19600101", "20261126084500", emergency))
		// Late: consciousness charted for 08:40 after the 08:45 set.
		add(nursing("x", mrn, "19600101", "20261126084000", vitalsSet{acvpu: "C"}))
		// Hours later the vital signs are stale, the WBC is not.
		add(nursing("x", mrn, "19600101", "20261126100000", well))
		add(nursing("x", mrn, "19600101", "20261126101000", urgent))
		add(nursing("x", mrn, "19600101", "20261126102000", urgent))
		add(nursing("x", mrn, "19600101", "20261126103000", emergency))
		add(nursing("x", mrn, "19600101", "20261126104000", well))
		add(nursing("x", mrn, "19600101", "20261126105000", emergency))
	}
	add(nursing("x", "KID", "20150601", "20261126080000", emergency))

	// One at a time.
	st1, url1 := pgtest.NewStore(t)
	run(t, st1, url1, routes, "r1")
	for i := range raws {
		enqueueWithIDs(t, st1, cids[i:i+1], raws[i:i+1])
		waitDrained(t, url1, i+1)
	}
	// All queued before the router starts: a batch per lane.
	st2, url2 := pgtest.NewStore(t)
	enqueueWithIDs(t, st2, cids, raws)
	run(t, st2, url2, routes, "r2")
	waitDrained(t, url2, len(raws))

	one, batched := scoringOutcome(t, url1), scoringOutcome(t, url2)
	if d := os.Getenv("AORTA_TEST_DUMP"); d != "" {
		os.WriteFile(d+"/one.txt", []byte(one), 0o644)
		os.WriteFile(d+"/batched.txt", []byte(batched), 0o644)
	}
	if !strings.Contains(one, "alert.resolved") || !strings.Contains(one, "alert.escalated") || strings.Count(one, "alert.raised") < 4 {
		t.Fatalf("the messages should raise, escalate, resolve and raise again:\n%s", one)
	}
	if one != batched {
		t.Errorf("scored in one batch:\n%s\nscored one at a time:\n%s", batched, one)
	}
}
