package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/aortahealth/aorta/internal/pgtest"
)

// retentionTables are the tables "router retention" reports, in order.
var retentionTables = []string{"alerts", "deliveries", "messages", "batches", "message_routing", "dead_letters", "observations",
	"events", "audit_log"}

// retentionCounts reads the per-table counts of a "router retention"
// report: its table's rows are "<table> <count> <oldest> <newest>".
func retentionCounts(t *testing.T, out string) map[string]int {
	t.Helper()
	got := map[string]int{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) != 4 {
			continue
		}
		for _, table := range retentionTables {
			if f[0] == table {
				n, err := strconv.Atoi(f[1])
				if err != nil {
					t.Fatalf("report line %q: %v", line, err)
				}
				got[table] = n
			}
		}
	}
	if len(got) != len(retentionTables) {
		t.Fatalf("report names %d of the %d tables:\n%s", len(got), len(retentionTables), out)
	}
	return got
}

// dryRunThenPass runs `router retention --dry-run` with flags, then the
// real pass: the dry run must report want and change nothing, and the pass
// must delete exactly what the dry run reported (audit_log less the pass's
// own row). It returns the two outputs.
func dryRunThenPass(t *testing.T, dbURL string, db *pgxpool.Pool, flags []string, want map[string]int) (dry, pass string) {
	t.Helper()
	before := rowCounts(t, db)
	out := runRouterCommand(t, dbURL, append([]string{"retention", "--dry-run"}, flags...)...)
	t.Logf("dry run:\n%s", out)
	if got := retentionCounts(t, out); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("dry run would delete %v, want %v", got, want)
	}
	if after := rowCounts(t, db); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("the dry run changed the tables: %v, was %v", after, before)
	}
	dry = out
	out = runRouterCommand(t, dbURL, append([]string{"retention"}, flags...)...)
	t.Logf("pass:\n%s", out)
	if got := retentionCounts(t, out); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("pass deleted %v, want %v (what the dry run said)", got, want)
	}
	after := rowCounts(t, db)
	for table, n := range before {
		gone := n - after[table]
		if table == "audit_log" {
			gone++ // the pass wrote its own audit row
		}
		if gone != want[table] {
			t.Errorf("%s: %d rows gone, want %d", table, gone, want[table])
		}
	}
	return dry, out
}

// rowCounts counts the rows of the retention tables.
func rowCounts(t *testing.T, db *pgxpool.Pool) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, table := range retentionTables {
		out[table] = count(t, db, `SELECT count(*) FROM `+table)
	}
	return out
}

// runRouterFailing runs a router subcommand that must fail, and returns
// its output.
func runRouterFailing(t *testing.T, dbURL string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, routerBin, args...)
	cmd.Env = listenerEnv(dbURL)
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("router %s succeeded, want it refused:\n%s", strings.Join(args, " "), out)
	}
	return string(out)
}

// TestRetention stores messages through the real listener and router,
// ages some of them by 100 days (received_at and what hangs off them),
// and runs the real "router retention": the dry run reports what the pass
// then deletes and changes nothing; the pass deletes the old routed
// messages with their events, observations, routing rows and their batch,
// keeps the old dead-lettered message and everything young, audits itself;
// a second pass deletes nothing. A policy that deletes audit rows before
// the messages they audit is refused, by the command and by serve at
// start. A router started with a retention policy runs passes by itself.
func TestRetention(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t)
	db := openDB(t, dbURL)
	l := startListener(t, dbURL)
	r := startRouter(t, dbURL, routesFile(t, "routes.yaml"))

	var old, young [][]byte
	for i := range 4 {
		old = append(old, hrMsg(fmt.Sprintf("RT-OLD-%d", i), "RT01", fmt.Sprintf("OLD%d", i), "20260312080000+0000", fmt.Sprint(70+i), "F"))
	}
	poison := hrMsg("RT-POISON", "RT02", "P1", "20260312080000+0000", "tachy", "F")
	for i := range 2 {
		young = append(young, hrMsg(fmt.Sprintf("RT-NEW-%d", i), "RT01", fmt.Sprintf("NEW%d", i), "20261126080000+0000", fmt.Sprint(80+i), "F"))
	}
	sendAA(t, l.MLLPAddr, append(append(old, poison), young...)...)
	batch, err := os.ReadFile(filepath.Join("testdata", "batch_three_oru.hl7"))
	if err != nil {
		t.Fatal(err)
	}
	send(t, l.MLLPAddr, batch)
	waitDrained(t, db, drainTimeout)
	r.stop(t) // nothing writes while the test ages rows

	// Age the old messages (the batch's too) and what the router wrote
	// for them, as if they had arrived 100 days ago.
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	oldIDs := `SELECT id FROM messages WHERE control_id LIKE 'RT-OLD-%' OR control_id LIKE 'B1-MSG-%' OR control_id = 'RT-POISON'`
	for _, sql := range []string{
		`UPDATE messages SET received_at = received_at - interval '100 days' WHERE id IN (` + oldIDs + `)`,
		`UPDATE batches SET received_at = received_at - interval '100 days'`,
		`UPDATE events SET recorded_at = recorded_at - interval '100 days' WHERE message_id IN (` + oldIDs + `)`,
		`UPDATE message_routing SET routed_at = routed_at - interval '100 days' WHERE message_id IN (` + oldIDs + `)`,
		`UPDATE dead_letters SET created_at = created_at - interval '100 days' WHERE message_id IN (` + oldIDs + `)`,
		`INSERT INTO audit_log (at, actor, action, target) VALUES (now() - interval '400 days', 'alice', 'message.view', 'x'),
			(now() - interval '100 days', 'alice', 'message.view', 'y')`,
	} {
		if _, err := db.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	oldEvents := count(t, db, `SELECT count(*) FROM events WHERE message_id IN (`+oldIDs+`)`)
	oldObservations := count(t, db, `SELECT count(*) FROM observations WHERE message_id IN (`+oldIDs+`)`)
	if oldEvents != 4 || oldObservations != 4 {
		t.Fatalf("the old messages have %d events and %d observations, want 4 each (one heart rate apiece)", oldEvents, oldObservations)
	}
	want := map[string]int{
		"alerts": 0, "deliveries": 0, "messages": 7, "batches": 1, "message_routing": 7, "dead_letters": 0,
		"observations": 4, "events": 4, "audit_log": 1,
	}

	flags := []string{"--retain-messages", "90d", "--retain-audit", "365d", "--retention-batch", "3", "--migrate=false"}
	dry, out := dryRunThenPass(t, dbURL, db, flags, want)
	if !strings.Contains(dry, "retention dry run: nothing was deleted") {
		t.Errorf("dry-run output does not say it deleted nothing:\n%s", dry)
	}
	for cid, n := range map[string]int{"RT-OLD-%": 0, "B1-MSG-%": 0, "RT-POISON": 1, "RT-NEW-%": 2} {
		if got := count(t, db, `SELECT count(*) FROM messages WHERE control_id LIKE $1`, cid); got != n {
			t.Errorf("messages %s: %d, want %d", cid, got, n)
		}
	}
	if got := count(t, db, `SELECT count(*) FROM events e JOIN messages m ON m.id = e.message_id WHERE m.control_id LIKE 'RT-NEW-%'`); got != 2 {
		t.Errorf("the young messages have %d events, want 2", got)
	}
	if got := count(t, db, `SELECT count(*) FROM audit_log WHERE actor = 'retention' AND action = 'retention.pass'
		AND (details->'deleted'->'messages'->>'rows')::int = 7 AND details->>'complete' = 'true'`); got != 1 {
		t.Errorf("%d audit rows recording the pass with 7 messages, want 1", got)
	}
	for _, phi := range []string{"RT01", "RT02", "MRN001", "DOE", "tachy"} {
		if strings.Contains(out, phi) {
			t.Errorf("retention output holds patient data %q:\n%s", phi, out)
		}
	}

	out = runRouterCommand(t, dbURL, append([]string{"retention"}, flags...)...)
	if got := retentionCounts(t, out); fmt.Sprint(got) != fmt.Sprint(map[string]int{"alerts": 0, "deliveries": 0,
		"messages": 0, "batches": 0, "message_routing": 0, "dead_letters": 0, "observations": 0, "events": 0, "audit_log": 0}) {
		t.Errorf("second pass deleted %v, want nothing", got)
	}

	// Audit kept shorter than the messages is refused, with the reason.
	out = runRouterFailing(t, dbURL, "retention", "--retain-messages", "90d", "--retain-audit", "30d")
	if !strings.Contains(out, "--retain-audit=30d is shorter than --retain-messages=90d") {
		t.Errorf("refusal does not give the reason:\n%s", out)
	}
	out = runRouterFailing(t, dbURL, "serve", "--routes", routesFile(t, "routes.yaml"), "--http-addr", "", "--api-addr", "",
		"--retain-messages", "90m")
	if !strings.Contains(out, "--retain-messages=1h30m0s: shorter than the minimum 14d") {
		t.Errorf("serve does not refuse 90m at start with the reason:\n%s", out)
	}

	// A router with a policy runs a pass by itself, after its interval.
	r = startRouter(t, dbURL, routesFile(t, "routes.yaml"), "--retain-messages", "90d", "--retain-audit", "365d", "--retention-interval", "200ms")
	eventually(t, 20*time.Second, "the router's first retention pass", func() (bool, string) {
		m := scrape(t, r.HTTPAddr)
		return m[`aorta_retention_runs_total{result="ok"}`] >= 1, fmt.Sprintf("runs ok %v", m[`aorta_retention_runs_total{result="ok"}`])
	})
	if !r.log.contains("retention pass done") {
		t.Errorf("the router logged no pass")
	}
	checkNoPHI(t, "router", r.log, "RT01", "RT02", "MRN001", "DOE", "tachy")
}

// TestRetentionAlerts runs "router retention" on alerts the real router
// raised with the shipped routes: one NEWS2 alert raised and resolved,
// another raised and still open, each notification delivered to the log
// destination, everything then aged by 400 days. With the audit kept 365
// days, the resolved alert goes with its two deliveries and, in the same
// pass, with the message that raised it and that message's events and
// observations (the resolving message stays: its score events are the
// patient's current scores). The open alert stays with its delivery and
// message. The dry run reports exactly what the pass deletes; a second
// pass deletes nothing.
func TestRetentionAlerts(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t)
	db := openDB(t, dbURL)
	l := startListener(t, dbURL)
	r := startRouter(t, dbURL, shippedRoutes(t))
	const resolvedKey, openKey = "GENHOSP/RA01", "GENHOSP/RB01"
	sendAA(t, l.MLLPAddr, nursingSet("RA-1", "RA01", "1000", setUrgent), nursingSet("RA-2", "RA01", "1010", setWell),
		nursingSet("RB-1", "RB01", "1000", setUrgent))
	waitDrained(t, db, drainTimeout)
	waitDelivered(t, db, "log", 3) // raised and resolved; raised
	r.stop(t)
	if a := alertsOf(t, db, resolvedKey); len(a) != 1 || a[0].Status != "resolved" {
		t.Fatalf("alerts of %s: %+v, want one resolved", resolvedKey, a)
	}
	if a := alertsOf(t, db, openKey); len(a) != 1 || a[0].Status != "open" {
		t.Fatalf("alerts of %s: %+v, want one open", openKey, a)
	}

	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	for _, sql := range []string{
		`UPDATE messages SET received_at = received_at - interval '400 days'`,
		`UPDATE events SET recorded_at = recorded_at - interval '400 days'`,
		`UPDATE message_routing SET routed_at = routed_at - interval '400 days'`,
		`UPDATE alerts SET raised_at = raised_at - interval '400 days', updated_at = updated_at - interval '400 days',
			last_notified_at = last_notified_at - interval '400 days', resolved_at = resolved_at - interval '400 days'`,
		`UPDATE deliveries SET created_at = created_at - interval '400 days', delivered_at = delivered_at - interval '400 days',
			last_attempt_at = last_attempt_at - interval '400 days', next_attempt_at = next_attempt_at - interval '400 days'`,
	} {
		if _, err := db.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	raising := `SELECT id FROM messages WHERE control_id = 'RA-1'`
	want := map[string]int{
		"alerts": 1, "deliveries": 2, "messages": 1, "batches": 0, "message_routing": 1, "dead_letters": 0,
		"observations": count(t, db, `SELECT count(*) FROM observations WHERE message_id IN (`+raising+`)`),
		"events":       count(t, db, `SELECT count(*) FROM events WHERE message_id IN (`+raising+`)`),
		"audit_log":    0,
	}
	if want["observations"] == 0 || count(t, db, `SELECT count(*) FROM events WHERE message_id IN (`+raising+`) AND type = 'alert.raised'`) != 1 {
		t.Fatalf("RA-1 has %d observations and %d events, want some, with its alert.raised", want["observations"], want["events"])
	}

	flags := []string{"--retain-messages", "90d", "--retain-audit", "365d", "--retention-batch", "2", "--migrate=false"}
	_, out := dryRunThenPass(t, dbURL, db, flags, want)
	if n := count(t, db, `SELECT count(*) FROM alerts WHERE patient_key = $1`, resolvedKey); n != 0 {
		t.Errorf("%d alerts of %s left, want its resolved one gone", n, resolvedKey)
	}
	if n := count(t, db, `SELECT count(*) FROM alerts a JOIN deliveries d ON d.alert_id = a.id
		JOIN messages m ON m.id = a.message_id WHERE a.patient_key = $1 AND a.status = 'open'`, openKey); n != 1 {
		t.Errorf("the open alert of %s with its delivery and message: %d rows, want 1", openKey, n)
	}
	for cid, n := range map[string]int{"RA-1": 0, "RA-2": 1, "RB-1": 1} {
		if got := count(t, db, `SELECT count(*) FROM messages WHERE control_id = $1`, cid); got != n {
			t.Errorf("messages %s: %d, want %d", cid, got, n)
		}
	}
	for _, phi := range []string{"RA01", "RB01"} {
		if strings.Contains(out, phi) {
			t.Errorf("retention output holds patient data %q:\n%s", phi, out)
		}
	}

	out = runRouterCommand(t, dbURL, append([]string{"retention"}, flags...)...)
	for table, n := range retentionCounts(t, out) {
		if n != 0 {
			t.Errorf("second pass deleted %d rows of %s, want nothing", n, table)
		}
	}
}
