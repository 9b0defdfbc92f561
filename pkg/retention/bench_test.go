package retention_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/aortahealth/aorta/internal/pgtest"
	"github.com/aortahealth/aorta/pkg/retention"
)

// BenchmarkPass deletes 20,000 old messages, each with its routing row,
// two events and an observation (100,000 rows), from among 20,000 young
// ones, in batches of the default size, and reports rows deleted per
// second and the mean transaction time.
func BenchmarkPass(b *testing.B) {
	const old, young = 20000, 20000
	st, url := pgtest.NewStore(b)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	r, err := retention.New(st, retention.Policy{Messages: 90 * retention.Day}, retention.Options{})
	if err != nil {
		b.Fatal(err)
	}
	var rows, txs int64
	var secs float64
	for b.Loop() {
		b.StopTimer()
		seed := fmt.Sprintf(`
			TRUNCATE messages, message_routing, events, observations, deliveries, alerts, scores, outbox, dead_letters, batches, audit_log;
			INSERT INTO messages (id, received_at, listener, remote_addr, raw, raw_sha256, status, patient_key)
			SELECT gen_random_uuid(), now() - CASE WHEN i <= %[1]d THEN interval '100 days' ELSE interval '1 day' END + i * interval '1 second',
				'test', '127.0.0.1:1', convert_to(repeat('OBX|1|NM|8867-4^Heart rate^LN||80|/min|||||F' || chr(13), 10), 'UTF8'), '\x00',
				'accepted', 'HOSP/P' || (i %% 500)
			FROM generate_series(1, %[1]d + %[2]d) AS i;
			INSERT INTO message_routing (message_id, status, routed_at) SELECT id, 'routed', received_at FROM messages;
			INSERT INTO events (id, type, occurred_at, recorded_at, message_id, patient_key, source, route, schema_version, payload)
			SELECT gen_random_uuid(), 'observation.recorded', received_at, received_at, id, patient_key, 'EOBS^WARD7', 'vitals', 1, '{"value": 80}'
			FROM messages, generate_series(1, 2);
			INSERT INTO observations (patient_key, observation_key, event_id, message_id, parameter, code_system, code, value_numeric, status, observed_at)
			SELECT patient_key, id::text, id, id, 'heart_rate', 'LN', '8867-4', 80, 'F', received_at FROM messages`, old, young)
		for _, sql := range []string{seed, `VACUUM ANALYZE messages, events, observations, message_routing`} {
			if _, err := conn.Exec(ctx, sql); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		rep, err := r.Pass(ctx, false)
		if err != nil {
			b.Fatal(err)
		}
		if got := rep.Tables["messages"].Rows; got != old {
			b.Fatalf("deleted %d messages, want %d", got, old)
		}
		rows += rep.Total()
		txs += int64(rep.Transactions)
		secs += rep.Duration.Seconds()
	}
	b.ReportMetric(float64(rows)/secs, "rows/s")
	b.ReportMetric(secs*1000/float64(txs), "ms/tx")
}
