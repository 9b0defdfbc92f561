package mllp

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func prefixes(t *testing.T, s string) []netip.Prefix {
	t.Helper()
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		if f == "" {
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

func TestRemoteIP(t *testing.T) {
	tests := []struct {
		name   string
		addr   net.Addr
		want   string
		wantOK bool
	}{
		{name: "IPv4 in net's 16-byte form", addr: &net.TCPAddr{IP: net.ParseIP("10.1.2.3"), Port: 2575}, want: "10.1.2.3", wantOK: true},
		{name: "IPv4 in 4-byte form", addr: &net.TCPAddr{IP: net.IPv4(10, 1, 2, 3).To4(), Port: 2575}, want: "10.1.2.3", wantOK: true},
		{name: "IPv4-mapped IPv6 from a dual-stack listener", addr: &net.TCPAddr{IP: net.ParseIP("::ffff:10.1.2.3"), Port: 2575}, want: "10.1.2.3", wantOK: true},
		{name: "IPv6", addr: &net.TCPAddr{IP: net.ParseIP("2001:db8::7"), Port: 2575}, want: "2001:db8::7", wantOK: true},
		{name: "IPv6 link-local with a zone", addr: &net.TCPAddr{IP: net.ParseIP("fe80::1"), Port: 2575, Zone: "eth0"}, want: "fe80::1", wantOK: true},
		{name: "another net.Addr holding an IP and port", addr: &net.UDPAddr{IP: net.ParseIP("192.0.2.9"), Port: 1}, want: "192.0.2.9", wantOK: true},
		{name: "Unix socket", addr: &net.UnixAddr{Name: "/run/mllp.sock", Net: "unix"}, wantOK: false},
		{name: "nil", addr: nil, wantOK: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := remoteIP(tc.addr)
			if ok != tc.wantOK || (ok && got.String() != tc.want) {
				t.Errorf("remoteIP(%v) = %v, %v; want %s, %v", tc.addr, got, ok, tc.want, tc.wantOK)
			}
		})
	}
}

func TestAllowListAdmits(t *testing.T) {
	tests := []struct {
		name   string
		nets   string // comma-separated
		remote string // "" for a remote address that is not IP
		want   bool
	}{
		{name: "empty list admits IPv4", nets: "", remote: "192.0.2.1", want: true},
		{name: "empty list admits IPv6", nets: "", remote: "2001:db8::1", want: true},
		{name: "empty list admits a non-IP address", nets: "", remote: "", want: true},
		{name: "IPv4 inside", nets: "10.0.0.0/8", remote: "10.200.3.4", want: true},
		{name: "IPv4 outside", nets: "10.0.0.0/8", remote: "11.0.0.1", want: false},
		{name: "IPv4 loopback outside 10/8", nets: "10.0.0.0/8", remote: "127.0.0.1", want: false},
		{name: "IPv4 single host", nets: "192.0.2.7/32", remote: "192.0.2.7", want: true},
		{name: "IPv4 next to a single host", nets: "192.0.2.7/32", remote: "192.0.2.8", want: false},
		{name: "second of several networks", nets: "10.0.0.0/8,192.168.10.0/24", remote: "192.168.10.99", want: true},
		{name: "host bits in the prefix are ignored", nets: "10.1.2.3/8", remote: "10.9.9.9", want: true},
		{name: "IPv6 inside", nets: "2001:db8::/32", remote: "2001:db8:1::5", want: true},
		{name: "IPv6 outside", nets: "2001:db8::/32", remote: "2001:db9::5", want: false},
		{name: "IPv6 loopback", nets: "::1/128", remote: "::1", want: true},
		{name: "IPv4-mapped remote matches an IPv4 prefix", nets: "10.0.0.0/8", remote: "::ffff:10.1.2.3", want: true},
		{name: "IPv4-mapped remote outside an IPv4 prefix", nets: "10.0.0.0/8", remote: "::ffff:11.1.2.3", want: false},
		{name: "IPv4-mapped prefix matches an IPv4 remote", nets: "::ffff:10.0.0.0/104", remote: "10.1.2.3", want: true},
		{name: "IPv4-mapped prefix excludes another IPv4 remote", nets: "::ffff:10.0.0.0/104", remote: "11.1.2.3", want: false},
		{name: "IPv4 any does not admit IPv6", nets: "0.0.0.0/0", remote: "2001:db8::1", want: false},
		{name: "IPv6 any does not admit IPv4", nets: "::/0", remote: "10.1.2.3", want: false},
		{name: "both anys admit both", nets: "0.0.0.0/0,::/0", remote: "10.1.2.3", want: true},
		{name: "non-IP address against a list", nets: "0.0.0.0/0,::/0", remote: "", want: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := newAllowList(prefixes(t, tc.nets))
			var addr net.Addr = &net.UnixAddr{Name: "/run/mllp.sock", Net: "unix"}
			if tc.remote != "" {
				addr = &net.TCPAddr{IP: net.ParseIP(tc.remote), Port: 40000}
			}
			ip, isIP := remoteIP(addr)
			if got := l.admits(ip, isIP); got != tc.want {
				t.Errorf("allow-list %q admits %v = %v, want %v", tc.nets, addr, got, tc.want)
			}
		})
	}
}

// TestServerAllowedNets: a connection from outside AllowedNets is closed
// at once, before anything is read, counted, and logged at warn with its
// address; one from inside is served.
func TestServerAllowedNets(t *testing.T) {
	tests := []struct {
		name  string
		nets  string
		serve bool
	}{
		{name: "10.0.0.0/8 excludes 127.0.0.1", nets: "10.0.0.0/8", serve: false},
		{name: "IPv6 loopback only excludes 127.0.0.1", nets: "::1/128", serve: false},
		{name: "127.0.0.0/8 admits 127.0.0.1", nets: "127.0.0.0/8", serve: true},
		{name: "IPv4-mapped 127.0.0.1/128 admits 127.0.0.1", nets: "10.0.0.0/8,::ffff:127.0.0.1/128", serve: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var logs syncBuffer
			var handled atomic.Int64
			s := &Server{
				Handler: HandlerFunc(func(ctx context.Context, ci ConnInfo, f []byte) ([]byte, error) {
					handled.Add(1)
					return echo(ctx, ci, f)
				}),
				AllowedNets: prefixes(t, tc.nets),
				Logger:      slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn})),
			}
			addr := startServer(t, s)
			c := dial(t, addr)
			write(t, c, frame("MSH|"))
			if tc.serve {
				if got := readFrame(t, NewReader(c, 0), c); got != "ACK:MSH|" {
					t.Errorf("response %q, want ACK:MSH|", got)
				}
				if st := s.Stats(); st.Denied != 0 || st.Accepted != 1 {
					t.Errorf("Stats Denied, Accepted = %d, %d; want 0, 1", st.Denied, st.Accepted)
				}
				return
			}
			expectClosed(t, c)
			st := s.Stats()
			if st.Denied != 1 || st.Accepted != 0 || st.FramesRead != 0 || st.Discarded != 0 || handled.Load() != 0 {
				t.Errorf("Stats Denied, Accepted, FramesRead, Discarded = %d, %d, %d, %d, handler calls %d; want 1, 0, 0, 0, 0",
					st.Denied, st.Accepted, st.FramesRead, st.Discarded, handled.Load())
			}
			// The warning is written just after the close.
			waitFor(t, "a warning naming the remote address "+c.LocalAddr().String(), func() bool {
				log := logs.String()
				return strings.Contains(log, `"level":"WARN"`) && strings.Contains(log, "address not allowed") && strings.Contains(log, c.LocalAddr().String())
			})
			t.Logf("refused and logged: %s", strings.TrimSpace(logs.String()))
		})
	}
}

// TestServerMaxConnsPerIP: connections from one address beyond
// MaxConnsPerIP are closed at once and counted; those within are served,
// and a slot freed is reused.
func TestServerMaxConnsPerIP(t *testing.T) {
	for _, limit := range []int{1, 3} {
		t.Run(fmt.Sprintf("limit %d", limit), func(t *testing.T) {
			s := &Server{Handler: echo, MaxConnsPerIP: limit}
			addr := startServer(t, s)
			held := make([]*Client, limit)
			for i := range held {
				held[i] = dialClient(t, addr)
				if got := send(t, held[i], "a"); got != "ACK:a" {
					t.Fatalf("connection %d: %q", i+1, got)
				}
			}
			extra := dial(t, addr)
			write(t, extra, frame("b"))
			expectClosed(t, extra)
			if st := s.Stats(); st.PerIPRefused != 1 || st.Accepted != uint64(limit) || st.Refused != 0 {
				t.Errorf("Stats PerIPRefused, Accepted, Refused = %d, %d, %d; want 1, %d, 0", st.PerIPRefused, st.Accepted, st.Refused, limit)
			}
			if got := send(t, held[0], "c"); got != "ACK:c" {
				t.Errorf("held connection after the refusal: %q", got)
			}
			held[0].Close()
			waitFor(t, "a free slot", func() bool { return s.Stats().Open == int64(limit-1) })
			last := dialClient(t, addr)
			if got := send(t, last, "d"); got != "ACK:d" {
				t.Errorf("connection in the freed slot: %q", got)
			}
			for _, c := range append(held[1:], last) {
				c.Close()
			}
			waitFor(t, "every connection to close", func() bool { return s.Stats().Open == 0 })
			s.mu.Lock()
			remembered := len(s.peers.m)
			s.mu.Unlock()
			if remembered != 0 {
				t.Errorf("%d addresses remembered after their connections closed, want 0", remembered)
			}
		})
	}
}

// TestServerRateLimit: frames over a sender's rate are delayed, never
// refused; every frame is answered in order; the limit is shared by an
// address's connections, including one connection per message.
func TestServerRateLimit(t *testing.T) {
	tests := []struct {
		name        string
		rate        float64
		burst       int
		frames      int
		perMessage  bool // a new connection for each frame
		pipelined   bool // all frames written before reading answers
		minElapsed  time.Duration
		maxElapsed  time.Duration
		wantLimited uint64
	}{
		{name: "one connection, one frame at a time", rate: 20, burst: 1, frames: 6,
			minElapsed: 250 * time.Millisecond, maxElapsed: 3 * time.Second, wantLimited: 5},
		{name: "one connection, pipelined", rate: 20, burst: 1, frames: 6, pipelined: true,
			minElapsed: 250 * time.Millisecond, maxElapsed: 3 * time.Second, wantLimited: 5},
		{name: "a connection per message", rate: 20, burst: 2, frames: 6, perMessage: true,
			minElapsed: 200 * time.Millisecond, maxElapsed: 3 * time.Second, wantLimited: 4},
		{name: "within the burst", rate: 1, burst: 5, frames: 5,
			maxElapsed: 900 * time.Millisecond, wantLimited: 0},
		{name: "burst defaults to a second's worth", rate: 1.5, burst: 0, frames: 2,
			maxElapsed: 500 * time.Millisecond, wantLimited: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &Server{Handler: echo, RateLimit: tc.rate, RateBurst: tc.burst}
			addr := startServer(t, s)
			start := time.Now()
			switch {
			case tc.pipelined:
				c := dial(t, addr)
				var burst strings.Builder
				for i := range tc.frames {
					burst.WriteString(frame(fmt.Sprint(i)))
				}
				write(t, c, burst.String())
				r := NewReader(c, 0)
				for i := range tc.frames {
					if got, want := readFrame(t, r, c), fmt.Sprintf("ACK:%d", i); got != want {
						t.Errorf("answer %d = %q, want %q", i, got, want)
					}
				}
			case tc.perMessage:
				for i := range tc.frames {
					c := dialClient(t, addr)
					if got, want := send(t, c, fmt.Sprint(i)), fmt.Sprintf("ACK:%d", i); got != want {
						t.Errorf("answer %d = %q, want %q", i, got, want)
					}
					c.Close()
				}
			default:
				c := dialClient(t, addr)
				for i := range tc.frames {
					if got, want := send(t, c, fmt.Sprint(i)), fmt.Sprintf("ACK:%d", i); got != want {
						t.Errorf("answer %d = %q, want %q", i, got, want)
					}
				}
			}
			took := time.Since(start)
			if took < tc.minElapsed || took > tc.maxElapsed {
				t.Errorf("%d frames took %v, want %v to %v", tc.frames, took, tc.minElapsed, tc.maxElapsed)
			}
			// The last response may be read a moment before it is counted.
			waitFor(t, "every response to be counted", func() bool { return s.Stats().ResponsesWritten == uint64(tc.frames) })
			st := s.Stats()
			if st.RateLimited != tc.wantLimited || st.ResponsesWritten != uint64(tc.frames) || st.RateLimitClosed != 0 {
				t.Errorf("Stats RateLimited, ResponsesWritten, RateLimitClosed = %d, %d, %d; want %d, %d, 0",
					st.RateLimited, st.ResponsesWritten, st.RateLimitClosed, tc.wantLimited, tc.frames)
			}
			if tc.wantLimited > 0 && st.RateLimitWait <= 0 {
				t.Errorf("Stats.RateLimitWait = %v, want the time waited", st.RateLimitWait)
			}
			t.Logf("%d frames at %v/s, burst %d: %v; %d delayed, %v waited", tc.frames, tc.rate, tc.burst, took.Round(time.Millisecond), st.RateLimited, st.RateLimitWait.Round(time.Millisecond))
		})
	}
}

// TestServerRateLimitMaxWait: a frame that would wait longer than
// RateLimitMaxWait closes its connection unanswered and never reaches the
// handler; the sender's resend, later, is answered.
func TestServerRateLimitMaxWait(t *testing.T) {
	var handled atomic.Int64
	s := &Server{
		Handler: HandlerFunc(func(ctx context.Context, ci ConnInfo, f []byte) ([]byte, error) {
			handled.Add(1)
			return echo(ctx, ci, f)
		}),
		RateLimit: 2, RateBurst: 1, RateLimitMaxWait: 100 * time.Millisecond,
	}
	addr := startServer(t, s)
	c := dial(t, addr)
	write(t, c, frame("first")+frame("second"))
	if got := readFrame(t, NewReader(c, 0), c); got != "ACK:first" {
		t.Fatalf("first answer %q", got)
	}
	expectClosed(t, c)
	if st := s.Stats(); st.RateLimitClosed != 1 || handled.Load() != 1 || st.FramesRead != 1 {
		t.Errorf("Stats RateLimitClosed, FramesRead = %d, %d, handler calls %d; want 1, 1, 1", st.RateLimitClosed, st.FramesRead, handled.Load())
	}
	// The sender resends "second" until it is answered, as a real one
	// would after the connection dropped.
	var resp string
	var tries int
	deadline := time.Now().Add(testWait)
	for resp == "" && time.Now().Before(deadline) {
		tries++
		ctx, cancel := context.WithTimeout(context.Background(), testWait)
		c, err := Dial(ctx, addr)
		if err == nil {
			b, _ := c.Send(ctx, []byte("second"))
			resp = string(b)
			c.Close()
		}
		cancel()
		if resp == "" {
			time.Sleep(200 * time.Millisecond)
		}
	}
	if resp != "ACK:second" {
		t.Fatalf("resend answered %q after %d tries, want ACK:second", resp, tries)
	}
	t.Logf("resend answered after %d tries; %d connections closed by the wait bound", tries, s.Stats().RateLimitClosed)
}

// TestServerRateLimitShutdown: a frame waiting for the rate limit does not
// hold up Shutdown; it is dropped unanswered, for its sender to resend.
func TestServerRateLimitShutdown(t *testing.T) {
	var handled atomic.Int64
	s := &Server{
		Handler: HandlerFunc(func(ctx context.Context, ci ConnInfo, f []byte) ([]byte, error) {
			handled.Add(1)
			return echo(ctx, ci, f)
		}),
		RateLimit: 0.2, RateBurst: 1, // the second frame waits 5 s
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	c := dial(t, ln.Addr().String())
	write(t, c, frame("first")+frame("second"))
	if got := readFrame(t, NewReader(c, 0), c); got != "ACK:first" {
		t.Fatalf("first answer %q", got)
	}
	waitFor(t, "the second frame to wait", func() bool { return s.Stats().RateLimited == 1 })

	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("Shutdown took %v with a frame waiting for the rate limit", took)
	}
	<-served
	expectClosed(t, c)
	if handled.Load() != 1 {
		t.Errorf("handler calls = %d, want 1: the waiting frame must not be handled", handled.Load())
	}
}

// TestPeerTable: an address is forgotten once nothing about it matters:
// at once without a rate limit, once its limiter is full again with one,
// never while it has a connection.
func TestPeerTable(t *testing.T) {
	t0 := time.Now()
	addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}) }
	tests := []struct {
		name    string
		cfg     config
		later   time.Duration // when the new addresses come
		wantLen int           // table size at the end
	}{
		{name: "per-IP connection limit only", cfg: config{maxConnsPerIP: 2}, wantLen: 1 + 100},
		{name: "rate limit, limiters not yet full", cfg: config{rateLimit: 10, rateBurst: 1}, later: 0, wantLen: 1 + 100 + 100},
		{name: "rate limit, limiters full again", cfg: config{rateLimit: 10, rateBurst: 1}, later: time.Second, wantLen: 1 + 100},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tbl := newPeerTable()
			held := tbl.get(addr(0), tc.cfg, t0)
			held.conns++
			// 100 senders that each sent a message and went away.
			for i := 1; i <= 100; i++ {
				p := tbl.get(addr(i), tc.cfg, t0)
				p.conns++
				if p.limiter != nil {
					p.limiter.ReserveN(t0, 1)
				}
				tbl.release(addr(i), p)
			}
			// 100 new ones, still connected.
			for i := 101; i <= 200; i++ {
				p := tbl.get(addr(i), tc.cfg, t0.Add(tc.later))
				p.conns++
			}
			if len(tbl.m) != tc.wantLen {
				t.Errorf("table holds %d addresses, want %d", len(tbl.m), tc.wantLen)
			}
			if tbl.m[addr(0)] != held {
				t.Error("an address with an open connection was forgotten")
			}
			t.Logf("table holds %d addresses", len(tbl.m))
		})
	}
}

// An IPv6 sender is limited by its /64, within which a host picks its
// addresses freely; IPv4 (mapped or not) by its address.
func TestPeerKey(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		same bool
	}{
		{"2001:db8:1:2::10", "2001:db8:1:2:aaaa:bbbb:cccc:dddd", true},
		{"2001:db8:1:2::10", "2001:db8:1:3::10", false},
		{"192.0.2.1", "192.0.2.1", true},
		{"192.0.2.1", "192.0.2.2", false},
	} {
		a, b := netip.MustParseAddr(tt.a), netip.MustParseAddr(tt.b)
		if got := peerKey(a) == peerKey(b); got != tt.same {
			t.Errorf("%s and %s share a limit: %v, want %v", tt.a, tt.b, got, tt.same)
		}
	}
	var pt peerTable = newPeerTable()
	cfg := config{}
	p1 := pt.get(netip.MustParseAddr("2001:db8::1"), cfg, time.Now())
	p1.conns++
	p2 := pt.get(netip.MustParseAddr("2001:db8::2"), cfg, time.Now())
	if p1 != p2 {
		t.Fatal("two addresses of one /64 got different peers")
	}
	p2.conns++
	pt.release(netip.MustParseAddr("2001:db8::1"), p1)
	pt.release(netip.MustParseAddr("2001:db8::2"), p2)
	if len(pt.m) != 0 {
		t.Errorf("peer table holds %d entries after every connection closed, want 0", len(pt.m))
	}
}
