package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/aortahealth/aorta/pkg/patient"
	"github.com/aortahealth/aorta/pkg/route"
	"github.com/aortahealth/aorta/pkg/store"
)

// Defaults for Config, each with a router flag.
const (
	// DefaultLeaseTTL is how long a lane lease lasts without renewal: after
	// a router dies, its lanes wait this long before another takes them.
	DefaultLeaseTTL = 15 * time.Second
	// DefaultPollInterval is the fallback when a notification is missed
	// (the LISTEN connection dropped): no row waits longer than this.
	DefaultPollInterval = 2 * time.Second
	// DefaultBatchSize is how many rows of one lane one transaction applies.
	DefaultBatchSize = 100
	// DefaultWorkers is how many lanes are applied at once.
	DefaultWorkers = 4
	// DefaultMaxAttempts is how often a failing message is tried before it
	// becomes a dead letter.
	DefaultMaxAttempts = 5
	// DefaultRetryBackoff is the first retry delay; it doubles per attempt.
	DefaultRetryBackoff = time.Second
	// DefaultApplyTimeout bounds one batch's processing and commit, so that
	// a stuck transaction gives its rows back (they are retried) instead of
	// holding its lane for ever.
	DefaultApplyTimeout = 30 * time.Second
)

// mergeRetryDelay is how long a merge waits for the prior patient's earlier
// messages before it is tried again.
const mergeRetryDelay = 200 * time.Millisecond

// notifyChannel is the channel the outbox trigger notifies (migration 00001).
const notifyChannel = "aorta_outbox"

// Config configures a Router. Zero values take the defaults.
type Config struct {
	// ID names this router instance; the default is hostname plus a
	// random suffix, unique per process.
	ID           string
	DatabaseURL  string // for the LISTEN connection
	LeaseTTL     time.Duration
	PollInterval time.Duration
	BatchSize    int
	Workers      int
	MaxAttempts  int
	RetryBackoff time.Duration
	ApplyTimeout time.Duration
	Logger       *slog.Logger
	Metrics      *Metrics
	// OnDeliveries is called after a batch that queued alert deliveries
	// commits (the delivery worker's wake-up).
	OnDeliveries func()
}

func (c Config) withDefaults() Config {
	if c.ID == "" {
		host, _ := os.Hostname()
		c.ID = fmt.Sprintf("%s-%s", host, uuid.NewString()[:8])
	}
	if c.LeaseTTL <= 0 {
		c.LeaseTTL = DefaultLeaseTTL
	}
	if c.PollInterval <= 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.BatchSize <= 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.Workers <= 0 {
		c.Workers = DefaultWorkers
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.RetryBackoff <= 0 {
		c.RetryBackoff = DefaultRetryBackoff
	}
	if c.ApplyTimeout <= 0 {
		c.ApplyTimeout = DefaultApplyTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Router consumes the outbox: it leases lanes, applies each lane's rows in
// order through the current routes, and commits events, state and the
// outbox completion together.
type Router struct {
	cfg    Config
	store  *store.Store
	routes atomic.Pointer[route.Config]

	mu     sync.Mutex
	leases map[int16]store.Lease // lanes held, guarded by mu
	busy   map[int16]bool        // lanes being applied, guarded by mu

	wake     chan struct{} // a notification or a finished lane
	listenOK atomic.Bool
}

// New returns a Router using routes until Reload replaces them.
func New(st *store.Store, routes *route.Config, cfg Config) *Router {
	r := &Router{
		cfg:    cfg.withDefaults(),
		store:  st,
		leases: map[int16]store.Lease{},
		busy:   map[int16]bool{},
		wake:   make(chan struct{}, 1),
	}
	r.routes.Store(routes)
	return r
}

// ID is this router's instance name.
func (r *Router) ID() string { return r.cfg.ID }

// Routes returns the routes in use.
func (r *Router) Routes() *route.Config { return r.routes.Load() }

// Reload swaps in new routes. Batches already being applied finish with
// the routes they started with; the next batch uses the new ones.
func (r *Router) Reload(c *route.Config) {
	r.routes.Store(c)
	r.cfg.Metrics.reloaded()
}

// Listening reports whether the notification connection is up (readiness).
func (r *Router) Listening() bool { return r.listenOK.Load() }

// Run applies the outbox until ctx is cancelled, then finishes the batches
// in flight, releases its lanes and returns. Its goroutines (lease keeper,
// listener, lane workers) all exit before it returns.
func (r *Router) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	bg, stop := context.WithCancel(ctx)
	defer stop()
	wg.Go(func() { r.keepLeases(bg) })
	wg.Go(func() { r.listen(bg) })
	r.cfg.Logger.Info("router running", "id", r.cfg.ID, "lanes", store.Lanes, "workers", r.cfg.Workers)

	var workers sync.WaitGroup
	poll := time.NewTicker(r.cfg.PollInterval)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			workers.Wait()
			// Lanes are released only once nothing is in flight on them.
			uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			if err := r.store.UnregisterRouter(uctx, r.cfg.ID); err != nil {
				r.cfg.Logger.Warn("release lanes at shutdown", "err", err)
			}
			cancel()
			return nil
		case <-r.wake:
		case <-poll.C:
		}
		r.dispatch(ctx, &workers)
	}
}

// signal wakes the dispatcher without blocking.
func (r *Router) signal() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// dispatch starts a worker for each held, idle lane that has ready rows,
// up to the worker limit.
func (r *Router) dispatch(ctx context.Context, workers *sync.WaitGroup) {
	r.mu.Lock()
	free := make([]int16, 0, len(r.leases))
	for lane := range r.leases {
		if !r.busy[lane] {
			free = append(free, lane)
		}
	}
	slots := r.cfg.Workers - len(r.busy)
	r.mu.Unlock()
	if len(free) == 0 || slots <= 0 {
		return
	}
	// Every database call is bounded: behind a NAT that silently drops
	// idle connections, an unbounded read would hang the router for good.
	rctx, cancel := context.WithTimeout(ctx, r.cfg.ApplyTimeout)
	work, err := r.store.ReadyWork(rctx, free, slots, r.cfg.BatchSize)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			r.cfg.Logger.Warn("read outbox", "err", err)
		}
		return
	}
	byLane := map[int16][]store.Work{}
	var order []int16
	for _, w := range work {
		if _, seen := byLane[w.Lane]; !seen {
			order = append(order, w.Lane)
		}
		byLane[w.Lane] = append(byLane[w.Lane], w)
	}
	for _, lane := range order {
		if slots == 0 {
			break
		}
		r.mu.Lock()
		lease, held := r.leases[lane]
		if held {
			r.busy[lane] = true
		}
		r.mu.Unlock()
		if !held {
			continue
		}
		slots--
		rows := byLane[lane]
		workers.Go(func() {
			defer func() {
				r.mu.Lock()
				delete(r.busy, lane)
				r.mu.Unlock()
				r.signal()
			}()
			r.applyLane(context.WithoutCancel(ctx), lease, rows)
		})
	}
}

// keepLeases heartbeats, renews this router's leases and balances lanes
// with the other live routers, every third of the lease TTL.
func (r *Router) keepLeases(ctx context.Context) {
	every := r.cfg.LeaseTTL / 3
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		bctx, cancel := context.WithTimeout(ctx, every)
		err := r.balance(bctx)
		cancel()
		if err != nil && ctx.Err() == nil {
			r.cfg.Logger.Warn("lane leases", "err", err)
			// Without renewals the leases lapse; stop claiming work on them
			// before they do.
			r.mu.Lock()
			r.leases = map[int16]store.Lease{}
			r.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (r *Router) balance(ctx context.Context) error {
	live, err := r.store.RegisterRouter(ctx, r.cfg.ID, hostname(), r.cfg.LeaseTTL)
	if err != nil {
		return err
	}
	want := (store.Lanes + live - 1) / live
	r.mu.Lock()
	busy := make(map[int16]bool, len(r.busy))
	for l := range r.busy {
		busy[l] = true
	}
	r.mu.Unlock()
	held, err := r.store.BalanceLanes(ctx, r.cfg.ID, want, r.cfg.LeaseTTL, busy)
	if err != nil {
		return err
	}
	r.mu.Lock()
	before := len(r.leases)
	r.leases = make(map[int16]store.Lease, len(held))
	for _, l := range held {
		r.leases[l.Lane] = l
	}
	r.mu.Unlock()
	r.cfg.Metrics.lanesHeld(len(held))
	if len(held) != before {
		r.cfg.Logger.Info("lanes rebalanced", "held", len(held), "routers", live)
		r.signal()
	}
	return nil
}

// listen holds a LISTEN connection and wakes the dispatcher on every
// notification; it reconnects with backoff when the connection drops.
func (r *Router) listen(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := r.listenOnce(ctx)
		r.listenOK.Store(false)
		if ctx.Err() != nil {
			return
		}
		r.cfg.Logger.Warn("outbox notifications lost; polling until reconnected", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func (r *Router) listenOnce(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, r.cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+notifyChannel); err != nil {
		return err
	}
	r.listenOK.Store(true)
	r.signal() // rows may have arrived while we were not listening
	for {
		// A connection that died silently (a dropped NAT entry) would wait
		// for ever: after a quiet poll interval, prove it alive with a ping.
		wctx, cancel := context.WithTimeout(ctx, r.cfg.PollInterval)
		_, err := conn.WaitForNotification(wctx)
		cancel()
		if err == nil {
			r.signal()
			continue
		}
		if ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		pctx, cancel := context.WithTimeout(ctx, r.cfg.PollInterval)
		err = conn.Ping(pctx)
		cancel()
		if err != nil {
			return fmt.Errorf("notification connection dead: %w", err)
		}
	}
}

// laneOf is the lane of a patient key, as the outbox computes it.
func laneOf(patientKey string) int16 {
	return int16(patient.Partition(patientKey) % store.Lanes)
}

func hostname() string {
	h, _ := os.Hostname()
	return h
}

// errStop is returned inside applyLane to abandon the rest of a lane's rows.
var errStop = errors.New("router: stop lane")
