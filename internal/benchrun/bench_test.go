package benchrun

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/aortahealth/aorta/internal/loadgen"
	"github.com/aortahealth/aorta/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestProbes runs both PostgreSQL probes briefly on a migrated database:
// every row they count is in messages and outbox, with the columns the
// listener fills.
func TestProbes(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	ctx := context.Background()
	g, err := loadgen.NewGenerator(loadgen.GeneratorOptions{RunID: "PROBE", Patients: 50})
	if err != nil {
		t.Fatal(err)
	}
	rows, err := probeRows(g, 40)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := copyProbe(ctx, url, rows, 2, 10, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Rows == 0 || cp.Rows%10 != 0 || cp.Rate <= 0 || cp.Conns != 2 || cp.Batch != 10 {
		t.Errorf("COPY probe %+v: want whole batches of 10 at some rate", cp)
	}
	ip, err := commitProbe(ctx, url, rows, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if ip.Rows == 0 || ip.Rate <= 0 {
		t.Errorf("commit probe %+v: want rows", ip)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var messages, outbox, withPatient int
	if err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM messages), (SELECT count(*) FROM outbox),
		(SELECT count(*) FROM messages WHERE patient_key LIKE 'AORTA_SIM/LD%' AND ack_code = 'AA' AND length(raw) > 200)`).Scan(&messages, &outbox, &withPatient); err != nil {
		t.Fatal(err)
	}
	if want := cp.Rows + ip.Rows; messages != want || outbox != want || withPatient != want {
		t.Errorf("messages %d, outbox %d, with patient and ACK %d; want %d each", messages, outbox, withPatient, want)
	}
}

func TestMarkdown(t *testing.T) {
	lat := loadgen.Summary{Count: 100, P50: 500 * time.Microsecond, P95: 2 * time.Millisecond, P99: 4 * time.Millisecond, Max: 31 * time.Millisecond}
	r := &Report{
		Date: "2026-11-26", CPUs: 2, LoadBefore: 0.4, PostgreSQL: "15.20", Server: "local", Mix: "monitor=1", Patients: 10000,
		Ceiling: Probe{Method: "COPY", Conns: 4, Batch: 256, Rate: 12000, BackendCPU: 0.05},
		Commit:  Probe{Method: "INSERT+COMMIT", Conns: 1, Batch: 1, Rate: 1500},
		Levels: []Level{
			{Conns: 1, Rate: 1200, XCeiling: 0.1, XCommit: 0.8, Latency: lat, ListenerCPU: 0.2, BackendCPU: 0.3},
			{Conns: 256, Rate: 4800, XCeiling: 0.4, Latency: lat, ListenerCPU: 0.15, Errors: map[string]int{"timeout": 2}},
		},
		Listener: Resources{PeakRSSKiB: 50 * 1024, IdleRSSKiB: 20 * 1024, IdleConns: 1000, IdleConnsRSSKiB: 30 * 1024},
		Router: Routing{Offered: 1000, Duration: Seconds(20 * time.Second), Rate: 999, Latency: lat,
			Event: lat, BacklogMax: 120, BacklogEnd: 10, BacklogGrowth: 0.4, DrainedAfter: Seconds(300 * time.Millisecond),
			RouterCPU: 1.1, ListenerCPU: 0.2, RouterPeakKiB: 60 * 1024,
			Drain: Drain{Messages: 20000, Events: 184000, Elapsed: Seconds(12500 * time.Millisecond), Rate: 1600, RouterCPU: 0.27, BackendCPU: 0.71}},
	}
	var b strings.Builder
	r.WriteMarkdown(&b)
	out := b.String()
	for _, want := range []string{
		"`make bench`, 2026-11-26, 2-core machine",
		"| PostgreSQL ceiling: COPY, 4 connections, 256-row commits | 12,000 | 1.00 | | | | | 0.05 |",
		"| PostgreSQL: INSERT + COMMIT per message, 1 connection | 1,500 | 0.12 | | | | | ? |",
		"| Aorta listener, 1 connection | 1,200 | 0.10 (0.80× commit) | 0.50 ms | 2.0 ms | 4.0 ms | 31 ms | 0.20 + 0.30 |",
		"| Aorta listener, 256 connections, 2 errors | 4,800 | 0.40 |",
		"| listener RSS idle, then with 1,000 idle connections | 20 MiB, 30 MiB (10 KiB per connection) |",
		"| ACK→alert p50, p99 | no alerts |",
		"| router alone, draining 20,000 queued messages (184,000 events) | 1,600 msg/s; CPU s / 1k msgs: router + PostgreSQL 0.27 + 0.71 |",
		"| outbox backlog during the load | kept up: max 120 rows, 10 at the end, +0 rows/s, empty 300ms after |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("Markdown lacks %q:\n%s", want, out)
		}
	}
	j, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"duration_s":20.000`, `"p50_ms":0.5`, `"x_commit_rate":0.8`, `"drain":{"messages":20000,"events":184000,"elapsed_s":12.500`} {
		if !strings.Contains(string(j), want) {
			t.Errorf("JSON lacks %s: %s", want, j)
		}
	}
}

func TestThousands(t *testing.T) {
	for f, want := range map[float64]string{0: "0", 999.6: "1,000", 12345: "12,345", 1234567: "1,234,567", -4321: "-4,321"} {
		if got := Thousands(f); got != want {
			t.Errorf("Thousands(%v) = %q, want %q", f, got, want)
		}
	}
}
