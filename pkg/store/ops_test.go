package store_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/aortahealth/aorta/internal/pgtest"
	"github.com/aortahealth/aorta/pkg/store"
)

// The ops summary reads messages through the (received_at, id) index over
// the last day only, never the whole table, and its other counts through
// their own indexes.
func TestOpsSummaryUsesIndexes(t *testing.T) {
	t.Parallel()
	s, url := pgtest.NewStore(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// 20,000 messages from 40 senders over 20 days, 2% rejected, routed
	// by one or two of five routes; 300 dead letters, 20 open.
	_, err = conn.Exec(ctx, seedMessages+`
		INSERT INTO message_routing (message_id, status, routes, routed_at)
		SELECT id, CASE WHEN control_id LIKE '%7' THEN 'unrouted' ELSE 'routed' END,
			ARRAY['route' || (length(control_id) % 5), 'news2'], received_at
		FROM messages WHERE status = 'accepted';
		INSERT INTO dead_letters (message_id, error, attempts, resolved_at, resolution)
		SELECT id, 'x', 1, CASE WHEN n > 20 THEN now() END, CASE WHEN n > 20 THEN 'discarded' END
		FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM messages WHERE status = 'accepted' LIMIT 300) d;
		ANALYZE messages; ANALYZE message_routing; ANALYZE dead_letters`)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	day, hour, recent := now.Add(-24*time.Hour), now.Add(-time.Hour), now.Add(-5*time.Minute)
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
		{"senders", store.OpsSendersSQL, []any{day, hour, recent}, []string{"messages_received_id_idx"}, false},
		{"routes", store.OpsRoutesSQL, []any{day, hour}, []string{"messages_received_id_idx", "message_routing_pkey"}, true},
		{"dead letters", store.OpsDeadLettersSQL, nil, []string{"dead_letters_open_idx"}, true},
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
	o, err := s.OpsSummary(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	// Every message of the day is counted once, under its sender; every
	// routed one under news2.
	var lastDay, news2 int64
	for _, st := range o.Senders {
		lastDay += st.MessagesLastDay
	}
	for _, r := range o.Routes {
		if r.Route == "news2" {
			news2 = r.MessagesLastDay
		}
	}
	wantDay := count(t, url, `SELECT count(*) FROM messages WHERE received_at >= $1`, day)
	wantRouted := count(t, url, `SELECT count(*) FROM messages m JOIN message_routing r ON r.message_id = m.id WHERE r.status = 'routed' AND m.received_at >= $1`, day)
	if len(o.Senders) != 280 || lastDay != int64(wantDay) || news2 != int64(wantRouted) || o.DeadLetters.Open != 20 {
		t.Errorf("summary: %d senders, %d messages in the day, %d routed by news2, %d open dead letters; want 280 (40 × 7), %d, %d, 20",
			len(o.Senders), lastDay, news2, o.DeadLetters.Open, wantDay, wantRouted)
	}
}
