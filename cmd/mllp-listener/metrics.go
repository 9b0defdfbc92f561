package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/aortahealth/aorta/pkg/mllp"
	"github.com/aortahealth/aorta/pkg/tlsfiles"
)

// registerServerStats exposes the MLLP server's counters. They are read
// from the server's atomics at scrape time rather than mirrored.
func registerServerStats(reg prometheus.Registerer, srv *mllp.Server) {
	counter := func(name, help string, get func(mllp.Stats) uint64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return float64(get(srv.Stats())) }))
	}
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "aorta_mllp_open_connections", Help: "MLLP connections being served now.",
	}, func() float64 { return float64(srv.Stats().Open) }))
	counter("aorta_mllp_connections_accepted_total", "MLLP connections taken into service.", func(s mllp.Stats) uint64 { return s.Accepted })
	// One metric, with the reason as a label; each reason is a counter of
	// its own with the same name and help.
	refused := func(reason string, get func(mllp.Stats) uint64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "aorta_mllp_connections_refused_total",
			Help: "MLLP connections closed on accept, before anything was read, by reason: max_connections (max-connections open), " +
				"not_allowed (address outside allow-cidr), max_conns_per_ip (max-conns-per-ip open from that address).",
			ConstLabels: prometheus.Labels{"reason": reason},
		}, func() float64 { return float64(get(srv.Stats())) }))
	}
	refused("max_connections", func(s mllp.Stats) uint64 { return s.Refused })
	refused("not_allowed", func(s mllp.Stats) uint64 { return s.Denied })
	refused("max_conns_per_ip", func(s mllp.Stats) uint64 { return s.PerIPRefused })
	counter("aorta_mllp_tls_handshake_errors_total", "TLS connections closed because the handshake failed (no or untrusted client certificate, old TLS version, plain MLLP) or did not complete within tls-handshake-timeout.", func(s mllp.Stats) uint64 { return s.TLSHandshakeErrors })
	counter("aorta_mllp_accept_errors_total", "Temporary accept errors (each followed by a pause).", func(s mllp.Stats) uint64 { return s.AcceptErrors })
	counter("aorta_mllp_frames_read_total", "Complete MLLP frames read.", func(s mllp.Stats) uint64 { return s.FramesRead })
	counter("aorta_mllp_frame_bytes_total", "Payload bytes of the frames read.", func(s mllp.Stats) uint64 { return s.BytesRead })
	counter("aorta_mllp_discarded_bytes_total", "Bytes received outside any frame and dropped.", func(s mllp.Stats) uint64 { return s.Discarded })
	counter("aorta_mllp_frames_too_large_total", "Connections closed for a frame over max-frame-size.", func(s mllp.Stats) uint64 { return s.FramesTooLarge })
	counter("aorta_mllp_idle_timeouts_total", "Connections closed for starting no frame within idle-timeout.", func(s mllp.Stats) uint64 { return s.IdleTimeouts })
	counter("aorta_mllp_frame_timeouts_total", "Connections closed because a started frame did not complete within frame-timeout.", func(s mllp.Stats) uint64 { return s.FrameTimeouts })
	counter("aorta_mllp_garbage_closed_total", "Connections closed for too many bytes outside a frame.", func(s mllp.Stats) uint64 { return s.GarbageClosed })
	counter("aorta_mllp_read_errors_total", "Connections lost mid-frame or to network errors.", func(s mllp.Stats) uint64 { return s.ReadErrors })
	counter("aorta_mllp_handler_errors_total", "Frames closed without an answer (storage failed).", func(s mllp.Stats) uint64 { return s.HandlerErrors })
	counter("aorta_mllp_handler_panics_total", "Frames whose handler panicked (a bug); closed without an answer.", func(s mllp.Stats) uint64 { return s.HandlerPanics })
	counter("aorta_mllp_responses_written_total", "Acknowledgement frames written.", func(s mllp.Stats) uint64 { return s.ResponsesWritten })
	counter("aorta_mllp_write_errors_total", "Acknowledgements that could not be written within write-timeout.", func(s mllp.Stats) uint64 { return s.WriteErrors })
	counter("aorta_mllp_rate_limited_frames_total", "Frames whose reading was delayed by rate-limit (back-pressure; they were answered normally).", func(s mllp.Stats) uint64 { return s.RateLimited })
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "aorta_mllp_rate_limit_wait_seconds_total", Help: "Time frames waited for rate-limit, in all.",
	}, func() float64 { return srv.Stats().RateLimitWait.Seconds() }))
	counter("aorta_mllp_rate_limit_closed_total", "Connections closed unanswered because a frame would have waited longer than rate-limit-max-wait.", func(s mllp.Stats) uint64 { return s.RateLimitClosed })
}

// registerTLSStats exposes the certificate reloader's counters and the
// expiry of the certificate being served.
func registerTLSStats(reg prometheus.Registerer, certs *tlsfiles.Reloader) {
	reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "aorta_mllp_tls_reloads_total", Help: "Changes of the TLS certificate, key or client CA files that were loaded.",
		}, func() float64 { return float64(certs.Stats().Reloads) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "aorta_mllp_tls_reload_errors_total", Help: "Changes of the TLS files that could not be loaded; the previous certificate stayed in use.",
		}, func() float64 { return float64(certs.Stats().Failures) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "aorta_mllp_tls_certificate_expiry_timestamp_seconds", Help: "When the TLS certificate being served expires, in Unix seconds.",
		}, func() float64 { return float64(certs.Stats().NotAfter.Unix()) }),
	)
}
