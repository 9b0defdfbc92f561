package delivery

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/aortahealth/aorta/pkg/store"
)

// Results counted by aorta_deliveries_total.
const (
	resultDelivered = "delivered"
	resultFailed    = "failed" // will be retried
	resultDead      = "dead"   // the last attempt failed
)

// collectTimeout bounds the queue query made at scrape time.
const collectTimeout = 2 * time.Second

// Metrics are the delivery worker's Prometheus series. The destination
// label is a routes.yaml destination name: bounded, never an ID.
type Metrics struct {
	deliveries *prometheus.CounterVec
	seconds    *prometheus.HistogramVec
	queue      *queueCollector
}

// NewMetrics registers the delivery metrics with reg, including the queue
// gauges, which st reads at scrape time.
func NewMetrics(reg prometheus.Registerer, st *store.Store) *Metrics {
	m := &Metrics{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aorta_deliveries_total",
			Help: "Delivery attempts by destination and result: delivered, failed (will be retried) or dead (the last attempt failed).",
		}, []string{"destination", "result"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "aorta_delivery_seconds",
			Help:    "Duration of each delivery attempt (the webhook request, or writing the log line).",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"destination"}),
		queue: &queueCollector{store: st},
	}
	reg.MustRegister(m.deliveries, m.seconds, m.queue)
	return m
}

// configured makes the configured destinations' series exist at zero, so
// that rates and "no pending deliveries" are visible before anything
// happens.
func (m *Metrics) configured(names []string) {
	if m == nil {
		return
	}
	for _, n := range names {
		for _, r := range []string{resultDelivered, resultFailed, resultDead} {
			m.deliveries.WithLabelValues(n, r)
		}
	}
	m.queue.mu.Lock()
	m.queue.names = names
	m.queue.mu.Unlock()
}

func (m *Metrics) result(dest, result string) {
	if m != nil {
		m.deliveries.WithLabelValues(dest, result).Inc()
	}
}

func (m *Metrics) observe(dest string, d time.Duration) {
	if m != nil {
		m.seconds.WithLabelValues(dest).Observe(d.Seconds())
	}
}

// queueCollector reads the queue from the database at scrape time.
type queueCollector struct {
	store *store.Store
	mu    sync.Mutex
	names []string // configured destinations, reported even when empty; guarded by mu
}

var (
	pendingDesc = prometheus.NewDesc("aorta_deliveries_pending",
		"Deliveries waiting, being sent, retrying or held (destination not configured).", []string{"destination"}, nil)
	oldestDesc = prometheus.NewDesc("aorta_deliveries_oldest_pending_age_seconds",
		"Age of the oldest pending delivery (0 when none).", []string{"destination"}, nil)
	deadDesc = prometheus.NewDesc("aorta_deliveries_dead",
		"Deliveries given up on after their destination's max_attempts.", []string{"destination"}, nil)
)

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- pendingDesc
	ch <- oldestDesc
	ch <- deadDesc
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), collectTimeout)
	defer cancel()
	stats, err := c.store.DeliveryStats(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(pendingDesc, err)
		return
	}
	c.mu.Lock()
	for _, n := range c.names {
		if _, ok := stats[n]; !ok {
			stats[n] = store.DestinationStats{}
		}
	}
	c.mu.Unlock()
	for dest, s := range stats {
		ch <- prometheus.MustNewConstMetric(pendingDesc, prometheus.GaugeValue, float64(s.Pending), dest)
		ch <- prometheus.MustNewConstMetric(oldestDesc, prometheus.GaugeValue, s.OldestPending.Seconds(), dest)
		ch <- prometheus.MustNewConstMetric(deadDesc, prometheus.GaugeValue, float64(s.Dead), dest)
	}
}
