package console

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aortahealth/aorta/internal/pgtest"
	"github.com/aortahealth/aorta/internal/storetest"
	"github.com/aortahealth/aorta/pkg/api"
)

// TestLogin: a valid token opens a session whose cookie is HttpOnly,
// SameSite=Strict and limited to /console; anything else is refused with
// no cookie.
func TestLogin(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	revoked := f.newToken("gone", api.RoleAdmin)
	if _, _, err := f.st.RevokeAPIToken(context.Background(), "gone", "cli:test"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, token string
		next        string
		want        int
		wantTo      string
	}{
		{"valid", f.tokens[api.RoleViewer], "", http.StatusSeeOther, "/console/"},
		{"valid, back to the page asked for", f.tokens[api.RoleViewer], "/console/alerts?status=all", http.StatusSeeOther, "/console/alerts?status=all"},
		{"next elsewhere is ignored", f.tokens[api.RoleViewer], "https://evil.example/console/", http.StatusSeeOther, "/console/"},
		{"next scheme-relative is ignored", f.tokens[api.RoleViewer], "//evil.example/console/", http.StatusSeeOther, "/console/"},
		{"unknown token", "aorta_" + strings.Repeat("A", 43), "", http.StatusUnauthorized, ""},
		{"not a token", "password", "", http.StatusUnauthorized, ""},
		{"empty", "", "", http.StatusUnauthorized, ""},
		{"revoked token", revoked, "", http.StatusUnauthorized, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := f.do(http.MethodPost, "/console/login", "", url.Values{"token": {tt.token}, "next": {tt.next}}, nil)
			if a.code != tt.want {
				t.Fatalf("status %d, want %d", a.code, tt.want)
			}
			var session *http.Cookie
			for _, c := range a.resp.Cookies() {
				if c.Name == cookieName {
					session = c
				}
			}
			if tt.want != http.StatusSeeOther {
				if session != nil {
					t.Errorf("refused login set a cookie: %v", session)
				}
				if !strings.Contains(a.body, "invalid or revoked token") {
					t.Errorf("refused login page does not say why:\n%s", a.body)
				}
				return
			}
			if got := a.header.Get("Location"); got != tt.wantTo {
				t.Errorf("redirected to %q, want %q", got, tt.wantTo)
			}
			if session == nil {
				t.Fatal("no session cookie")
			}
			if !session.HttpOnly || session.SameSite != http.SameSiteStrictMode || session.Path != "/console" || session.Secure {
				t.Errorf("cookie %+v: want HttpOnly, SameSite=Strict, Path=/console, not Secure over plain HTTP", session)
			}
		})
	}
	if n := f.count(`SELECT count(*) FROM audit_log WHERE action = 'console.login' AND actor = 'viewer-token'`); n != 4 {
		t.Errorf("%d console.login audit rows, want 4", n)
	}
	if n := f.count(`SELECT count(*) FROM console_sessions`); n != 4 {
		t.Errorf("%d sessions stored, want 4", n)
	}
	// Only a hash of the session ID is stored.
	id, err := base64.RawURLEncoding.DecodeString(f.loginAs(api.RoleAdmin))
	if err != nil {
		t.Fatal(err)
	}
	if n := f.count(`SELECT count(*) FROM console_sessions WHERE id_hash = $1 OR id_hash = sha256($1)`, id); n != 0 {
		t.Error("the session ID, or its plain SHA-256, is stored")
	}
	if n := f.count(`SELECT count(*) FROM console_sessions WHERE id_hash = $1`, sessionHash(id)); n != 1 {
		t.Errorf("%d sessions stored under the ID's hash, want 1", n)
	}
}

// TestLoginSecureOverTLS: over TLS the cookie is Secure too.
func TestLoginSecureOverTLS(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	srv := httptest.NewTLSServer(f.srv.Config.Handler)
	defer srv.Close()
	client := srv.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := client.PostForm(srv.URL+"/console/login", url.Values{"token": {f.tokens[api.RoleViewer]}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, c := range resp.Cookies() {
		if c.Name == cookieName {
			if !c.Secure || !c.HttpOnly {
				t.Errorf("cookie over TLS %+v, want Secure and HttpOnly", c)
			}
			return
		}
	}
	t.Fatalf("status %d, no session cookie", resp.StatusCode)
}

// TestLoginThrottling: after the burst of failed logins from one address,
// its next login (even with a valid token) gets the login page with 429,
// Retry-After and a message saying why, and its token is not looked up;
// other addresses are unaffected; refused API bearer tokens count in the
// same limit; the address is let in again once the limit refills.
func TestLoginThrottling(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t)
	st, lookups := storetest.OpenCounting(t, dbURL, "api_tokens")
	valid := storetest.Token(t, st, "viewer-token", api.RoleViewer)
	unknown, _, _ := api.NewToken()

	var logs bytes.Buffer // written only from ServeHTTP below, in this goroutine
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	start := time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)
	now := start
	clock := func() time.Time { return now }
	limiter := api.NewAuthLimiter(api.AuthLimiterConfig{Logger: log, Now: clock})
	console, err := Handler(Config{Store: st, Logger: log, Now: clock, AuthLimiter: limiter, RequestTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	apiHandler := api.Handler(api.Config{Store: st, Logger: log, Now: clock, AuthLimiter: limiter, RequestTimeout: 10 * time.Second})

	const (
		login = "login"
		bear  = "API bearer token"
	)
	tests := []struct {
		name        string
		at          time.Duration // on the fake clock, since the start
		via         string        // login or bear
		remote      string
		token       string
		times       int // default 1
		want        int
		wantLookups int64 // token lookups per request
		retryAfter  string
	}{
		{name: "unknown tokens up to the burst", via: login, remote: "198.51.100.7:50000", token: unknown, times: api.DefaultAuthBurst - 2,
			want: http.StatusUnauthorized, wantLookups: 1},
		{name: "text that is not a token", via: login, remote: "198.51.100.7:50001", token: "password",
			want: http.StatusUnauthorized, wantLookups: 0},
		{name: "an empty token", via: login, remote: "198.51.100.7:50002", token: "",
			want: http.StatusUnauthorized, wantLookups: 0},
		{name: "then the valid token", via: login, remote: "198.51.100.7:50003", token: valid,
			want: http.StatusTooManyRequests, wantLookups: 0, retryAfter: "6"},
		{name: "the API from that address", via: bear, remote: "198.51.100.7:50004", token: valid,
			want: http.StatusTooManyRequests, wantLookups: 0, retryAfter: "6"},
		// A login reads api_tokens twice: the lookup, and the session's
		// insert, which checks the token is still unrevoked.
		{name: "another address logs in", via: login, remote: "198.51.100.8:50000", token: valid,
			want: http.StatusSeeOther, wantLookups: 2},
		{name: "which refilled nothing for the first", via: login, remote: "198.51.100.7:50005", token: valid,
			want: http.StatusTooManyRequests, wantLookups: 0, retryAfter: "6"},
		{name: "refused bearer tokens", via: bear, remote: "[2001:db8:7::1]:50000", token: unknown, times: api.DefaultAuthBurst / 2,
			want: http.StatusUnauthorized, wantLookups: 1},
		{name: "and failed logins count together", via: login, remote: "[2001:db8:7::2]:50000", token: unknown, times: api.DefaultAuthBurst / 2,
			want: http.StatusUnauthorized, wantLookups: 1},
		{name: "so the /64 is throttled", via: login, remote: "[2001:db8:7::3]:50000", token: valid,
			want: http.StatusTooManyRequests, wantLookups: 0, retryAfter: "6"},
		{name: "refilled: the valid token logs in", at: 6 * time.Second, via: login, remote: "198.51.100.7:50006", token: valid,
			want: http.StatusSeeOther, wantLookups: 2},
	}
	for _, tt := range tests {
		now = start.Add(tt.at)
		for i := range max(tt.times, 1) {
			var req *http.Request
			if tt.via == login {
				req = httptest.NewRequest(http.MethodPost, "/console/login", strings.NewReader(url.Values{"token": {tt.token}, "next": {"/console/alerts"}}.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			} else {
				req = httptest.NewRequest(http.MethodGet, "/api/v1/alerts", nil)
				req.Header.Set("Authorization", "Bearer "+tt.token)
			}
			req.RemoteAddr = tt.remote
			before := lookups.Count()
			rec := httptest.NewRecorder()
			if tt.via == login {
				console.ServeHTTP(rec, req)
			} else {
				apiHandler.ServeHTTP(rec, req)
			}
			if rec.Code != tt.want {
				t.Fatalf("%s (request %d): status %d, want %d:\n%s", tt.name, i+1, rec.Code, tt.want, rec.Body)
			}
			if got := lookups.Count() - before; got != tt.wantLookups {
				t.Errorf("%s (request %d): %d token lookups, want %d", tt.name, i+1, got, tt.wantLookups)
			}
			if got := rec.Header().Get("Retry-After"); got != tt.retryAfter {
				t.Errorf("%s: Retry-After %q, want %q", tt.name, got, tt.retryAfter)
			}
			if tt.via != login {
				continue
			}
			setCookie := rec.Header().Get("Set-Cookie")
			switch tt.want {
			case http.StatusTooManyRequests:
				body := rec.Body.String()
				if !strings.Contains(body, "Too many failed log-ins from this address. Try again in 6 seconds.") ||
					!strings.Contains(body, `name="token"`) || !strings.Contains(body, `value="/console/alerts"`) {
					t.Errorf("%s: the throttled login page does not say why, or lost its form:\n%s", tt.name, body)
				}
				if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
					t.Errorf("%s: Content-Type %q, want the login page", tt.name, ct)
				}
				fallthrough
			case http.StatusUnauthorized:
				if setCookie != "" {
					t.Errorf("%s: refused login set a cookie: %s", tt.name, setCookie)
				}
			case http.StatusSeeOther:
				if !strings.HasPrefix(setCookie, cookieName+"=") || rec.Header().Get("Location") != "/console/alerts" {
					t.Errorf("%s: Set-Cookie %q, Location %q; want a session and /console/alerts", tt.name, setCookie, rec.Header().Get("Location"))
				}
			}
		}
	}
	if n := storetest.Count(t, dbURL, `SELECT count(*) FROM console_sessions`); n != 2 {
		t.Errorf("%d sessions, want 2", n)
	}
	for _, tok := range []string{valid, unknown, "password"} {
		if strings.Contains(logs.String(), tok) {
			t.Errorf("the log holds token text %q:\n%s", tok, logs.String())
		}
	}
}

// TestSessionCookieThrottling: a session cookie is a credential too. A
// cookie naming no session counts towards the address's throttling, and a
// throttled address's cookies are not looked up (429, the login page); an
// expired session's cookie, a real user's, does not count.
func TestSessionCookieThrottling(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t)
	st, lookups := storetest.OpenCounting(t, dbURL, "console_sessions")
	valid := storetest.Token(t, st, "viewer-token", api.RoleViewer)
	start := time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)
	now := start
	clock := func() time.Time { return now }
	limiter := api.NewAuthLimiter(api.AuthLimiterConfig{Now: clock})
	console, err := Handler(Config{Store: st, Now: clock, AuthLimiter: limiter, RequestTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	do := func(method, path, remote, cookie string, body url.Values) *httptest.ResponseRecorder {
		t.Helper()
		var req *http.Request
		if body != nil {
			req = httptest.NewRequest(method, path, strings.NewReader(body.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		} else {
			req = httptest.NewRequest(method, path, nil)
		}
		req.RemoteAddr = remote
		if cookie != "" {
			req.AddCookie(&http.Cookie{Name: cookieName, Value: cookie})
		}
		rec := httptest.NewRecorder()
		console.ServeHTTP(rec, req)
		return rec
	}
	session := func(remote string) string {
		t.Helper()
		rec := do(http.MethodPost, "/console/login", remote, "", url.Values{"token": {valid}, "next": {"/console/alerts"}})
		for _, c := range rec.Result().Cookies() {
			if c.Name == cookieName && c.Value != "" {
				return c.Value
			}
		}
		t.Fatalf("login from %s: %d, no session cookie", remote, rec.Code)
		return ""
	}
	forged := func() string {
		b := make([]byte, sessionIDBytes)
		rand.Read(b)
		return base64.RawURLEncoding.EncodeToString(b)
	}

	// A real user's session goes idle: its cookie is refused but not counted.
	stale := session("192.0.2.9:1000")
	now = start.Add(DefaultSessionIdle + time.Minute)
	for range api.DefaultAuthBurst + 2 {
		if rec := do(http.MethodGet, "/console/alerts", "192.0.2.9:1001", stale, nil); rec.Code != http.StatusSeeOther {
			t.Fatalf("expired session: %d, want 303 to the login page", rec.Code)
		}
	}
	if rec := do(http.MethodGet, "/console/alerts", "192.0.2.9:1002", session("192.0.2.9:1002"), nil); rec.Code != http.StatusOK {
		t.Fatalf("after expired cookies, a new session from the same address: %d, want 200", rec.Code)
	}

	// Forged cookies from one address: looked up up to the burst, then not.
	mine := session("192.0.2.7:2000")
	for i := range api.DefaultAuthBurst {
		before := lookups.Count()
		if rec := do(http.MethodGet, "/console/alerts", "192.0.2.7:2001", forged(), nil); rec.Code != http.StatusSeeOther {
			t.Fatalf("forged cookie %d: %d, want 303 to the login page", i+1, rec.Code)
		}
		if lookups.Count() == before {
			t.Fatalf("forged cookie %d was not looked up", i+1)
		}
	}
	for _, c := range []struct{ name, method, path, cookie string }{
		{"a forged cookie", http.MethodGet, "/console/alerts", forged()},
		{"the address's own live session", http.MethodGet, "/console/alerts", mine},
		{"the login page with a forged cookie", http.MethodGet, "/console/login", forged()},
	} {
		before := lookups.Count()
		rec := do(c.method, c.path, "192.0.2.7:2002", c.cookie, nil)
		if lookups.Count() != before {
			t.Errorf("%s from a throttled address was looked up", c.name)
		}
		if c.path == "/console/login" {
			if rec.Code != http.StatusOK {
				t.Errorf("%s: %d, want the login form", c.name, rec.Code)
			}
			continue
		}
		if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") == "" ||
			!strings.Contains(rec.Body.String(), "Too many failed log-ins from this address") {
			t.Errorf("%s: %d, Retry-After %q; want 429 and the login page saying why", c.name, rec.Code, rec.Header().Get("Retry-After"))
		}
	}
	// Another address is not affected, and the first recovers.
	if rec := do(http.MethodGet, "/console/alerts", "192.0.2.8:3000", mine, nil); rec.Code != http.StatusOK {
		t.Errorf("another address with a live session: %d, want 200", rec.Code)
	}
	now = now.Add(api.DefaultAuthRefill)
	if rec := do(http.MethodGet, "/console/alerts", "192.0.2.7:2003", mine, nil); rec.Code != http.StatusOK {
		t.Errorf("after the refill, the live session: %d, want 200", rec.Code)
	}
}

// TestSessionEnds: idle and absolute timeouts, logout and a revoked token
// each end a session: pages go back to the login page, POSTs get 401.
func TestSessionEnds(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	alive := func(cookie string) bool {
		t.Helper()
		a := f.get("/console/routes", cookie)
		switch {
		case a.code == http.StatusOK:
			return true
		case a.code == http.StatusSeeOther && strings.HasPrefix(a.header.Get("Location"), "/console/login?next="):
			return false
		}
		t.Fatalf("GET /console/routes: %d %s", a.code, a.header.Get("Location"))
		return false
	}

	t.Run("idle", func(t *testing.T) {
		c := f.loginAs(api.RoleViewer)
		f.advance(DefaultSessionIdle - time.Minute)
		if !alive(c) {
			t.Fatal("session ended before its idle timeout")
		}
		// That request counted as activity: the idle clock restarts.
		f.advance(DefaultSessionIdle - time.Minute)
		if !alive(c) {
			t.Fatal("an active session ended")
		}
		f.advance(DefaultSessionIdle + time.Second)
		if alive(c) {
			t.Fatal("session still alive after its idle timeout")
		}
	})
	t.Run("absolute", func(t *testing.T) {
		c := f.loginAs(api.RoleViewer)
		for elapsed := time.Duration(0); elapsed < DefaultSessionLifetime-20*time.Minute; elapsed += 20 * time.Minute {
			f.advance(20 * time.Minute)
			if !alive(c) {
				t.Fatalf("session ended after %v of activity, before its lifetime", elapsed)
			}
		}
		f.advance(20 * time.Minute)
		if alive(c) {
			t.Fatalf("session alive past its lifetime of %v", DefaultSessionLifetime)
		}
	})
	t.Run("logout", func(t *testing.T) {
		c := f.loginAs(api.RoleAnalyst)
		a := f.post("/console/logout", c, nil)
		if a.code != http.StatusSeeOther || a.header.Get("Location") != "/console/login?ok=logged-out" {
			t.Fatalf("logout: %d to %q", a.code, a.header.Get("Location"))
		}
		if alive(c) {
			t.Fatal("session alive after logout")
		}
		if n := f.count(`SELECT count(*) FROM audit_log WHERE action = 'console.logout' AND actor = 'analyst-token'`); n != 1 {
			t.Errorf("%d console.logout audit rows, want 1", n)
		}
	})
	t.Run("revoked token", func(t *testing.T) {
		tok := f.newToken("soon-revoked", api.RoleAdmin)
		c := f.login(tok)
		if !alive(c) {
			t.Fatal("new session not alive")
		}
		if _, _, err := f.st.RevokeAPIToken(context.Background(), "soon-revoked", "cli:test"); err != nil {
			t.Fatal(err)
		}
		if alive(c) {
			t.Fatal("session alive after its token was revoked")
		}
		if a := f.post("/console/messages/"+f.msgs[msgAdmit].String()+"/reprocess", c, nil); a.code != http.StatusUnauthorized {
			t.Errorf("POST after revocation: %d, want 401", a.code)
		}
	})
}

// TestNoSession: without a session a page leads to the login page (and
// back), and a POST or the live stream is refused with 401.
func TestNoSession(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	garbage := "not-a-session"
	forged := strings.Repeat("A", 43) // well formed, never issued
	for _, cookie := range []string{"", garbage, forged} {
		for _, tt := range []struct {
			method, path string
			want         int
			wantTo       string
		}{
			{http.MethodGet, "/console/", http.StatusSeeOther, "/console/login?next=%2Fconsole%2F"},
			{http.MethodGet, "/console/messages?control_id=ADM1", http.StatusSeeOther, "/console/login?next=%2Fconsole%2Fmessages%3Fcontrol_id%3DADM1"},
			{http.MethodGet, "/console/messages/" + f.msgs[msgAdmit].String(), http.StatusSeeOther, ""},
			{http.MethodGet, "/console/events/stream", http.StatusUnauthorized, ""},
			{http.MethodPost, "/console/messages/" + f.msgs[msgAdmit].String() + "/reprocess", http.StatusUnauthorized, ""},
			{http.MethodPost, "/console/alerts/" + f.alert.String() + "/ack", http.StatusUnauthorized, ""},
			{http.MethodPost, "/console/logout", http.StatusUnauthorized, ""},
		} {
			var a answer
			if tt.method == http.MethodGet {
				a = f.get(tt.path, cookie)
			} else {
				a = f.do(tt.method, tt.path, cookie, url.Values{"csrf": {"x"}}, nil)
			}
			if a.code != tt.want {
				t.Errorf("cookie %q: %s %s: %d, want %d", cookie, tt.method, tt.path, a.code, tt.want)
			}
			if tt.wantTo != "" && a.header.Get("Location") != tt.wantTo {
				t.Errorf("cookie %q: %s %s: to %q, want %q", cookie, tt.method, tt.path, a.header.Get("Location"), tt.wantTo)
			}
			if strings.Contains(a.body, bodyMarker) {
				t.Errorf("cookie %q: %s %s shows message data", cookie, tt.method, tt.path)
			}
		}
	}
	if f.count(`SELECT count(*) FROM audit_log WHERE action NOT IN ('token.create')`) != 0 ||
		f.count(`SELECT count(*) FROM outbox`) != 0 || f.count(`SELECT count(*) FROM alerts WHERE acknowledged_by IS NOT NULL`) != 0 {
		t.Error("a request without a session did something")
	}
	if a := f.get("/console/login", ""); a.code != http.StatusOK || !strings.Contains(a.body, `name="token"`) {
		t.Errorf("login page: %d, no token field", a.code)
	}
}

// TestCSRF: a POST needs the session's own CSRF token and must not come
// from another site, even with a valid session cookie.
func TestCSRF(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	c := f.loginAs(api.RoleAdmin)
	other := f.loginAs(api.RoleAdmin)
	path := "/console/messages/" + f.msgs[msgAdmit].String() + "/reprocess"
	tests := []struct {
		name   string
		form   url.Values
		header map[string]string
		want   int
	}{
		{"no token", url.Values{}, nil, http.StatusForbidden},
		{"wrong token", url.Values{"csrf": {"AAAA"}}, nil, http.StatusForbidden},
		{"another session's token", url.Values{"csrf": {csrfOf(t, other)}}, nil, http.StatusForbidden},
		{"cross-site origin", url.Values{"csrf": {csrfOf(t, c)}}, map[string]string{"Origin": "https://evil.example"}, http.StatusForbidden},
		{"cross-site fetch", url.Values{"csrf": {csrfOf(t, c)}}, map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if a := f.do(http.MethodPost, path, c, tt.form, tt.header); a.code != tt.want {
				t.Errorf("status %d, want %d", a.code, tt.want)
			}
		})
	}
	if n := f.count(`SELECT count(*) FROM outbox`); n != 0 {
		t.Fatalf("%d messages queued by refused requests", n)
	}
	// The same request with the session's token and from this origin goes.
	a := f.do(http.MethodPost, path, c, url.Values{"csrf": {csrfOf(t, c)}}, map[string]string{"Origin": f.srv.URL, "Sec-Fetch-Site": "same-origin"})
	if a.code != http.StatusSeeOther {
		t.Fatalf("valid POST: %d, want 303:\n%s", a.code, a.body)
	}
	if a := f.do(http.MethodPost, "/console/login", "", url.Values{"token": {f.tokens[api.RoleAdmin]}}, map[string]string{"Origin": "https://evil.example"}); a.code != http.StatusForbidden {
		t.Errorf("cross-site login: %d, want 403", a.code)
	}
}

// TestRoles: each role sees the body and the actions the API allows it,
// and the server refuses the others whatever is posted. A viewer's page
// holds nothing of the raw message.
func TestRoles(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	admit := "/console/messages/" + f.msgs[msgAdmit].String()
	tests := []struct {
		role                    api.Role
		body, reprocess, ackBtn bool
	}{
		{api.RoleViewer, false, false, false},
		{api.RoleAnalyst, true, true, false},
		{api.RoleClinician, false, false, true},
		{api.RoleAdmin, true, true, true},
	}
	for _, tt := range tests {
		t.Run(string(tt.role), func(t *testing.T) {
			c := f.loginAs(tt.role)
			actor := string(tt.role) + "-token"
			a := f.get(admit, c)
			if a.code != http.StatusOK {
				t.Fatalf("GET message: %d", a.code)
			}
			if got := strings.Contains(a.body, bodyMarker); got != tt.body {
				t.Errorf("body marker shown: %v, want %v", got, tt.body)
			}
			if got := strings.Contains(a.body, `<pre class="raw">MSH|^~\&amp;|PAS|HOSP`); got != tt.body {
				t.Errorf("raw text shown: %v, want %v", got, tt.body)
			}
			if got := strings.Contains(a.body, "/reprocess"); got != tt.reprocess {
				t.Errorf("reprocess button shown: %v, want %v", got, tt.reprocess)
			}
			if n := f.count(`SELECT count(*) FROM audit_log WHERE action = 'message.view_raw' AND actor = $1 AND target = $2`, actor, f.msgs[msgAdmit].String()); (n == 1) != tt.body {
				t.Errorf("%d message.view_raw audit rows, want %v", n, tt.body)
			}
			alerts := f.get("/console/alerts", c)
			if got := strings.Contains(alerts.body, "/ack"); got != tt.ackBtn {
				t.Errorf("acknowledge button shown: %v, want %v", got, tt.ackBtn)
			}
			dl := f.get("/console/dead-letters", c)
			if got := strings.Contains(dl.body, "/resolve"); got != tt.reprocess {
				t.Errorf("dead-letter actions shown: %v, want %v", got, tt.reprocess)
			}
			if !tt.reprocess {
				if a := f.post(admit+"/reprocess", c, nil); a.code != http.StatusForbidden {
					t.Errorf("POST reprocess: %d, want 403", a.code)
				}
				var dlID int64
				f.query(`SELECT id FROM dead_letters WHERE message_id = $1`, []any{f.msgs[msgNoPatient]}, &dlID)
				for _, action := range []string{"resolve", "discard"} {
					if a := f.post("/console/dead-letters/"+itoa(dlID)+"/"+action, c, nil); a.code != http.StatusForbidden {
						t.Errorf("POST dead letter %s: %d, want 403", action, a.code)
					}
				}
			}
			if !tt.ackBtn {
				if a := f.post("/console/alerts/"+f.alert.String()+"/ack", c, nil); a.code != http.StatusForbidden {
					t.Errorf("POST ack: %d, want 403", a.code)
				}
			}
		})
	}
	if n := f.count(`SELECT count(*) FROM outbox`); n != 0 {
		t.Errorf("refused reprocessing queued %d messages", n)
	}
	if n := f.count(`SELECT count(*) FROM alerts WHERE acknowledged_by IS NOT NULL`); n != 0 {
		t.Errorf("refused acknowledgements acknowledged %d alerts", n)
	}
	if n := f.count(`SELECT count(*) FROM dead_letters WHERE resolved_at IS NOT NULL`); n != 0 {
		t.Errorf("refused actions resolved %d dead letters", n)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestActions: reprocess, resolve, discard and acknowledge do what the
// API's do, audited under the session's token name, and confirm it.
func TestActions(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	analyst, clinician := f.loginAs(api.RoleAnalyst), f.loginAs(api.RoleClinician)

	id := f.msgs[msgAdmit].String()
	a := f.post("/console/messages/"+id+"/reprocess", analyst, nil)
	if a.code != http.StatusSeeOther || a.header.Get("Location") != "/console/messages/"+id+"?ok=reprocessed" {
		t.Fatalf("reprocess: %d to %q", a.code, a.header.Get("Location"))
	}
	if n := f.count(`SELECT count(*) FROM outbox WHERE message_id = $1 AND replay`, f.msgs[msgAdmit]); n != 1 {
		t.Errorf("%d replay rows in the outbox, want 1", n)
	}
	if n := f.count(`SELECT count(*) FROM audit_log WHERE action = 'message.reprocess' AND actor = 'analyst-token' AND target = $1`, id); n != 1 {
		t.Errorf("%d message.reprocess audit rows, want 1", n)
	}
	if page := f.get(a.header.Get("Location"), analyst); !strings.Contains(page.body, "Queued for reprocessing") {
		t.Error("no confirmation after reprocessing")
	}
	if a := f.post("/console/messages/"+id+"/reprocess", analyst, nil); a.header.Get("Location") != "/console/messages/"+id+"?ok=already-queued" {
		t.Errorf("second reprocess while queued: to %q, want already-queued", a.header.Get("Location"))
	}
	if a := f.post("/console/messages/"+f.msgs[msgRejected].String()+"/reprocess", analyst, nil); a.code != http.StatusConflict {
		t.Errorf("reprocess a rejected message: %d, want 409", a.code)
	}

	var dlID int64
	f.query(`SELECT id FROM dead_letters WHERE message_id = $1`, []any{f.msgs[msgNoPatient]}, &dlID)
	a = f.post("/console/dead-letters/"+itoa(dlID)+"/discard", analyst, url.Values{"reason": {"test feed"}, "back": {"/console/dead-letters?status=all"}})
	if a.code != http.StatusSeeOther || a.header.Get("Location") != "/console/dead-letters?ok=discarded&status=all" {
		t.Fatalf("discard: %d to %q", a.code, a.header.Get("Location"))
	}
	if n := f.count(`SELECT count(*) FROM dead_letters WHERE id = $1 AND resolution = 'discarded' AND resolved_by = 'analyst-token'`, dlID); n != 1 {
		t.Error("dead letter not discarded by analyst-token")
	}
	if a := f.post("/console/dead-letters/"+itoa(dlID)+"/resolve", analyst, nil); a.code != http.StatusConflict {
		t.Errorf("resolve a discarded dead letter: %d, want 409", a.code)
	}

	a = f.post("/console/alerts/"+f.alert.String()+"/ack", clinician, url.Values{"back": {"https://evil.example/"}})
	if a.code != http.StatusSeeOther || a.header.Get("Location") != "/console/alerts?ok=acknowledged" {
		t.Fatalf("ack: %d to %q", a.code, a.header.Get("Location"))
	}
	if n := f.count(`SELECT count(*) FROM alerts WHERE id = $1 AND acknowledged_by = 'clinician-token'`, f.alert); n != 1 {
		t.Error("alert not acknowledged by clinician-token")
	}
	if n := f.count(`SELECT count(*) FROM audit_log WHERE action = 'alert.acknowledge' AND actor = 'clinician-token'`); n != 1 {
		t.Errorf("%d alert.acknowledge audit rows, want 1", n)
	}
	if n := f.count(`SELECT count(*) FROM events WHERE type = 'alert.acknowledged'`); n != 1 {
		t.Errorf("%d alert.acknowledged events, want 1", n)
	}
	if page := f.get("/console/alerts?ok=acknowledged&status=all", clinician); !strings.Contains(page.body, "Alert acknowledged.") ||
		!strings.Contains(page.body, "clinician-token") {
		t.Error("alerts page does not confirm the acknowledgement or name who made it")
	}
}

// TestPages: every page renders for an admin with the security headers,
// from the seeded data, and bad filters are a 400 page.
func TestPages(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	c := f.loginAs(api.RoleAdmin)
	tests := []struct {
		path string
		want []string // in the page
	}{
		{"/console/", []string{"Dashboard", "Senders", "<code>PAS^HOSP</code>", "Outbox depth", "Open alerts", "news2", "Feeds"}},
		{"/console/messages", []string{"ADM1", "OBS1", "ESC1", "NOPID1", "REJ1", `class="pill bad">rejected`, `class="pill bad">dead_lettered`}},
		{"/console/messages?control_id=OBS1", []string{"OBS1", "HOSP/P1"}},
		{"/console/messages?status=dead_lettered", []string{"NOPID1"}},
		{"/console/messages?since=2000-01-01T00:00&type=adt&trigger=a01", []string{"ADM1"}},
		{"/console/messages/" + f.msgs[msgVitalsBad].String(), []string{"OBS1", "score.calculated", "alert.raised", "MSA|AA|OBS1", "Observation Value", "OBX-5"}},
		{"/console/messages/" + f.msgs[msgEscaped].String(), []string{`<td class="value">` + escapedVal + "</td>", escapedRaw, "Patient Name", "PID-5.1"}},
		{"/console/messages/" + f.msgs[msgNoPatient].String(), []string{"Dead letters", "dead_lettered"}},
		{"/console/dead-letters", []string{"NOPID1", "Reprocess", "Discard"}},
		{"/console/dead-letters?status=all", []string{"NOPID1"}},
		{"/console/events", []string{`id="live"`, `data-stream="/console/events/stream?after=0"`}},
		{"/console/events?type=alert.%2A&patient=P1", []string{`data-stream="/console/events/stream?after=0&amp;patient=P1&amp;type=alert.%2A"`}},
		{"/console/alerts", []string{"news2", "emergency", "Acknowledge"}},
		{"/console/alerts?status=all&rule=news2&patient=HOSP%2FP1", []string{"news2"}},
		{"/console/routes", []string{"routes.yaml", "nursing-vitals", "Clinical parameters"}},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			a := f.get(tt.path, c)
			if a.code != http.StatusOK {
				t.Fatalf("status %d:\n%s", a.code, a.body)
			}
			for _, w := range tt.want {
				if !strings.Contains(a.body, w) {
					t.Errorf("page lacks %q", w)
				}
			}
			checkHeaders(t, a)
		})
	}
	for _, bad := range []string{"/console/messages?status=lost", "/console/messages?since=yesterday", "/console/messages?cursor=x",
		"/console/alerts?status=maybe", "/console/dead-letters?status=x", "/console/dead-letters?cursor=-1"} {
		if a := f.get(bad, c); a.code != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", bad, a.code)
		}
	}
	for _, missing := range []string{"/console/messages/" + "00000000-0000-0000-0000-000000000000", "/console/messages/nope", "/console/nowhere"} {
		if a := f.get(missing, c); a.code != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", missing, a.code)
		}
	}
	if a := f.get("/console/static/console.js", ""); a.code != http.StatusOK || !strings.Contains(a.body, "EventSource") && !strings.Contains(a.body, "event-stream") {
		t.Errorf("static script: %d", a.code)
	}
	if a := f.get("/console", ""); a.code != http.StatusFound || a.header.Get("Location") != "/console/" {
		t.Errorf("/console: %d to %q, want 302 to /console/", a.code, a.header.Get("Location"))
	}
}

func checkHeaders(t *testing.T, a answer) {
	t.Helper()
	for k, want := range map[string]string{
		"Content-Security-Policy": contentSecurityPolicy,
		"X-Frame-Options":         "DENY",
		"Cache-Control":           "no-store",
		"Content-Type":            "text/html; charset=utf-8",
		"X-Content-Type-Options":  "nosniff",
	} {
		if got := a.header.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	if !strings.Contains(contentSecurityPolicy, "script-src 'self'") || strings.Contains(contentSecurityPolicy, "unsafe-inline") {
		t.Errorf("CSP %q allows inline script", contentSecurityPolicy)
	}
	if strings.Contains(a.body, "<script>") || strings.Contains(a.body, " style=") || strings.Contains(a.body, " onclick=") {
		t.Error("page has inline script or style, which the CSP refuses")
	}
}

// TestLiveStream: the live view's stream is the API's event stream behind
// the session: Server-Sent Events from the seq asked for.
func TestLiveStream(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	c := f.loginAs(api.RoleViewer)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.srv.URL+"/console/events/stream?after=0&type=alert.*", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.AddCookie(&http.Cookie{Name: cookieName, Value: c})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	sc := bufio.NewScanner(resp.Body)
	var got []string
	for sc.Scan() && len(got) == 0 {
		if ev, ok := strings.CutPrefix(sc.Text(), "event: "); ok {
			got = append(got, ev)
		}
	}
	if len(got) == 0 || got[0] != "alert.raised" {
		t.Fatalf("first event %v, want alert.raised (err %v)", got, sc.Err())
	}
}

// TestNextPage: after login only console pages are gone to.
func TestNextPage(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"", "/console/"},
		{"/console/messages?control_id=X", "/console/messages?control_id=X"},
		{"/console/login", "/console/"},
		{"/console/events/stream", "/console/"},
		{"//evil.example/console/", "/console/"},
		{"https://evil.example/console/", "/console/"},
		{"/\\evil.example", "/console/"},
		{"/api/v1/messages", "/console/"},
		{"javascript:alert(1)", "/console/"},
	} {
		if got := nextPage(tt.in); got != tt.want {
			t.Errorf("nextPage(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestSegmentTable: fields, components and repetitions become rows with
// decoded values and field names where known.
func TestSegmentTable(t *testing.T) {
	raw := []byte("MSH|^~\\&|LAB|HOSP|AORTA|HOSP|20261126080000||ORU^R01|C1|P|2.5\r" +
		"PID|||123^^^HOSP^MR~456^^^NHS^NH||O\\T\\BRIEN^ANN\r" +
		"ZZZ|a\\F\\b|x&y\r")
	rows, perr := segmentTable(raw)
	if perr != "" {
		t.Fatal(perr)
	}
	want := map[string]struct{ name, value string }{
		"MSH-1":      {"Field Separator", "|"},
		"MSH-9.1":    {"Message Type", "ORU"},
		"MSH-10":     {"Message Control ID", "C1"},
		"PID-3[1].1": {"Patient Identifier List", "123"},
		"PID-3[2].4": {"Patient Identifier List", "NHS"},
		"PID-5.1":    {"Patient Name", "O&BRIEN"},
		"PID-5.2":    {"Patient Name", "ANN"},
		"ZZZ-1":      {"", "a|b"},
		"ZZZ-2.1.2":  {"", "y"},
	}
	got := map[string]segmentRow{}
	for _, r := range rows {
		got[r.Location] = r
	}
	for loc, w := range want {
		r, ok := got[loc]
		if !ok {
			t.Errorf("no row %s", loc)
			continue
		}
		if r.Name != w.name || r.Value != w.value {
			t.Errorf("%s: %q %q, want %q %q", loc, r.Name, r.Value, w.name, w.value)
		}
	}
	segs := 0
	for _, r := range rows {
		if r.Segment != "" {
			segs++
		}
	}
	if segs != 3 {
		t.Errorf("%d segment starts, want 3", segs)
	}
	if _, perr := segmentTable([]byte("not hl7")); perr == "" {
		t.Error("no parse error for garbage")
	}
}
