package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/aortahealth/aorta/pkg/hl7"
	"github.com/aortahealth/aorta/pkg/mllp"
)

// This file extends the harness to the router: running the real
// cmd/router binary (TestMain builds it) next to the listener, and the
// database reads the router tests share (events, routing outcomes,
// per-patient state).

// routerBin is the router binary TestMain built.
var routerBin string

// drainTimeout bounds the wait for the router to apply everything the
// listener stored, in tests that do not disturb it.
const drainTimeout = 30 * time.Second

// routerProc is one router process started by a test.
type routerProc struct {
	proc
	dbURL  string
	routes string
	env    []string // beyond listenerEnv's
	extra  []string

	HTTPAddr string // bound admin address, read back from the log
	APIAddr  string // bound HTTP API address, read back from the log
	ID       string // instance name from the ready line
}

// startRouter runs the real router against dbURL with routesFile, its admin
// HTTP and its API on 127.0.0.1 ports the kernel picks, and waits for its
// ready line.
// The pool is kept small (PostgreSQL here allows 100 connections and tests
// run in parallel). extraArgs come last, so they override. The process is
// stopped with SIGTERM when the test ends, which must end it with status 0,
// and its log printed if the test failed.
func startRouter(t *testing.T, dbURL, routesFile string, extraArgs ...string) *routerProc {
	t.Helper()
	return startRouterEnv(t, dbURL, routesFile, nil, extraArgs...)
}

// startRouterEnv is startRouter with more environment variables (a
// webhook's secret_env, say).
func startRouterEnv(t *testing.T, dbURL, routesFile string, env []string, extraArgs ...string) *routerProc {
	t.Helper()
	args := append([]string{"serve",
		"--routes", routesFile, "--http-addr", "127.0.0.1:0", "--api-addr", "127.0.0.1:0", "--database-url", dbURL,
		"--log-level", "debug", "--db-max-conns", "4",
	}, extraArgs...)
	r := &routerProc{proc: proc{name: "router", panicMsg: "processing panicked", cleanStop: true},
		dbURL: dbURL, routes: routesFile, env: env, extra: extraArgs}
	got := r.start(t, routerBin, args, append(listenerEnv(dbURL), env...), // the same minimal environment
		logField{"admin HTTP listening", "addr"}, logField{"API listening", "addr"}, logField{"router ready", "id"})
	r.HTTPAddr, r.APIAddr, r.ID = got[0], got[1], got[2]
	t.Logf("router pid %d (%s): admin %s, API %s, routes %s %v", r.cmd.Process.Pid, r.ID, r.HTTPAddr, r.APIAddr, filepath.Base(routesFile), extraArgs)
	return r
}

// restart starts a new router with the same database, routes and
// arguments, as systemd would after a crash. Without --id among them the
// new process has a new instance name.
func (r *routerProc) restart(t *testing.T, extraArgs ...string) *routerProc {
	t.Helper()
	return startRouterEnv(t, r.dbURL, r.routes, r.env, append(append([]string(nil), r.extra...), extraArgs...)...)
}

// checkNoPHI fails the test when a process's log holds any of words: names
// and identifiers the test sent (promise 7). The router logs at debug
// level in these tests, so this covers every line it can write.
func checkNoPHI(t *testing.T, who string, p *procLog, words ...string) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, w := range words {
		for _, l := range p.lines {
			if strings.Contains(l, w) {
				t.Errorf("%s log line holds patient data %q: %s", who, w, l)
				break
			}
		}
	}
}

// routesFile returns the absolute path of a routes file in testdata/router.
func routesFile(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("testdata", "router", name))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("routes file: %v", err)
	}
	return p
}

// copyRoutes copies testdata/router/name to a file of the test's own
// (routes.yaml in a temporary directory), for tests that edit it.
func copyRoutes(t *testing.T, name string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "routes.yaml")
	writeRoutes(t, dst, name)
	return dst
}

// writeRoutes replaces dst with the content of testdata/router/name.
func writeRoutes(t *testing.T, dst, name string) {
	t.Helper()
	b, err := os.ReadFile(routesFile(t, name))
	if err != nil {
		t.Fatal(err)
	}
	// Write then rename, as an editor or a deployment would: the router
	// never reads a half-written file.
	tmp := dst + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		t.Fatal(err)
	}
}

// --- messages ---

// hl7Msg joins segments into a message, each ended by a carriage return.
func hl7Msg(segments ...string) []byte {
	return []byte(strings.Join(segments, "\r") + "\r")
}

// withField returns segment seg with field n set to v, padding with empty
// fields: withField("PV1|1|I", 19, "V1") sets PV1-19.
func withField(seg string, n int, v string) string {
	parts := strings.Split(seg, "|")
	for len(parts) <= n {
		parts = append(parts, "")
	}
	parts[n] = v
	return strings.Join(parts, "|")
}

// controlIDOf returns MSH-10 of a message.
func controlIDOf(t *testing.T, raw []byte) string {
	t.Helper()
	m, err := hl7.Parse(raw)
	if err != nil {
		t.Fatalf("parse test message: %v", err)
	}
	id, _ := m.Get("MSH-10")
	return id
}

// sendAA sends each message on one connection, in order, and requires an
// AA naming it: the listener has stored it and queued it for the router.
func sendAA(t *testing.T, addr string, msgs ...[]byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout+time.Duration(len(msgs))*100*time.Millisecond)
	defer cancel()
	c, err := mllp.Dial(ctx, addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	for _, raw := range msgs {
		cid := controlIDOf(t, raw)
		ack, err := c.Send(ctx, raw)
		if err != nil {
			t.Fatalf("send %s: %v", cid, err)
		}
		if code, msa2 := msaOf(ack); code != "AA" || msa2 != cid {
			t.Fatalf("send %s: answered %s/%s (%q), want AA/%s", cid, code, msa2, ack, cid)
		}
	}
}

// --- database ---

// drained reports whether the router has applied everything: the outbox
// is empty and every accepted message has its routing outcome.
func drained(t *testing.T, db *pgxpool.Pool) (bool, string) {
	t.Helper()
	var outbox, accepted, routed int
	queryRow(t, db, `SELECT (SELECT count(*) FROM outbox),
			(SELECT count(*) FROM messages WHERE status = 'accepted'),
			(SELECT count(*) FROM message_routing)`, nil, &outbox, &accepted, &routed)
	return outbox == 0 && routed == accepted,
		fmt.Sprintf("%d outbox rows, %d of %d accepted messages routed", outbox, routed, accepted)
}

// waitDrained waits up to d for the router to apply everything stored.
func waitDrained(t *testing.T, db *pgxpool.Pool, d time.Duration) {
	t.Helper()
	start := time.Now()
	eventually(t, d, "the router to drain the outbox", func() (bool, string) { return drained(t, db) })
	t.Logf("outbox drained in %v", time.Since(start).Round(time.Millisecond))
}

// messageID returns the id of the accepted message with a control ID.
func messageID(t *testing.T, db *pgxpool.Pool, controlID string) uuid.UUID {
	t.Helper()
	var id uuid.UUID
	queryRow(t, db, `SELECT id FROM messages WHERE control_id = $1 AND status = 'accepted'`, []any{controlID}, &id)
	return id
}

// eventRec is an events row, with the control ID of its message.
type eventRec struct {
	Seq           int64
	ID            uuid.UUID
	Type          string
	OccurredAt    time.Time
	RecordedAt    time.Time
	MessageID     uuid.UUID
	ControlID     string
	PatientID     string // "" for NULL
	PatientKey    string
	EncounterID   string
	Source        string
	Route         string
	SchemaVersion int
	Payload       json.RawMessage
}

// events returns the events matching a condition on e (events) or m
// (messages), in seq order.
func events(t *testing.T, db *pgxpool.Pool, where string, args ...any) []eventRec {
	t.Helper()
	if where == "" {
		where = "true"
	}
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	rows, err := db.Query(ctx, `SELECT e.seq, e.id, e.type, e.occurred_at, e.recorded_at, e.message_id, m.control_id,
			coalesce(e.patient_id, ''), coalesce(e.patient_key, ''), coalesce(e.encounter_id, ''),
			e.source, e.route, e.schema_version, e.payload
		FROM events e JOIN messages m ON m.id = e.message_id
		WHERE `+where+` ORDER BY e.seq`, args...)
	if err != nil {
		t.Fatalf("query events: %v", err)
	}
	defer rows.Close()
	var out []eventRec
	for rows.Next() {
		var e eventRec
		if err := rows.Scan(&e.Seq, &e.ID, &e.Type, &e.OccurredAt, &e.RecordedAt, &e.MessageID, &e.ControlID,
			&e.PatientID, &e.PatientKey, &e.EncounterID, &e.Source, &e.Route, &e.SchemaVersion, &e.Payload); err != nil {
			t.Fatalf("scan events: %v", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("query events: %v", err)
	}
	return out
}

// payloadString returns a top-level string of an event's payload, "" when
// it is absent or null.
func (e eventRec) payloadString(key string) string {
	var m map[string]any
	json.Unmarshal(e.Payload, &m)
	s, _ := m[key].(string)
	return s
}

// routing is a message_routing row.
type routing struct {
	Status   string
	Routes   []string
	Events   int
	Warnings int
	Attempts int
	Error    string
}

func routingOf(t *testing.T, db *pgxpool.Pool, controlID string) routing {
	t.Helper()
	var r routing
	queryRow(t, db, `SELECT r.status, r.routes, r.events, jsonb_array_length(r.warnings), r.attempts, coalesce(r.error, '')
		FROM message_routing r JOIN messages m ON m.id = r.message_id WHERE m.control_id = $1`, []any{controlID},
		&r.Status, &r.Routes, &r.Events, &r.Warnings, &r.Attempts, &r.Error)
	return r
}

// observationRow is an observations row (per-patient state).
type observationRow struct {
	ObservationKey string
	EventID        uuid.UUID
	Parameter      string
	Code           string
	Value          string // value_numeric as text, else value_text
	Unit           string
	Status         string
	ObservedAt     time.Time
}

// observationsOf returns a patient's observations, newest first.
func observationsOf(t *testing.T, db *pgxpool.Pool, patientKey string) []observationRow {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	rows, err := db.Query(ctx, `SELECT observation_key, event_id, coalesce(parameter, ''), code,
			coalesce(value_numeric::text, value_text, ''), coalesce(unit, ''), status, observed_at
		FROM observations WHERE patient_key = $1 ORDER BY observed_at DESC, code`, patientKey)
	if err != nil {
		t.Fatalf("query observations: %v", err)
	}
	defer rows.Close()
	var out []observationRow
	for rows.Next() {
		var o observationRow
		if err := rows.Scan(&o.ObservationKey, &o.EventID, &o.Parameter, &o.Code, &o.Value, &o.Unit, &o.Status, &o.ObservedAt); err != nil {
			t.Fatalf("scan observations: %v", err)
		}
		out = append(out, o)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("query observations: %v", err)
	}
	return out
}

// patientRow is a patients row (administrative state).
type patientRow struct {
	PatientID, EncounterID, Status, Location, LastEventType string
	LastEventAt                                             time.Time
	LastEventID                                             uuid.UUID
}

func patientOf(t *testing.T, db *pgxpool.Pool, patientKey string) patientRow {
	t.Helper()
	var p patientRow
	queryRow(t, db, `SELECT patient_id, coalesce(encounter_id, ''), coalesce(status, ''), coalesce(location, ''),
			coalesce(last_event_type, ''), last_event_at, last_event_id
		FROM patients WHERE patient_key = $1`, []any{patientKey},
		&p.PatientID, &p.EncounterID, &p.Status, &p.Location, &p.LastEventType, &p.LastEventAt, &p.LastEventID)
	return p
}

// --- exactly once ---

// checkExactlyOnce checks the router's end state after a disturbed run:
// the outbox is empty; every accepted message has one routing outcome,
// routed; each message has exactly the events it should (want, by control
// ID) and the routing row counts them; no event ID, and no (message, type,
// observation) appears twice. It returns the number of events.
func checkExactlyOnce(t *testing.T, db *pgxpool.Pool, want map[string]int) int {
	t.Helper()
	if n := count(t, db, `SELECT count(*) FROM outbox`); n != 0 {
		t.Errorf("%d rows left in the outbox", n)
	}
	if n := count(t, db, `SELECT count(*) FROM messages m WHERE m.status = 'accepted'
			AND NOT EXISTS (SELECT 1 FROM message_routing r WHERE r.message_id = m.id)`); n != 0 {
		t.Errorf("%d accepted messages have no routing outcome: lost", n)
	}
	if n := count(t, db, `SELECT count(*) FROM message_routing WHERE status <> 'routed'`); n != 0 {
		t.Errorf("%d messages not routed (unrouted or dead-lettered)", n)
	}
	if n := count(t, db, `SELECT count(*) - count(DISTINCT id) FROM events`); n != 0 {
		t.Errorf("%d duplicate event IDs", n)
	}
	if n := count(t, db, `SELECT count(*) FROM (SELECT 1 FROM events
			GROUP BY message_id, type, payload->>'observation_key' HAVING count(*) > 1) d`); n != 0 {
		t.Errorf("%d (message, type, observation_key) appear more than once: duplicated events", n)
	}
	if n := count(t, db, `SELECT count(*) FROM message_routing r
			WHERE r.events <> (SELECT count(*) FROM events e WHERE e.message_id = r.message_id)`); n != 0 {
		t.Errorf("%d routing rows whose event count differs from the events written", n)
	}
	got := countsBy(t, db, "count events per message", `SELECT m.control_id, count(e.seq) FROM messages m LEFT JOIN events e ON e.message_id = m.id
		WHERE m.status = 'accepted' GROUP BY m.control_id`)
	total, wrong := 0, 0
	for cid, w := range want {
		total += w
		if g, ok := got[cid]; !ok || g != w {
			wrong++
			if wrong <= 10 {
				t.Errorf("%s: %d events (stored: %v), want %d", cid, g, ok, w)
			}
		}
	}
	for cid := range got {
		if _, ok := want[cid]; !ok {
			t.Errorf("unexpected message %s stored", cid)
		}
	}
	if wrong > 10 {
		t.Errorf("... %d messages in all with the wrong number of events", wrong)
	}
	n := count(t, db, `SELECT count(*) FROM events`)
	if n != total {
		t.Errorf("%d events, want %d", n, total)
	}
	return n
}

// checkPatientOrder checks promise 4 for every patient: its events, in seq
// order, come from its messages in the order the listener stored them
// (received_at, the outbox order of one sender's sequential messages), and
// the events of one message are contiguous. seqOf gives a message's
// position in its patient's stream as the test sent it (from its control
// ID). It returns how many patients were checked.
func checkPatientOrder(t *testing.T, db *pgxpool.Pool, seqOf func(controlID string) int) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	// The messages of each patient in storage order.
	rows, err := db.Query(ctx, `SELECT patient_key, control_id FROM messages
		WHERE status = 'accepted' AND patient_key IS NOT NULL ORDER BY patient_key, received_at, id`)
	if err != nil {
		t.Fatalf("query messages: %v", err)
	}
	stored := map[string][]string{}
	for rows.Next() {
		var pk, cid string
		if err := rows.Scan(&pk, &cid); err != nil {
			t.Fatalf("scan: %v", err)
		}
		stored[pk] = append(stored[pk], cid)
	}
	rows.Close()
	// The messages of each patient in event (seq) order, consecutive
	// events of one message collapsed.
	applied := map[string][]string{}
	for _, e := range events(t, db, "") {
		l := applied[e.PatientKey]
		if len(l) == 0 || l[len(l)-1] != e.ControlID {
			applied[e.PatientKey] = append(l, e.ControlID)
		}
	}
	bad := 0
	keys := make([]string, 0, len(stored))
	for pk := range stored {
		keys = append(keys, pk)
	}
	sort.Strings(keys)
	for _, pk := range keys {
		want := stored[pk]
		for i := 1; i < len(want); i++ {
			if seqOf(want[i]) <= seqOf(want[i-1]) {
				t.Errorf("%s: stored %s after %s: the senders' order was not kept at the listener", pk, want[i], want[i-1])
			}
		}
		if got := applied[pk]; !reflect.DeepEqual(got, want) {
			bad++
			if bad <= 5 {
				t.Errorf("%s: events in seq order come from messages\n  %v\nwant (storage order)\n  %v", pk, got, want)
			}
		}
	}
	if bad > 5 {
		t.Errorf("... %d patients in all out of order", bad)
	}
	return len(keys)
}

// laneOwners returns how many lanes each router holds with an unexpired
// lease.
func laneOwners(t *testing.T, db *pgxpool.Pool) map[string]int {
	t.Helper()
	return countsBy(t, db, "query router_lanes", `SELECT owner, count(*) FROM router_lanes
		WHERE owner IS NOT NULL AND lease_expires_at > now() GROUP BY owner`)
}

// countsBy runs a query of (key, count) rows and returns the counts by
// key; what names the query in a failure.
func countsBy(t *testing.T, db *pgxpool.Pool, what, sql string, args ...any) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	rows, err := db.Query(ctx, sql, args...)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var key string
		var n int
		if err := rows.Scan(&key, &n); err != nil {
			t.Fatalf("%s: scan: %v", what, err)
		}
		out[key] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return out
}

// --- JSON ---

// jsonSubset compares got with want, where want may leave keys out: every
// key of a want object must be in got with a matching value; arrays match
// item for item; null matches null only. It returns the differences, each
// with its path.
func jsonSubset(path string, want, got any) []string {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: got %s, want an object", path, show(got))}
		}
		var diffs []string
		keys := make([]string, 0, len(w))
		for k := range w {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			gv, present := g[k]
			if !present {
				diffs = append(diffs, fmt.Sprintf("%s.%s: missing, want %s", path, k, show(w[k])))
				continue
			}
			diffs = append(diffs, jsonSubset(path+"."+k, w[k], gv)...)
		}
		return diffs
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return []string{fmt.Sprintf("%s: got %s, want %s", path, show(got), show(want))}
		}
		var diffs []string
		for i := range w {
			diffs = append(diffs, jsonSubset(fmt.Sprintf("%s[%d]", path, i), w[i], g[i])...)
		}
		return diffs
	default:
		if !reflect.DeepEqual(want, got) {
			return []string{fmt.Sprintf("%s: got %s, want %s", path, show(got), show(want))}
		}
		return nil
	}
}

func show(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// payloadDiff compares an event's payload with a JSON subset.
func payloadDiff(t *testing.T, payload []byte, want string) []string {
	t.Helper()
	var w, g any
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad expected payload %s: %v", want, err)
	}
	if err := json.Unmarshal(payload, &g); err != nil {
		return []string{fmt.Sprintf("payload is not JSON: %v", err)}
	}
	return jsonSubset("payload", w, g)
}

// Message builders for the router tests. Times are HL7 times with an
// offset (20260312100000+0000), so that no route time zone applies.

// adtMsg is an ADT of one patient (GENHOSP MRN mrn) at a location, its
// clinical time in EVN-2.
func adtMsg(cid, trigger, mrn, when, location string) []byte {
	return hl7Msg("MSH|^~\\&|PAS|GENHOSP|AORTA|AORTA|"+when+"||ADT^"+trigger+"|"+cid+"|P|2.5.1",
		"EVN|"+trigger+"|"+when,
		"PID|1||"+mrn+"^^^GENHOSP^MR",
		"PV1|1|I|"+location)
}

// hrMsg is a nursing heart rate (route vitals) in order filler, observed
// at when, with result status status (OBX-11). Its event key is obx/4.
func hrMsg(cid, mrn, filler, when, value, status string) []byte {
	return hl7Msg("MSH|^~\\&|EOBS|WARD7|AORTA|AORTA|"+when+"||ORU^R01^ORU_R01|"+cid+"|P|2.5.1",
		"PID|1||"+mrn+"^^^GENHOSP^MR",
		"OBR|1||"+filler+"^EOBS|NEWS2^NEWS2 observation set^L|||"+when,
		"OBX|1|NM|8867-4^Heart rate^LN||"+value+"|/min|||||"+status+"|||"+when)
}

// lactateMsg is a laboratory lactate (route lab) in order filler. Its
// event key is obx/4.
func lactateMsg(cid, mrn, filler, when, value, status string) []byte {
	return hl7Msg("MSH|^~\\&|LIMS|PATHLAB|AORTA|AORTA|"+when+"||ORU^R01^ORU_R01|"+cid+"|P|2.5.1",
		"PID|1||"+mrn+"^^^GENHOSP^MR",
		"OBR|1||"+filler+"^LIMS|2524-7^Lactate^LN|||"+when,
		"OBX|1|SN|2524-7^Lactate^LN||"+value+"|mmol/L|0.5-2.2||||"+status)
}

// deviceHRMsg is an IHE PCD-01 pulse rate (route monitors) of one device
// metric observed at when; its observation key includes the time.
func deviceHRMsg(cid, mrn, when, value string) []byte {
	return hl7Msg("MSH|^~\\&|GATEWAY|ICU|AORTA|AORTA|"+when+"||ORU^R01^ORU_R01|"+cid+"|P|2.6",
		"PID|||"+mrn+"^^^GENHOSP^MR",
		"OBR|1|PL1^GATEWAY|FL1^GATEWAY|69837^MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS^MDC|||"+when,
		"OBX|1||69837^MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS^MDC|1.0.0.0|||||||X|||"+when+"||||AABBCCDDEEFF0011^EUI-64",
		"OBX|2|NM|149546^MDC_PULS_RATE_NON_INV^MDC|1.1.1.149546|"+value+"|264864^MDC_DIM_BEAT_PER_MIN^MDC|||||R")
}

// checkStoredOnceRouted is checkAllStoredOnce for a run with a router:
// the router consumes the outbox, so instead of an outbox row each
// message must have its routing outcome (checked by checkExactlyOnce).
// Every message got its AA and is stored exactly once, byte for byte.
func checkStoredOnceRouted(t *testing.T, db *pgxpool.Pool, msgs []*tracked) {
	t.Helper()
	stored := storedByControlID(t, db)
	for _, m := range msgs {
		if _, ok := m.firstAA(); !ok {
			h := m.history()
			t.Errorf("%s: never ACKed after %d attempts (last: %+v)", m.controlID, len(h), last(h))
			continue
		}
		rows := stored[m.controlID]
		if len(rows) != 1 || !bytes.Equal(rows[0].Raw, m.raw) || rows[0].Status != "accepted" {
			t.Errorf("%s: %d rows in messages, want 1 accepted with the bytes sent", m.controlID, len(rows))
		}
	}
}

// poll is eventually without the failure: it reports whether cond held
// within d, and cond's last explanation.
func poll(d time.Duration, cond func() (bool, string)) (bool, string) {
	deadline := time.Now().Add(d)
	for {
		ok, why := cond()
		if ok || time.Now().After(deadline) {
			return ok, why
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// diagnose describes a router that does not make progress: what its
// readiness endpoint claims, and where its goroutines wait in Aorta's code
// (a SIGQUIT stack dump, which ends the process).
func (r *routerProc) diagnose(t *testing.T) {
	t.Helper()
	if r.hasExited() {
		return
	}
	code, body, err := httpGet(r.HTTPAddr, "/readyz")
	t.Logf("router %s not making progress; GET /readyz: %d %s %v", r.ID, code, strings.TrimSpace(body), err)
	r.stopping = syscall.SIGQUIT
	r.signal(syscall.SIGQUIT)
	if !r.waitExit(stopTimeout) {
		r.signal(syscall.SIGKILL)
		r.waitExit(stopTimeout)
	}
	// A goroutine's frames, innermost first: keep the ones in Aorta's
	// packages, each with its file and line.
	r.log.mu.Lock()
	lines := append([]string(nil), r.log.lines...)
	r.log.mu.Unlock()
	var stacks []string
	var cur []string
	flush := func() {
		if len(cur) > 0 {
			stacks = append(stacks, strings.Join(cur, " <- "))
		}
		cur = nil
	}
	for i, l := range lines {
		switch {
		case strings.HasPrefix(l, "goroutine "):
			flush()
		case strings.Contains(l, "aorta/pkg/") && i+1 < len(lines):
			fn := l
			if j := strings.Index(fn, "aorta/pkg/"); j >= 0 {
				fn = fn[j+len("aorta/pkg/"):]
			}
			if j := strings.IndexByte(fn, '('); j > 0 && strings.Contains(fn[j:], ")") {
				fn = fn[:strings.LastIndexByte(fn, '(')]
			}
			loc := strings.TrimSpace(lines[i+1])
			if j := strings.Index(loc, "/pkg/"); j >= 0 {
				loc = loc[j+len("/pkg/"):]
			}
			if j := strings.IndexByte(loc, ' '); j > 0 {
				loc = loc[:j]
			}
			cur = append(cur, fn+" ("+loc+")")
		}
	}
	flush()
	t.Logf("router %s goroutines in Aorta's code when it was stopped with SIGQUIT:\n  %s", r.ID, strings.Join(stacks, "\n  "))
}
