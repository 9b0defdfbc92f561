package ingest

import (
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/aortahealth/aorta/pkg/store"
)

// Metrics are the listener's Prometheus series. Labels are bounded: the
// message type label only takes standard HL7 message codes (anything else
// is "other", since a peer could otherwise mint labels), and rejection
// reasons are table 0357 codes.
type Metrics struct {
	received      *prometheus.CounterVec
	stored        *prometheus.CounterVec
	rejected      *prometheus.CounterVec
	duplicates    *prometheus.CounterVec
	ignored       prometheus.Counter
	reused        prometheus.Counter
	batches       prometheus.Counter
	storeFailures *prometheus.CounterVec
	ackLatency    *prometheus.HistogramVec
	groupSize     prometheus.Histogram
	commitSeconds prometheus.Histogram
	commitErrors  *prometheus.CounterVec
	commitFailing prometheus.Gauge
}

// NewMetrics registers the ingest metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aorta_messages_received_total", Help: "HL7 messages received, by message type (MSH-9.1).",
		}, []string{"type"}),
		stored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aorta_messages_stored_total", Help: "Messages committed to the database and queued for the router, by message type.",
		}, []string{"type"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aorta_messages_rejected_total", Help: "Messages stored for inspection and answered with a reject, by message type and HL7 table 0357 error code.",
		}, []string{"type", "code"}),
		duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aorta_messages_duplicate_total", Help: "Byte-identical re-sends answered with the stored ACK and not stored again, by message type.",
		}, []string{"type"}),
		ignored: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "aorta_messages_ignored_total", Help: "Inbound acknowledgements stored and never answered.",
		}),
		reused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "aorta_control_id_reuse_total", Help: "Messages stored whose control ID the same sender already used for different bytes.",
		}),
		batches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "aorta_batches_received_total", Help: "HL7 batch files (FHS/BHS) received in one frame.",
		}),
		storeFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aorta_store_failures_total", Help: "Frames that could not be stored within the retry budget and were not acknowledged, by what the sender saw (close or reject).",
		}, []string{"action"}),
		ackLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "aorta_ack_latency_seconds",
			Help:    "Time from a complete frame to its acknowledgement being ready (parse, commit, build), by MSA-1 code ('none' when no ACK is due).",
			Buckets: []float64{.0005, .001, .002, .004, .008, .016, .032, .064, .128, .256, .512, 1, 2, 5, 10},
		}, []string{"code"}),
		groupSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "aorta_commit_group_frames",
			Help:    "Frames stored per transaction (group commit).",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256},
		}),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "aorta_commit_duration_seconds",
			Help:    "Duration of each store transaction attempt, successful or not.",
			Buckets: []float64{.0005, .001, .002, .004, .008, .016, .032, .064, .128, .256, .512, 1, 2, 5},
		}),
		commitErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aorta_commit_errors_total", Help: "Failed store transaction attempts, by kind: transient (database unavailable, retried) or data.",
		}, []string{"kind"}),
		commitFailing: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "aorta_commit_failing",
			Help: "1 while the most recent store transaction attempt failed on the database (unreachable, read-only, disk full) and none has succeeded since, else 0. " +
				"Unlike /readyz it does not expire: with no traffic it stays 1 until a commit succeeds.",
		}),
	}
	reg.MustRegister(m.received, m.stored, m.rejected, m.duplicates, m.ignored, m.reused, m.batches,
		m.storeFailures, m.ackLatency, m.groupSize, m.commitSeconds, m.commitErrors, m.commitFailing)
	return m
}

func (m *Metrics) observeCommit(frames int, d time.Duration, err error) {
	if m == nil {
		return
	}
	m.commitSeconds.Observe(d.Seconds())
	if err == nil {
		m.groupSize.Observe(float64(frames))
		return
	}
	kind := "data"
	if store.IsTransient(err) {
		kind = "transient"
	}
	m.commitErrors.WithLabelValues(kind).Inc()
}

func (m *Metrics) setCommitFailing(failing bool) {
	if m == nil {
		return
	}
	v := 0.0
	if failing {
		v = 1
	}
	m.commitFailing.Set(v)
}

// messageTypes are the message codes of HL7 table 0076 common enough to
// deserve their own label value.
var messageTypes = map[string]bool{
	"ACK": true, "ADT": true, "BAR": true, "DFT": true, "MDM": true, "MFN": true, "OML": true,
	"OMG": true, "ORM": true, "ORL": true, "ORU": true, "OUL": true, "PPR": true, "QBP": true,
	"QRY": true, "RDE": true, "RAS": true, "RSP": true, "SIU": true, "VXU": true, "ERP": true,
}

func typeLabel(t string) string {
	t = strings.ToUpper(t)
	if messageTypes[t] {
		return t
	}
	if t == "" {
		return "none"
	}
	return "other"
}

func codeLabel(code int) string { return strconv.Itoa(code) }
