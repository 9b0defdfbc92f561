package router

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/aortahealth/aorta/pkg/route"
	"github.com/aortahealth/aorta/pkg/store"
)

// Feed event types (docs/router.md, "Idle feeds").
const (
	FeedIdle    = "feed.idle"
	FeedResumed = "feed.resumed"
)

// Defaults for OpsConfig.
const (
	// DefaultOpsSettle is how far behind now the ops aggregator counts: far
	// more than the listener's 5 s store retry budget, so that a message
	// whose transaction commits late is still counted. The summary counts
	// the messages after the aggregator directly, so it is never stale.
	DefaultOpsSettle = 30 * time.Second
	// DefaultOpsBatch is how many messages one aggregation transaction
	// counts; a router catching up runs batches back to back.
	DefaultOpsBatch = 50_000
	// Bounds of the check interval: a quarter of the shortest silence
	// window, so an idle feed is noticed within a quarter window, at least
	// minOpsInterval so that tiny windows do not hammer the database, and
	// at most MaxOpsInterval so that the counts stay fresh without feeds.
	minOpsInterval = time.Second
	MaxOpsInterval = 10 * time.Second
)

// feedEventNamespace makes feed event IDs deterministic (UUIDv5 of the
// feed, the transition and the message it names), so that the event of
// one transition is written once even if a check is retried.
var feedEventNamespace = uuid.MustParse("6f0f3d8e-5a55-4d7e-9a51-3f3c1a1f0e0d")

// OpsConfig configures an OpsWatcher. Zero values take the defaults.
type OpsConfig struct {
	Settle time.Duration
	Batch  int
	// Interval overrides the check interval computed from the feeds.
	Interval time.Duration
	Logger   *slog.Logger
	Metrics  *FeedMetrics
	// OnDeliveries is called after a check that queued deliveries commits
	// (the delivery worker's wake-up).
	OnDeliveries func()
	Now          func() time.Time
}

// OpsWatcher keeps the ops summary's counts (store.AggregateOps) and
// watches the routes.yaml feeds for silence. Every router runs one; the
// database's advisory locks let one at a time count and decide, so that
// each feed transition writes one event however many routers run.
type OpsWatcher struct {
	store  *store.Store
	routes func() *route.Config
	cfg    OpsConfig
}

// NewOpsWatcher returns a watcher reading the feeds from routes (called
// at every check, so that a reload takes effect at the next one).
func NewOpsWatcher(st *store.Store, routes func() *route.Config, cfg OpsConfig) *OpsWatcher {
	if cfg.Settle <= 0 {
		cfg.Settle = DefaultOpsSettle
	}
	if cfg.Batch <= 0 {
		cfg.Batch = DefaultOpsBatch
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &OpsWatcher{store: st, routes: routes, cfg: cfg}
}

// interval is how often to check the feeds of c.
func (w *OpsWatcher) interval(c *route.Config) time.Duration {
	if w.cfg.Interval > 0 {
		return w.cfg.Interval
	}
	d := MaxOpsInterval
	for _, f := range c.Feeds {
		d = min(d, f.Silence/4)
	}
	return max(d, minOpsInterval)
}

// Run checks until ctx is cancelled. A failed check is logged and tried
// again at the next tick: the watcher never stops the router.
func (w *OpsWatcher) Run(ctx context.Context) error {
	for {
		if err := w.Check(ctx); err != nil && ctx.Err() == nil {
			w.cfg.Logger.Warn("ops check failed; retrying at the next tick", "err", err)
		}
		t := time.NewTimer(w.interval(w.routes()))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// Check runs one aggregation (in batches until caught up) and one feed
// check, and updates the feed metrics.
func (w *OpsWatcher) Check(ctx context.Context) error {
	for range 1000 { // bounded: 1000 batches is 50 million messages
		res, err := w.store.AggregateOps(ctx, w.cfg.Now(), w.cfg.Settle, w.cfg.Batch)
		if err != nil {
			return err
		}
		if !res.More {
			break
		}
	}
	c := w.routes()
	feeds := make([]store.FeedConfig, len(c.Feeds))
	byName := make(map[string]*route.Feed, len(c.Feeds))
	for i, f := range c.Feeds {
		feeds[i] = store.FeedConfig{Name: f.Name, SendingApplication: f.SendingApplication, SendingFacility: f.SendingFacility, Silence: f.Silence}
		byName[f.Name] = f
	}
	now := w.cfg.Now()
	var changes []store.FeedChange
	states, ran, err := w.store.CheckFeeds(ctx, now, feeds, func(states []store.FeedState) []store.FeedChange {
		changes = decideFeeds(now, states, byName)
		return changes
	})
	if err != nil {
		return err
	}
	if ran {
		queued := false
		for _, ch := range changes {
			w.logChange(ch, states)
			queued = queued || len(ch.Deliveries) > 0
		}
		if queued && w.cfg.OnDeliveries != nil {
			w.cfg.OnDeliveries()
		}
	}
	w.cfg.Metrics.observe(now, states)
	return nil
}

func (w *OpsWatcher) logChange(ch store.FeedChange, states []store.FeedState) {
	for _, f := range states {
		if f.Name != ch.Name {
			continue
		}
		attrs := []any{"feed", f.Name, "sender", f.Sender(), "silence", f.Silence.String(), "event", ch.Event != nil}
		if !f.LastMessageAt.IsZero() {
			attrs = append(attrs, "last_message_at", f.LastMessageAt.UTC().Format(time.RFC3339))
		}
		switch {
		case ch.Idle && f.LastMessageAt.IsZero():
			// No event can be written (it would name no message), so this
			// line and aorta_feed_idle are all there is: say what to check,
			// since the likeliest cause is a sender misspelt in routes.yaml.
			w.cfg.Logger.Warn("feed idle: nothing from its sender has ever been stored; check its sending_application and sending_facility in routes.yaml against the senders' MSH-3 and MSH-4",
				attrs...)
		case ch.Idle:
			w.cfg.Logger.Warn("feed idle", attrs...)
		default:
			w.cfg.Logger.Info("feed resumed", attrs...)
		}
	}
}

// decideFeeds returns the transitions due at now: a feed is idle when
// nothing arrived from its sender for longer than its window, counted
// from its last message, or from when it was first watched if it never
// sent anything. Each transition names the feed's latest message (the
// last before the silence, or the one that ended it) as its event's
// lineage; a feed that never sent anything changes state without an
// event, which has no message to name.
func decideFeeds(now time.Time, states []store.FeedState, feeds map[string]*route.Feed) []store.FeedChange {
	var changes []store.FeedChange
	for _, f := range states {
		ref := f.WatchedSince
		if !f.LastMessageAt.IsZero() {
			ref = f.LastMessageAt
		}
		// A feed with active hours counts its silence inside them only.
		var active *route.Schedule
		if rf := feeds[f.Name]; rf != nil {
			active = rf.Active
		}
		idle := now.Sub(ref) > f.Silence
		if active != nil {
			idle = active.Active(ref, now) > f.Silence
		}
		if idle == f.Idle {
			continue
		}
		ch := store.FeedChange{Name: f.Name, Idle: idle}
		payload := map[string]any{
			"feed": f.Name, "sender": f.Sender(), "sending_application": f.SendingApplication,
			"sending_facility": f.SendingFacility, "silence": f.Silence.String(), "silence_seconds": f.Silence.Seconds(),
			"last_message_at": nil,
		}
		if !f.LastMessageAt.IsZero() {
			payload["last_message_at"] = f.LastMessageAt.UTC().Format(time.RFC3339Nano)
		}
		if active != nil {
			payload["active"] = map[string]any{"days": active.DayNames(), "from": active.From.String(), "to": active.To.String(),
				"timezone": active.Location.String()}
		}
		typ, occurred := FeedResumed, f.LastMessageAt
		if idle {
			ch.IdleSince = ref.Add(f.Silence)
			if active != nil {
				if at := active.After(ref, f.Silence); !at.IsZero() && !at.After(now) {
					ch.IdleSince = at
				} else {
					ch.IdleSince = now
				}
			}
			typ, occurred = FeedIdle, ch.IdleSince
			payload["idle_since"] = ch.IdleSince.UTC().Format(time.RFC3339Nano)
		} else {
			payload["idle_since"] = f.IdleSince.UTC().Format(time.RFC3339Nano)
			silent := f.LastMessageAt.Sub(f.IdleSince.Add(-f.Silence))
			if active != nil {
				silent = f.Silence + active.Active(f.IdleSince, f.LastMessageAt)
			}
			payload["silent_seconds"] = max(0, silent.Seconds())
		}
		if f.LastMessageID != uuid.Nil {
			body, _ := json.Marshal(payload)
			id := uuid.NewSHA1(feedEventNamespace, []byte(typ+"/"+f.Name+"/"+f.LastMessageID.String()))
			ch.Event = &store.EventRow{
				ID: id, Type: typ, OccurredAt: occurred, MessageID: f.LastMessageID,
				Source: f.LastSender, Route: "feed/" + f.Name, SchemaVersion: 1, Payload: body,
			}
			if rf := feeds[f.Name]; rf != nil {
				for _, d := range rf.Notify {
					if d.Kind == route.KindNotify {
						note, _ := json.Marshal(map[string]any{"event_id": id, "type": typ, "feed": f.Name, "sender": f.Sender()})
						ch.Deliveries = append(ch.Deliveries, store.FeedDelivery{Destination: d.Name, Kind: d.Kind, Channel: d.Channel, Note: string(note)})
						continue
					}
					ch.Deliveries = append(ch.Deliveries, store.FeedDelivery{Destination: d.Name, Kind: d.Kind})
				}
			}
		}
		changes = append(changes, ch)
	}
	return changes
}

// FeedMetrics are the feed gauges. Labels are feed names from
// routes.yaml: bounded, and no patient data.
type FeedMetrics struct {
	idle *prometheus.GaugeVec
	age  *prometheus.GaugeVec
}

// NewFeedMetrics registers the feed gauges with reg.
func NewFeedMetrics(reg prometheus.Registerer) *FeedMetrics {
	m := &FeedMetrics{
		idle: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "aorta_feed_idle", Help: "1 while a routes.yaml feed is idle (silent for longer than its window), else 0.",
		}, []string{"feed"}),
		age: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "aorta_feed_last_message_age_seconds", Help: "Seconds since the feed's sender last sent a message (absent when it never did).",
		}, []string{"feed"}),
	}
	reg.MustRegister(m.idle, m.age)
	return m
}

// observe replaces the gauges with the feeds just checked, so that a
// feed removed from routes.yaml disappears.
func (m *FeedMetrics) observe(now time.Time, states []store.FeedState) {
	if m == nil {
		return
	}
	m.idle.Reset()
	m.age.Reset()
	for _, f := range states {
		v := 0.0
		if f.Idle {
			v = 1
		}
		m.idle.WithLabelValues(f.Name).Set(v)
		if !f.LastMessageAt.IsZero() {
			m.age.WithLabelValues(f.Name).Set(max(0, now.Sub(f.LastMessageAt).Seconds()))
		}
	}
}
