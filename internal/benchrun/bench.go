package benchrun

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/aortahealth/aorta/internal/loadgen"
	"github.com/aortahealth/aorta/internal/pgenv"
)

// Database is the bench's own database, dropped and created again at
// every run, on the server make run uses.
const Database = "aorta_bench"

// Config is a bench run. The zero value of a field is its default.
type Config struct {
	// Bin is the directory holding mllp-listener and router; Routes the
	// router's routes file.
	Bin    string
	Routes string
	// Out is where the JSON report goes ("" writes none); Log where the
	// engine's output goes.
	Out string
	Log string
	// Levels are the numbers of connections the listener is measured at,
	// for LevelDuration each.
	Levels        []int
	LevelDuration time.Duration
	// ProbeDuration is how long each PostgreSQL probe writes;
	// CeilingConns the connection counts the COPY probe tries, with
	// CeilingBatch rows per commit.
	ProbeDuration time.Duration
	CeilingConns  []int
	CeilingBatch  int
	// IdleConns is how many silent connections the idle test holds.
	IdleConns int
	// RouterRate and RouterDuration are the offered load of the routing
	// phase, sent over RouterConns connections; RouterWait bounds the
	// wait for the router to finish after it.
	RouterRate     float64
	RouterDuration time.Duration
	RouterConns    int
	RouterWait     time.Duration
	// DrainCount is how many messages are queued, with the router
	// stopped, for it to drain alone when it starts: its capacity, and
	// its and the database's CPU per message; below 0 skips it.
	DrainCount int
	// Patients and Seed configure the mix (loadgen.DefaultMix).
	Patients int
	Seed     uint64
	// Progress receives a line per step; nil discards them.
	Progress io.Writer
}

// Defaults keep a whole run to about two to three minutes.
var (
	DefaultLevels         = []int{1, 8, 64, 256}
	DefaultCeilingConns   = []int{2, 4, 8}
	DefaultLevelDuration  = 10 * time.Second
	DefaultProbeDuration  = 3 * time.Second
	DefaultCeilingBatch   = 256
	DefaultIdleConns      = 1000
	DefaultRouterRate     = 1000.0
	DefaultRouterDuration = 20 * time.Second
	DefaultRouterConns    = 32
	DefaultRouterWait     = 2 * time.Minute
	DefaultDrainCount     = 20000
)

func (c *Config) defaults() {
	if c.Routes == "" {
		c.Routes = "routes.yaml"
	}
	if c.Log == "" {
		c.Log = filepath.Join(c.Bin, "bench.log")
	}
	if len(c.Levels) == 0 {
		c.Levels = DefaultLevels
	}
	if len(c.CeilingConns) == 0 {
		c.CeilingConns = DefaultCeilingConns
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.LevelDuration, DefaultLevelDuration)
	def(&c.ProbeDuration, DefaultProbeDuration)
	def(&c.RouterDuration, DefaultRouterDuration)
	def(&c.RouterWait, DefaultRouterWait)
	if c.CeilingBatch == 0 {
		c.CeilingBatch = DefaultCeilingBatch
	}
	if c.IdleConns == 0 {
		c.IdleConns = DefaultIdleConns
	}
	if c.RouterRate == 0 {
		c.RouterRate = DefaultRouterRate
	}
	if c.RouterConns == 0 {
		c.RouterConns = DefaultRouterConns
	}
	if c.DrainCount == 0 {
		c.DrainCount = DefaultDrainCount
	}
	if c.Patients == 0 {
		c.Patients = loadgen.DefaultPatients
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
}

// Run runs the whole bench: PostgreSQL found as make run finds it, a fresh
// database, the probes, the listener at each level, the idle connections,
// then the router at a fixed rate. It stops what it started before it
// returns, and returns the report even when ctx ended part-way (with the
// figures measured so far) together with the error.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg.defaults()
	b := &bench{cfg: cfg, began: time.Now()}
	rep := &Report{Date: b.began.Format("2006-01-02"), CPUs: runtime.NumCPU(), Database: Database}
	rep.LoadBefore, _ = LoadAverage()
	err := b.run(ctx, rep)
	b.close()
	rep.Elapsed = Seconds(time.Since(b.began))
	if cfg.Out != "" && len(rep.Levels) > 0 {
		if werr := writeJSON(cfg.Out, rep); werr != nil {
			err = errors.Join(err, werr)
		}
	}
	return rep, err
}

// bench is a run's state: what it started, to stop at the end.
type bench struct {
	cfg      Config
	began    time.Time
	srv      *pgenv.Server
	dbURL    string
	log      *os.File
	logMu    sync.Mutex
	listener *process
	router   *process
	gen      *loadgen.Generator
}

func (b *bench) step(format string, args ...any) {
	fmt.Fprintf(b.cfg.Progress, "bench %6.1fs  %s\n", time.Since(b.began).Seconds(), fmt.Sprintf(format, args...))
}

func (b *bench) close() {
	b.router.stop()
	b.listener.stop()
	if b.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := b.srv.Stop(ctx); err != nil {
			fmt.Fprintf(b.cfg.Progress, "bench: stop the throwaway cluster: %v\n", err)
		}
	}
	if b.log != nil {
		b.log.Close()
	}
}

func (b *bench) run(ctx context.Context, rep *Report) error {
	cfg := &b.cfg
	for _, name := range []string{"mllp-listener", "router"} {
		if _, err := os.Stat(filepath.Join(cfg.Bin, name)); err != nil {
			return fmt.Errorf("%w (make bench builds the binaries first)", err)
		}
	}
	var err error
	if b.log, err = os.Create(cfg.Log); err != nil {
		return fmt.Errorf("bench log: %w", err)
	}
	if b.gen, err = loadgen.NewGenerator(loadgen.GeneratorOptions{Patients: cfg.Patients, Seed: cfg.Seed}); err != nil {
		return err
	}
	rep.Mix, rep.Patients = b.gen.Options().Mix.String(), cfg.Patients

	// PostgreSQL, as make run finds it, and a fresh database.
	b.srv, err = pgenv.Ensure(ctx, slog.New(slog.NewTextHandler(cfg.Progress, nil)))
	if err != nil {
		return err
	}
	rep.Server = b.srv.Source
	if err := pgenv.RecreateDatabase(ctx, b.srv.URL, Database); err != nil {
		return err
	}
	if b.dbURL, err = pgenv.WithDatabase(b.srv.URL, Database); err != nil {
		return err
	}
	b.step("database %s recreated on the %s server; engine output in %s", Database, b.srv.Source, cfg.Log)
	env := append(os.Environ(), "DATABASE_URL="+b.dbURL)
	migrate := execIn(cfg.Bin, "mllp-listener", "migrate")
	migrate.Env, migrate.Stdout, migrate.Stderr = env, b.log, b.log
	if err := migrate.Run(); err != nil {
		return fmt.Errorf("migrate %s: %w; see %s", Database, err, cfg.Log)
	}
	admin, err := pgx.Connect(ctx, b.dbURL)
	if err != nil {
		return err
	}
	defer admin.Close(context.WithoutCancel(ctx))
	if err := admin.QueryRow(ctx, "SHOW server_version").Scan(&rep.PostgreSQL); err != nil {
		return err
	}
	if f := strings.Fields(rep.PostgreSQL); len(f) > 0 {
		rep.PostgreSQL = f[0] // 15.20 of "15.20 (Debian 15.20-0+deb12u1)"
	}

	// (a) PostgreSQL's own rates for the same rows.
	probeGen, err := b.phase("P")
	if err != nil {
		return err
	}
	rows, err := probeRows(probeGen, 2000)
	if err != nil {
		return err
	}
	for _, conns := range cfg.CeilingConns {
		p, err := copyProbe(ctx, b.dbURL, rows, conns, cfg.CeilingBatch, cfg.ProbeDuration)
		if err != nil {
			return err
		}
		b.step("ceiling probe: COPY from %d connections, %d rows per commit: %s rows/s", conns, cfg.CeilingBatch, Thousands(p.Rate))
		rep.Probes = append(rep.Probes, p)
		if p.Rate > rep.Ceiling.Rate {
			rep.Ceiling = p
		}
	}
	if rep.Commit, err = commitProbe(ctx, b.dbURL, rows, cfg.ProbeDuration); err != nil {
		return err
	}
	b.step("commit probe: INSERT + COMMIT per message from 1 connection: %s rows/s", Thousands(rep.Commit.Rate))
	// The probes' rows stay, analysed, so that the listener meets a table
	// with rows and statistics, as in production. (Emptied and analysed,
	// the planner would take it for empty and plan the de-duplication
	// look-up as a sequential scan until autovacuum analyses it again.)
	if _, err := admin.Exec(ctx, "ANALYZE messages, outbox"); err != nil {
		return err
	}

	// (b) The listener alone at each level.
	maxConns := cfg.IdleConns + 64
	for _, l := range cfg.Levels {
		maxConns = max(maxConns, l+64)
	}
	var mllpAddr string
	b.listener, mllpAddr, err = startProcess(ctx, "listener", filepath.Join(cfg.Bin, "mllp-listener"),
		[]string{"--mllp-addr", "127.0.0.1:0", "--http-addr", "", "--name", "aorta-bench", "--max-connections", strconv.Itoa(maxConns)},
		env, b.log, &b.logMu, "mllp-listener ready", "mllp_addr")
	if err != nil {
		return err
	}
	b.step("listener ready on %s (pid %d)", mllpAddr, b.listener.pid())

	// (e) Idle connections, first: the RSS of a fresh listener is the
	// baseline that the connections' memory adds to, before the levels'
	// garbage makes it drift.
	if err := b.idle(ctx, mllpAddr, rep); err != nil {
		return err
	}
	b.step("listener RSS %s idle, %s with %d idle connections open (%d descriptors)",
		mib(rep.Listener.IdleRSSKiB), mib(rep.Listener.IdleConnsRSSKiB), rep.Listener.IdleConns, rep.Listener.IdleConnsFDs)
	warm, err := b.phase("W")
	if err != nil {
		return err
	}
	if _, err := loadgen.Run(ctx, loadgen.Config{Addr: mllpAddr, Conns: 8, Duration: time.Second, Generator: warm}); err != nil {
		return err
	}
	for _, conns := range cfg.Levels {
		l, err := b.level(ctx, admin, mllpAddr, conns, rep)
		if err != nil {
			return err
		}
		rep.Levels = append(rep.Levels, l)
		b.step("listener, %d connections: %s messages/s (%.2f× ceiling), ACK %s, %.2f CPU s/1k msgs",
			conns, Thousands(l.Rate), l.XCeiling, l.Latency, l.ListenerCPU)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}

	// (f) The router alone on a backlog of DrainCount messages, queued
	// while it was stopped, then (g) at a fixed rate. Neither starts on
	// the levels' backlog.
	if _, err := admin.Exec(ctx, "TRUNCATE outbox"); err != nil {
		return fmt.Errorf("empty the outbox: %w", err)
	}
	if cfg.DrainCount > 0 {
		// Nobody deteriorates in the backlog: alerts it raised would stay
		// open through (g), which would then raise and time fewer.
		o := b.gen.Options()
		o.DeteriorateEvery, o.RunID = -1, b.gen.RunID()[:min(len(b.gen.RunID()), 8)]+"D"
		gen, err := loadgen.NewGenerator(o)
		if err != nil {
			return err
		}
		res, err := loadgen.Run(ctx, loadgen.Config{Addr: mllpAddr, Conns: 64, Count: cfg.DrainCount, Generator: gen})
		if err != nil {
			return err
		}
		b.step("%s messages queued for the router", Thousands(float64(res.Acked)))
	}
	b.router, _, err = startProcess(ctx, "router", filepath.Join(cfg.Bin, "router"),
		[]string{"--routes", cfg.Routes, "--http-addr", "", "--api-addr", ""}, env, b.log, &b.logMu, "router ready", "id")
	if err != nil {
		return err
	}
	if cfg.DrainCount > 0 {
		if err := b.drain(ctx, admin, rep); err != nil {
			return err
		}
		d := &rep.Router.Drain
		b.step("router alone: %s messages (%s events) in %v: %s msg/s, %s CPU s/1k msgs",
			Thousands(float64(d.Messages)), Thousands(float64(d.Events)), time.Duration(d.Elapsed).Round(100*time.Millisecond),
			Thousands(d.Rate), cpu(d.RouterCPU, d.BackendCPU))
	}
	b.step("router ready (pid %d); offering %s messages/s for %v", b.router.pid(), Thousands(cfg.RouterRate), cfg.RouterDuration)
	if err := b.routing(ctx, mllpAddr, rep); err != nil {
		return err
	}
	ro := &rep.Router
	b.step("router: ACK->event p50 %s p99 %s; ACK->alert %s; backlog max %d, %+.1f rows/s",
		loadgen.Millis(ro.Event.P50), loadgen.Millis(ro.Event.P99), alertText(ro.Alert), ro.BacklogMax, ro.BacklogGrowth)
	if _, peak, err := procMem(b.listener.pid()); err == nil {
		rep.Listener.PeakRSSKiB = peak
	}
	return nil
}

// phase returns the generator of one phase of the bench: the same mix
// under a run ID of its own (the bench's, 8 characters, and a suffix),
// since every run numbers its messages from 0 and the listener would
// take a second run's messages for re-sends of the first's.
func (b *bench) phase(suffix string) (*loadgen.Generator, error) {
	return b.gen.WithRunID(b.gen.RunID()[:min(len(b.gen.RunID()), 8)] + suffix)
}

// level measures the listener at conns connections.
func (b *bench) level(ctx context.Context, admin *pgx.Conn, addr string, conns int, rep *Report) (Level, error) {
	cpu0, err := procCPU(b.listener.pid())
	if err != nil {
		return Level{}, err
	}
	back0 := backendsCPU(ctx, admin)
	gen, err := b.phase("L" + strconv.Itoa(len(rep.Levels)))
	if err != nil {
		return Level{}, err
	}
	res, err := loadgen.Run(ctx, loadgen.Config{Addr: addr, Conns: conns, Duration: b.cfg.LevelDuration, Generator: gen})
	if err != nil {
		return Level{}, err
	}
	cpu1, err := procCPU(b.listener.pid())
	if err != nil {
		return Level{}, err
	}
	back1 := backendsCPU(ctx, admin)
	l := Level{Conns: conns, Acked: res.Acked, Rate: res.Rate, Latency: res.Latency, AckCodes: res.AckCodes, Errors: res.Errors}
	l.XCeiling = ratio(res.Rate, rep.Ceiling.Rate)
	if conns == 1 {
		l.XCommit = ratio(res.Rate, rep.Commit.Rate)
	}
	if res.Acked > 0 {
		l.ListenerCPU = (cpu1 - cpu0).Seconds() / float64(res.Acked) * 1000
		if d := back1.since(back0); d > 0 {
			l.BackendCPU = d.Seconds() / float64(res.Acked) * 1000
		}
	}
	if res.Acked == 0 {
		return l, fmt.Errorf("listener at %d connections acknowledged nothing: errors %v; see %s", conns, res.Errors, b.cfg.Log)
	}
	return l, nil
}

// idle holds IdleConns silent connections and reads the listener's RSS.
func (b *bench) idle(ctx context.Context, addr string, rep *Report) error {
	pid := b.listener.pid()
	rss0, _, err := procMem(pid)
	if err != nil {
		return err
	}
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	var d net.Dialer
	for range b.cfg.IdleConns {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return fmt.Errorf("idle connection %d: %w", len(conns)+1, err)
		}
		conns = append(conns, c)
	}
	// Give the listener time to accept them all and settle.
	if !sleepCtx(ctx, 2*time.Second) {
		return ctx.Err()
	}
	rss1, _, err := procMem(pid)
	if err != nil {
		return err
	}
	// The descriptors prove the connections were accepted, not left in
	// the kernel's backlog.
	if fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
		rep.Listener.IdleConnsFDs = len(fds)
	}
	if b.listener.exited() {
		return fmt.Errorf("the listener exited while holding idle connections; see %s", b.cfg.Log)
	}
	rep.Listener.IdleRSSKiB, rep.Listener.IdleConns, rep.Listener.IdleConnsRSSKiB = rss0, len(conns), rss1
	return nil
}

// routing offers RouterRate for RouterDuration with the router running,
// watching the outbox, then waits for the router and reads the latencies.
func (b *bench) routing(ctx context.Context, addr string, rep *Report) error {
	cfg := &b.cfg
	ro := &rep.Router
	ro.Offered, ro.Duration = cfg.RouterRate, Seconds(cfg.RouterDuration)
	rcpu0, err := procCPU(b.router.pid())
	if err != nil {
		return err
	}
	lcpu0, err := procCPU(b.listener.pid())
	if err != nil {
		return err
	}
	gen, err := b.phase("R")
	if err != nil {
		return err
	}
	wctx, stopWatch := context.WithCancel(ctx)
	type watched struct {
		b   loadgen.Backlog
		err error
	}
	watch := make(chan watched, 1)
	go func() {
		bl, err := loadgen.WatchBacklog(wctx, b.dbURL, 250*time.Millisecond)
		watch <- watched{bl, err}
	}()
	res, err := loadgen.Run(ctx, loadgen.Config{Addr: addr, Conns: cfg.RouterConns, Rate: cfg.RouterRate,
		Duration: cfg.RouterDuration, Generator: gen, KeepRecords: true})
	loadEnd := time.Now()
	if err != nil {
		stopWatch()
		<-watch
		return err
	}
	lcpu1, _ := procCPU(b.listener.pid())
	ro.Acked, ro.Rate, ro.Latency, ro.Errors = res.Acked, res.Rate, res.Latency, res.Errors
	rl, rerr := loadgen.RouterLatency(ctx, b.dbURL, res.Records, cfg.RouterWait)
	stopWatch()
	w := <-watch
	if rerr != nil {
		return rerr
	}
	if w.err != nil {
		return w.err
	}
	if rl.Note != "" {
		return fmt.Errorf("router latency: %s", rl.Note)
	}
	rcpu1, err := procCPU(b.router.pid())
	if err != nil {
		return err
	}
	ro.Event, ro.Alert, ro.Routed, ro.Pending = rl.Event, rl.Alert, rl.Routed, rl.Pending
	ro.DrainedAfter = Seconds(rl.Waited)
	var during loadgen.Backlog
	for _, s := range w.b {
		if !s.At.After(loadEnd) {
			during = append(during, s)
		}
	}
	ro.BacklogMax = during.Max()
	if len(during) > 0 {
		ro.BacklogEnd = during[len(during)-1].Rows
	}
	ro.BacklogGrowth, _ = during.Growth()
	if ro.BacklogEnd > 0 && rl.Pending == 0 && rl.Waited > time.Second {
		ro.DrainRate = float64(ro.BacklogEnd) / rl.Waited.Seconds()
	}
	ro.BacklogGrew = ro.BacklogGrowth > grewThreshold*cfg.RouterRate
	if res.Acked > 0 {
		ro.RouterCPU = (rcpu1 - rcpu0).Seconds() / float64(res.Acked) * 1000
		ro.ListenerCPU = (lcpu1 - lcpu0).Seconds() / float64(res.Acked) * 1000
	}
	_, ro.RouterPeakKiB, _ = procMem(b.router.pid())
	return nil
}

// drain times the router, just started, emptying the outbox queued for
// it, and reads its and the database's CPU meanwhile. The clock starts at
// "router ready", with what the outbox holds then.
func (b *bench) drain(ctx context.Context, admin *pgx.Conn, rep *Report) error {
	d := &rep.Router.Drain
	cpu0, err := procCPU(b.router.pid())
	if err != nil {
		return err
	}
	back0 := backendsCPU(ctx, admin)
	var events0 int
	start := time.Now()
	if err := admin.QueryRow(ctx, `SELECT (SELECT count(*) FROM outbox), (SELECT count(*) FROM events)`).Scan(&d.Messages, &events0); err != nil {
		return fmt.Errorf("router drain: %w", err)
	}
	deadline := start.Add(b.cfg.RouterWait)
	for left := d.Messages; left > 0; {
		if time.Now().After(deadline) {
			return fmt.Errorf("router drain: %d of %d messages still queued after %v; see %s", left, d.Messages, b.cfg.RouterWait, b.cfg.Log)
		}
		if b.router.exited() {
			return fmt.Errorf("router drain: the router exited; see %s", b.cfg.Log)
		}
		if !sleepCtx(ctx, 100*time.Millisecond) {
			return ctx.Err()
		}
		if err := admin.QueryRow(ctx, `SELECT count(*) FROM outbox`).Scan(&left); err != nil {
			return fmt.Errorf("router drain: %w", err)
		}
	}
	elapsed := time.Since(start)
	cpu1, err := procCPU(b.router.pid())
	if err != nil {
		return err
	}
	back1 := backendsCPU(ctx, admin)
	var events1 int
	if err := admin.QueryRow(ctx, `SELECT count(*) FROM events`).Scan(&events1); err != nil {
		return fmt.Errorf("router drain: %w", err)
	}
	d.Elapsed, d.Events = Seconds(elapsed), events1-events0
	if d.Messages > 0 {
		d.Rate = float64(d.Messages) / elapsed.Seconds()
		d.RouterCPU = (cpu1 - cpu0).Seconds() / float64(d.Messages) * 1000
		if bc := back1.since(back0); bc > 0 {
			d.BackendCPU = bc.Seconds() / float64(d.Messages) * 1000
		}
	}
	return nil
}

// backends is the CPU time of the database's backends, by process ID.
type backends map[int]time.Duration

// backendsCPU reads the CPU time of the bench database's backends from
// /proc; nil when the server is not on this machine or not readable.
func backendsCPU(ctx context.Context, c *pgx.Conn) backends {
	rows, err := c.Query(ctx, `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`)
	if err != nil {
		return nil
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return nil
	}
	out := backends{}
	for _, pid := range pids {
		if t, err := procCPU(int(pid)); err == nil {
			out[int(pid)] = t
		}
	}
	return out
}

// since is the CPU time used between b0 and b by the backends alive at b
// (a backend that started in between counts whole).
func (b backends) since(b0 backends) time.Duration {
	if b == nil || b0 == nil {
		return 0
	}
	var d time.Duration
	for pid, t := range b {
		d += t - b0[pid]
	}
	return d
}

func writeJSON(path string, rep *Report) error {
	data, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
