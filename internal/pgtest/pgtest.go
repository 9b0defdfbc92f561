// Package pgtest gives each test its own migrated PostgreSQL database so
// tests run in parallel without seeing each other's rows.
//
// The server comes from pgenv (DATABASE_URL, else 127.0.0.1:5432, else a
// throwaway cluster). When none can be had, tests fail with the reason:
// they never skip, because a green run that tested nothing is a lie.
//
// Packages using it call Main from TestMain so that a throwaway cluster is
// stopped when the package's tests end.
package pgtest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/aortahealth/aorta/internal/pgenv"
	"github.com/aortahealth/aorta/migrations"
	"github.com/aortahealth/aorta/pkg/store"
)

var (
	once      sync.Once
	server    *pgenv.Server
	serverErr error
	template  string
)

// setupTimeout bounds finding a server, starting a throwaway cluster and
// migrating the template database.
const setupTimeout = 2 * time.Minute

// Main runs the package's tests, stops a throwaway cluster if one was
// started, and exits with the tests' status.
func Main(m *testing.M) { os.Exit(Run(m)) }

// Run is Main without the exit, for a TestMain with its own clean-up.
func Run(m *testing.M) int {
	code := m.Run()
	if server != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if err := server.Stop(ctx); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: stop throwaway cluster: %v\n", err)
		}
		cancel()
	}
	return code
}

// ServerURL returns the URL of the server's maintenance database.
func ServerURL(t testing.TB) string {
	t.Helper()
	setup()
	if serverErr != nil {
		t.Fatalf("pgtest: PostgreSQL is required for this test: %v", serverErr)
	}
	return server.URL
}

// NewDatabase creates a fresh database with every migration applied and
// returns its URL; the database is dropped when the test ends.
func NewDatabase(t testing.TB) string {
	t.Helper()
	srv := ServerURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	name := "aorta_test_" + randomSuffix()
	conn, err := pgx.Connect(ctx, srv)
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	defer conn.Close(ctx)
	// CREATE DATABASE fails when another session is connected to the
	// template at that instant; that only happens while another test
	// process finishes building it, so a short retry suffices.
	for attempt := 0; ; attempt++ {
		_, err = conn.Exec(ctx, fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s", ident(name), ident(template)))
		if err == nil || attempt == 20 || !strings.Contains(err.Error(), "being accessed by other users") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("pgtest: create database from template: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		c, err := pgx.Connect(ctx, srv)
		if err != nil {
			t.Errorf("pgtest: drop %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", ident(name))); err != nil {
			t.Errorf("pgtest: drop %s: %v", name, err)
		}
	})
	u, err := pgenv.WithDatabase(srv, name)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return u
}

// NewStore opens a Store on a fresh database, closed when the test ends.
func NewStore(t testing.TB) (*store.Store, string) {
	t.Helper()
	u := NewDatabase(t)
	s, err := store.Open(context.Background(), u, store.Options{ApplicationName: "aorta-test", MaxConns: 4})
	if err != nil {
		t.Fatalf("pgtest: open store: %v", err)
	}
	t.Cleanup(s.Close)
	return s, u
}

func setup() {
	once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
		defer cancel()
		server, serverErr = pgenv.Ensure(ctx, slog.Default())
		if serverErr != nil {
			return
		}
		template, serverErr = ensureTemplate(ctx, server.URL)
	})
}

// ensureTemplate builds, once per set of migrations and server, a database
// that every test database is copied from: copying is much faster than
// migrating each one. It is built under another name and renamed when
// complete, so an interrupted build is never used.
func ensureTemplate(ctx context.Context, srv string) (string, error) {
	sum, err := migrationsHash()
	if err != nil {
		return "", err
	}
	name := "aorta_template_" + sum[:12]
	conn, err := pgx.Connect(ctx, srv)
	if err != nil {
		return "", fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(ctx)
	// Serialise template builds across parallel test processes.
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock(7262731)"); err != nil {
		return "", fmt.Errorf("template lock: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock(7262731)")
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return "", fmt.Errorf("look up template: %w", err)
	}
	if exists {
		return name, nil
	}
	building := name + "_building"
	if _, err := conn.Exec(ctx, fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", ident(building))); err != nil {
		return "", fmt.Errorf("drop stale template: %w", err)
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+ident(building)); err != nil {
		return "", fmt.Errorf("create template: %w", err)
	}
	u, err := pgenv.WithDatabase(srv, building)
	if err != nil {
		return "", err
	}
	st, err := store.Open(ctx, u, store.Options{ApplicationName: "aorta-pgtest-template"})
	if err != nil {
		return "", err
	}
	_, err = st.Migrate(ctx, nil)
	st.Close()
	if err != nil {
		return "", fmt.Errorf("migrate template: %w", err)
	}
	if _, err := conn.Exec(ctx, fmt.Sprintf("ALTER DATABASE %s RENAME TO %s", ident(building), ident(name))); err != nil {
		return "", fmt.Errorf("rename template: %w", err)
	}
	return name, nil
}

func migrationsHash() (string, error) {
	h := sha256.New()
	err := fs.WalkDir(migrations.FS, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(migrations.FS, path)
		if err != nil {
			return err
		}
		h.Write([]byte(path))
		h.Write(b)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("hash migrations: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func randomSuffix() string {
	b := make([]byte, 6)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func ident(s string) string { return pgx.Identifier{s}.Sanitize() }
