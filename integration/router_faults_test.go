package integration

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/aortahealth/aorta/internal/pgtest"
	"github.com/aortahealth/aorta/pkg/patient"
	"github.com/aortahealth/aorta/pkg/store"
)

// The tests in this file disturb the router while senders stream: kill -9
// and restarts, two routers sharing the lanes (and one of them killed),
// database outages and silently dead connections; they check that a
// backlog does not make one patient wait for others, and measure
// ACK-to-event latency. Like the listener's outage tests they do not call
// t.Parallel: they are heavy, their timing matters, and on a small machine
// they run one at a time.

const (
	// routerLeaseTTL is the --lease-ttl of these tests: short, so that a
	// dead router's lanes move within seconds.
	routerLeaseTTL = 3 * time.Second
	// faultDrainTimeout bounds the wait for the outbox to drain after a
	// disturbance: lease expiries, reconnections and the backlog.
	faultDrainTimeout = 90 * time.Second
)

// seqPlan is a stream of ordered per-patient messages: each of senders
// connections sends perSender messages for its own patients, round robin,
// so that each patient's messages travel in order on one connection.
// Message n of a patient is an ADT^A01 when n is 0, an ADT^A08 every fifth
// message, otherwise an ORU^R01 with two observations (heart rate,
// respiratory rate), clinical time 08:00 + n minutes. Its control ID
// names the patient and n, so the order can be checked from the events.
type seqPlan struct {
	tag                                   string
	senders, perSender, patientsPerSender int
}

func (p seqPlan) mrn(patientNo int) string { return fmt.Sprintf("%sP%03d", p.tag, patientNo) }

// message returns message n of patient patientNo and how many events it
// must produce.
func (p seqPlan) message(patientNo, n int) (cid string, raw []byte, events int) {
	cid = fmt.Sprintf("%s-P%03d-N%03d", p.tag, patientNo, n)
	mrn := p.mrn(patientNo)
	when := time.Date(2026, 3, 12, 8, 0, 0, 0, time.UTC).Add(time.Duration(n)*time.Minute).Format("20060102150405") + "+0000"
	switch {
	case n == 0:
		return cid, adtMsg(cid, "A01", mrn, when, "WARD1^1^1"), 1
	case n%5 == 0:
		return cid, adtMsg(cid, "A08", mrn, when, fmt.Sprintf("WARD%d^1^1", n%3)), 1
	}
	return cid, hl7Msg("MSH|^~\\&|EOBS|WARD7|AORTA|AORTA|"+when+"||ORU^R01^ORU_R01|"+cid+"|P|2.5.1",
		"PID|1||"+mrn+"^^^GENHOSP^MR",
		fmt.Sprintf("OBR|1||F%03d^EOBS|NEWS2^NEWS2 observation set^L|||%s", n, when),
		fmt.Sprintf("OBX|1|NM|8867-4^Heart rate^LN||%d|/min|||||F|||%s", 60+n%50, when),
		fmt.Sprintf("OBX|2|NM|9279-1^Respiratory rate^LN||%d|/min|||||F|||%s", 12+n%10, when)), 2
}

// build returns the messages per sender and the events each must produce.
func (p seqPlan) build() ([][]*tracked, map[string]int) {
	out := make([][]*tracked, p.senders)
	want := map[string]int{}
	for s := range p.senders {
		for k := range p.perSender {
			patientNo := s*p.patientsPerSender + k%p.patientsPerSender
			cid, raw, n := p.message(patientNo, k/p.patientsPerSender)
			out[s] = append(out[s], &tracked{sender: s, seq: k, controlID: cid, raw: raw})
			want[cid] = n
		}
	}
	return out, want
}

// seqOf returns n from a control ID of the plan.
func seqOf(controlID string) int {
	i := strings.LastIndex(controlID, "-N")
	if i < 0 {
		return -1
	}
	n, err := strconv.Atoi(controlID[i+2:])
	if err != nil {
		return -1
	}
	return n
}

func sumEvents(want map[string]int) int {
	n := 0
	for _, v := range want {
		n += v
	}
	return n
}

// routedCount is how many messages have a routing outcome.
func routedCount(t *testing.T, db *pgxpool.Pool) int {
	t.Helper()
	return count(t, db, `SELECT count(*) FROM message_routing`)
}

// waitRouted waits until at least n messages have a routing outcome.
func waitRouted(t *testing.T, db *pgxpool.Pool, n int, d time.Duration) {
	t.Helper()
	eventually(t, d, fmt.Sprintf("%d messages routed", n), func() (bool, string) {
		got := routedCount(t, db)
		return got >= n, fmt.Sprintf("%d routed", got)
	})
}

// finishRouterStream waits for the senders to deliver everything, then up
// to drainBound for the router to drain, and checks on the way that every
// message was ACKed and stored once.
func finishRouterStream(t *testing.T, s *stream, db *pgxpool.Pool, drainBound time.Duration, routers ...*routerProc) []*tracked {
	t.Helper()
	if !s.wait(t, streamDeadline) {
		t.Fatalf("the stream did not finish")
	}
	msgs := s.all()
	checkStoredOnceRouted(t, db, msgs)
	start := time.Now()
	if ok, why := poll(drainBound, func() (bool, string) { return drained(t, db) }); !ok {
		for _, r := range routers {
			r.diagnose(t)
		}
		t.Fatalf("waited %v for the router to drain the outbox: %s", drainBound, why)
	}
	t.Logf("%v; outbox drained %v after the last ACK", summarize(msgs), time.Since(start).Round(time.Millisecond))
	return msgs
}

// TestRouterKill9ExactlyOnce streams 800 messages for 40 patients over 8
// connections and kills the router with SIGKILL three times while it
// applies them, restarting it each time (once under the same instance
// name, which takes its lanes back at once, and twice under a new one,
// which waits for the dead one's leases to expire). Nothing may be lost
// or applied twice, and every patient's events keep their arrival order.
func TestRouterKill9ExactlyOnce(t *testing.T) {
	dbURL := pgtest.NewDatabase(t)
	db := openDB(t, dbURL)
	l := startListener(t, dbURL)
	args := []string{"--lease-ttl", routerLeaseTTL.String(), "--batch-size", "10"}
	r := startRouter(t, dbURL, routesFile(t, "routes.yaml"), append([]string{"--id", "kill9-a"}, args...)...)

	plan := seqPlan{tag: "K9", senders: 8, perSender: 100, patientsPerSender: 5}
	msgs, want := plan.build()
	ctx, cancel := context.WithTimeout(context.Background(), streamDeadline)
	defer cancel()
	s := startStream(ctx, l.MLLPAddr, streamConfig{messages: msgs, pace: 15 * time.Millisecond})

	for i, kill := range []struct {
		after int    // routed messages before the kill
		id    string // instance name of the restarted router
	}{{100, "kill9-a"}, {300, "kill9-b"}, {500, "kill9-c"}} {
		waitRouted(t, db, kill.after, faultDrainTimeout)
		// Kill it when one of its sessions is inside a transaction, if
		// that happens soon: a crash between BEGIN and COMMIT is the case
		// that matters.
		inTx := false
		for deadline := time.Now().Add(5 * time.Second); !inTx && time.Now().Before(deadline); {
			inTx = count(t, db, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
				AND application_name = 'aorta-router' AND xact_start IS NOT NULL AND query NOT LIKE 'LISTEN%'`) > 0
		}
		r.kill(t)
		var outbox int
		queryRow(t, db, `SELECT count(*) FROM outbox`, nil, &outbox)
		t.Logf("kill %d: SIGKILL router %s (in a transaction: %v) with %d messages routed, %d waiting in the outbox, %d ACKed so far",
			i+1, r.ID, inTx, routedCount(t, db), outbox, s.acked.Load())
		r = startRouter(t, dbURL, routesFile(t, "routes.yaml"), append([]string{"--id", kill.id}, args...)...)
	}
	finishRouterStream(t, s, db, faultDrainTimeout, r)
	n := checkExactlyOnce(t, db, want)
	patients := checkPatientOrder(t, db, seqOf)
	t.Logf("%d messages, %d stored, %d events (want %d) for %d patients: each message routed once, no duplicate, per-patient order kept across 3 kill -9",
		len(want), count(t, db, `SELECT count(*) FROM messages`), n, sumEvents(want), patients)
}

// TestTwoRoutersPerPatientOrder streams ordered messages per patient
// while the lanes move between two routers: router-2 starts mid-stream
// (router-1 hands over half its lanes while applying), both then share
// the work, and router-2 is killed (router-1 takes its lanes back after
// the lease TTL and finishes the stream). Every patient's events must
// follow the order its messages were stored, exactly once.
func TestTwoRoutersPerPatientOrder(t *testing.T) {
	dbURL := pgtest.NewDatabase(t)
	db := openDB(t, dbURL)
	l := startListener(t, dbURL)
	args := []string{"--lease-ttl", routerLeaseTTL.String(), "--batch-size", "10"}
	r1 := startRouter(t, dbURL, routesFile(t, "routes.yaml"), append([]string{"--id", "router-1"}, args...)...)

	plan := seqPlan{tag: "TR", senders: 8, perSender: 100, patientsPerSender: 5}
	msgs, want := plan.build()
	lanes := map[int]bool{}
	for p := range plan.senders * plan.patientsPerSender {
		lanes[int(patient.Partition("GENHOSP/"+plan.mrn(p))%store.Lanes)] = true
	}
	ctx, cancel := context.WithTimeout(context.Background(), streamDeadline)
	defer cancel()
	// Paced so that the stream outlasts the hand-over and the takeover
	// (about 6 s), even when router-2 is slow to start on a loaded machine.
	s := startStream(ctx, l.MLLPAddr, streamConfig{messages: msgs, pace: 60 * time.Millisecond})

	waitRouted(t, db, len(want)/10, faultDrainTimeout)
	r2 := startRouter(t, dbURL, routesFile(t, "routes.yaml"), append([]string{"--id", "router-2"}, args...)...)
	joined := time.Now()
	eventually(t, 4*routerLeaseTTL, "the two routers to hold 32 lanes each", func() (bool, string) {
		o := laneOwners(t, db)
		return o["router-1"] == 32 && o["router-2"] == 32, fmt.Sprint(o)
	})
	t.Logf("router-2 joined with %d messages routed; lanes shared 32/32 %v later", routedCount(t, db), time.Since(joined).Round(time.Millisecond))

	waitRouted(t, db, len(want)*3/5, faultDrainTimeout)
	// Both must have applied some of the stream before router-2 dies. On a
	// loaded machine router-2 may take its lanes after three fifths were
	// routed already: wait for its first events (the stream goes on for
	// seconds more) rather than read the counters once.
	var e1, e2 float64
	eventually(t, faultDrainTimeout, "both routers to write events", func() (bool, string) {
		e1 = scrape(t, r1.HTTPAddr).sum("aorta_router_events_total")
		e2 = scrape(t, r2.HTTPAddr).sum("aorta_router_events_total")
		return e1 > 0 && e2 > 0, fmt.Sprintf("events written by router-1: %v, by router-2: %v", e1, e2)
	})
	t.Logf("%d patients in %d lanes; events so far: router-1 %v, router-2 %v", plan.senders*plan.patientsPerSender, len(lanes), e1, e2)

	r2.kill(t)
	killed := time.Now()
	eventually(t, 4*routerLeaseTTL, "router-1 to take all 64 lanes", func() (bool, string) {
		o := laneOwners(t, db)
		return o["router-1"] == 64, fmt.Sprint(o)
	})
	t.Logf("router-2 killed with %d messages routed; router-1 held all 64 lanes %v later (lease TTL %v)",
		routedCount(t, db), time.Since(killed).Round(time.Millisecond), routerLeaseTTL)

	finishRouterStream(t, s, db, faultDrainTimeout, r1)
	eventually(t, ioTimeout, "router-1's aorta_router_lanes_held = 64", func() (bool, string) {
		v := scrape(t, r1.HTTPAddr).sum("aorta_router_lanes_held")
		return v == 64, fmt.Sprint(v)
	})
	n := checkExactlyOnce(t, db, want)
	patients := checkPatientOrder(t, db, seqOf)
	t.Logf("%d messages, %d events for %d patients: exactly once and in per-patient order across a hand-over, two routers and a takeover",
		len(want), n, patients)
}

// TestRouterDatabaseOutage takes the database away from the router (the
// listener keeps its own, direct connection and goes on storing) while
// senders stream: twice the network between the router and PostgreSQL is
// cut for a few seconds, or twice the router's sessions are terminated.
// Afterwards the outbox drains with every event written exactly once and
// in per-patient order. (Connections that die silently are
// TestRouterSilentlyDeadConnections.)
func TestRouterDatabaseOutage(t *testing.T) {
	for _, tt := range []struct {
		name   string
		outage func(t *testing.T, db *pgxpool.Pool, dbName string, proxy *tcpProxy, r *routerProc)
	}{
		{"network cut", func(t *testing.T, _ *pgxpool.Pool, _ string, proxy *tcpProxy, r *routerProc) {
			proxy.Cut()
			eventually(t, 15*time.Second, "the router's /readyz to report the database down", func() (bool, string) {
				code, body, err := httpGet(r.HTTPAddr, "/readyz")
				return err == nil && code == 503, body
			})
			time.Sleep(outage) // the outage itself; correctness never depends on it
			proxy.Restore()
		}},
		{"sessions terminated", func(t *testing.T, db *pgxpool.Pool, dbName string, _ *tcpProxy, _ *routerProc) {
			var n int
			// Every session but the listener's and this test's: the
			// router's pool and its LISTEN connection.
			queryRow(t, db, `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
				WHERE datname = $1 AND pid <> pg_backend_pid()
				  AND application_name NOT IN ('aorta-mllp-listener', 'aorta-integration-test')`, []any{dbName}, &n)
			if n == 0 {
				t.Fatalf("no router session to terminate")
			}
			t.Logf("terminated %d router sessions", n)
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dbURL := pgtest.NewDatabase(t)
			db := openDB(t, dbURL)
			l := startListener(t, dbURL)
			proxy := startProxy(t, hostPort(t, dbURL))
			r := startRouter(t, withHost(t, dbURL, proxy.Addr()), routesFile(t, "routes.yaml"),
				"--lease-ttl", routerLeaseTTL.String(), "--batch-size", "10", "--apply-timeout", "5s")
			t.Cleanup(proxy.close)

			plan := seqPlan{tag: "DB", senders: 6, perSender: 80, patientsPerSender: 4}
			msgs, want := plan.build()
			ctx, cancel := context.WithTimeout(context.Background(), streamDeadline)
			defer cancel()
			s := startStream(ctx, l.MLLPAddr, streamConfig{messages: msgs, pace: 10 * time.Millisecond})
			for _, after := range []int{100, 250} {
				waitRouted(t, db, after, faultDrainTimeout)
				routed := routedCount(t, db)
				start := time.Now()
				tt.outage(t, db, databaseName(t, dbURL), proxy, r)
				t.Logf("%s after %d messages routed; database back after %v", tt.name, routed, time.Since(start).Round(time.Millisecond))
			}
			// Back within the bound the listener's outage tests use: the
			// router "recovers by itself" once the database is back.
			finishRouterStream(t, s, db, recoveryBound, r)
			n := checkExactlyOnce(t, db, want)
			patients := checkPatientOrder(t, db, seqOf)
			m := scrape(t, r.HTTPAddr)
			t.Logf("%d messages sent, %d ACKed, %d stored, %d events (want %d), %d patients: exactly once and in order, outbox drained; %v failed batch transactions retried",
				len(want), s.acked.Load(), count(t, db, `SELECT count(*) FROM messages`), n, sumEvents(want), patients, m.sum("aorta_router_apply_errors_total"))
		})
	}
}

// TestRouterAckToEventLatency measures, for 500 messages sent over 4
// connections as fast as the listener acknowledges them, then for 200 sent
// at about 100 per second, the time from the listener storing each message
// (received_at; it acknowledges right after its commit) to the message's
// events, and from the client receiving the ACK to the events. It prints
// the figures and asserts none: machines are noisy.
func TestRouterAckToEventLatency(t *testing.T) {
	dbURL := pgtest.NewDatabase(t)
	db := openDB(t, dbURL)
	l := startListener(t, dbURL)
	r := startRouter(t, dbURL, routesFile(t, "routes.yaml"))

	for _, phase := range []struct {
		name      string
		perSender int
		pace      time.Duration
	}{
		{"flat out", 125, 0},
		{"paced, ~100 msg/s", 50, 40 * time.Millisecond},
	} {
		const senders = 4
		tag := fmt.Sprintf("LAT%d", phase.perSender)
		msgs := make([][]*tracked, senders)
		for s := range senders {
			for k := range phase.perSender {
				cid := fmt.Sprintf("%s-%d-%03d", tag, s, k)
				mrn := fmt.Sprintf("LAT%02d", (s*phase.perSender+k)%40)
				raw := hrMsg(cid, mrn, fmt.Sprintf("%s%d%03d", tag, s, k), "20260312090000+0000", fmt.Sprint(60+k%40), "F")
				msgs[s] = append(msgs[s], &tracked{sender: s, seq: k, controlID: cid, raw: raw})
			}
		}
		before := scrape(t, r.HTTPAddr)
		ctx, cancel := context.WithTimeout(context.Background(), streamDeadline)
		start := time.Now()
		s := startStream(ctx, l.MLLPAddr, streamConfig{messages: msgs, pace: phase.pace})
		sent := finishRouterStream(t, s, db, drainTimeout, r)
		elapsed := time.Since(start)
		cancel()

		// The events' recorded_at is the router transaction's start
		// (now()), a few milliseconds before its commit makes them visible.
		recorded := map[string]time.Time{}
		var fromReceived []float64
		ctx2, cancel2 := context.WithTimeout(context.Background(), ioTimeout)
		rows, err := db.Query(ctx2, `SELECT m.control_id, min(e.recorded_at), extract(epoch FROM min(e.recorded_at) - m.received_at)
			FROM events e JOIN messages m ON m.id = e.message_id WHERE m.control_id LIKE $1 GROUP BY m.id`, tag+"-%")
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var cid string
			var at time.Time
			var d float64
			if err := rows.Scan(&cid, &at, &d); err != nil {
				t.Fatal(err)
			}
			recorded[cid] = at
			fromReceived = append(fromReceived, d)
		}
		rows.Close()
		cancel2()
		var fromACK []float64
		for _, m := range sent {
			a, ok := m.firstAA()
			if at, done := recorded[m.controlID]; ok && done {
				fromACK = append(fromACK, at.Sub(a.end).Seconds())
			}
		}
		if len(fromReceived) != len(sent) || len(fromACK) != len(sent) {
			t.Fatalf("%d messages with events, %d with an ACK, want %d", len(fromReceived), len(fromACK), len(sent))
		}
		m := scrape(t, r.HTTPAddr)
		var buckets []string
		for _, le := range []string{"0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5"} {
			series := `aorta_router_ack_to_event_seconds_bucket{le="` + le + `"}`
			buckets = append(buckets, fmt.Sprintf("<=%ss:%v", le, m[series]-before[series]))
		}
		n := m.sum("aorta_router_ack_to_event_seconds_count") - before.sum("aorta_router_ack_to_event_seconds_count")
		mean := (m.sum("aorta_router_ack_to_event_seconds_sum") - before.sum("aorta_router_ack_to_event_seconds_sum")) / n
		t.Logf("%s: %d messages over %d connections in %v (%.0f msg/s end to end)", phase.name, len(sent), senders, elapsed.Round(time.Millisecond), float64(len(sent))/elapsed.Seconds())
		t.Logf("%s: stored (received_at) -> events recorded_at: %s", phase.name, quantiles(fromReceived))
		t.Logf("%s: ACK at the client -> events recorded_at:     %s", phase.name, quantiles(fromACK))
		t.Logf("%s: router's aorta_router_ack_to_event_seconds (after commit): mean %.1f ms over %v; cumulative %s",
			phase.name, 1000*mean, n, strings.Join(buckets, " "))
	}
}

// quantiles formats p50, p90, p99 and max of durations in seconds as ms.
func quantiles(ds []float64) string {
	sort.Float64s(ds)
	q := func(p float64) float64 {
		if len(ds) == 0 {
			return math.NaN()
		}
		return 1000 * ds[min(len(ds)-1, int(math.Ceil(p*float64(len(ds))))-1)]
	}
	return fmt.Sprintf("p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms (n=%d)", q(0.5), q(0.9), q(0.99), q(1), len(ds))
}

// TestRouterBacklogFairness queues a backlog for two patients and, before
// it, one message for a third patient in a higher lane, while no router
// runs (a router outage, a deployment), then starts one router. Different
// patients never wait for each other (promise 4): the oldest message in
// the outbox, alone in its lane, must not wait until the other lanes'
// backlog is applied.
func TestRouterBacklogFairness(t *testing.T) {
	dbURL := pgtest.NewDatabase(t)
	db := openDB(t, dbURL)
	l := startListener(t, dbURL)

	// Two busy patients in low lanes, one waiting patient in a higher lane.
	laneOf := func(mrn string) int { return int(patient.Partition("GENHOSP/"+mrn) % store.Lanes) }
	var busy []string
	lone := ""
	for i := 0; len(busy) < 2 || lone == ""; i++ {
		mrn := fmt.Sprintf("FAIR%03d", i)
		switch lane := laneOf(mrn); {
		case lane < 16 && len(busy) < 2 && (len(busy) == 0 || laneOf(busy[0]) != lane):
			busy = append(busy, mrn)
		case lane >= 48 && lone == "":
			lone = mrn
		}
	}
	const backlog = 200
	queued := [][]byte{hrMsg("FAIR-LONE", lone, "V1", "20260312080000+0000", "120", "F")}
	for i := range backlog {
		for _, mrn := range busy {
			queued = append(queued, hrMsg(fmt.Sprintf("FAIR-%s-%03d", mrn, i), mrn, fmt.Sprintf("V%03d", i), "20260312090000+0000", fmt.Sprint(60+i%40), "F"))
		}
	}
	sendAA(t, l.MLLPAddr, queued...)
	start := time.Now()
	startRouter(t, dbURL, routesFile(t, "routes.yaml"), "--batch-size", "10")
	waitDrained(t, db, faultDrainTimeout)
	drainedIn := time.Since(start)

	e := onlyEvent(t, db, "FAIR-LONE")
	var rank int
	queryRow(t, db, `SELECT count(*) FROM events WHERE seq < $1`, []any{e.Seq}, &rank)
	var waited float64
	queryRow(t, db, `SELECT extract(epoch FROM min(e.recorded_at) - (SELECT min(recorded_at) FROM events)) FROM events e WHERE e.seq = $1`, []any{e.Seq}, &waited)
	t.Logf("lone patient in lane %d, busy patients in lanes %d and %d with %d messages each: its message, the oldest, was applied after %d others (%.0f ms after the first event); all %d drained in %v",
		laneOf(lone), laneOf(busy[0]), laneOf(busy[1]), backlog, rank, waited*1000, len(queued), drainedIn.Round(time.Millisecond))
	// With 4 workers and batches of 10, the first round of batches holds
	// 40 rows; a fair router applies the oldest message in it.
	if rank > 40 {
		t.Errorf("the oldest message, alone in lane %d, was applied after %d messages of two other patients (lanes %d, %d): it waited for their backlog",
			laneOf(lone), rank, laneOf(busy[0]), laneOf(busy[1]))
	}
}

// TestRouterSilentlyDeadConnections: a firewall or NAT between the router
// and PostgreSQL forgets the router's connections while they are idle (a
// quiet night; cloud NAT gateways drop idle TCP connections after minutes)
// and silently drops their packets from then on; new connections work.
// The router must notice and carry on with new connections: messages
// stored afterwards are routed within a bound, as after any outage, and
// outbox notifications work again (not only the fallback poll).
func TestRouterSilentlyDeadConnections(t *testing.T) {
	dbURL := pgtest.NewDatabase(t)
	db := openDB(t, dbURL)
	l := startListener(t, dbURL)
	proxy := startProxy(t, hostPort(t, dbURL))
	r := startRouter(t, withHost(t, dbURL, proxy.Addr()), routesFile(t, "routes.yaml"),
		"--lease-ttl", routerLeaseTTL.String(), "--apply-timeout", "5s", "--poll-interval", "10s")
	t.Cleanup(proxy.close)

	var before, after [][]byte
	for i := range 10 {
		before = append(before, hrMsg(fmt.Sprintf("DEAD-A%d", i), fmt.Sprintf("DEAD%02d", i), "V1", "20260312090000+0000", "80", "F"))
		after = append(after, hrMsg(fmt.Sprintf("DEAD-B%d", i), fmt.Sprintf("DEAD%02d", i), "V2", "20260312100000+0000", "81", "F"))
	}
	sendAA(t, l.MLLPAddr, before...)
	waitDrained(t, db, drainTimeout)
	partitioned := time.Now()
	proxy.Partition() // every open connection silently dead, for good
	proxy.Restore()   // new connections go through
	sendAA(t, l.MLLPAddr, after...)
	// A router that bounds its database calls recovers within seconds:
	// at worst an --apply-timeout for each pooled connection, a lease TTL
	// and a poll interval. recoveryBound is the listener's, 30 s.
	if ok, why := poll(recoveryBound, func() (bool, string) { return drained(t, db) }); !ok {
		r.diagnose(t)
		t.Fatalf("messages stored after the router's idle connections died silently: not routed within %v (%s)", recoveryBound, why)
	}
	t.Logf("%d messages stored after the router's connections died silently: routed %v after the partition",
		len(after), time.Since(partitioned).Round(time.Millisecond))
	// Its LISTEN connection died too. Without a new one the router only
	// polls (every 10 s here), while /readyz reports notifications ok.
	// Within recoveryBound, messages must again be routed one after the
	// other well within a poll interval: three in a row under 3 s, which
	// polling alone cannot do.
	want := map[string]int{}
	for _, raw := range append(before, after...) {
		want[controlIDOf(t, raw)] = 1
	}
	deadline := time.Now().Add(recoveryBound)
	for i, fast := 0, 0; fast < 3; i++ {
		if time.Now().After(deadline) {
			code, body, _ := httpGet(r.HTTPAddr, "/readyz")
			t.Fatalf("%v after the router recovered from its connections dying silently, new messages still wait for its poll: outbox notifications were not re-established; /readyz %d %s",
				recoveryBound, code, strings.TrimSpace(body))
		}
		cid := fmt.Sprintf("DEAD-C%d", i)
		want[cid] = 1
		sent := time.Now()
		sendAA(t, l.MLLPAddr, hrMsg(cid, "DEAD99", fmt.Sprintf("W%d", i), "20260312110000+0000", "82", "F"))
		if ok, _ := poll(3*time.Second, func() (bool, string) { return drained(t, db) }); ok {
			fast++
			t.Logf("%s routed %v after its ACK", cid, time.Since(sent).Round(time.Millisecond))
			continue
		}
		fast = 0
		waitDrained(t, db, faultDrainTimeout)
		t.Logf("%s routed %v after its ACK: by the poll, not a notification", cid, time.Since(sent).Round(time.Millisecond))
	}
	checkExactlyOnce(t, db, want)
}
