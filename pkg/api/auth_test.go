package api_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

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
