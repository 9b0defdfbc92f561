package router

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/aortahealth/aorta/internal/pgtest"
	"github.com/aortahealth/aorta/pkg/route"
	"github.com/aortahealth/aorta/pkg/store"
)

func TestDecideFeeds(t *testing.T) {
	now := time.Date(2026, 11, 26, 2, 0, 0, 0, time.UTC)
	msg := uuid.MustParse("01a21a30-8091-70d9-85a5-0a767613ae7b")
	oncall := &route.Destination{Name: "oncall", Kind: route.KindLog}
	db := &route.Destination{Name: "db", Kind: route.KindNotify, Channel: "aorta_feeds"}
	feeds := map[string]*route.Feed{"lab": {Name: "lab", SendingApplication: "LIMS", Silence: 15 * time.Minute, Notify: []*route.Destination{oncall, db}}}
	base := store.FeedState{FeedConfig: store.FeedConfig{Name: "lab", SendingApplication: "LIMS", Silence: 15 * time.Minute},
		WatchedSince: now.Add(-time.Hour)}
	with := func(f func(*store.FeedState)) store.FeedState {
		s := base
		f(&s)
		return s
	}
	tests := []struct {
		name       string
		state      store.FeedState
		want       string // "" no change, else the event type, or "idle-silent" for idle without an event
		occurredAt time.Time
	}{
		{"active, message within the window", with(func(s *store.FeedState) {
			s.LastMessageAt, s.LastMessageID, s.LastSender = now.Add(-14*time.Minute), msg, "LIMS^PATHLAB"
		}), "", time.Time{}},
		{"exactly the window is not idle", with(func(s *store.FeedState) {
			s.LastMessageAt, s.LastMessageID, s.LastSender = now.Add(-15*time.Minute), msg, "LIMS^PATHLAB"
		}), "", time.Time{}},
		{"goes idle", with(func(s *store.FeedState) {
			s.LastMessageAt, s.LastMessageID, s.LastSender = now.Add(-16*time.Minute), msg, "LIMS^PATHLAB"
		}), FeedIdle, now.Add(-time.Minute)},
		{"already idle", with(func(s *store.FeedState) {
			s.LastMessageAt, s.LastMessageID, s.Idle, s.IdleSince = now.Add(-time.Hour), msg, true, now.Add(-45*time.Minute)
		}), "", time.Time{}},
		{"resumes", with(func(s *store.FeedState) {
			s.LastMessageAt, s.LastMessageID, s.LastSender, s.Idle, s.IdleSince = now.Add(-time.Second), msg, "LIMS^PATHLAB", true, now.Add(-45*time.Minute)
		}), FeedResumed, now.Add(-time.Second)},
		{"never sent, watched for less than the window", with(func(s *store.FeedState) { s.WatchedSince = now.Add(-time.Minute) }), "", time.Time{}},
		{"never sent, watched for longer: idle without an event", base, "idle-silent", time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			changes := decideFeeds(now, []store.FeedState{tt.state}, feeds)
			switch {
			case tt.want == "":
				if len(changes) != 0 {
					t.Fatalf("changes %+v, want none", changes)
				}
				return
			case len(changes) != 1:
				t.Fatalf("changes %+v, want one", changes)
			}
			c := changes[0]
			if tt.want == "idle-silent" {
				if !c.Idle || c.Event != nil || len(c.Deliveries) != 0 || !c.IdleSince.Equal(tt.state.WatchedSince.Add(15*time.Minute)) {
					t.Errorf("change %+v, want idle since watched + 15m, without event", c)
				}
				return
			}
			e := c.Event
			if e == nil || e.Type != tt.want || e.MessageID != msg || !e.OccurredAt.Equal(tt.occurredAt) || e.Route != "feed/lab" ||
				e.PatientKey != "" || c.Idle != (tt.want == FeedIdle) {
				t.Fatalf("change %+v event %+v, want %s on the message at %s", c, e, tt.want, tt.occurredAt)
			}
			var p map[string]any
			if err := json.Unmarshal(e.Payload, &p); err != nil || p["feed"] != "lab" || p["sender"] != "LIMS^*" || p["silence_seconds"] != 900.0 {
				t.Errorf("payload %s (%v)", e.Payload, err)
			}
			if len(c.Deliveries) != 2 || c.Deliveries[0].Destination != "oncall" || c.Deliveries[0].Channel != "" ||
				c.Deliveries[1].Channel != "aorta_feeds" || c.Deliveries[1].Note == "" {
				t.Errorf("deliveries %+v, want the log row and the NOTIFY", c.Deliveries)
			}
			again := decideFeeds(now, []store.FeedState{tt.state}, feeds)
			if again[0].Event.ID != e.ID {
				t.Errorf("event ID %s then %s: not deterministic", e.ID, again[0].Event.ID)
			}
		})
	}
}

// A feed with active hours counts its silence inside them only: quiet
// overnight is not idle, and the idle time and the silence reported are
// in active time.
func TestDecideFeedsActiveHours(t *testing.T) {
	london, err := time.LoadLocation("Europe/London")
	if err != nil {
		t.Fatal(err)
	}
	c, err := route.Parse("routes.yaml", []byte(`version: 1
timezone: Europe/London
routes: []
feeds:
  - name: opd
    sending_application: OPD
    silence: 30m
    active: {days: [mon, tue, wed, thu, fri], from: "07:00", to: "19:00"}
`), route.Registry{})
	if err != nil {
		t.Fatal(err)
	}
	feeds := map[string]*route.Feed{"opd": c.Feed("opd")}
	msg := uuid.MustParse("01a21a30-8091-70d9-85a5-0a767613ae7b")
	at := func(s string) time.Time {
		v, err := time.ParseInLocation("2006-01-02 15:04", s, london)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	state := func(last string, idleSince string) store.FeedState {
		s := store.FeedState{FeedConfig: store.FeedConfig{Name: "opd", SendingApplication: "OPD", Silence: 30 * time.Minute},
			WatchedSince: at("2026-11-01 00:00"), LastMessageAt: at(last), LastMessageID: msg, LastSender: "OPD^CLINIC"}
		if idleSince != "" {
			s.Idle, s.IdleSince = true, at(idleSince)
		}
		return s
	}
	tests := []struct {
		name      string
		now       string
		state     store.FeedState
		want      string // event type, "" for no change
		idleSince string
		silent    float64 // silent_seconds of feed.resumed
	}{
		{name: "last message at 18:50, quiet all night", now: "2026-11-26 06:59", state: state("2026-11-26 18:50", "")},
		{name: "idle 20 minutes into the morning", now: "2026-11-27 07:21", state: state("2026-11-26 18:50", ""),
			want: FeedIdle, idleSince: "2026-11-27 07:20"},
		{name: "quiet over the weekend", now: "2026-11-30 06:00", state: state("2026-11-27 18:45", "")}, // Friday to Monday
		{name: "idle on Monday morning", now: "2026-11-30 07:16", state: state("2026-11-27 18:45", ""),
			want: FeedIdle, idleSince: "2026-11-30 07:15"},
		{name: "a message at night is no reason to count the night", now: "2026-11-27 07:29", state: state("2026-11-26 23:00", "")},
		{name: "resumes: silence counted in active time", now: "2026-11-27 09:00",
			state: func() store.FeedState {
				s := state("2026-11-27 08:40", "2026-11-27 07:20")
				return s
			}(), want: FeedResumed, silent: (30*time.Minute + 80*time.Minute).Seconds()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			changes := decideFeeds(at(tt.now), []store.FeedState{tt.state}, feeds)
			if tt.want == "" {
				if len(changes) != 0 {
					t.Fatalf("changes %+v, want none", changes)
				}
				return
			}
			if len(changes) != 1 || changes[0].Event == nil || changes[0].Event.Type != tt.want {
				t.Fatalf("changes %+v, want %s", changes, tt.want)
			}
			ch := changes[0]
			var p map[string]any
			if err := json.Unmarshal(ch.Event.Payload, &p); err != nil {
				t.Fatal(err)
			}
			if a, ok := p["active"].(map[string]any); !ok || a["from"] != "07:00" || a["to"] != "19:00" || a["timezone"] != "Europe/London" {
				t.Errorf("payload's active hours %v", p["active"])
			}
			if tt.want == FeedIdle {
				if !ch.IdleSince.Equal(at(tt.idleSince)) || !ch.Event.OccurredAt.Equal(at(tt.idleSince)) {
					t.Errorf("idle since %s, event at %s; want %s", ch.IdleSince.In(london), ch.Event.OccurredAt.In(london), tt.idleSince)
				}
				return
			}
			if p["silent_seconds"] != tt.silent {
				t.Errorf("silent_seconds %v, want %v", p["silent_seconds"], tt.silent)
			}
		})
	}
}

// Five watchers checking at once, as five routers would, record one
// feed.idle event and one delivery, and agree on the state.
func TestOpsWatchersRecordOnce(t *testing.T) {
	st, url := pgtest.NewStore(t)
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	msg := uuid.Must(uuid.NewV7())
	at := time.Now().Add(-time.Minute)
	if _, err := pool.Exec(ctx, `INSERT INTO messages (id, received_at, listener, remote_addr, raw, raw_sha256, sending_application, sending_facility, status)
		VALUES ($1, $2, 'l', '127.0.0.1:1', '\x00', '\x00', 'LIMS', 'PATHLAB', 'accepted')`, msg, at); err != nil {
		t.Fatal(err)
	}
	routes, err := route.Parse("routes.yaml", []byte(`version: 1
routes:
  - {name: all, match: all}
destinations:
  oncall: {log: true}
feeds:
  - {name: lab, sending_application: LIMS, sending_facility: PATHLAB, silence: 10s, notify: oncall}
`), route.Registry{})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 5 {
		w := NewOpsWatcher(st, func() *route.Config { return routes }, OpsConfig{})
		wg.Go(func() {
			for range 3 {
				if err := w.Check(ctx); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	var events, deliveries int
	var eventMsg uuid.UUID
	if err := pool.QueryRow(ctx, `SELECT count(*), max(message_id::text)::uuid FROM events WHERE type = 'feed.idle'`).Scan(&events, &eventMsg); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM deliveries WHERE destination = 'oncall' AND alert_id IS NULL`).Scan(&deliveries); err != nil {
		t.Fatal(err)
	}
	if events != 1 || deliveries != 1 || eventMsg != msg {
		t.Errorf("%d feed.idle events (on %s), %d deliveries; want 1 on %s, 1", events, eventMsg, deliveries, msg)
	}
	o, err := st.OpsSummary(ctx, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Feeds) != 1 || !o.Feeds[0].Idle || o.Feeds[0].LastMessageAt == nil || !o.Feeds[0].LastMessageAt.Equal(at.Truncate(time.Microsecond)) ||
		o.Feeds[0].IdleSince == nil || !o.Feeds[0].IdleSince.Equal(at.Truncate(time.Microsecond).Add(10*time.Second)) {
		t.Errorf("summary feeds %+v, want lab idle since its message + 10 s", o.Feeds)
	}
}

// A feed that never sent anything goes idle without an event (there is no
// message to name), so its log line must say what to check.
func TestNeverSeenFeedSaysWhatToCheck(t *testing.T) {
	st, _ := pgtest.NewStore(t)
	ctx := context.Background()
	routes, err := route.Parse("routes.yaml", []byte(`version: 1
routes:
  - {name: all, match: all}
feeds:
  - {name: lab, sending_application: LIMSS, silence: 10s}
`), route.Registry{})
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	now := time.Now()
	w := NewOpsWatcher(st, func() *route.Config { return routes }, OpsConfig{
		Logger: slog.New(slog.NewJSONHandler(&logs, nil)), Now: func() time.Time { return now }})
	if err := w.Check(ctx); err != nil { // starts watching
		t.Fatal(err)
	}
	now = now.Add(11 * time.Second)
	if err := w.Check(ctx); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), `"msg":"feed idle: nothing from its sender has ever been stored; check its sending_application`) ||
		!strings.Contains(logs.String(), `"sender":"LIMSS^*"`) {
		t.Errorf("log:\n%s\nwant the never-seen warning naming the sender", logs.String())
	}
}
