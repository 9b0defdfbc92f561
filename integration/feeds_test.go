package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/aortahealth/aorta/internal/pgtest"
)

// feedsRoutes watches the laboratory (LIMS^PATHLAB) with a 5 s window,
// notifying the log and a NOTIFY channel, and a sender that never sends.
const feedsRoutes = `version: 1
routes:
  - name: all
    match: all
destinations:
  log:
    log: true
  db:
    notify: aorta_feeds
feeds:
  - name: lab
    sending_application: LIMS
    sending_facility: PATHLAB
    silence: 5s
    notify: [log, db]
  - name: never
    sending_application: NOSUCH
    silence: 5s
`

// feedWait bounds the wait for a transition: the 5 s window, a check
// every 1.25 s, and slack for a loaded machine.
const feedWait = 30 * time.Second

// TestFeedIdleAndResumed runs two routers watching a laboratory feed: the
// feed goes idle 5 s after its last message and resumes with the next;
// each change writes exactly one event (naming the message, no patient
// data), one delivery per destination and one NOTIFY, however many
// routers watch. The ops summary and the metrics show the feed, and a
// feed that never sent anything is shown idle without an event.
func TestFeedIdleAndResumed(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t)
	db := openDB(t, dbURL)
	routes := filepath.Join(t.TempDir(), "routes.yaml")
	if err := os.WriteFile(routes, []byte(feedsRoutes), 0o644); err != nil {
		t.Fatal(err)
	}
	l := startListener(t, dbURL)
	r1 := startRouter(t, dbURL, routes)
	r2 := startRouter(t, dbURL, routes)
	token := apiToken(t, dbURL, "feeds-viewer", "viewer")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	listen, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer listen.Close(context.Background())
	if _, err := listen.Exec(ctx, "LISTEN aorta_feeds"); err != nil {
		t.Fatal(err)
	}

	feedEvents := func() []eventRec { return events(t, db, "e.type LIKE 'feed.%'") }
	waitEvents := func(n int) []eventRec {
		t.Helper()
		var evs []eventRec
		ok, why := poll(feedWait, func() (bool, string) {
			evs = feedEvents()
			return len(evs) >= n, fmt.Sprintf("%d feed events, want %d", len(evs), n)
		})
		if !ok {
			t.Fatal(why)
		}
		return evs
	}
	summaryFeeds := func() map[string]map[string]any {
		t.Helper()
		code, body := apiCall(t, r1.APIAddr, http.MethodGet, "/api/v1/ops/summary", token, "")
		if code != http.StatusOK {
			t.Fatalf("ops summary: %d %v", code, body)
		}
		out := map[string]map[string]any{}
		list, _ := body["feeds"].([]any)
		for _, f := range list {
			m, _ := f.(map[string]any)
			name, _ := m["name"].(string)
			out[name] = m
		}
		return out
	}

	first := lactateMsg("FEED-1", "FEEDPAT1", "F1", "20260312100000+0000", "1.5", "F")
	sendAA(t, l.MLLPAddr, first)
	firstID := messageID(t, db, "FEED-1")
	var firstAt time.Time
	queryRow(t, db, `SELECT received_at FROM messages WHERE id = $1`, []any{firstID}, &firstAt)

	evs := waitEvents(1)
	idle := evs[0]
	var payload map[string]any
	if err := json.Unmarshal(idle.Payload, &payload); err != nil {
		t.Fatal(err)
	}
	if idle.Type != "feed.idle" || idle.MessageID != firstID || idle.Route != "feed/lab" || idle.Source != "LIMS^PATHLAB" ||
		idle.PatientKey != "" || payload["feed"] != "lab" || payload["sender"] != "LIMS^PATHLAB" || payload["silence"] != "5s" ||
		!idle.OccurredAt.Equal(firstAt.Add(5*time.Second)) {
		t.Errorf("idle event %+v payload %s; want feed.idle on FEED-1 at its arrival + 5 s", idle, idle.Payload)
	}
	if strings.Contains(string(idle.Payload), "FEEDPAT1") {
		t.Errorf("idle event payload quotes the patient: %s", idle.Payload)
	}
	f := summaryFeeds()
	if lab := f["lab"]; lab["idle"] != true || lab["idle_since"] == nil || lab["sender"] != "LIMS^PATHLAB" || lab["silence_seconds"] != 5.0 {
		t.Errorf("summary feed lab %v, want idle since a time, sender LIMS^PATHLAB, 5 s", lab)
	}
	if never := f["never"]; never["idle"] != true || never["last_message_at"] != nil {
		t.Errorf("summary feed never %v, want idle with no last message", never)
	}
	// Each router's gauges follow its own next check.
	for _, r := range []*routerProc{r1, r2} {
		ok, why := poll(feedWait, func() (bool, string) {
			m := metricsText(t, r.HTTPAddr)
			return strings.Contains(m, `aorta_feed_idle{feed="lab"} 1`) && strings.Contains(m, `aorta_feed_last_message_age_seconds{feed="lab"}`) &&
					strings.Contains(m, `aorta_feed_idle{feed="never"} 1`),
				"metrics lack the idle feeds:\n" + grepLines(m, "aorta_feed")
		})
		if !ok {
			t.Error(why)
		}
	}

	sendAA(t, l.MLLPAddr, lactateMsg("FEED-2", "FEEDPAT1", "F2", "20260312100500+0000", "1.6", "F"))
	evs = waitEvents(2)
	resumed := evs[1]
	if resumed.Type != "feed.resumed" || resumed.ControlID != "FEED-2" || resumed.Route != "feed/lab" {
		t.Errorf("second feed event %+v, want feed.resumed on FEED-2", resumed)
	}
	ok, why := poll(feedWait, func() (bool, string) {
		lab := summaryFeeds()["lab"]
		return lab["idle"] == false && lab["idle_since"] == nil, fmt.Sprintf("summary feed lab %v, want active", lab)
	})
	if !ok {
		t.Error(why)
	}

	// Each change once. The feed goes idle again 5 s after FEED-2, so let
	// both routers check a few more times, then stop them and look at the
	// whole history: transitions alternate, one event each.
	time.Sleep(8 * time.Second)
	r1.stop(t)
	r2.stop(t)
	evs = feedEvents()
	for i, e := range evs {
		want := "feed.idle"
		if i%2 == 1 {
			want = "feed.resumed"
		}
		if e.Type != want {
			t.Errorf("feed event %d is %s, want %s: two routers recorded one change twice? %+v", i, e.Type, want, evs)
		}
	}
	if len(evs) < 3 {
		t.Errorf("%d feed events, want idle, resumed and idle again: %+v", len(evs), evs)
	}
	// One delivery per event to the log destination, with no alert; the
	// first two were sent while the routers ran.
	var n, delivered, noAlert int
	queryRow(t, db, `SELECT count(*), count(*) FILTER (WHERE status = 'delivered'), count(*) FILTER (WHERE alert_id IS NULL)
		FROM deliveries WHERE destination = 'log'`, nil, &n, &delivered, &noAlert)
	if n != len(evs) || delivered < 2 || noAlert != n {
		t.Errorf("%d log deliveries, %d delivered, %d without alert; want %d, at least 2, all", n, delivered, noAlert, len(evs))
	}
	// One NOTIFY per event, in order.
	var notes []string
	for {
		wctx, wcancel := context.WithTimeout(ctx, 2*time.Second)
		note, err := listen.WaitForNotification(wctx)
		wcancel()
		if err != nil {
			break
		}
		notes = append(notes, note.Payload)
	}
	if len(notes) != len(evs) {
		t.Errorf("%d notifications %q, want one per event (%d)", len(notes), notes, len(evs))
	}
	for i, note := range notes {
		if i < len(evs) && !strings.Contains(note, `"type":"`+evs[i].Type+`"`) {
			t.Errorf("notification %d %q, want %s", i, note, evs[i].Type)
		}
	}
	// The log destination's line names the feed, not the patient.
	var lines int
	for _, r := range []*routerProc{r1, r2} {
		for _, rec := range r.log.records("feed") {
			if rec["msg"] == "feed" && rec["feed"] == "lab" && rec["sender"] == "LIMS^PATHLAB" {
				lines++
			}
		}
		checkNoPHI(t, "router", r.log, "FEEDPAT1")
	}
	// A line written just before its router stopped may not have been
	// recorded as delivered yet (it is then written again: at least once).
	if lines < delivered || lines > n {
		t.Errorf("%d feed log lines from the log destination, want one per delivered row (%d to %d)", lines, delivered, n)
	}
}

// metricsText reads the admin /metrics page as text.
func metricsText(t *testing.T, addr string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	return string(b)
}

// grepLines returns the lines of s containing sub.
func grepLines(s, sub string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if strings.Contains(line, sub) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}
