package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/aortahealth/aorta/migrations"
)

// idleInTransactionTimeout is how long the server lets one of our sessions
// sit idle inside a transaction before ending it; see Open.
const idleInTransactionTimeout = 5 * time.Second

// Options configures Open.
type Options struct {
	// ApplicationName is shown in pg_stat_activity; operators use it to find
	// (or terminate) one process's sessions.
	ApplicationName string
	// MaxConns bounds the pool; zero keeps pgxpool's default.
	MaxConns int32
	// Tracer, when set, sees every statement and batch the pool's
	// connections send (benchmarks count round trips with it).
	Tracer pgx.QueryTracer
}

// Store is Aorta's PostgreSQL storage. It is safe for concurrent use.
type Store struct {
	pool *pgxpool.Pool
}

// Open connects to PostgreSQL. It does not apply migrations; call Migrate.
func Open(ctx context.Context, url string, o Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse database URL: %w", err)
	}
	// An ACK promises durability, so a server or role configured with
	// synchronous_commit=off must not weaken it for our sessions.
	cfg.ConnConfig.RuntimeParams["synchronous_commit"] = "on"
	// A listener that vanishes mid-transaction (network partition, power
	// loss) leaves a backend idle in transaction holding the advisory
	// locks on its messages' de-duplication keys, and every re-send of
	// those messages would block behind it until TCP notices, by default
	// hours later. Our transactions are never idle longer than one round
	// trip, so the server may end such a session quickly; keep-alives
	// catch a dead client outside a transaction.
	cfg.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"] = strconv.Itoa(int(idleInTransactionTimeout.Milliseconds()))
	// Every statement Aorta sends is meant to read an index (tests EXPLAIN
	// them), but pgx prepares statements and PostgreSQL keeps a generic
	// plan made after five executions until the table is next analysed.
	// Made while a table was new and nearly empty (a new installation, a
	// router's first minute on a new patient table), such a plan is a
	// sequential scan, and it stays one as the table grows: the router
	// read its whole scores and patients tables for every message scored
	// until autovacuum's first ANALYZE, a third of the database's work in
	// make bench. Priced out, the planner takes the index it would take
	// with statistics; a query with no index to use still scans.
	cfg.ConnConfig.RuntimeParams["enable_seqscan"] = "off"
	cfg.ConnConfig.RuntimeParams["tcp_keepalives_idle"] = "30"
	cfg.ConnConfig.RuntimeParams["tcp_keepalives_interval"] = "10"
	cfg.ConnConfig.RuntimeParams["tcp_keepalives_count"] = "3"
	if o.ApplicationName != "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = o.ApplicationName
	}
	if o.MaxConns > 0 {
		cfg.MaxConns = o.MaxConns
	}
	if o.Tracer != nil {
		cfg.ConnConfig.Tracer = o.Tracer
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("create connection pool: %w", err)
	}
	return &Store{pool: pool}, nil
}

// OpenWait opens the store and waits up to wait for the database to answer,
// so that a process started alongside PostgreSQL (or restarted during a
// database restart) comes up by itself.
func OpenWait(ctx context.Context, url string, o Options, wait time.Duration, log *slog.Logger) (*Store, error) {
	st, err := Open(ctx, url, o)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(wait)
	for backoff := 250 * time.Millisecond; ; backoff = min(backoff*2, 5*time.Second) {
		err := st.Ping(ctx)
		if err == nil {
			return st, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			st.Close()
			return nil, fmt.Errorf("database not reachable after %s: %w", wait, err)
		}
		if log != nil {
			log.Warn("waiting for the database", "err", err, "retry_in", backoff)
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
		}
	}
}

// Close closes every connection.
func (s *Store) Close() { s.pool.Close() }

// Ping checks that the database answers a query.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.pool.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("ping database: %w", err)
	}
	return nil
}

// Migrate applies every pending migration embedded in the binary. Several
// processes may call it at once: a session advisory lock serialises them.
// It returns the versions it applied.
func (s *Store) Migrate(ctx context.Context, log *slog.Logger) ([]int64, error) {
	db := stdlib.OpenDBFromPool(s.pool)
	defer db.Close()
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return nil, fmt.Errorf("migration lock: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, migrations.FS, goose.WithSessionLocker(locker))
	if err != nil {
		return nil, fmt.Errorf("load migrations: %w", err)
	}
	results, err := p.Up(ctx)
	if err != nil {
		return nil, fmt.Errorf("apply migrations: %w", err)
	}
	applied := make([]int64, 0, len(results))
	for _, r := range results {
		applied = append(applied, r.Source.Version)
		if log != nil {
			log.Info("migration applied", "version", r.Source.Version, "file", r.Source.Path, "duration", r.Duration)
		}
	}
	return applied, nil
}

// IsTransient reports whether err looks like the database being unavailable
// (connection lost, server shutting down, too many connections, lock or
// serialization conflicts) rather than something wrong with the data. The
// caller retries transient failures as they are; other failures are worth
// isolating to the offending row.
func IsTransient(err error) bool {
	if err == nil {
		return false
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		// No SQLSTATE: a refused or dropped connection, a timeout, a closed
		// pool. That is the database being away, not the data being wrong.
		return true
	}
	switch {
	case strings.HasPrefix(pgErr.Code, "08"), // connection exception
		strings.HasPrefix(pgErr.Code, "53"),          // insufficient resources
		strings.HasPrefix(pgErr.Code, "57"),          // operator intervention: shutdown, terminated backend
		strings.HasPrefix(pgErr.Code, "58"),          // system error (I/O)
		pgErr.Code == "40001", pgErr.Code == "40P01", // serialization failure, deadlock
		pgErr.Code == "25006": // read-only transaction: a failover in progress
		return true
	}
	return false
}
