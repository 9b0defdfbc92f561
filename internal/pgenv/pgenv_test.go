package pgenv

import (
	"context"
	"net"
	"os"
	"strings"
	"testing"
	"time"
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
