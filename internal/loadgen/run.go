package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aortahealth/aorta/pkg/hl7"
	"github.com/aortahealth/aorta/pkg/mllp"
)

// Defaults of Config.
const (
	DefaultConns = 8
	// DefaultCount is the messages sent when neither a count nor a
	// duration is given: a run always ends by itself.
	DefaultCount = 10000
	// DefaultAckTimeout bounds one exchange, from writing the frame to
	// reading the ACK; the listener's own commit retry budget is 5 s.
	DefaultAckTimeout = 10 * time.Second
	// dialTimeout bounds one connection attempt.
	dialTimeout = 5 * time.Second
	// Pauses before a connection that failed is opened again.
	redialMin = 50 * time.Millisecond
	redialMax = time.Second
)

// Config is a load run.
type Config struct {
	// Addr is the listener's MLLP address (host:port).
	Addr string
	// Conns is how many connections send at once, each waiting for its
	// ACK before sending the next message; 0 is DefaultConns.
	Conns int
	// Count is how many messages to send in all; Duration how long to
	// send. The run ends at whichever comes first; with neither it sends
	// DefaultCount.
	Count    int
	Duration time.Duration
	// Rate, when above 0, is the offered load in messages per second
	// across all connections: message i is sent at i/Rate seconds after
	// the start, or as soon as a connection is free after that. 0 sends
	// the next message as soon as a connection has its ACK.
	Rate float64
	// Generator makes the messages.
	Generator *Generator
	// AckTimeout bounds one exchange; 0 is DefaultAckTimeout. A timed
	// out exchange is an error and its connection is opened again.
	AckTimeout time.Duration
	// KeepRecords keeps each acknowledged message's control ID and ACK
	// time in Result.Records, for RouterLatency.
	KeepRecords bool
}

// Record is one acknowledged message.
type Record struct {
	ControlID string
	Kind      Kind
	AckAt     time.Time // when the ACK was read, wall clock
}

// Result is what a run measured.
type Result struct {
	Addr        string  `json:"addr"`
	Conns       int     `json:"conns"`
	OfferedRate float64 `json:"offered_rate,omitempty"` // messages/s; 0: as fast as ACKs come
	RunID       string  `json:"run_id"`
	Mix         string  `json:"mix"`
	Patients    int     `json:"patients"`

	Started time.Time     `json:"started"`
	Elapsed time.Duration `json:"elapsed_ns"` // from the start to the last ACK
	// Sent counts the frames written; Acked the ACKs read that name
	// their message. Rate is Acked per second of Elapsed.
	Sent  int     `json:"sent"`
	Acked int     `json:"acked"`
	Rate  float64 `json:"messages_per_second"`
	Bytes int64   `json:"bytes_sent"`
	// Latency is from writing a frame to reading its ACK, of every
	// exchange that got one.
	Latency Summary `json:"ack_latency"`
	// AckCodes counts MSA-1 of the ACKs; Errors counts failed exchanges
	// by reason; Kinds the messages sent of each kind.
	AckCodes map[string]int `json:"ack_codes"`
	Errors   map[string]int `json:"errors"`
	Kinds    map[Kind]int   `json:"kinds"`
	// Interrupted is true when the run was stopped (Ctrl-C) before its
	// count or duration: the figures are those of the messages sent.
	Interrupted bool `json:"interrupted,omitempty"`

	Records []Record `json:"-"`
}

// ErrorCount is the number of failed exchanges.
func (r *Result) ErrorCount() int {
	n := 0
	for _, v := range r.Errors {
		n += v
	}
	return n
}

// worker is one connection's tally, merged at the end.
type worker struct {
	sent, acked int
	bytes       int64
	lat         []time.Duration
	codes       map[string]int
	errs        map[string]int
	kinds       map[Kind]int
	recs        []Record
	last        time.Time
}

// Run sends the configured load and returns what it measured. It stops at
// the count or the duration, or when ctx ends (Interrupted: an exchange
// under way is finished first, within the ACK timeout). It fails only on a
// bad configuration; failed exchanges are counted in Result.Errors.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Generator == nil {
		return nil, errors.New("loadgen: no generator")
	}
	if cfg.Conns == 0 {
		cfg.Conns = DefaultConns
	}
	if cfg.AckTimeout == 0 {
		cfg.AckTimeout = DefaultAckTimeout
	}
	switch {
	case cfg.Conns < 0:
		return nil, fmt.Errorf("loadgen: %d connections", cfg.Conns)
	case cfg.Count < 0 || cfg.Duration < 0 || cfg.Rate < 0:
		return nil, errors.New("loadgen: count, duration and rate must not be negative")
	}
	if cfg.Count == 0 && cfg.Duration == 0 {
		cfg.Count = DefaultCount
	}
	o := cfg.Generator.Options()
	res := &Result{
		Addr: cfg.Addr, Conns: cfg.Conns, OfferedRate: cfg.Rate, RunID: o.RunID, Mix: o.Mix.String(), Patients: o.Patients,
		AckCodes: map[string]int{}, Errors: map[string]int{}, Kinds: map[Kind]int{},
	}
	start := time.Now()
	res.Started = start
	var deadline time.Time
	if cfg.Duration > 0 {
		deadline = start.Add(cfg.Duration)
	}
	var next atomic.Uint64
	// claim returns the next message to send and when to send it.
	claim := func() (uint64, time.Time, bool) {
		if ctx.Err() != nil || (!deadline.IsZero() && !time.Now().Before(deadline)) {
			return 0, time.Time{}, false
		}
		i := next.Add(1) - 1
		if cfg.Count > 0 && i >= uint64(cfg.Count) {
			return 0, time.Time{}, false
		}
		var at time.Time
		if cfg.Rate > 0 {
			at = start.Add(time.Duration(float64(i) / cfg.Rate * float64(time.Second)))
			if !deadline.IsZero() && !at.Before(deadline) {
				return 0, time.Time{}, false
			}
		}
		return i, at, true
	}
	workers := make([]*worker, cfg.Conns)
	var wg sync.WaitGroup
	for c := range workers {
		w := &worker{codes: map[string]int{}, errs: map[string]int{}, kinds: map[Kind]int{}}
		workers[c] = w
		wg.Go(func() { w.run(ctx, cfg, claim) })
	}
	wg.Wait()
	res.Interrupted = ctx.Err() != nil

	var lat [][]time.Duration
	var last time.Time
	for _, w := range workers {
		res.Sent += w.sent
		res.Acked += w.acked
		res.Bytes += w.bytes
		lat = append(lat, w.lat)
		for k, v := range w.codes {
			res.AckCodes[k] += v
		}
		for k, v := range w.errs {
			res.Errors[k] += v
		}
		for k, v := range w.kinds {
			res.Kinds[k] += v
		}
		res.Records = append(res.Records, w.recs...)
		if w.last.After(last) {
			last = w.last
		}
	}
	if last.IsZero() {
		last = time.Now()
	}
	res.Elapsed = last.Sub(start)
	if res.Elapsed > 0 {
		res.Rate = float64(res.Acked) / res.Elapsed.Seconds()
	}
	res.Latency = Summarize(slices.Concat(lat...))
	sort.Slice(res.Records, func(i, j int) bool { return res.Records[i].AckAt.Before(res.Records[j].AckAt) })
	return res, nil
}

// run sends messages over one connection until claim says stop.
func (w *worker) run(ctx context.Context, cfg Config, claim func() (uint64, time.Time, bool)) {
	var c *mllp.Client
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	backoff := redialMin
	for {
		i, at, ok := claim()
		if !ok {
			return
		}
		if !at.IsZero() && !sleep(ctx, time.Until(at)) {
			return
		}
		if c == nil {
			dctx, cancel := context.WithTimeout(ctx, dialTimeout)
			var err error
			c, err = mllp.Dial(dctx, cfg.Addr)
			cancel()
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				w.errs["dial: "+reason(err)]++
				if !sleep(ctx, backoff) {
					return
				}
				backoff = min(2*backoff, redialMax)
				continue
			}
		}
		m := cfg.Generator.Message(i, time.Now())
		w.kinds[m.Kind]++
		// An exchange under way is finished after Ctrl-C, so that the
		// partial report counts it.
		xctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.AckTimeout)
		t0 := time.Now()
		ack, err := c.Send(xctx, m.Raw)
		done := time.Now()
		cancel()
		w.sent++
		w.bytes += int64(len(m.Raw))
		if err != nil {
			w.errs[reason(err)]++
			c.Close()
			c = nil
			if !sleep(ctx, backoff) {
				return
			}
			backoff = min(2*backoff, redialMax)
			continue
		}
		backoff = redialMin
		code, acked := ackOf(ack)
		if acked != m.ControlID {
			w.errs["ACK names another message"]++
			continue
		}
		w.acked++
		w.codes[code]++
		w.lat = append(w.lat, done.Sub(t0))
		w.last = done
		if cfg.KeepRecords {
			w.recs = append(w.recs, Record{ControlID: m.ControlID, Kind: m.Kind, AckAt: done})
		}
	}
}

// ackOf returns MSA-1 and MSA-2 of an acknowledgement; "unparseable" when
// it is not one.
func ackOf(ack []byte) (code, controlID string) {
	m, err := hl7.Parse(ack)
	if err != nil {
		return "unparseable", ""
	}
	code, _ = m.Get("MSA-1")
	controlID, _ = m.Get("MSA-2")
	if code == "" {
		code = "no MSA-1"
	}
	return code, controlID
}

// reason names the cause of a failed exchange in a few bounded words.
func reason(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "closed by the listener"
	case errors.Is(err, mllp.ErrFrameTooLarge):
		return "ACK too large"
	}
	var op *net.OpError
	if errors.As(err, &op) {
		msg := op.Err.Error()
		if i := strings.LastIndex(msg, ": "); i >= 0 {
			msg = msg[i+2:]
		}
		return msg // "connection refused", "connection reset by peer"
	}
	return "other"
}

// sleep waits for d or until ctx ends, and reports whether it waited.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// WriteText writes the result for a person.
func (r *Result) WriteText(w io.Writer) {
	state := ""
	if r.Interrupted {
		state = " (interrupted: partial figures)"
	}
	offered := "each connection waits for its ACK"
	if r.OfferedRate > 0 {
		offered = fmt.Sprintf("offered %.0f messages/s", r.OfferedRate)
	}
	fmt.Fprintf(w, "hl7load: %d messages acknowledged of %d sent over %d connections to %s in %v%s\n",
		r.Acked, r.Sent, r.Conns, r.Addr, r.Elapsed.Round(time.Millisecond), state)
	fmt.Fprintf(w, "  throughput   %.0f messages/s (%s; %.1f MB/s of HL7)\n", r.Rate, offered, float64(r.Bytes)/1e6/max(r.Elapsed.Seconds(), 1e-9))
	fmt.Fprintf(w, "  ACK latency  %s\n", r.Latency)
	fmt.Fprintf(w, "  ACK codes    %s\n", counts(r.AckCodes))
	fmt.Fprintf(w, "  errors       %s\n", counts(r.Errors))
	kinds := map[string]int{}
	for k, v := range r.Kinds {
		kinds[string(k)] = v
	}
	fmt.Fprintf(w, "  mix          %s (run %s, %d patients)\n", counts(kinds), r.RunID, r.Patients)
}

func counts(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}
