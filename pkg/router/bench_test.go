package router_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/aortahealth/aorta/internal/pgtest"
)

// vitals is a monitor result with four observations for one patient.
func vitals(cid, mrn string, minute int) string {
	t := fmt.Sprintf("2026112612%02d00", minute%60)
	return fmt.Sprintf("MSH|^~\\&|MON|HOSP|AORTA|HOSP|%s||ORU^R01|%s|P|2.5\r", t, cid) +
		fmt.Sprintf("PID|||%s^^^HOSP^MR||DOE^JANE\r", mrn) +
		fmt.Sprintf("OBR|1|||VITALS|||%s\r", t) +
		"OBX|1|NM|8867-4^HR^LN||88|/min|||||F\r" +
		"OBX|2|NM|9279-1^RR^LN||18|/min|||||F\r" +
		"OBX|3|NM|2708-6^SpO2^LN||97|%|||||F\r" +
		"OBX|4|NM|8480-6^SBP^LN||120|mm[Hg]|||||F\r"
}

const benchRoutes = `
version: 1
parameters:
  heart_rate: {unit: /min, codes: {LN: [8867-4]}, units: {/min: same}}
  resp_rate: {unit: /min, codes: {LN: [9279-1]}, units: {/min: same}}
  spo2: {unit: "%", codes: {LN: [2708-6]}, units: {"%": same}}
  sbp: {unit: "mm[Hg]", codes: {LN: [8480-6]}, units: {"mm[Hg]": same}}
routes:
  - name: vitals
    match: {message_type: ORU}
    events: [observations]
`

// BenchmarkRouter measures how fast a router drains a backlog of monitor
// results (4 observations each, 200 patients) into events and state, and
// the latency from a message's storage to its events under a steady flow
// of about half that rate.
//
// Baseline, measured in the same run on the same database: writing the
// same number of event rows with nothing else — COPY of 100 rows at a
// time into events — about the most the events table takes here.
// x_baseline is the router's event rate over that.
func BenchmarkRouter(b *testing.B) {
	st, url := pgtest.NewStore(b)
	routes := loadRoutes(b, benchRoutes)
	n := max(b.N, 200)
	ctx := context.Background()

	// A message row to hang the baseline's events on.
	anchor := enqueue(b, st, vitals("anchor", "P0", 0))[0]
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DELETE FROM outbox"); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	for done := 0; done < n*4; done += 100 {
		rows := make([][]any, 100)
		for i := range rows {
			rows[i] = []any{uuid.New(), "observation.recorded", time.Now(), anchor, "P0", "HOSP/P0", "MON^HOSP", "vitals", 1, []byte(`{"value":"88"}`)}
		}
		if _, err := conn.CopyFrom(ctx, pgx.Identifier{"events"},
			[]string{"id", "type", "occurred_at", "message_id", "patient_id", "patient_key", "source", "route", "schema_version", "payload"},
			pgx.CopyFromRows(rows)); err != nil {
			b.Fatal(err)
		}
	}
	baseline := float64(n*4) / time.Since(start).Seconds()
	if _, err := conn.Exec(ctx, "DELETE FROM events"); err != nil {
		b.Fatal(err)
	}

	// Backlog: everything queued, then the router starts.
	var raws []string
	for i := range n {
		raws = append(raws, vitals(fmt.Sprintf("B%d", i), fmt.Sprintf("P%d", i%200), i))
	}
	for i := 0; i < len(raws); i += 500 {
		enqueue(b, st, raws[i:min(i+500, len(raws))]...)
	}
	b.ResetTimer()
	start = time.Now()
	stop := run(b, st, url, routes, "bench")
	waitDrained(b, url, n)
	drained := time.Since(start)
	b.StopTimer()
	rate := float64(n*4) / drained.Seconds()

	// Steady flow: messages trickle in while the router runs.
	var lat []float64
	flowStart := time.Now()
	for i := range 20 {
		var batch []string
		for j := range 25 {
			batch = append(batch, vitals(fmt.Sprintf("S%d-%d", i, j), fmt.Sprintf("Q%d", j), i))
		}
		enqueue(b, st, batch...)
		time.Sleep(25 * time.Millisecond) // about 1,000 messages/s: half the drain rate
	}
	waitDrained(b, url, n+500)
	stop()
	rows, err := conn.Query(ctx, `SELECT extract(epoch FROM e.recorded_at - m.received_at)
		FROM events e JOIN messages m ON m.id = e.message_id WHERE m.received_at >= $1`, flowStart)
	if err != nil {
		b.Fatal(err)
	}
	for rows.Next() {
		var s float64
		rows.Scan(&s)
		lat = append(lat, s*1000)
	}
	rows.Close()
	slices.Sort(lat)
	b.ReportMetric(rate, "events/s")
	b.ReportMetric(float64(n)/drained.Seconds(), "msgs/s")
	b.ReportMetric(baseline, "baseline_events/s")
	b.ReportMetric(rate/baseline, "x_baseline")
	if len(lat) > 0 {
		b.ReportMetric(lat[len(lat)/2], "p50_store_to_event_ms")
		b.ReportMetric(lat[len(lat)*99/100], "p99_store_to_event_ms")
	}
	b.ReportMetric(0, "ns/op")
}
