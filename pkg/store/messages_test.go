package store_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/aortahealth/aorta/internal/pgtest"
	"github.com/aortahealth/aorta/pkg/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const window = time.Hour

func newMessage(cid string, raw string) *store.Message {
	return &store.Message{
		ID:         uuid.Must(uuid.NewV7()),
		ReceivedAt: time.Now(),
		Listener:   "test",
		RemoteAddr: "127.0.0.1:1234",
		Raw:        []byte(raw),
		Header: store.Header{
			SendingApplication: "LAB", SendingFacility: "HOSP", MessageType: "ORU",
			TriggerEvent: "R01", ControlID: cid, ProcessingID: "P", Version: "2.5",
		},
		Status:  store.StatusAccepted,
		AckCode: "AA",
		Ack:     []byte("ACK for " + cid),
		Outbox:  &store.OutboxEntry{PartitionKey: 12345, PatientKey: "HOSP/123"},
	}
}

// rejected is a message answered with a reject: stored, never routed.
func rejected(cid, raw string) *store.Message {
	m := newMessage(cid, raw)
	m.Status, m.Outbox, m.AckCode, m.ErrorCode, m.Error = store.StatusRejected, nil, "AR", 100, "no MSH segment"
	m.Ack = []byte("reject for " + cid)
	return m
}

func single(ms ...*store.Message) []store.Unit {
	var us []store.Unit
	for _, m := range ms {
		us = append(us, store.Unit{Message: m})
	}
	return us
}

func count(t *testing.T, url, query string, args ...any) int {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func TestSaveStoresMessageAndOutbox(t *testing.T) {
	t.Parallel()
	s, url := pgtest.NewStore(t)
	ctx := context.Background()
	raw := "MSH|^~\\&|LAB|HOSP|||20250101||ORU^R01|C1|P|2.5\rPID|||123\r\x00\xff"
	m := newMessage("C1", raw)
	m.Header.SendingFacility = "HO\x00SP\xff" // a hostile peer can send NUL and invalid UTF-8
	out, err := s.Save(ctx, single(m), window)
	if err != nil {
		t.Fatalf("Save: %v", err)
	}
	if out[0][0].Duplicate || out[0][0].ControlIDReused {
		t.Errorf("outcome = %+v, want a plain new message", out[0][0])
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var gotRaw, gotAck []byte
	var fac, status string
	if err := conn.QueryRow(ctx, "SELECT raw, ack, sending_facility, status FROM messages WHERE id = $1", m.ID).Scan(&gotRaw, &gotAck, &fac, &status); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(gotRaw, []byte(raw)) {
		t.Errorf("raw = %q, want byte-identical %q", gotRaw, raw)
	}
	if string(gotAck) != "ACK for C1" || status != "accepted" || fac != "HOSP\uFFFD" {
		t.Errorf("ack=%q status=%q facility=%q", gotAck, status, fac)
	}
	if n := count(t, url, "SELECT count(*) FROM outbox WHERE message_id = $1 AND patient_key = 'HOSP/123'", m.ID); n != 1 {
		t.Errorf("outbox rows = %d, want 1", n)
	}
}

func TestSaveDeduplicates(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		first       []*store.Message // saved in one call
		second      *store.Message   // saved afterwards
		window      time.Duration
		wantDup     bool
		wantReused  bool
		wantRows    int
		wantOutbox  int
		wantDupSeen int // duplicate_count on the first message
	}{
		{name: "same bytes is a duplicate", first: []*store.Message{newMessage("A", "x")}, second: newMessage("A", "x"), window: window, wantDup: true, wantRows: 1, wantOutbox: 1, wantDupSeen: 1},
		{name: "different bytes is a reuse", first: []*store.Message{newMessage("A", "x")}, second: newMessage("A", "y"), window: window, wantReused: true, wantRows: 2, wantOutbox: 2},
		{name: "other control id is new", first: []*store.Message{newMessage("A", "x")}, second: newMessage("B", "x"), window: window, wantRows: 2, wantOutbox: 2},
		{name: "window disabled stores again", first: []*store.Message{newMessage("A", "x")}, second: newMessage("A", "x"), window: 0, wantRows: 2, wantOutbox: 2},
		{name: "empty control id never deduplicated", first: []*store.Message{newMessage("", "x")}, second: newMessage("", "x"), window: window, wantRows: 2, wantOutbox: 2},
		{name: "matches the reuse with the same bytes", first: []*store.Message{newMessage("A", "x"), newMessage("A", "y")}, second: newMessage("A", "y"), window: window, wantDup: true, wantRows: 2, wantOutbox: 2, wantDupSeen: 1},
		// A rejected message is kept but never queued; its re-send is
		// answered with the stored reject.
		{name: "rejected is stored, not queued", first: []*store.Message{newMessage("A", "x")}, second: rejected("B", "y"), window: window, wantRows: 2, wantOutbox: 1},
		{name: "re-sent reject is a duplicate", first: []*store.Message{rejected("A", "x")}, second: rejected("A", "x"), window: window, wantDup: true, wantRows: 1, wantOutbox: 0, wantDupSeen: 1},
		{name: "reject then a corrected message is a reuse", first: []*store.Message{rejected("A", "x")}, second: newMessage("A", "y"), window: window, wantReused: true, wantRows: 2, wantOutbox: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, url := pgtest.NewStore(t)
			ctx := context.Background()
			if _, err := s.Save(ctx, single(tt.first...), tt.window); err != nil {
				t.Fatalf("first Save: %v", err)
			}
			out, err := s.Save(ctx, single(tt.second), tt.window)
			if err != nil {
				t.Fatalf("second Save: %v", err)
			}
			o := out[0][0]
			if o.Duplicate != tt.wantDup || o.ControlIDReused != tt.wantReused {
				t.Errorf("outcome = %+v, want duplicate=%v reused=%v", o, tt.wantDup, tt.wantReused)
			}
			if tt.wantDup {
				want := tt.first[len(tt.first)-1]
				if o.Original != want.ID || string(o.OriginalAck) != string(want.Ack) {
					t.Errorf("duplicate points at %v ack %q, want %v ack %q", o.Original, o.OriginalAck, want.ID, want.Ack)
				}
				if n := count(t, url, "SELECT duplicate_count FROM messages WHERE id = $1", want.ID); n != tt.wantDupSeen {
					t.Errorf("duplicate_count = %d, want %d", n, tt.wantDupSeen)
				}
				if n := count(t, url, "SELECT count(*) FROM messages WHERE id = $1 AND last_duplicate_at IS NOT NULL", want.ID); n != 1 {
					t.Errorf("the original's last_duplicate_at is not set")
				}
			}
			if n := count(t, url, "SELECT count(*) FROM messages"); n != tt.wantRows {
				t.Errorf("messages = %d, want %d", n, tt.wantRows)
			}
			if n := count(t, url, "SELECT count(*) FROM outbox"); n != tt.wantOutbox {
				t.Errorf("outbox = %d, want %d", n, tt.wantOutbox)
			}
			if tt.wantReused {
				if n := count(t, url, "SELECT count(*) FROM messages WHERE control_id_reused"); n != 1 {
					t.Errorf("flagged reuses = %d, want 1", n)
				}
			}
		})
	}
}

func TestSaveDuplicateWithinOneGroup(t *testing.T) {
	t.Parallel()
	s, url := pgtest.NewStore(t)
	a, b, c := newMessage("A", "x"), newMessage("A", "x"), newMessage("A", "z")
	out, err := s.Save(context.Background(), single(a, b, c), window)
	if err != nil {
		t.Fatal(err)
	}
	if out[0][0].Duplicate || !out[1][0].Duplicate || out[1][0].Original != a.ID || !out[2][0].ControlIDReused {
		t.Errorf("outcomes = %+v", out)
	}
	if n := count(t, url, "SELECT count(*) FROM messages"); n != 2 {
		t.Errorf("messages = %d, want 2", n)
	}
	if n := count(t, url, "SELECT duplicate_count FROM messages WHERE id = $1", a.ID); n != 1 {
		t.Errorf("duplicate_count = %d, want 1", n)
	}
}

func TestSaveIsIdempotentOnRetry(t *testing.T) {
	t.Parallel()
	s, url := pgtest.NewStore(t)
	m := newMessage("A", "x")
	for i := range 2 {
		out, err := s.Save(context.Background(), single(m), window)
		if err != nil {
			t.Fatalf("attempt %d: %v", i, err)
		}
		if out[0][0].Duplicate {
			t.Fatalf("attempt %d: a retry of the same message took itself for a duplicate", i)
		}
	}
	if n := count(t, url, "SELECT count(*) FROM messages"); n != 1 {
		t.Errorf("messages = %d, want 1", n)
	}
	if n := count(t, url, "SELECT count(*) FROM outbox"); n != 1 {
		t.Errorf("outbox = %d, want 1", n)
	}
}

func TestSaveBatch(t *testing.T) {
	t.Parallel()
	s, url := pgtest.NewStore(t)
	m1, m2 := newMessage("B1", "one"), newMessage("B2", "two")
	bad := newMessage("", "EVN|A01")
	bad.Status, bad.Outbox, bad.AckCode, bad.ErrorCode, bad.Error = store.StatusRejected, nil, "AR", 100, "no MSH segment"
	bt := &store.Batch{ID: uuid.Must(uuid.NewV7()), ReceivedAt: time.Now(), Listener: "t", RemoteAddr: "r",
		Raw: []byte("BHS|...onetwo...BTS"), HeaderType: "BHS", ControlID: "BATCH1", Messages: []*store.Message{m1, m2, bad}}
	out, err := s.Save(context.Background(), []store.Unit{{Batch: bt}}, window)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 1 || len(out[0]) != 3 {
		t.Fatalf("outcomes shape = %v", out)
	}
	if n := count(t, url, "SELECT count(*) FROM messages WHERE batch_id = $1", bt.ID); n != 3 {
		t.Errorf("batch messages = %d, want 3", n)
	}
	if n := count(t, url, "SELECT batch_index FROM messages WHERE id = $1", m2.ID); n != 1 {
		t.Errorf("batch_index = %d, want 1", n)
	}
	if n := count(t, url, "SELECT count(*) FROM outbox"); n != 2 {
		t.Errorf("outbox = %d, want 2 (the rejected member is not routed)", n)
	}
	if n := count(t, url, "SELECT error_code FROM messages WHERE id = $1 AND status = 'rejected'", bad.ID); n != 100 {
		t.Errorf("error_code = %d, want 100", n)
	}
}

func TestMigrateIsIdempotent(t *testing.T) {
	t.Parallel()
	s, _ := pgtest.NewStore(t)
	applied, err := s.Migrate(context.Background(), nil)
	if err != nil {
		t.Fatalf("Migrate on a migrated database: %v", err)
	}
	if len(applied) != 0 {
		t.Errorf("applied %v again, want nothing", applied)
	}
}

// TestSaveConcurrentResendAcrossListeners sends the same message to two
// listeners (two stores on one database) at the same instant, many times:
// the advisory lock must let exactly one of them store it.
func TestSaveConcurrentResendAcrossListeners(t *testing.T) {
	t.Parallel()
	a, url := pgtest.NewStore(t)
	b, err := store.Open(context.Background(), url, store.Options{MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	const rounds = 30
	for i := range rounds {
		cid := fmt.Sprintf("R%d", i)
		ma, mb := newMessage(cid, "same bytes "+cid), newMessage(cid, "same bytes "+cid)
		var wg sync.WaitGroup
		var oa, ob [][]store.Outcome
		var ea, eb error
		wg.Go(func() { oa, ea = a.Save(context.Background(), single(ma), window) })
		wg.Go(func() { ob, eb = b.Save(context.Background(), single(mb), window) })
		wg.Wait()
		if ea != nil || eb != nil {
			t.Fatalf("round %d: %v / %v", i, ea, eb)
		}
		if oa[0][0].Duplicate == ob[0][0].Duplicate {
			t.Fatalf("round %d: duplicate flags %v and %v, want exactly one duplicate", i, oa[0][0].Duplicate, ob[0][0].Duplicate)
		}
	}
	if n := count(t, url, "SELECT count(*) FROM messages"); n != rounds {
		t.Errorf("messages = %d, want %d (one per round)", n, rounds)
	}
}
