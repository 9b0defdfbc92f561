package store_test

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/aortahealth/aorta/internal/pgtest"
	"github.com/aortahealth/aorta/pkg/store"
)

// seedOps is seedMessages with routing rows (one or two of five routes),
// 300 dead letters (20 open) and a sender last heard from three days ago.
const seedOps = seedMessages + `
		INSERT INTO message_routing (message_id, status, routes, routed_at)
		SELECT id, CASE WHEN control_id LIKE '%7' THEN 'unrouted' ELSE 'routed' END,
			ARRAY['route' || (length(control_id) % 5), 'news2'], received_at
		FROM messages WHERE status = 'accepted';
		INSERT INTO dead_letters (message_id, error, attempts, resolved_at, resolution)
		SELECT id, 'x', 1, CASE WHEN n > 20 THEN now() END, CASE WHEN n > 20 THEN 'discarded' END
		FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM messages WHERE status = 'accepted' LIMIT 300) d;
		INSERT INTO messages (id, received_at, listener, remote_addr, raw, raw_sha256, sending_application, sending_facility, status)
		VALUES (gen_random_uuid(), now() - interval '3 days', 'l', '127.0.0.1:1', '\x00', '\x00', 'OLD', 'GONE', 'accepted');
		ANALYZE messages; ANALYZE message_routing; ANALYZE dead_letters`

// The ops summary and the aggregator read messages through the
// (received_at, id) index after a watermark, the senders' first listing
// through the (sender, ...) indexes, and never the whole table.
func TestOpsSummaryUsesIndexes(t *testing.T) {
	t.Parallel()
	s, url := pgtest.NewStore(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err = conn.Exec(ctx, seedOps); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	// The aggregator has counted all but the last ten minutes.
	if _, err := s.AggregateOps(ctx, now, 10*time.Minute, 1_000_000); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `ANALYZE ops_sender_counts; ANALYZE ops_route_counts; ANALYZE ops_senders`); err != nil {
		t.Fatal(err)
	}
	var wAt time.Time
	var wID uuid.UUID
	if err := conn.QueryRow(ctx, `SELECT received_at, id FROM ops_watermarks WHERE name = 'senders'`).Scan(&wAt, &wID); err != nil {
		t.Fatal(err)
	}
	day := now.Add(-24 * time.Hour).Truncate(time.Minute)
	dayHour := day.Truncate(time.Hour).Add(time.Hour)
	hour, recent := now.Add(-time.Hour).Truncate(time.Minute), now.Add(-5*time.Minute).Truncate(time.Minute)
	tests := []struct {
		name  string
		sql   string
		args  []any
		index []string // the indexes the plan must use
		// On these small tables the planner rightly prefers reading
		// message_routing (20,000 rows) or dead_letters (300) whole to a
		// thousand lookups; with sequential scans priced out it shows the
		// index path it takes on a production-sized table.
		noSeqScan bool
	}{
		{"summary senders", store.OpsSendersSQL, []any{day, dayHour, hour, recent, wAt, wID},
			[]string{"messages_received_id_idx", "ops_sender_counts_pkey"}, true},
		{"summary routes", store.OpsRoutesSQL, []any{day, dayHour, hour, wAt, wID},
			[]string{"messages_received_id_idx", "message_routing_pkey", "ops_route_counts_pkey"}, true},
		{"dead letters", store.OpsDeadLettersSQL, nil, []string{"dead_letters_open_idx"}, true},
		{"aggregate senders", store.OpsCountSenders, []any{wAt, wID, now, 5000}, []string{"messages_received_id_idx"}, false},
		{"aggregate routes", store.OpsCountRoutes, []any{wAt, wID, now, now, 5000}, []string{"messages_received_id_idx", "message_routing_pkey"}, true},
		{"first listing of senders", store.OpsSeedSendersSQL, []any{now}, []string{"messages_dedup_idx"}, true},
		{"feeds' last messages", store.FeedSendersSQL, []any{wAt, wID, now.Add(-25 * time.Hour)}, []string{"messages_received_id_idx"}, false},
		{"feed's last message id", store.FeedLastIDSQL, []any{"APP1", "FAC1", now}, []string{"messages_sender_idx"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seqscan := "on"
			if tt.noSeqScan {
				seqscan = "off"
			}
			if _, err := conn.Exec(ctx, "SET enable_seqscan = "+seqscan); err != nil {
				t.Fatal(err)
			}
			rows, err := conn.Query(ctx, "EXPLAIN "+tt.sql, tt.args...)
			if err != nil {
				t.Fatal(err)
			}
			lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				t.Fatal(err)
			}
			plan := strings.Join(lines, "\n")
			if strings.Contains(plan, "Seq Scan on messages") || strings.Contains(plan, "Seq Scan on dead_letters") {
				t.Errorf("plan scans a whole table:\n%s", plan)
			}
			for _, index := range tt.index {
				if !strings.Contains(plan, index) {
					t.Errorf("plan does not use %s:\n%s", index, plan)
				}
			}
		})
	}
}

// opsReference is the summary computed the slow, obvious way: every
// message of the day read and grouped.
func opsReference(t *testing.T, conn *pgx.Conn, now time.Time) (map[string]store.SenderStats, map[string]store.RouteStats) {
	t.Helper()
	ctx := context.Background()
	day := now.Add(-24 * time.Hour).Truncate(time.Minute)
	hour, recent := now.Add(-time.Hour).Truncate(time.Minute), now.Add(-5*time.Minute).Truncate(time.Minute)
	rows, err := conn.Query(ctx, `SELECT sending_application, sending_facility,
			count(*) FILTER (WHERE received_at >= $2), count(*) FILTER (WHERE received_at >= $1),
			count(*) FILTER (WHERE received_at >= $3), max(received_at),
			count(*) FILTER (WHERE received_at >= $1 AND status = 'rejected')
		FROM messages GROUP BY 1, 2`, day, hour, recent)
	if err != nil {
		t.Fatal(err)
	}
	senders := map[string]store.SenderStats{}
	for rows.Next() {
		var s store.SenderStats
		var n int64
		if err := rows.Scan(&s.SendingApplication, &s.SendingFacility, &s.MessagesLastHour, &s.MessagesLastDay, &n, &s.LastMessageAt, &s.RejectedLastDay); err != nil {
			t.Fatal(err)
		}
		s.Sender = s.SendingApplication + "^" + s.SendingFacility
		s.RatePerMinute = float64(n) / now.Sub(recent).Minutes()
		senders[s.Sender] = s
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows, err = conn.Query(ctx, `SELECT route, count(*) FILTER (WHERE m.received_at >= $2), count(*)
		FROM messages m JOIN message_routing r ON r.message_id = m.id, unnest(r.routes) route
		WHERE r.status = 'routed' AND m.received_at >= $1 GROUP BY 1`, day, hour)
	if err != nil {
		t.Fatal(err)
	}
	routes := map[string]store.RouteStats{}
	for rows.Next() {
		var r store.RouteStats
		if err := rows.Scan(&r.Route, &r.MessagesLastHour, &r.MessagesLastDay); err != nil {
			t.Fatal(err)
		}
		routes[r.Route] = r
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return senders, routes
}

// compareOps checks a summary against the reference, sender by sender
// and route by route.
func compareOps(t *testing.T, got *store.OpsSummary, senders map[string]store.SenderStats, routes map[string]store.RouteStats) {
	t.Helper()
	if len(got.Senders) != len(senders) {
		t.Errorf("%d senders, want %d", len(got.Senders), len(senders))
	}
	bad := 0
	for _, g := range got.Senders {
		w := senders[g.Sender]
		rateOK := math.Abs(g.RatePerMinute-w.RatePerMinute) < 1e-9
		if g.LastMessageAt.Equal(w.LastMessageAt) && rateOK {
			g.LastMessageAt, g.RatePerMinute = w.LastMessageAt, w.RatePerMinute
		}
		if g != w && bad < 5 {
			bad++
			t.Errorf("sender %s:\n got %+v\nwant %+v", g.Sender, g, w)
		}
	}
	if len(got.Routes) != len(routes) {
		t.Errorf("routes %+v, want %+v", got.Routes, routes)
	}
	for _, g := range got.Routes {
		if g != routes[g.Route] {
			t.Errorf("route %+v, want %+v", g, routes[g.Route])
		}
	}
}

// Whatever the aggregator has counted (nothing, part, all, all but the
// last seconds), the summary equals the slow reference: the buckets and
// the direct count after the watermark never miss or double a message.
// Every sender is listed, one silent for three days too.
func TestOpsAggregation(t *testing.T) {
	t.Parallel()
	s, url := pgtest.NewStore(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err = conn.Exec(ctx, seedOps); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name string
		// run changes the database before the summary is compared.
		run func(t *testing.T, now time.Time)
	}{
		// Before its first pass only the senders of the day are known.
		{"before any aggregation", func(*testing.T, time.Time) {}},
		{"one partial pass", func(t *testing.T, now time.Time) {
			res, err := s.AggregateOps(ctx, now, 0, 200)
			if err != nil || !res.Ran || res.Senders != 200 || !res.More {
				t.Fatalf("AggregateOps = %+v, %v; want 200 senders counted and more to do", res, err)
			}
		}},
		{"caught up but the last 20 minutes", func(t *testing.T, now time.Time) {
			for i := 0; ; i++ {
				res, err := s.AggregateOps(ctx, now, 20*time.Minute, 400)
				if err != nil {
					t.Fatal(err)
				}
				if !res.More {
					break
				}
				if i > 100 {
					t.Fatal("aggregation does not catch up")
				}
			}
		}},
		{"new messages from a new sender", func(t *testing.T, now time.Time) {
			if _, err := conn.Exec(ctx, `INSERT INTO messages (id, received_at, listener, remote_addr, raw, raw_sha256, sending_application, sending_facility, status)
				SELECT gen_random_uuid(), now() - (i || ' seconds')::interval, 'l', '127.0.0.1:1', '\x00', '\x00', 'NEW', 'HOSP',
					CASE WHEN i % 2 = 0 THEN 'rejected' ELSE 'accepted' END
				FROM generate_series(1, 30) i`); err != nil {
				t.Fatal(err)
			}
		}},
		{"caught up", func(t *testing.T, now time.Time) {
			if _, err := s.AggregateOps(ctx, now, 0, 1_000_000); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			now := time.Now()
			st.run(t, now)
			got, err := s.OpsSummary(ctx, now)
			if err != nil {
				t.Fatal(err)
			}
			senders, routes := opsReference(t, conn, now)
			if _, ok := senders["OLD^GONE"]; !ok || len(senders) < 281 {
				t.Fatalf("reference lists %d senders, without OLD^GONE; the test means it to", len(senders))
			}
			if st.name == "before any aggregation" {
				delete(senders, "OLD^GONE")
			}
			compareOps(t, got, senders, routes)
		})
	}
}

// Routes are counted only once the messages before them have left the
// outbox: a message still waiting holds the routes watermark back, so
// its routing row, written later, is counted then.
func TestOpsAggregationWaitsForRouting(t *testing.T) {
	t.Parallel()
	s, url := pgtest.NewStore(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err = conn.Exec(ctx, seedOps); err != nil {
		t.Fatal(err)
	}
	// The message of 30 minutes ago waits in the outbox, unrouted.
	var waiting uuid.UUID
	var waitingAt time.Time
	if err := conn.QueryRow(ctx, `WITH m AS (SELECT id, received_at FROM messages WHERE status = 'accepted' AND received_at < now() - interval '30 minutes'
			ORDER BY received_at DESC LIMIT 1),
		d AS (DELETE FROM message_routing WHERE message_id = (SELECT id FROM m))
		INSERT INTO outbox (message_id, partition_key, created_at) SELECT id, 1, received_at FROM m RETURNING message_id, (SELECT received_at FROM m)`).Scan(&waiting, &waitingAt); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if _, err := s.AggregateOps(ctx, now, 0, 1_000_000); err != nil {
		t.Fatal(err)
	}
	marks := map[string]time.Time{}
	rows, _ := conn.Query(ctx, `SELECT name, received_at FROM ops_watermarks`)
	for rows.Next() {
		var name string
		var at time.Time
		if err := rows.Scan(&name, &at); err != nil {
			t.Fatal(err)
		}
		marks[name] = at
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if !marks["routes"].Before(waitingAt) || marks["senders"].Before(now.Add(-3*time.Minute)) {
		t.Fatalf("watermarks %v; want routes before the waiting message (%s), senders within the last minutes", marks, waitingAt)
	}
	// The router routes it and deletes its outbox row.
	if _, err := conn.Exec(ctx, `INSERT INTO message_routing (message_id, status, routes, routed_at) VALUES ($1, 'routed', '{late-route}', now())`, waiting); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `DELETE FROM outbox`); err != nil {
		t.Fatal(err)
	}
	for i, when := range []string{"routed, not yet aggregated", "aggregated"} {
		if i == 1 {
			if _, err := s.AggregateOps(ctx, now, 0, 1_000_000); err != nil {
				t.Fatal(err)
			}
		}
		t.Run(when, func(t *testing.T) {
			got, err := s.OpsSummary(ctx, now)
			if err != nil {
				t.Fatal(err)
			}
			senders, routes := opsReference(t, conn, now)
			compareOps(t, got, senders, routes)
			if routes["late-route"].MessagesLastHour != 1 {
				t.Errorf("late-route %+v, want one message in the hour", routes["late-route"])
			}
		})
	}
}

// Two routers aggregating at once count each message once: the second
// finds the lock taken and does nothing.
func TestOpsAggregationOneAtATime(t *testing.T) {
	t.Parallel()
	s, url := pgtest.NewStore(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err = conn.Exec(ctx, seedOps); err != nil {
		t.Fatal(err)
	}
	// Hold the lock as another router's pass would.
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(7262734)`); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	res, err := s.AggregateOps(ctx, now, 0, 1_000_000)
	if err != nil || res.Ran {
		t.Fatalf("AggregateOps while another pass runs = %+v, %v; want not run", res, err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			_, err := s.AggregateOps(ctx, now, 0, 1_000_000)
			errs <- err
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.OpsSummary(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	senders, routes := opsReference(t, conn, now)
	compareOps(t, got, senders, routes)
	var counted int
	if err := conn.QueryRow(ctx, `SELECT sum(messages) FROM ops_sender_counts WHERE width = 'hour'`).Scan(&counted); err != nil {
		t.Fatal(err)
	}
	want := count(t, url, `SELECT count(*) FROM messages WHERE received_at >= $1`, now.Add(-25*time.Hour))
	if counted != want {
		t.Errorf("hour buckets hold %d messages, want %d (each message of the last 25 hours once)", counted, want)
	}
}

// BenchmarkOpsSummaryMillion seeds 1,000,000 messages received over one
// day (COPY), then times the summary the way it was computed before the
// aggregator (every message of the day grouped) and as it is now, before
// and after the aggregator has caught up. Run with
//
//	go test -run '^$' -bench OpsSummaryMillion -benchtime 10x ./pkg/store
func BenchmarkOpsSummaryMillion(b *testing.B) {
	s, url := pgtest.NewStore(b)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	const n = 1_000_000
	start := time.Now()
	now := time.Now()
	src := pgx.CopyFromSlice(n, func(i int) ([]any, error) {
		at := now.Add(-time.Duration(i) * (24 * time.Hour / n))
		status := "accepted"
		if i%50 == 0 {
			status = "rejected"
		}
		return []any{uuid.New(), at, "l", "127.0.0.1:1", []byte("MSH|"), []byte{0},
			fmt.Sprintf("APP%d", i%40), fmt.Sprintf("FAC%d", i%7), "ORU", "R01", fmt.Sprintf("CID%d", i), status}, nil
	})
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"messages"}, []string{"id", "received_at", "listener", "remote_addr", "raw", "raw_sha256",
		"sending_application", "sending_facility", "message_type", "trigger_event", "control_id", "status"}, src); err != nil {
		b.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO message_routing (message_id, status, routes, routed_at)
		SELECT id, 'routed', ARRAY['route' || (length(control_id) % 5), 'news2'], received_at FROM messages WHERE status = 'accepted';
		ANALYZE messages; ANALYZE message_routing`); err != nil {
		b.Fatal(err)
	}
	b.Logf("seeded %d messages in %s", n, time.Since(start).Round(time.Millisecond))
	// The summary's message counts as they were before the aggregator.
	const before = `SELECT sending_application, sending_facility,
			count(*) FILTER (WHERE received_at >= $2), count(*), count(*) FILTER (WHERE received_at >= $3),
			max(received_at), count(*) FILTER (WHERE status = 'rejected')
		FROM messages WHERE received_at >= $1
		GROUP BY sending_application, sending_facility;
		`
	const beforeRoutes = `SELECT route, count(*) FILTER (WHERE m.received_at >= $2), count(*)
		FROM messages m JOIN message_routing r ON r.message_id = m.id CROSS JOIN LATERAL unnest(r.routes) AS route
		WHERE m.received_at >= $1 AND r.status = 'routed'
		GROUP BY route`
	b.Run("before", func(b *testing.B) {
		for b.Loop() {
			now := time.Now()
			for _, q := range []struct {
				sql  string
				args []any
			}{{before, []any{now.Add(-24 * time.Hour), now.Add(-time.Hour), now.Add(-5 * time.Minute)}},
				{beforeRoutes, []any{now.Add(-24 * time.Hour), now.Add(-time.Hour)}}} {
				rows, err := conn.Query(ctx, q.sql, q.args...)
				if err != nil {
					b.Fatal(err)
				}
				rows.Close()
				if rows.Err() != nil {
					b.Fatal(rows.Err())
				}
			}
		}
	})
	start = time.Now()
	passes := 0
	for {
		res, err := s.AggregateOps(ctx, time.Now(), 30*time.Second, 50_000)
		if err != nil {
			b.Fatal(err)
		}
		passes++
		if !res.More {
			break
		}
	}
	b.Logf("aggregator caught up with %d messages in %s (%d passes)", n, time.Since(start).Round(time.Millisecond), passes)
	b.Run("after", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.OpsSummary(ctx, time.Now()); err != nil {
				b.Fatal(err)
			}
		}
	})
}
