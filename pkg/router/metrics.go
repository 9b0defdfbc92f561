package router

import (
	"context"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/aortahealth/aorta/pkg/store"
)

// Metrics are the router's Prometheus series. Labels are bounded: event
// types are our vocabulary, routes are the names in routes.yaml.
type Metrics struct {
	messages     *prometheus.CounterVec
	events       *prometheus.CounterVec
	warnings     prometheus.Counter
	failures     *prometheus.CounterVec
	ackToEvent   prometheus.Histogram
	batchRows    prometheus.Histogram
	applySeconds prometheus.Histogram
	applyErrors  prometheus.Counter
	lanes        prometheus.Gauge
	reloads      *prometheus.CounterVec
	scores       *prometheus.CounterVec
	alerts       *prometheus.CounterVec
	ackToAlert   prometheus.Histogram
}

// NewMetrics registers the router metrics with reg, including the queue
// gauges, which st reads at scrape time.
func NewMetrics(reg prometheus.Registerer, st *store.Store) *Metrics {
	m := &Metrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aorta_router_messages_total", Help: "Messages processed, by outcome: routed, unrouted or dead_lettered.",
		}, []string{"status"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aorta_router_events_total", Help: "Events written, by event type and route (rate() gives events/s).",
		}, []string{"type", "route"}),
		warnings: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "aorta_router_warnings_total", Help: "Problems that did not stop a message, e.g. an OBX skipped under on_invalid: skip.",
		}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aorta_router_failures_total", Help: "Failed processing attempts, by result: retry (backing off) or dead_letter (attempts exhausted).",
		}, []string{"result"}),
		ackToEvent: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "aorta_router_ack_to_event_seconds",
			Help:    "From the listener storing (and acknowledging) a message to its events committing.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}),
		batchRows: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "aorta_router_batch_rows", Help: "Outbox rows applied per transaction.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128},
		}),
		applySeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "aorta_router_apply_seconds", Help: "Duration of each batch transaction attempt.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 5},
		}),
		applyErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "aorta_router_apply_errors_total", Help: "Batch transactions that failed (lease lost, database unavailable, bad data).",
		}),
		lanes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "aorta_router_lanes_held", Help: "Outbox lanes this router holds a lease on.",
		}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aorta_router_route_reloads_total", Help: "Attempts to reload routes.yaml, by result: ok or refused (the old routes stay active).",
		}, []string{"result"}),
	}
	m.scores = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "aorta_scores_total", Help: "Scores that became a patient's current score, by score and completeness.",
	}, []string{"score", "complete"})
	m.alerts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "aorta_alerts_total", Help: "Alert events, by rule and type (alert.raised, alert.escalated, alert.renotified, alert.resolved).",
	}, []string{"rule", "type"})
	m.ackToAlert = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "aorta_router_ack_to_alert_seconds",
		Help:    "From the listener storing (and acknowledging) a message to the alert it raised or escalated committing, queued for delivery.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
	})
	reg.MustRegister(m.messages, m.events, m.warnings, m.failures, m.ackToEvent, m.batchRows,
		m.applySeconds, m.applyErrors, m.lanes, m.reloads, m.scores, m.alerts, m.ackToAlert, &queueCollector{store: st})
	return m
}

// ReloadRefused counts a routes file that was refused.
func (m *Metrics) ReloadRefused() {
	if m != nil {
		m.reloads.WithLabelValues("refused").Inc()
	}
}

func (m *Metrics) reloaded() {
	if m != nil {
		m.reloads.WithLabelValues("ok").Inc()
	}
}

func (m *Metrics) scored(score string, complete bool) {
	if m != nil {
		m.scores.WithLabelValues(score, strconv.FormatBool(complete)).Inc()
	}
}

// alerted counts an alert event; a raise or an escalation of a message
// received at receivedAt (not a replay) also times its latency.
func (m *Metrics) alerted(rule, typ string, receivedAt, committedAt time.Time) {
	if m == nil {
		return
	}
	m.alerts.WithLabelValues(rule, typ).Inc()
	if (typ == AlertRaised || typ == AlertEscalated) && !receivedAt.IsZero() {
		m.ackToAlert.Observe(committedAt.Sub(receivedAt).Seconds())
	}
}

func (m *Metrics) lanesHeld(n int) {
	if m != nil {
		m.lanes.Set(float64(n))
	}
}

func (m *Metrics) failed(dead bool) {
	if m == nil {
		return
	}
	if dead {
		m.failures.WithLabelValues("dead_letter").Inc()
		m.messages.WithLabelValues(store.DeadLettered).Inc()
		return
	}
	m.failures.WithLabelValues("retry").Inc()
}

func (m *Metrics) observeApply(rows int, d time.Duration, err error) {
	if m == nil {
		return
	}
	m.applySeconds.Observe(d.Seconds())
	if err != nil {
		m.applyErrors.Inc()
		return
	}
	m.batchRows.Observe(float64(rows))
}

// queueCollector reads the backlog from the database at scrape time.
type queueCollector struct{ store *store.Store }

var (
	depthDesc  = prometheus.NewDesc("aorta_router_outbox_depth", "Outbox rows waiting for the router.", nil, nil)
	oldestDesc = prometheus.NewDesc("aorta_router_outbox_oldest_age_seconds", "Age of the oldest waiting outbox row (0 when empty).", nil, nil)
	deadDesc   = prometheus.NewDesc("aorta_router_dead_letters", "Unresolved dead letters.", nil, nil)
)

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- depthDesc
	ch <- oldestDesc
	ch <- deadDesc
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	q, err := c.store.QueueStats(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(depthDesc, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(depthDesc, prometheus.GaugeValue, float64(q.Depth))
	ch <- prometheus.MustNewConstMetric(oldestDesc, prometheus.GaugeValue, q.OldestAge.Seconds())
	ch <- prometheus.MustNewConstMetric(deadDesc, prometheus.GaugeValue, float64(q.DeadLetters))
}
