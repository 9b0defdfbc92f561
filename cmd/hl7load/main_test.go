package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/aortahealth/aorta/pkg/hl7"
	"github.com/aortahealth/aorta/pkg/mllp"
)

func TestCheckLoopback(t *testing.T) {
	tests := []struct {
		addr        string
		allowRemote bool
		wantErr     string
	}{
		{"127.0.0.1:2575", false, ""},
		{"[::1]:2575", false, ""},
		{"localhost:2575", false, ""},
		{"10.1.2.3:2575", false, "not a loopback address"},
		{"192.0.2.7:2575", true, ""},
		{"127.0.0.1", false, "missing port"},
	}
	for _, tc := range tests {
		t.Run(tc.addr, func(t *testing.T) {
			err := checkLoopback(tc.addr, tc.allowRemote)
			if tc.wantErr == "" && err != nil {
				t.Fatalf("checkLoopback(%q, %v): %v", tc.addr, tc.allowRemote, err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("checkLoopback(%q, %v) = %v, want an error saying %q", tc.addr, tc.allowRemote, err, tc.wantErr)
			}
		})
	}
}

func TestParseConfigRefuses(t *testing.T) {
	for _, args := range [][]string{
		{"--addr", "10.0.0.1:2575"},
		{"--conns", "0"},
		{"--count", "-1"},
		{"--mix", "xray=1"},
		{"--rate", "-1"},
		{"extra"},
	} {
		fs := flag.NewFlagSet("hl7load", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		if _, err := parseConfig(fs, args); err == nil {
			t.Errorf("parseConfig(%q) accepted", args)
		}
	}
}

// TestRunJSON runs hl7load against an in-test listener and reads its JSON
// report.
func TestRunJSON(t *testing.T) {
	srv := &mllp.Server{Handler: mllp.HandlerFunc(func(_ context.Context, _ mllp.ConnInfo, frame []byte) ([]byte, error) {
		h, err := hl7.ParseHeader(frame)
		if err != nil {
			return nil, err
		}
		return hl7.BuildACK(h, hl7.ACK{Code: hl7.AA, ControlID: "T1"})
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
	var stdout, stderr bytes.Buffer
	if err := run([]string{"--addr", ln.Addr().String(), "--conns", "3", "--count", "50", "--json"}, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	var rep struct {
		Acked    int            `json:"acked"`
		Rate     float64        `json:"messages_per_second"`
		AckCodes map[string]int `json:"ack_codes"`
		Latency  struct {
			Count int     `json:"count"`
			P99   float64 `json:"p99_ms"`
		} `json:"ack_latency"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("JSON report: %v\n%s", err, stdout.String())
	}
	if rep.Acked != 50 || rep.AckCodes["AA"] != 50 || rep.Latency.Count != 50 || rep.Rate <= 0 || rep.Latency.P99 <= 0 {
		t.Errorf("report %+v, want 50 AA with latencies", rep)
	}
}
