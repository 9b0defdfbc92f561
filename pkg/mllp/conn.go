package mllp

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"time"
)

// maxPanicStack bounds the stack trace logged when a handler panics.
const maxPanicStack = 64 << 10

// conn is one accepted connection and the goroutine that serves it.
type conn struct {
	srv *Server
	// rwc is the accepted connection; it is what Shutdown and close
	// close. nc is the stream frames travel on: rwc itself, or a TLS
	// connection over it once the handshake is done.
	rwc  net.Conn
	nc   net.Conn
	info ConnInfo
	cfg  config
	log  *slog.Logger

	// ip is the remote address and peer its entry in the Server's peer
	// table; peer is nil when no per-sender limit applies.
	ip   netip.Addr
	peer *peer

	// active is true while the handler runs and its response is written.
	// Guarded by srv.mu; Shutdown closes at once only connections that are
	// not active.
	active bool
}

// serve reads frames, calls the handler and writes responses until the
// peer closes, a limit is exceeded, or the Server closes the connection.
// It exits when a read or write on rwc fails, which closing rwc causes.
func (c *conn) serve() {
	s := c.srv
	defer s.wg.Done()
	defer c.close()
	c.log.Debug("mllp: connection opened")
	c.setKeepAlive()
	if c.cfg.tls != nil && !c.handshake() {
		return
	}

	r := NewReader(c.nc, c.cfg.maxFrameSize)
	var wbuf []byte // reused response buffer
	for {
		setDeadline(c.nc.SetReadDeadline, c.cfg.idleTimeout)
		before := r.Discarded()
		err := r.skipToStart(c.cfg.maxDiscard)
		if d := r.Discarded() - before; d > 0 {
			s.stats.discarded.Add(uint64(d))
		}
		if err != nil {
			c.readFailed(err, true)
			return
		}

		// The start byte is in: the rest of the frame (beyond what the
		// Reader has buffered) waits in the kernel for the sender's rate
		// limit, and TCP holds back what the sender sends next.
		if !c.waitForRate() {
			return
		}

		setDeadline(c.nc.SetReadDeadline, c.cfg.frameTimeout)
		frame, err := r.readPayload()
		if err != nil {
			c.readFailed(err, false)
			return
		}
		s.stats.framesRead.Add(1)
		s.stats.bytesRead.Add(uint64(len(frame)))

		if !c.setActive(true) {
			// Shutdown began while the frame arrived. It was never
			// acknowledged, so its sender will send it again.
			c.log.Debug("mllp: frame dropped at shutdown", "len", len(frame))
			return
		}
		n := len(frame)
		resp, err := c.handle(frame)
		if err != nil {
			if errors.Is(err, errHandlerPanic) {
				return // counted and logged by handle
			}
			s.stats.handlerErrors.Add(1)
			c.log.Warn("mllp: handler failed; closing without a response", "len", n, "err", err)
			return
		}
		if len(resp) > 0 {
			if wbuf, err = appendFrame(wbuf[:0], resp); err != nil {
				s.stats.handlerErrors.Add(1)
				c.log.Error("mllp: handler response cannot be framed; closing", "len", n, "err", err)
				return
			}
			setDeadline(c.nc.SetWriteDeadline, c.cfg.writeTimeout)
			if _, err := c.nc.Write(wbuf); err != nil {
				if !s.forced.Load() {
					s.stats.writeErrors.Add(1)
					c.log.Warn("mllp: writing response failed", "len", n, "response_len", len(resp), "err", err)
				}
				return
			}
			s.stats.responsesWritten.Add(1)
			s.stats.bytesWritten.Add(uint64(len(resp)))
			if cap(wbuf) > maxRetainedBuffer {
				wbuf = nil
			}
		}
		if !c.setActive(false) {
			return // Shutdown began during the exchange.
		}
	}
}

// handle calls the Handler, turning a panic into errHandlerPanic.
func (c *conn) handle(frame []byte) (resp []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			c.srv.stats.handlerPanics.Add(1)
			stack := make([]byte, maxPanicStack)
			stack = stack[:runtime.Stack(stack, false)]
			// The panic value comes from code, not from the peer; the
			// frame itself is not logged.
			c.log.Error("mllp: handler panicked; closing without a response",
				"len", len(frame), "panic", p, "stack", string(stack))
			resp, err = nil, errHandlerPanic
		}
	}()
	return c.srv.Handler.ServeMLLP(c.srv.lifetime, c.info, frame)
}

// setActive records whether the connection is inside an exchange. It
// returns false if the Server is closing, in which case the connection
// must end: before an exchange, so as not to start one; after it, because
// Shutdown left the connection open only to finish that exchange.
func (c *conn) setActive(active bool) bool {
	c.srv.mu.Lock()
	defer c.srv.mu.Unlock()
	if c.srv.closing {
		return false
	}
	c.active = active
	return true
}

// readFailed counts and logs the reason a read ended the connection.
// waiting tells whether the read was waiting for the start of a frame.
func (c *conn) readFailed(err error, waiting bool) {
	st := &c.srv.stats
	switch {
	case c.srv.shuttingDown.Load():
		// Most likely closed by Shutdown or Close; not the peer's doing.
		c.log.Debug("mllp: connection closed at shutdown", "err", err)
	case err == io.EOF:
		c.log.Debug("mllp: connection closed by peer")
	case errors.Is(err, ErrFrameTooLarge):
		st.framesTooLarge.Add(1)
		c.log.Warn("mllp: frame too large; closing", "max_frame_size", c.cfg.maxFrameSize)
	case errors.Is(err, errTooMuchGarbage):
		st.garbageClosed.Add(1)
		c.log.Warn("mllp: too many bytes outside a frame; closing", "max_discard", c.cfg.maxDiscard)
	case errors.Is(err, os.ErrDeadlineExceeded) && waiting:
		st.idleTimeouts.Add(1)
		c.log.Info("mllp: idle timeout; closing", "idle_timeout", c.cfg.idleTimeout)
	case errors.Is(err, os.ErrDeadlineExceeded):
		st.frameTimeouts.Add(1)
		c.log.Warn("mllp: frame not completed in time; closing", "frame_timeout", c.cfg.frameTimeout)
	default:
		st.readErrors.Add(1)
		c.log.Warn("mllp: read failed; closing", "err", err)
	}
}

// close closes the connection and forgets it.
func (c *conn) close() {
	c.rwc.Close()
	c.srv.mu.Lock()
	delete(c.srv.conns, c)
	if c.peer != nil {
		c.srv.peers.release(c.ip, c.peer)
	}
	c.srv.mu.Unlock()
	c.srv.stats.open.Add(-1)
	c.log.Debug("mllp: connection closed")
}

// setKeepAlive applies the KeepAlive setting to TCP connections.
func (c *conn) setKeepAlive() {
	tc, ok := c.rwc.(*net.TCPConn)
	if !ok {
		return
	}
	var err error
	if c.cfg.keepAlive < 0 {
		err = tc.SetKeepAlive(false)
	} else {
		err = tc.SetKeepAliveConfig(net.KeepAliveConfig{
			Enable:   true,
			Idle:     c.cfg.keepAlive,
			Interval: c.cfg.keepAlive,
		})
	}
	if err != nil {
		c.log.Debug("mllp: setting TCP keep-alive failed", "err", err)
	}
}

// setDeadline sets a deadline d from now with set, or none if d is
// negative (the timeout is disabled).
func setDeadline(set func(time.Time) error, d time.Duration) {
	var t time.Time
	if d > 0 {
		t = time.Now().Add(d)
	}
	// An error means the connection is closed; the next read or write
	// reports it.
	_ = set(t)
}
