package mllp

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"
)

// quiet answers nothing to "quiet" and echoes anything else.
var quiet = HandlerFunc(func(ctx context.Context, ci ConnInfo, frame []byte) ([]byte, error) {
	if string(frame) == "quiet" {
		return nil, nil
	}
	return echo(ctx, ci, frame)
})

func TestClientSendEnds(t *testing.T) {
	tests := []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
		want error
	}{
		{
			name: "deadline",
			ctx: func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), 50*time.Millisecond)
			},
			want: context.DeadlineExceeded,
		},
		{
			name: "cancelled while waiting",
			ctx: func() (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(context.Background())
				time.AfterFunc(50*time.Millisecond, cancel)
				return ctx, cancel
			},
			want: context.Canceled,
		},
		{
			name: "cancelled before",
			ctx: func() (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				return ctx, cancel
			},
			want: context.Canceled,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := dialClient(t, startServer(t, &Server{Handler: quiet}))
			ctx, cancel := tc.ctx()
			defer cancel()
			_, err := c.Send(ctx, []byte("quiet"))
			if !errors.Is(err, tc.want) {
				t.Errorf("Send = %v, want an error wrapping %v", err, tc.want)
			}
		})
	}
}

// TestClientUnusableAfterError checks that a late response is never taken
// as the answer to the next frame.
func TestClientUnusableAfterError(t *testing.T) {
	c := dialClient(t, startServer(t, &Server{Handler: quiet}))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, first := c.Send(ctx, []byte("quiet"))
	if first == nil {
		t.Fatal("Send with no response succeeded")
	}
	if _, err := c.Send(context.Background(), []byte("loud")); err != first {
		t.Errorf("Send after an error = %v, want the first error %v", err, first)
	}
}

func TestClientInvalidPayload(t *testing.T) {
	c := dialClient(t, startServer(t, &Server{Handler: echo}))
	if _, err := c.Send(context.Background(), []byte("a\x1c\x0db")); !errors.Is(err, ErrInvalidPayload) {
		t.Errorf("Send = %v, want ErrInvalidPayload", err)
	}
	if got := send(t, c, "ok"); got != "ACK:ok" {
		t.Errorf("Send after a refused payload = %q, want ACK:ok", got)
	}
}

func TestClientServerCloses(t *testing.T) {
	s := &Server{Handler: HandlerFunc(func(context.Context, ConnInfo, []byte) ([]byte, error) {
		return nil, errors.New("cannot store")
	})}
	c := dialClient(t, startServer(t, s))
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	if _, err := c.Send(ctx, []byte("x")); err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Send = %v, want a connection-closed error", err)
	}
}

func TestDialFails(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	if c, err := Dial(ctx, addr); err == nil {
		c.Close()
		t.Error("Dial to a closed port succeeded")
	}
}
