package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aortahealth/aorta/pkg/store"
)

// Defaults for Options.
const (
	// DefaultPollInterval is how often the queue is read when nothing
	// wakes the worker: the longest a row queued by another router process
	// (which cannot call Wake) waits, and the retry timer's resolution.
	DefaultPollInterval = 250 * time.Millisecond
	// DefaultConcurrency is how many sends one destination may have in
	// flight in one process: a dead webhook ties up only its own.
	DefaultConcurrency = 4
	// DefaultLeaseMargin is how much longer than the destination's timeout
	// a claim lasts: the time left to record the outcome before another
	// worker may send the row again.
	DefaultLeaseMargin = 30 * time.Second
	// DefaultStoreTimeout bounds each database statement.
	DefaultStoreTimeout = 5 * time.Second
)

// Reasons stored in last_error for rows that are held, not sent.
const (
	ReasonUnknownDestination = "unknown destination"
	reasonInvalidPrefix      = "invalid destination: "
)

// holdEvery is how many poll intervals pass between marking held rows
// (destinations not configured) with their reason.
const holdEvery = 20

// recordAttempts is how often recording an outcome is tried while the
// database is briefly unavailable; after that the row's lease runs out and
// it is sent again (at least once, never lost).
const recordAttempts = 3

// Options configures a Worker. Zero values take the defaults.
type Options struct {
	// Logger receives operational logs and the log destinations' alert
	// lines.
	Logger       *slog.Logger
	Metrics      *Metrics // may be nil
	PollInterval time.Duration
	// Concurrency is the sends in flight per destination in this process.
	Concurrency int
	// LeaseMargin is how much longer than its destination's timeout a
	// claim lasts; at least twice StoreTimeout.
	LeaseMargin  time.Duration
	StoreTimeout time.Duration
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.PollInterval <= 0 {
		o.PollInterval = DefaultPollInterval
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.LeaseMargin <= 0 {
		o.LeaseMargin = DefaultLeaseMargin
	}
	if o.StoreTimeout <= 0 {
		o.StoreTimeout = DefaultStoreTimeout
	}
	// The margin must cover the claim statement (see dispatch) and leave
	// time to record the outcome.
	o.LeaseMargin = max(o.LeaseMargin, 2*o.StoreTimeout)
	return o
}

// destinations is one configuration: those that can be sent to, and why
// the others cannot.
type destinations struct {
	sendable map[string]Destination // with defaults applied
	names    []string               // sendable names, sorted
	invalid  map[string]string      // name -> last_error
}

// Worker sends the deliveries queue. It is safe for concurrent use.
type Worker struct {
	store  *store.Store
	opts   Options
	log    *slog.Logger
	client *http.Client
	dests  atomic.Pointer[destinations]

	wake     chan struct{}
	holdSoon atomic.Bool // a new configuration: mark held rows now

	mu       sync.Mutex
	inflight map[string]int // sends in flight per destination, guarded by mu
}

// New returns a Worker sending to dests (keyed by destination name) until
// SetDestinations replaces them.
func New(st *store.Store, dests map[string]Destination, opts Options) *Worker {
	opts = opts.withDefaults()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = opts.Concurrency
	w := &Worker{
		store: st,
		opts:  opts,
		log:   opts.Logger,
		client: &http.Client{
			Transport: tr,
			// A signed alert goes only where it was configured to go: a
			// redirect is an answer other than 2xx, retried like any other.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		wake:     make(chan struct{}, 1),
		inflight: map[string]int{},
	}
	w.SetDestinations(dests)
	return w
}

// SetDestinations swaps in a new configuration (routes.yaml reloaded).
// Sends in flight finish with the configuration they started with.
func (w *Worker) SetDestinations(dests map[string]Destination) {
	c := &destinations{sendable: map[string]Destination{}, invalid: map[string]string{}}
	for name, d := range dests {
		d.Name = name
		if err := d.Validate(); err != nil {
			c.invalid[name] = reasonInvalidPrefix + err.Error()
			w.log.Warn("delivery destination invalid; its deliveries are held", "destination", name, "err", err)
			continue
		}
		if d.Kind == KindLog && !w.log.Enabled(context.Background(), slog.LevelInfo) {
			w.log.Warn("log destination configured but the log hides info lines; its deliveries will fail until it shows them", "destination", name)
		}
		c.sendable[name] = d.withDefaults()
		c.names = append(c.names, name)
	}
	sort.Strings(c.names)
	w.dests.Store(c)
	w.opts.Metrics.configured(c.names)
	w.holdSoon.Store(true)
	w.Wake()
}

// Wake makes the worker read the queue now; the router calls it after
// committing new deliveries. It never blocks.
func (w *Worker) Wake() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Run sends deliveries until ctx is cancelled, then waits for the sends in
// flight, each bounded by its destination's timeout, to finish and record
// their outcome, and returns nil. Call it once.
func (w *Worker) Run(ctx context.Context) error {
	var sends sync.WaitGroup
	poll := time.NewTicker(w.opts.PollInterval)
	defer poll.Stop()
	w.log.Info("delivery worker running", "destinations", len(w.dests.Load().names), "concurrency", w.opts.Concurrency)
	for tick := 0; ; {
		if w.holdSoon.Swap(false) || tick%holdEvery == 0 {
			w.hold(ctx)
		}
		w.dispatch(ctx, &sends)
		select {
		case <-ctx.Done():
			sends.Wait()
			w.client.CloseIdleConnections()
			return nil
		case <-w.wake:
		case <-poll.C:
			tick++
		}
	}
}

// dispatch claims, for every destination with free send slots, up to that
// many due rows, and starts a send for each. A row is claimed only when
// its send can start at once, so no claim waits behind a slow destination
// while its lease runs out.
func (w *Worker) dispatch(ctx context.Context, sends *sync.WaitGroup) {
	if ctx.Err() != nil {
		return
	}
	c := w.dests.Load()
	want := make([]store.DeliveryClaim, 0, len(c.names))
	w.mu.Lock()
	for _, name := range c.names {
		if free := w.opts.Concurrency - w.inflight[name]; free > 0 {
			want = append(want, store.DeliveryClaim{
				Destination: name, Limit: free, Lease: c.sendable[name].Timeout + w.opts.LeaseMargin,
			})
		}
	}
	w.mu.Unlock()
	if len(want) == 0 {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, w.opts.StoreTimeout)
	ds, err := w.store.ClaimDeliveries(cctx, want)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			w.log.Warn("claim deliveries", "err", err)
		}
		return
	}
	// Each attempt ends by claimed + timeout. The lease started during the
	// claim, at most StoreTimeout earlier, and lasts timeout + LeaseMargin
	// with LeaseMargin > StoreTimeout: no attempt outlives its lease, so no
	// other worker sends the row meanwhile.
	claimed := time.Now()
	for _, d := range ds {
		dest := c.sendable[d.Destination]
		w.mu.Lock()
		w.inflight[d.Destination]++
		w.mu.Unlock()
		sends.Go(func() {
			defer func() {
				w.mu.Lock()
				w.inflight[d.Destination]--
				w.mu.Unlock()
				w.Wake() // a slot is free: there may be more due rows
			}()
			w.attempt(ctx, dest, d, claimed)
		})
	}
}

// attempt sends one claimed row and records the outcome. The send is not
// cut short by ctx (shutdown): it ends by its own deadline.
func (w *Worker) attempt(ctx context.Context, dest Destination, d store.Delivery, claimed time.Time) {
	bg := context.WithoutCancel(ctx)
	sctx, cancel := context.WithDeadline(bg, claimed.Add(dest.Timeout))
	began := time.Now()
	var o outcome
	switch dest.Kind {
	case KindWebhook:
		o = w.post(sctx, dest, d)
	case KindLog:
		o = w.writeLog(sctx, d)
	}
	cancel()
	w.opts.Metrics.observe(dest.Name, time.Since(began))

	attrs := []any{"destination", dest.Name, "delivery_id", d.ID, "event_id", d.EventID, "attempt", d.Attempt}
	if o.err == nil {
		err := w.record(ctx, func(c context.Context) error { return w.store.MarkDelivered(c, d.ID, d.Attempt) })
		switch {
		case err == nil:
			w.opts.Metrics.result(dest.Name, resultDelivered)
		case errors.Is(err, store.ErrDeliveryClaimLost):
			w.log.Warn("delivery sent but its claim was lost; the newer attempt decides", attrs...)
		default:
			w.log.Warn("delivery sent but not recorded; it will be sent again after its lease", append(attrs, "err", err)...)
		}
		return
	}
	delay := retryDelay(d.Attempt, dest.Backoff, dest.MaxBackoff, o.retryAfter, rand.Int64N)
	var dead bool
	err := w.record(ctx, func(c context.Context) error {
		var err error
		dead, err = w.store.FailDelivery(c, d.ID, d.Attempt, o.err.Error(), delay, dest.MaxAttempts)
		return err
	})
	switch {
	case errors.Is(err, store.ErrDeliveryClaimLost):
		w.log.Warn("delivery failed and its claim was lost; the newer attempt decides", append(attrs, "reason", o.err.Error())...)
	case err != nil:
		w.log.Warn("delivery failed and was not recorded; it is retried after its lease", append(attrs, "reason", o.err.Error(), "err", err)...)
	case dead:
		w.opts.Metrics.result(dest.Name, resultDead)
		w.log.Error("delivery dead after its last attempt", append(attrs, "reason", o.err.Error())...)
	default:
		w.opts.Metrics.result(dest.Name, resultFailed)
		w.log.Info("delivery failed; will retry", append(attrs, "reason", o.err.Error(), "retry_in", delay)...)
	}
}

// record runs a bookkeeping statement, retrying briefly while the database
// is unavailable, but not once the worker is shutting down.
func (w *Worker) record(ctx context.Context, fn func(context.Context) error) error {
	bg := context.WithoutCancel(ctx)
	for i := 1; ; i++ {
		c, cancel := context.WithTimeout(bg, w.opts.StoreTimeout)
		err := fn(c)
		cancel()
		if err == nil || errors.Is(err, store.ErrDeliveryClaimLost) || !store.IsTransient(err) ||
			i == recordAttempts || ctx.Err() != nil {
			return err
		}
		time.Sleep(time.Duration(i) * 100 * time.Millisecond)
	}
}

// hold marks the pending rows of destinations this configuration cannot
// send to with the reason, so that operators see why they wait.
func (w *Worker) hold(ctx context.Context) {
	c := w.dests.Load()
	hctx, cancel := context.WithTimeout(ctx, w.opts.StoreTimeout)
	held, err := w.store.HoldDeliveries(hctx, c.names, c.invalid, ReasonUnknownDestination)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			w.log.Warn("mark held deliveries", "err", err)
		}
		return
	}
	for dest, n := range held {
		reason, ok := c.invalid[dest]
		if !ok {
			reason = ReasonUnknownDestination
		}
		w.log.Warn("deliveries held, not sent: destination not usable", "destination", dest, "rows", n, "reason", reason)
	}
}

// writeLog writes a log destination's line: identifiers and clinical
// classification only, never patient identifiers (see the package doc).
func (w *Worker) writeLog(ctx context.Context, d store.Delivery) outcome {
	if !w.log.Enabled(ctx, slog.LevelInfo) {
		// Marking it delivered would drop the alert without a trace.
		return outcome{err: errors.New("the log does not record info lines")}
	}
	if strings.HasPrefix(d.Type, "feed.") {
		return w.writeFeedLog(ctx, d)
	}
	var p struct {
		Total    json.Number `json:"total"`
		Severity string      `json:"severity"`
		Level    *int        `json:"level"`
	}
	// A payload of another shape only loses the optional fields.
	_ = json.Unmarshal(d.Payload, &p)
	severity, level := d.Severity, d.Level
	if p.Severity != "" {
		severity = p.Severity
	}
	if p.Level != nil {
		level = *p.Level
	}
	attrs := []any{
		"destination", d.Destination, "delivery_id", d.ID, "event_id", d.EventID, "alert_id", d.AlertID,
		"type", d.Type, "rule", d.Rule, "score", d.Score, "severity", severity, "alert_level", level,
	}
	if _, err := p.Total.Float64(); err == nil {
		attrs = append(attrs, "score_total", p.Total)
	}
	w.log.InfoContext(ctx, "alert", attrs...)
	return outcome{}
}

// writeFeedLog writes a log destination's line for a feed.idle or
// feed.resumed event (routes.yaml feeds): the feed and its sender (MSH-3
// and MSH-4, no patient data) and when it last sent a message.
func (w *Worker) writeFeedLog(ctx context.Context, d store.Delivery) outcome {
	var p struct {
		Feed          string `json:"feed"`
		Sender        string `json:"sender"`
		Silence       string `json:"silence"`
		LastMessageAt string `json:"last_message_at"`
		IdleSince     string `json:"idle_since"`
	}
	// A payload of another shape only loses these fields.
	_ = json.Unmarshal(d.Payload, &p)
	w.log.InfoContext(ctx, "feed", "destination", d.Destination, "delivery_id", d.ID, "event_id", d.EventID, "type", d.Type,
		"feed", p.Feed, "sender", p.Sender, "silence", p.Silence, "last_message_at", p.LastMessageAt, "idle_since", p.IdleSince)
	return outcome{}
}
