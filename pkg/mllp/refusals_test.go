package mllp

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"
)

// records keeps what a slog.Logger writes.
type records struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (r *records) Enabled(context.Context, slog.Level) bool { return true }
func (r *records) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, rec)
	return nil
}
func (r *records) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *records) WithGroup(string) slog.Handler      { return r }

func attr(rec slog.Record, key string) (slog.Value, bool) {
	var v slog.Value
	found := false
	rec.Attrs(func(a slog.Attr) bool {
		if a.Key == key {
			v, found = a.Value, true
			return false
		}
		return true
	})
	return v, found
}

// A burst of refusals (a port scan, a sender reconnecting in a loop) logs
// one line per reason per interval, and the next line says how many it
// left out; every refusal is still counted in Stats by the caller.
func TestRefusalLogIsRateLimited(t *testing.T) {
	now := time.Date(2026, 11, 27, 1, 0, 0, 0, time.UTC)
	rl := &refusalLog{interval: time.Second, now: func() time.Time { return now }}
	h := &records{}
	log := slog.New(h)
	const notAllowed, tooMany = "refused: not allowed", "refused: too many"

	for range 1000 {
		rl.warn(log, notAllowed, "remote", "192.0.2.1:1")
	}
	rl.warn(log, tooMany, "remote", "192.0.2.2:1")
	if len(h.recs) != 2 {
		t.Fatalf("1,000 refusals of one kind and one of another logged %d lines, want 2", len(h.recs))
	}
	if _, ok := attr(h.recs[0], "refused_since_last_line"); ok {
		t.Errorf("the first line reports refusals left out before it")
	}

	now = now.Add(999 * time.Millisecond)
	rl.warn(log, notAllowed, "remote", "192.0.2.1:2")
	if len(h.recs) != 2 {
		t.Fatalf("a refusal within the interval was logged")
	}
	now = now.Add(time.Millisecond)
	rl.warn(log, notAllowed, "remote", "192.0.2.1:3")
	if len(h.recs) != 3 {
		t.Fatalf("a refusal after the interval was not logged")
	}
	last := h.recs[2]
	if v, ok := attr(last, "refused_since_last_line"); !ok || v.Int64() != 1000 {
		t.Errorf("refused_since_last_line = %v (%v), want 1000", v, ok)
	}
	if v, _ := attr(last, "remote"); v.String() != "192.0.2.1:3" {
		t.Errorf("the line names %v, want the refusal it was written for", v)
	}
	if last.Level != slog.LevelWarn {
		t.Errorf("level %v, want WARN", last.Level)
	}
}
