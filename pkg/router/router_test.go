package router_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/aortahealth/aorta/internal/pgtest"
	"github.com/aortahealth/aorta/pkg/event"
	"github.com/aortahealth/aorta/pkg/hl7"
	"github.com/aortahealth/aorta/pkg/patient"
	"github.com/aortahealth/aorta/pkg/route"
	"github.com/aortahealth/aorta/pkg/router"
	"github.com/aortahealth/aorta/pkg/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const testRoutes = `
version: 1
parameters:
  heart_rate:
    unit: /min
    codes: {LN: [8867-4]}
    units: {/min: same}
routes:
  - name: adt
    match: {message_type: ADT}
    events: [adt]
  - name: vitals
    match: {message_type: ORU, trigger_event: R01}
    events: [observations]
`

func loadRoutes(t testing.TB, yaml string) *route.Config {
	t.Helper()
	c, err := route.Parse("test.yaml", []byte(yaml), route.Registry{Mappings: event.Mappings()})
	if err != nil {
		t.Fatalf("routes: %v", err)
	}
	return c
}

// oru is a heart-rate result for a patient, observed at minute m.
func oru(cid, mrn string, m, hr int) string {
	return fmt.Sprintf("MSH|^~\\&|MON|HOSP|AORTA|HOSP|20261126120000||ORU^R01|%s|P|2.5\r"+
		"PID|||%s^^^HOSP^MR||DOE^JANE\r"+
		"OBR|1|||8867-4^HR^LN|||202611261%03d00\r"+
		"OBX|1|NM|8867-4^Heart rate^LN||%d|/min|||||F|||202611261%03d00\r", cid, mrn, m, hr, m)
}

// enqueue stores messages as the listener would, in order.
func enqueue(t testing.TB, st *store.Store, raws ...string) []uuid.UUID {
	t.Helper()
	var units []store.Unit
	var ids []uuid.UUID
	for i, raw := range raws {
		m, err := parsePatient(raw)
		if err != nil {
			t.Fatal(err)
		}
		msg := &store.Message{
			ID: uuid.Must(uuid.NewV7()), ReceivedAt: time.Now(), Listener: "test", RemoteAddr: "127.0.0.1:1",
			Raw: []byte(raw), Status: store.StatusAccepted,
			Header: store.Header{SendingApplication: "T", ControlID: fmt.Sprintf("%d-%s", i, uuid.NewString())},
			Outbox: &store.OutboxEntry{PartitionKey: patient.Partition(m), PatientKey: m},
		}
		units = append(units, store.Unit{Message: msg})
		ids = append(ids, msg.ID)
	}
	if _, err := st.Save(context.Background(), units, 0); err != nil {
		t.Fatal(err)
	}
	return ids
}

func parsePatient(raw string) (string, error) {
	m, err := hl7.Parse([]byte(raw))
	if err != nil {
		return "", err
	}
	id, ok := patient.Primary(m)
	if !ok {
		return "", fmt.Errorf("no patient in %q", raw)
	}
	return id.Key("HOSP"), nil
}

// run starts a router and returns a function that stops it and waits.
func run(t testing.TB, st *store.Store, url string, routes *route.Config, id string) func() {
	t.Helper()
	r := router.New(st, routes, router.Config{ID: id, DatabaseURL: url, PollInterval: 100 * time.Millisecond, LeaseTTL: 3 * time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("router %s: %v", id, err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("router %s did not stop", id)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func waitDrained(t testing.TB, url string, wantRouted int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var outbox, routed int
		query(t, url, `SELECT (SELECT count(*) FROM outbox), (SELECT count(*) FROM message_routing)`, nil, &outbox, &routed)
		if outbox == 0 && routed >= wantRouted {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("router did not drain: outbox %d, routed %d of %d", outbox, routed, wantRouted)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func query(t testing.TB, url, sql string, args []any, dest ...any) {
	t.Helper()
	c, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if err := c.QueryRow(context.Background(), sql, args...).Scan(dest...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func TestRouterAppliesMessagesInOrderExactlyOnce(t *testing.T) {
	t.Parallel()
	st, url := pgtest.NewStore(t)
	routes := loadRoutes(t, testRoutes)
	var raws []string
	for i := range 30 {
		raws = append(raws, oru(fmt.Sprintf("C%d", i), fmt.Sprintf("P%d", i%3), i, 60+i))
	}
	raws = append(raws, "MSH|^~\\&|ADT|HOSP|AORTA|HOSP|20261126120000||ADT^A01|A1|P|2.5\rEVN|A01|20261126115500\rPID|||P0^^^HOSP^MR||DOE^JANE\rPV1||I|ICU^1^A\r")
	raws = append(raws, "MSH|^~\\&|LAB|HOSP|AORTA|HOSP|20261126120000||ORM^O01|O1|P|2.5\rPID|||P1^^^HOSP^MR\r")
	enqueue(t, st, raws...)
	run(t, st, url, routes, "r1")
	waitDrained(t, url, len(raws))

	var events, routed, unrouted, dup int
	query(t, url, `SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM message_routing WHERE status = 'routed'),
		(SELECT count(*) FROM message_routing WHERE status = 'unrouted'),
		(SELECT count(*) FROM (SELECT id FROM events GROUP BY id HAVING count(*) > 1) d)`, nil, &events, &routed, &unrouted, &dup)
	if events != 31 || routed != 31 || unrouted != 1 || dup != 0 {
		t.Errorf("events=%d routed=%d unrouted=%d duplicates=%d, want 31 31 1 0", events, routed, unrouted, dup)
	}
	// Per patient, events follow arrival order: seq grows with the minute.
	var disorder int
	query(t, url, `SELECT count(*) FROM (
		SELECT patient_key, occurred_at, lag(occurred_at) OVER (PARTITION BY patient_key ORDER BY seq) AS prev
		FROM events WHERE type = 'observation.recorded') x WHERE prev > occurred_at`, nil, &disorder)
	if disorder != 0 {
		t.Errorf("%d events applied out of arrival order", disorder)
	}
	var status, location string
	query(t, url, `SELECT status, location FROM patients WHERE patient_key = 'HOSP/P0'`, nil, &status, &location)
	if status != "admitted" || location == "" {
		t.Errorf("patient state %q at %q, want admitted with a location", status, location)
	}
}

func TestTwoRoutersShareTheLanesAndApplyEachMessageOnce(t *testing.T) {
	t.Parallel()
	st, url := pgtest.NewStore(t)
	routes := loadRoutes(t, testRoutes)
	run(t, st, url, routes, "a")
	run(t, st, url, routes, "b")
	// Both routers settle on half the lanes each.
	deadline := time.Now().Add(20 * time.Second)
	for {
		var a, b int
		query(t, url, `SELECT count(*) FILTER (WHERE owner = 'a'), count(*) FILTER (WHERE owner = 'b') FROM router_lanes WHERE lease_expires_at > now()`, nil, &a, &b)
		if a == store.Lanes/2 && b == store.Lanes/2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lanes not shared: a holds %d, b holds %d", a, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var raws []string
	for i := range 200 {
		raws = append(raws, oru(fmt.Sprintf("C%d", i), fmt.Sprintf("P%d", i%20), i%60, 60))
	}
	enqueue(t, st, raws...)
	waitDrained(t, url, len(raws))
	var events, distinct int
	query(t, url, `SELECT count(*), count(DISTINCT message_id) FROM events`, nil, &events, &distinct)
	if events != 200 || distinct != 200 {
		t.Errorf("events=%d from %d messages, want 200 from 200", events, distinct)
	}
}

func TestStoppedRouterHandsItsLanesOver(t *testing.T) {
	t.Parallel()
	st, url := pgtest.NewStore(t)
	routes := loadRoutes(t, testRoutes)
	stopA := run(t, st, url, routes, "a")
	run(t, st, url, routes, "b")
	time.Sleep(200 * time.Millisecond)
	stopA()
	// b takes a's lanes at its next lease round, not at once: wait for
	// that (bounded) rather than read the lanes once, which raced the
	// drain below when both messages fell in lanes b already held.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var heldByB int
		query(t, url, `SELECT count(*) FROM router_lanes WHERE owner = 'b'`, nil, &heldByB)
		if heldByB == store.Lanes {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("b holds %d lanes 10 s after a stopped, want all %d", heldByB, store.Lanes)
		}
		time.Sleep(50 * time.Millisecond)
	}
	enqueue(t, st, oru("X1", "P1", 1, 70), oru("X2", "P2", 2, 71))
	waitDrained(t, url, 2)
}

func TestInvalidMessageIsDeadLetteredWithoutBlockingOthers(t *testing.T) {
	t.Parallel()
	st, url := pgtest.NewStore(t)
	routes := loadRoutes(t, testRoutes)
	// PID-3 is blank: the mapping must dead-letter it for want of an
	// identifier (queued under a patient key, as a sender's other feed might).
	bad := "MSH|^~\\&|ADT|HOSP|AORTA|HOSP|20261126120000||ADT^A01|BAD|P|2.5\rEVN|A01|20261126115500\rPID|||\rPV1||I\r"
	ids := enqueueKeyed(t, st, "HOSP/P9", bad)
	enqueue(t, st, oru("G1", "P1", 1, 70))
	run(t, st, url, routes, "r")
	waitDrained(t, url, 2)
	var reason string
	query(t, url, `SELECT error FROM dead_letters WHERE message_id = $1 AND route = 'adt'`, []any{ids[0]}, &reason)
	if reason == "" {
		t.Error("dead letter has no reason")
	}
	var routed int
	query(t, url, `SELECT count(*) FROM message_routing WHERE status = 'routed'`, nil, &routed)
	if routed != 1 {
		t.Errorf("routed = %d, want the good message routed", routed)
	}
}

func enqueueKeyed(t testing.TB, st *store.Store, key, raw string) []uuid.UUID {
	t.Helper()
	msg := &store.Message{
		ID: uuid.Must(uuid.NewV7()), ReceivedAt: time.Now(), Listener: "test", RemoteAddr: "127.0.0.1:1",
		Raw: []byte(raw), Status: store.StatusAccepted, Header: store.Header{ControlID: uuid.NewString()},
		Outbox: &store.OutboxEntry{PartitionKey: patient.Partition(key), PatientKey: key},
	}
	if _, err := st.Save(context.Background(), []store.Unit{{Message: msg}}, 0); err != nil {
		t.Fatal(err)
	}
	return []uuid.UUID{msg.ID}
}

func TestOversizedIdentifierIsDeadLetteredAtOnce(t *testing.T) {
	t.Parallel()
	st, url := pgtest.NewStore(t)
	routes := loadRoutes(t, testRoutes)
	huge := strings.Repeat("V", 300)
	raw := "MSH|^~\\&|ADT|HOSP|AORTA|HOSP|20261126120000||ADT^A01|BIG|P|2.5\rEVN|A01|20261126115500\rPID|||P7^^^HOSP^MR\rPV1||I|||||||||||||||||" + huge + "\r"
	ids := enqueue(t, st, raw)
	run(t, st, url, routes, "r")
	waitDrained(t, url, 1)
	var attempts int
	var reason string
	query(t, url, `SELECT attempts, error FROM dead_letters WHERE message_id = $1`, []any{ids[0]}, &attempts, &reason)
	if attempts != 1 || !strings.Contains(reason, "PV1-19") || strings.Contains(reason, huge) {
		t.Errorf("dead letter after %d attempts, reason %.80q; want 1 attempt naming PV1-19 without the value", attempts, reason)
	}
}
