package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aortahealth/aorta/internal/pgtest"
	"github.com/aortahealth/aorta/internal/storetest"
	"github.com/aortahealth/aorta/pkg/api"
)

// Requests without a valid, unrevoked bearer token are refused with 401
// before anything else happens.
func TestAuthentication(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	revoked := f.newToken("revoked.one", api.RoleAdmin)
	if _, _, err := f.st.RevokeAPIToken(context.Background(), "revoked.one", "cli:test"); err != nil {
		t.Fatal(err)
	}
	unknown, _, _ := api.NewToken()
	valid := f.tokens[api.RoleViewer]
	tests := []struct {
		name   string
		header string
		want   int
	}{
		{"no header", "", http.StatusUnauthorized},
		{"basic scheme", "Basic dXNlcjpwYXNz", http.StatusUnauthorized},
		{"bearer without token", "Bearer ", http.StatusUnauthorized},
		{"not an aorta token", "Bearer " + strings.Repeat("x", 49), http.StatusUnauthorized},
		{"truncated token", "Bearer " + valid[:len(valid)-1], http.StatusUnauthorized},
		{"unknown token", "Bearer " + unknown, http.StatusUnauthorized},
		{"revoked token", "Bearer " + revoked, http.StatusUnauthorized},
		{"oversized header", "Bearer " + strings.Repeat("a", 1000), http.StatusUnauthorized},
		{"valid token", "Bearer " + valid, http.StatusOK},
		{"scheme in lower case", "bearer " + valid, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, f.srv.URL+"/api/v1/alerts", nil)
			if tt.header != "" {
				req.Header.Set("Authorization", tt.header)
			}
			resp, err := f.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.want)
			}
			if tt.want == http.StatusUnauthorized && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("WWW-Authenticate %q, want a Bearer challenge", resp.Header.Get("WWW-Authenticate"))
			}
		})
	}
	// Even an unknown endpoint needs a token: its existence is not shown.
	if code, _ := f.do(http.MethodGet, "/api/v1/nothing-here", "", ""); code != http.StatusUnauthorized {
		t.Errorf("unknown endpoint without a token: %d, want 401", code)
	}
	if code, _ := f.do(http.MethodGet, "/api/v1/nothing-here", valid, ""); code != http.StatusNotFound {
		t.Errorf("unknown endpoint with a token: %d, want 404", code)
	}
}

// last_used_at is written on first use and then at most once a minute.
func TestTokenLastUsed(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var used *time.Time
	f.query(`SELECT last_used_at FROM api_tokens WHERE name = 'viewer-token'`, nil, &used)
	if used != nil {
		t.Fatalf("last_used_at %v before any use, want NULL", used)
	}
	f.call(api.RoleViewer, http.MethodGet, "/api/v1/alerts", "", http.StatusOK, nil)
	var first time.Time
	f.query(`SELECT last_used_at FROM api_tokens WHERE name = 'viewer-token'`, nil, &first)
	f.call(api.RoleViewer, http.MethodGet, "/api/v1/alerts", "", http.StatusOK, nil)
	var second time.Time
	f.query(`SELECT last_used_at FROM api_tokens WHERE name = 'viewer-token'`, nil, &second)
	if !second.Equal(first) {
		t.Errorf("last_used_at moved from %v to %v within a minute, want one write a minute", first, second)
	}
	f.query(`UPDATE api_tokens SET last_used_at = now() - interval '2 minutes' WHERE name = 'viewer-token' RETURNING last_used_at`, nil, &first)
	f.call(api.RoleViewer, http.MethodGet, "/api/v1/alerts", "", http.StatusOK, nil)
	f.query(`SELECT last_used_at FROM api_tokens WHERE name = 'viewer-token'`, nil, &second)
	if !second.After(first) {
		t.Errorf("last_used_at %v not updated after two idle minutes (was %v)", second, first)
	}
}

// Every endpoint admits exactly the roles docs/api.md gives it, and a
// token of another role gets 403 with nothing done.
func TestRoles(t *testing.T) {
	t.Parallel()
	all := api.Roles
	var (
		analysts   = []api.Role{api.RoleAnalyst, api.RoleAdmin}
		clinicians = []api.Role{api.RoleClinician, api.RoleAdmin}
	)
	type endpoint struct {
		method, path, body string
		allowed            []api.Role
		status             int // the answer to an allowed role
	}
	endpoints := func(f *fixture) []endpoint {
		msg := f.msgs[msgAdmit].String()
		return []endpoint{
			{http.MethodGet, "/api/v1/routes", "", all, http.StatusOK},
			{http.MethodPost, "/api/v1/routes/reload", "", analysts, http.StatusOK},
			{http.MethodPost, "/api/v1/routes/validate", "version: 1\n", analysts, http.StatusOK},
			{http.MethodGet, "/api/v1/alerts", "", all, http.StatusOK},
			{http.MethodPost, "/api/v1/alerts/" + f.alert.String() + "/ack", "", clinicians, http.StatusOK},
			{http.MethodGet, "/api/v1/patients/HOSP%2FP1/scores", "", all, http.StatusOK},
			{http.MethodPut, "/api/v1/patients/HOSP%2FP1/spo2-scale", `{"scale": 2}`, clinicians, http.StatusOK},
			{http.MethodGet, "/api/v1/messages", "", all, http.StatusOK},
			{http.MethodPost, "/api/v1/messages/reprocess", `{"type": "ADT"}`, analysts, http.StatusAccepted},
			{http.MethodGet, "/api/v1/messages/" + msg, "", all, http.StatusOK},
			{http.MethodGet, "/api/v1/messages/" + msg + "/body", "", analysts, http.StatusOK},
			{http.MethodPost, "/api/v1/messages/" + msg + "/reprocess", "", analysts, http.StatusAccepted},
			{http.MethodGet, "/api/v1/events", "", all, http.StatusOK},
			{http.MethodGet, "/api/v1/dead-letters", "", all, http.StatusOK},
			// Resolving twice is a 409, so each role gets a fresh fixture
			// below; 404 proves the role got past the check too.
			{http.MethodPost, "/api/v1/dead-letters/999999/resolve", "", analysts, http.StatusNotFound},
			{http.MethodPost, "/api/v1/dead-letters/999999/discard", "", analysts, http.StatusNotFound},
		}
	}
	f := newFixture(t)
	for _, role := range all {
		t.Run(string(role), func(t *testing.T) {
			for _, e := range endpoints(f) {
				code, body := f.do(e.method, e.path, f.tokens[role], e.body)
				want := http.StatusForbidden
				if slices.Contains(e.allowed, role) {
					want = e.status
				}
				if code != want {
					t.Errorf("%s %s as %s: %d %s, want %d", e.method, e.path, role, code, body, want)
				}
			}
		})
	}
	// Refused requests left no trace: only allowed roles acted.
	if n := f.count(`SELECT count(*) FROM audit_log WHERE action = 'message.view_raw' AND actor NOT IN ('analyst-token', 'admin-token')`); n != 0 {
		t.Errorf("%d raw views audited for roles that may not read bodies", n)
	}
	if n := f.count(`SELECT count(*) FROM audit_log WHERE action IN ('patient.spo2_scale', 'alert.acknowledge') AND actor NOT IN ('clinician-token', 'admin-token')`); n != 0 {
		t.Errorf("%d clinical actions audited for roles that may not act clinically", n)
	}
	if n := f.count(`SELECT count(*) FROM audit_log WHERE action IN ('message.reprocess', 'routes.reload') AND actor NOT IN ('analyst-token', 'admin-token')`); n != 0 {
		t.Errorf("%d analyst actions audited for other roles", n)
	}
}

// Refused tokens are throttled per client address: after the burst, the
// address gets 429 with Retry-After before its token is looked up (even a
// valid one), until the limit refills; other addresses, and requests
// without a token, are not affected.
func TestAuthThrottling(t *testing.T) {
	t.Parallel()
	st, lookups := storetest.OpenCounting(t, pgtest.NewDatabase(t), "api_tokens")
	valid := storetest.Token(t, st, "viewer-token", api.RoleViewer)
	revoked := storetest.Token(t, st, "revoked.one", api.RoleViewer)
	if _, _, err := st.RevokeAPIToken(context.Background(), "revoked.one", "cli:test"); err != nil {
		t.Fatal(err)
	}
	unknown, _, _ := api.NewToken()

	var logs bytes.Buffer // written only from ServeHTTP below, in this goroutine
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	now := time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	limiter := api.NewAuthLimiter(api.AuthLimiterConfig{Logger: log, Now: clock})
	h := api.Handler(api.Config{Store: st, Logger: log, Now: clock, AuthLimiter: limiter, RequestTimeout: 10 * time.Second})

	tests := []struct {
		name        string
		at          time.Duration // on the fake clock, since the start
		remote      string
		header      string
		times       int // default 1
		want        int
		wantLookups int64 // token lookups per request
		retryAfter  string
	}{
		{name: "unknown tokens up to the burst", remote: "192.0.2.1:40000", header: "Bearer " + unknown, times: api.DefaultAuthBurst,
			want: http.StatusUnauthorized, wantLookups: 1},
		{name: "then a valid token from that address", remote: "192.0.2.1:40001", header: "Bearer " + valid,
			want: http.StatusTooManyRequests, wantLookups: 0, retryAfter: "6"},
		{name: "and an unknown one", remote: "192.0.2.1:40002", header: "Bearer " + unknown,
			want: http.StatusTooManyRequests, wantLookups: 0, retryAfter: "6"},
		{name: "another address, valid token", remote: "192.0.2.2:40000", header: "Bearer " + valid,
			want: http.StatusOK, wantLookups: 1},
		{name: "another address, unknown token", remote: "192.0.2.2:40000", header: "Bearer " + unknown,
			want: http.StatusUnauthorized, wantLookups: 1},
		{name: "malformed tokens count, unlooked-up", remote: "[2001:db8:1:2::1]:40000", header: "Bearer nope", times: 6,
			want: http.StatusUnauthorized, wantLookups: 0},
		{name: "revoked tokens count", remote: "[2001:db8:1:2::2]:40000", header: "Bearer " + revoked, times: 4,
			want: http.StatusUnauthorized, wantLookups: 1},
		{name: "same /64, valid token", remote: "[2001:db8:1:2:aaaa::3]:40000", header: "Bearer " + valid,
			want: http.StatusTooManyRequests, wantLookups: 0, retryAfter: "6"},
		{name: "next /64, valid token", remote: "[2001:db8:1:3::1]:40000", header: "Bearer " + valid,
			want: http.StatusOK, wantLookups: 1},
		{name: "no Authorization header does not count", remote: "192.0.2.3:40000", header: "", times: 3 * api.DefaultAuthBurst,
			want: http.StatusUnauthorized, wantLookups: 0},
		{name: "so a valid token from there is let in", remote: "192.0.2.3:40000", header: "Bearer " + valid,
			want: http.StatusOK, wantLookups: 1},
		{name: "almost refilled", at: 5 * time.Second, remote: "192.0.2.1:40000", header: "Bearer " + valid,
			want: http.StatusTooManyRequests, wantLookups: 0, retryAfter: "1"},
		{name: "refilled: the valid token is let in", at: 6 * time.Second, remote: "192.0.2.1:40000", header: "Bearer " + valid,
			want: http.StatusOK, wantLookups: 1},
		{name: "a success refills nothing: one failure empties it again", at: 6 * time.Second, remote: "192.0.2.1:40000", header: "Bearer " + unknown,
			want: http.StatusUnauthorized, wantLookups: 1},
		{name: "throttled again", at: 6 * time.Second, remote: "192.0.2.1:40000", header: "Bearer " + valid,
			want: http.StatusTooManyRequests, wantLookups: 0, retryAfter: "6"},
	}
	var throttled uint64
	for _, tt := range tests {
		now = time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC).Add(tt.at)
		for i := range max(tt.times, 1) {
			req := httptest.NewRequest(http.MethodGet, "/api/v1/alerts", nil)
			req.RemoteAddr = tt.remote
			if tt.header != "" {
				req.Header.Set("Authorization", tt.header)
			}
			before := lookups.Count()
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.want {
				t.Fatalf("%s (request %d): status %d %s, want %d", tt.name, i+1, rec.Code, rec.Body, tt.want)
			}
			if got := lookups.Count() - before; got != tt.wantLookups {
				t.Errorf("%s (request %d): %d token lookups, want %d", tt.name, i+1, got, tt.wantLookups)
			}
			if got := rec.Header().Get("Retry-After"); got != tt.retryAfter {
				t.Errorf("%s: Retry-After %q, want %q", tt.name, got, tt.retryAfter)
			}
			if tt.want == http.StatusTooManyRequests {
				throttled++
				var body map[string]string
				if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || !strings.Contains(body["error"], "too many failed authentication attempts") {
					t.Errorf("%s: 429 body %s (%v), want a JSON error saying why", tt.name, rec.Body, err)
				}
			}
		}
	}
	if st := limiter.Stats(); st.Throttled != throttled {
		t.Errorf("limiter counted %d throttled requests, want %d", st.Throttled, throttled)
	}
	// One warning per address as it became throttled (192.0.2.1 once: it
	// never refilled completely, so its second throttling is the same
	// episode), naming the address, never a token.
	out := logs.String()
	var warned []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["level"] == "WARN" {
			warned = append(warned, fmt.Sprint(m["client"]))
		}
	}
	if want := []string{"192.0.2.1", "2001:db8:1:2::/64"}; !slices.Equal(warned, want) {
		t.Errorf("warnings for clients %q, want %q:\n%s", warned, want, out)
	}
	for _, tok := range []string{valid, unknown, revoked, "aorta_", "nope"} {
		if strings.Contains(out, tok) {
			t.Errorf("the log holds token text %q:\n%s", tok, out)
		}
	}
}
