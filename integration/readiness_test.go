package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/aortahealth/aorta/internal/pgtest"
)

// TestReadinessFollowsWrites: the listener's /readyz says whether it can
// store, not only whether the database answers SELECT 1, so that a load
// balancer sends senders to a listener that can. The database refuses
// writes while answering queries, then takes them again:
//
//   - read-only (default_transaction_read_only, as during a failover): the
//     probe sees it with no traffic at all ("database");
//   - disk full (SQLSTATE 53100 on every insert into messages): no probe
//     can see it without writing, so the first refused frame makes the
//     listener not ready ("commits").
//
// Meanwhile a message sent gets no positive ACK and is not stored, and
// /healthz stays 200. Once writes are allowed again (nothing is done to
// the listener) the message is ACKed and the listener is ready again.
// Like the other fault tests it does not run in parallel.
func TestReadinessFollowsWrites(t *testing.T) {
	for _, tt := range []struct {
		name   string
		refuse func(t *testing.T, db *pgxpool.Pool, dbName string)
		allow  func(t *testing.T, db *pgxpool.Pool, dbName string)
		// probeSees: the refusal makes /readyz fail before any message
		// is sent.
		probeSees bool
		// want: check name -> text in its failure once a frame was refused.
		want map[string]string
	}{
		{"read-only", readOnlyOn, readOnlyOff, true,
			map[string]string{"database": "database refuses writes: the session is read-only", "commits": "SQLSTATE 25006"}},
		{"disk full", diskFullOn, diskFullOff, false,
			map[string]string{"database": "ok", "commits": "SQLSTATE 53100"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dbURL := pgtest.NewDatabase(t)
			db := openDB(t, dbURL)
			dbName := databaseName(t, dbURL)
			l := startListener(t, dbURL, "--store-retry-budget", "1s")

			eventually(t, ioTimeout, "/readyz 200 with every check ok", func() (bool, string) {
				code, checks, body := readyz(t, l.HTTPAddr)
				return code == http.StatusOK && checks["database"] == "ok" && checks["commits"] == "ok" && checks["mllp"] == "ok", body
			})
			if code, _ := msaOf(send(t, l.MLLPAddr, testMessage(1, 0))); code != "AA" {
				t.Fatalf("first message answered %q, want AA", code)
			}

			tt.refuse(t, db, dbName)
			if tt.probeSees {
				eventually(t, 15*time.Second, "/readyz 503 naming the database, before any message", func() (bool, string) {
					code, checks, body := readyz(t, l.HTTPAddr)
					return code == http.StatusServiceUnavailable && strings.Contains(checks["database"], tt.want["database"]), body
				})
			} else if code, _, body := readyz(t, l.HTTPAddr); code != http.StatusOK {
				t.Fatalf("/readyz %d %s before any frame was refused, want 200 (the probe cannot see this refusal)", code, body)
			}

			// No positive ACK, and nothing stored.
			refused := testMessage(1, 1)
			ack, err := trySend(l.MLLPAddr, refused, ioTimeout)
			if code, _ := msaOf(ack); code == "AA" || code == "CA" {
				t.Fatalf("message sent while writes were refused answered %s", code)
			}
			t.Logf("message sent while writes were refused: answer %q, %v", ack, err)
			if n := count(t, db, `SELECT count(*) FROM messages WHERE control_id = $1`, controlID(1, 1)); n != 0 {
				t.Errorf("%d rows stored for a message refused", n)
			}

			code, checks, body := readyz(t, l.HTTPAddr)
			if code != http.StatusServiceUnavailable {
				t.Errorf("/readyz %d after a frame was refused, want 503: %s", code, body)
			}
			for name, want := range tt.want {
				if got := checks[name]; !(got == want || want != "ok" && strings.Contains(got, want)) {
					t.Errorf("/readyz %s = %q, want %q in it", name, got, want)
				}
			}
			t.Logf("/readyz while writes were refused: %d %s", code, body)
			if code, _, err := httpGet(l.HTTPAddr, "/healthz"); err != nil || code != http.StatusOK {
				t.Errorf("GET /healthz while writes were refused: %d %v, want 200 (an orchestrator would restart the listener)", code, err)
			}
			if v := scrape(t, l.HTTPAddr).sum("aorta_commit_failing"); v != 1 {
				t.Errorf("aorta_commit_failing = %v while writes were refused, want 1", v)
			}

			tt.allow(t, db, dbName)
			// The sender re-sends until ACKed, as senders do.
			eventually(t, 30*time.Second, "the refused message ACKed once writes are allowed", func() (bool, string) {
				ack, err := trySend(l.MLLPAddr, refused, ioTimeout)
				code, _ := msaOf(ack)
				return code == "AA", fmt.Sprintf("answer %q, %v", ack, err)
			})
			eventually(t, 15*time.Second, "/readyz 200 again", func() (bool, string) {
				code, checks, body := readyz(t, l.HTTPAddr)
				return code == http.StatusOK && checks["database"] == "ok" && checks["commits"] == "ok", body
			})
			if v := scrape(t, l.HTTPAddr).sum("aorta_commit_failing"); v != 0 {
				t.Errorf("aorta_commit_failing = %v after a commit succeeded, want 0", v)
			}
			if n := count(t, db, `SELECT count(*) FROM messages`); n != 2 {
				t.Errorf("%d messages stored, want 2 (the first, and the refused one once)", n)
			}
			if l.hasExited() {
				t.Errorf("listener exited (%v)", l.state)
			}
		})
	}
}

// readyz fetches /readyz and decodes its body: check name -> "ok" or the
// reason it fails.
func readyz(t *testing.T, addr string) (int, map[string]string, string) {
	t.Helper()
	code, body, err := httpGet(addr, "/readyz")
	if err != nil {
		t.Fatalf("GET /readyz: %v", err)
	}
	checks := map[string]string{}
	if err := json.Unmarshal([]byte(body), &checks); err != nil {
		t.Fatalf("GET /readyz: %d %q: %v", code, body, err)
	}
	return code, checks, strings.TrimSpace(body)
}
