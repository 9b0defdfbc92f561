package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/aortahealth/aorta/internal/pgtest"
	"github.com/aortahealth/aorta/pkg/store"
)

func TestAPITokens(t *testing.T) {
	t.Parallel()
	s, url := pgtest.NewStore(t)
	ctx := context.Background()
	hash := make([]byte, 32)
	hash[0] = 1
	if _, err := s.CreateAPIToken(ctx, "svc.one", "viewer", hash, "cli:ops"); err != nil {
		t.Fatal(err)
	}
	other := make([]byte, 32)
	other[0] = 2
	if _, err := s.CreateAPIToken(ctx, "svc.one", "admin", other, "cli:ops"); !errors.Is(err, store.ErrTokenExists) {
		t.Errorf("same name again: %v, want ErrTokenExists", err)
	}
	if _, err := s.CreateAPIToken(ctx, "bad name", "viewer", other, "cli:ops"); err == nil {
		t.Errorf("a name with a space was accepted")
	}
	if _, err := s.CreateAPIToken(ctx, "svc.two", "root", other, "cli:ops"); err == nil {
		t.Errorf("an unknown role was accepted")
	}
	tok, err := s.Authenticate(ctx, hash)
	if err != nil || tok.Name != "svc.one" || tok.Role != "viewer" || tok.CreatedBy != "cli:ops" || tok.LastUsedAt.IsZero() {
		t.Errorf("authenticate: %+v, %v; want svc.one, viewer, used now", tok, err)
	}
	if _, err := s.Authenticate(ctx, other); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown hash: %v, want ErrNotFound", err)
	}
	if _, already, err := s.RevokeAPIToken(ctx, "svc.one", "cli:ops"); err != nil || already {
		t.Fatalf("revoke: already %v, %v", already, err)
	}
	if _, already, err := s.RevokeAPIToken(ctx, "svc.one", "cli:ops"); err != nil || !already {
		t.Errorf("revoke again: already %v, %v; want already", already, err)
	}
	if _, _, err := s.RevokeAPIToken(ctx, "nobody", "cli:ops"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("revoke unknown: %v, want ErrNotFound", err)
	}
	if _, err := s.Authenticate(ctx, hash); !errors.Is(err, store.ErrTokenRevoked) {
		t.Errorf("revoked: %v, want ErrTokenRevoked", err)
	}
	ts, err := s.APITokens(ctx)
	if err != nil || len(ts) != 1 || ts[0].RevokedAt.IsZero() {
		t.Errorf("list: %+v, %v; want the revoked token", ts, err)
	}
	if n := count(t, url, `SELECT count(*) FROM audit_log WHERE actor = 'cli:ops' AND target = 'svc.one' AND action IN ('token.create', 'token.revoke')`); n != 2 {
		t.Errorf("%d audit rows for the token, want create and revoke", n)
	}
}

// seedMessages writes 20,000 messages from 40 senders and 7 facilities
// over 20 days, of three types, 2% rejected, a few re-sent, for 3,000
// patients: a table of realistic shape for the EXPLAIN tests.
const seedMessages = `
		INSERT INTO messages (id, received_at, listener, remote_addr, raw, raw_sha256, sending_application, sending_facility,
			message_type, trigger_event, control_id, patient_key, partition_key, status, ack_code, duplicate_count)
		SELECT gen_random_uuid(), now() - (i || ' minutes')::interval * 1.44, 'l', '127.0.0.1:1', convert_to('MSH|' || i, 'UTF8'), '\x00',
			'APP' || (i % 40), 'FAC' || (i % 7), (ARRAY['ADT', 'ORU', 'ORM'])[1 + i % 3], (ARRAY['A01', 'R01', 'O01', 'A08'])[1 + i % 4],
			'CID' || i, 'HOSP/P' || (i % 3000), i % 1000, CASE WHEN i % 50 = 0 THEN 'rejected' ELSE 'accepted' END,
			CASE WHEN i % 50 = 0 THEN 'AR' ELSE 'AA' END, CASE WHEN i % 500 = 0 THEN 1 ELSE 0 END
		FROM generate_series(1, 20000) i;`

// The message searches analysts run are served by indexes on a table of
// realistic shape, never by scanning messages; the default listing (no
// filter, newest first) reads the (received_at, id) index backwards.
func TestMessageSearchUsesIndexes(t *testing.T) {
	t.Parallel()
	_, url := pgtest.NewStore(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// 20,000 messages from 40 senders over 20 days, 2% rejected, with
	// routing rows; then fresh statistics.
	_, err = conn.Exec(ctx, seedMessages+`
		INSERT INTO message_routing (message_id, status, routed_at)
		SELECT id, CASE WHEN control_id LIKE '%7' THEN 'unrouted' WHEN control_id LIKE '%33' THEN 'dead_lettered' ELSE 'routed' END, now()
		FROM messages WHERE status = 'accepted';
		INSERT INTO patients (patient_key, patient_id) SELECT 'HOSP/P' || i, 'P' || i FROM generate_series(0, 2999) i;
		ANALYZE messages; ANALYZE message_routing; ANALYZE patients`)
	if err != nil {
		t.Fatal(err)
	}
	var someID uuid.UUID
	var someAt time.Time
	if err := conn.QueryRow(ctx, `SELECT id, received_at FROM messages ORDER BY received_at DESC LIMIT 1 OFFSET 100`).Scan(&someID, &someAt); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		filter store.MessageFilter
		keys   []string
		index  string // the index the plan must use
	}{
		{"default listing", store.MessageFilter{}, nil, "messages_received_id_idx"},
		{"next page", store.MessageFilter{After: &store.MessageCursor{ReceivedAt: someAt, ID: someID}}, nil, "messages_received_id_idx"},
		{"time range", store.MessageFilter{Since: time.Now().Add(-26 * time.Hour), Until: time.Now().Add(-24 * time.Hour)}, nil, "messages_received"},
		{"control ID", store.MessageFilter{ControlID: "CID1234"}, nil, "messages_control_id_idx"},
		{"sender", store.MessageFilter{SendingApplication: "APP7"}, nil, "on messages m"}, // the dedup index, or newest first when the sender is common
		{"patient", store.MessageFilter{Patient: "HOSP/P42"}, []string{"HOSP/P42"}, "messages_patient_idx"},
		{"rejected", store.MessageFilter{Status: "rejected"}, nil, "messages_not_accepted_idx"},
		{"duplicate", store.MessageFilter{Status: "duplicate"}, nil, "messages_duplicated_idx"},
		// On 20,000 rows the planner rightly prefers hashing the whole table
		// to 400 lookups; with sequential scans priced out, it shows the
		// index path it takes on a production-sized table.
		{"dead-lettered", store.MessageFilter{Status: "dead_lettered"}, nil, "message_routing_exception_idx"},
		{"type and trigger", store.MessageFilter{MessageType: "ADT", TriggerEvent: "A08"}, nil, "Index"},
		{"ack code", store.MessageFilter{AckCode: "AR"}, nil, "messages_"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.filter.Limit = 51
			q, args, err := store.MessageSearchSQL(tt.filter, tt.keys)
			if err != nil {
				t.Fatal(err)
			}
			seqscan := "on"
			if tt.filter.Status == "dead_lettered" {
				seqscan = "off"
			}
			if _, err := conn.Exec(ctx, "SET enable_seqscan = "+seqscan); err != nil {
				t.Fatal(err)
			}
			rows, err := conn.Query(ctx, "EXPLAIN "+q, args...)
			if err != nil {
				t.Fatal(err)
			}
			lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				t.Fatal(err)
			}
			plan := strings.Join(lines, "\n")
			if strings.Contains(plan, "Seq Scan on messages") || strings.Contains(plan, "Seq Scan on patients") || !strings.Contains(plan, tt.index) {
				t.Errorf("plan scans messages or does not use %s:\n%s", tt.index, plan)
			}
		})
	}
}
