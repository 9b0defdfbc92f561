package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/aortahealth/aorta/internal/consolebench"
	"github.com/aortahealth/aorta/internal/envflag"
)

// runConsoleBench is hl7load consolebench: make bench-console's
// orchestration (internal/consolebench), which prints a Markdown table to
// stdout and writes the JSON report.
func runConsoleBench(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("hl7load consolebench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: hl7load consolebench [flags]\n\n"+
			"What make bench-console runs: finds PostgreSQL as make run does (DATABASE_URL, else\n"+
			"127.0.0.1:5432, else a throwaway cluster), recreates the database %s on it, seeds\n"+
			"--messages stored messages with their routing, events, dead letters, alerts and\n"+
			"patient state (COPY), starts the router from --bin, and times the API's and the\n"+
			"console's main views against a trivial endpoint and SELECT 1 measured in the same\n"+
			"run. Prints a Markdown table; writes --out as JSON. Flags override environment variables.\n\nFlags:\n",
			consolebench.Database)
		fs.PrintDefaults()
	}
	var c consolebench.Config
	var seed int
	f := envflag.New(fs)
	f.String(&c.Bin, "bin", "BENCH_BIN", "bin", "directory of the router binary")
	f.String(&c.Routes, "routes", "BENCH_ROUTES", "routes.yaml", "the router's routes file")
	f.String(&c.Out, "out", "BENCH_OUT", "", "JSON report (default BIN/consolebench.json)")
	f.String(&c.Log, "log", "BENCH_LOG", "", "the router's output (default BIN/consolebench.log)")
	f.Int(&c.Plan.Messages, "messages", "BENCH_MESSAGES", consolebench.DefaultMessages, "stored messages to seed")
	f.Int(&c.Plan.Days, "days", "BENCH_DAYS", consolebench.DefaultDays, "received over this many days: a quarter in the last day, 60% in the 6 days before, the rest earlier")
	f.Int(&c.Plan.Patients, "patients", "BENCH_PATIENTS", consolebench.DefaultPatients, "distinct patients")
	f.Int(&c.Plan.DeadLetters, "dead-letters", "BENCH_DEAD_LETTERS", consolebench.DefaultDeadLetters, "dead-lettered messages, a fifth of them open")
	f.Int(&c.Plan.Alerts, "alerts", "BENCH_ALERTS", consolebench.DefaultAlerts, "alerts raised, about")
	f.Int(&seed, "seed", "BENCH_SEED", 1, "seed of the data")
	f.Int(&c.Workers, "workers", "BENCH_WORKERS", consolebench.DefaultWorkers, "seeding connections")
	f.Int(&c.Warmup, "warmup", "BENCH_WARMUP", consolebench.DefaultWarmup, "untimed requests per view first")
	f.Int(&c.Requests, "requests", "BENCH_REQUESTS", consolebench.DefaultRequests, "timed requests per view, one after another, then again spread over --clients")
	f.Int(&c.Clients, "clients", "BENCH_CLIENTS", consolebench.DefaultClients, "concurrent clients of the second round")
	f.Bool(&c.Reuse, "reuse", "BENCH_REUSE", false, "keep a database seeded by an earlier run instead of seeding again")
	f.Bool(&c.Console, "console", "BENCH_CONSOLE", true, "also time the web console's pages (reported \"not available\" when the router serves none)")
	if err := f.Parse(args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("consolebench: unexpected arguments %q", fs.Args())
	case c.Plan.Messages < 1000 || c.Plan.Messages > maxCount:
		return fmt.Errorf("consolebench: --messages must be 1000 to %d", maxCount)
	case c.Plan.Days < 1 || c.Plan.Days > 3650:
		return fmt.Errorf("consolebench: --days must be 1 to 3650")
	case c.Plan.Patients < 1 || c.Workers < 1 || c.Workers > 64 || c.Requests < 1 || c.Clients < 1 || c.Clients > 64 || c.Warmup < 0:
		return fmt.Errorf("consolebench: --patients, --requests and --clients must be positive, --workers and --clients at most 64")
	case c.Plan.DeadLetters < 0 || c.Plan.Alerts < 0:
		return fmt.Errorf("consolebench: --dead-letters and --alerts must not be negative")
	}
	if c.Out == "" {
		c.Out = filepath.Join(c.Bin, "consolebench.json")
	}
	if c.Log == "" {
		c.Log = filepath.Join(c.Bin, "consolebench.log")
	}
	c.Plan.Seed = uint64(seed)
	c.Progress = stderr
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	rep, err := consolebench.Run(ctx, c)
	if rep != nil && len(rep.Views) > 0 {
		fmt.Fprintln(stdout)
		rep.WriteMarkdown(stdout)
		fmt.Fprintf(stdout, "\n(JSON: %s; router output: %s; %.0f s in all)\n", c.Out, c.Log, rep.Elapsed)
	}
	if err != nil {
		return fmt.Errorf("consolebench: %w", err)
	}
	return nil
}
