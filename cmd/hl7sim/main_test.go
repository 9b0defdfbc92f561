package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aortahealth/aorta/pkg/hl7"
	"github.com/aortahealth/aorta/pkg/mllp"
)

// fakeListener is an MLLP server that records every frame and answers
// with answer's ACK.
type fakeListener struct {
	addr string
	mu   sync.Mutex
	got  [][]byte
	// answer returns the ACK code and MSA-2 for the n-th frame (from 0),
	// or drop to close the connection without answering.
	answer func(n int, controlID string) (code hl7.AckCode, msa2 string, drop bool)
}

func startFake(t *testing.T, answer func(n int, controlID string) (hl7.AckCode, string, bool)) *fakeListener {
	t.Helper()
	f := &fakeListener{answer: answer}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = ln.Addr().String()
	srv := &mllp.Server{Handler: mllp.HandlerFunc(func(ctx context.Context, c mllp.ConnInfo, frame []byte) ([]byte, error) {
		h, err := hl7.ParseHeader(frame)
		if err != nil {
			return nil, err
		}
		f.mu.Lock()
		n := len(f.got)
		f.got = append(f.got, frame)
		f.mu.Unlock()
		code, msa2, drop := f.answer(n, h.ControlID)
		if drop {
			return nil, errors.New("dropped")
		}
		ack, err := hl7.BuildACK(h, hl7.ACK{Code: code, ControlID: "ACK" + h.ControlID})
		if err != nil {
			return nil, err
		}
		// BuildACK names the message it answers; a test may name another.
		return bytes.Replace(ack, []byte("|"+h.ControlID+"\r"), []byte("|"+msa2+"\r"), 1), nil
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return f
}

func (f *fakeListener) frames() [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]byte(nil), f.got...)
}

func accept(code hl7.AckCode) func(int, string) (hl7.AckCode, string, bool) {
	return func(_ int, cid string) (hl7.AckCode, string, bool) { return code, cid, false }
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestSimulate(t *testing.T) {
	tests := []struct {
		name       string
		patients   int
		count      int
		answer     func(n int, controlID string) (hl7.AckCode, string, bool)
		wantErr    string
		wantFrames int // frames received, resends included
	}{
		{"every message accepted", 5, 3, accept(hl7.AA), "", 5 + 5 + 15},
		{"commit accept (CA) is accepted", 2, 2, accept(hl7.CA), "", 2 + 2 + 4},
		{"application errors are reported", 3, 1, func(n int, cid string) (hl7.AckCode, string, bool) {
			if n == 4 {
				return hl7.AE, cid, false
			}
			return hl7.AA, cid, false
		}, "1 of 9 messages were not accepted", 9},
		{"an ACK naming another message is reported", 1, 1, func(n int, cid string) (hl7.AckCode, string, bool) {
			return hl7.AA, "OTHER", false
		}, "3 of 3 messages were not accepted", 3},
		{"a dropped connection is retried", 2, 2, func(n int, cid string) (hl7.AckCode, string, bool) {
			return hl7.AA, cid, n == 3
		}, "", 2 + 2 + 4 + 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := startFake(t, tc.answer)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cfg := config{Addr: f.addr, Patients: tc.patients, Interval: 5 * time.Second, Count: tc.count, Seed: 1, Fast: true, Child: true}
			err := simulate(ctx, cfg, quiet())
			if tc.wantErr == "" && err != nil {
				t.Fatalf("simulate: %v", err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("simulate: %v, want an error containing %q", err, tc.wantErr)
			}
			frames := f.frames()
			if len(frames) != tc.wantFrames {
				t.Fatalf("%d frames, want %d", len(frames), tc.wantFrames)
			}
			// Admissions first, then readings; control IDs unique but for
			// a resend; readings of a patient dated --interval apart and
			// never in the future.
			ids := map[string]bool{}
			last := map[string]time.Time{}
			for i, raw := range frames {
				resent := i > 0 && bytes.Equal(raw, frames[i-1])
				m, err := hl7.Parse(raw)
				if err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
				h := m.Header()
				if want := "ADT"; i < tc.patients && h.MessageType != want {
					t.Errorf("frame %d: %s, want an admission", i, h.MessageType)
				}
				if ids[h.ControlID] && !resent {
					t.Errorf("frame %d: control ID %s used twice", i, h.ControlID)
				}
				ids[h.ControlID] = true
				if obs, _ := m.Get("OBX-3.1"); h.MessageType != "ORU" || resent || obs == "6690-2" {
					continue // readings only
				}
				mrn, _ := m.Get("PID-3.1")
				obs, _ := m.Get("OBX-14")
				at, err := hl7.ParseTime(obs)
				if err != nil {
					t.Fatalf("frame %d: OBX-14 %q: %v", i, obs, err)
				}
				if at.After(time.Now()) {
					t.Errorf("frame %d: observed at %v, in the future", i, at)
				}
				if prev, ok := last[mrn]; ok && at.Sub(prev) != cfg.Interval {
					t.Errorf("frame %d: %s observed %v after the previous reading, want %v", i, mrn, at.Sub(prev), cfg.Interval)
				}
				last[mrn] = at
			}
		})
	}
}

// TestSimulateStopsOnSignal checks that cancelling (SIGINT, SIGTERM) stops
// a paced run between messages, without an error.
func TestSimulateStopsOnSignal(t *testing.T) {
	f := startFake(t, accept(hl7.AA))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- simulate(ctx, config{Addr: f.addr, Patients: 2, Interval: time.Hour, Seed: 1}, quiet())
	}()
	deadline := time.Now().Add(10 * time.Second)
	for len(f.frames()) < 5 { // two admissions, two lab results and the first reading, then an hour's wait
		if time.Now().After(deadline) {
			t.Fatalf("%d frames after 10 s, want 5", len(f.frames()))
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("simulate after cancel: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("simulate still running 5 s after cancel")
	}
	if n := len(f.frames()); n != 5 {
		t.Errorf("%d frames, want 5", n)
	}
}

// TestSimulateDuration checks that --duration ends a run without an error.
func TestSimulateDuration(t *testing.T) {
	f := startFake(t, accept(hl7.AA))
	start := time.Now()
	err := simulate(context.Background(), config{Addr: f.addr, Patients: 1, Interval: 50 * time.Millisecond, Duration: 300 * time.Millisecond, Seed: 1}, quiet())
	if err != nil {
		t.Fatalf("simulate: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("ran %v, want about 300ms", d)
	}
	if n := len(f.frames()); n < 3 {
		t.Errorf("%d frames in 300 ms at a 50 ms interval, want several", n)
	}
}

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
		check   func(c config) bool
	}{
		{"defaults", nil, "", func(c config) bool {
			return c.Addr == defaultAddr && c.Patients == defaultPatients && c.Interval == defaultInterval && c.Count == 0 && !c.Fast && c.Child
		}},
		{"flags", []string{"--addr", "127.0.0.1:1", "--patients", "8", "--count", "3", "--fast", "--seed", "9"}, "", func(c config) bool {
			return c.Addr == "127.0.0.1:1" && c.Patients == 8 && c.Count == 3 && c.Fast && c.Seed == 9
		}},
		{"no patients", []string{"--patients", "0"}, "--patients", nil},
		{"too many patients", []string{"--patients", "10000"}, "--patients", nil},
		{"zero interval", []string{"--interval", "0s"}, "--interval", nil},
		{"negative count", []string{"--count", "-1"}, "must not be negative", nil},
		{"stray argument", []string{"now"}, "unexpected arguments", nil},
		{"bad log level", []string{"--log-level", "loud"}, "loud", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := flag.NewFlagSet("hl7sim", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			c, err := parseConfig(fs, tc.args)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(c) {
				t.Errorf("config %+v", c)
			}
		})
	}
}
