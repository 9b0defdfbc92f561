package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/aortahealth/aorta/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var began = time.Date(2026, 3, 14, 9, 30, 0, 0, time.Local)

func TestFormatEvent(t *testing.T) {
	ev := func(typ string, after time.Duration, payload string) tailedEvent {
		return tailedEvent{Type: typ, OccurredAt: began.Add(after), PatientID: "SIM0001", Payload: []byte(payload)}
	}
	const prefix = "09:30:35  +35s     SIM0001  "
	tests := []struct {
		name  string
		ev    tailedEvent
		color bool
		want  string // "" when not shown
	}{
		{"admitted", ev("patient.admitted", 35*time.Second, `{"patient": {"name": {"family": "AORTASIM", "given": "ALPHA"},
			"birth_date": "1951-03-14", "sex": "F"}, "visit": {"location": {"point_of_care": "SIMWARD", "room": "BAY1", "bed": "BED1",
			"facility": "AORTA_SIM"}, "visit_number": "SIMV0001"}}`), false,
			prefix + "admitted        ALPHA AORTASIM (F, born 1951-03-14), SIMWARD/BAY1/BED1, visit SIMV0001"},
		{"admitted without a visit", ev("patient.admitted", 35*time.Second, `{"patient": {"name": null}, "visit": null}`), false,
			prefix + "admitted        "},
		{"complete score", ev("score.calculated", 35*time.Second, `{"score": "news2", "total": 9, "risk": "high", "complete": true, "missing": []}`), false,
			prefix + "news2            9  high       complete"},
		{"incomplete score", ev("score.calculated", 35*time.Second, `{"score": "sirs", "total": 1, "risk": "not-met", "complete": false, "missing": ["leukocytes", "temperature"]}`), false,
			prefix + "sirs             1  not-met    incomplete, missing leukocytes temperature"},
		{"current picture", ev("score.calculated", 35*time.Second, `{"score": "qsofa", "total": 0, "risk": "negative", "complete": true, "current_picture": true}`), false,
			prefix + "qsofa            0  negative   complete (current picture)"},
		{"skipped", ev("score.skipped", 35*time.Second, `{"score": "news2", "reason": "patient under 16"}`), false,
			prefix + "news2           skipped: patient under 16 (not shown again)"},
		{"skipped again", ev("score.skipped", 40*time.Second, `{"score": "news2", "reason": "patient under 16"}`), false, ""},
		{"alert raised", ev("alert.raised", 35*time.Second, `{"rule": "news2", "score": "news2", "severity": "emergency", "previous_severity": null,
			"total": 9, "risk": "high", "location": "SIMWARD^BAY1^BED1^AORTA_SIM"}`), false,
			prefix + "ALERT RAISED    emergency: news2 9 (high), rule news2, at SIMWARD/BAY1/BED1"},
		{"alert raised, on a terminal", ev("alert.raised", 35*time.Second, `{"rule": "news2", "score": "news2", "severity": "emergency",
			"total": 9, "risk": "high", "location": null}`), true,
			prefix + ansiAlert + "ALERT RAISED    emergency: news2 9 (high), rule news2" + ansiReset},
		{"alert escalated", ev("alert.escalated", 35*time.Second, `{"rule": "news2", "score": "news2", "severity": "emergency", "previous_severity": "urgent",
			"total": 7, "risk": "high", "location": "W^^B"}`), false,
			prefix + "ALERT ESCALATED urgent -> emergency: news2 7 (high), rule news2, at W/B"},
		{"alert resolved", ev("alert.resolved", 35*time.Second, `{"rule": "sepsis-screen", "score": "qsofa", "severity": "sepsis-screen",
			"total": 1, "risk": "negative"}`), false,
			prefix + "alert resolved  sepsis-screen: qsofa 1 (negative), rule sepsis-screen"},
		{"before the demo began", ev("score.calculated", -time.Minute, `{"score": "news2", "total": 0, "risk": "low", "complete": true}`), false,
			"09:29:00  +0s      SIM0001  news2            0  low        complete"},
		{"unreadable payload", ev("score.calculated", 35*time.Second, `{`), false,
			prefix + "score.calculated: unreadable payload: unexpected end of JSON input"},
	}
	shown := map[string]bool{}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := formatEvent(tc.ev, began, shown, tc.color)
			if !ok {
				got = ""
			}
			if got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestNotable(t *testing.T) {
	tests := []struct {
		line string
		want bool
	}{
		{`{"time":"t","level":"INFO","msg":"router ready"}`, false},
		{`{"time":"t","level":"DEBUG","msg":"message stored"}`, false},
		{`{"time":"t","level":"WARN","msg":"lane lease lost"}`, true},
		{`{"time":"t","level":"ERROR","msg":"store failed"}`, true},
		{`time=2026-03-14T09:30:00Z level=INFO msg="hl7sim started"`, false},
		{`time=2026-03-14T09:30:00Z level=WARN msg="MLLP exchange failed; retrying"`, true},
		{`time=2026-03-14T09:30:00Z level=ERROR msg="message not accepted"`, true},
		{`mllp-listener: listen for MLLP: listen tcp 127.0.0.1:2575: bind: address already in use`, true},
		{`panic: runtime error`, true},
		{`{not json`, true},
		{"   ", false},
	}
	for _, tc := range tests {
		if got := notable(tc.line); got != tc.want {
			t.Errorf("notable(%q) = %v, want %v", tc.line, got, tc.want)
		}
	}
}

func TestListenerReady(t *testing.T) {
	ready := make(chan string, 2)
	on := listenerReady(ready)
	for _, l := range []string{
		`{"level":"INFO","msg":"admin HTTP listening","addr":"127.0.0.1:9575"}`,
		`not json`,
		`{"level":"INFO","msg":"mllp-listener ready: send HL7 v2 over MLLP to 127.0.0.1:2575","mllp_addr":"127.0.0.1:2575","other":"x","mllp_addr":"127.0.0.1:0"}`,
		`{"level":"INFO","msg":"mllp-listener ready: again","mllp_addr":"127.0.0.1:9999"}`,
	} {
		on(l)
	}
	close(ready)
	var got []string
	for a := range ready {
		got = append(got, a)
	}
	if len(got) != 1 || got[0] != "127.0.0.1:2575" {
		t.Errorf("addresses %v, want the first bound one only", got)
	}
}

func TestLineWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "demo.log")
	var term bytes.Buffer
	logs, err := openDemoLogs(path, &term)
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	w := logs.writer("router", func(l string) { seen = append(seen, l) })
	// Lines split across writes, as a pipe delivers them.
	for _, chunk := range []string{`{"level":"INFO","msg":"a"}` + "\n" + `{"level":"WA`, `RN","msg":"b"}` + "\n", "fatal: no newline"} {
		w.Write([]byte(chunk))
	}
	w.flush()
	logs.Close()
	file, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	wantFile := "router: {\"level\":\"INFO\",\"msg\":\"a\"}\nrouter: {\"level\":\"WARN\",\"msg\":\"b\"}\nrouter: fatal: no newline\n"
	if string(file) != wantFile {
		t.Errorf("log file:\n%s\nwant:\n%s", file, wantFile)
	}
	if want := "router: {\"level\":\"WARN\",\"msg\":\"b\"}\nrouter: fatal: no newline\n"; term.String() != want {
		t.Errorf("terminal:\n%s\nwant:\n%s", term.String(), want)
	}
	if len(seen) != 3 {
		t.Errorf("onLine saw %d lines, want 3: %q", len(seen), seen)
	}
}

// TestTailer follows a real events table: only the types the demo shows,
// in seq order, from the events written after it started.
func TestTailer(t *testing.T) {
	dbURL := pgtest.NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	msgID := uuid.New()
	raw := []byte("MSH|^~\\&|AORTA_SIM\r")
	sum := sha256.Sum256(raw)
	if _, err := conn.Exec(ctx, `INSERT INTO messages (id, received_at, listener, remote_addr, raw, raw_sha256, status)
		VALUES ($1, now(), 'test', '127.0.0.1:1', $2, $3, 'accepted')`, msgID, raw, sum[:]); err != nil {
		t.Fatal(err)
	}
	n := 0
	insert := func(typ, payload string) {
		t.Helper()
		n++
		if _, err := conn.Exec(ctx, `INSERT INTO events (id, type, occurred_at, message_id, patient_id, patient_key, source, route, schema_version, payload)
			VALUES ($1, $2, $3, $4, 'SIM0001', 'AORTA_SIM/SIM0001', 'AORTA_SIM^AORTA_SIM', 'test', 1, $5)`,
			uuid.New(), typ, began.Add(time.Duration(n)*time.Second), msgID, payload); err != nil {
			t.Fatal(err)
		}
	}
	insert("score.calculated", `{"score": "news2", "total": 1, "risk": "low", "complete": true}`) // before the tailer: not shown

	out := &syncBuffer{}
	tl, err := newTailer(ctx, dbURL, out, began)
	if err != nil {
		t.Fatal(err)
	}
	defer tl.close()
	insert("patient.admitted", `{"patient": {"name": {"family": "AORTASIM", "given": "ALPHA"}}}`)
	insert("observation.recorded", `{"parameter": "heart_rate", "value": "80"}`)
	insert("score.calculated", `{"score": "news2", "total": 9, "risk": "high", "complete": true}`)
	insert("alert.raised", `{"rule": "news2", "score": "news2", "severity": "emergency", "total": 9, "risk": "high"}`)
	tl.start(ctx)
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(out.String(), "\n") < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("after 10 s the tailer printed:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	insert("alert.resolved", `{"rule": "news2", "score": "news2", "severity": "emergency", "total": 3, "risk": "low"}`)
	tl.stop() // reads once more
	want := []string{
		"09:30:02  +2s      SIM0001  admitted        ALPHA AORTASIM",
		"09:30:04  +4s      SIM0001  news2            9  high       complete",
		"09:30:05  +5s      SIM0001  ALERT RAISED    emergency: news2 9 (high), rule news2",
		"09:30:06  +6s      SIM0001  alert resolved  emergency: news2 3 (low), rule news2",
	}
	if got := strings.TrimRight(out.String(), "\n"); got != strings.Join(want, "\n") {
		t.Errorf("tailed:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
}

// syncBuffer is a bytes.Buffer safe to read while the tailer writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
