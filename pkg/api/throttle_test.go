package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aortahealth/aorta/internal/clientkey"
)

// limitStep is one thing done to an AuthLimiter at a moment of a fake
// clock.
type limitStep struct {
	at     time.Duration // since the test's start
	fail   string        // a client address that fails to authenticate
	times  int           // how many times (default 1)
	check  string        // a client address that asks to authenticate
	wantOK bool          // check's answer
	// wantWait is check's Retry-After when refused.
	wantWait time.Duration
}

func TestAuthLimiter(t *testing.T) {
	tests := []struct {
		name  string
		cfg   AuthLimiterConfig
		steps []limitStep
		// At the end:
		wantClients   int
		wantThrottled uint64
		wantEvicted   uint64
	}{
		{
			name: "nothing failed: never throttled, nothing remembered",
			steps: []limitStep{
				{check: "192.0.2.1", wantOK: true}, {check: "192.0.2.1", wantOK: true}, {check: "2001:db8::1", wantOK: true},
			},
			wantClients: 0,
		},
		{
			name: "a burst of failures, then throttled",
			steps: []limitStep{
				{fail: "192.0.2.1", times: 9},
				{check: "192.0.2.1", wantOK: true},
				{fail: "192.0.2.1"},
				{check: "192.0.2.1", wantOK: false, wantWait: 6 * time.Second},
				{check: "192.0.2.1", wantOK: false, wantWait: 6 * time.Second},
				{check: "192.0.2.2", wantOK: true},
			},
			wantClients: 1, wantThrottled: 2,
		},
		{
			name: "one more attempt per refill, then a full bucket is forgotten",
			steps: []limitStep{
				{fail: "192.0.2.1", times: 10},
				{at: 5 * time.Second, check: "192.0.2.1", wantOK: false, wantWait: time.Second},
				{at: 5900 * time.Millisecond, check: "192.0.2.1", wantOK: false, wantWait: time.Second},
				{at: 6 * time.Second, check: "192.0.2.1", wantOK: true},
				{at: 6 * time.Second, fail: "192.0.2.1"},
				{at: 6 * time.Second, check: "192.0.2.1", wantOK: false, wantWait: 6 * time.Second},
				{at: 30 * time.Second, check: "192.0.2.1", wantOK: true},
				// Full again 60 s after the last failure: forgotten at the
				// next failure, from anywhere.
				{at: 66 * time.Second, fail: "192.0.2.9"},
				{at: 66 * time.Second, check: "192.0.2.1", wantOK: true},
			},
			wantClients: 1, wantThrottled: 3,
		},
		{
			name: "custom burst and refill",
			cfg:  AuthLimiterConfig{Burst: 3, Refill: time.Minute},
			steps: []limitStep{
				{fail: "192.0.2.1", times: 3},
				{check: "192.0.2.1", wantOK: false, wantWait: time.Minute},
				{at: 90 * time.Second, check: "192.0.2.1", wantOK: true},
			},
			wantClients: 1, wantThrottled: 1,
		},
		{
			name: "failures that raced past the check are still charged",
			steps: []limitStep{
				{fail: "192.0.2.1", times: 20},
				// 10 below zero: 11 refills to one attempt.
				{check: "192.0.2.1", wantOK: false, wantWait: 66 * time.Second},
				{at: 65 * time.Second, check: "192.0.2.1", wantOK: false, wantWait: time.Second},
				{at: 66 * time.Second, check: "192.0.2.1", wantOK: true},
			},
			wantClients: 1, wantThrottled: 2,
		},
		{
			name: "IPv6 counts by /64",
			steps: []limitStep{
				{fail: "2001:db8:1:2::1", times: 5},
				{fail: "2001:db8:1:2:ffff:eeee:dddd:cccc", times: 5},
				{check: "2001:db8:1:2::abcd", wantOK: false, wantWait: 6 * time.Second},
				{check: "2001:db8:1:3::1", wantOK: true},
			},
			wantClients: 1, wantThrottled: 1,
		},
		{
			name: "an IPv4-mapped address counts as its IPv4 address",
			steps: []limitStep{
				{fail: "::ffff:192.0.2.1", times: 10},
				{check: "192.0.2.1", wantOK: false, wantWait: 6 * time.Second},
				{check: "::ffff:192.0.2.2", wantOK: true},
			},
			wantClients: 1, wantThrottled: 1,
		},
		{
			name: "at the cap the address that failed longest ago is forgotten",
			cfg:  AuthLimiterConfig{Burst: 1, MaxClients: 3},
			steps: []limitStep{
				{fail: "192.0.2.1"},
				{at: time.Second, fail: "192.0.2.2"},
				{at: 2 * time.Second, fail: "192.0.2.3"},
				{at: 3 * time.Second, fail: "192.0.2.1"}, // 192.0.2.1 now failed last
				{at: 4 * time.Second, fail: "192.0.2.4"}, // evicts 192.0.2.2
				{at: 4 * time.Second, check: "192.0.2.2", wantOK: true},
				{at: 4 * time.Second, check: "192.0.2.1", wantOK: false, wantWait: 8 * time.Second}, // 1/3 below zero
				{at: 4 * time.Second, check: "192.0.2.3", wantOK: false, wantWait: 4 * time.Second},
				{at: 4 * time.Second, check: "192.0.2.4", wantOK: false, wantWait: 6 * time.Second},
			},
			wantClients: 3, wantThrottled: 3, wantEvicted: 1,
		},
		{
			name: "idle addresses are forgotten without counting as evictions",
			cfg:  AuthLimiterConfig{Burst: 1, MaxClients: 3},
			steps: []limitStep{
				{fail: "192.0.2.1"}, {fail: "192.0.2.2"}, {fail: "192.0.2.3"},
				{at: 6 * time.Second, fail: "192.0.2.4"},
			},
			wantClients: 1, wantEvicted: 0,
		},
		{
			name: "a scan from many addresses stays within the cap",
			cfg:  AuthLimiterConfig{MaxClients: 100},
			steps: func() []limitStep {
				var s []limitStep
				for i := range 1000 {
					s = append(s, limitStep{at: time.Duration(i) * time.Millisecond, fail: fmt.Sprintf("2001:db8:%x::1", i), times: 10})
				}
				return append(s, limitStep{at: time.Second, check: "2001:db8:3e7::2", wantOK: false, wantWait: 6 * time.Second})
			}(),
			wantClients: 100, wantThrottled: 1, wantEvicted: 900,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t0 := time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)
			l := NewAuthLimiter(tc.cfg)
			for i, s := range tc.steps {
				now := t0.Add(s.at)
				if s.fail != "" {
					for range max(s.times, 1) {
						l.fail(key(t, s.fail), now)
					}
				}
				if s.check != "" {
					wait, ok := l.check(key(t, s.check), now)
					if ok != s.wantOK || wait != s.wantWait {
						t.Errorf("step %d: check %s at +%v = %v, %v; want %v, %v", i, s.check, s.at, wait, ok, s.wantWait, s.wantOK)
					}
				}
			}
			st := l.Stats()
			if st.Clients != tc.wantClients || st.Throttled != tc.wantThrottled || st.Evicted != tc.wantEvicted {
				t.Errorf("Stats %+v; want Clients %d, Throttled %d, Evicted %d", st, tc.wantClients, tc.wantThrottled, tc.wantEvicted)
			}
		})
	}
}

// key is the client key of an address written as text, as Check and
// Fail find it in a request's RemoteAddr.
func key(t *testing.T, addr string) netip.Addr {
	t.Helper()
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = netip.AddrPortFrom(netip.MustParseAddr(addr), 40000).String()
	k, ok := clientkey.FromRemoteAddr(r.RemoteAddr)
	if !ok {
		t.Fatalf("RemoteAddr %q holds no IP address", r.RemoteAddr)
	}
	return k
}

// TestAuthLimiterWarnings: one warning per address as it becomes
// throttled, not one per refused request; at most authWarnBurst at once,
// the rest counted in the next line.
func TestAuthLimiterWarnings(t *testing.T) {
	var buf bytes.Buffer
	t0 := time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)
	now := t0
	l := NewAuthLimiter(AuthLimiterConfig{Burst: 2, Logger: slog.New(slog.NewJSONHandler(&buf, nil)), Now: func() time.Time { return now }})
	for range 5 {
		l.fail(key(t, "192.0.2.1"), now)
		l.check(key(t, "192.0.2.1"), now)
	}
	lines := logLines(t, &buf)
	if len(lines) != 1 || lines[0]["client"] != "192.0.2.1" || lines[0]["level"] != "WARN" || lines[0]["retry_after"] == nil {
		t.Fatalf("after one address was throttled: %v; want one warning naming 192.0.2.1", lines)
	}
	buf.Reset()
	// A scan: 2 failures from each of 30 /64s.
	for i := range 30 {
		a := key(t, fmt.Sprintf("2001:db8:%x::1", i))
		l.fail(a, now)
		l.fail(a, now)
	}
	lines = logLines(t, &buf)
	if len(lines) != authWarnBurst-1 {
		t.Errorf("%d warnings for 30 addresses throttled at once, want %d (the limit, one spent above)", len(lines), authWarnBurst-1)
	}
	if len(lines) > 0 && lines[0]["client"] != "2001:db8::/64" {
		t.Errorf("warning names client %v, want 2001:db8::/64", lines[0]["client"])
	}
	buf.Reset()
	now = now.Add(authWarnEvery)
	l.fail(key(t, "192.0.2.2"), now)
	l.fail(key(t, "192.0.2.2"), now)
	lines = logLines(t, &buf)
	if want := float64(30 - (authWarnBurst - 1)); len(lines) != 1 || lines[0]["warnings_suppressed"] != want {
		t.Errorf("next warning a minute later: %v; want one with warnings_suppressed %v", lines, want)
	}
}

func logLines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// TestAuthLimiterConcurrent: checks and failures from many goroutines
// keep the table within its cap (run with -race).
func TestAuthLimiterConcurrent(t *testing.T) {
	l := NewAuthLimiter(AuthLimiterConfig{MaxClients: 50})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				r := httptest.NewRequest("GET", "/", nil)
				r.RemoteAddr = fmt.Sprintf("10.%d.%d.%d:1", g, i/256, i%256)
				if _, ok := l.Check(r); ok {
					l.Fail(r)
				}
			}
		})
	}
	wg.Wait()
	if st := l.Stats(); st.Clients != 50 || st.Evicted != 8*500-50 {
		t.Errorf("Stats %+v; want Clients 50, Evicted %d", st, 8*500-50)
	}
}

// TestAuthLimiterBehindAProxy: behind a declared reverse proxy each client
// has its own bucket, so one client failing again and again does not
// throttle the others; behind an undeclared one they share the proxy's.
func TestAuthLimiterBehindAProxy(t *testing.T) {
	proxy := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	tests := []struct {
		name        string
		trusted     []netip.Prefix
		otherPasses bool
	}{
		{name: "declared proxy", trusted: proxy, otherPasses: true},
		{name: "undeclared proxy", trusted: nil, otherPasses: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)
			l := NewAuthLimiter(AuthLimiterConfig{Burst: 3, Now: func() time.Time { return now }, TrustedProxies: tc.trusted})
			via := func(client string) *http.Request {
				r := httptest.NewRequest("GET", "/", nil)
				r.RemoteAddr = "10.9.9.9:44000"
				r.Header.Set("X-Forwarded-For", client)
				return r
			}
			for range 3 {
				l.Fail(via("203.0.113.1"))
			}
			if _, ok := l.Check(via("203.0.113.1")); ok {
				t.Fatal("the failing client is not throttled")
			}
			if _, ok := l.Check(via("203.0.113.2")); ok != tc.otherPasses {
				t.Errorf("another client behind the proxy may try: %v, want %v", ok, tc.otherPasses)
			}
		})
	}
}
