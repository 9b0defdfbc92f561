package mllp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Limits and defaults. A Server field left at zero takes the default of
// the same name. Every limit protects the server from a peer that is
// broken or hostile; going over one closes the connection and is counted
// in Stats under its own name.
const (
	// DefaultMaxFrameSize is the largest payload accepted, in bytes. It is
	// generous because some feeds embed whole documents (PDF reports
	// base64-encoded in OBX-5). A larger frame is counted in
	// Stats.FramesTooLarge and its connection is closed without reading
	// further.
	DefaultMaxFrameSize = 16 << 20

	// DefaultIdleTimeout is how long a connection may go without sending
	// the start of a frame, counted from its opening or from the end of
	// the previous exchange, before it is closed (Stats.IdleTimeouts).
	// Bytes outside a frame do not reset it. Senders that keep a
	// connection open around the clock reconnect when they next have a
	// message.
	DefaultIdleTimeout = 10 * time.Minute

	// DefaultFrameTimeout is how long a frame may take to arrive in full
	// after its start byte before the connection is closed
	// (Stats.FrameTimeouts). It defeats peers that stall mid-frame,
	// deliberately (slowloris) or not: 60 seconds carries 16 MiB over a
	// link of a few megabits per second.
	DefaultFrameTimeout = 60 * time.Second

	// DefaultWriteTimeout bounds the write of one response. A peer that
	// does not read its acknowledgements is closed when it expires
	// (Stats.WriteErrors).
	DefaultWriteTimeout = 30 * time.Second

	// DefaultMaxConnections is the number of connections served at once.
	// A connection accepted beyond it is closed at once (Stats.Refused).
	// An interface engine talks to a bounded set of known systems, so this
	// is far above normal use and bounds memory: each connection may hold
	// up to MaxFrameSize of payload.
	DefaultMaxConnections = 512

	// DefaultKeepAlive is the TCP keep-alive period set on accepted
	// connections, so that peers which vanish without closing (powered
	// off, NAT entry dropped) are noticed even while idle.
	DefaultKeepAlive = 30 * time.Second

	// DefaultMaxDiscard is how many consecutive bytes outside a frame a
	// connection may send before it is closed (Stats.GarbageClosed). The
	// count restarts at every frame, so senders that put a line feed or
	// two between frames are never closed for it, however long they stay
	// connected; a peer speaking another protocol (HTTP, TLS), or sending
	// HL7 without MLLP framing, is closed after at most this many bytes.
	DefaultMaxDiscard = 64 << 10

	// DefaultHandshakeTimeout bounds a TLS handshake, counted from accept.
	// A peer that has not completed it by then is closed
	// (Stats.TLSHandshakeErrors): it holds a connection slot and a
	// goroutine without being able to send a frame.
	DefaultHandshakeTimeout = 10 * time.Second

	// DefaultRateLimitMaxWait is the longest a frame waits for its
	// sender's rate limit (RateLimit) before its connection is closed
	// unanswered (Stats.RateLimitClosed). Waits this long arise only when
	// several connections from one address queue for the same limit; the
	// sender's own ACK timeout, typically 10 to 60 seconds, is then what
	// it sees, and it resends.
	DefaultRateLimitMaxWait = 30 * time.Second
)

// Accept errors that are temporary (for example EMFILE, out of file
// descriptors) are retried after a pause that starts at
// acceptBackoffMin and doubles up to acceptBackoffMax, as net/http does,
// so that the accept loop neither spins nor gives up. They are counted in
// Stats.AcceptErrors.
const (
	acceptBackoffMin = 5 * time.Millisecond
	acceptBackoffMax = time.Second
)

// ErrServerClosed is returned by Serve and ListenAndServe after Shutdown
// or Close.
var ErrServerClosed = errors.New("mllp: server closed")

// errHandlerPanic is what a handler that panicked is taken to have returned.
var errHandlerPanic = errors.New("mllp: handler panicked")

// ConnInfo describes the connection a frame arrived on.
type ConnInfo struct {
	// ID numbers the connections of a Server from 1, in accept order.
	ID uint64
	// RemoteAddr is the peer's address.
	RemoteAddr net.Addr
	// LocalAddr is the address the connection was accepted on.
	LocalAddr net.Addr
	// TLS is the state of the connection's completed TLS handshake,
	// including the client's verified certificate chain when client
	// certificates are required; nil for plain MLLP.
	TLS *tls.ConnectionState
}

// A Handler handles one frame and returns the payload to send back.
//
// ServeMLLP is called for the frames of one connection one at a time, in
// the order they arrived; calls for different connections run
// concurrently. The frame slice belongs to the handler.
//
// A response of length zero writes nothing (for an inbound ACK, or an
// enhanced-mode message that asks for no accept acknowledgement). A
// non-nil error closes the connection without writing anything: the
// sender then resends the message, so a handler that could not store a
// message returns an error rather than acknowledging it.
//
// ctx is cancelled only when the Server is closed by Close or by a
// Shutdown whose context expires; a graceful Shutdown lets a running
// handler finish and its response be written.
type Handler interface {
	ServeMLLP(ctx context.Context, c ConnInfo, frame []byte) (response []byte, err error)
}

// HandlerFunc adapts a function to the Handler interface.
type HandlerFunc func(ctx context.Context, c ConnInfo, frame []byte) ([]byte, error)

// ServeMLLP calls f(ctx, c, frame).
func (f HandlerFunc) ServeMLLP(ctx context.Context, c ConnInfo, frame []byte) ([]byte, error) {
	return f(ctx, c, frame)
}

// Stats is a snapshot of a Server's counters. Every field except Open
// counts since the Server was created and only grows, so each can be
// exported as a Prometheus counter; Open is a gauge.
//
// A connection closed for going over a limit is counted once, under the
// limit it went over. Closes caused by Shutdown or Close are not counted
// as errors.
type Stats struct {
	// Accepted counts connections taken into service.
	Accepted uint64
	// Refused counts connections closed right after accept because
	// MaxConnections were already open. They are not in Accepted.
	Refused uint64
	// Denied counts connections closed right after accept, before
	// anything was read, because the remote address is not in
	// AllowedNets. They are not in Accepted.
	Denied uint64
	// PerIPRefused counts connections closed right after accept because
	// MaxConnsPerIP were already open from the same address. They are not
	// in Accepted.
	PerIPRefused uint64
	// Open is the number of connections being served now.
	Open int64
	// AcceptErrors counts temporary accept errors, each followed by a pause.
	AcceptErrors uint64
	// TLSHandshakeErrors counts connections closed because their TLS
	// handshake failed (no or an untrusted client certificate, a version
	// below TLS 1.2, a peer speaking plain MLLP, a peer that closed) or
	// did not complete within HandshakeTimeout.
	TLSHandshakeErrors uint64

	// FramesRead counts complete frames read.
	FramesRead uint64
	// BytesRead counts payload bytes of the frames in FramesRead; framing
	// bytes and Discarded bytes are not included.
	BytesRead uint64
	// Discarded counts bytes received outside a frame and dropped.
	Discarded uint64

	// FramesTooLarge counts connections closed for sending a payload over
	// MaxFrameSize.
	FramesTooLarge uint64
	// IdleTimeouts counts connections closed for sending no frame within
	// IdleTimeout.
	IdleTimeouts uint64
	// FrameTimeouts counts connections closed because a started frame did
	// not complete within FrameTimeout.
	FrameTimeouts uint64
	// GarbageClosed counts connections closed for sending more than
	// MaxDiscard consecutive bytes outside a frame.
	GarbageClosed uint64
	// ReadErrors counts connections lost to other read failures: the peer
	// closing or resetting the connection in the middle of a frame, or a
	// network error. A peer closing between frames is normal and not
	// counted.
	ReadErrors uint64

	// HandlerErrors counts frames whose handler returned an error, or a
	// response containing the end-of-frame sequence; each closed its
	// connection without a response.
	HandlerErrors uint64
	// HandlerPanics counts frames whose handler panicked; each closed its
	// connection without a response. They are not in HandlerErrors.
	HandlerPanics uint64
	// ResponsesWritten counts response frames written.
	ResponsesWritten uint64
	// BytesWritten counts payload bytes of the responses in
	// ResponsesWritten, without framing bytes.
	BytesWritten uint64
	// WriteErrors counts responses that could not be written in full
	// within WriteTimeout; each closed its connection.
	WriteErrors uint64

	// RateLimited counts frames that waited for their sender's rate limit
	// before being read; RateLimitWait is the time they waited in all.
	RateLimited   uint64
	RateLimitWait time.Duration
	// RateLimitClosed counts connections closed unanswered because a
	// frame would have waited longer than RateLimitMaxWait.
	RateLimitClosed uint64
}

// counters holds the live values behind Stats.
type counters struct {
	accepted, refused, acceptErrors             atomic.Uint64
	denied, perIPRefused, tlsHandshakeErrors    atomic.Uint64
	rateLimited, rateLimitClosed                atomic.Uint64
	rateLimitWait                               atomic.Int64 // nanoseconds
	open                                        atomic.Int64
	framesRead, bytesRead, discarded            atomic.Uint64
	framesTooLarge, idleTimeouts, frameTimeouts atomic.Uint64
	garbageClosed, readErrors                   atomic.Uint64
	handlerErrors, handlerPanics                atomic.Uint64
	responsesWritten, bytesWritten, writeErrors atomic.Uint64
}

// A Server accepts MLLP connections and hands each frame to its Handler.
//
// Each connection is served by one goroutine that reads a frame, calls the
// Handler, writes the response and only then reads the next frame, so the
// frames of a connection are handled strictly in order even when the peer
// sends several without waiting.
//
// The zero value, with Handler set, is ready to use. Fields must not be
// changed once Serve has been called. A negative duration disables that
// timeout (or, for KeepAlive, TCP keep-alive); a negative MaxConnections
// or MaxDiscard removes that limit. MaxFrameSize cannot be unlimited.
//
// The limits per sender (AllowedNets, MaxConnsPerIP, RateLimit) are off
// by default, as legacy senders expect: zero means no limit there.
type Server struct {
	// Handler is called for every frame. It must be set.
	Handler Handler

	// MaxFrameSize is the largest payload accepted, in bytes; zero or
	// less means DefaultMaxFrameSize.
	MaxFrameSize int
	// IdleTimeout: zero means DefaultIdleTimeout.
	IdleTimeout time.Duration
	// FrameTimeout: zero means DefaultFrameTimeout.
	FrameTimeout time.Duration
	// WriteTimeout: zero means DefaultWriteTimeout.
	WriteTimeout time.Duration
	// KeepAlive is the TCP keep-alive period; zero means DefaultKeepAlive.
	KeepAlive time.Duration
	// MaxConnections: zero means DefaultMaxConnections.
	MaxConnections int
	// MaxDiscard: zero means DefaultMaxDiscard.
	MaxDiscard int

	// TLSConfig, when set, makes the Server speak MLLP over TLS: each
	// connection must complete a TLS handshake within HandshakeTimeout
	// before any frame is read. Versions below TLS 1.2 are refused
	// whatever it says, including in a Config its GetConfigForClient
	// returns. Certificates are picked at each handshake, so they can be
	// replaced while the Server runs: see TLSReloader. Nil serves plain
	// MLLP.
	TLSConfig *tls.Config
	// HandshakeTimeout: zero means DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration

	// AllowedNets lists the networks connections are accepted from. A
	// connection from any other address is closed at once, before
	// anything is read from it (Stats.Denied); so is one whose remote
	// address is not an IP address. IPv4-mapped IPv6 addresses
	// (::ffff:10.1.2.3, as a dual-stack listener reports IPv4 peers)
	// match IPv4 prefixes. Empty accepts every address.
	AllowedNets []netip.Prefix
	// MaxConnsPerIP is how many connections one remote IP address may
	// have open at once; one more is closed at once
	// (Stats.PerIPRefused). Zero or less: no limit. An IPv6 sender counts
	// by its /64, as for RateLimit: a host may use any address of it.
	MaxConnsPerIP int
	// RateLimit is how many frames per second one remote IP address (IPv6: /64) may
	// send, across all its connections. Zero or less: no limit. A frame
	// over the rate is not refused: once its start byte has arrived, the
	// Server waits for the limit before reading the rest of it, so the
	// sender sees only a slower acknowledgement and TCP holds back what
	// it sends next. If the wait would exceed RateLimitMaxWait the
	// connection is closed unanswered instead (Stats.RateLimitClosed):
	// nothing of that frame was read or acknowledged, so the sender
	// resends it. The limit of an address is kept for as long as it
	// matters after its last connection closes, so a sender that
	// connects once per message is limited too.
	RateLimit float64
	// RateBurst is how many frames an address may send at once before
	// RateLimit applies; zero or less means one second's worth of
	// RateLimit (at least 1).
	RateBurst int
	// RateLimitMaxWait: zero means DefaultRateLimitMaxWait; negative
	// means a frame waits as long as the limit requires.
	RateLimitMaxWait time.Duration

	// Logger receives connection events and errors. It never receives
	// payload bytes: only connection IDs, addresses, lengths and errors.
	// Nil discards them.
	Logger *slog.Logger

	refusals refusalLog // warnings for refused connections, rate-limited

	mu        sync.Mutex
	inited    bool
	closing   bool // Shutdown or Close has begun
	listeners map[*net.Listener]struct{}
	conns     map[*conn]struct{}
	peers     peerTable
	// lifetime is the parent of every handler context. It is the server's
	// own lifetime, not a request's, so it lives in the struct (as
	// net/http's base context does): Close and a forced Shutdown cancel it.
	lifetime     context.Context
	cancel       context.CancelFunc
	done         chan struct{} // closed when closing begins; wakes accept pauses
	drained      chan struct{} // closed when every goroutine has exited after closing
	startDrainer sync.Once
	// wg counts Serve loops and connection goroutines. Add is called only
	// with mu held and closing false, so no Add can race the final Wait.
	wg sync.WaitGroup

	shuttingDown atomic.Bool // closing, readable without mu
	forced       atomic.Bool // Close, or Shutdown's context expired
	nextID       atomic.Uint64
	stats        counters
}

// config is a Server's settings with defaults applied.
type config struct {
	maxFrameSize   int
	idleTimeout    time.Duration
	frameTimeout   time.Duration
	writeTimeout   time.Duration
	keepAlive      time.Duration
	maxConnections int
	maxDiscard     int64

	tls              *tls.Config // nil: plain MLLP
	handshakeTimeout time.Duration
	allow            *allowList // nil: every address
	maxConnsPerIP    int        // 0: no limit
	rateLimit        float64    // 0: no limit
	rateBurst        int
	rateMaxWait      time.Duration
}

func (s *Server) config() config {
	orDuration := func(v, def time.Duration) time.Duration {
		if v == 0 {
			return def
		}
		return v
	}
	orInt := func(v, def int) int {
		if v == 0 {
			return def
		}
		return v
	}
	c := config{
		maxFrameSize:   s.MaxFrameSize,
		idleTimeout:    orDuration(s.IdleTimeout, DefaultIdleTimeout),
		frameTimeout:   orDuration(s.FrameTimeout, DefaultFrameTimeout),
		writeTimeout:   orDuration(s.WriteTimeout, DefaultWriteTimeout),
		keepAlive:      orDuration(s.KeepAlive, DefaultKeepAlive),
		maxConnections: orInt(s.MaxConnections, DefaultMaxConnections),
		maxDiscard:     int64(orInt(s.MaxDiscard, DefaultMaxDiscard)),

		tls:              atLeastTLS12(s.TLSConfig),
		handshakeTimeout: orDuration(s.HandshakeTimeout, DefaultHandshakeTimeout),
		allow:            newAllowList(s.AllowedNets),
		maxConnsPerIP:    max(s.MaxConnsPerIP, 0),
		rateLimit:        max(s.RateLimit, 0),
		rateMaxWait:      orDuration(s.RateLimitMaxWait, DefaultRateLimitMaxWait),
	}
	if c.maxFrameSize <= 0 {
		c.maxFrameSize = DefaultMaxFrameSize
	}
	if c.maxDiscard < 0 {
		c.maxDiscard = -1 // skipToStart: no limit
	}
	if math.IsNaN(c.rateLimit) || math.IsInf(c.rateLimit, 0) {
		c.rateLimit = 0
	}
	if c.rateLimit > 0 {
		c.rateBurst = s.RateBurst
		if c.rateBurst <= 0 {
			c.rateBurst = max(int(math.Ceil(c.rateLimit)), 1)
		}
	}
	return c
}

func (s *Server) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

// initLocked sets up the Server's state on first use. s.mu must be held.
func (s *Server) initLocked() {
	if s.inited {
		return
	}
	s.inited = true
	s.listeners = make(map[*net.Listener]struct{})
	s.conns = make(map[*conn]struct{})
	s.peers = newPeerTable()
	s.lifetime, s.cancel = context.WithCancel(context.Background())
	s.done = make(chan struct{})
	s.drained = make(chan struct{})
}

// ListenAndServe listens on the TCP address addr and calls Serve.
func (s *Server) ListenAndServe(addr string) error {
	if s.shuttingDown.Load() {
		return ErrServerClosed
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("mllp: listen: %w", err)
	}
	return s.Serve(ln)
}

// Serve accepts connections on ln and serves each in its own goroutine. It
// blocks until ln fails or the Server is shut down, and then closes ln.
// After Shutdown or Close it returns ErrServerClosed. Serve may be called
// for several listeners at once.
func (s *Server) Serve(ln net.Listener) error {
	ln = &onceCloseListener{Listener: ln}
	defer ln.Close()
	if s.Handler == nil {
		return errors.New("mllp: Server.Handler is nil")
	}
	cfg := s.config()
	log := s.logger()

	s.mu.Lock()
	s.initLocked()
	if s.closing {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.listeners[&ln] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done() // runs last, after ln is closed and forgotten
	defer func() {
		s.mu.Lock()
		delete(s.listeners, &ln)
		s.mu.Unlock()
	}()

	log.Info("mllp: serving", "addr", ln.Addr().String(),
		"max_frame_size", cfg.maxFrameSize, "idle_timeout", cfg.idleTimeout,
		"frame_timeout", cfg.frameTimeout, "write_timeout", cfg.writeTimeout,
		"keep_alive", cfg.keepAlive, "max_connections", cfg.maxConnections,
		"max_discard", cfg.maxDiscard, "tls", cfg.tls != nil,
		"handshake_timeout", cfg.handshakeTimeout, "allowed_nets", cfg.allow.String(),
		"max_conns_per_ip", cfg.maxConnsPerIP, "rate_limit", cfg.rateLimit,
		"rate_burst", cfg.rateBurst, "rate_limit_max_wait", cfg.rateMaxWait)

	var pause time.Duration
	for {
		rwc, err := ln.Accept()
		if err != nil {
			if s.shuttingDown.Load() {
				return ErrServerClosed
			}
			if !isTemporary(err) {
				return fmt.Errorf("mllp: accept: %w", err)
			}
			pause = min(max(2*pause, acceptBackoffMin), acceptBackoffMax)
			s.stats.acceptErrors.Add(1)
			log.Warn("mllp: accept failed; retrying", "err", err, "pause", pause)
			t := time.NewTimer(pause)
			select {
			case <-t.C:
			case <-s.done:
				t.Stop()
				return ErrServerClosed
			}
			continue
		}
		pause = 0
		if !s.startConn(rwc, cfg, log) {
			return ErrServerClosed
		}
	}
}

// isTemporary reports whether an accept error is worth retrying. The
// Temporary method is deprecated because it is ill-defined in general, but
// for accept it still identifies the errors (EMFILE, ENFILE, ECONNABORTED,
// ...) that net/http retries too.
func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// startConn serves rwc in a new goroutine, or closes it at once if its
// address is not allowed, MaxConnections are open, or MaxConnsPerIP are
// open from its address. It returns false, having closed rwc, if the
// Server is closing.
func (s *Server) startConn(rwc net.Conn, cfg config, log *slog.Logger) bool {
	ip, isIP := remoteIP(rwc.RemoteAddr())
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		rwc.Close()
		return false
	}
	// Each refusal is counted before Close, so a peer that sees the close
	// sees the count.
	if !cfg.allow.admits(ip, isIP) {
		s.mu.Unlock()
		s.stats.denied.Add(1)
		rwc.Close()
		s.refusals.warn(log, "mllp: connection refused: address not allowed", "remote", rwc.RemoteAddr().String())
		return true
	}
	if cfg.maxConnections > 0 && len(s.conns) >= cfg.maxConnections {
		s.mu.Unlock()
		s.stats.refused.Add(1)
		rwc.Close()
		s.refusals.warn(log, "mllp: connection refused: too many connections",
			"remote", rwc.RemoteAddr().String(), "max_connections", cfg.maxConnections)
		return true
	}
	var p *peer
	if isIP && (cfg.maxConnsPerIP > 0 || cfg.rateLimit > 0) {
		p = s.peers.get(ip, cfg, time.Now())
		if cfg.maxConnsPerIP > 0 && p.conns >= cfg.maxConnsPerIP {
			s.mu.Unlock()
			s.stats.perIPRefused.Add(1)
			rwc.Close()
			s.refusals.warn(log, "mllp: connection refused: too many connections from this address",
				"remote", rwc.RemoteAddr().String(), "max_conns_per_ip", cfg.maxConnsPerIP)
			return true
		}
		p.conns++
	}
	c := &conn{
		srv: s,
		rwc: rwc,
		nc:  rwc,
		info: ConnInfo{
			ID:         s.nextID.Add(1),
			RemoteAddr: rwc.RemoteAddr(),
			LocalAddr:  rwc.LocalAddr(),
		},
		cfg:  cfg,
		ip:   ip,
		peer: p,
	}
	c.log = log.With("conn", c.info.ID, "remote", c.info.RemoteAddr.String())
	s.conns[c] = struct{}{}
	s.stats.accepted.Add(1)
	s.stats.open.Add(1)
	s.wg.Add(1)
	s.mu.Unlock()
	go c.serve()
	return true
}

// Shutdown shuts the Server down gracefully. It closes the listeners, at
// once closes every connection that is not inside its handler (a frame
// being received was never acknowledged, so its sender will send it
// again), lets each handler that is running finish and write its
// response, and then waits for every connection goroutine and Serve loop
// to exit.
//
// If ctx ends first, Shutdown closes every connection, cancels the
// handlers' context, still waits for the goroutines to exit, and returns
// ctx.Err(); a handler that ignores its context therefore delays Shutdown
// until it returns. Shutdown may be called more than once and
// concurrently; each call waits in the same way.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.beginClosingLocked()
	for c := range s.conns {
		if !c.active {
			c.rwc.Close()
		}
	}
	s.mu.Unlock()

	s.startDrainer.Do(s.drain)
	select {
	case <-s.drained:
		return nil
	default:
	}
	select {
	case <-s.drained:
		return nil
	case <-ctx.Done():
		s.forceClose()
		<-s.drained
		return ctx.Err()
	}
}

// Close closes the listeners and every connection at once and cancels the
// handlers' context. It does not wait for the connection goroutines to
// exit; call Shutdown afterwards to wait. It returns the error from
// closing a listener, if any.
func (s *Server) Close() error {
	s.mu.Lock()
	err := s.beginClosingLocked()
	s.mu.Unlock()
	s.forceClose()
	s.startDrainer.Do(s.drain)
	return err
}

// beginClosingLocked marks the Server closing and closes its listeners,
// the first time only. s.mu must be held.
func (s *Server) beginClosingLocked() error {
	s.initLocked()
	if s.closing {
		return nil
	}
	s.closing = true
	s.shuttingDown.Store(true)
	close(s.done)
	var errs []error
	for ln := range s.listeners {
		if err := (*ln).Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// forceClose cancels the handlers' context and closes every connection.
func (s *Server) forceClose() {
	s.forced.Store(true)
	s.cancel()
	s.mu.Lock()
	for c := range s.conns {
		c.rwc.Close()
	}
	s.mu.Unlock()
}

// drain waits for every goroutine to exit, then releases the lifetime
// context and reports that the Server has drained. It runs once, in its
// own goroutine, after closing has begun, so no wg.Add can follow.
func (s *Server) drain() {
	go func() {
		s.wg.Wait()
		s.cancel()
		close(s.drained)
	}()
}

// Stats returns a snapshot of the Server's counters.
func (s *Server) Stats() Stats {
	c := &s.stats
	return Stats{
		Accepted:           c.accepted.Load(),
		Refused:            c.refused.Load(),
		Denied:             c.denied.Load(),
		PerIPRefused:       c.perIPRefused.Load(),
		Open:               c.open.Load(),
		AcceptErrors:       c.acceptErrors.Load(),
		TLSHandshakeErrors: c.tlsHandshakeErrors.Load(),
		FramesRead:         c.framesRead.Load(),
		BytesRead:          c.bytesRead.Load(),
		Discarded:          c.discarded.Load(),
		FramesTooLarge:     c.framesTooLarge.Load(),
		IdleTimeouts:       c.idleTimeouts.Load(),
		FrameTimeouts:      c.frameTimeouts.Load(),
		GarbageClosed:      c.garbageClosed.Load(),
		ReadErrors:         c.readErrors.Load(),
		HandlerErrors:      c.handlerErrors.Load(),
		HandlerPanics:      c.handlerPanics.Load(),
		ResponsesWritten:   c.responsesWritten.Load(),
		BytesWritten:       c.bytesWritten.Load(),
		WriteErrors:        c.writeErrors.Load(),
		RateLimited:        c.rateLimited.Load(),
		RateLimitWait:      time.Duration(c.rateLimitWait.Load()),
		RateLimitClosed:    c.rateLimitClosed.Load(),
	}
}

// onceCloseListener lets Serve and Shutdown both close a listener, the
// second close being a no-op rather than an error.
type onceCloseListener struct {
	net.Listener
	once sync.Once
	err  error
}

func (l *onceCloseListener) Close() error {
	l.once.Do(func() { l.err = l.Listener.Close() })
	return l.err
}
