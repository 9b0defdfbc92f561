// Package admin serves the operational HTTP endpoints every Aorta process
// exposes on its admin address: liveness, readiness and Prometheus metrics.
package admin

import (
	"context"
	"encoding/json"
	"net/http"
	"sort"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Check reports whether one dependency is ready; nil means ready.
type Check func(ctx context.Context) error

// checkTimeout bounds each readiness check, so a hung database makes
// /readyz answer "not ready" instead of hanging the probe.
const checkTimeout = 2 * time.Second

// Router returns the admin endpoints:
//
//	GET /healthz  200 while the process runs (liveness)
//	GET /readyz   200 when every check passes, else 503 with the failures
//	GET /metrics  Prometheus exposition of reg
func Router(reg *prometheus.Registry, checks map[string]Check) chi.Router {
	r := chi.NewRouter()
	r.Use(middleware.Recoverer)
	r.Get("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	r.Get("/readyz", func(w http.ResponseWriter, req *http.Request) {
		names := make([]string, 0, len(checks))
		for n := range checks {
			names = append(names, n)
		}
		sort.Strings(names)
		status, code := map[string]string{}, http.StatusOK
		for _, n := range names {
			ctx, cancel := context.WithTimeout(req.Context(), checkTimeout)
			err := checks[n](ctx)
			cancel()
			if err != nil {
				status[n], code = err.Error(), http.StatusServiceUnavailable
			} else {
				status[n] = "ok"
			}
		}
		writeJSON(w, code, status)
	})
	r.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	return r
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}
