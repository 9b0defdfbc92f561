package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/aortahealth/aorta/internal/pgtest"
)

// The tests in this file put the whole engine through faults at once:
// both processes killed in turn while senders stream, and a database that
// is reachable but refuses to write. Like the outage tests they do not
// call t.Parallel: they kill processes, their timing matters, and on a
// small machine they run one at a time.

// TestCrashBothUnderLoad kills the listener and the router with SIGKILL,
// three times each and in turn, while six senders stream ORU^R01 and ADT
// messages for 30 patients; each is restarted at once with the same
// arguments, as systemd would: the listener on the same MLLP port, so
// that the senders reconnect to it, the router under the same --id (a
// unit file's ROUTER_ID; TestRouterKill9ExactlyOnce restarts it under new
// names). Afterwards:
//
//   - every message a sender saw ACKed was stored at the moment of the
//     kill (checked right after each listener kill), and in the end every
//     message is ACKed and stored exactly once, byte for byte (a re-send
//     of a message stored just before a kill is de-duplicated);
//   - the outbox is drained, every stored message has exactly the events
//     it should, no event ID and no (message, type, observation) appears
//     twice, and each patient's events follow its messages' order.
func TestCrashBothUnderLoad(t *testing.T) {
	dbURL := pgtest.NewDatabase(t)
	db := openDB(t, dbURL)
	l := startListener(t, dbURL)
	addr := l.MLLPAddr
	routerArgs := []string{"--id", "crash-router", "--lease-ttl", routerLeaseTTL.String(), "--batch-size", "10"}
	r := startRouter(t, dbURL, routesFile(t, "routes.yaml"), routerArgs...)

	plan := seqPlan{tag: "CB", senders: 6, perSender: 150, patientsPerSender: 5}
	msgs, want := plan.build()
	ctx, cancel := context.WithTimeout(context.Background(), streamDeadline)
	defer cancel()
	s := startStream(ctx, addr, streamConfig{messages: msgs, pace: 15 * time.Millisecond, attemptTimeout: 10 * time.Second})

	// Kills at an eighth, two eighths, ... six eighths of the stream
	// ACKed: every one of them under load.
	total := len(want)
	var listenerDown time.Duration
	for i := range 6 {
		s.waitAcked(t, int64(total*(i+1)/8), streamDeadline)
		if i%2 == 0 {
			inTx := waitInTransaction(t, db, "aorta-mllp-listener", 2*time.Second)
			l.kill(t)
			killed := time.Now()
			acked := s.acked.Load()
			checkAckedStoredNow(t, db, s.all())
			rows := count(t, db, `SELECT count(*) FROM messages`)
			l = startListener(t, dbURL, "--mllp-addr", addr)
			listenerDown += time.Since(killed)
			t.Logf("kill %d: SIGKILL listener (a commit in flight: %v) with %d messages ACKed, %d stored; every ACKed one was stored; restarted on %s %v later",
				i+1, inTx, acked, rows, addr, time.Since(killed).Round(time.Millisecond))
			continue
		}
		inTx := waitInTransaction(t, db, "aorta-router", 2*time.Second)
		r.kill(t)
		killed := time.Now()
		t.Logf("kill %d: SIGKILL router %s (in a transaction: %v) with %d messages routed, %d waiting in the outbox, %d ACKed",
			i+1, r.ID, inTx, routedCount(t, db), count(t, db, `SELECT count(*) FROM outbox`), s.acked.Load())
		r = startRouter(t, dbURL, routesFile(t, "routes.yaml"), routerArgs...)
		t.Logf("router restarted %v later", time.Since(killed).Round(time.Millisecond))
	}

	sent := finishRouterStream(t, s, db, faultDrainTimeout, r)
	n := checkExactlyOnce(t, db, want)
	patients := checkPatientOrder(t, db, seqOf)
	var stored, resentStored int
	queryRow(t, db, `SELECT count(*), count(*) FILTER (WHERE duplicate_count > 0) FROM messages`, nil, &stored, &resentStored)
	t.Logf("%v (the listener down %v in all over 3 kills)", summarize(sent), listenerDown.Round(time.Millisecond))
	t.Logf("%d messages sent, %d ACKed, %d stored once each (%d of them re-sent after a kill and answered from the store), %d events (want %d) for %d patients, outbox empty: exactly once across 3 listener and 3 router kills",
		len(sent), summarize(sent).acked, stored, resentStored, n, sumEvents(want), patients)
}

// waitInTransaction waits up to d for a session of app on the test's
// database to be inside a transaction (a crash between BEGIN and COMMIT
// is the case that matters) and reports whether one was.
func waitInTransaction(t *testing.T, db *pgxpool.Pool, app string, d time.Duration) bool {
	t.Helper()
	ok, _ := poll(d, func() (bool, string) {
		n := count(t, db, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
			AND application_name = $1 AND xact_start IS NOT NULL AND query NOT LIKE 'LISTEN%'`, app)
		return n > 0, ""
	})
	return ok
}

// checkAckedStoredNow checks that every message ACKed so far is in
// messages with the bytes sent. Unlike checkAckedAreStored it does not
// look for the outbox row, which a running router deletes.
func checkAckedStoredNow(t *testing.T, db *pgxpool.Pool, msgs []*tracked) {
	t.Helper()
	stored := storedByControlID(t, db)
	for _, m := range msgs {
		if _, ok := m.firstAA(); !ok {
			continue
		}
		found := false
		for _, r := range stored[m.controlID] {
			found = found || (bytes.Equal(r.Raw, m.raw) && r.Status == "accepted")
		}
		if !found {
			t.Errorf("%s: ACKed (AA) but not stored: an acknowledged message was lost in the crash", m.controlID)
		}
	}
}

// TestDatabaseRefusesWrites makes the database refuse to store while the
// listener runs and senders stream, then lets it write again:
//
//   - read-only: the database's default_transaction_read_only is turned on
//     (SQLSTATE 25006 on every insert), as a failover in progress or an
//     operator does;
//   - disk full: every insert into messages fails with SQLSTATE 53100
//     (disk_full) and PostgreSQL's own wording, raised by a trigger.
//
// A real full disk is not made here: the tests share one PostgreSQL server
// (filling its disk would fail every other test), and giving a throwaway
// cluster a small tmpfs or loop device of its own needs root with
// CAP_SYS_ADMIN to mount it, which make test on a developer's machine does
// not have (and a test that skipped without it would prove nothing).
// What the listener sees of either is the same: an error on INSERT or
// COMMIT, with SQLSTATE 53100 for a full data disk (a full WAL disk makes
// PostgreSQL crash and restart, which TestDatabaseServerStopped covers).
// Both classes are handled alike: retried within --store-retry-budget,
// then given up on.
//
// Only the test's own database is touched: ALTER DATABASE reaches new
// sessions only, so the listener's sessions are ended once after it (as a
// server-wide reload would reach them); when writing is allowed again
// nothing is done to the listener, which must recover by itself.
//
// Every AA must be backed by a stored row and no frame sent during the
// refusal may get one; each such frame is answered within the budget
// (closed unanswered, or AR with ERR 207 with --on-store-failure=reject);
// the refusal is logged at error level with its SQLSTATE; the process
// neither exits nor stops answering /healthz (no crash or restart loop);
// afterwards every message gets its AA, stored once.
func TestDatabaseRefusesWrites(t *testing.T) {
	for _, tt := range []struct {
		name     string
		action   string
		sqlstate string
		refuse   func(t *testing.T, db *pgxpool.Pool, dbName string)
		allow    func(t *testing.T, db *pgxpool.Pool, dbName string)
		answers  map[string]bool // as in TestDatabaseNetworkCut; "" is closed unanswered
	}{
		{"read-only/on-store-failure=close", "close", "25006", readOnlyOn, readOnlyOff, map[string]bool{"": true}},
		{"disk full/on-store-failure=reject", "reject", "53100", diskFullOn, diskFullOff, map[string]bool{"": true, "AR/207": true}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dbURL := pgtest.NewDatabase(t)
			db := openDB(t, dbURL)
			dbName := databaseName(t, dbURL)
			l := startListener(t, dbURL, "--on-store-failure", tt.action, "--store-retry-budget", budget.String())

			ctx, cancel := context.WithTimeout(context.Background(), streamDeadline)
			defer cancel()
			s := startStream(ctx, l.MLLPAddr, streamConfig{senders: 4, attemptTimeout: 10 * time.Second})
			s.waitAcked(t, 50, 30*time.Second)

			tt.refuse(t, db, dbName)
			down := time.Now()
			failures := `aorta_store_failures_total{action="` + tt.action + `"}`
			eventually(t, 15*time.Second, "three frames given up on", func() (bool, string) {
				n := scrape(t, l.HTTPAddr).sum(failures)
				return n >= 3, fmt.Sprintf("%s = %v", failures, n)
			})
			time.Sleep(max(0, outage-time.Since(down))) // at least the usual outage; correctness never depends on it
			health, _, herr := httpGet(l.HTTPAddr, "/healthz")
			ready, readyBody, rerr := httpGet(l.HTTPAddr, "/readyz")
			m := scrape(t, l.HTTPAddr)
			up := time.Now()
			tt.allow(t, db, dbName)

			msgs := finishStream(t, s, db, up)
			sentWhileDown := checkNoAckWhileDown(t, msgs, down, up)
			t.Logf("%v; writes refused for %v, %d frames sent meanwhile, %v given up on (%s), %v failed commit attempts",
				summarize(msgs), up.Sub(down).Round(time.Millisecond), sentWhileDown, m.sum(failures), tt.action,
				m.sum(`aorta_commit_errors_total{kind="transient"}`))
			if sentWhileDown == 0 {
				t.Errorf("no frame was sent while writes were refused: the test proved nothing")
			}
			acked := checkAckedAreStored(t, db, msgs)
			checkAllStoredOnce(t, db, msgs)

			// Not a crash, not a restart loop: one process all along,
			// alive by its liveness check. Readiness is reported here, not
			// judged: TestReadinessFollowsWrites judges it.
			if l.hasExited() {
				t.Errorf("listener exited (%v) while the database refused writes", l.state)
			}
			if n := len(l.log.records("mllp-listener ready")); n != 1 {
				t.Errorf("%d ready lines, want 1", n)
			}
			if herr != nil || health != http.StatusOK {
				t.Errorf("GET /healthz while writes were refused: %d %v, want 200 (an orchestrator would restart the listener in a loop)", health, herr)
			}
			t.Logf("while writes were refused: /healthz %d, /readyz %d %s %v", health, ready, strings.TrimSpace(readyBody), rerr)

			// A clear refusal in the log: the error-level line that gives
			// frames up names the database's reason, and every frame not
			// stored has its warning.
			var gaveUp, named int
			for _, rec := range l.log.records("database unavailable, giving up on frames") {
				gaveUp++
				if e, _ := rec["err"].(string); rec["level"] == "ERROR" && strings.Contains(e, "SQLSTATE "+tt.sqlstate) {
					named++
				}
			}
			notStored := len(l.log.records("frame not stored, not acknowledged"))
			retries := len(l.log.records("commit failed, retrying"))
			t.Logf("log: %d error lines giving frames up (%d naming SQLSTATE %s), %d \"frame not stored, not acknowledged\" warnings, %d retry warnings",
				gaveUp, named, tt.sqlstate, notStored, retries)
			if named == 0 {
				t.Errorf("no error-level \"database unavailable, giving up on frames\" line names SQLSTATE %s", tt.sqlstate)
			}
			if notStored < int(m.sum(failures)) {
				t.Errorf("%d \"frame not stored\" warnings for %v frames given up on", notStored, m.sum(failures))
			}

			seen := map[string]int{}
			for _, msg := range msgs {
				for _, a := range msg.history() {
					if a.code == "AA" || errors.Is(a.err, context.Canceled) {
						continue
					}
					if errors.Is(a.err, context.DeadlineExceeded) {
						t.Errorf("%s: neither answered nor closed within %v (store retry budget %v)", msg.controlID, a.end.Sub(a.start).Round(time.Millisecond), budget)
						continue
					}
					kind := ""
					if a.err == nil {
						kind = a.code + "/" + errCodeOf(a.ack)
					}
					seen[kind]++
					if !tt.answers[kind] {
						t.Errorf("%s: answered %q (%q), want one of %v", msg.controlID, kind, a.ack, tt.answers)
					}
				}
			}
			t.Logf("answers other than AA: %v; %d messages sent, %d ACKed, %d stored, all after writes were allowed again without touching the listener",
				seen, len(msgs), acked, count(t, db, `SELECT count(*) FROM messages`))
			if tt.action == "reject" && seen["AR/207"] == 0 {
				t.Errorf("no AR with ERR 207 was sent while writes were refused")
			}
			if tt.action == "close" && seen[""] == 0 {
				t.Errorf("no connection was closed unanswered while writes were refused")
			}
		})
	}
}

// readOnlyOn makes the test's database read-only for new sessions and
// ends the listener's, so that its next ones are read-only.
func readOnlyOn(t *testing.T, db *pgxpool.Pool, dbName string) {
	t.Helper()
	execRW(t, db, `ALTER DATABASE `+pgx.Identifier{dbName}.Sanitize()+` SET default_transaction_read_only = on`)
	var n int
	queryRow(t, db, `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE application_name = 'aorta-mllp-listener' AND datname = $1`, []any{dbName}, &n)
	t.Logf("database %s read-only; %d listener sessions ended", dbName, n)
}

// readOnlyOff lets new sessions write again. The listener's read-only
// sessions are left alone.
func readOnlyOff(t *testing.T, db *pgxpool.Pool, dbName string) {
	t.Helper()
	execRW(t, db, `ALTER DATABASE `+pgx.Identifier{dbName}.Sanitize()+` RESET default_transaction_read_only`)
	t.Logf("database %s writable again for new sessions; the listener's sessions left alone", dbName)
}

// diskFullOn makes every insert into messages fail as PostgreSQL does
// when the disk holding the table is full.
func diskFullOn(t *testing.T, db *pgxpool.Pool, _ string) {
	t.Helper()
	execRW(t, db, `CREATE FUNCTION test_disk_full() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			RAISE EXCEPTION 'could not extend file "base/16384/16385": No space left on device'
				USING ERRCODE = 'disk_full', HINT = 'Check free disk space.';
		END $$`)
	execRW(t, db, `CREATE TRIGGER test_disk_full BEFORE INSERT ON messages FOR EACH ROW EXECUTE FUNCTION test_disk_full()`)
	t.Logf("inserts into messages fail with SQLSTATE 53100")
}

func diskFullOff(t *testing.T, db *pgxpool.Pool, _ string) {
	t.Helper()
	execRW(t, db, `DROP TRIGGER test_disk_full ON messages`)
	t.Logf("inserts into messages succeed again")
}

// execRW runs a statement in a read-write transaction, whatever the
// session's default.
func execRW(t *testing.T, db *pgxpool.Pool, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	err := pgx.BeginTxFunc(ctx, db, pgx.TxOptions{AccessMode: pgx.ReadWrite}, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, sql)
		return err
	})
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}
