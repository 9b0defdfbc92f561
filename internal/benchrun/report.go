package benchrun

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/aortahealth/aorta/internal/loadgen"
)

// Report is everything one bench run measured; it is written as JSON
// (bin/bench.json) and as Markdown tables.
type Report struct {
	Date       string  `json:"date"` // YYYY-MM-DD
	CPUs       int     `json:"cpus"`
	LoadBefore float64 `json:"load_average_before"` // 1-minute load average when the bench began
	PostgreSQL string  `json:"postgresql"`          // server version
	Server     string  `json:"server"`              // DATABASE_URL, local or throwaway
	Database   string  `json:"database"`
	Mix        string  `json:"mix"`
	Patients   int     `json:"patients"`

	// Ceiling is the fastest of the COPY probes tried (Probes).
	Ceiling Probe   `json:"ceiling"`
	Probes  []Probe `json:"ceiling_probes"`
	// Commit is one INSERT + COMMIT per message from one connection.
	Commit Probe `json:"commit"`

	Levels []Level `json:"levels"`

	Listener Resources `json:"listener"`
	Router   Routing   `json:"router"`
	Elapsed  Seconds   `json:"elapsed_s"`
}

// Seconds is a duration written in JSON as seconds.
type Seconds time.Duration

// MarshalJSON writes s in seconds, to the millisecond.
func (s Seconds) MarshalJSON() ([]byte, error) {
	return fmt.Appendf(nil, "%.3f", time.Duration(s).Seconds()), nil
}

// Level is the listener at one number of connections, without the router.
type Level struct {
	Conns    int             `json:"conns"`
	Acked    int             `json:"acked"`
	Rate     float64         `json:"messages_per_second"`
	XCeiling float64         `json:"x_ceiling"`
	XCommit  float64         `json:"x_commit_rate,omitempty"` // for 1 connection
	Latency  loadgen.Summary `json:"ack_latency"`
	AckCodes map[string]int  `json:"ack_codes"`
	Errors   map[string]int  `json:"errors"`
	// CPU seconds per 1,000 acknowledged messages: the listener's, and
	// its PostgreSQL backends' (0 when they could not be read).
	ListenerCPU float64 `json:"listener_cpu_s_per_1k"`
	BackendCPU  float64 `json:"postgres_backends_cpu_s_per_1k,omitempty"`
}

// Resources is the listener's memory.
type Resources struct {
	PeakRSSKiB int64 `json:"peak_rss_kib"` // VmHWM at the end of the bench
	// IdleRSSKiB is VmRSS with no connection; IdleConnsRSSKiB with
	// IdleConns connections open and silent.
	IdleRSSKiB      int64 `json:"idle_rss_kib"`
	IdleConns       int   `json:"idle_conns"`
	IdleConnsRSSKiB int64 `json:"idle_conns_rss_kib"`
	// IdleConnsFDs is the listener's open descriptors meanwhile.
	IdleConnsFDs int `json:"idle_conns_fds"`
}

// Routing is the listener and the router at a fixed offered rate.
type Routing struct {
	Offered  float64         `json:"offered_rate"`
	Duration Seconds         `json:"duration_s"`
	Acked    int             `json:"acked"`
	Rate     float64         `json:"messages_per_second"`
	Latency  loadgen.Summary `json:"ack_latency"`
	Errors   map[string]int  `json:"errors"`
	// Event and Alert are ACK -> events.recorded_at (loadgen.RouterResult).
	Event   loadgen.Summary `json:"ack_to_event"`
	Alert   loadgen.Summary `json:"ack_to_alert"`
	Routed  int             `json:"routed"`
	Pending int             `json:"pending"` // still in the outbox when the wait ran out
	// The outbox during the load: its longest, its length at the end of
	// the load, its growth (least-squares slope), and how long the router
	// took to empty it after the load.
	BacklogMax    int     `json:"backlog_max"`
	BacklogEnd    int     `json:"backlog_end"`
	BacklogGrowth float64 `json:"backlog_growth_rows_per_s"`
	BacklogGrew   bool    `json:"backlog_grew"`
	DrainedAfter  Seconds `json:"drained_after_s"`
	// DrainRate is the router's rate alone: the backlog at the end of the
	// load over the time it took to empty it (0 when there was none).
	DrainRate float64 `json:"drain_rate,omitempty"`
	// Drain is the router alone on a backlog queued while it was stopped.
	Drain Drain `json:"drain"`
	// CPU seconds per 1,000 messages, and peak RSS, of the router; the
	// listener's CPU in the same phase.
	RouterCPU     float64 `json:"router_cpu_s_per_1k"`
	ListenerCPU   float64 `json:"listener_cpu_s_per_1k"`
	RouterPeakKiB int64   `json:"router_peak_rss_kib"`
}

// Drain is the router emptying an outbox queued while it was stopped:
// how fast it routes when nothing else runs, and what each message costs
// it and the database.
type Drain struct {
	Messages int     `json:"messages"`
	Events   int     `json:"events"`
	Elapsed  Seconds `json:"elapsed_s"`
	Rate     float64 `json:"messages_per_second"`
	// CPU seconds per 1,000 messages of the router and of the database's
	// backends (0: not measured, a server on another machine).
	RouterCPU  float64 `json:"router_cpu_s_per_1k"`
	BackendCPU float64 `json:"backend_cpu_s_per_1k"`
}

// grewThreshold: the backlog grew when it gained more than this share of
// the offered rate per second over the load.
const grewThreshold = 0.01

// WriteMarkdown writes the report as two tables and a heading line a
// person can paste into the README.
func (r *Report) WriteMarkdown(w io.Writer) {
	fmt.Fprintf(w, "`make bench`, %s, %d-core machine (load average %.1f at the start), PostgreSQL %s (%s), mix %s, %s patients:\n\n",
		r.Date, r.CPUs, r.LoadBefore, r.PostgreSQL, r.Server, r.Mix, Thousands(float64(r.Patients)))
	fmt.Fprintln(w, "| writer | messages/s | × ceiling | ACK p50 | p95 | p99 | max | CPU s / 1k msgs: listener + PostgreSQL |")
	fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|--:|--:|")
	fmt.Fprintf(w, "| PostgreSQL ceiling: COPY, %d connections, %d-row commits | %s | 1.00 | | | | | %s |\n",
		r.Ceiling.Conns, r.Ceiling.Batch, Thousands(r.Ceiling.Rate), cpu(0, r.Ceiling.BackendCPU))
	fmt.Fprintf(w, "| PostgreSQL: INSERT + COMMIT per message, 1 connection | %s | %.2f | | | | | %s |\n",
		Thousands(r.Commit.Rate), ratio(r.Commit.Rate, r.Ceiling.Rate), cpu(0, r.Commit.BackendCPU))
	for _, l := range r.Levels {
		x := fmt.Sprintf("%.2f", l.XCeiling)
		if l.XCommit > 0 {
			x += fmt.Sprintf(" (%.2f× commit)", l.XCommit)
		}
		errs := ""
		if n := sum(l.Errors); n > 0 {
			errs = fmt.Sprintf(", %d errors", n)
		}
		fmt.Fprintf(w, "| Aorta listener, %d connection%s%s | %s | %s | %s | %s | %s | %s | %s |\n",
			l.Conns, plural(l.Conns), errs, Thousands(l.Rate), x,
			loadgen.Millis(l.Latency.P50), loadgen.Millis(l.Latency.P95), loadgen.Millis(l.Latency.P99), loadgen.Millis(l.Latency.Max), cpu(l.ListenerCPU, l.BackendCPU))
	}
	fmt.Fprintln(w)
	ro := &r.Router
	fmt.Fprintln(w, "| resources and routing | |")
	fmt.Fprintln(w, "|---|---|")
	fmt.Fprintf(w, "| listener peak RSS (VmHWM) | %s |\n", mib(r.Listener.PeakRSSKiB))
	perConn := float64(r.Listener.IdleConnsRSSKiB-r.Listener.IdleRSSKiB) / float64(max(r.Listener.IdleConns, 1))
	fmt.Fprintf(w, "| listener RSS idle, then with %s idle connections | %s, %s (%.0f KiB per connection) |\n",
		Thousands(float64(r.Listener.IdleConns)), mib(r.Listener.IdleRSSKiB), mib(r.Listener.IdleConnsRSSKiB), perConn)
	fmt.Fprintf(w, "| router peak RSS; CPU s / 1k msgs (listener's) | %s; %.2f (%.2f) |\n", mib(ro.RouterPeakKiB), ro.RouterCPU, ro.ListenerCPU)
	if d := ro.Drain; d.Messages > 0 {
		fmt.Fprintf(w, "| router alone, draining %s queued messages (%s events) | %s msg/s; CPU s / 1k msgs: router + PostgreSQL %s |\n",
			Thousands(float64(d.Messages)), Thousands(float64(d.Events)), Thousands(d.Rate), cpu(d.RouterCPU, d.BackendCPU))
	}
	fmt.Fprintf(w, "| with the router, %s msg/s offered for %v | %s msg/s acknowledged, ACK p99 %s |\n",
		Thousands(ro.Offered), time.Duration(ro.Duration).Round(time.Second), Thousands(ro.Rate), loadgen.Millis(ro.Latency.P99))
	fmt.Fprintf(w, "| ACK→event p50, p99 | %s, %s (%s messages) |\n", loadgen.Millis(ro.Event.P50), loadgen.Millis(ro.Event.P99), Thousands(float64(ro.Event.Count)))
	fmt.Fprintf(w, "| ACK→alert p50, p99 | %s |\n", alertText(ro.Alert))
	verdict := "kept up"
	if ro.BacklogGrew {
		verdict = "**grew**"
	}
	pending := ""
	if ro.Pending > 0 {
		pending = fmt.Sprintf("; %d messages still queued when the bench stopped waiting", ro.Pending)
	}
	drain := ""
	if ro.DrainRate > 0 {
		drain = fmt.Sprintf(" (the router alone: %s msg/s)", Thousands(ro.DrainRate))
	}
	fmt.Fprintf(w, "| outbox backlog during the load | %s: max %s rows, %s at the end, %+.0f rows/s, empty %v after%s%s |\n",
		verdict, Thousands(float64(ro.BacklogMax)), Thousands(float64(ro.BacklogEnd)), ro.BacklogGrowth,
		time.Duration(ro.DrainedAfter).Round(100*time.Millisecond), drain, pending)
}

// cpu writes the CPU seconds of the Go process (0: none) and of the
// PostgreSQL backends (0: not measured).
func cpu(process, backends float64) string {
	p, b := "", "?"
	if process > 0 {
		p = fmt.Sprintf("%.2f + ", process)
	}
	if backends > 0 {
		b = fmt.Sprintf("%.2f", backends)
	}
	return p + b
}

func alertText(s loadgen.Summary) string {
	if s.Count == 0 {
		return "no alerts"
	}
	return fmt.Sprintf("%s, %s (%s alerts)", loadgen.Millis(s.P50), loadgen.Millis(s.P99), Thousands(float64(s.Count)))
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func mib(kib int64) string { return fmt.Sprintf("%.0f MiB", float64(kib)/1024) }

// Thousands writes f rounded, with commas: 12,345.
func Thousands(f float64) string {
	s := fmt.Sprintf("%.0f", f)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// Seconds returns s in seconds.
func (s Seconds) Seconds() float64 { return time.Duration(s).Seconds() }
