package mllp

import (
	"log/slog"
	"sync"
	"time"
)

// refusalLogInterval is the least time between two log lines for the same
// kind of refused connection. Each refusal is counted in Stats either
// way; the log only has to say that refusals are happening, and one line
// per connection let a port scan or a sender stuck in a reconnect loop
// write thousands of lines a second.
const refusalLogInterval = time.Second

// refusalLog writes a warning for a refused connection at most once per
// interval per reason, with how many of the same refusals it left out
// since its last line.
type refusalLog struct {
	mu       sync.Mutex
	interval time.Duration
	now      func() time.Time
	last     map[string]time.Time
	left     map[string]int
}

// warn logs msg for a refused connection unless one was logged for the
// same msg within the interval; attrs are the refused connection's.
func (r *refusalLog) warn(log *slog.Logger, msg string, attrs ...any) {
	r.mu.Lock()
	if r.last == nil {
		r.last, r.left = map[string]time.Time{}, map[string]int{}
	}
	now := time.Now()
	if r.now != nil {
		now = r.now()
	}
	interval := r.interval
	if interval == 0 {
		interval = refusalLogInterval
	}
	if last, ok := r.last[msg]; ok && now.Sub(last) < interval {
		r.left[msg]++
		r.mu.Unlock()
		return
	}
	left := r.left[msg]
	r.last[msg], r.left[msg] = now, 0
	r.mu.Unlock()
	if left > 0 {
		attrs = append(attrs, "refused_since_last_line", left)
	}
	log.Warn(msg, attrs...)
}
