package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/aortahealth/aorta/internal/envflag"
	"github.com/aortahealth/aorta/internal/logline"
)

// demoDatabase is make demo's database, on the same server as the
// development one. It holds simulated patients only and is emptied at
// every start.
const demoDatabase = "aorta_demo"

// pollInterval is how often the demo reads new events.
const pollInterval = 500 * time.Millisecond

// demoBanner tells what the demo is, where its data and logs are, and how
// to stop it.
func demoBanner(w io.Writer, source, dbURL, addr, logPath string) {
	fmt.Fprintf(w, "\nAorta demo: a simulated feed of fictional patients (MRNs SIM0001 ...), sent over MLLP\n"+
		"to the listener on %s and turned into events by the router with routes.yaml.\n"+
		"  Database: %s (PostgreSQL from %s; emptied at each start, never your %s database)\n"+
		"  Engine logs: %s (warnings and errors are shown here too)\n"+
		"  SIM0001 deteriorates: an emergency NEWS2 alert follows at its 7th reading (30 s at the default interval).\n"+
		"  Ctrl-C stops everything.\n\n"+
		"TIME      +SINCE   PATIENT  EVENT\n",
		addr, envflag.RedactURL(dbURL), source, devDatabase, logPath)
}

// --- the engine's logs ---

// demoLogs is where the demo's processes write: every line to a file, and
// to the terminal only the lines a person must see.
type demoLogs struct {
	path string
	mu   sync.Mutex // serialises writes to file and term
	file *os.File
	term io.Writer
}

func openDemoLogs(path string, term io.Writer) (*demoLogs, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("demo log: %w", err)
	}
	return &demoLogs{path: path, file: f, term: term}, nil
}

func (d *demoLogs) Close() error { return d.file.Close() }

// writer returns the writer of one process's stdout and stderr; onLine,
// when not nil, sees every line.
func (d *demoLogs) writer(name string, onLine func(line string)) *lineWriter {
	return &lineWriter{logs: d, name: name, onLine: onLine}
}

// lineWriter splits a process's output into lines. exec.Cmd copies the
// output of one process into it from one goroutine.
type lineWriter struct {
	logs   *demoLogs
	name   string
	onLine func(line string)
	buf    []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.line(string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}

// flush writes a last line that had no newline; call it once the process
// has exited.
func (w *lineWriter) flush() {
	if len(w.buf) > 0 {
		w.line(string(w.buf))
		w.buf = nil
	}
}

func (w *lineWriter) line(l string) {
	if w.onLine != nil {
		w.onLine(l)
	}
	w.logs.mu.Lock()
	defer w.logs.mu.Unlock()
	fmt.Fprintf(w.logs.file, "%s: %s\n", w.name, l)
	if notable(l) {
		fmt.Fprintf(w.logs.term, "%s: %s\n", w.name, l)
	}
}

// notable reports whether a line of a process's output belongs on the
// terminal: a warning or an error logged with log/slog (JSON or text), or
// anything that is not a log record (a start-up failure, a panic).
func notable(line string) bool {
	s := strings.TrimSpace(line)
	switch {
	case s == "":
		return false
	case strings.HasPrefix(s, "{"):
		var rec struct {
			Level string `json:"level"`
		}
		if json.Unmarshal([]byte(s), &rec) != nil {
			return true
		}
		return rec.Level != "DEBUG" && rec.Level != "INFO"
	case strings.HasPrefix(s, "time="):
		return !strings.Contains(s, " level=DEBUG ") && !strings.Contains(s, " level=INFO ")
	}
	return true
}

// listenerReady returns an onLine function that sends, once, the MLLP
// address the listener's ready line reports.
func listenerReady(ready chan<- string) func(string) {
	var once sync.Once
	return func(line string) {
		if !strings.HasPrefix(line, "{") {
			return
		}
		var rec struct {
			Msg string `json:"msg"`
		}
		if json.Unmarshal([]byte(line), &rec) != nil || !strings.HasPrefix(rec.Msg, "mllp-listener ready") {
			return
		}
		if addr := logline.FirstString([]byte(line), "mllp_addr"); addr != "" {
			once.Do(func() { ready <- addr })
		}
	}
}

// --- the events ---

// tailedTypes are the event types the demo shows: the observations
// themselves are left out, they are what the scores summarise.
const tailedTypes = `type IN ('patient.admitted', 'patient.transferred', 'patient.discharged', 'score.calculated', 'score.skipped')
	OR type LIKE 'alert.%'`

// tailer prints the events the engine writes, in seq (commit) order, as
// docs/events.md describes following the table.
type tailer struct {
	url    string
	out    io.Writer
	began  time.Time
	conn   *pgx.Conn // nil after an error: reconnected at the next poll
	last   int64
	shown  map[string]bool // score.skipped already shown, by patient and score
	color  bool            // out is a terminal: colour the alerts
	warned bool

	cancel context.CancelFunc
	done   chan struct{}
}

// newTailer connects and starts after the events already there (none, in
// a fresh demo database).
func newTailer(ctx context.Context, dbURL string, out io.Writer, began time.Time) (*tailer, error) {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return nil, fmt.Errorf("connect to read events: %w", err)
	}
	t := &tailer{url: dbURL, out: out, began: began, conn: conn, shown: map[string]bool{}}
	if f, ok := out.(*os.File); ok {
		t.color = colorful(f)
	}
	if err := conn.QueryRow(ctx, `SELECT coalesce(max(seq), 0) FROM events`).Scan(&t.last); err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("read events: %w", err)
	}
	return t, nil
}

// start polls every pollInterval until ctx ends or stop is called.
func (t *tailer) start(ctx context.Context) {
	ctx, t.cancel = context.WithCancel(ctx)
	t.done = make(chan struct{})
	go func() {
		defer close(t.done)
		tick := time.NewTicker(pollInterval)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				t.poll(ctx)
			}
		}
	}()
}

// stop ends the polling and reads once more, for the events written while
// the engine was stopping.
func (t *tailer) stop() {
	if t.cancel != nil {
		t.cancel()
		<-t.done
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	t.poll(ctx)
}

func (t *tailer) close() {
	if t.conn != nil {
		t.conn.Close(context.Background())
	}
}

// tailedEvent is what the demo reads of an event.
type tailedEvent struct {
	Seq        int64
	Type       string
	OccurredAt time.Time
	PatientID  string
	Payload    []byte
}

func (t *tailer) poll(ctx context.Context) {
	if err := t.read(ctx); err != nil && ctx.Err() == nil {
		if !t.warned {
			fmt.Fprintf(os.Stderr, "demo: reading events: %v (retrying)\n", err)
			t.warned = true
		}
		if t.conn != nil {
			t.conn.Close(context.WithoutCancel(ctx))
			t.conn = nil
		}
	}
}

func (t *tailer) read(ctx context.Context) error {
	if t.conn == nil {
		c, err := pgx.Connect(ctx, t.url)
		if err != nil {
			return err
		}
		t.conn = c
	}
	rows, err := t.conn.Query(ctx, `SELECT seq, type, occurred_at, coalesce(patient_id, ''), payload
		FROM events WHERE seq > $1 AND (`+tailedTypes+`) ORDER BY seq LIMIT 1000`, t.last)
	if err != nil {
		return err
	}
	var evs []tailedEvent
	for rows.Next() {
		var e tailedEvent
		if err := rows.Scan(&e.Seq, &e.Type, &e.OccurredAt, &e.PatientID, &e.Payload); err != nil {
			rows.Close()
			return err
		}
		evs = append(evs, e)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for _, e := range evs {
		t.last = e.Seq
		if line, ok := formatEvent(e, t.began, t.shown, t.color); ok {
			fmt.Fprintln(t.out, line)
		}
	}
	t.warned = false
	return nil
}

// formatEvent renders one event as a line: its clinical time, the time
// since the demo began, the patient and what happened; with color, alerts
// stand out. shown remembers the score.skipped already printed: a child's
// scores are skipped at every reading, and once per patient and score
// says it.
func formatEvent(e tailedEvent, began time.Time, shown map[string]bool, color bool) (string, bool) {
	var p payload
	if err := json.Unmarshal(e.Payload, &p); err != nil {
		return fmt.Sprintf("%s%s: unreadable payload: %v", prefix(e, began), e.Type, err), true
	}
	var what string
	switch {
	case strings.HasPrefix(e.Type, "patient."):
		what = fmt.Sprintf("%-15s %s", strings.TrimPrefix(e.Type, "patient."), p.patientText())
	case e.Type == "score.calculated":
		state := "complete"
		if !p.Complete {
			state = "incomplete, missing " + strings.Join(p.Missing, " ")
		}
		if p.CurrentPicture {
			// A reading arrived after a later one (or with it, in one
			// batch): the router scored it at its own time, then the
			// patient's latest picture again.
			state += " (current picture)"
		}
		what = fmt.Sprintf("%-15s %2d  %-10s %s", p.Score, p.Total, p.Risk, state)
	case e.Type == "score.skipped":
		key := e.PatientID + "/" + p.Score
		if shown[key] {
			return "", false
		}
		shown[key] = true
		what = fmt.Sprintf("%-15s skipped: %s (not shown again)", p.Score, p.Reason)
	case strings.HasPrefix(e.Type, "alert."):
		verb := strings.TrimPrefix(e.Type, "alert.")
		severity := p.Severity
		if p.PreviousSeverity != "" {
			severity = p.PreviousSeverity + " -> " + severity
		}
		label := "alert " + verb
		if verb == "raised" || verb == "escalated" {
			label = strings.ToUpper(label)
		}
		what = fmt.Sprintf("%-15s %s: %s %d (%s), rule %s", label, severity, p.Score, p.Total, p.Risk, p.Rule)
		if p.Location != "" {
			what += ", at " + locationText(p.Location)
		}
		if color {
			switch verb {
			case "raised", "escalated", "renotified":
				what = ansiAlert + what + ansiReset
			case "resolved":
				what = ansiResolved + what + ansiReset
			}
		}
	default:
		what = e.Type
	}
	return prefix(e, began) + what, true
}

// ANSI colours of alert lines on a terminal.
const (
	ansiAlert    = "\033[1;31m" // bold red
	ansiResolved = "\033[32m"   // green
	ansiReset    = "\033[0m"
)

// colorful reports whether f is a terminal that accepts colours
// (https://no-color.org: NO_COLOR set turns them off).
func colorful(f *os.File) bool {
	if _, off := os.LookupEnv("NO_COLOR"); off {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0 && os.Getenv("TERM") != "dumb"
}

// prefix is the time, the time since the demo began and the patient.
func prefix(e tailedEvent, began time.Time) string {
	since := e.OccurredAt.Sub(began).Round(time.Second)
	if since < 0 {
		since = 0
	}
	return fmt.Sprintf("%s  %-7s  %-8s ", e.OccurredAt.Local().Format("15:04:05"), "+"+since.String(), e.PatientID)
}

// payload holds the keys the demo shows, of every type it tails
// (docs/events.md).
type payload struct {
	// patient.*
	Patient struct {
		Name struct {
			Family, Given string
		}
		BirthDate string `json:"birth_date"`
		Sex       string
	}
	Visit *struct {
		Location *struct {
			PointOfCare string `json:"point_of_care"`
			Room, Bed   string
		}
		VisitNumber string `json:"visit_number"`
	}
	// score.* and alert.*
	Score    string
	Total    int
	Risk     string
	Complete bool
	Missing  []string
	Reason   string
	// CurrentPicture: a score at a later time than the message's own.
	CurrentPicture bool `json:"current_picture"`
	// alert.*
	Rule             string
	Severity         string
	PreviousSeverity string `json:"previous_severity"`
	Location         string
}

func (p payload) patientText() string {
	s := strings.TrimSpace(p.Patient.Name.Given + " " + p.Patient.Name.Family)
	var details []string
	if p.Patient.Sex != "" {
		details = append(details, p.Patient.Sex)
	}
	if p.Patient.BirthDate != "" {
		details = append(details, "born "+p.Patient.BirthDate)
	}
	if len(details) > 0 {
		s += " (" + strings.Join(details, ", ") + ")"
	}
	if v := p.Visit; v != nil {
		if l := v.Location; l != nil {
			s += ", " + locationText(strings.Join([]string{l.PointOfCare, l.Room, l.Bed}, "^"))
		}
		if v.VisitNumber != "" {
			s += ", visit " + v.VisitNumber
		}
	}
	return s
}

// locationText shows a PV1-3 location (point of care^room^bed^facility)
// as ward/room/bed.
func locationText(l string) string {
	parts := strings.Split(l, "^")
	if len(parts) > 3 {
		parts = parts[:3]
	}
	var keep []string
	for _, p := range parts {
		if p != "" {
			keep = append(keep, p)
		}
	}
	return strings.Join(keep, "/")
}
