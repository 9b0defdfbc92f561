// Command mllp-listener receives HL7 v2 messages over MLLP, stores each one
// durably in PostgreSQL with an outbox row for the router, and only then
// acknowledges it.
//
// Usage:
//
//	mllp-listener [serve] [flags]   receive messages (the default)
//	mllp-listener migrate [flags]   apply database migrations and exit
//
// Every flag has an environment variable; run with -h for the list.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/aortahealth/aorta/internal/envflag"
	"github.com/aortahealth/aorta/pkg/admin"
	"github.com/aortahealth/aorta/pkg/ingest"
	"github.com/aortahealth/aorta/pkg/mllp"
	"github.com/aortahealth/aorta/pkg/store"
	"github.com/aortahealth/aorta/pkg/tlsfiles"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "mllp-listener:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	cmd := "serve"
	if len(args) > 0 && (args[0] == "serve" || args[0] == "migrate") {
		cmd, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("mllp-listener "+cmd, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: mllp-listener [serve|migrate] [flags]\n\n"+
			"serve (default) receives HL7 v2 over MLLP, stores each message in PostgreSQL\n"+
			"and acknowledges it only after the commit. migrate applies database\n"+
			"migrations and exits. Flags override environment variables.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	cfg, err := parseConfig(fs, args)
	if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	level, _ := envflag.ParseLevel(cfg.LogLevel)
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	// The TLS files are read before waiting for the database, so that a
	// wrong path fails at once.
	var certs *tlsfiles.Reloader
	if cmd == "serve" && cfg.TLSCert != "" {
		// They are looked at again, at most once a second, at handshakes:
		// a renewed certificate needs no restart and no signal.
		if certs, err = tlsfiles.NewReloader(tlsfiles.Files{
			CertFile: cfg.TLSCert, KeyFile: cfg.TLSKey, ClientCAFile: cfg.TLSClientCA, Logger: log, Component: "mllp",
		}); err != nil {
			return err
		}
		log.Info("MLLP over TLS", "tls_cert", cfg.TLSCert, "client_certificates_required", cfg.TLSClientCA != "",
			"not_after", certs.Stats().NotAfter.UTC())
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	st, err := store.OpenWait(ctx, cfg.DatabaseURL, store.Options{
		ApplicationName: "aorta-mllp-listener",
		MaxConns:        int32(cfg.DBMaxConns),
	}, cfg.DBWait, log)
	if err != nil {
		return err
	}
	defer st.Close()
	if cmd == "migrate" || cfg.AutoMigrate {
		applied, err := st.Migrate(ctx, log)
		if err != nil {
			return err
		}
		log.Info("database schema up to date", "applied", len(applied))
	}
	if cmd == "migrate" {
		return nil
	}
	return serve(ctx, cfg, st, certs, log)
}

// serve runs the listener until ctx ends. certs is nil for plain MLLP.
func serve(ctx context.Context, cfg config, st *store.Store, certs *tlsfiles.Reloader, log *slog.Logger) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	icfg := cfg.ingestConfig()
	icfg.Logger = log
	icfg.Metrics = ingest.NewMetrics(reg)
	in, err := ingest.New(st, icfg)
	if err != nil {
		return err
	}
	defer in.Close()

	srv := &mllp.Server{
		Handler:        in,
		MaxFrameSize:   cfg.MaxFrameSize,
		IdleTimeout:    cfg.IdleTimeout,
		FrameTimeout:   cfg.FrameTimeout,
		WriteTimeout:   cfg.WriteTimeout,
		KeepAlive:      cfg.KeepAlive,
		MaxConnections: cfg.MaxConnections,
		MaxDiscard:     cfg.MaxDiscard,

		HandshakeTimeout: cfg.TLSHandshakeTimeout,
		AllowedNets:      cfg.AllowedNets,
		MaxConnsPerIP:    cfg.MaxConnsPerIP,
		RateLimit:        cfg.RateLimit,
		RateBurst:        cfg.RateBurst,
		RateLimitMaxWait: cfg.RateLimitMaxWait,
		Logger:           log,
	}
	registerServerStats(reg, srv)
	if certs != nil {
		srv.TLSConfig = certs.Config()
		registerTLSStats(reg, certs)
	}

	ln, err := net.Listen("tcp", cfg.MLLPAddr)
	if err != nil {
		return fmt.Errorf("listen for MLLP: %w", err)
	}
	var bound atomic.Bool
	bound.Store(true)

	var httpSrv *http.Server
	httpErr := make(chan error, 1)
	if cfg.HTTPAddr != "" {
		hln, err := net.Listen("tcp", cfg.HTTPAddr)
		if err != nil {
			ln.Close()
			return fmt.Errorf("listen for admin HTTP: %w", err)
		}
		httpSrv = &http.Server{
			// Ready means able to store: SELECT 1 also succeeds on a
			// standby or a read-only database. "database" sees, in one
			// round trip, what can be seen without writing; "commits" what
			// only our writes reveal (a full disk, say).
			Handler: admin.Router(reg, map[string]admin.Check{
				"database": st.CheckSave,
				"commits":  in.CheckCommits,
				"mllp": func(context.Context) error {
					if !bound.Load() {
						return errors.New("MLLP listener not accepting")
					}
					return nil
				},
			}),
			ReadHeaderTimeout: 5 * time.Second,
		}
		go func() { httpErr <- httpSrv.Serve(hln) }()
		log.Info("admin HTTP listening", "addr", hln.Addr().String())
	}

	proto := "MLLP"
	if srv.TLSConfig != nil {
		proto = "MLLP over TLS"
	}
	log.Info("mllp-listener ready: send HL7 v2 over "+proto+" to "+ln.Addr().String(), append([]any{"mllp_addr", ln.Addr().String()}, cfg.logAttrs()...)...)
	mllpErr := make(chan error, 1)
	go func() { mllpErr <- srv.Serve(ln) }()

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down: finishing in-flight messages", "timeout", cfg.ShutdownTimeout)
	case err := <-mllpErr:
		runErr = fmt.Errorf("MLLP server stopped: %w", err)
	case err := <-httpErr:
		runErr = fmt.Errorf("admin HTTP server stopped: %w", err)
	}
	bound.Store(false)

	// Bookkeeping after the signal must not be cut short by it.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("MLLP shutdown deadline passed; unfinished frames were not acknowledged", "err", err)
	}
	in.Close()
	if httpSrv != nil {
		if err := httpSrv.Shutdown(sctx); err != nil {
			log.Warn("admin HTTP shutdown", "err", err)
		}
	}
	s := srv.Stats()
	log.Info("stopped", "connections", s.Accepted, "frames", s.FramesRead, "responses", s.ResponsesWritten)
	return runErr
}
