// Package storetest builds store rows for tests of the packages that read
// them (the API, the console), as the listener or the CLI would have
// written them, and reads rows behind the code under test.
package storetest

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/aortahealth/aorta/pkg/api"
	"github.com/aortahealth/aorta/pkg/hl7"
	"github.com/aortahealth/aorta/pkg/patient"
	"github.com/aortahealth/aorta/pkg/store"
)

// Message is raw as the listener stores an accepted message received at
// receivedAt: header columns from MSH, an AA acknowledgement, and an
// outbox entry keyed by the patient (by the message when it names none).
func Message(t testing.TB, raw string, receivedAt time.Time) *store.Message {
	t.Helper()
	m, err := hl7.Parse([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	get := func(loc string) string { v, _ := m.Get(loc); return v }
	msg := &store.Message{
		ID: uuid.Must(uuid.NewV7()), ReceivedAt: receivedAt, Listener: "test", RemoteAddr: "127.0.0.1:1",
		Raw: []byte(raw), Status: store.StatusAccepted, AckCode: "AA", Ack: []byte("MSH|^~\\&|AORTA|HOSP|||x||ACK|1|P|2.5\rMSA|AA|" + get("MSH-10") + "\r"),
		Header: store.Header{SendingApplication: get("MSH-3"), SendingFacility: get("MSH-4"), ReceivingApplication: get("MSH-5"),
			ReceivingFacility: get("MSH-6"), MessageType: get("MSH-9.1"), TriggerEvent: get("MSH-9.2"), MessageStructure: get("MSH-9.3"),
			ControlID: get("MSH-10"), ProcessingID: get("MSH-11.1"), Version: get("MSH-12.1")},
	}
	key := msg.ID.String()
	if id, ok := patient.Primary(m); ok {
		key = id.Key(get("MSH-4"))
		msg.Outbox = &store.OutboxEntry{PartitionKey: patient.Partition(key), PatientKey: key}
	} else {
		msg.Outbox = &store.OutboxEntry{PartitionKey: patient.Partition(key)}
	}
	return msg
}

// Token creates an API token as `router token create` does and returns it.
func Token(t testing.TB, st *store.Store, name string, role api.Role) string {
	t.Helper()
	tok, hash, err := api.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateAPIToken(context.Background(), name, string(role), hash, "cli:test"); err != nil {
		t.Fatal(err)
	}
	return tok
}

// QueryRow runs sql on a connection of its own to url and scans the row
// into dest: what a test reads behind the code under test.
func QueryRow(t testing.TB, url, sql string, args []any, dest ...any) {
	t.Helper()
	c, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if err := c.QueryRow(context.Background(), sql, args...).Scan(dest...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// Count is QueryRow of a single count.
func Count(t testing.TB, url, sql string, args ...any) int {
	t.Helper()
	var n int
	QueryRow(t, url, sql, args, &n)
	return n
}

// Statements counts the statements a store sends that name a table: open
// the store with it as store.Options.Tracer (OpenCounting) to prove that
// a request reached the database, or did not.
type Statements struct {
	table string
	n     atomic.Int64
}

// OpenCounting opens a store on url whose statements naming table are
// counted; the store is closed when the test ends.
func OpenCounting(t testing.TB, url, table string) (*store.Store, *Statements) {
	t.Helper()
	c := &Statements{table: table}
	st, err := store.Open(context.Background(), url, store.Options{ApplicationName: "aorta-test", MaxConns: 4, Tracer: c})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(st.Close)
	return st, c
}

// Count is how many statements naming the table have been sent.
func (c *Statements) Count() int64 { return c.n.Load() }

// TraceQueryStart counts a statement that names the table.
func (c *Statements) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if strings.Contains(d.SQL, c.table) {
		c.n.Add(1)
	}
	return ctx
}

// TraceQueryEnd does nothing.
func (c *Statements) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
