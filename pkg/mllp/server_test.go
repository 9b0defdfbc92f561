package mllp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testWait bounds every wait for something that should happen promptly.
const testWait = 5 * time.Second

// echo answers every frame with "ACK:" and the frame.
var echo = HandlerFunc(func(_ context.Context, _ ConnInfo, frame []byte) ([]byte, error) {
	return append([]byte("ACK:"), frame...), nil
})

// startServer serves s on a loopback port and returns its address. At
// cleanup it shuts s down and checks that Serve returned ErrServerClosed.
func startServer(t testing.TB, s *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testWait)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown at cleanup: %v", err)
		}
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return ln.Addr().String()
}

// dial opens a raw connection, closed at cleanup.
func dial(t testing.TB, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, testWait)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// dialClient opens a Client, closed at cleanup.
func dialClient(t testing.TB, addr string) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	c, err := Dial(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// send makes one exchange and fails the test if it does not succeed.
func send(t testing.TB, c *Client, payload string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	resp, err := c.Send(ctx, []byte(payload))
	if err != nil {
		t.Fatalf("Send(%q): %v", payload, err)
	}
	return string(resp)
}

// write writes raw bytes to c.
func write(t testing.TB, c net.Conn, s string) {
	t.Helper()
	if _, err := c.Write([]byte(s)); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// readFrame reads one frame from c.
func readFrame(t testing.TB, r *Reader, c net.Conn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(testWait))
	p, err := r.ReadFrame()
	if err != nil {
		t.Fatalf("reading a response: %v", err)
	}
	return string(p)
}

// expectClosed waits for the server to close c and fails if it sends
// anything first. It returns how long that took.
func expectClosed(t testing.TB, c net.Conn) time.Duration {
	t.Helper()
	start := time.Now()
	c.SetReadDeadline(start.Add(testWait))
	got, err := io.ReadAll(c)
	if len(got) > 0 {
		t.Errorf("server sent %q before closing, want nothing", got)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after %v", testWait)
	}
	// err is nil (EOF) or a reset: both mean closed.
	return time.Since(start)
}

// waitFor polls cond until it holds, failing the test after testWait.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent use, for capturing logs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func TestServerEcho(t *testing.T) {
	s := &Server{Handler: echo}
	c := dialClient(t, startServer(t, s))
	msgs := []string{"MSH|^~\\&|A|B\rPID|1||123\r", "", "Zoë\xa0\x0b\x1cend"}
	var wantBytes, wantWritten uint64
	for _, m := range msgs {
		if got, want := send(t, c, m), "ACK:"+m; got != want {
			t.Errorf("Send(%q) = %q, want %q", m, got, want)
		}
		wantBytes += uint64(len(m))
		wantWritten += uint64(len("ACK:" + m))
	}
	// The server counts a response after writing it, so the client can
	// read it first.
	waitFor(t, "responses to be counted", func() bool { return s.Stats().ResponsesWritten == 3 })
	st := s.Stats()
	got := []uint64{st.Accepted, uint64(st.Open), st.FramesRead, st.BytesRead, st.ResponsesWritten, st.BytesWritten}
	want := []uint64{1, 1, 3, wantBytes, 3, wantWritten}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Stats Accepted, Open, FramesRead, BytesRead, ResponsesWritten, BytesWritten = %v, want %v", got, want)
	}
}

func TestServerConnInfo(t *testing.T) {
	infos := make(chan ConnInfo, 2)
	s := &Server{Handler: HandlerFunc(func(_ context.Context, ci ConnInfo, frame []byte) ([]byte, error) {
		infos <- ci
		return frame, nil
	})}
	addr := startServer(t, s)
	for i := range 2 {
		c := dial(t, addr)
		write(t, c, frame("x"))
		readFrame(t, NewReader(c, 0), c)
		ci := <-infos
		if ci.ID != uint64(i+1) {
			t.Errorf("connection %d: ID = %d, want %d", i+1, ci.ID, i+1)
		}
		if ci.RemoteAddr.String() != c.LocalAddr().String() || ci.LocalAddr.String() != addr {
			t.Errorf("connection %d: RemoteAddr, LocalAddr = %v, %v; want %v, %v",
				i+1, ci.RemoteAddr, ci.LocalAddr, c.LocalAddr(), addr)
		}
	}
}

func TestServerConcurrentConnections(t *testing.T) {
	const conns, perConn = 32, 20
	s := &Server{Handler: echo}
	addr := startServer(t, s)
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for i := range conns {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), testWait)
			defer cancel()
			c, err := Dial(ctx, addr)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			for j := range perConn {
				m := fmt.Sprintf("conn %d message %d", i, j)
				got, err := c.Send(ctx, []byte(m))
				if err != nil || string(got) != "ACK:"+m {
					errs <- fmt.Errorf("Send(%q) = %q, %v", m, got, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	waitFor(t, "responses to be counted", func() bool { return s.Stats().ResponsesWritten == conns*perConn })
	st := s.Stats()
	if st.Accepted != conns || st.FramesRead != conns*perConn || st.ResponsesWritten != conns*perConn {
		t.Errorf("Stats Accepted, FramesRead, ResponsesWritten = %d, %d, %d; want %d, %d, %d",
			st.Accepted, st.FramesRead, st.ResponsesWritten, conns, conns*perConn, conns*perConn)
	}
}

// TestServerPipelined sends many frames in one write and checks that they
// are handled one at a time and answered in order.
func TestServerPipelined(t *testing.T) {
	const n = 100
	var inFlight, maxInFlight atomic.Int32
	s := &Server{Handler: HandlerFunc(func(ctx context.Context, ci ConnInfo, frame []byte) ([]byte, error) {
		cur := inFlight.Add(1)
		defer inFlight.Add(-1)
		if cur > maxInFlight.Load() {
			maxInFlight.Store(cur)
		}
		time.Sleep(100 * time.Microsecond) // give an overlap the chance to show
		return echo(ctx, ci, frame)
	})}
	c := dial(t, startServer(t, s))
	var batch strings.Builder
	for i := range n {
		batch.WriteString(frame(fmt.Sprintf("msg %03d", i)))
	}
	write(t, c, batch.String())
	r := NewReader(c, 0)
	for i := range n {
		if got, want := readFrame(t, r, c), fmt.Sprintf("ACK:msg %03d", i); got != want {
			t.Fatalf("response %d = %q, want %q", i, got, want)
		}
	}
	if got := maxInFlight.Load(); got != 1 {
		t.Errorf("at most %d frames of one connection were handled at once, want 1", got)
	}
}

func TestServerEmptyResponseWritesNothing(t *testing.T) {
	s := &Server{Handler: HandlerFunc(func(ctx context.Context, ci ConnInfo, frame []byte) ([]byte, error) {
		switch string(frame) {
		case "nil":
			return nil, nil
		case "empty":
			return []byte{}, nil
		}
		return echo(ctx, ci, frame)
	})}
	c := dial(t, startServer(t, s))
	write(t, c, frame("nil")+frame("empty")+frame("loud"))
	if got, want := readFrame(t, NewReader(c, 0), c), "ACK:loud"; got != want {
		t.Errorf("first response = %q, want %q", got, want)
	}
	waitFor(t, "the response to be counted", func() bool { return s.Stats().ResponsesWritten >= 1 })
	st := s.Stats()
	if st.FramesRead != 3 || st.ResponsesWritten != 1 {
		t.Errorf("Stats FramesRead, ResponsesWritten = %d, %d; want 3, 1", st.FramesRead, st.ResponsesWritten)
	}
}

func TestServerHandlerFailure(t *testing.T) {
	tests := []struct {
		name    string
		handler HandlerFunc
		counter func(Stats) uint64
	}{
		{
			name: "error",
			handler: func(context.Context, ConnInfo, []byte) ([]byte, error) {
				return []byte("would be a false ACK"), errors.New("store unavailable")
			},
			counter: func(st Stats) uint64 { return st.HandlerErrors },
		},
		{
			name: "panic",
			handler: func(context.Context, ConnInfo, []byte) ([]byte, error) {
				panic("handler bug")
			},
			counter: func(st Stats) uint64 { return st.HandlerPanics },
		},
		{
			name: "unframeable response",
			handler: func(context.Context, ConnInfo, []byte) ([]byte, error) {
				return []byte("a\x1c\x0db"), nil
			},
			counter: func(st Stats) uint64 { return st.HandlerErrors },
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var logs syncBuffer
			s := &Server{
				Handler: HandlerFunc(func(ctx context.Context, ci ConnInfo, frame []byte) ([]byte, error) {
					if string(frame) == "ok" {
						return echo(ctx, ci, frame)
					}
					return tc.handler(ctx, ci, frame)
				}),
				Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
			}
			addr := startServer(t, s)
			c := dial(t, addr)
			write(t, c, frame("PID|SECRET-PATIENT")+frame("ok"))
			expectClosed(t, c)
			waitFor(t, "the connection to be forgotten", func() bool { return s.Stats().Open == 0 })
			if got := tc.counter(s.Stats()); got != 1 {
				t.Errorf("counter = %d, want 1", got)
			}
			if st := s.Stats(); st.ResponsesWritten != 0 {
				t.Errorf("ResponsesWritten = %d, want 0", st.ResponsesWritten)
			}
			// The server still serves other connections.
			if got := send(t, dialClient(t, addr), "ok"); got != "ACK:ok" {
				t.Errorf("next connection got %q, want ACK:ok", got)
			}
			if strings.Contains(logs.String(), "SECRET") {
				t.Errorf("logs contain payload bytes:\n%s", logs.String())
			}
			if !strings.Contains(logs.String(), "len=18") {
				t.Errorf("logs do not give the frame length (len=18):\n%s", logs.String())
			}
		})
	}
}

// TestServerLimits sends input that breaks a limit and checks that the
// connection is closed, with nothing written, and counted.
func TestServerLimits(t *testing.T) {
	const timeout = 150 * time.Millisecond
	tests := []struct {
		name       string
		srv        *Server
		send       string
		closeWrite bool          // half-close after sending
		minWait    time.Duration // the close must not come sooner
		counter    string
	}{
		{
			name:    "frame too large",
			srv:     &Server{MaxFrameSize: 10},
			send:    frame("0123456789a") + frame("next"),
			counter: "FramesTooLarge",
		},
		{
			name:    "frame too large, no end in sight",
			srv:     &Server{MaxFrameSize: 1 << 10},
			send:    "\x0b" + strings.Repeat("a", 64<<10),
			counter: "FramesTooLarge",
		},
		{
			name:    "idle",
			srv:     &Server{IdleTimeout: timeout},
			minWait: timeout,
			counter: "IdleTimeouts",
		},
		{
			name:    "idle with bytes outside a frame",
			srv:     &Server{IdleTimeout: timeout},
			send:    "\r\n",
			minWait: timeout,
			counter: "IdleTimeouts",
		},
		{
			name:    "stall mid-frame",
			srv:     &Server{FrameTimeout: timeout},
			send:    "\x0bMSH|^~\\&|",
			minWait: timeout,
			counter: "FrameTimeouts",
		},
		{
			name:    "garbage",
			srv:     &Server{MaxDiscard: 16},
			send:    strings.Repeat("g", 17) + frame("late"),
			counter: "GarbageClosed",
		},
		{
			name:    "TLS client hello",
			srv:     &Server{MaxDiscard: 64},
			send:    "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + strings.Repeat("\x5a", 100),
			counter: "GarbageClosed",
		},
		{
			name:       "peer closes mid-frame",
			srv:        &Server{},
			send:       "\x0bMSH|",
			closeWrite: true,
			counter:    "ReadErrors",
		},
	}
	counters := map[string]func(Stats) uint64{
		"FramesTooLarge": func(st Stats) uint64 { return st.FramesTooLarge },
		"IdleTimeouts":   func(st Stats) uint64 { return st.IdleTimeouts },
		"FrameTimeouts":  func(st Stats) uint64 { return st.FrameTimeouts },
		"GarbageClosed":  func(st Stats) uint64 { return st.GarbageClosed },
		"ReadErrors":     func(st Stats) uint64 { return st.ReadErrors },
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.srv
			s.Handler = echo
			c := dial(t, startServer(t, s))
			if tc.send != "" {
				write(t, c, tc.send)
			}
			if tc.closeWrite {
				c.(*net.TCPConn).CloseWrite()
			}
			if took := expectClosed(t, c); took < tc.minWait-10*time.Millisecond {
				t.Errorf("closed after %v, want at least %v", took, tc.minWait)
			}
			waitFor(t, "the connection to be forgotten", func() bool { return s.Stats().Open == 0 })
			st := s.Stats()
			for name, get := range counters {
				want := uint64(0)
				if name == tc.counter {
					want = 1
				}
				if got := get(st); got != want {
					t.Errorf("Stats.%s = %d, want %d", name, got, want)
				}
			}
			if st.FramesRead != 0 || st.ResponsesWritten != 0 {
				t.Errorf("Stats FramesRead, ResponsesWritten = %d, %d; want 0, 0", st.FramesRead, st.ResponsesWritten)
			}
		})
	}
}

// TestServerWithinLimits checks inputs right at each limit.
func TestServerWithinLimits(t *testing.T) {
	tests := []struct {
		name string
		srv  *Server
		send string
		want string
	}{
		{name: "frame of exactly MaxFrameSize", srv: &Server{MaxFrameSize: 10}, send: frame("0123456789"), want: "ACK:0123456789"},
		{name: "MaxDiscard bytes before a frame", srv: &Server{MaxDiscard: 16}, send: strings.Repeat("g", 16) + frame("a"), want: "ACK:a"},
		{name: "no discard limit", srv: &Server{MaxDiscard: -1}, send: strings.Repeat("g", 200<<10) + frame("a"), want: "ACK:a"},
		{name: "line feeds between many frames", srv: &Server{MaxDiscard: 2}, send: strings.Repeat(frame("x")+"\r\n", 50) + frame("a"), want: "ACK:a"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.srv
			s.Handler = HandlerFunc(func(ctx context.Context, ci ConnInfo, frame []byte) ([]byte, error) {
				if string(frame) == "x" {
					return nil, nil
				}
				return echo(ctx, ci, frame)
			})
			c := dial(t, startServer(t, s))
			write(t, c, tc.send)
			if got := readFrame(t, NewReader(c, 0), c); got != tc.want {
				t.Errorf("response = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestServerIdleTimeoutRestarts checks that the idle timeout counts from
// the last exchange, not from the opening of the connection.
func TestServerIdleTimeoutRestarts(t *testing.T) {
	const idle = 300 * time.Millisecond
	s := &Server{Handler: echo, IdleTimeout: idle}
	c := dialClient(t, startServer(t, s))
	for i := range 4 { // 4 × 100 ms, longer than the idle timeout in total
		time.Sleep(idle / 3)
		if got := send(t, c, "x"); got != "ACK:x" {
			t.Fatalf("Send #%d = %q, want ACK:x", i+1, got)
		}
	}
	if st := s.Stats(); st.IdleTimeouts != 0 {
		t.Errorf("IdleTimeouts = %d, want 0", st.IdleTimeouts)
	}
}

func TestServerWriteTimeout(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 32<<20) // more than loopback buffers hold
	s := &Server{
		Handler:      HandlerFunc(func(context.Context, ConnInfo, []byte) ([]byte, error) { return big, nil }),
		WriteTimeout: 100 * time.Millisecond,
	}
	c := dial(t, startServer(t, s))
	c.(*net.TCPConn).SetReadBuffer(4 << 10)
	write(t, c, frame("send me a lot"))
	// Never read; the server must give up on its own.
	waitFor(t, "a write error", func() bool { return s.Stats().WriteErrors == 1 })
	waitFor(t, "the connection to be forgotten", func() bool { return s.Stats().Open == 0 })
	if st := s.Stats(); st.ResponsesWritten != 0 {
		t.Errorf("ResponsesWritten = %d, want 0", st.ResponsesWritten)
	}
}

func TestServerMaxConnections(t *testing.T) {
	s := &Server{Handler: echo, MaxConnections: 2}
	addr := startServer(t, s)
	c1, c2 := dialClient(t, addr), dialClient(t, addr)
	send(t, c1, "1")
	send(t, c2, "2") // both are now being served

	extra := dial(t, addr)
	write(t, extra, frame("3"))
	expectClosed(t, extra)
	if st := s.Stats(); st.Refused != 1 || st.Accepted != 2 || st.Open != 2 {
		t.Errorf("Stats Refused, Accepted, Open = %d, %d, %d; want 1, 2, 2", st.Refused, st.Accepted, st.Open)
	}

	c1.Close()
	waitFor(t, "a connection to close", func() bool { return s.Stats().Open == 1 })
	if got := send(t, dialClient(t, addr), "4"); got != "ACK:4" {
		t.Errorf("Send after a slot freed = %q, want ACK:4", got)
	}
}

// blockingHandler answers "slow" only when released, and echoes anything
// else at once.
type blockingHandler struct {
	entered chan struct{} // receives when "slow" starts
	release chan struct{} // closed to let "slow" finish
	ctxErr  chan error    // the handler context's error when "slow" ends
}

func newBlockingHandler() *blockingHandler {
	return &blockingHandler{
		entered: make(chan struct{}, 1),
		release: make(chan struct{}),
		ctxErr:  make(chan error, 1),
	}
}

func (h *blockingHandler) ServeMLLP(ctx context.Context, ci ConnInfo, frame []byte) ([]byte, error) {
	if string(frame) != "slow" {
		return echo(ctx, ci, frame)
	}
	h.entered <- struct{}{}
	select {
	case <-h.release:
		h.ctxErr <- ctx.Err()
		return []byte("ACK:slow"), nil
	case <-ctx.Done():
		h.ctxErr <- ctx.Err()
		return nil, ctx.Err()
	}
}

// exchange is the outcome of a Send made in the background.
type exchange struct {
	resp string
	err  error
}

func sendAsync(c *Client, payload string) <-chan exchange {
	done := make(chan exchange, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), testWait)
		defer cancel()
		resp, err := c.Send(ctx, []byte(payload))
		done <- exchange{string(resp), err}
	}()
	return done
}

func TestServerShutdownGraceful(t *testing.T) {
	h := newBlockingHandler()
	s := &Server{Handler: h}
	addr := startServer(t, s)

	busy := dialClient(t, addr)
	slow := sendAsync(busy, "slow")
	<-h.entered

	idle := dial(t, addr)
	write(t, idle, frame("hello"))
	readFrame(t, NewReader(idle, 0), idle)
	midFrame := dial(t, addr)
	write(t, midFrame, "\x0bMSH|partial")
	waitFor(t, "three open connections", func() bool { return s.Stats().Open == 3 })

	shutdown := make(chan error, 1)
	go func() { shutdown <- s.Shutdown(context.Background()) }()

	// Connections outside the handler close at once; the busy one stays.
	expectClosed(t, idle)
	expectClosed(t, midFrame)
	if c, err := net.DialTimeout("tcp", addr, testWait); err == nil {
		c.Close()
		t.Error("a new connection was accepted during Shutdown")
	}
	select {
	case err := <-shutdown:
		t.Fatalf("Shutdown returned %v while a handler was running", err)
	case <-time.After(50 * time.Millisecond):
	}

	close(h.release)
	if got := <-slow; got.err != nil || got.resp != "ACK:slow" {
		t.Errorf("in-flight Send = %q, %v; want ACK:slow", got.resp, got.err)
	}
	if err := <-shutdown; err != nil {
		t.Errorf("Shutdown = %v, want nil", err)
	}
	if err := <-h.ctxErr; err != nil {
		t.Errorf("handler context error during graceful shutdown = %v, want nil", err)
	}
	st := s.Stats()
	if st.Open != 0 || st.ResponsesWritten != 2 || st.ReadErrors != 0 || st.IdleTimeouts != 0 {
		t.Errorf("Stats Open, ResponsesWritten, ReadErrors, IdleTimeouts = %d, %d, %d, %d; want 0, 2, 0, 0",
			st.Open, st.ResponsesWritten, st.ReadErrors, st.IdleTimeouts)
	}
	// The busy connection is closed after its response.
	if _, err := busy.Send(context.Background(), []byte("again")); err == nil {
		t.Error("Send on the busy connection after Shutdown succeeded, want an error")
	}
}

func TestServerShutdownForced(t *testing.T) {
	tests := []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
		want error
	}{
		{
			name: "context already cancelled",
			ctx: func() (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				return ctx, cancel
			},
			want: context.Canceled,
		},
		{
			name: "deadline passes while waiting",
			ctx: func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), 100*time.Millisecond)
			},
			want: context.DeadlineExceeded,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newBlockingHandler()
			s := &Server{Handler: h}
			addr := startServer(t, s)
			c := dialClient(t, addr)
			slow := sendAsync(c, "slow")
			<-h.entered

			ctx, cancel := tc.ctx()
			defer cancel()
			if err := s.Shutdown(ctx); !errors.Is(err, tc.want) {
				t.Errorf("Shutdown = %v, want %v", err, tc.want)
			}
			// Shutdown waited for the connection goroutine to exit.
			if st := s.Stats(); st.Open != 0 {
				t.Errorf("Stats.Open after Shutdown = %d, want 0", st.Open)
			}
			if err := <-h.ctxErr; !errors.Is(err, context.Canceled) {
				t.Errorf("handler context error = %v, want context.Canceled", err)
			}
			if got := <-slow; got.err == nil {
				t.Errorf("in-flight Send = %q, want an error", got.resp)
			}
		})
	}
}

func TestServerShutdownIdempotent(t *testing.T) {
	s := &Server{Handler: echo}
	addr := startServer(t, s)
	for range 3 {
		send(t, dialClient(t, addr), "x") // leave idle connections behind
	}

	const callers = 8
	errs := make(chan error, callers)
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() { errs <- s.Shutdown(context.Background()) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent Shutdown = %v, want nil", err)
		}
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown again = %v, want nil", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close after Shutdown = %v, want nil", err)
	}
	if st := s.Stats(); st.Open != 0 {
		t.Errorf("Stats.Open = %d, want 0", st.Open)
	}

	// Serving again is refused, and the listener is closed.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(ln); !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve after Shutdown = %v, want ErrServerClosed", err)
	}
	if _, err := ln.Accept(); err == nil {
		t.Error("listener still open after Serve returned")
	}
	if err := s.ListenAndServe("127.0.0.1:0"); !errors.Is(err, ErrServerClosed) {
		t.Errorf("ListenAndServe after Shutdown = %v, want ErrServerClosed", err)
	}
}

func TestServerShutdownBeforeServe(t *testing.T) {
	s := &Server{Handler: echo}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown of an unused Server = %v, want nil", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(ln); !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve = %v, want ErrServerClosed", err)
	}
}

func TestServerClose(t *testing.T) {
	h := newBlockingHandler()
	s := &Server{Handler: h}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	c := dialClient(t, ln.Addr().String())
	slow := sendAsync(c, "slow")
	<-h.entered
	idle := dial(t, ln.Addr().String())
	waitFor(t, "two open connections", func() bool { return s.Stats().Open == 2 })

	if err := s.Close(); err != nil {
		t.Errorf("Close = %v, want nil", err)
	}
	if err := <-h.ctxErr; !errors.Is(err, context.Canceled) {
		t.Errorf("handler context error = %v, want context.Canceled", err)
	}
	if got := <-slow; got.err == nil {
		t.Errorf("in-flight Send = %q, want an error", got.resp)
	}
	expectClosed(t, idle)
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve = %v, want ErrServerClosed", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown after Close = %v, want nil", err)
	}
	st := s.Stats()
	if st.Open != 0 || st.ReadErrors != 0 || st.WriteErrors != 0 {
		t.Errorf("Stats Open, ReadErrors, WriteErrors = %d, %d, %d; want 0, 0, 0", st.Open, st.ReadErrors, st.WriteErrors)
	}
}

func TestServeNilHandler(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var s Server
	if err := s.Serve(ln); err == nil || errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve with no Handler = %v, want a configuration error", err)
	}
}

// flakyListener fails its first Accept calls with temporaryErrors, then
// with final if set, then accepts normally.
type flakyListener struct {
	net.Listener
	temporary int
	final     error
	calls     int
}

type temporaryError struct{}

func (temporaryError) Error() string   { return "accept: too many open files" }
func (temporaryError) Temporary() bool { return true }
func (temporaryError) Timeout() bool   { return false }

func (l *flakyListener) Accept() (net.Conn, error) {
	l.calls++
	if l.calls <= l.temporary {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: temporaryError{}}
	}
	if l.final != nil {
		return nil, l.final
	}
	return l.Listener.Accept()
}

func TestServerAcceptErrors(t *testing.T) {
	t.Run("temporary errors back off and recover", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		s := &Server{Handler: echo}
		served := make(chan error, 1)
		start := time.Now()
		go func() { served <- s.Serve(&flakyListener{Listener: ln, temporary: 3}) }()
		if got := send(t, dialClient(t, ln.Addr().String()), "x"); got != "ACK:x" {
			t.Errorf("Send = %q, want ACK:x", got)
		}
		// Pauses of 5, 10 and 20 ms come before the first real Accept.
		if took, want := time.Since(start), 35*time.Millisecond; took < want {
			t.Errorf("first connection served after %v, want at least %v of backoff", took, want)
		}
		if st := s.Stats(); st.AcceptErrors != 3 {
			t.Errorf("Stats.AcceptErrors = %d, want 3", st.AcceptErrors)
		}
		if err := s.Shutdown(context.Background()); err != nil {
			t.Errorf("Shutdown = %v", err)
		}
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve = %v, want ErrServerClosed", err)
		}
	})
	t.Run("shutdown interrupts a pause", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		s := &Server{Handler: echo}
		served := make(chan error, 1)
		go func() { served <- s.Serve(&flakyListener{Listener: ln, temporary: 1 << 30}) }()
		waitFor(t, "accept errors", func() bool { return s.Stats().AcceptErrors >= 8 }) // pauses now near 1 s
		start := time.Now()
		if err := s.Shutdown(context.Background()); err != nil {
			t.Errorf("Shutdown = %v", err)
		}
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve = %v, want ErrServerClosed", err)
		}
		if took := time.Since(start); took > 500*time.Millisecond {
			t.Errorf("Shutdown took %v, want it to cut the accept pause short", took)
		}
	})
	t.Run("permanent error is returned", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		boom := errors.New("listener broken")
		s := &Server{Handler: echo}
		if err := s.Serve(&flakyListener{Listener: ln, final: boom}); !errors.Is(err, boom) {
			t.Errorf("Serve = %v, want it to wrap %v", err, boom)
		}
		if err := s.Shutdown(context.Background()); err != nil {
			t.Errorf("Shutdown = %v", err)
		}
	})
}

func TestListenAndServeBadAddress(t *testing.T) {
	s := &Server{Handler: echo}
	if err := s.ListenAndServe("127.0.0.1:-1"); err == nil || errors.Is(err, ErrServerClosed) {
		t.Errorf("ListenAndServe(bad address) = %v, want a listen error", err)
	}
}

// TestServerLimitsDisabled checks that negative settings switch limits off
// rather than making them zero.
func TestServerLimitsDisabled(t *testing.T) {
	s := &Server{
		Handler:        echo,
		IdleTimeout:    -1,
		FrameTimeout:   -1,
		WriteTimeout:   -1,
		KeepAlive:      -1,
		MaxConnections: -1,
		MaxDiscard:     -1,
		MaxFrameSize:   -1, // cannot be disabled: means the default

		HandshakeTimeout: -1,
		MaxConnsPerIP:    -1, // off, like zero
		RateLimit:        -1, // off, like zero
		RateLimitMaxWait: -1,
	}
	addr := startServer(t, s)
	for i := range 3 {
		c := dial(t, addr)
		write(t, c, strings.Repeat("\n", 100<<10)+frame(strings.Repeat("x", 1<<20)))
		if got := readFrame(t, NewReader(c, 0), c); len(got) != len("ACK:")+1<<20 {
			t.Errorf("connection %d: response of %d bytes, want %d", i+1, len(got), len("ACK:")+1<<20)
		}
	}
	if got, want := s.config(), (config{
		maxFrameSize: DefaultMaxFrameSize, idleTimeout: -1, frameTimeout: -1, writeTimeout: -1,
		keepAlive: -1, maxConnections: -1, maxDiscard: -1,
		handshakeTimeout: -1, rateMaxWait: -1,
	}); got != want {
		t.Errorf("config() = %+v, want %+v", got, want)
	}
}

func TestServerDefaults(t *testing.T) {
	want := config{
		maxFrameSize:   DefaultMaxFrameSize,
		idleTimeout:    DefaultIdleTimeout,
		frameTimeout:   DefaultFrameTimeout,
		writeTimeout:   DefaultWriteTimeout,
		keepAlive:      DefaultKeepAlive,
		maxConnections: DefaultMaxConnections,
		maxDiscard:     DefaultMaxDiscard,

		handshakeTimeout: DefaultHandshakeTimeout,
		rateMaxWait:      DefaultRateLimitMaxWait,
	}
	if got := (&Server{}).config(); got != want {
		t.Errorf("config() of a zero Server = %+v, want %+v", got, want)
	}
}
