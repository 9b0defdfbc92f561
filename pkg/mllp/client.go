package mllp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"
)

// A Client sends frames over one MLLP connection and reads the response to
// each. It is meant for tests and tools: it does not reconnect, and after
// any error it is unusable, because a response that arrives late would
// otherwise be taken as the answer to the next frame. Its methods are safe
// for concurrent use; exchanges are made one at a time.
type Client struct {
	mu   sync.Mutex
	conn net.Conn
	r    *Reader
	err  error // sticky: the first failure
}

// Dial connects to the MLLP server at the TCP address addr.
func Dial(ctx context.Context, addr string) (*Client, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("mllp: dial: %w", err)
	}
	return newClient(conn), nil
}

// DialTLS connects to the MLLP server at the TCP address addr over TLS,
// with config (nil for the defaults), and completes the handshake. When
// config names no ServerName, the host in addr is verified. With TLS 1.3
// a server that refuses the client's certificate says so only after the
// client's side of the handshake is done, so that refusal is returned by
// the first Send rather than by DialTLS.
func DialTLS(ctx context.Context, addr string, config *tls.Config) (*Client, error) {
	d := tls.Dialer{Config: config}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("mllp: dial TLS: %w", err)
	}
	return newClient(conn), nil
}

func newClient(conn net.Conn) *Client {
	return &Client{conn: conn, r: NewReader(conn, DefaultMaxFrameSize)}
}

// Send writes payload as one frame and returns the payload of the next
// frame received. It gives up when ctx ends, returning an error that wraps
// ctx.Err(). A response longer than DefaultMaxFrameSize is an error.
func (c *Client) Send(ctx context.Context, payload []byte) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return nil, c.err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("mllp: send: %w", err)
	}

	deadline, _ := ctx.Deadline() // zero: none
	if err := c.conn.SetDeadline(deadline); err != nil {
		return nil, c.fail(ctx, err)
	}
	// Cancellation without a deadline interrupts the exchange by moving the
	// deadline into the past.
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		c.conn.SetDeadline(time.Unix(1, 0))
		close(fired)
	})
	defer func() {
		if !stop() {
			<-fired // it ran or is running; let it finish before the next Send
		}
	}()

	if err := WriteFrame(c.conn, payload); err != nil {
		if errors.Is(err, ErrInvalidPayload) {
			return nil, err // nothing was written; the Client is still usable
		}
		return nil, c.fail(ctx, err)
	}
	resp, err := c.r.ReadFrame()
	if err != nil {
		return nil, c.fail(ctx, err)
	}
	return resp, nil
}

// fail records err as the Client's sticky error, attributing a deadline
// error to ctx, which set the deadline.
func (c *Client) fail(ctx context.Context, err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		cause := ctx.Err()
		if cause == nil {
			// The connection's deadline, which is ctx's, passed a moment
			// before ctx noticed.
			cause = context.DeadlineExceeded
		}
		err = fmt.Errorf("%w (%w)", cause, err)
	}
	c.err = fmt.Errorf("mllp: send: %w", err)
	return c.err
}

// Close closes the connection.
func (c *Client) Close() error {
	return c.conn.Close()
}
