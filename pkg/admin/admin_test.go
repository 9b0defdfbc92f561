package admin

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestRouter(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "aorta_test_total", Help: "test"})
	reg.MustRegister(c)
	c.Inc()
	dbDown := errors.New("database unreachable")
	tests := []struct {
		name     string
		checks   map[string]Check
		path     string
		wantCode int
		wantBody string
	}{
		{"liveness ignores checks", map[string]Check{"db": func(context.Context) error { return dbDown }}, "/healthz", 200, `"ok"`},
		{"ready when every check passes", map[string]Check{"db": func(context.Context) error { return nil }}, "/readyz", 200, `"db":"ok"`},
		{"not ready names the failure", map[string]Check{"db": func(context.Context) error { return dbDown }, "mllp": func(context.Context) error { return nil }}, "/readyz", 503, "database unreachable"},
		{"metrics from the registry", nil, "/metrics", 200, "aorta_test_total 1"},
		{"unknown path", nil, "/nope", 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := httptest.NewRecorder()
			Router(reg, tt.checks).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tt.path, nil))
			if rec.Code != tt.wantCode || !strings.Contains(rec.Body.String(), tt.wantBody) {
				t.Errorf("GET %s = %d %q, want %d containing %q", tt.path, rec.Code, rec.Body.String(), tt.wantCode, tt.wantBody)
			}
		})
	}
}
