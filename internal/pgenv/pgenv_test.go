package pgenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// unusedURL points at a port nobody listens on.
func unusedURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return "postgres://postgres@" + ln.Addr().String() + "/postgres?sslmode=disable&connect_timeout=2"
}

func TestEnsureRefusesABrokenDatabaseURL(t *testing.T) {
	t.Parallel()
	_, err := ensure(context.Background(), nil, unusedURL(t), LocalURL)
	if err == nil || !strings.Contains(err.Error(), "DATABASE_URL") {
		t.Fatalf("err = %v, want an error naming DATABASE_URL rather than a silent fallback", err)
	}
}

// TestEnsureStartsAThrowawayCluster covers the last fallback of make run and
// of the tests: no DATABASE_URL and nothing on the local port.
func TestEnsureStartsAThrowawayCluster(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, err := ensure(ctx, nil, "", unusedURL(t))
	if err != nil {
		t.Fatalf("ensure: %v", err)
	}
	if srv.Source != "throwaway" {
		t.Fatalf("source = %q, want throwaway", srv.Source)
	}
	if err := Ping(ctx, srv.URL); err != nil {
		t.Fatalf("throwaway cluster does not answer: %v", err)
	}
	if err := EnsureDatabase(ctx, srv.URL, "aorta"); err != nil {
		t.Fatalf("EnsureDatabase: %v", err)
	}
	if err := EnsureDatabase(ctx, srv.URL, "aorta"); err != nil {
		t.Fatalf("EnsureDatabase twice: %v", err)
	}
	dir := srv.cluster.dir
	if err := srv.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("cluster directory %s still exists after Stop", dir)
	}
}

// TestRecreateDatabase covers make demo's reset of aorta_demo: whatever the
// database held is gone, and a session left open on it does not stop it.
func TestRecreateDatabase(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, err := Ensure(ctx, nil)
	if err != nil {
		t.Fatalf("Ensure: %v", err)
	}
	t.Cleanup(func() { srv.Stop(context.Background()) })
	name := fmt.Sprintf("aorta_pgenv_recreate_%d", time.Now().UnixNano())
	dbURL, err := WithDatabase(srv.URL, name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if conn, err := pgx.Connect(context.Background(), srv.URL); err == nil {
			conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
			conn.Close(context.Background())
		}
	})
	tables := func(conn *pgx.Conn) int {
		t.Helper()
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE tablename = 'leftover'").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if err := RecreateDatabase(ctx, srv.URL, name); err != nil { // absent: created
		t.Fatalf("RecreateDatabase of a new database: %v", err)
	}
	open, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close(context.Background())
	if _, err := open.Exec(ctx, "CREATE TABLE leftover (x int)"); err != nil {
		t.Fatal(err)
	}
	if err := RecreateDatabase(ctx, srv.URL, name); err != nil { // with a session open on it
		t.Fatalf("RecreateDatabase with a session open: %v", err)
	}
	fresh, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close(context.Background())
	if n := tables(fresh); n != 0 {
		t.Errorf("the recreated database still has the old table")
	}
	if err := RecreateDatabase(ctx, dbURL, name); err == nil || !strings.Contains(err.Error(), "names that database itself") {
		t.Errorf("RecreateDatabase through a URL naming the database: %v, want a refusal", err)
	}
}
