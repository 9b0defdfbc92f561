package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/aortahealth/aorta/internal/benchrun"
	"github.com/aortahealth/aorta/internal/envflag"
)

// runBench is hl7load bench: make bench's orchestration
// (internal/benchrun), which prints Markdown tables to stdout and writes
// the JSON report.
func runBench(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("hl7load bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: hl7load bench [flags]\n\n"+
			"What make bench runs: finds PostgreSQL as make run does (DATABASE_URL, else\n"+
			"127.0.0.1:5432, else a throwaway cluster), recreates the database %s on it,\n"+
			"measures PostgreSQL's own rate for the listener's rows (COPY in batches; one\n"+
			"INSERT+COMMIT per message), then the listener from --bin at each --levels,\n"+
			"its memory with --idle-conns silent connections, and the router at --router-rate.\n"+
			"Prints Markdown tables; writes --out as JSON. Flags override environment variables.\n\nFlags:\n",
			benchrun.Database)
		fs.PrintDefaults()
	}
	var c benchrun.Config
	var levels, ceilingConns string
	var seed int
	f := envflag.New(fs)
	f.String(&c.Bin, "bin", "BENCH_BIN", "bin", "directory of the mllp-listener and router binaries")
	f.String(&c.Routes, "routes", "BENCH_ROUTES", "routes.yaml", "the router's routes file")
	f.String(&c.Out, "out", "BENCH_OUT", "", "JSON report (default BIN/bench.json)")
	f.String(&c.Log, "log", "BENCH_LOG", "", "the engine's output (default BIN/bench.log)")
	f.String(&levels, "levels", "BENCH_LEVELS", joinInts(benchrun.DefaultLevels), "connection counts the listener is measured at")
	f.Duration(&c.LevelDuration, "level-duration", "BENCH_LEVEL_DURATION", benchrun.DefaultLevelDuration, "load at each level")
	f.Duration(&c.ProbeDuration, "probe-duration", "BENCH_PROBE_DURATION", benchrun.DefaultProbeDuration, "each PostgreSQL probe")
	f.String(&ceilingConns, "ceiling-conns", "BENCH_CEILING_CONNS", joinInts(benchrun.DefaultCeilingConns), "connection counts the COPY ceiling probe tries (the fastest counts)")
	f.Int(&c.CeilingBatch, "ceiling-batch", "BENCH_CEILING_BATCH", benchrun.DefaultCeilingBatch, "rows per commit of the ceiling probe")
	f.Int(&c.IdleConns, "idle-conns", "BENCH_IDLE_CONNS", benchrun.DefaultIdleConns, "silent connections held to read the listener's memory")
	f.Float64(&c.RouterRate, "router-rate", "BENCH_ROUTER_RATE", benchrun.DefaultRouterRate, "offered messages/s with the router running")
	f.Duration(&c.RouterDuration, "router-duration", "BENCH_ROUTER_DURATION", benchrun.DefaultRouterDuration, "how long the router phase offers its load")
	f.Int(&c.RouterConns, "router-conns", "BENCH_ROUTER_CONNS", benchrun.DefaultRouterConns, "connections of the router phase")
	f.Duration(&c.RouterWait, "router-wait", "BENCH_ROUTER_WAIT", benchrun.DefaultRouterWait, "longest wait for the router to finish after its load")
	f.Int(&c.DrainCount, "router-drain", "BENCH_ROUTER_DRAIN", benchrun.DefaultDrainCount, "messages queued for the router to drain alone when it starts (-1: skip)")
	f.Int(&c.Patients, "patients", "BENCH_PATIENTS", 10000, "distinct patients in the mix")
	f.Int(&seed, "seed", "BENCH_SEED", 1, "seed of the mix")
	if err := f.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("bench: unexpected arguments %q", fs.Args())
	}
	var err error
	if c.Levels, err = parseInts("--levels", levels); err != nil {
		return err
	}
	if c.CeilingConns, err = parseInts("--ceiling-conns", ceilingConns); err != nil {
		return err
	}
	if c.Out == "" {
		c.Out = filepath.Join(c.Bin, "bench.json")
	}
	c.Seed = uint64(seed)
	c.Progress = stderr
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	rep, err := benchrun.Run(ctx, c)
	if rep != nil && len(rep.Levels) > 0 {
		fmt.Fprintln(stdout)
		rep.WriteMarkdown(stdout)
		fmt.Fprintf(stdout, "\n(JSON: %s; engine output: %s; %.0f s in all)\n", c.Out, logPath(c), rep.Elapsed.Seconds())
	}
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	return nil
}

func logPath(c benchrun.Config) string {
	if c.Log != "" {
		return c.Log
	}
	return filepath.Join(c.Bin, "bench.log")
}

func joinInts(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

func parseInts(name, s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%s %q: want positive whole numbers separated by commas", name, s)
		}
		out = append(out, n)
	}
	return out, nil
}
