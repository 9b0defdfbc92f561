package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/aortahealth/aorta/internal/logline"
	"github.com/aortahealth/aorta/internal/pgtest"
	"github.com/aortahealth/aorta/pkg/hl7"
	"github.com/aortahealth/aorta/pkg/mllp"
)

// Bounds on the harness's waits. None of them is a sleep that correctness
// depends on: each is the most a poll or an exchange may take before the
// test fails with what it saw.
const (
	// buildTimeout bounds building the listener and router binaries (a
	// cold build cache with -race takes a minute on a small machine).
	buildTimeout = 5 * time.Minute
	// startTimeout bounds a listener's or router's start-up, from exec to
	// the log line that says it is ready.
	startTimeout = 30 * time.Second
	// stopTimeout bounds the wait for a listener or router to exit after
	// SIGTERM (it is larger than any --shutdown-timeout the tests set).
	stopTimeout = 30 * time.Second
	// ioTimeout bounds one MLLP exchange or one database query in a test
	// that does not disturb the database.
	ioTimeout = 10 * time.Second
	// logTailLines is how much of a process's log a failing test prints.
	logTailLines = 200
)

// listenerBin is the mllp-listener binary TestMain built.
var listenerBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "aorta-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		os.Exit(1)
	}
	listenerBin, err = buildBinary(dir, "mllp-listener", "github.com/aortahealth/aorta/cmd/mllp-listener")
	if err == nil {
		routerBin, err = buildBinary(dir, "router", "github.com/aortahealth/aorta/cmd/router") // router_harness_test.go
	}
	if err == nil {
		hl7simBin, err = buildBinary(dir, "hl7sim", "github.com/aortahealth/aorta/cmd/hl7sim") // demo_test.go
	}
	code := 1
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
	} else {
		code = pgtest.Run(m)
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// buildBinary builds the command package pkg into dir/name, with the race
// detector when the tests themselves run with it, so that a data race in
// the listener or the router under these tests' load fails them.
func buildBinary(dir, name, pkg string) (string, error) {
	bin := filepath.Join(dir, name)
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, pkg)
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return bin, nil
}

// --- processes ---

// proc is one process of a binary a test started (a listener or a
// router): its output, line by line, and its exit. listener and routerProc
// embed it.
type proc struct {
	t    *testing.T
	name string // "listener" or "router", in the harness's messages
	// panicMsg is the log message with which the program reports a panic
	// it recovered from; a panic it did not recover from prints "panic:".
	panicMsg string
	// cleanStop requires status 0 when the harness ends the process with
	// SIGTERM as the test ends.
	cleanStop bool
	cmd       *exec.Cmd
	log       *procLog

	exited chan struct{} // closed when the process has exited and its output is read
	state  *os.ProcessState
	// stopping is set when the test or the harness ended the process on
	// purpose: with SIGTERM (a clean exit is then required, by stop, or at
	// cleanup with cleanStop), SIGKILL or SIGQUIT.
	stopping syscall.Signal
}

// logField is a value a process logs once it is up: the first string
// field key of the JSON record whose msg starts with msg.
type logField struct{ msg, key string }

// start runs bin with args and env, waits until its log has given every
// one of fields (the bound addresses, say), and returns their values in
// order. When the test ends the process is stopped with SIGTERM, and its
// log printed if the test failed.
func (p *proc) start(t *testing.T, bin string, args, env []string, fields ...logField) []string {
	t.Helper()
	p.t, p.log, p.exited = t, &procLog{}, make(chan struct{})
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = env
	p.cmd.SysProcAttr = childProcAttr()
	// Stdout and stderr share one pipe, so that the log keeps their order.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatalf("pipe: %v", err)
	}
	p.cmd.Stdout, p.cmd.Stderr = w, w
	if err := p.cmd.Start(); err != nil {
		r.Close()
		w.Close()
		t.Fatalf("start %s: %v", bin, err)
	}
	w.Close()
	values := make([]string, len(fields))
	ready := make(chan struct{})
	go p.readLog(r, fields, values, ready)
	t.Cleanup(p.cleanup)

	timer := time.NewTimer(startTimeout)
	defer timer.Stop()
	select {
	case <-ready:
		return values
	case <-p.exited:
		t.Fatalf("%s exited during start-up (%v); log:\n%s", p.name, p.state, p.log.tail(logTailLines))
	case <-timer.C:
		t.Fatalf("%s not ready within %v; log:\n%s", p.name, startTimeout, p.log.tail(logTailLines))
	}
	return nil
}

// readLog keeps every output line, reads fields from the start-up lines
// into values (closing ready once all are known, and writing no more), and
// reaps the process once its output ends.
func (p *proc) readLog(r io.ReadCloser, fields []logField, values []string, ready chan<- struct{}) {
	defer close(p.exited)
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	signalled := false
	for sc.Scan() {
		line := sc.Text()
		p.log.add(line)
		if signalled {
			continue
		}
		var rec struct {
			Msg string `json:"msg"`
		}
		if json.Unmarshal([]byte(line), &rec) != nil {
			continue
		}
		known := 0
		for i, f := range fields {
			if strings.HasPrefix(rec.Msg, f.msg) {
				values[i] = logline.FirstString([]byte(line), f.key)
			}
			if values[i] != "" {
				known++
			}
		}
		if known == len(fields) {
			signalled = true
			close(ready)
		}
	}
	// Drain anything a scanner error left, so the child never blocks on
	// a full pipe.
	io.Copy(io.Discard, r)
	p.cmd.Wait()
	p.state = p.cmd.ProcessState
}

func (p *proc) cleanup() {
	if !p.hasExited() {
		p.stopping = syscall.SIGTERM
		p.signal(syscall.SIGTERM)
		if !p.waitExit(stopTimeout) {
			p.t.Errorf("%s pid %d still running %v after SIGTERM; killing it", p.name, p.cmd.Process.Pid, stopTimeout)
			p.signal(syscall.SIGKILL)
			p.waitExit(stopTimeout)
		}
	}
	if p.cleanStop && p.stopping == syscall.SIGTERM && p.state != nil && !p.state.Success() {
		p.t.Errorf("%s pid %d exited with %v after SIGTERM, want status 0", p.name, p.cmd.Process.Pid, p.state)
	}
	if p.log.contains("WARNING: DATA RACE") {
		p.t.Errorf("the race detector reported a data race in the %s", p.name)
	}
	if p.log.contains("panic:") || (p.panicMsg != "" && p.log.contains(p.panicMsg)) {
		p.t.Errorf("the %s panicked", p.name)
	}
	if p.t.Failed() {
		p.t.Logf("%s pid %d (%v) log, last %d lines:\n%s", p.name, p.cmd.Process.Pid, p.state, logTailLines, p.log.tail(logTailLines))
	}
}

func (p *proc) signal(sig os.Signal) {
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		p.t.Errorf("signal %v to %s: %v", sig, p.name, err)
	}
}

func (p *proc) hasExited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// waitExit waits up to d for the process to exit.
func (p *proc) waitExit(d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-p.exited:
		return true
	case <-timer.C:
		return false
	}
}

// kill ends the process with SIGKILL, as a crash or the OOM killer would,
// and waits until it is gone.
func (p *proc) kill(t *testing.T) {
	t.Helper()
	p.stopping = syscall.SIGKILL
	p.signal(syscall.SIGKILL)
	if !p.waitExit(stopTimeout) {
		t.Fatalf("%s pid %d still running after SIGKILL", p.name, p.cmd.Process.Pid)
	}
}

// stop ends the process with SIGTERM and requires a clean exit: for the
// router, batches in flight finish and the lanes are released.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	p.stopping = syscall.SIGTERM
	p.signal(syscall.SIGTERM)
	if !p.waitExit(stopTimeout) {
		t.Fatalf("%s pid %d still running %v after SIGTERM", p.name, p.cmd.Process.Pid, stopTimeout)
	}
	if !p.state.Success() {
		t.Fatalf("%s pid %d exited with %v after SIGTERM, want status 0; log:\n%s", p.name, p.cmd.Process.Pid, p.state, p.log.tail(logTailLines))
	}
}

// --- the listener ---

// listener is one mllp-listener process started by a test.
type listener struct {
	proc
	dbURL string
	extra []string // arguments after the harness's own

	MLLPAddr string // bound MLLP address, read back from the log
	HTTPAddr string // bound admin HTTP address
}

// startListener runs the real binary against dbURL on 127.0.0.1 ports the
// kernel picks, waits until its log says it is ready, and stops it with
// SIGTERM when the test ends (printing its log if the test failed). It
// keeps the database pool small: PostgreSQL here allows 100 connections
// and tests run in parallel. extraArgs come last, so they override.
func startListener(t *testing.T, dbURL string, extraArgs ...string) *listener {
	t.Helper()
	args := append([]string{
		"--mllp-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
		"--log-level", "debug", "--db-max-conns", "4",
	}, extraArgs...)
	// cleanStop is off: the listener's exit status after SIGTERM is left
	// to the tests that check it (TestGracefulShutdown).
	l := &listener{proc: proc{name: "listener", panicMsg: "handler panicked"}, dbURL: dbURL, extra: extraArgs}
	addrs := l.start(t, listenerBin, args, listenerEnv(dbURL),
		logField{"admin HTTP listening", "addr"},
		// The first mllp_addr: the line once also carried the configured
		// address (127.0.0.1:0) under the same key, after the bound one;
		// TestReadyLogLineNamesBoundAddress guards against that coming
		// back.
		logField{"mllp-listener ready", "mllp_addr"})
	l.HTTPAddr, l.MLLPAddr = addrs[0], addrs[1]
	t.Logf("listener pid %d: MLLP %s, admin %s", l.cmd.Process.Pid, l.MLLPAddr, l.HTTPAddr)
	return l
}

// restart starts a new listener on the same database with the same
// arguments, as an operator or systemd would after a crash.
func (l *listener) restart(t *testing.T) *listener {
	t.Helper()
	return startListener(t, l.dbURL, l.extra...)
}

// listenerEnv is the environment of a listener (or a router): only what a
// process needs to run, plus DATABASE_URL. The developer's own settings
// (MLLP_ADDR, ON_STORE_FAILURE, ...) must not change what a test runs.
func listenerEnv(dbURL string) []string {
	env := []string{"DATABASE_URL=" + dbURL}
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "GORACE"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// procLog is a process's output, line by line.
type procLog struct {
	mu    sync.Mutex
	lines []string
}

func (p *procLog) add(line string) {
	p.mu.Lock()
	p.lines = append(p.lines, line)
	p.mu.Unlock()
}

func (p *procLog) tail(n int) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	lines := p.lines
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (p *procLog) contains(s string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.lines {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}

// records returns the JSON log records whose msg starts with prefix.
func (p *procLog) records(prefix string) []map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []map[string]any
	for _, l := range p.lines {
		var rec map[string]any
		if json.Unmarshal([]byte(l), &rec) != nil {
			continue
		}
		if msg, _ := rec["msg"].(string); strings.HasPrefix(msg, prefix) {
			out = append(out, rec)
		}
	}
	return out
}

// --- MLLP clients ---

// send delivers one frame on a new connection and returns the answer.
func send(t *testing.T, addr string, frame []byte) []byte {
	t.Helper()
	ack, err := trySend(addr, frame, ioTimeout)
	if err != nil {
		t.Fatalf("send to %s: %v", addr, err)
	}
	return ack
}

// trySend is send for goroutines: it reports instead of failing.
func trySend(addr string, frame []byte, timeout time.Duration) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := mllp.Dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.Send(ctx, frame)
}

// msaOf returns MSA-1 and MSA-2 of an acknowledgement; both are empty when
// it does not parse.
func msaOf(ack []byte) (code, controlID string) {
	m, err := hl7.Parse(ack)
	if err != nil {
		return "", ""
	}
	code, _ = m.Get("MSA-1")
	controlID, _ = m.Get("MSA-2")
	return code, controlID
}

// errCodeOf returns ERR-3.1 (the HL7 table 0357 code) of an
// acknowledgement, "" when there is none.
func errCodeOf(ack []byte) string {
	m, err := hl7.Parse(ack)
	if err != nil {
		return ""
	}
	code, _ := m.Get("ERR-3.1")
	return code
}

// rawConn is an MLLP connection driven byte by byte, for what mllp.Client
// cannot do: garbage, partial frames, frames that get no answer.
type rawConn struct {
	t *testing.T
	c net.Conn
	r *mllp.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, c: c, r: mllp.NewReader(c, mllp.DefaultMaxFrameSize)}
}

// write sends b as is.
func (c *rawConn) write(b []byte) {
	c.t.Helper()
	c.c.SetWriteDeadline(time.Now().Add(ioTimeout))
	if _, err := c.c.Write(b); err != nil {
		c.t.Fatalf("write %d bytes: %v", len(b), err)
	}
}

// writeFrame sends payload inside MLLP framing.
func (c *rawConn) writeFrame(payload []byte) {
	c.t.Helper()
	c.write(frameOf(payload))
}

// readFrame returns the next frame, failing the test if none comes.
func (c *rawConn) readFrame() []byte {
	c.t.Helper()
	c.c.SetReadDeadline(time.Now().Add(ioTimeout))
	f, err := c.r.ReadFrame()
	if err != nil {
		c.t.Fatalf("read answer: %v", err)
	}
	return f
}

// waitClosed waits up to d for the listener to close the connection and
// reports how long that took. It is an error for a frame to arrive
// instead, or for the connection to stay open.
func (c *rawConn) waitClosed(d time.Duration) (time.Duration, error) {
	start := time.Now()
	c.c.SetReadDeadline(start.Add(d))
	f, err := c.r.ReadFrame()
	took := time.Since(start)
	switch {
	case err == nil:
		return took, fmt.Errorf("got a frame %q, want the connection closed", f)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return took, fmt.Errorf("connection still open after %v", d)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET):
		return took, nil
	default:
		return took, fmt.Errorf("read: %w", err)
	}
}

func frameOf(payload []byte) []byte {
	b := make([]byte, 0, len(payload)+3)
	b = append(b, mllp.StartBlock)
	b = append(b, payload...)
	return append(b, mllp.EndBlock, mllp.CarriageReturn)
}

// --- messages ---

// names are patient names, some of them not ASCII.
var names = []string{"DOE^JANE", "Müller^Zoë", "SMITH^JOHN", "Nuñez^José", "Dvořák^Antonín", "O'BRIEN^SEAN", "Øster^Åsa"}

// testMessage returns a distinct valid message from sender s, number n:
// an ADT^A01 or an ORU^R01 with a PID, control ID controlID(s, n), and a
// name that is sometimes not ASCII (declared as UTF-8 in MSH-18).
func testMessage(s, n int) []byte {
	return testMessageWithID(controlID(s, n), s, n)
}

func controlID(s, n int) string { return fmt.Sprintf("S%d-%d", s, n) }

func testMessageWithID(cid string, s, n int) []byte {
	name := names[(s+n)%len(names)]
	charset := ""
	if !isASCII(name) {
		charset = "UNICODE UTF-8"
	}
	mrn := fmt.Sprintf("MRN%03d%02d", s, n%7) // a few messages per patient
	var b strings.Builder
	if n%2 == 0 {
		fmt.Fprintf(&b, "MSH|^~\\&|ADT|HOSP|AORTA|HOSP|20261126120000||ADT^A01^ADT_A01|%s|P|2.5.1||||||%s\r", cid, charset)
		b.WriteString("EVN|A01|20261126120000\r")
		fmt.Fprintf(&b, "PID|1||%s^^^HOSP^MR||%s||19800215|F\r", mrn, name)
		fmt.Fprintf(&b, "PV1|1|I|WARD%d^%d^A\r", s%4, n%30)
	} else {
		fmt.Fprintf(&b, "MSH|^~\\&|LAB|HOSP|AORTA|HOSP|20261126120000||ORU^R01^ORU_R01|%s|P|2.5.1||||||%s\r", cid, charset)
		fmt.Fprintf(&b, "PID|1||%s^^^HOSP^MR||%s||19800215|F\r", mrn, name)
		b.WriteString("OBR|1||X1|8867-4^Heart rate^LN\r")
		fmt.Fprintf(&b, "OBX|1|NM|8867-4^Heart rate^LN||%d|/min|||||F\r", 50+n%80)
	}
	return []byte(b.String())
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// --- database ---

// openDB opens a small pool on a test database, closed when the test ends
// (before pgtest drops the database).
func openDB(t *testing.T, dbURL string) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		t.Fatalf("parse %s: %v", dbURL, err)
	}
	cfg.MaxConns = 2
	cfg.ConnConfig.RuntimeParams["application_name"] = "aorta-integration-test"
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatalf("open database: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// queryRow runs a query returning one row and scans it, failing the test
// on error.
func queryRow(t *testing.T, db *pgxpool.Pool, sql string, args []any, dest ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	if err := db.QueryRow(ctx, sql, args...).Scan(dest...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func count(t *testing.T, db *pgxpool.Pool, sql string, args ...any) int {
	t.Helper()
	var n int
	queryRow(t, db, sql, args, &n)
	return n
}

// storedMessage is one messages row and whether it has an outbox row.
type storedMessage struct {
	ControlID      string
	Raw            []byte
	Status         string
	AckCode        string
	Ack            []byte
	ErrorCode      int
	DuplicateCount int
	Reused         bool
	Outbox         int // outbox rows for this message
}

// storedByControlID returns every message row, grouped by control ID.
func storedByControlID(t *testing.T, db *pgxpool.Pool) map[string][]storedMessage {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	rows, err := db.Query(ctx, `SELECT m.control_id, m.raw, m.status, coalesce(m.ack_code, ''), m.ack,
			coalesce(m.error_code, 0), m.duplicate_count, m.control_id_reused,
			(SELECT count(*) FROM outbox o WHERE o.message_id = m.id)
		FROM messages m ORDER BY m.id`)
	if err != nil {
		t.Fatalf("query messages: %v", err)
	}
	defer rows.Close()
	out := map[string][]storedMessage{}
	for rows.Next() {
		var m storedMessage
		if err := rows.Scan(&m.ControlID, &m.Raw, &m.Status, &m.AckCode, &m.Ack, &m.ErrorCode, &m.DuplicateCount, &m.Reused, &m.Outbox); err != nil {
			t.Fatalf("scan messages: %v", err)
		}
		out[m.ControlID] = append(out[m.ControlID], m)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("query messages: %v", err)
	}
	return out
}

// waitForRaw polls until a messages row holds exactly raw, and returns it.
func waitForRaw(t *testing.T, db *pgxpool.Pool, raw []byte) storedMessage {
	t.Helper()
	var m storedMessage
	eventually(t, ioTimeout, "a messages row holding the bytes sent", func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
		defer cancel()
		err := db.QueryRow(ctx, `SELECT m.control_id, m.raw, m.status, coalesce(m.ack_code, ''), m.ack,
				coalesce(m.error_code, 0), m.duplicate_count, m.control_id_reused,
				(SELECT count(*) FROM outbox o WHERE o.message_id = m.id)
			FROM messages m WHERE m.raw = $1`, raw).
			Scan(&m.ControlID, &m.Raw, &m.Status, &m.AckCode, &m.Ack, &m.ErrorCode, &m.DuplicateCount, &m.Reused, &m.Outbox)
		if err != nil {
			return false, err.Error()
		}
		return true, ""
	})
	return m
}

// withHost returns dbURL pointing at another host:port, same database.
func withHost(t *testing.T, dbURL, hostPort string) string {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatalf("parse %s: %v", dbURL, err)
	}
	u.Host = hostPort
	return u.String()
}

// databaseName returns the database a URL names.
func databaseName(t *testing.T, dbURL string) string {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatalf("parse %s: %v", dbURL, err)
	}
	return strings.TrimPrefix(u.Path, "/")
}

// --- polling ---

// eventually polls cond every 20 ms until it holds, failing the test with
// cond's last explanation after timeout.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s: %s", timeout, what, why)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// --- admin endpoints ---

// httpGet fetches an admin URL and returns the status code and body.
func httpGet(addr, path string) (int, string, error) {
	c := http.Client{Timeout: ioTimeout}
	resp, err := c.Get("http://" + addr + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// metrics is a scrape of /metrics: sample value by series, where a series
// is the metric name with its labels as exposed, e.g.
// aorta_store_failures_total{action="close"}.
type metrics map[string]float64

func scrape(t *testing.T, httpAddr string) metrics {
	t.Helper()
	code, body, err := httpGet(httpAddr, "/metrics")
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v", code, err)
	}
	m := metrics{}
	for _, line := range strings.Split(body, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		m[line[:i]] = v
	}
	return m
}

// sum adds every series of one metric name, whatever its labels.
func (m metrics) sum(name string) float64 {
	var total float64
	for series, v := range m {
		if series == name || strings.HasPrefix(series, name+"{") {
			total += v
		}
	}
	return total
}

// has reports whether any series of the metric name is exposed.
func (m metrics) has(name string) bool {
	for series := range m {
		if series == name || strings.HasPrefix(series, name+"{") {
			return true
		}
	}
	return false
}
