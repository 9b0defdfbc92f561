package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/aortahealth/aorta/internal/clientkey"
	"github.com/aortahealth/aorta/internal/envflag"
	"github.com/aortahealth/aorta/pkg/admin"
	"github.com/aortahealth/aorta/pkg/api"
	"github.com/aortahealth/aorta/pkg/console"
	"github.com/aortahealth/aorta/pkg/delivery"
	"github.com/aortahealth/aorta/pkg/retention"
	"github.com/aortahealth/aorta/pkg/route"
	"github.com/aortahealth/aorta/pkg/router"
	"github.com/aortahealth/aorta/pkg/store"
	"github.com/aortahealth/aorta/pkg/tlsfiles"
)

const (
	defaultHTTPAddr = "127.0.0.1:9576"
	defaultAPIAddr  = "127.0.0.1:8080"
	defaultDBWait   = 60 * time.Second
	// apiReadTimeout bounds reading one API request, body included.
	apiReadTimeout = 30 * time.Second
	// defaultShutdownTimeout bounds finishing the batches in flight.
	defaultShutdownTimeout = 30 * time.Second
)

// dbFlags are the flags every database-using subcommand shares.
type dbFlags struct {
	DatabaseURL string
	LogLevel    string
	AutoMigrate bool
	DBWait      time.Duration
	DBMaxConns  int
}

func (d *dbFlags) declare(f *envflag.Set) {
	f.String(&d.DatabaseURL, "database-url", "DATABASE_URL", "", "PostgreSQL connection URL (required)")
	f.String(&d.LogLevel, "log-level", "LOG_LEVEL", "info", "log level: debug, info, warn or error (never patient data at info)")
	f.Bool(&d.AutoMigrate, "migrate", "AUTO_MIGRATE", true, "apply pending database migrations at start-up")
	f.Duration(&d.DBWait, "db-wait", "DB_WAIT", defaultDBWait, "how long start-up waits for the database")
	f.Int(&d.DBMaxConns, "db-max-conns", "DB_MAX_CONNS", 8, "maximum database connections")
}

func (d *dbFlags) open(ctx context.Context) (*store.Store, *slog.Logger, error) {
	if d.DatabaseURL == "" {
		return nil, nil, errors.New("no database: set DATABASE_URL or --database-url")
	}
	level, err := envflag.ParseLevel(d.LogLevel)
	if err != nil {
		return nil, nil, err
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	st, err := store.OpenWait(ctx, d.DatabaseURL, store.Options{ApplicationName: "aorta-router", MaxConns: int32(d.DBMaxConns)}, d.DBWait, log)
	if err != nil {
		return nil, nil, err
	}
	if d.AutoMigrate {
		if _, err := st.Migrate(ctx, log); err != nil {
			st.Close()
			return nil, nil, err
		}
	}
	return st, log, nil
}

func runMigrate(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("router migrate", flag.ContinueOnError)
	f := envflag.New(fs)
	var d dbFlags
	d.declare(f)
	if err := f.Parse(args); err != nil {
		return err
	}
	d.AutoMigrate = true
	st, _, err := d.open(ctx)
	if err != nil {
		return err
	}
	st.Close()
	return nil
}

func runServe(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("router serve", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: router [serve] [flags]\n\nRuns the router: applies the outbox through routes.yaml and writes events.\nSIGHUP (or POST /api/v1/routes/reload on the API address) reloads the routes\nfile; a bad file is refused and the running routes stay. The HTTP API needs a\ntoken: see \"router token -h\" and docs/api.md. Flags override environment variables.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	f := envflag.New(fs)
	var d dbFlags
	d.declare(f)
	var routesFile, httpAddr, apiAddr, id string
	var rc router.Config
	var shutdown time.Duration
	f.String(&routesFile, "routes", "ROUTES_FILE", "routes.yaml", "routes file")
	f.String(&httpAddr, "http-addr", "HTTP_ADDR", defaultHTTPAddr, "admin HTTP address (no authentication): /healthz, /readyz, /metrics; empty disables it")
	f.String(&apiAddr, "api-addr", "API_ADDR", defaultAPIAddr, "HTTP API address (/api/v1, bearer tokens, docs/api.md); empty disables it")
	f.String(&id, "id", "ROUTER_ID", "", "name of this router instance (default: hostname and a random suffix)")
	f.Int(&rc.Workers, "workers", "ROUTER_WORKERS", router.DefaultWorkers, "lanes applied at once")
	f.Int(&rc.BatchSize, "batch-size", "ROUTER_BATCH_SIZE", router.DefaultBatchSize, "outbox rows of one lane per transaction")
	f.Duration(&rc.LeaseTTL, "lease-ttl", "ROUTER_LEASE_TTL", router.DefaultLeaseTTL, "lane lease duration; a dead router's lanes move after this")
	f.Duration(&rc.PollInterval, "poll-interval", "ROUTER_POLL_INTERVAL", router.DefaultPollInterval, "fallback poll of the outbox when notifications are missed")
	f.Int(&rc.MaxAttempts, "max-attempts", "ROUTER_MAX_ATTEMPTS", router.DefaultMaxAttempts, "processing attempts before a failing message becomes a dead letter")
	f.Duration(&rc.RetryBackoff, "retry-backoff", "ROUTER_RETRY_BACKOFF", router.DefaultRetryBackoff, "first retry delay, doubling per attempt")
	f.Duration(&rc.ApplyTimeout, "apply-timeout", "ROUTER_APPLY_TIMEOUT", router.DefaultApplyTimeout, "bound on one batch's transaction; a stuck one is rolled back and retried")
	f.Duration(&shutdown, "shutdown-timeout", "SHUTDOWN_TIMEOUT", defaultShutdownTimeout, "on SIGTERM/SIGINT, how long batches in flight may take to commit")
	var rf retentionFlags
	var retentionInterval time.Duration
	rf.declare(f)
	f.Duration(&retentionInterval, "retention-interval", "RETENTION_INTERVAL", retention.DefaultInterval, "how often this router runs a retention pass (one router at a time in a cluster)")
	apiTLS := tlsfiles.Files{Component: "api"}
	f.String(&apiTLS.CertFile, "api-tls-cert", "API_TLS_CERT", "", "PEM certificate (with intermediates) to serve the API address over HTTPS only; re-read when the file changes (empty: plain HTTP)")
	f.String(&apiTLS.KeyFile, "api-tls-key", "API_TLS_KEY", "", "PEM private key of --api-tls-cert")
	f.String(&apiTLS.ClientCAFile, "api-tls-client-ca", "API_TLS_CLIENT_CA", "", "PEM CA bundle: every API client must then present a certificate it signed (mutual TLS, besides the token)")
	var trustedProxies string
	f.String(&trustedProxies, "api-trusted-proxies", "API_TRUSTED_PROXIES", "", "comma-separated addresses or CIDR networks of reverse proxies in front of the API: from them only, X-Forwarded-For names the client whose failed logins are throttled (empty: the TCP peer is the client)")
	if err := f.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}

	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// The routes are checked before touching the database: a bad file
	// stops start-up with its file, line, column and reason.
	routes, err := loadRoutes(routesFile)
	if err != nil {
		return err
	}
	// So are the API's TLS files: a wrong path fails at once.
	var apiCerts *tlsfiles.Reloader
	switch {
	case apiTLS.CertFile == "" && apiTLS.KeyFile == "" && apiTLS.ClientCAFile == "":
	case apiTLS.CertFile == "" || apiTLS.KeyFile == "":
		return errors.New("API TLS needs both --api-tls-cert and --api-tls-key (API_TLS_CERT, API_TLS_KEY)")
	case apiAddr == "":
		return errors.New("--api-tls-cert is set but the API is disabled (--api-addr is empty)")
	default:
		if _, err = tlsfiles.NewReloader(apiTLS); err != nil {
			return err
		}
	}
	proxies, err := clientkey.ParsePrefixes(trustedProxies)
	if err != nil {
		return fmt.Errorf("--api-trusted-proxies (API_TRUSTED_PROXIES): %w", err)
	}
	policy, err := rf.policy()
	if err != nil {
		return err
	}
	if policy.Enabled() && retentionInterval <= 0 {
		return fmt.Errorf("--retention-interval=%s: want a positive duration", retentionInterval)
	}
	st, log, err := d.open(ctx)
	if err != nil {
		return err
	}
	defer st.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	rc.ID, rc.DatabaseURL, rc.Logger = id, d.DatabaseURL, log
	rc.Metrics = router.NewMetrics(reg, st)
	// Deliveries are sent by their own worker, so a slow or dead webhook
	// never holds up scoring: the router only queues them in its
	// transaction and wakes the worker once that has committed.
	deliveries := delivery.New(st, destinationsOf(routes), delivery.Options{Logger: log, Metrics: delivery.NewMetrics(reg, st)})
	rc.OnDeliveries = deliveries.Wake
	rt := router.New(st, routes, rc)
	// The ops watcher keeps the ops summary's counts and watches the
	// routes.yaml feeds for silence; it reads the routes at every check, so
	// a reload applies at the next one.
	ops := router.NewOpsWatcher(st, rt.Routes, router.OpsConfig{Logger: log, Metrics: router.NewFeedMetrics(reg), OnDeliveries: deliveries.Wake})
	if apiTLS.CertFile != "" {
		// Loaded again now that there is a log for its reloads: it is
		// re-read at handshakes (at most once a second), as the MLLP
		// listener's is, so a renewed certificate needs no restart.
		apiTLS.Logger = log
		if apiCerts, err = tlsfiles.NewReloader(apiTLS); err != nil {
			return err
		}
		registerAPITLS(reg, apiCerts)
	}

	var reloadMu sync.Mutex
	reload := func(reason string) error {
		reloadMu.Lock()
		defer reloadMu.Unlock()
		next, err := loadRoutes(routesFile)
		if err != nil {
			rc.Metrics.ReloadRefused()
			log.Error("routes reload refused; the running routes stay active", "file", routesFile, "trigger", reason, "err", err)
			return err
		}
		rt.Reload(next)
		deliveries.SetDestinations(destinationsOf(next))
		log.Info("routes reloaded", "file", routesFile, "trigger", reason, "routes", len(next.Routes))
		return nil
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				reload("SIGHUP")
			}
		}
	}()

	var httpSrv *http.Server
	httpErr := make(chan error, 2) // admin and API servers
	if httpAddr != "" {
		ln, err := net.Listen("tcp", httpAddr)
		if err != nil {
			return fmt.Errorf("listen for admin HTTP: %w", err)
		}
		mux := admin.Router(reg, map[string]admin.Check{
			// Not only reachable: the router's work is writes, which a
			// standby or a read-only database refuses (SELECT 1 does not).
			"database": st.CheckWritable,
			"notifications": func(context.Context) error {
				if !rt.Listening() {
					return errors.New("not listening for outbox notifications (polling)")
				}
				return nil
			},
		})
		httpSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() { httpErr <- httpSrv.Serve(ln) }()
		log.Info("admin HTTP listening", "addr", ln.Addr().String())
	}
	var apiSrv *http.Server
	if apiAddr != "" {
		ln, err := net.Listen("tcp", apiAddr)
		if err != nil {
			return fmt.Errorf("listen for the HTTP API: %w", err)
		}
		// Event streams outlive the timeouts below (each clears its read
		// deadline and bounds its own writes) and end when Shutdown begins.
		streamsDone := make(chan struct{})
		// One limiter for refused bearer tokens and failed console logins,
		// so that a client cannot double its attempts by using both.
		authLimiter := api.NewAuthLimiter(api.AuthLimiterConfig{Logger: log, TrustedProxies: proxies})
		registerAuthLimiter(reg, authLimiter)
		apiHandler := api.Handler(api.Config{Store: st, Router: rt, Reload: reload, Registry: registry(), Logger: log,
			AuthLimiter: authLimiter, Done: streamsDone})
		// The web console shares the API's address, tokens and roles
		// (docs/console.md): /console/ is the console, / leads to it, and
		// everything else is the API's (which answers 401 or 404).
		consoleHandler, err := console.Handler(console.Config{Store: st, Router: rt, Logger: log,
			AuthLimiter: authLimiter, Done: streamsDone})
		if err != nil {
			return err
		}
		h := http.NewServeMux()
		h.Handle("/console/", consoleHandler)
		h.Handle("/console", consoleHandler)
		h.Handle("GET /{$}", http.RedirectHandler("/console/", http.StatusFound))
		h.Handle("/", apiHandler)
		apiSrv = &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: apiReadTimeout,
			WriteTimeout: api.DefaultRequestTimeout + 10*time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 16 << 10}
		var closeStreams sync.Once
		apiSrv.RegisterOnShutdown(func() { closeStreams.Do(func() { close(streamsDone) }) })
		// net/http's own errors (a failed TLS handshake, say) go to the
		// structured log too.
		apiSrv.ErrorLog = slog.NewLogLogger(log.Handler(), slog.LevelWarn)
		if apiCerts != nil {
			// Every connection must complete a TLS handshake (1.2 or later)
			// first; a plain HTTP request gets net/http's 400 "client sent
			// an HTTP request to an HTTPS server" and nothing else.
			ln = tls.NewListener(ln, apiCerts.Config())
			log.Info("API over TLS", "tls_cert", apiTLS.CertFile, "client_certificates_required", apiTLS.ClientCAFile != "",
				"not_after", apiCerts.Stats().NotAfter.UTC())
		}
		go func() { httpErr <- apiSrv.Serve(ln) }()
		log.Info("API listening", "addr", ln.Addr().String(), "tls", apiCerts != nil)
	}

	log.Info("router ready", "id", rt.ID(), "routes_file", routesFile, "routes", len(routes.Routes),
		"database_url", envflag.RedactURL(d.DatabaseURL), "workers", rc.Workers, "batch_size", rc.BatchSize, "lease_ttl", rc.LeaseTTL)
	runErr := make(chan error, 1)
	runCtx, cancelRun := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRun()
	go func() { runErr <- rt.Run(runCtx) }()
	deliveryErr := make(chan error, 1)
	go func() { deliveryErr <- deliveries.Run(runCtx) }()
	opsDone := make(chan struct{})
	go func() { defer close(opsDone); ops.Run(runCtx) }()
	// Retention passes stop with the router: a batch in flight rolls
	// back, and the next pass (on any router) carries on.
	retentionDone := make(chan struct{})
	if policy.Enabled() {
		rr, err := retention.New(st, policy, retention.Options{Batch: rf.Batch, Logger: log, Metrics: retention.NewMetrics(reg)})
		if err != nil {
			return err
		}
		log.Info("retention enabled", "policy", policy.String(), "interval", retentionInterval, "batch", rf.Batch)
		go func() { defer close(retentionDone); rr.Loop(runCtx, retentionInterval) }()
	} else {
		close(retentionDone)
	}

	var result error
	select {
	case <-ctx.Done():
		log.Info("shutting down: finishing batches in flight", "timeout", shutdown)
	case err := <-httpErr:
		result = fmt.Errorf("HTTP server stopped: %w", err)
	case err := <-runErr:
		return err
	case err := <-deliveryErr:
		result = fmt.Errorf("delivery worker stopped: %w", err)
	}
	cancelRun()
	deadline := time.After(shutdown)
	select {
	case err := <-runErr:
		if err != nil && result == nil {
			result = err
		}
	case <-deadline:
		log.Warn("shutdown timeout passed with batches in flight; they roll back and are retried")
	}
	// A delivery cut short is sent again by the next router (at least
	// once); waiting for it only spares the receiver a duplicate.
	select {
	case err := <-deliveryErr:
		if err != nil && !errors.Is(err, context.Canceled) && result == nil {
			result = fmt.Errorf("delivery worker: %w", err)
		}
	case <-deadline:
		log.Warn("shutdown timeout passed with deliveries in flight; they are sent again after their lease")
	}
	select {
	case <-opsDone:
	case <-deadline:
		log.Warn("shutdown timeout passed during an ops check; it rolls back")
	}
	select {
	case <-retentionDone:
	case <-deadline:
		log.Warn("shutdown timeout passed during a retention pass; its batch in flight rolls back")
	}
	for _, srv := range []*http.Server{apiSrv, httpSrv} {
		if srv != nil {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			srv.Shutdown(sctx)
			cancel()
		}
	}
	log.Info("stopped")
	return result
}

func loadRoutes(file string) (*route.Config, error) {
	return route.Load(file, registry())
}

// destinationsOf maps the routes file's webhook and log destinations to
// the delivery worker's. NOTIFY destinations are not there: the router's
// own transaction sends them.
func destinationsOf(c *route.Config) map[string]delivery.Destination {
	out := map[string]delivery.Destination{}
	for name, d := range c.Destinations {
		dst := delivery.Destination{Name: name, MaxAttempts: d.MaxAttempts, Backoff: d.Backoff, MaxBackoff: d.MaxBackoff}
		switch d.Kind {
		case route.KindWebhook:
			dst.Kind, dst.URL, dst.Secret, dst.Timeout = delivery.KindWebhook, d.Webhook.URL, []byte(d.Webhook.Secret), d.Webhook.Timeout
		case route.KindLog:
			dst.Kind = delivery.KindLog
		default:
			continue
		}
		out[name] = dst
	}
	return out
}

// registerAPITLS exposes the API certificate reloader's counters and the
// expiry of the certificate being served.
func registerAPITLS(reg prometheus.Registerer, certs *tlsfiles.Reloader) {
	reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "aorta_api_tls_reloads_total", Help: "Changes of the API's TLS certificate, key or client CA files that were loaded.",
		}, func() float64 { return float64(certs.Stats().Reloads) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "aorta_api_tls_reload_errors_total", Help: "Changes of the API's TLS files that could not be loaded; the previous certificate stayed in use.",
		}, func() float64 { return float64(certs.Stats().Failures) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "aorta_api_tls_certificate_expiry_timestamp_seconds", Help: "When the API's TLS certificate being served expires, in Unix seconds.",
		}, func() float64 { return float64(certs.Stats().NotAfter.Unix()) }),
	)
}

// registerAuthLimiter exposes the counts of the limiter on failed
// authentication shared by the API and the console.
func registerAuthLimiter(reg prometheus.Registerer, l *api.AuthLimiter) {
	reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "aorta_api_auth_throttled_total",
			Help: "API requests and console logins answered 429 because their client address (IPv6: its /64) had too many failed authentications lately.",
		}, func() float64 { return float64(l.Stats().Throttled) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "aorta_api_auth_limiter_evictions_total",
			Help: "Client addresses forgotten by the failed-authentication limiter before their limit refilled, because it remembered as many as it may (a scan from many addresses).",
		}, func() float64 { return float64(l.Stats().Evicted) }),
	)
}
