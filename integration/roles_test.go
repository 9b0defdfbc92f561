package integration

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/aortahealth/aorta/internal/pgtest"
	"github.com/aortahealth/aorta/pkg/router"
)

// The least-privilege roles of docs/roles.sql, proved on the real
// binaries: the file is run as written (only the role names are made
// unique, since roles are cluster-wide and tests run in parallel), the
// listener and the router then run as its LOGIN users with --migrate=false
// on a database migrated by its owner, and everything works end to end,
// while the listener is refused anything beyond storing what it receives.

// roleNames matches the role names docs/roles.sql creates.
var roleNames = regexp.MustCompile(`\baorta_(listener|router|api|retention)(_login)?\b`)

// testRoles is docs/roles.sql with its roles renamed for one test.
type testRoles struct {
	prefix string // replaces "aorta" in every role name
	sql    string
}

func (r testRoles) name(role string) string { return r.prefix + "_" + role }

// all lists the roles the file creates, logins first (the order they are
// dropped in).
func (r testRoles) all() []string {
	return []string{r.name("listener_login"), r.name("router_login"), r.name("listener"), r.name("router"), r.name("api"), r.name("retention")}
}

// loadRoles reads docs/roles.sql and gives its roles names no other test
// uses.
func loadRoles(t *testing.T) testRoles {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "docs", "roles.sql"))
	if err != nil {
		t.Fatal(err)
	}
	var suffix [4]byte
	rand.Read(suffix[:])
	r := testRoles{prefix: "aorta_t" + hex.EncodeToString(suffix[:])}
	r.sql = roleNames.ReplaceAllString(string(b), r.prefix+"_$1$2")
	for _, n := range []string{"listener", "router", "api", "retention", "listener_login", "router_login"} {
		if !strings.Contains(r.sql, r.name(n)+" ") {
			t.Fatalf("docs/roles.sql no longer names the role aorta_%s: update this test", n)
		}
	}
	return r
}

// create runs the file on the database at ownerURL (as the superuser that
// migrated it) and drops the roles again when the test ends: first what
// they hold in that database, while it still exists, then the roles.
func (r testRoles) create(t *testing.T, ownerURL string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
		defer cancel()
		conn, err := pgx.Connect(ctx, ownerURL)
		if err != nil {
			t.Errorf("drop test roles: %v", err)
			return
		}
		defer conn.Close(ctx)
		for _, n := range r.all() {
			var exists bool
			if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)`, n).Scan(&exists); err != nil || !exists {
				continue
			}
			id := pgx.Identifier{n}.Sanitize()
			if _, err := conn.Exec(ctx, "DROP OWNED BY "+id); err != nil {
				t.Errorf("drop owned by %s: %v", n, err)
			}
			if _, err := conn.Exec(ctx, "DROP ROLE "+id); err != nil {
				t.Errorf("drop role %s: %v", n, err)
			}
		}
	})
	conn, err := pgx.Connect(ctx, ownerURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// Twice: the file promises it may be run again after every upgrade.
	for i := range 2 {
		if _, err := conn.Exec(ctx, r.sql); err != nil {
			t.Fatalf("docs/roles.sql (run %d): %v", i+1, err)
		}
	}
}

// login gives a LOGIN role a password and returns ownerURL connecting as it.
func (r testRoles) login(t *testing.T, ownerURL, role, password string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, ownerURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// ALTER ROLE takes no parameters; the password is hex, so quoting it
	// as a literal is safe.
	if _, err := conn.Exec(ctx, "ALTER ROLE "+pgx.Identifier{r.name(role)}.Sanitize()+" PASSWORD '"+password+"'"); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(ownerURL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(r.name(role), password)
	return u.String()
}

// TestLeastPrivilegeRoles runs docs/roles.sql, then the listener and the
// router as its users on a database their owner migrated: admissions,
// observation sets that raise and escalate a NEWS2 alert, a duplicate, a
// batch and a rejected message all go through. The listener's user cannot
// read events or message bodies, change or delete stored messages, or
// empty the outbox; the router's cannot change stored messages or mint API
// tokens; neither can alter the schema. The API's role, taken with SET
// ROLE, runs the API's kinds of statement but cannot mint or revive tokens.
// Neither process logs its password.
func TestLeastPrivilegeRoles(t *testing.T) {
	t.Parallel()
	ownerURL := pgtest.NewDatabase(t) // migrated by the superuser, who owns the tables
	owner := openDB(t, ownerURL)
	roles := loadRoles(t)
	roles.create(t, ownerURL)
	var secret [12]byte
	rand.Read(secret[:])
	password := hex.EncodeToString(secret[:])
	listenerURL := roles.login(t, ownerURL, "listener_login", password)
	routerURL := roles.login(t, ownerURL, "router_login", password)

	l := startListener(t, listenerURL, "--migrate=false")
	// The API is served on a port of its own choosing: this test does not
	// call it, and the default port may be another test's.
	r := startRouter(t, routerURL, shippedRoutes(t), "--migrate=false", "--api-addr", "127.0.0.1:0")

	const mrn, key = "ROLE01", "GENHOSP/ROLE01"
	admit := adtMsg("RL-1", "A01", mrn, at("0900"), "WARD7^BAY1^BED1")
	sets := [][]byte{nursingSet("RL-2", mrn, "1000", setUrgent), nursingSet("RL-3", mrn, "1010", setEmergency)}
	sendAA(t, l.MLLPAddr, append([][]byte{admit}, sets...)...)
	// A re-send is answered from the stored ACK and counted on the original.
	first := waitForRaw(t, owner, admit)
	if again := send(t, l.MLLPAddr, admit); string(again) != string(first.Ack) {
		t.Errorf("duplicate answered %q, want the stored ACK %q", again, first.Ack)
	}
	// A batch stores its envelope too.
	batch := "BHS|^~\\&|PAS|GENHOSP|AORTA|AORTA|" + at("1020") + "||||RL-B\r" +
		string(adtMsg("RL-4", "A08", mrn, at("1020"), "WARD7^BAY1^BED2")) + "BTS|1\r"
	if resp := send(t, l.MLLPAddr, []byte(batch)); !strings.Contains(string(resp), "\rMSA|AA|RL-4\r") {
		t.Errorf("batch answered %q, want an AA for RL-4", resp)
	}
	// A message without a control ID is kept as rejected.
	if code, _ := msaOf(send(t, l.MLLPAddr, hl7Msg("MSH|^~\\&|PAS|GENHOSP|AORTA|AORTA|"+at("1030")+"||ADT^A08||P|2.5.1", "PID|1||"+mrn+"^^^GENHOSP^MR"))); code != "AR" {
		t.Errorf("message without MSH-10: MSA-1 %q, want AR", code)
	}
	eventually(t, drainTimeout, "the router to apply what was sent", func() (bool, string) { return drained(t, owner) })

	if got := strings.Join(typesOf(alertEvents(t, owner, "e.patient_key = $1", key)), ","); got != "alert.raised,alert.escalated" {
		t.Errorf("alert events %q, want alert.raised,alert.escalated", got)
	}
	if n := count(t, owner, `SELECT count(*) FROM events WHERE patient_key = $1 AND type = 'score.calculated' AND payload->>'score' = 'news2'`, key); n != 2 {
		t.Errorf("%d NEWS2 score.calculated events, want 2", n)
	}
	eventually(t, drainTimeout, "the alerts' log deliveries", func() (bool, string) {
		n := count(t, owner, `SELECT count(*) FROM deliveries WHERE status <> 'delivered'`)
		m := count(t, owner, `SELECT count(*) FROM deliveries`)
		return m == 2 && n == 0, fmt.Sprintf("%d of %d deliveries not delivered, want 2 delivered", n, m)
	})
	if n := count(t, owner, `SELECT duplicate_count FROM messages WHERE control_id = 'RL-1'`); n != 1 {
		t.Errorf("duplicate_count of RL-1 = %d, want 1", n)
	}
	if n := count(t, owner, `SELECT count(*) FROM batches`); n != 1 {
		t.Errorf("%d batches stored, want 1", n)
	}
	if n := count(t, owner, `SELECT count(*) FROM messages WHERE status = 'rejected'`); n != 1 {
		t.Errorf("%d rejected messages stored, want 1", n)
	}

	// What each role may and must not do. A statement runs in a
	// transaction that is rolled back, so that a grant too many cannot
	// change the data the other checks read. role, when set, is taken with
	// SET LOCAL ROLE first: the API has no process of its own yet.
	try := func(db *pgxpool.Pool, role, sql string) error {
		return pgx.BeginFunc(context.Background(), db, func(tx pgx.Tx) error {
			if role != "" {
				if _, err := tx.Exec(context.Background(), "SET LOCAL ROLE "+pgx.Identifier{role}.Sanitize()); err != nil {
					return err
				}
			}
			if _, err := tx.Exec(context.Background(), sql); err != nil {
				return err
			}
			return errRollback
		})
	}
	check := func(who string, db *pgxpool.Pool, role string, allow bool, stmts ...string) {
		t.Helper()
		for _, sql := range stmts {
			err := try(db, role, sql)
			var pgErr *pgconn.PgError
			switch {
			case allow && errors.Is(err, errRollback):
			case allow:
				t.Errorf("%s: %s: %v, want it allowed", who, sql, err)
			case errors.As(err, &pgErr) && pgErr.Code == "42501": // insufficient_privilege
			case errors.Is(err, errRollback):
				t.Errorf("%s may %s", who, sql)
			default:
				t.Errorf("%s: %s: %v, want permission denied", who, sql, err)
			}
		}
	}
	denied := func(who, url string, stmts ...string) {
		t.Helper()
		check(who, openDB(t, url), "", false, stmts...)
	}
	denied("the listener", listenerURL,
		`SELECT count(*) FROM events`,
		`SELECT raw FROM messages LIMIT 1`,
		`SELECT patient_key FROM messages LIMIT 1`,
		`SELECT count(*) FROM patients`,
		`SELECT count(*) FROM alerts`,
		`UPDATE messages SET status = 'rejected'`,
		`UPDATE messages SET raw = ''::bytea`,
		`UPDATE messages SET ack = NULL`,
		`DELETE FROM messages`,
		`DELETE FROM outbox`,
		`DELETE FROM batches`,
		`TRUNCATE messages`,
		`INSERT INTO events (id, type, occurred_at, message_id, source, route, schema_version, payload)
			SELECT gen_random_uuid(), 'x', now(), id, 'x', 'x', 1, '{}' FROM messages LIMIT 1`,
		`ALTER TABLE messages ADD COLUMN x int`,
		`DROP TABLE outbox`)
	denied("the router", routerURL,
		`UPDATE messages SET raw = ''::bytea`,
		`UPDATE messages SET status = 'rejected'`,
		`DELETE FROM messages`,
		`INSERT INTO messages (id, received_at, listener, remote_addr, raw, raw_sha256, status)
			VALUES (gen_random_uuid(), now(), 'x', 'x', '', '', 'accepted')`,
		`DELETE FROM events`,
		`UPDATE events SET payload = '{}'`,
		`INSERT INTO api_tokens (name, role, token_hash, created_by) VALUES ('x', 'admin', sha256(''::bytea), 'x')`,
		`TRUNCATE events`,
		`DROP TABLE events`)

	// The router's background work (the ops summary's counts) writes
	// tables of its own: it must be able to, not log a warning and retry.
	// It counts only messages older than the settle time, checking every
	// interval at most, so the wait starts from there: on a loaded
	// machine the messages above can be younger than drainTimeout's
	// margin allows.
	opsWait := router.DefaultOpsSettle + router.MaxOpsInterval + drainTimeout
	eventually(t, opsWait, "the router to count the senders", func() (bool, string) {
		n := count(t, owner, `SELECT count(*) FROM ops_senders`)
		return n > 0, fmt.Sprintf("%d senders counted", n)
	})
	if r.log.contains("permission denied") || r.log.contains("42501") {
		t.Errorf("the router was refused a statement:\n%s", r.log.tail(20))
	}
	retention := roles.name("retention")
	check("retention", owner, retention, true,
		`DELETE FROM events WHERE message_id IN (SELECT id FROM messages WHERE control_id = 'RL-4')`,
		`DELETE FROM observations WHERE message_id IN (SELECT id FROM messages WHERE control_id = 'RL-4')`,
		`DELETE FROM message_routing WHERE message_id IN (SELECT id FROM messages WHERE control_id = 'RL-4')`,
		`DELETE FROM audit_log`,
		`INSERT INTO audit_log (actor, action, target) VALUES ('retention', 'retention.pass', '')`,
		`WITH a AS (DELETE FROM alerts RETURNING id) DELETE FROM deliveries WHERE alert_id IN (SELECT id FROM a)`)
	check("retention", owner, retention, false,
		`UPDATE messages SET raw = ''::bytea`,
		`UPDATE alerts SET status = 'resolved'`,
		`UPDATE deliveries SET status = 'pending'`,
		`INSERT INTO deliveries (event_id, alert_id, destination, kind) SELECT score_event_id, id, 'x', 'log' FROM alerts LIMIT 1`,
		`INSERT INTO events (id, type, occurred_at, message_id, source, route, schema_version, payload)
			SELECT gen_random_uuid(), 'x', now(), id, 'x', 'x', 1, '{}' FROM messages LIMIT 1`,
		`DELETE FROM api_tokens`)

	api := roles.name("api")
	check("the API", owner, api, true,
		`SELECT raw FROM messages LIMIT 1`,
		`SELECT count(*) FROM events e JOIN alerts a ON a.score_event_id = e.id`,
		`SELECT count(*) FROM scores s JOIN patients p USING (patient_key) JOIN message_routing r ON true JOIN dead_letters d ON true JOIN deliveries v ON true JOIN outbox o ON true`,
		`UPDATE alerts SET acknowledged_by = 'nurse', acknowledged_at = now()`,
		`INSERT INTO patients AS p (patient_key, patient_id, spo2_scale, spo2_scale_set_by, spo2_scale_set_at) VALUES ('`+key+`', 'x', 2, 'nurse', now())
			ON CONFLICT (patient_key) DO UPDATE SET spo2_scale = EXCLUDED.spo2_scale`,
		`INSERT INTO audit_log (actor, action, target) VALUES ('nurse', 'alert.acknowledge', 'x')`,
		`INSERT INTO outbox (message_id, partition_key, patient_key, replay) SELECT id, partition_key, patient_key, true FROM messages WHERE control_id = 'RL-1'`,
		`UPDATE dead_letters SET resolved_at = now(), resolution = 'discarded', resolved_by = 'analyst'`,
		`UPDATE api_tokens SET last_used_at = now() WHERE token_hash = sha256('x'::bytea)`,
		`SELECT count(*) FROM ops_senders s JOIN ops_sender_counts c ON true JOIN ops_route_counts r ON true JOIN feed_status f ON true JOIN ops_watermarks w ON true`,
		`INSERT INTO console_sessions (id_hash, token_id, created_at, last_seen_at, expires_at)
			SELECT sha256('s'::bytea), id, now(), now(), now() + interval '1 hour' FROM api_tokens LIMIT 1`,
		`UPDATE console_sessions SET last_seen_at = now()`,
		`DELETE FROM console_sessions`)
	check("the API", owner, api, false,
		`INSERT INTO api_tokens (name, role, token_hash, created_by) VALUES ('x', 'admin', sha256(''::bytea), 'x')`,
		`UPDATE api_tokens SET revoked_at = NULL, role = 'admin'`,
		`UPDATE messages SET raw = ''::bytea`,
		`DELETE FROM events`,
		`DELETE FROM alerts`)

	// The password reaches the processes only through their URL, and
	// neither writes it anywhere.
	checkNoPHI(t, "listener", l.log, password)
	checkNoPHI(t, "router", r.log, password)
}

var errRollback = errors.New("statement succeeded; rolled back")
