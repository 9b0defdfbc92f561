// Package pgenv finds or starts a PostgreSQL server for development and
// tests, in the order the README promises: DATABASE_URL when set, else the
// local server on 127.0.0.1:5432, else a throwaway cluster built with the
// machine's own PostgreSQL binaries (initdb/pg_ctl).
//
// It is development tooling: production deployments always pass
// DATABASE_URL explicitly.
package pgenv

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
)

// LocalURL is the server the README tells developers to run; on Debian the
// postgres role exists and trust authentication is usual for 127.0.0.1.
const LocalURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// probeTimeout bounds how long a missing or unreachable server can delay
// start-up before we fall back to the next option.
const probeTimeout = 3 * time.Second

// Server is a reachable PostgreSQL server. Its URL names the maintenance
// database (usually "postgres"); callers derive their own databases from it.
type Server struct {
	URL     string
	Source  string // "DATABASE_URL", "local" or "throwaway"
	cluster *Cluster
}

// Ensure returns a reachable server, starting a throwaway cluster only when
// neither DATABASE_URL nor the local server is usable.
func Ensure(ctx context.Context, log *slog.Logger) (*Server, error) {
	return ensure(ctx, log, os.Getenv("DATABASE_URL"), LocalURL)
}

func ensure(ctx context.Context, log *slog.Logger, databaseURL, localURL string) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if u := databaseURL; u != "" {
		if err := Ping(ctx, u); err != nil {
			// An explicit URL that does not work is an error, not a cue to
			// silently use something else.
			return nil, fmt.Errorf("DATABASE_URL is set but unusable: %w", err)
		}
		return &Server{URL: u, Source: "DATABASE_URL"}, nil
	}
	if err := Ping(ctx, localURL); err == nil {
		return &Server{URL: localURL, Source: "local"}, nil
	} else {
		log.Info("no usable PostgreSQL on 127.0.0.1:5432, starting a throwaway cluster", "err", err)
	}
	c, err := StartCluster(ctx, ClusterOptions{Logger: log})
	if err != nil {
		return nil, fmt.Errorf("no DATABASE_URL, no server on 127.0.0.1:5432, and a throwaway cluster failed: %w", err)
	}
	return &Server{URL: c.URL("postgres"), Source: "throwaway", cluster: c}, nil
}

// Stop stops the throwaway cluster if Ensure started one; otherwise it does
// nothing, because we never stop a server we did not start.
func (s *Server) Stop(ctx context.Context) error {
	if s == nil || s.cluster == nil {
		return nil
	}
	return s.cluster.Destroy(ctx)
}

// Ping connects once and runs a trivial query.
func Ping(ctx context.Context, connURL string) error {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, connURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var one int
	return conn.QueryRow(ctx, "SELECT 1").Scan(&one)
}

// WithDatabase returns connURL pointing at database name instead.
func WithDatabase(connURL, name string) (string, error) {
	u, err := url.Parse(connURL)
	if err != nil {
		return "", fmt.Errorf("parse database URL: %w", err)
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return "", errors.New("database URL must use the postgres:// scheme")
	}
	u.Path = "/" + name
	return u.String(), nil
}

// EnsureDatabase creates database name on the server if it does not exist.
func EnsureDatabase(ctx context.Context, serverURL, name string) error {
	conn, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return fmt.Errorf("look up database %q: %w", name, err)
	}
	if exists {
		return nil
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return fmt.Errorf("create database %q: %w", name, err)
	}
	return nil
}

// RecreateDatabase drops database name on the server, ending the sessions
// connected to it, and creates it again, empty. It is for a database a
// tool owns outright (make demo's aorta_demo), never for one that may hold
// data someone wants. serverURL must name another database: PostgreSQL
// cannot drop the database a session is connected to.
func RecreateDatabase(ctx context.Context, serverURL, name string) error {
	conn, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var current string
	if err := conn.QueryRow(ctx, "SELECT current_database()").Scan(&current); err != nil {
		return fmt.Errorf("recreate database %q: %w", name, err)
	}
	if current == name {
		return fmt.Errorf("recreate database %q: the server URL names that database itself; name another (e.g. postgres)", name)
	}
	id := pgx.Identifier{name}.Sanitize()
	// FORCE (PostgreSQL 13) ends the sessions still connected, e.g. a psql
	// left open on the previous run's data.
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+id+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %q: %w", name, err)
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+id); err != nil {
		return fmt.Errorf("create database %q: %w", name, err)
	}
	return nil
}

// freePort asks the kernel for an unused TCP port on 127.0.0.1.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
