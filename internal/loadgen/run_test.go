package loadgen

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aortahealth/aorta/pkg/hl7"
	"github.com/aortahealth/aorta/pkg/mllp"
)

// fakeListener is an in-test MLLP server that answers each message with
// the ACK answer(header, n) returns (n counts frames from 1); a nil ACK
// closes the connection unanswered, as the listener does when it cannot
// store a message.
type fakeListener struct {
	addr string

	mu   sync.Mutex
	seen map[string]int // control IDs received
	n    atomic.Int64
}

func startFake(t *testing.T, answer func(h hl7.Header, n int64) []byte) *fakeListener {
	t.Helper()
	f := &fakeListener{seen: map[string]int{}}
	srv := &mllp.Server{Handler: mllp.HandlerFunc(func(_ context.Context, _ mllp.ConnInfo, frame []byte) ([]byte, error) {
		h, err := hl7.ParseHeader(frame)
		if err != nil {
			return nil, err
		}
		f.mu.Lock()
		f.seen[h.ControlID]++
		f.mu.Unlock()
		ack := answer(h, f.n.Add(1))
		if ack == nil {
			return nil, errors.New("fake: not stored")
		}
		return ack, nil
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	f.addr = ln.Addr().String()
	return f
}

// ack builds a real acknowledgement of h.
func ack(t *testing.T, h hl7.Header, code hl7.AckCode) []byte {
	b, err := hl7.BuildACK(h, hl7.ACK{Code: code, ControlID: "FAKE1"})
	if err != nil {
		t.Error(err)
	}
	return b
}

func TestRunCount(t *testing.T) {
	t.Parallel()
	f := startFake(t, func(h hl7.Header, n int64) []byte {
		if h.TriggerEvent == "A08" {
			return ack(t, h, hl7.AE)
		}
		return ack(t, h, hl7.AA)
	})
	g := newGenerator(t, GeneratorOptions{Seed: 1})
	res, err := Run(context.Background(), Config{Addr: f.addr, Conns: 4, Count: 300, Generator: g, KeepRecords: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent != 300 || res.Acked != 300 || res.ErrorCount() != 0 {
		t.Errorf("sent %d, acked %d, errors %v; want 300, 300, none", res.Sent, res.Acked, res.Errors)
	}
	if res.AckCodes["AA"]+res.AckCodes["AE"] != 300 || res.AckCodes["AE"] != res.Kinds[Update] || res.AckCodes["AE"] == 0 {
		t.Errorf("ACK codes %v for kinds %v: want AE for each update, AA for the rest", res.AckCodes, res.Kinds)
	}
	if res.Latency.Count != 300 || res.Latency.P50 <= 0 || res.Latency.Max < res.Latency.P99 {
		t.Errorf("latency %+v, want 300 ordered samples", res.Latency)
	}
	if res.Rate <= 0 || res.Elapsed <= 0 || res.Interrupted {
		t.Errorf("rate %v over %v, interrupted %v", res.Rate, res.Elapsed, res.Interrupted)
	}
	if len(f.seen) != 300 {
		t.Errorf("the listener saw %d distinct control IDs, want 300", len(f.seen))
	}
	if len(res.Records) != 300 {
		t.Fatalf("%d records, want 300", len(res.Records))
	}
	for i, r := range res.Records {
		if f.seen[r.ControlID] != 1 {
			t.Errorf("record %s: the listener saw it %d times", r.ControlID, f.seen[r.ControlID])
		}
		if i > 0 && r.AckAt.Before(res.Records[i-1].AckAt) {
			t.Errorf("records not in ACK order at %d", i)
		}
	}
	var text strings.Builder
	res.WriteText(&text)
	for _, want := range []string{"300 messages acknowledged of 300 sent over 4 connections", "ACK latency  p50", "AA ", "errors       none"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, text.String())
		}
	}
}

// TestRunRate offers 200 messages/s for half a second: about 100
// messages, not as many as the connections could send.
func TestRunRate(t *testing.T) {
	t.Parallel()
	f := startFake(t, func(h hl7.Header, _ int64) []byte { return ack(t, h, hl7.AA) })
	g := newGenerator(t, GeneratorOptions{})
	res, err := Run(context.Background(), Config{Addr: f.addr, Conns: 4, Rate: 200, Duration: 500 * time.Millisecond, Generator: g})
	if err != nil {
		t.Fatal(err)
	}
	if res.Acked < 20 || res.Acked > 101 { // a loaded machine may fall behind, never ahead
		t.Errorf("acked %d at 200/s for 0.5 s, want about 100", res.Acked)
	}
	if res.Elapsed < 400*time.Millisecond {
		t.Errorf("elapsed %v, want about the duration", res.Elapsed)
	}
}

// TestRunFailures: a listener that closes every fifth exchange
// unanswered, and answers some with another message's control ID. The
// connections reconnect and carry on; every exchange is counted once.
func TestRunFailures(t *testing.T) {
	t.Parallel()
	f := startFake(t, func(h hl7.Header, n int64) []byte {
		switch {
		case n%5 == 0:
			return nil
		case n%7 == 0:
			return bytes.Replace(ack(t, h, hl7.AA), []byte("|"+h.ControlID), []byte("|SOMEONE-ELSE"), 1)
		}
		return ack(t, h, hl7.AA)
	})
	g := newGenerator(t, GeneratorOptions{})
	res, err := Run(context.Background(), Config{Addr: f.addr, Conns: 3, Count: 200, Generator: g})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors["closed by the listener"] == 0 || res.Errors["ACK names another message"] == 0 {
		t.Errorf("errors %v, want closed connections and mismatched ACKs", res.Errors)
	}
	if res.Acked+res.ErrorCount() != 200 || res.Sent != 200 {
		t.Errorf("acked %d + errors %d (sent %d), want 200 in all", res.Acked, res.ErrorCount(), res.Sent)
	}
}

func TestRunNothingListening(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	g := newGenerator(t, GeneratorOptions{})
	res, err := Run(context.Background(), Config{Addr: addr, Conns: 2, Count: 6, Generator: g})
	if err != nil {
		t.Fatal(err)
	}
	if res.Acked != 0 || res.Errors["dial: connection refused"] != 6 {
		t.Errorf("acked %d, errors %v; want 6 refused dials", res.Acked, res.Errors)
	}
}

// TestRunInterrupted stops a long run early, as Ctrl-C does: the result
// is partial, marked so, and counts what was sent.
func TestRunInterrupted(t *testing.T) {
	t.Parallel()
	f := startFake(t, func(h hl7.Header, _ int64) []byte { return ack(t, h, hl7.AA) })
	g := newGenerator(t, GeneratorOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	res, err := Run(ctx, Config{Addr: f.addr, Conns: 2, Duration: time.Minute, Rate: 100, Generator: g})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Interrupted || res.Acked == 0 || res.Acked > 40 {
		t.Errorf("interrupted %v with %d acked, want a partial result", res.Interrupted, res.Acked)
	}
}

func TestRunConfig(t *testing.T) {
	g := newGenerator(t, GeneratorOptions{})
	for _, cfg := range []Config{
		{Addr: "127.0.0.1:1"},
		{Addr: "127.0.0.1:1", Generator: g, Conns: -1},
		{Addr: "127.0.0.1:1", Generator: g, Rate: -5},
	} {
		if _, err := Run(context.Background(), cfg); err == nil {
			t.Errorf("Run(%+v) accepted", cfg)
		}
	}
}
