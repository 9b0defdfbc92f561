// Command devrun is what `make run` executes: it finds PostgreSQL the way
// the README promises (DATABASE_URL, else 127.0.0.1:5432, else a throwaway
// cluster), makes sure the aorta database exists, then runs the engine —
// the MLLP listener and the router, from the binaries in the directory
// given as its first argument — with DATABASE_URL set. Ctrl-C stops both
// gracefully, then a throwaway cluster.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/aortahealth/aorta/internal/pgenv"
)

// devDatabase is created on a local or throwaway server; an explicit
// DATABASE_URL is used exactly as given.
const devDatabase = "aorta"

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: devrun BINDIR [listener flags]")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2:]); err != nil {
		fmt.Fprintln(os.Stderr, "make run:", err)
		os.Exit(1)
	}
}

func run(bin string, listenerArgs []string) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	srv, err := pgenv.Ensure(ctx, log)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := srv.Stop(sctx); err != nil {
			log.Error("stop throwaway cluster", "err", err)
		}
	}()
	dbURL := srv.URL
	if srv.Source != "DATABASE_URL" {
		if err := pgenv.EnsureDatabase(ctx, srv.URL, devDatabase); err != nil {
			return err
		}
		if dbURL, err = pgenv.WithDatabase(srv.URL, devDatabase); err != nil {
			return err
		}
	}
	env := append(os.Environ(), "DATABASE_URL="+dbURL)

	// The listener migrates the database; the router starts once it is up.
	listener := exec.Command(filepath.Join(bin, "mllp-listener"), listenerArgs...)
	router := exec.Command(filepath.Join(bin, "router"))
	for _, c := range []*exec.Cmd{listener, router} {
		c.Env, c.Stdout, c.Stderr = env, os.Stdout, os.Stderr
	}
	if err := listener.Start(); err != nil {
		return fmt.Errorf("start listener: %w", err)
	}
	exited := make(chan string, 2)
	go func() { listener.Wait(); exited <- "listener" }()
	if err := router.Start(); err != nil {
		listener.Process.Signal(syscall.SIGTERM)
		<-exited
		return fmt.Errorf("start router: %w", err)
	}
	go func() { router.Wait(); exited <- "router" }()

	fmt.Fprintf(os.Stderr, "\nAorta is running (PostgreSQL from %s).\n"+
		"  Send HL7 v2 over MLLP to 127.0.0.1:2575, e.g. mllp_send --loose --file msg.hl7 --port 2575 127.0.0.1\n"+
		"  Stored messages: table messages; clinical events: table events (routes from routes.yaml)\n"+
		"  Metrics: http://127.0.0.1:9575/metrics (listener), http://127.0.0.1:9576/metrics (router)\n"+
		"  Ctrl-C stops both.\n\n", srv.Source)

	var first string
	select {
	case <-ctx.Done():
	case first = <-exited:
	}
	// Stop whatever still runs, gracefully, and wait for it.
	for _, c := range []*exec.Cmd{listener, router} {
		c.Process.Signal(syscall.SIGTERM) // an error only means it has exited
	}
	remaining := 2
	if first != "" {
		remaining = 1
	}
	for range remaining {
		<-exited
	}
	if first != "" && ctx.Err() == nil {
		return errors.New(first + " stopped unexpectedly; see its log above")
	}
	return nil
}
