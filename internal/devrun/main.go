// Command devrun is what `make run` executes: it finds PostgreSQL the way
// the README promises (DATABASE_URL, else 127.0.0.1:5432, else a throwaway
// cluster), makes sure the aorta database exists, then runs the listener
// binary given as its first argument with DATABASE_URL set, and stops a
// throwaway cluster when the listener exits.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"github.com/aortahealth/aorta/internal/pgenv"
)

// devDatabase is created on a local or throwaway server; an explicit
// DATABASE_URL is used exactly as given.
const devDatabase = "aorta"

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: devrun path/to/mllp-listener [listener flags]")
		os.Exit(2)
	}
	code, err := run(os.Args[1], os.Args[2:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "make run:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

func run(bin string, args []string) (int, error) {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	srv, err := pgenv.Ensure(ctx, log)
	if err != nil {
		return 1, err
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
			return 1, err
		}
		if dbURL, err = pgenv.WithDatabase(srv.URL, devDatabase); err != nil {
			return 1, err
		}
	}
	fmt.Fprintf(os.Stderr, "\nAorta: PostgreSQL from %s; starting the MLLP listener.\n"+
		"Send HL7 v2 over MLLP to 127.0.0.1:2575 (unless --mllp-addr says otherwise);\n"+
		"stored messages are in the messages table; metrics on http://127.0.0.1:9575/metrics.\n\n", srv.Source)

	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "DATABASE_URL="+dbURL)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		return 1, fmt.Errorf("start listener: %w", err)
	}
	// Forward the interrupt so the listener drains gracefully; we wait for
	// it either way before stopping its database.
	go func() {
		<-ctx.Done()
		cmd.Process.Signal(syscall.SIGTERM)
	}()
	err = cmd.Wait()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		if ctx.Err() != nil {
			return 0, nil
		}
		return exit.ExitCode(), nil
	}
	return 0, err
}
