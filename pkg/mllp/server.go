package mllp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
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
	// Open is the number of connections being served now.
	Open int64
	// AcceptErrors counts temporary accept errors, each followed by a pause.
	AcceptErrors uint64

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
}

// counters holds the live values behind Stats.
type counters struct {
	accepted, refused, acceptErrors             atomic.Uint64
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

	// Logger receives connection events and errors. It never receives
	// payload bytes: only connection IDs, addresses, lengths and errors.
	// Nil discards them.
	Logger *slog.Logger

	mu        sync.Mutex
	inited    bool
	closing   bool // Shutdown or Close has begun
	listeners map[*net.Listener]struct{}
	conns     map[*conn]struct{}
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
	}
	if c.maxFrameSize <= 0 {
		c.maxFrameSize = DefaultMaxFrameSize
	}
	if c.maxDiscard < 0 {
		c.maxDiscard = -1 // skipToStart: no limit
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
		"max_discard", cfg.maxDiscard)

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

// startConn serves rwc in a new goroutine, or closes it if MaxConnections
// are open. It returns false, having closed rwc, if the Server is closing.
func (s *Server) startConn(rwc net.Conn, cfg config, log *slog.Logger) bool {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		rwc.Close()
		return false
	}
	if cfg.maxConnections > 0 && len(s.conns) >= cfg.maxConnections {
		s.mu.Unlock()
		s.stats.refused.Add(1) // before Close, so a peer that sees the close sees the count
		rwc.Close()
		log.Warn("mllp: connection refused: too many connections",
			"remote", rwc.RemoteAddr().String(), "max_connections", cfg.maxConnections)
		return true
	}
	c := &conn{
		srv: s,
		rwc: rwc,
		info: ConnInfo{
			ID:         s.nextID.Add(1),
			RemoteAddr: rwc.RemoteAddr(),
			LocalAddr:  rwc.LocalAddr(),
		},
		cfg: cfg,
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
		Accepted:         c.accepted.Load(),
		Refused:          c.refused.Load(),
		Open:             c.open.Load(),
		AcceptErrors:     c.acceptErrors.Load(),
		FramesRead:       c.framesRead.Load(),
		BytesRead:        c.bytesRead.Load(),
		Discarded:        c.discarded.Load(),
		FramesTooLarge:   c.framesTooLarge.Load(),
		IdleTimeouts:     c.idleTimeouts.Load(),
		FrameTimeouts:    c.frameTimeouts.Load(),
		GarbageClosed:    c.garbageClosed.Load(),
		ReadErrors:       c.readErrors.Load(),
		HandlerErrors:    c.handlerErrors.Load(),
		HandlerPanics:    c.handlerPanics.Load(),
		ResponsesWritten: c.responsesWritten.Load(),
		BytesWritten:     c.bytesWritten.Load(),
		WriteErrors:      c.writeErrors.Load(),
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
