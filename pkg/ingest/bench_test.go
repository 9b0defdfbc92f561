package ingest_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/aortahealth/aorta/internal/pgtest"
	"github.com/aortahealth/aorta/pkg/ingest"
	"github.com/aortahealth/aorta/pkg/mllp"
)

// BenchmarkIngest measures the whole listener path over loopback TCP (MLLP
// framing, parse, de-duplication lookup, group commit, ACK) against real
// PostgreSQL, for 1 and 32 sequential senders (each waits for its ACK, as
// MLLP senders do).
//
// The machines we run on are shared and noisy, so each sub-benchmark first
// measures a baseline in the same run: the same number of messages, each
// stored by a bare INSERT message + INSERT outbox + COMMIT from as many
// goroutines, with no MLLP, parsing or de-duplication. That is what one
// durable commit per message costs on this machine, the physical limit of
// a listener that commits every message on its own. x_baseline is the
// listener's throughput over the baseline's: above 1 means group commit
// beats a commit per message.
func BenchmarkIngest(b *testing.B) {
	for _, conns := range []int{1, 32} {
		b.Run(fmt.Sprintf("conns=%d", conns), func(b *testing.B) {
			url := pgtest.NewDatabase(b)
			ctx := context.Background()
			n := max(b.N, conns)

			pool, err := pgxpool.New(ctx, url)
			if err != nil {
				b.Fatal(err)
			}
			defer pool.Close()
			baseRate, _, err := run(conns, n, func(_, i int) error { return baselineInsert(ctx, pool, i) })
			if err != nil {
				b.Fatalf("baseline: %v", err)
			}

			st, _ := pgtest.NewStore(b)
			in, err := ingest.New(st, ingest.Config{})
			if err != nil {
				b.Fatal(err)
			}
			defer in.Close()
			srv := &mllp.Server{Handler: in}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			go srv.Serve(ln)
			defer srv.Close()

			clients := make([]*mllp.Client, conns)
			for i := range clients {
				if clients[i], err = mllp.Dial(ctx, ln.Addr().String()); err != nil {
					b.Fatal(err)
				}
				defer clients[i].Close()
			}
			b.ResetTimer()
			rate, lat, err := run(conns, n, func(c, i int) error {
				_, err := clients[c].Send(ctx, msg(fmt.Sprintf("B%d-%d", c, i), ""))
				return err
			})
			b.StopTimer()
			if err != nil {
				b.Fatalf("listener: %v", err)
			}
			slices.Sort(lat)
			b.ReportMetric(rate, "msgs/s")
			b.ReportMetric(baseRate, "baseline_msgs/s")
			b.ReportMetric(rate/baseRate, "x_baseline")
			b.ReportMetric(ms(lat[len(lat)/2]), "p50_ack_ms")
			b.ReportMetric(ms(lat[len(lat)*99/100]), "p99_ack_ms")
			b.ReportMetric(0, "ns/op") // the per-op figure mixes senders; msgs/s is the honest one
		})
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// baselineInsert stores one message the naive way: its own transaction.
func baselineInsert(ctx context.Context, pool *pgxpool.Pool, i int) error {
	raw := msg(fmt.Sprintf("base-%d", i), "")
	sum := sha256.Sum256(raw)
	id := uuid.Must(uuid.NewV7())
	tx, err := pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `INSERT INTO messages (id, received_at, listener, remote_addr, raw, raw_sha256, sending_application,
		sending_facility, message_type, trigger_event, control_id, processing_id, version, status, ack_code)
		VALUES ($1, now(), 'bench', '127.0.0.1', $2, $3, 'LAB', 'HOSP', 'ORU', 'R01', $4, 'P', '2.5.1', 'accepted', 'AA')`,
		id, raw, sum[:], fmt.Sprintf("base-%d", i)); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO outbox (message_id, partition_key) VALUES ($1, 1)`, id); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// run spreads n operations over conns goroutines (operation i runs on
// goroutine i mod conns) and returns operations per second and the latency
// of each.
func run(conns, n int, op func(c, i int) error) (float64, []time.Duration, error) {
	lat := make([][]time.Duration, conns)
	errs := make([]error, conns)
	var wg sync.WaitGroup
	start := time.Now()
	for c := range conns {
		wg.Go(func() {
			for i := c; i < n; i += conns {
				t := time.Now()
				if errs[c] = op(c, i); errs[c] != nil {
					return
				}
				lat[c] = append(lat[c], time.Since(t))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	return float64(n) / elapsed.Seconds(), slices.Concat(lat...), errors.Join(errs...)
}
