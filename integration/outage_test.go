package integration

import (
	"context"
	"errors"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/aortahealth/aorta/internal/pgenv"
	"github.com/aortahealth/aorta/internal/pgtest"
)

// The tests in this file take the database away from a listener, or the
// listener away from its senders, in the middle of a stream of messages.
// They do not call t.Parallel: they are the heaviest tests, their timing
// matters, and on a small machine they should not compete with each
// other. Go runs them one after another before the parallel tests start.

const (
	// outage is how long each database outage lasts. It is longer than
	// the store retry budget the tests set, so that some frames are given
	// up on (closed or rejected) as well as some that wait it out.
	outage = 2 * time.Second
	// budget is the --store-retry-budget of the outage tests.
	budget = time.Second
	// recoveryBound is how long after the database is back every message
	// must have its AA: the listener "recovers by itself" (README), and a
	// sender whose message is stuck holds up everything queued behind it.
	recoveryBound = 30 * time.Second
	// streamDeadline bounds a whole stream, outage and recovery included.
	streamDeadline = 2 * time.Minute
)

// TestDatabaseNetworkCut takes the network between the listener and
// PostgreSQL away while senders stream messages, then restores it:
//
//   - cut (every connection reset), with both --on-store-failure actions;
//   - partitioned while a transaction is open (every connection silently
//     dead for good, as when a firewall or NAT forgets its connections, or
//     the listener's host loses power: PostgreSQL is never told).
//
// Every AA must be backed by a stored row; no frame sent during the outage
// may get an AA before the network is back; a frame that cannot be stored
// is answered within the retry budget (closed, or AR with ERR 207), never
// left hanging; and once the network is back every message gets its AA
// within recoveryBound, stored exactly once.
func TestDatabaseNetworkCut(t *testing.T) {
	for _, tt := range []struct {
		name   string
		action string
		outage func(*testing.T, *tcpProxy)
		// answers allowed instead of AA; "" is the connection closed
		// unanswered.
		answers map[string]bool
	}{
		{"cut/on-store-failure=close", "close", cut, map[string]bool{"": true}},
		{"cut/on-store-failure=reject", "reject", cut, map[string]bool{"": true, "AR/207": true}},
		{"partition in transaction", "close", partitionInTransaction, map[string]bool{"": true}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dbURL := pgtest.NewDatabase(t)
			db := openDB(t, dbURL)
			proxy := startProxy(t, hostPort(t, dbURL))
			l := startListener(t, withHost(t, dbURL, proxy.Addr()),
				"--on-store-failure", tt.action, "--store-retry-budget", budget.String())
			// Close the proxy before stopping the listener: a connection
			// a partition killed keeps pgx's pool waiting up to 15 s on
			// exit, which would only slow the test down.
			t.Cleanup(proxy.close)

			ctx, cancel := context.WithTimeout(context.Background(), streamDeadline)
			defer cancel()
			s := startStream(ctx, l.MLLPAddr, streamConfig{senders: 6, attemptTimeout: 10 * time.Second})
			s.waitAcked(t, 100, 30*time.Second)

			tt.outage(t, proxy)
			down := time.Now()
			time.Sleep(outage) // the outage itself; correctness never depends on it
			up := time.Now()
			proxy.Restore()

			msgs := finishStream(t, s, db, up)
			sentWhileDown := checkNoAckWhileDown(t, msgs, down, up)
			t.Logf("%v; database unreachable for %v, %d frames sent meanwhile", summarize(msgs), up.Sub(down).Round(time.Millisecond), sentWhileDown)
			if sentWhileDown == 0 {
				t.Errorf("no frame was sent while the database was unreachable: the test proved nothing")
			}
			acked := checkAckedAreStored(t, db, msgs)
			checkAllStoredOnce(t, db, msgs)
			t.Logf("verified: %d messages sent, %d ACKed, %d stored once each with their outbox row; no AA while the database was unreachable",
				len(msgs), acked, count(t, db, `SELECT count(*) FROM messages`))

			// What senders got instead of an AA, and how long it took.
			seen := map[string]int{}
			var slowest time.Duration
			for _, m := range msgs {
				for _, a := range m.history() {
					if a.code == "AA" || errors.Is(a.err, context.Canceled) {
						continue // the test gave up on it, reported above
					}
					slowest = max(slowest, a.end.Sub(a.start))
					if errors.Is(a.err, context.DeadlineExceeded) {
						t.Errorf("%s: neither answered nor closed within %v (store retry budget %v)", m.controlID, a.end.Sub(a.start).Round(time.Millisecond), budget)
						continue
					}
					kind := ""
					if a.err == nil {
						kind = a.code + "/" + errCodeOf(a.ack)
					}
					seen[kind]++
					if !tt.answers[kind] {
						t.Errorf("%s: answered %q (%q), want one of %v", m.controlID, kind, a.ack, tt.answers)
					}
				}
			}
			t.Logf("answers other than AA: %v, the slowest after %v", seen, slowest.Round(time.Millisecond))
			if n := scrape(t, l.HTTPAddr).sum(`aorta_store_failures_total{action="` + tt.action + `"}`); n == 0 {
				t.Errorf("aorta_store_failures_total{action=%q} = 0: no frame outlived the %v retry budget during a %v outage", tt.action, budget, outage)
			}
			if tt.action == "reject" && seen["AR/207"] == 0 {
				t.Errorf("no AR with ERR 207 was sent during the outage")
			}
			if tt.action == "close" && seen[""] == 0 {
				t.Errorf("no connection was closed unanswered during the outage")
			}
		})
	}
}

func cut(_ *testing.T, p *tcpProxy) { p.Cut() }

func partitionInTransaction(t *testing.T, p *tcpProxy) {
	t.Helper()
	if !p.PartitionInTransaction(10 * time.Second) {
		t.Fatalf("no transaction was opened within 10s to partition the network in")
	}
}

// finishStream waits for sending to resume after the database came back
// at up, lets every sender finish its message within recoveryBound, and
// returns every message sent. When some never got their AA it logs the
// database sessions that may be holding them up.
func finishStream(t *testing.T, s *stream, db *pgxpool.Pool, up time.Time) []*tracked {
	t.Helper()
	s.waitAckedSince(t, up, 100, recoveryBound)
	if !s.stopAndWait(t, recoveryBound-time.Since(up)) {
		logBlockingSessions(t, db)
	}
	return s.all()
}

// logBlockingSessions logs the sessions of this database that are idle
// inside a transaction or waiting for a lock, with their age.
func logBlockingSessions(t *testing.T, db *pgxpool.Pool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	rows, err := db.Query(ctx, `SELECT pid, application_name, state, coalesce(wait_event_type || '/' || wait_event, ''),
			coalesce(extract(epoch FROM now() - xact_start), 0), left(regexp_replace(query, '\s+', ' ', 'g'), 70)
		FROM pg_stat_activity
		WHERE datname = current_database() AND (state LIKE 'idle in transaction%' OR wait_event_type = 'Lock')`)
	if err != nil {
		t.Logf("pg_stat_activity: %v", err)
		return
	}
	defer rows.Close()
	for rows.Next() {
		var pid int
		var app, state, wait, query string
		var age float64
		if err := rows.Scan(&pid, &app, &state, &wait, &age, &query); err != nil {
			t.Logf("pg_stat_activity: %v", err)
			return
		}
		t.Logf("session %d (%s): %s %s, transaction open %.1fs, last query %q", pid, app, state, wait, age, query)
	}
}

// TestDatabaseBackendsTerminated terminates the listener's database
// sessions several times during a stream, as an operator or a failover
// would: commits fail mid-flight and are retried, and the promise holds.
func TestDatabaseBackendsTerminated(t *testing.T) {
	dbURL := pgtest.NewDatabase(t)
	db := openDB(t, dbURL)
	l := startListener(t, dbURL)
	dbName := databaseName(t, dbURL)

	ctx, cancel := context.WithTimeout(context.Background(), streamDeadline)
	defer cancel()
	s := startStream(ctx, l.MLLPAddr, streamConfig{senders: 6, pace: 2 * time.Millisecond})
	s.waitAcked(t, 100, 30*time.Second)

	terminated := 0
	var lastKill time.Time
	for round := range 5 {
		var n int
		queryRow(t, db, `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE application_name = 'aorta-mllp-listener' AND datname = $1`, []any{dbName}, &n)
		terminated += n
		lastKill = time.Now()
		t.Logf("round %d: terminated %d sessions", round, n)
		// Let the stream make progress before the next round.
		s.waitAcked(t, s.acked.Load()+50, recoveryBound)
	}
	if terminated == 0 {
		t.Fatalf("no listener session was terminated: the test proved nothing")
	}
	msgs := finishStream(t, s, db, lastKill)
	t.Logf("%v; %d sessions terminated; %v failed commit attempts retried", summarize(msgs), terminated,
		scrape(t, l.HTTPAddr).sum(`aorta_commit_errors_total{kind="transient"}`))
	acked := checkAckedAreStored(t, db, msgs)
	checkAllStoredOnce(t, db, msgs)
	t.Logf("verified: %d messages sent, %d ACKed, %d stored once each with their outbox row",
		len(msgs), acked, count(t, db, `SELECT count(*) FROM messages`))
}

// TestDatabaseServerStopped stops a whole PostgreSQL server (a throwaway
// cluster, so that nothing else is disturbed) during a stream and starts
// it again: first a clean fast shutdown, then a crash (an immediate
// shutdown: no checkpoint, whatever is only in memory is lost, and the
// restart runs crash recovery).
//
// The server is configured for speed over durability, as some are:
// synchronous_commit off and a WAL writer that flushes every 10 s. The
// listener forces synchronous commits for its own sessions; without that,
// the messages it acknowledged in the seconds before the crash would be
// lost in it. The database is created and migrated with the listener's
// own migrate command, as a deployment would.
func TestDatabaseServerStopped(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cluster, err := pgenv.StartCluster(ctx, pgenv.ClusterOptions{Settings: map[string]string{
		"synchronous_commit": "off",
		"wal_writer_delay":   "10s",
	}})
	if err != nil {
		t.Fatalf("start a throwaway PostgreSQL cluster: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := cluster.Destroy(ctx); err != nil {
			t.Errorf("destroy cluster: %v", err)
		}
	})
	if err := pgenv.EnsureDatabase(ctx, cluster.URL("postgres"), "aorta"); err != nil {
		t.Fatal(err)
	}
	dbURL := cluster.URL("aorta")
	migrate := exec.CommandContext(ctx, listenerBin, "migrate")
	migrate.Env = listenerEnv(dbURL)
	if out, err := migrate.CombinedOutput(); err != nil || !strings.Contains(string(out), "database schema up to date") {
		t.Fatalf("mllp-listener migrate: %v\n%s", err, out)
	}
	db := openDB(t, dbURL)
	var dataDir string
	queryRow(t, db, `SHOW data_directory`, nil, &dataDir)
	l := startListener(t, dbURL, "--migrate=false", "--store-retry-budget", budget.String())

	var sent []*tracked // every message of every phase, for the final check
	for i, tt := range []struct {
		name string
		stop func() error
	}{
		{"fast shutdown", func() error { return cluster.Stop(ctx) }},
		{"crash", func() error { return crashPostgres(t, dataDir) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sctx, scancel := context.WithTimeout(ctx, streamDeadline)
			defer scancel()
			s := startStream(sctx, l.MLLPAddr, streamConfig{senders: 6, first: 100000 * i, attemptTimeout: 10 * time.Second})
			s.waitAcked(t, 100, 30*time.Second)

			if err := tt.stop(); err != nil {
				t.Fatalf("stop the server: %v", err)
			}
			down := time.Now()
			time.Sleep(outage)
			up := time.Now()
			if err := cluster.Start(ctx); err != nil {
				t.Fatalf("start the server again: %v", err)
			}
			t.Logf("server down for %v, back after %v", up.Sub(down).Round(time.Millisecond), time.Since(down).Round(time.Millisecond))

			msgs := finishStream(t, s, db, up)
			sent = append(sent, msgs...)
			t.Logf("%v", summarize(msgs))
			if n := checkNoAckWhileDown(t, msgs, down, up); n == 0 {
				t.Errorf("no frame was sent while the server was down: the test proved nothing")
			}
			acked := checkAckedAreStored(t, db, msgs)
			checkAllStoredOnce(t, db, sent)
			t.Logf("verified: %d messages sent in this phase, %d ACKed; %d stored once each with their outbox row over both phases, none lost in the %s",
				len(msgs), acked, count(t, db, `SELECT count(*) FROM messages`), tt.name)
		})
	}
}

// crashPostgres shuts the server of dataDir down in immediate mode, as
// pg_ctl stop -m immediate does (SIGQUIT to the postmaster): every
// process exits at once, shared memory (unwritten WAL included) is
// dropped, and the next start runs crash recovery. It returns when the
// postmaster is gone.
func crashPostgres(t *testing.T, dataDir string) error {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	if err != nil {
		return err
	}
	if err := syscall.Kill(pid, syscall.SIGQUIT); err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			return errors.New("postmaster still running 30s after SIGQUIT")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// TestKill9 kills the listener with SIGKILL in the middle of a stream.
// Every message it had acknowledged must be stored. A sender then sends
// everything again to a restarted listener, ACKed or not: every message
// gets its AA (the already stored ones their original ACK, byte for
// byte) and none is stored twice.
func TestKill9(t *testing.T) {
	dbURL := pgtest.NewDatabase(t)
	db := openDB(t, dbURL)
	l := startListener(t, dbURL)

	ctx, cancel := context.WithTimeout(context.Background(), streamDeadline)
	defer cancel()
	kctx, kcancel := context.WithCancel(ctx)
	s := startStream(kctx, l.MLLPAddr, streamConfig{senders: 8, attemptTimeout: 10 * time.Second})
	s.waitAcked(t, 200, 30*time.Second)
	l.kill(t)
	kcancel() // the senders give up on the message in hand
	s.wait(t, 30*time.Second)
	msgs := s.all()

	acked := checkAckedAreStored(t, db, msgs)
	rows := count(t, db, `SELECT count(*) FROM messages`)
	t.Logf("killed after %d ACKs: %v; %d rows stored (%d committed without their ACK reaching the sender)",
		acked, summarize(msgs), rows, rows-acked)
	if t.Failed() {
		t.FailNow()
	}

	l2 := l.restart(t)
	s2 := startStream(ctx, l2.MLLPAddr, streamConfig{messages: bySender(msgs), attemptTimeout: 10 * time.Second})
	s2.wait(t, time.Minute)
	resent := s2.all()
	t.Logf("after restart: %v", summarize(resent))

	before := map[string][]byte{}
	for _, m := range msgs {
		if a, ok := m.firstAA(); ok {
			before[m.controlID] = a.ack
		}
	}
	for _, m := range resent {
		a, ok := m.firstAA()
		if first, acked := before[m.controlID]; ok && acked && string(a.ack) != string(first) {
			t.Errorf("%s: re-send answered\n%q\nwant the ACK sent before the kill\n%q", m.controlID, a.ack, first)
		}
	}
	checkAllStoredOnce(t, db, resent)
}

// TestGracefulShutdown sends SIGTERM during a stream: the listener exits
// 0 within its shutdown timeout, frames in flight get their ACK or no
// answer, and every ACK is backed by a row. The database is 50 ms away,
// so that at the signal every sender has a frame inside its commit: those
// must be finished and answered, not dropped.
func TestGracefulShutdown(t *testing.T) {
	const shutdownTimeout = 10 * time.Second
	dbURL := pgtest.NewDatabase(t)
	db := openDB(t, dbURL)
	proxy := startProxy(t, hostPort(t, dbURL))
	proxy.SetLatency(50 * time.Millisecond)
	l := startListener(t, withHost(t, dbURL, proxy.Addr()), "--shutdown-timeout", shutdownTimeout.String())

	ctx, cancel := context.WithTimeout(context.Background(), streamDeadline)
	defer cancel()
	sctx, scancel := context.WithCancel(ctx)
	s := startStream(sctx, l.MLLPAddr, streamConfig{senders: 8, attemptTimeout: 10 * time.Second})
	s.waitAcked(t, 100, 30*time.Second)

	l.signal(syscall.SIGTERM)
	start := time.Now()
	if !l.waitExit(shutdownTimeout + 5*time.Second) {
		t.Fatalf("listener still running %v after SIGTERM (shutdown timeout %v)", time.Since(start), shutdownTimeout)
	}
	took := time.Since(start)
	if took > shutdownTimeout {
		t.Errorf("listener exited %v after SIGTERM, later than its %v shutdown timeout", took, shutdownTimeout)
	}
	if code := l.state.ExitCode(); code != 0 {
		t.Errorf("listener exited with %d (%v), want 0", code, l.state)
	}
	if !l.log.contains(`"msg":"stopped"`) {
		t.Errorf("no \"stopped\" line in the log")
	}
	scancel()
	s.wait(t, 30*time.Second)
	msgs := s.all()
	answers, inFlight := 0, 0
	for _, m := range msgs {
		for _, a := range m.history() {
			if a.err != nil {
				continue
			}
			answers++
			if a.start.Before(start) && a.end.After(start) {
				inFlight++
			}
			if a.code != "AA" || a.msa2 != m.controlID {
				t.Errorf("%s: answered %s/%s during shutdown; want AA/%s or no answer", m.controlID, a.code, a.msa2, m.controlID)
			}
		}
	}
	checkAckedAreStored(t, db, msgs)

	// The listener's own account: every frame it read was answered, except
	// those that arrived after shutdown began and were dropped before
	// their handler ran. A frame whose handler ran must get its answer.
	var frames, responses float64
	if recs := l.log.records("stopped"); len(recs) == 1 {
		frames, _ = recs[0]["frames"].(float64)
		responses, _ = recs[0]["responses"].(float64)
	} else {
		t.Errorf("%d \"stopped\" log lines, want 1", len(recs))
	}
	dropped := len(l.log.records("mllp: frame dropped at shutdown"))
	t.Logf("exited %v after SIGTERM; %v; listener read %v frames, answered %v (%d of them sent before the signal and answered after it), dropped %d unhandled",
		took.Round(time.Millisecond), summarize(msgs), frames, responses, inFlight, dropped)
	if inFlight == 0 {
		t.Errorf("no frame was in flight at the signal: the test proved nothing about them")
	}
	if int(responses) != answers {
		t.Errorf("listener wrote %v answers, senders received %d", responses, answers)
	}
	if int(frames) != int(responses)+dropped {
		t.Errorf("listener read %v frames, answered %v and dropped %d before handling: %v frames were handled and not answered",
			frames, responses, dropped, int(frames)-int(responses)-dropped)
	}
	if t.Failed() {
		t.FailNow()
	}

	// A sender re-sends what it did not see acknowledged.
	l2 := l.restart(t)
	var unacked []*tracked
	for _, m := range msgs {
		if _, ok := m.firstAA(); !ok {
			unacked = append(unacked, m)
		}
	}
	s2 := startStream(ctx, l2.MLLPAddr, streamConfig{messages: bySender(unacked), attemptTimeout: 10 * time.Second})
	s2.wait(t, time.Minute)
	t.Logf("re-sent %d unacknowledged messages: %v", len(unacked), summarize(s2.all()))
	final := append(s2.all(), ackedOnly(msgs)...)
	checkAllStoredOnce(t, db, final)
}

func ackedOnly(msgs []*tracked) []*tracked {
	var out []*tracked
	for _, m := range msgs {
		if _, ok := m.firstAA(); ok {
			out = append(out, m)
		}
	}
	return out
}

// hostPort returns the host:port of a database URL.
func hostPort(t *testing.T, dbURL string) string {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatalf("parse %s: %v", dbURL, err)
	}
	if u.Port() == "" {
		return u.Hostname() + ":5432"
	}
	return u.Host
}
