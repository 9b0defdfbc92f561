package router_test

import (
	"context"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/aortahealth/aorta/internal/loadgen"
	"github.com/aortahealth/aorta/internal/pgtest"
	"github.com/aortahealth/aorta/pkg/event"
	"github.com/aortahealth/aorta/pkg/route"
	"github.com/aortahealth/aorta/pkg/score"
	"github.com/aortahealth/aorta/pkg/store"
)

// roundTrips counts what a pool sends to the server: each statement sent
// alone, and each batch (pipelined statements), is one round trip.
type roundTrips struct{ n atomic.Int64 }

func (r *roundTrips) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	r.n.Add(1)
	return ctx
}
func (r *roundTrips) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (r *roundTrips) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	r.n.Add(1)
	return ctx
}
func (r *roundTrips) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}
func (r *roundTrips) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData)     {}

// BenchmarkRouterScoring measures how fast a router drains a backlog of
// hl7load's default mix (ADT, labs, monitor results with 10 to 19 MDC
// OBX, nursing charts; 300 patients, one in 20 deteriorating so that the
// shipped alert rules fire) through the shipped routes.yaml, which scores
// NEWS2, qSOFA and SIRS and raises alerts. It reports the drain rate, the
// database round trips per message (statements and batches the router's
// pool sent), and, as a baseline measured in the same run, the rate of the
// same messages through the same routes with no score handlers:
// x_noscoring is the scoring rate over it.
func BenchmarkRouterScoring(b *testing.B) {
	raw, err := os.ReadFile("../../routes.yaml")
	if err != nil {
		b.Fatal(err)
	}
	scores := []string{score.NameNEWS2, score.NameQSOFA, score.NameSIRS}
	reg := route.Registry{Mappings: event.Mappings(), Handlers: scores, Scores: scores}
	routes, err := route.Parse("routes.yaml", raw, reg)
	if err != nil {
		b.Fatal(err)
	}
	plain, err := route.Parse("routes.yaml", raw, reg)
	if err != nil {
		b.Fatal(err)
	}
	for i := range plain.Routes {
		plain.Routes[i].Handlers = nil
	}
	gen, err := loadgen.NewGenerator(loadgen.GeneratorOptions{Patients: 300, Seed: 7, RunID: "BENCH"})
	if err != nil {
		b.Fatal(err)
	}
	n := max(b.N, 1000)
	start := time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)
	var raws []string
	for i := range n {
		raws = append(raws, string(gen.Message(uint64(i), start.Add(time.Duration(i)*2*time.Second)).Raw))
	}
	drain := func(routes *route.Config) (rate, trips float64) {
		st, url := pgtest.NewStore(b)
		for i := 0; i < len(raws); i += 500 {
			enqueue(b, st, raws[i:min(i+500, len(raws))]...)
		}
		var rt roundTrips
		traced, err := store.Open(context.Background(), url, store.Options{Tracer: &rt})
		if err != nil {
			b.Fatal(err)
		}
		defer traced.Close()
		t0 := time.Now()
		stop := run(b, traced, url, routes, "bench")
		waitDrained(b, url, n)
		d := time.Since(t0)
		trips = float64(rt.n.Load()) / float64(n)
		stop()
		return float64(n) / d.Seconds(), trips
	}
	b.StopTimer()
	base, baseTrips := drain(plain)
	b.StartTimer()
	rate, trips := drain(routes)
	b.StopTimer()
	b.ReportMetric(rate, "msgs/s")
	b.ReportMetric(trips, "roundtrips/msg")
	b.ReportMetric(base, "noscoring_msgs/s")
	b.ReportMetric(baseTrips, "noscoring_roundtrips/msg")
	b.ReportMetric(rate/base, "x_noscoring")
	b.ReportMetric(0, "ns/op")
}
