package store_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/aortahealth/aorta/internal/pgtest"
	"github.com/aortahealth/aorta/pkg/store"
)

// execOn runs one statement on the database at dbURL, failing the test
// on error.
func execOn(t *testing.T, dbURL, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// TestCheckWritableReadOnlyDatabase: a database whose sessions are
// read-only answers SELECT 1 (Ping) but not the write probes, which name
// the reason; once it takes writes again the same store says so, although
// its session was opened read-only (the probe does not keep it).
func TestCheckWritableReadOnlyDatabase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, dbURL := pgtest.NewStore(t)
	for name, check := range map[string]func(context.Context) error{"CheckWritable": st.CheckWritable, "CheckSave": st.CheckSave} {
		if err := check(ctx); err != nil {
			t.Fatalf("%s on a fresh database: %v, want nil", name, err)
		}
	}

	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	name := strings.TrimPrefix(u.Path, "/")
	db := pgx.Identifier{name}.Sanitize()
	// From the maintenance database: ALTER DATABASE reaches new sessions
	// only, so the store's are ended.
	execOn(t, pgtest.ServerURL(t), `ALTER DATABASE `+db+` SET default_transaction_read_only = on`)
	execOn(t, pgtest.ServerURL(t), `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1`, name)

	// The pool's first use of a session ended meets its end; the next
	// opens another. A bounded number of tries, one per pooled session.
	var pingErr error
	for range 5 {
		if pingErr = st.Ping(ctx); pingErr == nil {
			break
		}
	}
	if pingErr != nil {
		t.Fatalf("Ping on a read-only database: %v, want nil (the hole the write probes close)", pingErr)
	}
	for name, check := range map[string]func(context.Context) error{"CheckWritable": st.CheckWritable, "CheckSave": st.CheckSave} {
		err := check(ctx)
		if !errors.Is(err, store.ErrNotWritable) || !strings.Contains(err.Error(), "read-only") {
			t.Errorf("%s on a read-only database: %v, want ErrNotWritable naming read-only", name, err)
		}
	}

	execOn(t, pgtest.ServerURL(t), `ALTER DATABASE `+db+` RESET default_transaction_read_only`)
	for name, check := range map[string]func(context.Context) error{"CheckWritable": st.CheckWritable, "CheckSave": st.CheckSave} {
		if err := check(ctx); err != nil {
			t.Errorf("%s once the database takes writes again: %v, want nil (a read-only session kept by the pool?)", name, err)
		}
	}
}

// TestCheckSavePrivileges: the listener's probe sees a revoked INSERT on
// messages, which Save then fails on; the router's does not look at it.
func TestCheckSavePrivileges(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := pgtest.NewDatabase(t)
	var suffix [4]byte
	rand.Read(suffix[:])
	role := "aorta_writable_test_" + hex.EncodeToString(suffix[:])
	id := pgx.Identifier{role}.Sanitize()
	// Roles are cluster-wide: what it holds in the test's database, then
	// the role, go when the test ends (after the store below is closed).
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, dbURL)
		if err != nil {
			t.Errorf("drop role %s: %v", role, err)
			return
		}
		defer c.Close(ctx)
		for _, sql := range []string{"DROP OWNED BY " + id, "DROP ROLE " + id} {
			if _, err := c.Exec(ctx, sql); err != nil {
				t.Errorf("%s: %v", sql, err)
			}
		}
	})
	execOn(t, dbURL, "CREATE ROLE "+id+" LOGIN")
	execOn(t, dbURL, "GRANT SELECT, INSERT ON batches, messages, outbox TO "+id)

	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(role)
	st, err := store.Open(ctx, u.String(), store.Options{ApplicationName: "aorta-test", MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)

	if err := st.CheckSave(ctx); err != nil {
		t.Fatalf("CheckSave with INSERT granted: %v, want nil", err)
	}
	execOn(t, dbURL, "REVOKE INSERT ON messages FROM "+id)
	err = st.CheckSave(ctx)
	if !errors.Is(err, store.ErrNotWritable) || !strings.Contains(err.Error(), "INSERT privilege on messages") || !strings.Contains(err.Error(), role) {
		t.Errorf("CheckSave with INSERT on messages revoked: %v, want ErrNotWritable naming the role and messages", err)
	}
	if err := st.CheckWritable(ctx); err != nil {
		t.Errorf("CheckWritable with INSERT on messages revoked: %v, want nil (it does not look at the listener's tables)", err)
	}
	// What the probe reported is what Save meets.
	if _, err := st.Save(ctx, single(newMessage("P1", "MSH|P1")), window); err == nil || !strings.Contains(err.Error(), "42501") {
		t.Errorf("Save with INSERT on messages revoked: %v, want permission denied (SQLSTATE 42501)", err)
	}
}
