package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/aortahealth/aorta/internal/pgtest"
	"github.com/aortahealth/aorta/pkg/store"
)

// The routing-exception searches (dead_lettered, unrouted) are read from
// message_routing's copy of received_at (migration 00012); they must give
// exactly what the search gave when it walked the messages: the messages
// whose current outcome is that status, newest first, ties broken by ID,
// page after page by keyset. The routing rows are written by the router's
// own store calls (Apply, Fail, a reprocessing), and one as a router of
// an earlier release writes it, without received_at.
func TestExceptionSearch(t *testing.T) {
	t.Parallel()
	s, url := pgtest.NewStore(t)
	ctx := context.Background()
	base := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)

	// Each message's fate, newest first; m2 and m3 arrive in the same
	// microsecond, so only their IDs order them.
	const (
		routed      = "routed"
		unrouted    = "unrouted"
		dead        = "dead"         // dead-lettered by Fail
		deadApply   = "dead apply"   // dead-lettered by Apply (invalid for its route)
		rerouted    = "rerouted"     // dead-lettered, reprocessed, then routed
		deadTwice   = "dead twice"   // dead-lettered, reprocessed, dead-lettered again
		pending     = "pending"      // accepted, still in the outbox: no routing row
		rejected    = "rejected"     // rejected at the door: never routed
		deadOld     = "dead old"     // routed, then dead-lettered, by a router that does not write received_at
		unroutedOld = "unrouted old" // unrouted by that router
	)
	specs := []struct {
		name    string
		ago     time.Duration
		fate    string
		sender  string
		outcome string // what the search reports
	}{
		{"m0", 0, routed, "LAB", "routed"},
		{"m1", 1 * time.Minute, dead, "LAB", "dead_lettered"},
		{"m2", 2 * time.Minute, deadApply, "LAB", "dead_lettered"},
		{"m3", 2 * time.Minute, dead, "LAB", "dead_lettered"},
		{"m4", 3 * time.Minute, unrouted, "LAB", "unrouted"},
		{"m5", 4 * time.Minute, pending, "LAB", "pending"},
		{"m6", 5 * time.Minute, rejected, "LAB", "rejected"},
		{"m7", 6 * time.Minute, rerouted, "LAB", "routed"},
		{"m8", 7 * time.Minute, deadTwice, "LAB", "dead_lettered"},
		{"m9", 8 * time.Minute, dead, "PHARM", "dead_lettered"},
		{"m10", 9 * time.Minute, unroutedOld, "LAB", "unrouted"},
		{"m11", 10 * time.Minute, deadOld, "LAB", "dead_lettered"},
		{"m12", 11 * time.Minute, routed, "LAB", "routed"},
	}
	names := map[uuid.UUID]string{}
	ids := map[string]uuid.UUID{}
	at := map[string]time.Time{}
	fate := map[uuid.UUID]string{}
	var msgs []*store.Message
	for i, sp := range specs {
		m := newMessage("EX"+sp.name, "raw "+sp.name)
		m.ReceivedAt = base.Add(-sp.ago)
		m.Header.SendingApplication = sp.sender
		m.Outbox = &store.OutboxEntry{PartitionKey: int32(1000 + i), PatientKey: fmt.Sprintf("H/%d", i)}
		if sp.fate == rejected {
			m.Status, m.Outbox, m.AckCode, m.ErrorCode, m.Error = store.StatusRejected, nil, "AR", 100, "no MSH segment"
		}
		names[m.ID], ids[sp.name], at[sp.name], fate[m.ID] = sp.name, m.ID, m.ReceivedAt, sp.fate
		msgs = append(msgs, m)
	}
	if ids["m2"].String() >= ids["m3"].String() {
		t.Fatalf("m2's ID %v is not below m3's %v: the tie would not test the order by ID", ids["m2"], ids["m3"])
	}
	if _, err := s.Save(ctx, single(msgs...), window); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := conn.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}

	leases := leaseAll(t, s, "r1")
	apply := func(w store.Work, p store.Processed) {
		t.Helper()
		p.Work = w
		if err := s.Apply(ctx, "r1", leases[w.Lane], []store.Processed{p}, laneOf, nil); err != nil {
			t.Fatalf("apply %s: %v", names[w.MessageID], err)
		}
	}
	// route processes what is in the outbox as each message's fate says;
	// first is true for the first pass, false for the reprocessing.
	route := func(first bool) {
		t.Helper()
		work, err := s.ReadyWork(ctx, allLanes(), store.Lanes, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range work {
			switch f := fate[w.MessageID]; {
			case f == pending:
			case f == routed || (f == rerouted && !first):
				apply(w, store.Processed{Status: store.Routed, Routes: []string{"r"}})
			case f == unrouted:
				apply(w, store.Processed{Status: store.Unrouted})
			case f == deadApply:
				apply(w, store.Processed{Status: store.DeadLettered, Error: "PID-3 missing", ErrorRoute: "r"})
			case f == dead || f == rerouted || f == deadTwice:
				if dl, err := s.Fail(ctx, w, "mapping failed", "r", 0, w.Attempts+1); err != nil || !dl {
					t.Fatalf("fail %s: dead-lettered %v, %v", names[w.MessageID], dl, err)
				}
			case f == deadOld || f == unroutedOld:
				// A router of the release before migration 00012 names
				// no received_at; the trigger fills it in.
				status := map[string]string{deadOld: "routed", unroutedOld: "unrouted"}[f]
				exec(`INSERT INTO message_routing (message_id, status, routes, events, warnings, attempts, routed_at, error)
					VALUES ($1, $2, '{}', 0, '[]', 1, now(), NULL)
					ON CONFLICT (message_id) DO UPDATE SET status = EXCLUDED.status`, w.MessageID, status)
				exec(`DELETE FROM outbox WHERE id = $1`, w.OutboxID)
			default:
				t.Fatalf("%s (%s) was in the outbox", names[w.MessageID], f)
			}
		}
	}
	route(true)
	// Replays overwrite message_routing: m7 is routed this time, m8
	// dead-lettered again, and m11 dead-lettered by the earlier
	// release's router, which updates the row without naming
	// received_at.
	for _, n := range []string{"m7", "m8"} {
		if queued, err := s.ReprocessMessage(ctx, ids[n], "test"); err != nil || !queued {
			t.Fatalf("reprocess %s: queued %v, %v", n, queued, err)
		}
	}
	route(false)
	exec(`INSERT INTO message_routing (message_id, status, routes, events, warnings, attempts, routed_at, error)
		VALUES ($1, 'dead_lettered', '{}', 0, '[]', 1, now(), NULL)
		ON CONFLICT (message_id) DO UPDATE SET status = EXCLUDED.status`, ids["m11"])

	if n := count(t, url, `SELECT count(*) FROM message_routing r JOIN messages m ON m.id = r.message_id
		WHERE r.received_at IS DISTINCT FROM m.received_at`); n != 0 {
		t.Errorf("%d routing rows with another received_at than their message's", n)
	}
	if n := count(t, url, `SELECT count(*) FROM message_routing`); n != len(specs)-2 {
		t.Errorf("%d routing rows, want %d (all but the pending and the rejected message)", n, len(specs)-2)
	}

	// want lists, newest first, the messages whose outcome is status and
	// that keep holds for.
	want := func(status string, keep func(name string) bool) []string {
		var out []string
		for _, sp := range specs {
			if sp.outcome == status && (keep == nil || keep(sp.name)) {
				out = append(out, sp.name)
			}
		}
		// specs is newest first but for the tie, which the ID orders.
		if i, j := slices.Index(out, "m2"), slices.Index(out, "m3"); i >= 0 && j >= 0 {
			out[i], out[j] = out[j], out[i]
		}
		return out
	}
	before := func(n string) func(string) bool {
		return func(o string) bool {
			return at[o].Before(at[n]) || (at[o].Equal(at[n]) && ids[o].String() < ids[n].String())
		}
	}
	cursor := func(n string) *store.MessageCursor { return &store.MessageCursor{ReceivedAt: at[n], ID: ids[n]} }
	tests := []struct {
		name   string
		filter store.MessageFilter
		want   []string
	}{
		{"dead-lettered", store.MessageFilter{Status: "dead_lettered"}, want("dead_lettered", nil)},
		{"unrouted", store.MessageFilter{Status: "unrouted"}, want("unrouted", nil)},
		{"dead-lettered after a cursor on another outcome", store.MessageFilter{Status: "dead_lettered", After: cursor("m4")},
			want("dead_lettered", before("m4"))},
		{"dead-lettered after the tie's newer half", store.MessageFilter{Status: "dead_lettered", After: cursor("m3")},
			want("dead_lettered", before("m3"))},
		{"dead-lettered in a time range", store.MessageFilter{Status: "dead_lettered", Since: at["m9"], Until: at["m2"]},
			want("dead_lettered", func(n string) bool { return !at[n].Before(at["m9"]) && at[n].Before(at["m2"]) })},
		{"dead-lettered from a sender", store.MessageFilter{Status: "dead_lettered", SendingApplication: "PHARM"}, []string{"m9"}},
		{"dead-lettered by control ID", store.MessageFilter{Status: "dead_lettered", ControlID: "EXm11"}, []string{"m11"}},
		{"dead-lettered, none from the sender", store.MessageFilter{Status: "dead_lettered", SendingApplication: "NOBODY"}, nil},
		// The other outcomes, for the messages that left the exceptions
		// or never had a routing row.
		{"routed", store.MessageFilter{Status: "routed"}, want("routed", nil)},
		{"pending", store.MessageFilter{Status: "pending"}, []string{"m5"}},
		{"rejected", store.MessageFilter{Status: "rejected"}, []string{"m6"}},
	}
	for _, tt := range tests {
		for _, limit := range []int{1, 2, 3, 100} {
			t.Run(fmt.Sprintf("%s/limit %d", tt.name, limit), func(t *testing.T) {
				f := tt.filter
				f.Limit = limit
				var got []string
				for page := 0; ; page++ {
					if page > len(specs) {
						t.Fatalf("no end after %d pages: %v", page, got)
					}
					ms, err := s.MessageSearch(ctx, f)
					if err != nil {
						t.Fatal(err)
					}
					if len(ms) > limit {
						t.Fatalf("page %d: %d messages, limit %d", page, len(ms), limit)
					}
					for _, m := range ms {
						got = append(got, names[m.ID])
						if f.Status != "" && m.Outcome != f.Status {
							t.Errorf("%s: outcome %s in a search for %s", names[m.ID], m.Outcome, f.Status)
						}
						if !m.ReceivedAt.Equal(at[names[m.ID]]) {
							t.Errorf("%s: received_at %v, want %v", names[m.ID], m.ReceivedAt, at[names[m.ID]])
						}
					}
					if len(ms) < limit {
						break
					}
					last := ms[len(ms)-1]
					f.After = &store.MessageCursor{ReceivedAt: last.ReceivedAt, ID: last.ID}
				}
				if !slices.Equal(got, tt.want) {
					t.Errorf("got %v, want %v", got, tt.want)
				}
			})
		}
	}
}

// The routing-exception searches read message_routing_exception_idx:
// the matching routing rows only, newest first, and their messages by
// key, however rare the exceptions. This fails if they go back to
// walking the messages newest first and probing each one's routing row.
// The plans are those of an Aorta session (sequential scans priced out,
// store.Open), for the parameters (the first executions of a statement)
// and generic (the API's cached statements after five).
func TestExceptionSearchPlans(t *testing.T) {
	t.Parallel()
	st, _ := pgtest.NewStore(t)
	ctx := context.Background()
	pc, err := st.Pool().Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Release()
	conn := pc.Conn()
	// 20,000 messages: one in 100 dead-lettered (200: more than a page,
	// so that reading them all and sorting shows too), one in ten
	// unrouted, the rest routed but the rejected 2%.
	_, err = conn.Exec(ctx, seedMessages+`
		INSERT INTO message_routing (message_id, status, routed_at, received_at)
		SELECT id, CASE WHEN control_id LIKE '%33' THEN 'dead_lettered' WHEN control_id LIKE '%7' THEN 'unrouted' ELSE 'routed' END,
			now(), received_at
		FROM messages WHERE status = 'accepted';
		ANALYZE messages; ANALYZE message_routing`)
	if err != nil {
		t.Fatal(err)
	}
	var deadCount int
	var midDead, midUnrouted store.MessageCursor
	err = conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM message_routing WHERE status = 'dead_lettered'),
			(SELECT received_at FROM message_routing WHERE status = 'dead_lettered' ORDER BY received_at DESC LIMIT 1 OFFSET 9),
			(SELECT message_id FROM message_routing WHERE status = 'dead_lettered' ORDER BY received_at DESC LIMIT 1 OFFSET 9),
			(SELECT received_at FROM message_routing WHERE status = 'unrouted' ORDER BY received_at DESC LIMIT 1 OFFSET 1000),
			(SELECT message_id FROM message_routing WHERE status = 'unrouted' ORDER BY received_at DESC LIMIT 1 OFFSET 1000)`).
		Scan(&deadCount, &midDead.ReceivedAt, &midDead.ID, &midUnrouted.ReceivedAt, &midUnrouted.ID)
	if err != nil {
		t.Fatal(err)
	}
	const limit = 51
	now := time.Now()
	tests := []struct {
		name   string
		filter store.MessageFilter
		// maxRows bounds the rows read from messages and from the
		// exception index: one page, when the status is the only filter.
		maxRows int
		// exceptionIndex: the plan must read message_routing_exception_idx.
		exceptionIndex bool
	}{
		{"dead-lettered", store.MessageFilter{Status: "dead_lettered"}, limit, true},
		{"dead-lettered, next page", store.MessageFilter{Status: "dead_lettered", After: &midDead}, limit, true},
		{"dead-lettered in a time range", store.MessageFilter{Status: "dead_lettered", Since: now.Add(-10 * 24 * time.Hour), Until: now.Add(-24 * time.Hour)}, limit, true},
		{"unrouted", store.MessageFilter{Status: "unrouted"}, limit, true},
		{"unrouted, page 20", store.MessageFilter{Status: "unrouted", After: &midUnrouted}, limit, true},
		// With a filter on the message too, the planner may start from
		// either side, whichever it expects to be fewer rows (here the
		// sender's 500 messages, or the 200 dead letters): never from
		// all the messages.
		{"dead-lettered from a sender", store.MessageFilter{Status: "dead_lettered", SendingApplication: "APP13"}, max(deadCount, 500), false},
	}
	for _, tt := range tests {
		tt.filter.Limit = limit
		q, args, err := store.MessageSearchSQL(tt.filter, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, generic := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/generic %v", tt.name, generic), func(t *testing.T) {
				plan, text := explainSearch(t, conn, q, args, generic)
				var messagesRows, indexRows float64
				var indexes []string
				walkPlan(plan, func(n planNode) {
					if n.NodeType == "Seq Scan" {
						t.Errorf("sequential scan of %s", n.Relation)
					}
					read := (n.ActualRows + n.RemovedByFilter + n.RemovedByRecheck) * n.ActualLoops
					switch {
					case n.Relation == "messages" && strings.Contains(n.NodeType, "Scan"):
						messagesRows += read
					case n.IndexName == "message_routing_exception_idx":
						indexRows += read
					}
					if n.IndexName != "" {
						indexes = append(indexes, n.IndexName)
					}
				})
				if tt.exceptionIndex && !slices.Contains(indexes, "message_routing_exception_idx") {
					t.Errorf("indexes %v, want message_routing_exception_idx", indexes)
				}
				if messagesRows > float64(tt.maxRows) || indexRows > float64(tt.maxRows) {
					t.Errorf("read %.0f messages and %.0f index entries, want at most %d of each", messagesRows, indexRows, tt.maxRows)
				}
				if t.Failed() {
					t.Logf("plan:\n%s", text)
				}
			})
		}
	}
}

// planNode is the part of EXPLAIN (ANALYZE, FORMAT JSON) the plan tests
// read.
type planNode struct {
	NodeType         string     `json:"Node Type"`
	Relation         string     `json:"Relation Name"`
	IndexName        string     `json:"Index Name"`
	ActualRows       float64    `json:"Actual Rows"`
	ActualLoops      float64    `json:"Actual Loops"`
	RemovedByFilter  float64    `json:"Rows Removed by Filter"`
	RemovedByRecheck float64    `json:"Rows Removed by Index Recheck"`
	Plans            []planNode `json:"Plans"`
}

func walkPlan(n planNode, f func(planNode)) {
	f(n)
	for _, c := range n.Plans {
		walkPlan(c, f)
	}
}

// explainSearch runs q with args under EXPLAIN ANALYZE on conn and
// returns its plan, and the same as text for a failure's message. A
// generic plan is had through a prepared statement, as plan_test does.
func explainSearch(t *testing.T, conn *pgx.Conn, q string, args []any, generic bool) (planNode, string) {
	t.Helper()
	ctx := context.Background()
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		tx.Rollback(ctx)
		if generic {
			conn.Exec(ctx, `DEALLOCATE exception_search`) // PREPARE is not undone by a rollback
		}
	}()
	stmt := q
	if generic {
		// EXECUTE takes no parameters of its own: the values go in as
		// literals.
		types := make([]string, len(args))
		values := make([]string, len(args))
		for i, a := range args {
			switch v := a.(type) {
			case time.Time:
				types[i], values[i] = "timestamptz", "'"+v.Format(time.RFC3339Nano)+"'"
			case uuid.UUID:
				types[i], values[i] = "uuid", "'"+v.String()+"'"
			case int:
				types[i], values[i] = "bigint", fmt.Sprint(v)
			case string:
				types[i], values[i] = "text", "'"+strings.ReplaceAll(v, "'", "''")+"'"
			default:
				t.Fatalf("argument %d: no SQL type for %T", i+1, a)
			}
		}
		for _, sql := range []string{`SET LOCAL plan_cache_mode = force_generic_plan`,
			`PREPARE exception_search (` + strings.Join(types, ", ") + `) AS ` + q} {
			if _, err := tx.Exec(ctx, sql); err != nil {
				t.Fatalf("%s: %v", sql, err)
			}
		}
		stmt, args = `EXECUTE exception_search (`+strings.Join(values, ", ")+`)`, nil
	}
	var raw []byte
	if err := tx.QueryRow(ctx, `EXPLAIN (ANALYZE, FORMAT JSON) `+stmt, args...).Scan(&raw); err != nil {
		t.Fatalf("explain: %v", err)
	}
	var doc []struct {
		Plan planNode `json:"Plan"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil || len(doc) != 1 {
		t.Fatalf("read plan: %v (%d plans)", err, len(doc))
	}
	rows, err := tx.Query(ctx, `EXPLAIN (ANALYZE, COSTS OFF) `+stmt, args...)
	if err != nil {
		t.Fatalf("explain: %v", err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("explain: %v", err)
	}
	return doc[0].Plan, strings.Join(lines, "\n")
}
