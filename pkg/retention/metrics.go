package retention

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/aortahealth/aorta/pkg/store"
)

// Pass results counted by aorta_retention_runs_total.
const (
	resultOK    = "ok"
	resultError = "error" // stopped by an error (or cancelled at shutdown)
	resultBusy  = "busy"  // another process held the lock
)

// Metrics are retention's Prometheus series; the table label is one of
// store.RetentionTables.
type Metrics struct {
	deleted     *prometheus.CounterVec
	runs        *prometheus.CounterVec
	lastRun     prometheus.Gauge
	lastSuccess prometheus.Gauge
	duration    prometheus.Gauge
}

// NewMetrics registers the retention metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		deleted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aorta_retention_deleted_rows_total", Help: "Rows deleted by retention passes, by table.",
		}, []string{"table"}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aorta_retention_runs_total", Help: "Retention passes started by this process, by result: ok, error, or busy (another process was running one).",
		}, []string{"result"}),
		lastRun: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "aorta_retention_last_run_timestamp_seconds", Help: "When this process's last retention pass ended (Unix time), whatever its result.",
		}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "aorta_retention_last_success_timestamp_seconds", Help: "When this process's last retention pass that reached every cutoff ended (Unix time).",
		}),
		duration: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "aorta_retention_last_run_duration_seconds", Help: "How long this process's last retention pass took.",
		}),
	}
	for _, t := range store.RetentionTables {
		m.deleted.WithLabelValues(t)
	}
	for _, r := range []string{resultOK, resultError, resultBusy} {
		m.runs.WithLabelValues(r)
	}
	reg.MustRegister(m.deleted, m.runs, m.lastRun, m.lastSuccess, m.duration)
	return m
}

func (m *Metrics) count(table string, n int64) {
	if m != nil && n > 0 {
		m.deleted.WithLabelValues(table).Add(float64(n))
	}
}

func (m *Metrics) busy() {
	if m != nil {
		m.runs.WithLabelValues(resultBusy).Inc()
	}
}

func (m *Metrics) failed() {
	if m != nil {
		m.runs.WithLabelValues(resultError).Inc()
	}
}

func (m *Metrics) ran(rep *Report, err error) {
	if m == nil {
		return
	}
	end := time.Now()
	m.lastRun.Set(float64(end.UnixNano()) / 1e9)
	m.duration.Set(rep.Duration.Seconds())
	if err != nil {
		m.runs.WithLabelValues(resultError).Inc()
		return
	}
	m.runs.WithLabelValues(resultOK).Inc()
	m.lastSuccess.Set(float64(end.UnixNano()) / 1e9)
}
