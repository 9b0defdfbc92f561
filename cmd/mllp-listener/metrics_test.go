package main

import (
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/aortahealth/aorta/internal/testpki"
	"github.com/aortahealth/aorta/pkg/mllp"
)

// TestRegisterServerStats: every series registers without a clash, and
// refused connections are one metric with a reason label.
func TestRegisterServerStats(t *testing.T) {
	reg := prometheus.NewRegistry()
	registerServerStats(reg, &mllp.Server{})

	ca := testpki.NewCA(t, "test CA")
	certFile, keyFile := ca.Server(t, "listener", "127.0.0.1").WriteFiles(t, t.TempDir())
	certs, err := mllp.NewTLSReloader(mllp.TLSFiles{CertFile: certFile, KeyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	registerTLSStats(reg, certs)

	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	var reasons []string
	names := map[string]bool{}
	for _, f := range families {
		names[f.GetName()] = true
		if f.GetName() != "aorta_mllp_connections_refused_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				reasons = append(reasons, l.GetName()+"="+l.GetValue())
			}
		}
	}
	sort.Strings(reasons)
	if got, want := strings.Join(reasons, ","), "reason=max_connections,reason=max_conns_per_ip,reason=not_allowed"; got != want {
		t.Errorf("refused reasons %s, want %s", got, want)
	}
	for _, n := range []string{"aorta_mllp_tls_handshake_errors_total", "aorta_mllp_rate_limited_frames_total",
		"aorta_mllp_rate_limit_wait_seconds_total", "aorta_mllp_rate_limit_closed_total",
		"aorta_mllp_tls_reloads_total", "aorta_mllp_tls_reload_errors_total", "aorta_mllp_tls_certificate_expiry_timestamp_seconds"} {
		if !names[n] {
			t.Errorf("metric %s not registered", n)
		}
	}
}
