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
	return serve(ctx, cfg, st, log)
}

func serve(ctx context.Context, cfg config, st *store.Store, log *slog.Logger) error {
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
		Logger:         log,
	}
	registerServerStats(reg, srv)

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
			Handler: admin.Router(reg, map[string]admin.Check{
				"database": st.Ping,
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

	log.Info("mllp-listener ready: send HL7 v2 over MLLP to "+ln.Addr().String(), append([]any{"mllp_addr", ln.Addr().String()}, cfg.logAttrs()...)...)
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
	counter("aorta_mllp_connections_refused_total", "MLLP connections closed on accept because max-connections were open.", func(s mllp.Stats) uint64 { return s.Refused })
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
}
