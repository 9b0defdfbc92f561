package consolebench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/aortahealth/aorta/internal/benchrun"
	"github.com/aortahealth/aorta/internal/loadgen"
	"github.com/aortahealth/aorta/internal/pgenv"
	"github.com/aortahealth/aorta/pkg/store"
)

// Database is the bench's own database, dropped and created again at
// every run (unless Reuse) on the server make run uses.
const Database = "aorta_consolebench"

// Config is a console bench run. The zero value of a field is its
// default.
type Config struct {
	Bin    string // the router binary's directory
	Routes string // the router's routes file
	Out    string // JSON report; "" writes none
	Log    string // the router's output
	Plan   Plan
	// Workers are the seeding connections.
	Workers int
	// Warmup requests, then Requests timed one after another, then
	// Requests again from Clients at once, per view.
	Warmup, Requests, Clients int
	// Reuse keeps the database when it already holds a seed: for
	// measuring again after a change to the queries or the indexes
	// (the router applies new migrations when it starts).
	Reuse bool
	// Console also measures the web console's pages (when the router
	// serves them).
	Console  bool
	Progress io.Writer
}

// Defaults of Config.
const (
	DefaultWorkers  = 3
	DefaultWarmup   = 5
	DefaultRequests = 50
	DefaultClients  = 4
)

// Budget is the target for a view: under 200 ms.
const Budget = 200 * time.Millisecond

func (c *Config) defaults() {
	if c.Routes == "" {
		c.Routes = "routes.yaml"
	}
	if c.Log == "" {
		c.Log = filepath.Join(c.Bin, "consolebench.log")
	}
	if c.Workers == 0 {
		c.Workers = DefaultWorkers
	}
	if c.Warmup == 0 {
		c.Warmup = DefaultWarmup
	}
	if c.Requests == 0 {
		c.Requests = DefaultRequests
	}
	if c.Clients == 0 {
		c.Clients = DefaultClients
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	c.Plan.defaults()
}

// Report is a run's figures.
type Report struct {
	Date       string            `json:"date"`
	CPUs       int               `json:"cpus"`
	LoadBefore float64           `json:"load_average_before"`
	PostgreSQL string            `json:"postgresql"`
	Database   string            `json:"database"`
	Seed       *SeedResult       `json:"seed,omitempty"` // nil when reused
	Reused     bool              `json:"reused"`
	Requests   int               `json:"requests_per_view"` // sequential, and again spread over Clients
	Clients    int               `json:"clients"`
	Tables     map[string]int64  `json:"table_rows"` // the planner's estimates after ANALYZE
	Trivial    timing            `json:"baseline_trivial_endpoint"`
	SelectOne  loadgen.Summary   `json:"baseline_select_1"`
	Views      []ViewResult      `json:"views"`
	Console    string            `json:"console"`    // "measured", or why not
	OpsCounts  string            `json:"ops_counts"` // the ops aggregation's state when the views were timed
	Samples    map[string]string `json:"samples"`
	Elapsed    float64           `json:"elapsed_seconds"`
}

// ViewResult is one view's figures and plans.
type ViewResult struct {
	Name    string `json:"name"`
	Path    string `json:"path"`
	Console bool   `json:"console"`
	timing
	XBaseline float64     `json:"p95_x_trivial"` // sequential p95 / the trivial endpoint's
	Under     bool        `json:"under_200ms"`   // sequential p95 under Budget
	Plans     []PlanCheck `json:"plans,omitempty"`
	Error     string      `json:"error,omitempty"`
}

// Run seeds (or reuses) the database, starts the router, and measures.
// The router is stopped before it returns; the report comes back with
// the figures measured so far even with an error.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg.defaults()
	began := time.Now()
	rep := &Report{Date: began.Format("2006-01-02"), CPUs: runtime.NumCPU(), Database: Database, Samples: map[string]string{}}
	rep.LoadBefore, _ = benchrun.LoadAverage() // 0 when unreadable
	rep.Requests, rep.Clients = cfg.Requests, cfg.Clients
	err := run(ctx, cfg, rep)
	rep.Elapsed = time.Since(began).Seconds()
	if cfg.Out != "" && (len(rep.Views) > 0 || rep.Seed != nil) {
		data, jerr := json.MarshalIndent(rep, "", "  ")
		if jerr == nil {
			jerr = os.WriteFile(cfg.Out, append(data, '\n'), 0o644)
		}
		err = errors.Join(err, jerr)
	}
	return rep, err
}

func step(cfg Config, format string, args ...any) {
	fmt.Fprintf(cfg.Progress, "consolebench: "+format+"\n", args...)
}

func run(ctx context.Context, cfg Config, rep *Report) error {
	if _, err := os.Stat(filepath.Join(cfg.Bin, "router")); err != nil {
		return fmt.Errorf("%w (make bench-console builds the binaries first)", err)
	}
	logf, err := os.Create(cfg.Log)
	if err != nil {
		return fmt.Errorf("bench log: %w", err)
	}
	defer logf.Close()
	srv, err := pgenv.Ensure(ctx, slog.New(slog.NewTextHandler(cfg.Progress, nil)))
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if err := srv.Stop(sctx); err != nil {
			step(cfg, "stop the throwaway cluster: %v", err)
		}
	}()
	dbURL, err := pgenv.WithDatabase(srv.URL, Database)
	if err != nil {
		return err
	}
	env := append(os.Environ(), "DATABASE_URL="+dbURL)

	if cfg.Reuse {
		rep.Reused, err = seeded(ctx, srv.URL, dbURL)
		if err != nil {
			return err
		}
	}
	if !rep.Reused {
		if err := pgenv.RecreateDatabase(ctx, srv.URL, Database); err != nil {
			return err
		}
		if _, err := routerCommand(ctx, cfg.Bin, env, logf, "migrate"); err != nil {
			return err
		}
		step(cfg, "database %s recreated on the %s server and migrated; seeding %d messages over %d days from %d connections",
			Database, srv.Source, cfg.Plan.Messages, cfg.Plan.Days, cfg.Workers)
		if rep.Seed, err = Seed(ctx, dbURL, cfg.Plan, cfg.Workers, cfg.Progress); err != nil {
			return err
		}
		s := rep.Seed
		step(cfg, "seeded %d rows (%d messages, %d events, %d dead letters, %d alerts, %d patients) in %.0f s: %.0f rows/s, %.0f messages/s; database %s",
			s.Rows, s.Messages, s.Events, s.DeadLetters, s.Alerts, s.Patients, s.TotalSeconds, s.RowsPerSec, s.MessagesPerS, s.DatabaseSize)
	} else {
		step(cfg, "reusing the seeded database %s", Database)
	}

	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := conn.QueryRow(ctx, "SHOW server_version").Scan(&rep.PostgreSQL); err != nil {
		return err
	}
	if f := strings.Fields(rep.PostgreSQL); len(f) > 0 {
		rep.PostgreSQL = f[0]
	}

	stamp := strconv.FormatInt(time.Now().Unix(), 36)
	adminToken, err := routerCommand(ctx, cfg.Bin, env, logf, "token", "create", "--name", "consolebench-admin-"+stamp, "--role", "admin")
	if err != nil {
		return err
	}
	viewerToken, err := routerCommand(ctx, cfg.Bin, env, logf, "token", "create", "--name", "consolebench-viewer-"+stamp, "--role", "viewer")
	if err != nil {
		return err
	}
	router, addr, err := startRouter(ctx, cfg.Bin, cfg.Routes, env, logf)
	if err != nil {
		return err
	}
	defer router.stop()
	step(cfg, "router ready, API on %s (output in %s)", addr, cfg.Log)
	// The router migrates at start: a reused database gets the newest
	// indexes, which need fresh statistics like the rest.
	if _, err := conn.Exec(ctx, "ANALYZE"); err != nil {
		return fmt.Errorf("analyze: %w", err)
	}
	if rep.Tables, err = tableRows(ctx, conn); err != nil {
		return err
	}

	s, err := readSamples(ctx, conn)
	if err != nil {
		return err
	}
	if rep.OpsCounts, err = waitOps(ctx, conn, s.End); err != nil {
		return err
	}
	step(cfg, "ops counts: %s", rep.OpsCounts)
	api := newClient(addr, viewerToken)
	// The second page's cursor is the API's own, from the first page.
	var first struct {
		Next *string `json:"next_cursor"`
	}
	if err := api.getJSON(ctx, "/api/v1/messages", &first); err != nil {
		return err
	}
	if first.Next == nil {
		return errors.New("the first page of messages has no next_cursor")
	}
	s.CursorText = *first.Next
	rep.Samples = map[string]string{"message_id": s.MessageID, "control_id": s.ControlID, "patient_id": s.PatientID,
		"sender": s.Sender, "newest_message": s.End.Format(time.RFC3339)}

	// Baselines: a trivial authenticated endpoint (the token looked up,
	// the routes answered from memory) and a bare round trip to
	// PostgreSQL.
	if rep.Trivial, err = api.measure(ctx, view{Name: "trivial", Path: "/api/v1/routes"}, cfg.Warmup, cfg.Requests, cfg.Clients); err != nil {
		return fmt.Errorf("baseline: %w", err)
	}
	if rep.SelectOne, err = selectOne(ctx, conn, cfg.Warmup, cfg.Requests); err != nil {
		return err
	}
	step(cfg, "baselines: GET /api/v1/routes %s; SELECT 1 %s", rep.Trivial.Sequential, rep.SelectOne)

	views := apiViews(s)
	rep.Console = "not measured (--console=false)"
	if cfg.Console {
		console := newClient(addr, adminToken)
		ok, err := console.loginConsole(ctx)
		switch {
		case err != nil:
			rep.Console = "login failed: " + err.Error()
		case !ok:
			rep.Console = "not available: this router serves no /console (pkg/console not built in yet)"
		default:
			rep.Console = "measured"
			api.console = console.console
		}
		step(cfg, "console: %s", rep.Console)
	}

	// The plan check's own store: the statements the views send.
	tr := &capture{}
	st, err := store.Open(ctx, dbURL, store.Options{ApplicationName: "aorta-consolebench", MaxConns: 2, Tracer: tr})
	if err != nil {
		return err
	}
	defer st.Close()
	big, err := bigTables(ctx, conn)
	if err != nil {
		return err
	}

	var failed []string
	results := make([]ViewResult, 0, len(views))
	all := append([]view{}, views...)
	if rep.Console == "measured" {
		all = append(all, consoleViews(s)...)
	}
	for _, v := range all {
		r := ViewResult{Name: v.Name, Path: v.Path, Console: v.Console}
		t, err := api.measure(ctx, v, cfg.Warmup, cfg.Requests, cfg.Clients)
		r.timing = t
		if err != nil {
			r.Error = err.Error()
			failed = append(failed, v.Name)
		}
		if rep.Trivial.Sequential.P95 > 0 {
			r.XBaseline = float64(t.Sequential.P95) / float64(rep.Trivial.Sequential.P95)
		}
		r.Under = err == nil && t.Sequential.P95 < Budget
		if v.Store != nil {
			if r.Plans, err = checkPlans(ctx, st, tr, conn, v, big); err != nil {
				r.Error = strings.TrimPrefix(r.Error+"; "+err.Error(), "; ")
				failed = append(failed, v.Name+" (plan)")
			}
		}
		step(cfg, "%-32s %s; %d clients p95 %s", v.Name, t.Sequential, cfg.Clients, loadgen.Millis(t.Concurrent.P95))
		results = append(results, r)
		if ctx.Err() != nil {
			break
		}
	}
	rep.Views = results
	if len(failed) > 0 {
		return fmt.Errorf("views failed: %s", strings.Join(failed, ", "))
	}
	return ctx.Err()
}

// Waits for the router's ops aggregation (migration 00006): on a fresh
// seed it first counts the last day's messages into its buckets, and the
// ops summary counts whatever it has not reached yet directly; timing the
// summary before it caught up would time the catching up.
const (
	opsWait      = 5 * time.Minute
	opsStartWait = 30 * time.Second
)

// waitOps waits until both ops watermarks have reached end (the newest
// seeded message) and says how it went.
func waitOps(ctx context.Context, conn *pgx.Conn, end time.Time) (string, error) {
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass('public.ops_watermarks') IS NOT NULL`).Scan(&exists); err != nil {
		return "", fmt.Errorf("ops watermarks: %w", err)
	}
	if !exists {
		return "no ops aggregation in this schema: the summary counts messages directly", nil
	}
	began := time.Now()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		var n int
		var oldest *time.Time
		if err := conn.QueryRow(ctx, `SELECT count(*), min(received_at) FROM ops_watermarks`).Scan(&n, &oldest); err != nil {
			return "", fmt.Errorf("ops watermarks: %w", err)
		}
		waited := time.Since(began)
		switch {
		case n >= 2 && oldest != nil && !oldest.Before(end.Add(-time.Minute)):
			return fmt.Sprintf("caught up with the seed %.0f s after the router started", waited.Seconds()), nil
		case n == 0 && waited > opsStartWait:
			return fmt.Sprintf("no aggregation pass within %v: the summary counts the seeded day directly", opsStartWait), nil
		case waited > opsWait:
			return fmt.Sprintf("still catching up after %v (at %s, seed ends %s)", opsWait, oldest.Format(time.RFC3339), end.Format(time.RFC3339)), nil
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-tick.C:
		}
	}
}

// seeded reports whether the bench database exists and holds messages.
func seeded(ctx context.Context, serverURL, dbURL string) (bool, error) {
	conn, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		return false, fmt.Errorf("connect: %w", err)
	}
	var exists bool
	err = conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", Database).Scan(&exists)
	conn.Close(context.WithoutCancel(ctx))
	if err != nil || !exists {
		return false, err
	}
	db, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return false, fmt.Errorf("connect: %w", err)
	}
	defer db.Close(context.WithoutCancel(ctx))
	var any bool
	if err := db.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM messages)").Scan(&any); err != nil {
		return false, nil // not migrated: seed it afresh
	}
	return any, nil
}

// readSamples picks what the filtered views search for.
func readSamples(ctx context.Context, conn *pgx.Conn) (samples, error) {
	var s samples
	if err := conn.QueryRow(ctx, `SELECT max(received_at) FROM messages`).Scan(&s.End); err != nil {
		return s, fmt.Errorf("samples: newest message: %w", err)
	}
	err := conn.QueryRow(ctx, `SELECT m.id::text, m.control_id FROM messages m JOIN message_routing r ON r.message_id = m.id
		WHERE m.received_at < $1 AND r.status = 'routed' AND r.events > 1
		ORDER BY m.received_at DESC LIMIT 1`, s.End.Add(-3*24*time.Hour)).Scan(&s.MessageID, &s.ControlID)
	if err != nil {
		return s, fmt.Errorf("samples: a routed message: %w", err)
	}
	// A patient with a score and alerts: the one a clinician looks up.
	err = conn.QueryRow(ctx, `SELECT p.patient_key, p.patient_id FROM scores s JOIN patients p USING (patient_key)
		ORDER BY (SELECT count(*) FROM alerts a WHERE a.patient_key = s.patient_key) DESC, s.total DESC, p.patient_key LIMIT 1`).
		Scan(&s.PatientKey, &s.PatientID)
	if err != nil {
		return s, fmt.Errorf("samples: a patient with scores: %w", err)
	}
	if err := conn.QueryRow(ctx, `SELECT received_at, id FROM messages ORDER BY received_at DESC, id DESC OFFSET $1 LIMIT 1`, apiPage-2).
		Scan(&s.Cursor.ReceivedAt, &s.Cursor.ID); err != nil {
		return s, fmt.Errorf("samples: the first page's end: %w", err)
	}
	s.Sender = "EOBS" // the nursing charts' feed: a sender among many
	return s, nil
}

// getJSON reads an API answer into v.
func (c *client) getJSON(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.api.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	return nil
}

// selectOne times a bare round trip to PostgreSQL.
func selectOne(ctx context.Context, conn *pgx.Conn, warmup, n int) (loadgen.Summary, error) {
	var one int
	var ds []time.Duration
	for i := range warmup + n {
		start := time.Now()
		if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
			return loadgen.Summary{}, fmt.Errorf("SELECT 1: %w", err)
		}
		if i >= warmup {
			ds = append(ds, time.Since(start))
		}
	}
	return loadgen.Summarize(ds), nil
}

// tableRows is the planner's row estimate of each table, after ANALYZE.
func tableRows(ctx context.Context, conn *pgx.Conn) (map[string]int64, error) {
	rows, err := conn.Query(ctx, `SELECT relname, reltuples::bigint FROM pg_class
		WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace AND reltuples > 0`)
	if err != nil {
		return nil, fmt.Errorf("table rows: %w", err)
	}
	out := map[string]int64{}
	for rows.Next() {
		var name string
		var n int64
		if err := rows.Scan(&name, &n); err != nil {
			return nil, fmt.Errorf("table rows: %w", err)
		}
		out[name] = n
	}
	return out, rows.Err()
}
