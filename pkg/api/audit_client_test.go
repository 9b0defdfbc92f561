package api_test

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/aortahealth/aorta/pkg/api"
)

// Audit rows say where a request came from: the TCP peer, or behind a
// trusted reverse proxy the client its X-Forwarded-For names.
func TestAuditRecordsTheClient(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	limiter := api.NewAuthLimiter(api.AuthLimiterConfig{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	h := api.Handler(api.Config{Store: f.st, Registry: registry(), RequestTimeout: 10 * time.Second, AuthLimiter: limiter})
	tests := []struct {
		name, remote, xff, scale, want string
	}{
		{name: "direct", remote: "198.51.100.20:40000", scale: "2", want: "198.51.100.20"},
		{name: "an untrusted peer's header is not believed", remote: "198.51.100.21:40000", xff: "203.0.113.66", scale: "1", want: "198.51.100.21"},
		{name: "behind the trusted proxy", remote: "10.1.2.3:40000", xff: "203.0.113.7", scale: "2", want: "203.0.113.7"},
		{name: "IPv6 client, whole", remote: "10.1.2.3:40000", xff: "2001:db8:5:6::42", scale: "1", want: "2001:db8:5:6::42"},
	}
	for _, tt := range tests {
		req := httptest.NewRequest(http.MethodPut, "/api/v1/patients/HOSP%2FP1/spo2-scale", strings.NewReader(`{"scale": `+tt.scale+`}`))
		req.Header.Set("Authorization", "Bearer "+f.tokens[api.RoleClinician])
		req.Header.Set("Content-Type", "application/json")
		req.RemoteAddr = tt.remote
		if tt.xff != "" {
			req.Header.Set("X-Forwarded-For", tt.xff)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			t.Fatalf("%s: %d %s", tt.name, rec.Code, rec.Body)
		}
		var client string
		f.query(`SELECT details->>'client' FROM audit_log WHERE action = 'patient.spo2_scale' ORDER BY id DESC LIMIT 1`, nil, &client)
		if client != tt.want {
			t.Errorf("%s: audit client %q, want %q", tt.name, client, tt.want)
		}
	}
	// Through the fixture's own server (loopback), the same.
	f.call(api.RoleClinician, http.MethodPut, "/api/v1/patients/HOSP%2FP1/spo2-scale", `{"scale": 2}`, http.StatusOK, nil)
	if n := f.count(`SELECT count(*) FROM audit_log WHERE action = 'patient.spo2_scale' AND details->>'client' = '127.0.0.1' AND details->>'scale' = '2'`); n != 1 {
		t.Errorf("%d audit rows from 127.0.0.1 with the scale kept, want 1", n)
	}
}
