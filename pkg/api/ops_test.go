package api_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/aortahealth/aorta/pkg/api"
	"github.com/aortahealth/aorta/pkg/store"
)

func TestOpsSummary(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	// The seeded messages arrived from 07:00 to 07:11 (a re-send at 07:12
	// was a duplicate, not stored again); the summary is taken at 07:14.
	now := time.Date(2026, 11, 26, 7, 14, 0, 0, time.UTC)
	srv := httptest.NewServer(api.Handler(api.Config{Store: f.st, Now: func() time.Time { return now }}))
	t.Cleanup(srv.Close)

	// One nursing message three hours earlier (in the day, not the hour);
	// the order two days earlier (in neither).
	f.query(`UPDATE messages SET received_at = $2 WHERE id = $1 RETURNING 1`, []any{f.msgs[msgVitalsOK], now.Add(-3 * time.Hour)}, new(int))
	f.query(`UPDATE messages SET received_at = $2 WHERE id = $1 RETURNING 1`, []any{f.msgs[msgOrder], now.Add(-48 * time.Hour)}, new(int))
	// Two messages waiting in the outbox, the oldest queued ten minutes
	// ago; a second dead letter, already resolved.
	f.query(`INSERT INTO outbox (message_id, partition_key, created_at) VALUES ($1, 1, $3), ($2, 2, $4) RETURNING 1`,
		[]any{f.msgs[msgAdmit], f.msgs[msgNoPatient], now.Add(-10 * time.Minute), now.Add(-2 * time.Minute)}, new(int))
	f.query(`INSERT INTO dead_letters (message_id, route, error, attempts, resolved_at, resolution) VALUES ($1, 'adt', 'x', 1, now(), 'discarded') RETURNING 1`,
		[]any{f.msgs[msgAdmit]}, new(int))
	// Two watched feeds: the lab, found idle at 07:12 (as a router records
	// it), and the PAS from any facility.
	f.query(`INSERT INTO feed_status (name, sending_application, sending_facility, silence, state, watched_since, idle_since)
		VALUES ('lab', 'LAB', 'HOSP', '2 minutes', 'idle', $1, $2), ('pas', 'PAS', '', '1 hour', 'active', $1, NULL) RETURNING 1`,
		[]any{now.Add(-time.Hour), now.Add(-2 * time.Minute)}, new(int))

	get := func(token, path string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	requests := []struct {
		name  string
		token string
		path  string
		want  int
	}{
		{"no token", "", "/api/v1/ops/summary", http.StatusUnauthorized},
		{"viewer", f.tokens[api.RoleViewer], "/api/v1/ops/summary", http.StatusOK},
		{"clinician", f.tokens[api.RoleClinician], "/api/v1/ops/summary", http.StatusOK},
		{"unknown parameter", f.tokens[api.RoleViewer], "/api/v1/ops/summary?sender=PAS", http.StatusBadRequest},
	}
	for _, tt := range requests {
		t.Run(tt.name, func(t *testing.T) {
			if code, b := get(tt.token, tt.path); code != tt.want {
				t.Errorf("%d %s, want %d", code, b, tt.want)
			}
		})
	}

	// The same answers before the router's aggregator has counted
	// anything (the summary counts the messages itself) and after.
	for _, stage := range []string{"before aggregation", "after aggregation"} {
		t.Run(stage, func(t *testing.T) {
			if stage == "after aggregation" {
				if _, err := f.st.AggregateOps(t.Context(), now, 0, 1000); err != nil {
					t.Fatal(err)
				}
			}
			checkOpsSummary(t, f, now, get, stage == "after aggregation")
		})
	}
}

// checkOpsSummary checks the summary at now; aggregated says the router's
// aggregator has run, so that senders silent for longer than a day (the
// order system, two days ago) are known and listed too.
func checkOpsSummary(t *testing.T, f *fixture, now time.Time, get func(token, path string) (int, []byte), aggregated bool) {
	code, b := get(f.tokens[api.RoleViewer], "/api/v1/ops/summary")
	var got store.OpsSummary
	if err := json.Unmarshal(b, &got); code != http.StatusOK || err != nil {
		t.Fatalf("%d %s (%v)", code, b, err)
	}
	if !got.At.Equal(now) {
		t.Errorf("at %s, want %s", got.At, now)
	}
	if o := got.Outbox; o.Depth != 2 || o.OldestAt == nil || !o.OldestAt.Equal(now.Add(-10*time.Minute)) ||
		o.OldestAgeSeconds == nil || *o.OldestAgeSeconds != 600 {
		t.Errorf("outbox %+v, want depth 2, oldest 10 minutes (600 s) ago", o)
	}
	if got.DeadLetters.Open != 1 {
		t.Errorf("%d open dead letters, want 1", got.DeadLetters.Open)
	}

	at := func(h, m int) time.Time { return time.Date(2026, 11, 26, h, m, 0, 0, time.UTC) }
	wantSenders := []store.SenderStats{
		{Sender: "EOBS^WARD", SendingApplication: "EOBS", SendingFacility: "WARD", MessagesLastHour: 1, MessagesLastDay: 2, LastMessageAt: at(7, 1)},
		{Sender: "LAB^HOSP", SendingApplication: "LAB", SendingFacility: "HOSP", MessagesLastHour: 1, MessagesLastDay: 1, RatePerMinute: 0.2, LastMessageAt: at(7, 10), RejectedLastDay: 1},
		{Sender: "PAS^HOSP", SendingApplication: "PAS", SendingFacility: "HOSP", MessagesLastHour: 3, MessagesLastDay: 3, RatePerMinute: 0.2, LastMessageAt: at(7, 11)},
	}
	if aggregated {
		silent := store.SenderStats{Sender: "OE^HOSP", SendingApplication: "OE", SendingFacility: "HOSP", LastMessageAt: now.Add(-48 * time.Hour)}
		wantSenders = append(wantSenders[:2], silent, wantSenders[2])
	}
	if len(got.Senders) != len(wantSenders) {
		t.Fatalf("senders %+v, want %+v", got.Senders, wantSenders)
	}
	for i, w := range wantSenders {
		g := got.Senders[i]
		if g.LastMessageAt.Equal(w.LastMessageAt) {
			g.LastMessageAt = w.LastMessageAt
		}
		if g != w {
			t.Errorf("sender %d:\n got %+v\nwant %+v", i, g, w)
		}
	}

	lab, pas := at(7, 10), at(7, 11)
	age := func(s float64) *float64 { return &s }
	wantFeeds := []store.FeedStatus{
		{Name: "lab", Sender: "LAB^HOSP", SendingApplication: "LAB", SendingFacility: "HOSP", Silence: "2m0s", SilenceSeconds: 120,
			LastMessageAt: &lab, AgeSeconds: age(240), Idle: true},
		{Name: "pas", Sender: "PAS^*", SendingApplication: "PAS", Silence: "1h0m0s", SilenceSeconds: 3600,
			LastMessageAt: &pas, AgeSeconds: age(180)},
	}
	if len(got.Feeds) != len(wantFeeds) {
		t.Fatalf("feeds %+v, want %+v", got.Feeds, wantFeeds)
	}
	for i, w := range wantFeeds {
		g := got.Feeds[i]
		if g.Name != w.Name || g.Sender != w.Sender || g.SendingApplication != w.SendingApplication || g.SendingFacility != w.SendingFacility ||
			g.Silence != w.Silence || g.SilenceSeconds != w.SilenceSeconds || g.LastMessageAt == nil || !g.LastMessageAt.Equal(*w.LastMessageAt) ||
			g.AgeSeconds == nil || *g.AgeSeconds != *w.AgeSeconds || g.Idle != w.Idle || (g.IdleSince != nil) != w.Idle {
			t.Errorf("feed %d:\n got %+v\nwant %+v", i, g, w)
		}
	}

	// Routes: counted here from the routing rows, message by message.
	type routed struct {
		at     time.Time
		routes []string
	}
	conn, err := pgx.Connect(t.Context(), f.url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	rows, err := conn.Query(t.Context(), `SELECT m.received_at, r.routes FROM message_routing r JOIN messages m ON m.id = r.message_id WHERE r.status = 'routed'`)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]store.RouteStats{}
	for rows.Next() {
		var r routed
		if err := rows.Scan(&r.at, &r.routes); err != nil {
			t.Fatal(err)
		}
		for _, name := range r.routes {
			s := want[name]
			s.Route = name
			if r.at.After(now.Add(-24 * time.Hour)) {
				s.MessagesLastDay++
			}
			if r.at.After(now.Add(-time.Hour)) {
				s.MessagesLastHour++
			}
			want[name] = s
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(got.Routes) != len(want) || len(want) < 2 {
		t.Fatalf("routes %+v, want %+v", got.Routes, want)
	}
	hourDiffers := false
	for _, g := range got.Routes {
		if g != want[g.Route] {
			t.Errorf("route %+v, want %+v", g, want[g.Route])
		}
		hourDiffers = hourDiffers || g.MessagesLastHour != g.MessagesLastDay
	}
	if !hourDiffers {
		t.Errorf("routes %+v: every route has as many messages in the hour as in the day; the test means one not to", got.Routes)
	}
}
