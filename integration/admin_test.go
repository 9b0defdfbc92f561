package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aortahealth/aorta/internal/pgtest"
	"github.com/aortahealth/aorta/pkg/mllp"
)

// TestAdminEndpoints checks liveness, readiness (which follows the
// database: not ready while it is unreachable, ready again after) and
// that the metrics operators alert on exist and move.
func TestAdminEndpoints(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t)
	proxy := startProxy(t, hostPort(t, dbURL))
	l := startListener(t, withHost(t, dbURL, proxy.Addr()), "--store-retry-budget", "1s")

	if code, body, err := httpGet(l.HTTPAddr, "/healthz"); err != nil || code != http.StatusOK {
		t.Errorf("GET /healthz: %d %q %v, want 200", code, body, err)
	}
	code, body, err := httpGet(l.HTTPAddr, "/readyz")
	if err != nil || code != http.StatusOK || !strings.Contains(body, `"database":"ok"`) || !strings.Contains(body, `"mllp":"ok"`) {
		t.Errorf("GET /readyz: %d %q %v, want 200 with database and mllp ok", code, body, err)
	}

	before := scrape(t, l.HTTPAddr)
	for _, name := range []string{"aorta_mllp_open_connections", "aorta_commit_group_frames_count"} {
		if !before.has(name) {
			t.Errorf("/metrics has no %s", name)
		}
	}

	// Five messages on one connection, held open while we look.
	const n = 5
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	c, err := mllp.Dial(ctx, l.MLLPAddr)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		ack, err := c.Send(ctx, testMessage(1, i))
		if err != nil {
			t.Fatal(err)
		}
		if code, msa2 := msaOf(ack); code != "AA" || msa2 != controlID(1, i) {
			t.Fatalf("MSA %s/%s, want AA/%s", code, msa2, controlID(1, i))
		}
	}
	// Counters are read from the server, which counts a response after
	// writing it: the sender may see its ACK a moment before the count.
	want := []struct {
		series string
		delta  float64
	}{
		{"aorta_messages_received_total", n},
		{"aorta_messages_stored_total", n},
		{`aorta_ack_latency_seconds_count{code="AA"}`, n},
		{"aorta_commit_group_frames_sum", n}, // frames committed, however grouped
		{"aorta_mllp_open_connections", 1},
		{"aorta_mllp_frames_read_total", n},
		{"aorta_mllp_responses_written_total", n},
	}
	eventually(t, ioTimeout, "the metrics to count the messages", func() (bool, string) {
		after := scrape(t, l.HTTPAddr)
		var wrong []string
		for _, w := range want {
			if got := after.sum(w.series) - before.sum(w.series); got != w.delta {
				wrong = append(wrong, fmt.Sprintf("%s moved by %v, want %v", w.series, got, w.delta))
			}
		}
		if after.sum("aorta_commit_group_frames_count") < 1 {
			wrong = append(wrong, "aorta_commit_group_frames_count is 0")
		}
		return len(wrong) == 0, strings.Join(wrong, "; ")
	})
	c.Close()
	eventually(t, ioTimeout, "aorta_mllp_open_connections back to 0", func() (bool, string) {
		v := scrape(t, l.HTTPAddr).sum("aorta_mllp_open_connections")
		return v == 0, fmt.Sprintf("%v open", v)
	})

	// Readiness follows the database.
	proxy.Cut()
	eventually(t, 15*time.Second, "/readyz 503 with the database unreachable", func() (bool, string) {
		code, body, err := httpGet(l.HTTPAddr, "/readyz")
		return err == nil && code == http.StatusServiceUnavailable && !strings.Contains(body, `"database":"ok"`), body
	})
	if code, _, _ := httpGet(l.HTTPAddr, "/healthz"); code != http.StatusOK {
		t.Errorf("GET /healthz with the database unreachable: %d, want 200 (liveness does not depend on it)", code)
	}
	proxy.Restore()
	eventually(t, 15*time.Second, "/readyz 200 after the database came back", func() (bool, string) {
		code, body, err := httpGet(l.HTTPAddr, "/readyz")
		return err == nil && code == http.StatusOK, body
	})
}

// TestReadyLogLineNamesBoundAddress: operators and scripts that start the
// listener on port 0 read the bound address from the ready line. Its
// mllp_addr must be that address. (It used to repeat the key with the
// configured address after the bound one, and JSON decoders, which keep
// the last of repeated keys, read 127.0.0.1:0.)
func TestReadyLogLineNamesBoundAddress(t *testing.T) {
	t.Parallel()
	l := startListener(t, pgtest.NewDatabase(t))
	recs := l.log.records("mllp-listener ready")
	if len(recs) != 1 {
		t.Fatalf("%d ready lines, want 1", len(recs))
	}
	// encoding/json, like most log pipelines, keeps the last of repeated
	// keys.
	if got := recs[0]["mllp_addr"]; got != l.MLLPAddr {
		b, _ := json.Marshal(recs[0])
		t.Errorf("ready line mllp_addr decodes as %v, want the bound address %s (is the key repeated?)\n%s", got, l.MLLPAddr, b)
	}
}
