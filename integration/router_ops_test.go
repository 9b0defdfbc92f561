package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/aortahealth/aorta/internal/pgtest"
)

// What operators do with the router: dead letters, replay, reloading
// routes, and its admin endpoints.

// TestRouterDeadLetters sends messages that are invalid for their route
// among valid ones: each is dead-lettered at once with a readable reason
// that quotes no patient data, while every other message, the poisoned
// patient's later ones included, is routed.
func TestRouterDeadLetters(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t)
	db := openDB(t, dbURL)
	l := startListener(t, dbURL)
	r := startRouter(t, dbURL, routesFile(t, "routes.yaml"), "--max-attempts", "2", "--retry-backoff", "100ms")

	poison := []struct {
		raw              []byte
		route, reason    string
		patientKey       string // of the outbox row, "" for none
		forbiddenInError string // a value of the message the reason must not quote
	}{
		{hl7Msg("MSH|^~\\&|PAS|GENHOSP|AORTA|AORTA|20260312080000+0000||ADT^A01^ADT_A01|DL-NOPID|P|2.5.1",
			"EVN|A01|20260312080000+0000", "PID|1||^^^GENHOSP^MR||DLNAME^NOID", "PV1|1|I|WARD1"),
			"adt", "PID[1]-3: PID-3 patient identifier missing", "", "DLNAME"},
		{hl7Msg("MSH|^~\\&|PAS|GENHOSP|AORTA|AORTA|20260312080000+0000||ADT^A24^ADT_A24|DL-A24|P|2.5.1",
			"EVN|A24|20260312080000+0000", "PID|1||DL02^^^GENHOSP^MR", "PID|2||DL02B^^^GENHOSP^MR"),
			"adt", "MSH-9.2: trigger A24 is not mapped by the adt mapping", "GENHOSP/DL02", "DL02"},
		{hrMsg("DL-BADHR", "DL03", "V1", "20260312080000+0000", "tachy", "F"),
			"vitals", "OBX[1]-5: OBX-5 is not a number, as parameter heart_rate requires", "GENHOSP/DL03", "tachy"},
	}
	var msgs [][]byte
	for _, p := range poison {
		msgs = append(msgs, p.raw)
	}
	// The poisoned patient DL03 and a healthy one keep sending.
	for i := range 10 {
		msgs = append(msgs, hrMsg(fmt.Sprintf("DL-OK-%d", i), "DL01", fmt.Sprintf("V%d", i),
			fmt.Sprintf("202603120%d0000+0000", i%10), fmt.Sprint(70+i), "F"))
	}
	msgs = append(msgs, hrMsg("DL-DL03-OK", "DL03", "V2", "20260312090000+0000", "88", "F"))
	sendAA(t, l.MLLPAddr, msgs...)
	waitDrained(t, db, drainTimeout)

	for _, p := range poison {
		cid := controlIDOf(t, p.raw)
		rt := routingOf(t, db, cid)
		if rt.Status != "dead_lettered" || strings.Join(rt.Routes, ",") != p.route || rt.Events != 0 || !strings.Contains(rt.Error, p.reason) {
			t.Errorf("%s: routing %+v, want dead_lettered on route %s, no events, error naming %q", cid, rt, p.route, p.reason)
		}
		var route, reason, patientKey string
		var attempts int
		var resolved bool
		queryRow(t, db, `SELECT coalesce(d.route, ''), d.error, coalesce(d.patient_key, ''), d.attempts, d.resolved_at IS NOT NULL
			FROM dead_letters d JOIN messages m ON m.id = d.message_id WHERE m.control_id = $1`, []any{cid},
			&route, &reason, &patientKey, &attempts, &resolved)
		if route != p.route || !strings.Contains(reason, p.reason) || patientKey != p.patientKey || attempts != 1 || resolved {
			t.Errorf("%s: dead letter route %q, patient %q, attempts %d, resolved %v, error %q; want %s, %q, 1, open, naming %q",
				cid, route, patientKey, attempts, resolved, reason, p.route, p.patientKey, p.reason)
		}
		if strings.Contains(reason, p.forbiddenInError) {
			t.Errorf("%s: dead-letter reason %q quotes the message (%q)", cid, reason, p.forbiddenInError)
		}
		if n := len(events(t, db, "m.control_id = $1", cid)); n != 0 {
			t.Errorf("%s: %d events written for a dead-lettered message", cid, n)
		}
		t.Logf("%s: dead-lettered on %s: %s", cid, route, reason)
	}
	if n := count(t, db, `SELECT count(*) FROM message_routing WHERE status = 'routed' AND events = 1`); n != 11 {
		t.Errorf("%d messages routed with their event, want 11 (the healthy patient's 10 and the poisoned patient's next)", n)
	}
	if n := count(t, db, `SELECT count(*) FROM dead_letters`); n != len(poison) {
		t.Errorf("%d dead letters, want %d", n, len(poison))
	}
	m := scrape(t, r.HTTPAddr)
	for series, want := range map[string]float64{
		"aorta_router_dead_letters":                                             3,
		`aorta_router_messages_total{status="dead_lettered"}`:                   3,
		`aorta_router_messages_total{status="routed"}`:                          11,
		`aorta_router_events_total{route="vitals",type="observation.recorded"}`: 11,
	} {
		if got := m.sum(series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	t.Logf("%d messages sent: 3 dead-lettered at once with their reasons, 11 routed", len(msgs))
	checkNoPHI(t, "router", r.log, "DLNAME", "DL01", "DL02", "DL03", "tachy")
}

// runRouterCommand runs a router subcommand (replay, check) to its end and
// returns its output.
func runRouterCommand(t *testing.T, dbURL string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, routerBin, args...)
	cmd.Env = listenerEnv(dbURL)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("router %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// eventSet returns every event ID with its message's control ID.
func eventSet(t *testing.T, db *pgxpool.Pool) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, e := range events(t, db, "") {
		out[e.ID.String()] = e.ControlID
	}
	return out
}

// TestRouterReplay replays stored messages with the real `router replay`
// while a router runs: a replay through unchanged routes re-applies the
// messages and adds no event; after the routes gain a mapping, a replay
// adds exactly the events the new mapping produces.
func TestRouterReplay(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t)
	db := openDB(t, dbURL)
	l := startListener(t, dbURL)
	routes := copyRoutes(t, "reload_v1.yaml")
	r := startRouter(t, dbURL, routes)

	var msgs [][]byte
	for i := range 5 {
		mrn := fmt.Sprintf("RP%02d", i)
		msgs = append(msgs,
			adtMsg("RP-ADT-"+mrn, "A01", mrn, "20260312080000+0000", "WARD1^1^1"),
			hrMsg("RP-HR-"+mrn, mrn, "V1", "20260312090000+0000", fmt.Sprint(80+i), "F"))
		if i < 3 {
			msgs = append(msgs, lactateMsg("RP-LAB-"+mrn, mrn, "L1", "20260312093000+0000", "1.5", "F"))
		}
	}
	sendAA(t, l.MLLPAddr, msgs...)
	waitDrained(t, db, drainTimeout)
	before := eventSet(t, db)
	if len(before) != 10 {
		t.Fatalf("%d events before the replay, want 10 (5 admissions, 5 heart rates; lab results unrouted)", len(before))
	}
	if n := count(t, db, `SELECT count(*) FROM message_routing WHERE status = 'unrouted'`); n != 3 {
		t.Fatalf("%d unrouted messages, want the 3 lab results", n)
	}

	// Replay through the same routes: applied again, nothing added.
	replayStart := time.Now()
	out := runRouterCommand(t, dbURL, "replay", "--type", "ADT", "--database-url", dbURL, "--db-max-conns", "2")
	if !strings.Contains(out, "5 messages queued for replay") {
		t.Fatalf("router replay --type ADT printed %q, want 5 messages queued", out)
	}
	waitDrained(t, db, drainTimeout)
	var reapplied int
	queryRow(t, db, `SELECT count(*) FROM message_routing r JOIN messages m ON m.id = r.message_id
		WHERE m.message_type = 'ADT' AND r.routed_at >= $1`, []any{replayStart.Add(-time.Second)}, &reapplied)
	after := eventSet(t, db)
	if len(after) != len(before) {
		t.Errorf("%d events after replaying through the same routes, want %d: a replay duplicated or lost events", len(after), len(before))
	}
	for id := range before {
		if _, ok := after[id]; !ok {
			t.Errorf("event %s (%s) gone after the replay", id, before[id])
		}
	}
	if reapplied != 5 {
		t.Errorf("%d ADT messages re-applied by the replay (routed_at after it), want 5", reapplied)
	}
	t.Logf("replay --type ADT: 5 queued, 5 re-applied, events %d before and %d after", len(before), len(after))

	// Add the lab route, reload, replay the results: only the new events.
	writeRoutes(t, routes, "reload_v2.yaml")
	if code, body := httpPost(t, r.APIAddr, "/api/v1/routes/reload", apiToken(t, dbURL, "analyst.replay", "analyst")); code != http.StatusOK {
		t.Fatalf("POST /api/v1/routes/reload: %d %s", code, body)
	}
	out = runRouterCommand(t, dbURL, "replay", "--type", "ORU", "--database-url", dbURL, "--db-max-conns", "2")
	if !strings.Contains(out, "8 messages queued for replay") {
		t.Fatalf("router replay --type ORU printed %q, want 8 messages queued", out)
	}
	waitDrained(t, db, drainTimeout)
	final := eventSet(t, db)
	added := 0
	for id, cid := range final {
		if _, old := before[id]; old {
			continue
		}
		added++
		if !strings.HasPrefix(cid, "RP-LAB-") {
			t.Errorf("replay after adding the lab route added event %s for %s, want events of lab results only", id, cid)
		}
	}
	if added != 3 || len(final) != len(before)+3 {
		t.Errorf("replay after adding the lab route: %d events added (%d in all), want 3 (13)", added, len(final))
	}
	for i := range 3 {
		cid := fmt.Sprintf("RP-LAB-RP%02d", i)
		if rt := routingOf(t, db, cid); rt.Status != "routed" || strings.Join(rt.Routes, ",") != "lab" || rt.Events != 1 {
			t.Errorf("%s after the replay: %+v, want routed by lab with 1 event", cid, rt)
		}
	}
	checkExactlyOnce(t, db, map[string]int{
		"RP-ADT-RP00": 1, "RP-ADT-RP01": 1, "RP-ADT-RP02": 1, "RP-ADT-RP03": 1, "RP-ADT-RP04": 1,
		"RP-HR-RP00": 1, "RP-HR-RP01": 1, "RP-HR-RP02": 1, "RP-HR-RP03": 1, "RP-HR-RP04": 1,
		"RP-LAB-RP00": 1, "RP-LAB-RP01": 1, "RP-LAB-RP02": 1,
	})
	// The ACK-to-event latency describes messages as they arrive, not
	// replays.
	if got := scrape(t, r.HTTPAddr).sum("aorta_router_ack_to_event_seconds_count"); got != float64(len(msgs)) {
		t.Errorf("aorta_router_ack_to_event_seconds_count = %v, want %d (replays are not counted)", got, len(msgs))
	}
	t.Logf("replay --type ORU after adding the lab route: 8 queued, %d events added (the 3 lab results), none duplicated", added)
}

// httpPost posts an empty body to an API URL with a bearer token.
func httpPost(t *testing.T, addr, path, token string) (int, string) {
	t.Helper()
	c := http.Client{Timeout: ioTimeout}
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestRouterReload reloads routes.yaml with SIGHUP and through the API:
// a valid file changes how new messages are routed; a broken one is
// refused, with its file, line and column, and the running routes stay.
func TestRouterReload(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t)
	db := openDB(t, dbURL)
	l := startListener(t, dbURL)
	routes := copyRoutes(t, "reload_v1.yaml")
	r := startRouter(t, dbURL, routes)
	n := 0
	route := func(raw []byte) routing {
		t.Helper()
		sendAA(t, l.MLLPAddr, raw)
		eventually(t, drainTimeout, "the router to apply it", func() (bool, string) { return drained(t, db) })
		return routingOf(t, db, controlIDOf(t, raw))
	}
	lab := func() []byte {
		n++
		return lactateMsg(fmt.Sprintf("RL-LAB-%d", n), "RL01", fmt.Sprintf("L%d", n), "20260312090000+0000", "1.5", "F")
	}
	waitReloads := func(result string, want float64) {
		t.Helper()
		series := `aorta_router_route_reloads_total{result="` + result + `"}`
		eventually(t, ioTimeout, fmt.Sprintf("%s = %v", series, want), func() (bool, string) {
			got := scrape(t, r.HTTPAddr).sum(series)
			return got == want, fmt.Sprint(got)
		})
	}

	if rt := route(lab()); rt.Status != "unrouted" {
		t.Fatalf("lab result before the reload: %+v, want unrouted", rt)
	}

	writeRoutes(t, routes, "reload_v2.yaml")
	r.signal(syscall.SIGHUP)
	waitReloads("ok", 1)
	if rt := route(lab()); rt.Status != "routed" || strings.Join(rt.Routes, ",") != "lab" || rt.Events != 1 {
		t.Fatalf("lab result after SIGHUP with the lab route: %+v, want routed by lab", rt)
	}
	t.Logf("SIGHUP with a valid file: reloaded, lab results now routed")

	writeRoutes(t, routes, "reload_broken.yaml")
	r.signal(syscall.SIGHUP)
	waitReloads("refused", 1)
	// The log names the file, line and column of each mistake.
	where := regexp.MustCompile(regexp.QuoteMeta(routes) + `:9:5: unknown key "mach"`)
	refused := r.log.records("routes reload refused")
	if len(refused) != 1 || !where.MatchString(fmt.Sprint(refused[0]["err"])) || refused[0]["file"] != routes {
		t.Errorf("refusal log records %v, want one naming %s:9:5", refused, routes)
	}
	if rt := route(lab()); rt.Status != "routed" || strings.Join(rt.Routes, ",") != "lab" {
		t.Errorf("lab result after a refused reload: %+v, want still routed by lab (the running routes stay)", rt)
	}
	if rt := route(adtMsg("RL-ADT-1", "A01", "RL01", "20260312100000+0000", "WARD1")); rt.Status != "routed" || rt.Events != 1 {
		t.Errorf("ADT after a refused reload: %+v, want routed", rt)
	}
	t.Logf("SIGHUP with a broken file: refused (%v), old routes still active", refused[0]["err"])

	analyst := apiToken(t, dbURL, "analyst.reload", "analyst")
	if code, _ := httpPost(t, r.APIAddr, "/api/v1/routes/reload", ""); code != http.StatusUnauthorized {
		t.Errorf("POST /api/v1/routes/reload without a token: %d, want 401", code)
	}
	code, body := httpPost(t, r.APIAddr, "/api/v1/routes/reload", analyst)
	var answer struct {
		Reloaded bool   `json:"reloaded"`
		Error    string `json:"error"`
		Routes   int    `json:"routes"`
	}
	json.Unmarshal([]byte(body), &answer)
	if code != http.StatusUnprocessableEntity || answer.Reloaded || !where.MatchString(answer.Error) {
		t.Errorf("POST /api/v1/routes/reload with a broken file: %d %s, want 422 naming %s:9:5", code, body, routes)
	}
	waitReloads("refused", 2)

	writeRoutes(t, routes, "reload_v1.yaml")
	code, body = httpPost(t, r.APIAddr, "/api/v1/routes/reload", analyst)
	answer = struct {
		Reloaded bool   `json:"reloaded"`
		Error    string `json:"error"`
		Routes   int    `json:"routes"`
	}{}
	json.Unmarshal([]byte(body), &answer)
	if code != http.StatusOK || !answer.Reloaded || answer.Routes != 2 {
		t.Errorf("POST /api/v1/routes/reload with a valid file: %d %s, want 200 with 2 routes", code, body)
	}
	waitReloads("ok", 2)
	code, routesBody := apiCall(t, r.APIAddr, http.MethodGet, "/api/v1/routes", analyst, "")
	names := fmt.Sprint(routesBody["routes"])
	if code != http.StatusOK || !strings.Contains(names, "name:adt") || strings.Contains(names, "name:lab") {
		t.Errorf("GET /api/v1/routes: %d %v, want the two routes of the file", code, routesBody)
	}
	if rt := route(lab()); rt.Status != "unrouted" {
		t.Errorf("lab result after reloading the file without the lab route: %+v, want unrouted", rt)
	}
	t.Logf("API reload: 422 for the broken file, 200 for a valid one; %d lab results and 1 ADT routed as the active routes said", n)
}

// TestRouterAdminEndpoints checks the router's liveness, readiness (the
// database and the notification connection; not ready while the database
// is unreachable) and metrics, and that a message stored while the router
// cannot reach the database is routed once it can.
func TestRouterAdminEndpoints(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t)
	db := openDB(t, dbURL)
	l := startListener(t, dbURL)
	proxy := startProxy(t, hostPort(t, dbURL))
	r := startRouter(t, withHost(t, dbURL, proxy.Addr()), routesFile(t, "routes.yaml"))
	t.Cleanup(proxy.close)

	if code, body, err := httpGet(r.HTTPAddr, "/healthz"); err != nil || code != http.StatusOK {
		t.Errorf("GET /healthz: %d %q %v, want 200", code, body, err)
	}
	eventually(t, ioTimeout, "/readyz 200 with database and notifications ok", func() (bool, string) {
		code, body, err := httpGet(r.HTTPAddr, "/readyz")
		return err == nil && code == http.StatusOK && strings.Contains(body, `"database":"ok"`) && strings.Contains(body, `"notifications":"ok"`), body
	})
	sendAA(t, l.MLLPAddr,
		adtMsg("AD-1", "A01", "AD01", "20260312080000+0000", "WARD1"),
		hrMsg("AD-2", "AD01", "V1", "20260312090000+0000", "80", "F"),
		hrMsg("AD-3", "AD02", "V1", "20260312090000+0000", "81", "F"))
	waitDrained(t, db, drainTimeout)
	eventually(t, ioTimeout, "the router's metrics", func() (bool, string) {
		m := scrape(t, r.HTTPAddr)
		var wrong []string
		for series, want := range map[string]float64{
			`aorta_router_events_total{route="adt",type="patient.admitted"}`:        1,
			`aorta_router_events_total{route="vitals",type="observation.recorded"}`: 2,
			`aorta_router_messages_total{status="routed"}`:                          3,
			"aorta_router_ack_to_event_seconds_count":                               3,
			"aorta_router_lanes_held":                                               64,
			"aorta_router_outbox_depth":                                             0,
			"aorta_router_outbox_oldest_age_seconds":                                0,
			"aorta_router_dead_letters":                                             0,
		} {
			if got := m.sum(series); got != want {
				wrong = append(wrong, fmt.Sprintf("%s = %v, want %v", series, got, want))
			}
		}
		for _, name := range []string{"aorta_router_batch_rows_count", "aorta_router_apply_seconds_count"} {
			if m.sum(name) < 1 {
				wrong = append(wrong, name+" < 1")
			}
		}
		return len(wrong) == 0, strings.Join(wrong, "; ")
	})
	t.Logf("/healthz, /readyz and /metrics: verified after 3 messages")

	proxy.Cut()
	down := time.Now()
	eventually(t, 15*time.Second, "/readyz 503 with the database unreachable", func() (bool, string) {
		code, body, err := httpGet(r.HTTPAddr, "/readyz")
		return err == nil && code == http.StatusServiceUnavailable && !strings.Contains(body, `"database":"ok"`), body
	})
	if code, _, _ := httpGet(r.HTTPAddr, "/healthz"); code != http.StatusOK {
		t.Errorf("GET /healthz with the database unreachable: %d, want 200", code)
	}
	// The listener still stores (its database connection is direct).
	sendAA(t, l.MLLPAddr, hrMsg("AD-4", "AD02", "V2", "20260312100000+0000", "82", "F"))
	if ok, _ := drained(t, db); ok {
		t.Errorf("AD-4 routed while the router could not reach the database")
	}
	proxy.Restore()
	up := time.Now()
	eventually(t, 15*time.Second, "/readyz 200 after the database came back", func() (bool, string) {
		code, body, err := httpGet(r.HTTPAddr, "/readyz")
		return err == nil && code == http.StatusOK, body
	})
	waitDrained(t, db, drainTimeout)
	if n := len(events(t, db, "m.control_id = 'AD-4'")); n != 1 {
		t.Errorf("AD-4, stored during the outage: %d events, want 1", n)
	}
	t.Logf("readiness 503 during a %v database cut, 200 %v after it; the message stored meanwhile was routed",
		up.Sub(down).Round(time.Millisecond), time.Since(up).Round(time.Millisecond))
}

// TestRouterPoisonMessageRetried sends a message that maps to events but
// that PostgreSQL cannot store (a visit number, PV1-19, of 8,000 random
// characters: too large for the btree index on events.encounter_id),
// between other messages of the same patient and of another one. The failing message is retried
// with backoff and dead-lettered after --max-attempts; meanwhile its
// patient's later messages wait (order), the other patient's do not; once
// it is dead-lettered its patient's stream moves on.
func TestRouterPoisonMessageRetried(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t)
	db := openDB(t, dbURL)
	l := startListener(t, dbURL)
	r := startRouter(t, dbURL, routesFile(t, "routes.yaml"),
		"--max-attempts", "3", "--retry-backoff", "300ms", "--poll-interval", "100ms")

	poisonDatabase(t, db)
	poison := unstorableMsg("PZ-POISON", "PZ01")
	msgs := [][]byte{poison}
	for i := range 3 {
		msgs = append(msgs, hrMsg(fmt.Sprintf("PZ-PZ01-%d", i), "PZ01", fmt.Sprintf("V%d", i+1), "20260312090000+0000", fmt.Sprint(80+i), "F"))
	}
	for i := range 10 {
		msgs = append(msgs, hrMsg(fmt.Sprintf("PZ-PZ02-%d", i), "PZ02", fmt.Sprintf("V%d", i), "20260312090000+0000", fmt.Sprint(70+i), "F"))
	}
	sendAA(t, l.MLLPAddr, msgs...)
	waitDrained(t, db, drainTimeout)

	rt := routingOf(t, db, "PZ-POISON")
	var deadAt time.Time
	var attempts int
	var reason string
	queryRow(t, db, `SELECT d.created_at, d.attempts, d.error FROM dead_letters d JOIN messages m ON m.id = d.message_id
		WHERE m.control_id = 'PZ-POISON'`, nil, &deadAt, &attempts, &reason)
	if rt.Status != "dead_lettered" || rt.Attempts != 3 || attempts != 3 || rt.Events != 0 {
		t.Errorf("poison message: routing %+v, dead letter after %d attempts; want dead_lettered after 3 attempts, no events", rt, attempts)
	}
	if strings.Contains(reason, poisonVisit) {
		t.Errorf("dead-letter reason quotes the value: %.200s", reason)
	}
	for _, e := range events(t, db, "m.control_id LIKE 'PZ-PZ01-%'") {
		if e.RecordedAt.Before(deadAt) {
			t.Errorf("%s (same patient, after the poison message) applied at %v, before the poison message was dead-lettered at %v", e.ControlID, e.RecordedAt, deadAt)
		}
	}
	for _, e := range events(t, db, "m.control_id LIKE 'PZ-PZ02-%'") {
		if !e.RecordedAt.Before(deadAt) {
			t.Errorf("%s (another patient) applied at %v, after the poison message was dead-lettered at %v: it waited", e.ControlID, e.RecordedAt, deadAt)
		}
	}
	if n := len(events(t, db, "m.control_id LIKE 'PZ-PZ0%'")); n != 13 {
		t.Errorf("%d events for the 13 healthy messages, want 13", n)
	}
	m := scrape(t, r.HTTPAddr)
	for series, want := range map[string]float64{
		`aorta_router_failures_total{result="retry"}`:         2,
		`aorta_router_failures_total{result="dead_letter"}`:   1,
		`aorta_router_messages_total{status="dead_lettered"}`: 1,
		"aorta_router_dead_letters":                           1,
	} {
		if got := m.sum(series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	t.Logf("poison message retried and dead-lettered after %d attempts (%.160s); PZ01's next 3 waited for it, PZ02's 10 did not", attempts, reason)
	checkNoPHI(t, "router", r.log, "PZ01", "PZ02", poisonVisit)
}

// poisonVisit is the visit number that poisonDatabase makes PostgreSQL
// refuse.
const poisonVisit = "POISON-VISIT"

// poisonDatabase makes this test's database refuse to store any event of
// the visit poisonVisit, with an error that is about the data and not a
// database outage: the router must retry the message, then dead-letter it.
// (Every input the engine can produce is storable, so the fault is
// injected here rather than found in a message.)
func poisonDatabase(t *testing.T, db *pgxpool.Pool) {
	t.Helper()
	_, err := db.Exec(context.Background(), `
		CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'injected fault: this visit cannot be stored'; END $$;
		CREATE TRIGGER refuse_poison BEFORE INSERT ON events
			FOR EACH ROW WHEN (NEW.encounter_id = '`+poisonVisit+`') EXECUTE FUNCTION refuse_poison();`)
	if err != nil {
		t.Fatalf("install the injected fault: %v", err)
	}
}

// unstorableMsg is a heart-rate result of the poisoned visit.
func unstorableMsg(cid, mrn string) []byte {
	return hl7Msg("MSH|^~\\&|EOBS|WARD7|AORTA|AORTA|20260312080000+0000||ORU^R01^ORU_R01|"+cid+"|P|2.5.1",
		"PID|1||"+mrn+"^^^GENHOSP^MR", withField("PV1|1|I|WARD1", 19, poisonVisit),
		"OBR|1||V0^EOBS|NEWS2^NEWS2 observation set^L|||20260312080000+0000",
		"OBX|1|NM|8867-4^Heart rate^LN||80|/min|||||F")
}

// TestRouterWaitsEndOnTime: a failed message is retried when its backoff
// ends (--retry-backoff, doubling), and a merge waiting for the prior
// patient's earlier messages is retried shortly after (docs/router.md),
// not at the next fallback poll, which here is 10 s away: nothing else
// wakes the router, as on a quiet night. The prior patient's failing
// message is dead-lettered after two attempts 200 ms apart; then the
// merge and the survivor's next message must follow within seconds.
func TestRouterWaitsEndOnTime(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t)
	db := openDB(t, dbURL)
	l := startListener(t, dbURL)
	poisonDatabase(t, db)
	poison := unstorableMsg("OT-POISON", "OTP01")
	sendAA(t, l.MLLPAddr, poison,
		hl7Msg("MSH|^~\\&|PAS|GENHOSP|AORTA|AORTA|20260312100000+0000||ADT^A40^ADT_A39|OT-A40|P|2.5.1",
			"EVN|A40|20260312100000+0000", "PID|1||OTS01^^^GENHOSP^MR", "MRG|OTP01^^^GENHOSP^MR"),
		hrMsg("OT-S-HR", "OTS01", "V1", "20260312110000+0000", "75", "F"))
	start := time.Now()
	r := startRouter(t, dbURL, routesFile(t, "routes.yaml"),
		"--poll-interval", "10s", "--retry-backoff", "200ms", "--max-attempts", "2")
	const bound = 5 * time.Second
	if ok, why := poll(bound, func() (bool, string) { return drained(t, db) }); !ok {
		m := scrape(t, r.HTTPAddr)
		t.Fatalf("%v after start the router had not finished a failing message (2 attempts 200 ms apart) and a merge waiting for it: %s; %v failed attempts so far; it waits for the 10 s poll",
			bound, why, m.sum("aorta_router_failures_total"))
	}
	t.Logf("failing message retried and dead-lettered, merge and the survivor's message applied %v after the router started", time.Since(start).Round(time.Millisecond))
	if rt := routingOf(t, db, "OT-POISON"); rt.Status != "dead_lettered" || rt.Attempts != 2 {
		t.Errorf("failing message: %+v, want dead_lettered after 2 attempts", rt)
	}
	m, hr := onlyEvent(t, db, "OT-A40"), onlyEvent(t, db, "OT-S-HR")
	if m.Seq > hr.Seq {
		t.Errorf("the survivor's message (seq %d) applied before the merge queued ahead of it (seq %d)", hr.Seq, m.Seq)
	}
}
