package consolebench

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/aortahealth/aorta/internal/benchrun"
	"github.com/aortahealth/aorta/internal/loadgen"
)

// WriteMarkdown prints the report as tables a person can paste into the
// README: the seed, the baselines, and per view its latencies, its p95
// as a ratio of the trivial endpoint's, whether it is under 200 ms, and
// whether its statements scan a big table.
func (r *Report) WriteMarkdown(w io.Writer) {
	fmt.Fprintf(w, "Console/API bench, %s: %d CPUs, load average %.1f before, PostgreSQL %s, database %s.\n\n",
		r.Date, r.CPUs, r.LoadBefore, r.PostgreSQL, r.Database)
	if s := r.Seed; s != nil {
		fmt.Fprintf(w, "Seed: %s messages, %s events, %s routing rows, %s dead letters (%d open), %d alerts (%d open), %d patients, %d observations, %d scores: %s rows in %.0f s (COPY %.0f s), %s rows/s, %s messages/s; database %s.\n\n",
			benchrun.Thousands(float64(s.Messages)), benchrun.Thousands(float64(s.Events)), benchrun.Thousands(float64(s.Routing)), benchrun.Thousands(float64(s.DeadLetters)), s.OpenDead,
			s.Alerts, s.OpenAlerts, s.Patients, s.Observations, s.Scores, benchrun.Thousands(float64(s.Rows)), s.TotalSeconds, s.CopySeconds,
			benchrun.Thousands(s.RowsPerSec), benchrun.Thousands(s.MessagesPerS), s.DatabaseSize)
	} else if r.Reused {
		fmt.Fprintf(w, "Seed: reused (%s messages, %s events by the planner's estimate).\n\n",
			benchrun.Thousands(float64(r.Tables["messages"])), benchrun.Thousands(float64(r.Tables["events"])))
	}
	fmt.Fprintf(w, "Baselines: trivial authenticated endpoint (GET /api/v1/routes) p50 %s, p95 %s; SELECT 1 round trip p50 %s, p95 %s.\n\n",
		loadgen.Millis(r.Trivial.Sequential.P50), loadgen.Millis(r.Trivial.Sequential.P95), loadgen.Millis(r.SelectOne.P50), loadgen.Millis(r.SelectOne.P95))
	fmt.Fprintf(w, "| view | p50 | p95 | p99 | max | p95 × trivial | p95, %d clients | under 200 ms | big-table seq scan |\n", r.Clients)
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---|---|")
	for _, v := range r.Views {
		under := "yes"
		if !v.Under {
			under = "**no**"
		}
		if v.Error != "" {
			under = "**error**"
		}
		scan := "—"
		if v.Plans != nil {
			scan = "none"
			var tables []string
			for _, p := range v.Plans {
				for _, t := range p.SeqScans {
					if !slices.Contains(tables, t) {
						tables = append(tables, t)
					}
				}
			}
			if len(tables) > 0 {
				scan = "**" + strings.Join(tables, ", ") + "**"
			}
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %.1f× | %s | %s | %s |\n", v.Name,
			loadgen.Millis(v.Sequential.P50), loadgen.Millis(v.Sequential.P95), loadgen.Millis(v.Sequential.P99), loadgen.Millis(v.Sequential.Max),
			v.XBaseline, loadgen.Millis(v.Concurrent.P95), under, scan)
	}
	fmt.Fprintf(w, "\nConsole pages: %s. Ops counts: %s.\n", r.Console, r.OpsCounts)
	for _, v := range r.Views {
		if v.Error != "" {
			fmt.Fprintf(w, "\n%s: %s\n", v.Name, v.Error)
		}
		for _, p := range v.Plans {
			if p.Plan != "" {
				fmt.Fprintf(w, "\n%s scans %s in `%s`:\n\n```\n%s\n```\n", v.Name, strings.Join(p.SeqScans, ", "), p.Statement, p.Plan)
			}
		}
	}
}
