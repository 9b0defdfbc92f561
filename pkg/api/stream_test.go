package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/aortahealth/aorta/pkg/api"
)

// Stream timings for tests: fast polls and heartbeats, and server timeouts
// (as cmd/router sets them, scaled down) that a stream must outlive.
const (
	testPoll          = 50 * time.Millisecond
	testHeartbeat     = 200 * time.Millisecond
	testServerTimeout = 700 * time.Millisecond
	testWriteTimeout  = time.Second
	// testRequestTimeout is the API's per-request deadline, which a
	// stream outlives too.
	testRequestTimeout = time.Second
	// quiet is how long a stream must send no event for a test to
	// conclude none is coming: many polls.
	quiet = 600 * time.Millisecond
)

// streamServer serves the fixture's database with test stream timings
// (behind an http.Server with read and write timeouts when asked), and reports on
// ended each time the handler of an accepted stream returns.
type streamServer struct {
	*httptest.Server
	ended chan struct{}
	done  chan struct{} // api.Config.Done
}

func (f *fixture) streamServer(t *testing.T, serverTimeouts bool) *streamServer {
	t.Helper()
	s := &streamServer{ended: make(chan struct{}, 100), done: make(chan struct{})}
	h := api.Handler(api.Config{Store: f.st, RequestTimeout: testRequestTimeout, StreamPoll: testPoll,
		StreamHeartbeat: testHeartbeat, StreamWriteTimeout: testWriteTimeout, Done: s.done})
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		if w.Header().Get("Content-Type") == "text/event-stream" { // a stream, not a refusal
			s.ended <- struct{}{}
		}
	}))
	if serverTimeouts {
		s.Config.ReadTimeout, s.Config.WriteTimeout = testServerTimeout, testServerTimeout
	}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

// frame is one Server-Sent Event, or a comment.
type frame struct {
	id, event, data, comment string
}

// sse is an open stream; its frames arrive on frames until the body ends
// (then err holds why).
type sse struct {
	resp   *http.Response
	cancel context.CancelFunc
	frames chan frame
	mu     sync.Mutex
	err    error
}

// openStream requests a stream. A status other than 200 is returned with
// the body, and no stream.
func (s *streamServer) openStream(t *testing.T, token, query string, header map[string]string) (int, string, *sse) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/api/v1/events/stream"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := s.Client().Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		defer cancel()
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("error answer Content-Type %q, want application/json", ct)
		}
		return resp.StatusCode, string(b), nil
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type %q, want text/event-stream", ct)
	}
	c := &sse{resp: resp, cancel: cancel, frames: make(chan frame, 1000)}
	go c.read()
	t.Cleanup(c.close)
	return resp.StatusCode, "", c
}

func (c *sse) read() {
	defer close(c.frames)
	rd := bufio.NewReader(c.resp.Body)
	var fr frame
	for {
		line, err := rd.ReadString('\n')
		if err != nil {
			c.mu.Lock()
			c.err = err
			c.mu.Unlock()
			return
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			c.frames <- fr
			fr = frame{}
		case strings.HasPrefix(line, ":"):
			fr.comment = strings.TrimSpace(line[1:])
		default:
			k, v, _ := strings.Cut(line, ": ")
			switch k {
			case "id":
				fr.id = v
			case "event":
				fr.event = v
			case "data":
				fr.data = v
			}
		}
	}
}

func (c *sse) close() {
	c.cancel()
	c.resp.Body.Close()
}

// events reads n events (skipping comments), failing after a few seconds.
func (c *sse) events(t *testing.T, n int) []frame {
	t.Helper()
	var out []frame
	timeout := time.After(10 * time.Second)
	for len(out) < n {
		select {
		case fr, ok := <-c.frames:
			if !ok {
				t.Fatalf("stream ended after %d of %d events: %v", len(out), n, c.err)
			}
			if fr.comment == "" {
				out = append(out, fr)
			}
		case <-timeout:
			t.Fatalf("%d of %d events within 10 s", len(out), n)
		}
	}
	return out
}

// noEvent fails if an event arrives within quiet.
func (c *sse) noEvent(t *testing.T) {
	t.Helper()
	timeout := time.After(quiet)
	for {
		select {
		case fr, ok := <-c.frames:
			if !ok {
				t.Fatalf("stream ended: %v", c.err)
			}
			if fr.comment == "" {
				t.Fatalf("unexpected event %+v", fr)
			}
		case <-timeout:
			return
		}
	}
}

// waitEnded waits for a stream handler to return.
func (s *streamServer) waitEnded(t *testing.T, what string) {
	t.Helper()
	select {
	case <-s.ended:
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: the stream handler has not returned within 5 s", what)
	}
}

// listed is what GET /api/v1/events answers for a query: every item's
// seq and its JSON as sent.
func (f *fixture) listed(query string) (seqs []string, items map[string]string) {
	f.t.Helper()
	var page struct {
		Items []json.RawMessage `json:"items"`
	}
	f.call(api.RoleViewer, http.MethodGet, "/api/v1/events?limit=500&"+query, "", http.StatusOK, &page)
	items = map[string]string{}
	for _, raw := range page.Items {
		var e struct{ Seq int64 }
		if err := json.Unmarshal(raw, &e); err != nil {
			f.t.Fatal(err)
		}
		s := strconv.FormatInt(e.Seq, 10)
		seqs = append(seqs, s)
		items[s] = string(raw)
	}
	return seqs, items
}

// insertEvent writes an event as a router would, for the seeded admission
// message, and returns its seq.
func (f *fixture) insertEvent(typ, patientKey string) int64 {
	f.t.Helper()
	var seq int64
	f.query(`INSERT INTO events (id, type, occurred_at, message_id, patient_id, patient_key, encounter_id, source, route, schema_version, payload)
		VALUES ($1, $2, now(), $3, 'P1', $4, 'VP1', 'PAS^HOSP', 'adt', 1, '{"note": "a\nb <x>"}') RETURNING seq`,
		[]any{uuid.Must(uuid.NewV7()), typ, f.msgs[msgAdmit], patientKey}, &seq)
	return seq
}

func TestEventStreamRequests(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	s := f.streamServer(t, true)
	tests := []struct {
		name   string
		token  string
		query  string
		header map[string]string
		want   int
	}{
		{"no token", "", "", nil, http.StatusUnauthorized},
		{"invalid token", "aorta_" + strings.Repeat("x", 43), "", nil, http.StatusUnauthorized},
		{"viewer", f.tokens[api.RoleViewer], "", nil, http.StatusOK},
		{"analyst", f.tokens[api.RoleAnalyst], "?from=start", nil, http.StatusOK},
		{"clinician", f.tokens[api.RoleClinician], "?after=3", nil, http.StatusOK},
		{"admin", f.tokens[api.RoleAdmin], "?type=patient.admitted&patient=P1&encounter=VP1", nil, http.StatusOK},
		{"unknown parameter", f.tokens[api.RoleViewer], "?since=2026-11-26T00:00:00Z", nil, http.StatusBadRequest},
		{"bad from", f.tokens[api.RoleViewer], "?from=middle", nil, http.StatusBadRequest},
		{"bad after", f.tokens[api.RoleViewer], "?after=x", nil, http.StatusBadRequest},
		{"negative Last-Event-ID", f.tokens[api.RoleViewer], "", map[string]string{"Last-Event-ID": "-1"}, http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body, c := s.openStream(t, tt.token, tt.query, tt.header)
			if code != tt.want {
				t.Fatalf("status %d %s, want %d", code, body, tt.want)
			}
			if c != nil {
				c.close()
				s.waitEnded(t, "client closed")
			}
		})
	}
	if code, b := f.do(http.MethodPost, "/api/v1/events/stream", f.tokens[api.RoleAdmin], ""); code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d %s, want 405", code, b)
	}
}

func TestEventStream(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	s := f.streamServer(t, true)
	viewer := f.tokens[api.RoleViewer]
	all, items := f.listed("")
	if len(all) < 6 {
		t.Fatalf("%d seeded events; the test needs more", len(all))
	}
	mid := all[len(all)/2]
	after := func(seq string) []string {
		i := slices.Index(all, seq)
		return all[i+1:]
	}

	tests := []struct {
		name   string
		query  string
		header map[string]string
		want   []string // seqs, in order
	}{
		{"from start", "?from=start", nil, all},
		{"Last-Event-ID", "", map[string]string{"Last-Event-ID": mid}, after(mid)},
		{"after", "?after=" + mid, nil, after(mid)},
		{"Last-Event-ID wins over after", "?after=0", map[string]string{"Last-Event-ID": mid}, after(mid)},
		{"Last-Event-ID wins over from", "?from=start", map[string]string{"Last-Event-ID": mid}, after(mid)},
		{"type", "?from=start&type=observation.recorded", nil, nil},
		{"patient by identifier", "?from=start&patient=P2", nil, nil},
		{"patient by key", "?from=start&patient=HOSP%2FP1", nil, nil},
		{"encounter", "?after=0&encounter=VP1", nil, nil},
		{"type and patient", "?from=start&type=patient.admitted&patient=P1", nil, nil},
		{"type family", "?from=start&type=observation.*", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := tt.want
			if want == nil { // a filter: what GET /api/v1/events lists for it
				q := strings.NewReplacer("from=start&", "", "after=0&", "").Replace(strings.TrimPrefix(tt.query, "?"))
				want, _ = f.listed(q)
				if len(want) == 0 {
					t.Fatalf("GET /api/v1/events?%s lists nothing; the test needs events", q)
				}
			}
			_, body, c := s.openStream(t, viewer, tt.query, tt.header)
			if c == nil {
				t.Fatalf("stream refused: %s", body)
			}
			got := c.events(t, len(want))
			c.noEvent(t)
			for i, fr := range got {
				if fr.id != want[i] {
					t.Fatalf("event %d: id %s, want %s (want ids %v)", i, fr.id, want[i], want)
				}
				if fr.data != items[fr.id] {
					t.Errorf("event %s: data\n%s\nwant what GET /api/v1/events lists\n%s", fr.id, fr.data, items[fr.id])
				}
				var e struct{ Type string }
				if err := json.Unmarshal([]byte(fr.data), &e); err != nil || fr.event != e.Type || e.Type == "" {
					t.Errorf("event %s: event: %q, data type %q (%v)", fr.id, fr.event, e.Type, err)
				}
			}
		})
	}

	t.Run("new events, past the server's timeouts", func(t *testing.T) {
		_, _, c := s.openStream(t, viewer, "", nil)                   // at the end
		_, _, p := s.openStream(t, viewer, "?patient=HOSP%2FP2", nil) // a filter the new events miss
		c.noEvent(t)
		time.Sleep(2 * max(testServerTimeout, testRequestTimeout)) // the server's and the API's timeouts pass
		var seqs []string
		for range 3 {
			seqs = append(seqs, strconv.FormatInt(f.insertEvent("observation.recorded", "HOSP/P1"), 10))
		}
		got := c.events(t, 3)
		for i, fr := range got {
			if fr.id != seqs[i] || fr.event != "observation.recorded" || !strings.Contains(fr.data, `"payload":{"note":"a\nb \u003cx\u003e"}`) {
				t.Errorf("new event %d: %+v, want seq %s with its payload on one line", i, fr, seqs[i])
			}
		}
		p.noEvent(t)
		seq := strconv.FormatInt(f.insertEvent("observation.recorded", "HOSP/P2"), 10)
		if fr := p.events(t, 1)[0]; fr.id != seq {
			t.Errorf("filtered stream got %s, want the new event %s", fr.id, seq)
		}
		if fr := c.events(t, 1)[0]; fr.id != seq {
			t.Errorf("unfiltered stream got %s, want the new event %s", fr.id, seq)
		}
	})

	t.Run("heartbeat", func(t *testing.T) {
		_, _, c := s.openStream(t, viewer, "", nil)
		timeout := time.After(5 * testHeartbeat)
		for pings := 0; pings < 2; {
			select {
			case fr := <-c.frames:
				if fr.comment == "ping" {
					pings++
				} else if fr.comment != "" || fr.id != "" {
					t.Fatalf("unexpected frame %+v", fr)
				}
			case <-timeout:
				t.Fatalf("%d pings within %s, want 2 (every %s)", pings, 5*testHeartbeat, testHeartbeat)
			}
		}
	})
}

func TestEventStreamEnds(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	s := f.streamServer(t, true)
	viewer, analyst := f.tokens[api.RoleViewer], f.tokens[api.RoleAnalyst]

	// Four streams per token; the fifth is refused, other tokens are not.
	var open []*sse
	for i := range api.DefaultMaxStreamsPerToken {
		code, body, c := s.openStream(t, viewer, "", nil)
		if c == nil {
			t.Fatalf("stream %d: %d %s", i+1, code, body)
		}
		open = append(open, c)
	}
	code, body, _ := s.openStream(t, viewer, "", nil)
	if code != http.StatusTooManyRequests || !strings.Contains(body, "too many event streams") {
		t.Fatalf("fifth stream: %d %s, want 429", code, body)
	}
	if code, body, _ := s.openStream(t, analyst, "", nil); code != http.StatusOK {
		t.Fatalf("another token's stream: %d %s, want 200", code, body)
	}

	// A client that goes ends its handler, and frees its slot.
	open[0].close()
	s.waitEnded(t, "client disconnected")
	if code, body, _ := s.openStream(t, viewer, "", nil); code != http.StatusOK {
		t.Fatalf("a stream after one closed: %d %s, want 200", code, body)
	}

	// Closing Done (the server shutting down) ends every stream: the
	// three viewer streams left, the new one and the analyst's.
	close(s.done)
	for i := range 5 {
		s.waitEnded(t, "shutdown "+strconv.Itoa(i+1))
	}
	for _, c := range open[1:] {
		for range c.frames { // drains until the body ends
		}
		c.mu.Lock()
		err := c.err
		c.mu.Unlock()
		if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("stream after shutdown: %v, want the body to end", err)
		}
	}
}

// A client that stops reading is dropped once a write to it has waited
// the write timeout: it holds no handler for longer.
func TestEventStreamStalledClient(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	s := f.streamServer(t, false) // only the stream's own write timeout can end it
	conn, err := net.Dial("tcp", s.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.(*net.TCPConn).SetReadBuffer(4096)
	if _, err := io.WriteString(conn, "GET /api/v1/events/stream HTTP/1.1\r\nHost: aorta\r\nAuthorization: Bearer "+
		f.tokens[api.RoleViewer]+"\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * testPoll) // the stream starts at the current end
	// Far more than the sockets between them buffer, never read: 32 MiB.
	f.query(`WITH e AS (INSERT INTO events (id, type, occurred_at, message_id, source, route, schema_version, payload)
			SELECT gen_random_uuid(), 'observation.recorded', now(), $1, 'test', 'test', 1, jsonb_build_object('pad', repeat('x', 65536))
			FROM generate_series(1, 512) RETURNING 1)
		SELECT count(*) FROM e`, []any{f.msgs[msgAdmit]}, new(int))
	select {
	case <-s.ended:
	case <-time.After(10*testWriteTimeout + 10*time.Second):
		t.Fatal("the handler of a stream whose client reads nothing has not returned")
	}
}
