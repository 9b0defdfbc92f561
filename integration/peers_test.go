package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aortahealth/aorta/internal/pgtest"
	"github.com/aortahealth/aorta/pkg/mllp"
)

// The tests in this file are peers that break the rules: garbage outside
// frames, frames too large or never finished, frames sent back to back or
// a byte at a time, too many connections. Each is bounded, counted, and
// costs the other connections nothing.

// TestGarbageBytes: bytes outside frames are dropped and counted, a frame
// after them is still answered, and a peer that sends only garbage or
// speaks another protocol is closed within a bound.
func TestGarbageBytes(t *testing.T) {
	t.Parallel()
	const maxDiscard = 1024
	dbURL := pgtest.NewDatabase(t)
	db := openDB(t, dbURL)
	l := startListener(t, dbURL, "--max-discard", fmt.Sprint(maxDiscard), "--idle-timeout", "2s")

	// Noise before a frame, and a line feed between frames (common
	// sender habits), cost nothing.
	noise := []byte("\r\n\n  \x00\xff stray bytes from a previous session \x1c\r")
	c := dialRaw(t, l.MLLPAddr)
	c.write(append(bytes.Clone(noise), frameOf(testMessage(1, 1))...))
	if code, msa2 := msaOf(c.readFrame()); code != "AA" || msa2 != controlID(1, 1) {
		t.Errorf("frame after garbage: MSA %s/%s, want AA/%s", code, msa2, controlID(1, 1))
	}
	c.write(append([]byte("\n"), frameOf(testMessage(1, 2))...))
	if code, msa2 := msaOf(c.readFrame()); code != "AA" || msa2 != controlID(1, 2) {
		t.Errorf("frame after a line feed: MSA %s/%s, want AA/%s", code, msa2, controlID(1, 2))
	}
	discardedOK := len(noise) + 1
	c.c.Close() // between frames: a normal close, not counted anywhere

	// More than max-discard bytes outside a frame: closed.
	garbage := bytes.Repeat([]byte("not an MLLP frame "), 2*maxDiscard/18+1)
	g := dialRaw(t, l.MLLPAddr)
	g.write(garbage)
	if took, err := g.waitClosed(ioTimeout); err != nil {
		t.Errorf("%d bytes of garbage: %v", len(garbage), err)
	} else {
		t.Logf("garbage connection closed after %v", took.Round(time.Millisecond))
	}

	// An HTTP request (a health checker or a browser pointed at the wrong
	// port): no answer, closed by the idle timeout.
	req := []byte("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: probe\r\n\r\n")
	h := dialRaw(t, l.MLLPAddr)
	h.write(req)
	if took, err := h.waitClosed(ioTimeout); err != nil {
		t.Errorf("HTTP request: %v", err)
	} else {
		t.Logf("HTTP connection closed after %v", took.Round(time.Millisecond))
	}

	m := scrape(t, l.HTTPAddr)
	minDiscarded := float64(discardedOK + maxDiscard + 1 + len(req))
	maxDiscarded := float64(discardedOK + len(garbage) + len(req))
	if got := m.sum("aorta_mllp_discarded_bytes_total"); got < minDiscarded || got > maxDiscarded {
		t.Errorf("aorta_mllp_discarded_bytes_total = %v, want %v to %v", got, minDiscarded, maxDiscarded)
	}
	if got := m.sum("aorta_mllp_garbage_closed_total"); got != 1 {
		t.Errorf("aorta_mllp_garbage_closed_total = %v, want 1", got)
	}
	if got := m.sum("aorta_mllp_idle_timeouts_total"); got != 1 {
		t.Errorf("aorta_mllp_idle_timeouts_total = %v, want 1 (the HTTP request)", got)
	}
	if n := count(t, db, `SELECT count(*) FROM messages`); n != 2 {
		t.Errorf("messages has %d rows, want the 2 real frames", n)
	}
}

// sizedMessage returns a valid message of exactly size bytes, padded in an
// NTE segment.
func sizedMessage(t *testing.T, cid string, size int) []byte {
	t.Helper()
	head := fmt.Sprintf("MSH|^~\\&|LAB|HOSP|AORTA|HOSP|20261126120000||ORU^R01^ORU_R01|%s|P|2.5.1\r"+
		"PID|1||MRN9^^^HOSP^MR||DOE^JANE\rOBX|1|NM|8867-4^Heart rate^LN||88|/min|||||F\rNTE|1||", cid)
	pad := size - len(head) - 1
	if pad < 0 {
		t.Fatalf("message cannot be as small as %d bytes", size)
	}
	text := strings.Repeat("Patient resting comfortably. ", pad/29+1)[:pad]
	return []byte(head + text + "\r")
}

// TestOversizeFrame: a frame over --max-frame-size closes the connection
// unanswered and stores nothing; one exactly at the limit is accepted.
func TestOversizeFrame(t *testing.T) {
	t.Parallel()
	const limit = 4096
	dbURL := pgtest.NewDatabase(t)
	db := openDB(t, dbURL)
	l := startListener(t, dbURL, "--max-frame-size", fmt.Sprint(limit))

	tooLarge := 0.0
	for _, tt := range []struct {
		name   string
		size   int
		accept bool
	}{
		{"10 kB", 10 << 10, false},
		{"one byte over", limit + 1, false},
		{"exactly the limit", limit, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cid := "BIG-" + fmt.Sprint(tt.size)
			frame := sizedMessage(t, cid, tt.size)
			c := dialRaw(t, l.MLLPAddr)
			c.writeFrame(frame)
			if tt.accept {
				if code, msa2 := msaOf(c.readFrame()); code != "AA" || msa2 != cid {
					t.Errorf("%d-byte frame: MSA %s/%s, want AA/%s", tt.size, code, msa2, cid)
				}
				if row := waitForRaw(t, db, frame); row.ControlID != cid {
					t.Errorf("stored control ID %q, want %s", row.ControlID, cid)
				}
				return
			}
			if _, err := c.waitClosed(ioTimeout); err != nil {
				t.Errorf("%d-byte frame: %v", tt.size, err)
			}
			tooLarge++
			if got := scrape(t, l.HTTPAddr).sum("aorta_mllp_frames_too_large_total"); got != tooLarge {
				t.Errorf("aorta_mllp_frames_too_large_total = %v, want %v", got, tooLarge)
			}
		})
	}
	// The accepted frame was answered after the rejected ones closed, and
	// a closed frame never reaches the handler: only one row may exist.
	if n := count(t, db, `SELECT count(*) FROM messages`); n != 1 {
		t.Errorf("messages has %d rows, want only the frame at the limit", n)
	}
}

// TestStalledFrame: a peer that starts a frame and stops sending is closed
// after --frame-timeout, nothing of it is stored, and other connections
// are served meanwhile.
func TestStalledFrame(t *testing.T) {
	t.Parallel()
	const frameTimeout = 500 * time.Millisecond
	dbURL := pgtest.NewDatabase(t)
	db := openDB(t, dbURL)
	l := startListener(t, dbURL, "--frame-timeout", frameTimeout.String())

	stalled := frameOf(testMessage(1, 1))
	c := dialRaw(t, l.MLLPAddr)
	start := time.Now()
	c.write(stalled[:len(stalled)/2])

	// Another sender is not held up.
	ack := send(t, l.MLLPAddr, testMessage(2, 1))
	if code, msa2 := msaOf(ack); code != "AA" || msa2 != controlID(2, 1) {
		t.Errorf("other connection: MSA %s/%s, want AA/%s", code, msa2, controlID(2, 1))
	}
	served := time.Since(start)

	if _, err := c.waitClosed(ioTimeout); err != nil {
		t.Fatalf("stalled connection: %v", err)
	}
	closed := time.Since(start)
	if closed < frameTimeout-50*time.Millisecond {
		t.Errorf("stalled connection closed after %v, before the %v frame timeout", closed, frameTimeout)
	}
	if served > closed {
		t.Errorf("the other connection was answered after %v, only after the stalled one closed (%v)", served, closed)
	}
	t.Logf("other connection answered after %v; stalled connection closed after %v", served.Round(time.Millisecond), closed.Round(time.Millisecond))
	if got := scrape(t, l.HTTPAddr).sum("aorta_mllp_frame_timeouts_total"); got != 1 {
		t.Errorf("aorta_mllp_frame_timeouts_total = %v, want 1", got)
	}
	if n := count(t, db, `SELECT count(*) FROM messages`); n != 1 {
		t.Errorf("messages has %d rows, want only the other connection's", n)
	}
}

// TestFraming: frames sent back to back without waiting are answered in
// order; a frame trickling in one byte per write is reassembled; framing
// bytes that do not end a frame (a lone 0x1C, a second 0x0B) are payload
// and kept in raw; a frame cut short by a close or a reset is dropped and
// counted, and its re-send stored once.
func TestFraming(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t)
	db := openDB(t, dbURL)
	l := startListener(t, dbURL)

	t.Run("pipelined", func(t *testing.T) {
		c := dialRaw(t, l.MLLPAddr)
		var burst []byte
		for n := range 5 {
			burst = append(burst, frameOf(testMessage(1, n))...)
		}
		c.write(burst)
		for n := range 5 {
			if code, msa2 := msaOf(c.readFrame()); code != "AA" || msa2 != controlID(1, n) {
				t.Errorf("answer %d: MSA %s/%s, want AA/%s (in sending order)", n, code, msa2, controlID(1, n))
			}
		}
	})
	t.Run("one byte per write", func(t *testing.T) {
		c := dialRaw(t, l.MLLPAddr)
		for _, b := range frameOf(testMessage(2, 1)) {
			c.write([]byte{b})
		}
		if code, msa2 := msaOf(c.readFrame()); code != "AA" || msa2 != controlID(2, 1) {
			t.Errorf("MSA %s/%s, want AA/%s", code, msa2, controlID(2, 1))
		}
	})
	t.Run("framing bytes inside the payload", func(t *testing.T) {
		frame := append(testMessageWithID("FRAMING-1", 3, 1), "NTE|1||lone \x1c and \x0b bytes\r"...)
		c := dialRaw(t, l.MLLPAddr)
		c.writeFrame(frame)
		if code, msa2 := msaOf(c.readFrame()); code != "AA" || msa2 != "FRAMING-1" {
			t.Errorf("MSA %s/%s, want AA/FRAMING-1", code, msa2)
		}
		waitForRaw(t, db, frame)
	})
	t.Run("disconnected mid-frame", func(t *testing.T) {
		// A sender that dies mid-frame: half a frame then a close, and
		// all of a frame but its end bytes then a reset. Neither is
		// stored or answered; each is counted as a read error; the
		// sender's re-send on a new connection is stored once.
		payload := testMessageWithID("MIDFRAME-1", 4, 1)
		frame := frameOf(payload)
		before := scrape(t, l.HTTPAddr).sum("aorta_mllp_read_errors_total")
		half := dialRaw(t, l.MLLPAddr)
		half.write(frame[:len(frame)/2])
		half.c.Close()
		reset := dialRaw(t, l.MLLPAddr)
		reset.write(frame[:len(frame)-2])
		if err := reset.c.(*net.TCPConn).SetLinger(0); err != nil { // close sends RST
			t.Fatal(err)
		}
		reset.c.Close()
		eventually(t, ioTimeout, "two read errors counted", func() (bool, string) {
			v := scrape(t, l.HTTPAddr).sum("aorta_mllp_read_errors_total") - before
			return v == 2, fmt.Sprintf("aorta_mllp_read_errors_total moved by %v", v)
		})
		if n := count(t, db, `SELECT count(*) FROM messages WHERE control_id = 'MIDFRAME-1'`); n != 0 {
			t.Fatalf("%d rows stored from frames cut short, want none", n)
		}
		if code, msa2 := msaOf(send(t, l.MLLPAddr, payload)); code != "AA" || msa2 != "MIDFRAME-1" {
			t.Errorf("re-send: MSA %s/%s, want AA/MIDFRAME-1", code, msa2)
		}
		if n := count(t, db, `SELECT count(*) FROM messages WHERE control_id = 'MIDFRAME-1'`); n != 1 {
			t.Errorf("%d rows stored after the re-send, want 1", n)
		}
		t.Logf("half a frame then FIN, all but the end bytes then RST: neither stored nor answered, 2 read errors counted; the re-send stored once")
	})
}

// TestMaxConnections: a connection beyond --max-connections is closed at
// once and counted; once a slot is free, a new connection is served.
func TestMaxConnections(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t)
	l := startListener(t, dbURL, "--max-connections", "2")

	held := []*rawConn{dialRaw(t, l.MLLPAddr), dialRaw(t, l.MLLPAddr)}
	eventually(t, ioTimeout, "2 open connections", func() (bool, string) {
		v := scrape(t, l.HTTPAddr).sum("aorta_mllp_open_connections")
		return v == 2, fmt.Sprintf("%v open", v)
	})
	extra := dialRaw(t, l.MLLPAddr)
	if _, err := extra.waitClosed(ioTimeout); err != nil {
		t.Errorf("third connection: %v", err)
	}
	if got := scrape(t, l.HTTPAddr).sum("aorta_mllp_connections_refused_total"); got != 1 {
		t.Errorf("aorta_mllp_connections_refused_total = %v, want 1", got)
	}
	// The held connections still work.
	held[0].writeFrame(testMessage(1, 1))
	if code, msa2 := msaOf(held[0].readFrame()); code != "AA" || msa2 != controlID(1, 1) {
		t.Errorf("held connection: MSA %s/%s, want AA/%s", code, msa2, controlID(1, 1))
	}
	held[1].c.Close()
	eventually(t, ioTimeout, "a free slot", func() (bool, string) {
		v := scrape(t, l.HTTPAddr).sum("aorta_mllp_open_connections")
		return v == 1, fmt.Sprintf("%v open", v)
	})
	if code, msa2 := msaOf(send(t, l.MLLPAddr, testMessage(1, 2))); code != "AA" || msa2 != controlID(1, 2) {
		t.Errorf("new connection after a slot freed: MSA %s/%s, want AA/%s", code, msa2, controlID(1, 2))
	}
}

// TestSlowLoris: peers that open a frame and then dribble one byte every
// 200 ms, never ending it (slowloris: each byte would reset a per-read
// timeout), are closed --frame-timeout after the frame began, counted, and
// store nothing; meanwhile a sender on another connection is answered as
// fast as before they came.
func TestSlowLoris(t *testing.T) {
	t.Parallel()
	const (
		frameTimeout = 2 * time.Second
		lorises      = 20
		drip         = 200 * time.Millisecond
		// closeSlack is how late after the frame timeout a loris may be
		// closed: scheduling on a loaded machine, and one drip.
		closeSlack = 2 * time.Second
	)
	dbURL := pgtest.NewDatabase(t)
	db := openDB(t, dbURL)
	l := startListener(t, dbURL, "--frame-timeout", frameTimeout.String())

	normal := startNormalSender(t, l.MLLPAddr, 1, 25*time.Millisecond)
	baseline := normal.waitCount(t, 20)

	frame := frameOf(testMessageWithID("LORIS", 9, 1))
	type result struct {
		bytes  int
		closed time.Duration // from the start byte
		err    error
	}
	results := make(chan result, lorises)
	for range lorises {
		go func() {
			c, err := net.DialTimeout("tcp", l.MLLPAddr, ioTimeout)
			if err != nil {
				results <- result{err: err}
				return
			}
			defer c.Close()
			start := time.Now()
			buf := make([]byte, 64)
			// Everything but the end bytes, one byte per drip; the wait
			// between bytes is a read, which sees the close at once.
			for n := 0; n < len(frame)-2; n++ {
				c.SetWriteDeadline(time.Now().Add(ioTimeout))
				if _, err := c.Write(frame[n : n+1]); err != nil {
					results <- result{bytes: n, closed: time.Since(start)}
					return
				}
				c.SetReadDeadline(time.Now().Add(drip))
				k, err := c.Read(buf)
				switch {
				case k > 0:
					results <- result{bytes: n + 1, err: fmt.Errorf("got %q, want no answer", buf[:k])}
					return
				case errors.Is(err, os.ErrDeadlineExceeded):
					continue // still open: next byte
				default:
					results <- result{bytes: n + 1, closed: time.Since(start)}
					return
				}
			}
			results <- result{bytes: len(frame) - 2, err: fmt.Errorf("still open after the whole frame but its end, %v", time.Since(start))}
		}()
	}
	var first, last time.Duration
	maxBytes := 0
	for i := range lorises {
		r := <-results
		if r.err != nil {
			t.Errorf("loris: %v", r.err)
			continue
		}
		if r.closed < frameTimeout-50*time.Millisecond || r.closed > frameTimeout+closeSlack {
			t.Errorf("loris closed %v after its start byte, want %v to %v", r.closed.Round(time.Millisecond), frameTimeout, frameTimeout+closeSlack)
		}
		if i == 0 || r.closed < first {
			first = r.closed
		}
		last, maxBytes = max(last, r.closed), max(maxBytes, r.bytes)
	}
	during := normal.stop(t)

	m := scrape(t, l.HTTPAddr)
	if got := m.sum("aorta_mllp_frame_timeouts_total"); got != lorises {
		t.Errorf("aorta_mllp_frame_timeouts_total = %v, want %d", got, lorises)
	}
	if n := count(t, db, `SELECT count(*) FROM messages WHERE control_id = 'LORIS'`); n != 0 {
		t.Errorf("%d rows stored from the lorises, want none", n)
	}
	stored := count(t, db, `SELECT count(*) FROM messages`)
	if stored != normal.acked() {
		t.Errorf("%d rows stored, want the normal sender's %d", stored, normal.acked())
	}
	t.Logf("%d lorises dripping a byte every %v (up to %d bytes each) closed %v to %v after their start byte (frame timeout %v); aorta_mllp_frame_timeouts_total %v",
		lorises, drip, maxBytes, first.Round(time.Millisecond), last.Round(time.Millisecond), frameTimeout, m.sum("aorta_mllp_frame_timeouts_total"))
	t.Logf("normal sender: %d messages sent, %d ACKed, %d stored; ACK latency before the lorises %s; while they dripped %s",
		normal.sent(), normal.acked(), stored, quantiles(baseline), quantiles(during))
	// Under the lorises the sender must not wait for any of them: not
	// one of its messages may take as long as a frame timeout.
	if len(during) == 0 {
		t.Errorf("the normal sender sent nothing while the lorises dripped")
	} else if worst := time.Duration(quantileMax(during) * float64(time.Second)); worst >= frameTimeout {
		t.Errorf("the normal sender waited %v for an ACK while the lorises dripped: held up by them", worst)
	}
}

// TestEndlessFrame: three peers each start a frame and stream 100 MB
// without an end byte. While their frames are half-way to --max-frame-size
// a sender on another connection is answered as usual; then each is
// closed once it passes the limit, having been able to write little more
// than the limit and the socket buffers; the listener's memory (its peak
// resident set, VmHWM) grows by a bounded amount, nowhere near what was
// sent.
func TestEndlessFrame(t *testing.T) {
	t.Parallel()
	const (
		limit  = 4 << 20   // --max-frame-size
		flood  = 100 << 20 // what each peer tries to send
		floods = 3
		chunk  = 64 << 10
		// slack is what a peer may write past the limit before it sees
		// the close: the kernel's send and receive buffers on loopback
		// (a few MiB each at most) and the listener's read buffer.
		slack = 32 << 20
		// maxGrowth bounds the listener's peak memory above its resident
		// set before the floods: each peer's payload buffer up to the
		// limit (with append's doubling) and, under -race, the detector's
		// shadow of it. Far below the 300 MB sent.
		maxGrowth = 128 << 20
	)
	dbURL := pgtest.NewDatabase(t)
	db := openDB(t, dbURL)
	l := startListener(t, dbURL, "--max-frame-size", fmt.Sprint(limit))
	pid := l.cmd.Process.Pid

	normal := startNormalSender(t, l.MLLPAddr, 1, 25*time.Millisecond)
	normal.waitCount(t, 5)
	rssBefore, _, err := processMemory(pid)
	if err != nil {
		t.Fatal(err)
	}

	type result struct {
		written int
		took    time.Duration
		err     error
	}
	results := make(chan result, floods)
	primed, release := make(chan struct{}, floods), make(chan struct{})
	for range floods {
		go func() {
			c, err := net.DialTimeout("tcp", l.MLLPAddr, ioTimeout)
			if err != nil {
				primed <- struct{}{}
				results <- result{err: err}
				return
			}
			defer c.Close()
			// Valid-looking HL7 after the start byte, then padding that
			// holds neither an end byte nor a start byte.
			data := bytes.Repeat([]byte("OBX|1|ED|PDF^Report||^AP^PDF^Base64^JVBERi0xLjQKJcfsj6IKNSAwIG9iago8PC9MZW5ndGggNiAwIFI+PgpzdHJlYW0K\r"), chunk/96+1)[:chunk]
			start := time.Now()
			written := 0
			c.SetWriteDeadline(start.Add(30 * time.Second))
			if _, err := c.Write([]byte{0x0b}); err != nil {
				primed <- struct{}{}
				results <- result{err: err}
				return
			}
			// Half the limit first, then wait while the normal sender
			// is served next to three frames in progress.
			for written < limit/2 {
				n, err := c.Write(data)
				written += n
				if err != nil {
					primed <- struct{}{}
					results <- result{written: written, err: fmt.Errorf("closed after %d bytes, under the limit: %w", written, err)}
					return
				}
			}
			primed <- struct{}{}
			<-release
			for written < flood {
				n, err := c.Write(data)
				written += n
				if err != nil {
					if errors.Is(err, os.ErrDeadlineExceeded) {
						results <- result{written: written, err: fmt.Errorf("write blocked for 30s after %d bytes: neither read nor closed", written)}
						return
					}
					results <- result{written: written, took: time.Since(start)}
					return
				}
			}
			results <- result{written: written, err: fmt.Errorf("all %d bytes written without the connection closing", written)}
		}()
	}
	for range floods {
		<-primed
	}
	during := normal.waitCount(t, normal.acked()+10)
	close(release)
	maxWritten, slowest := 0, time.Duration(0)
	for range floods {
		r := <-results
		if r.err != nil {
			t.Errorf("flood: %v", r.err)
			continue
		}
		if r.written < limit || r.written > limit+slack {
			t.Errorf("flood closed after %d bytes written, want %d to %d (the limit and socket buffers)", r.written, limit, limit+slack)
		}
		maxWritten, slowest = max(maxWritten, r.written), max(slowest, r.took)
	}
	after := normal.stop(t)
	rssAfter, peak, err := processMemory(pid)
	if err != nil {
		t.Fatal(err)
	}

	m := scrape(t, l.HTTPAddr)
	if got := m.sum("aorta_mllp_frames_too_large_total"); got != floods {
		t.Errorf("aorta_mllp_frames_too_large_total = %v, want %d", got, floods)
	}
	stored := count(t, db, `SELECT count(*) FROM messages`)
	if stored != normal.acked() {
		t.Errorf("%d rows stored, want the normal sender's %d", stored, normal.acked())
	}
	t.Logf("%d peers each tried to send %d MB without an end byte: closed after at most %.1f MiB written, within %v (--max-frame-size %d MiB); aorta_mllp_frames_too_large_total %v",
		floods, flood>>20, float64(maxWritten)/(1<<20), slowest.Round(time.Millisecond), limit>>20, m.sum("aorta_mllp_frames_too_large_total"))
	t.Logf("listener memory: resident %.1f MiB before, %.1f MiB after, peak %.1f MiB (race detector: %v)",
		float64(rssBefore)/(1<<20), float64(rssAfter)/(1<<20), float64(peak)/(1<<20), raceEnabled)
	t.Logf("normal sender: %d messages sent, %d ACKed, %d stored; ACK latency while three frames of %d MiB were in progress %s; after they were closed %s",
		normal.sent(), normal.acked(), stored, limit>>21, quantiles(during), quantiles(after))
	if peak-rssBefore > maxGrowth {
		t.Errorf("listener peak memory %.1f MiB, %.1f MiB above its %.1f MiB before the floods; want at most %d MiB more",
			float64(peak)/(1<<20), float64(peak-rssBefore)/(1<<20), float64(rssBefore)/(1<<20), maxGrowth>>20)
	}
	// Milliseconds as a rule; seconds would mean the floods held it up
	// (on a loaded two-core machine under -race a few hundred ms occur).
	if worst := time.Duration(quantileMax(during) * float64(time.Second)); worst > 2*time.Second {
		t.Errorf("the normal sender waited %v for an ACK next to the floods", worst)
	}
}

// TestThousandsOfConnections: 2,000 connections are opened and left idle,
// as a misconfigured sender or a port scan might; with
// --max-connections 2001 all are served, a sender's own connection among
// them is answered as fast as before, 200 more are refused at once and
// counted, and once the idle ones close their slots are free again. The
// listener's memory per idle connection is logged.
func TestThousandsOfConnections(t *testing.T) {
	t.Parallel()
	const (
		idle   = 2000
		beyond = 200
	)
	// The test holds every connection, so it needs a descriptor for each;
	// Go raises the soft limit to the hard one at start-up, where the
	// listener (a Go program too) does the same.
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	need := uint64(idle + beyond + 256)
	if rl.Cur < need {
		if rl.Max < need {
			t.Fatalf("open files limit %d (hard %d): %d connections need %d; raise it (ulimit -n)", rl.Cur, rl.Max, idle+beyond, need)
		}
		rl.Cur = need
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			t.Fatalf("raise the open files limit to %d: %v", need, err)
		}
	}
	dbURL := pgtest.NewDatabase(t)
	db := openDB(t, dbURL)
	l := startListener(t, dbURL, "--max-connections", fmt.Sprint(idle+1))
	pid := l.cmd.Process.Pid

	normal := startNormalSender(t, l.MLLPAddr, 1, 20*time.Millisecond)
	baseline := normal.waitCount(t, 20)
	rssBefore, _, err := processMemory(pid)
	if err != nil {
		t.Fatal(err)
	}

	// Open them 50 at a time.
	dialAll := func(n int) ([]net.Conn, time.Duration) {
		start := time.Now()
		conns := make([]net.Conn, n)
		errs := make(chan error, n)
		next := make(chan int)
		var wg sync.WaitGroup
		for range 50 {
			wg.Go(func() {
				for i := range next {
					c, err := net.DialTimeout("tcp", l.MLLPAddr, ioTimeout)
					if err != nil {
						errs <- err
						continue
					}
					conns[i] = c
				}
			})
		}
		for i := range n {
			next <- i
		}
		close(next)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("dial: %v", err)
		}
		t.Cleanup(func() {
			for _, c := range conns {
				c.Close()
			}
		})
		return conns, time.Since(start)
	}
	held, took := dialAll(idle)
	eventually(t, 30*time.Second, fmt.Sprintf("%d open connections", idle+1), func() (bool, string) {
		v := scrape(t, l.HTTPAddr).sum("aorta_mllp_open_connections")
		return v == idle+1, fmt.Sprintf("%v open", v)
	})
	rssHeld, _, err := processMemory(pid)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d idle connections opened in %v and served, the sender's own among them: listener resident %.1f MiB before, %.1f MiB with them (%.1f KiB each; race detector: %v)",
		idle, took.Round(time.Millisecond), float64(rssBefore)/(1<<20), float64(rssHeld)/(1<<20), float64(rssHeld-rssBefore)/idle/1024, raceEnabled)
	// A bound that catches a connection costing a frame buffer (16 MiB
	// by default) before it sends anything; the figure itself is logged.
	if per := (rssHeld - rssBefore) / idle; per > 256<<10 {
		t.Errorf("each idle connection costs the listener %d KiB, want at most 256 KiB", per>>10)
	}
	held20 := normal.waitCount(t, normal.acked()+20)

	// Beyond the limit: closed at once, before anything is read.
	extra, _ := dialAll(beyond)
	var wg sync.WaitGroup
	closedErrs := make(chan error, beyond)
	for _, c := range extra {
		wg.Go(func() {
			rc := &rawConn{t: t, c: c, r: mllp.NewReader(c, mllp.DefaultMaxFrameSize)}
			if _, err := rc.waitClosed(ioTimeout); err != nil {
				closedErrs <- err
			}
		})
	}
	wg.Wait()
	close(closedErrs)
	for err := range closedErrs {
		t.Errorf("connection beyond --max-connections: %v", err)
	}
	if got := scrape(t, l.HTTPAddr).sum(`aorta_mllp_connections_refused_total{reason="max_connections"}`); got != beyond {
		t.Errorf("aorta_mllp_connections_refused_total{reason=\"max_connections\"} = %v, want %d", got, beyond)
	}

	// The idle ones go; their slots are free again.
	for _, c := range held {
		c.Close()
	}
	eventually(t, 30*time.Second, "only the sender's connection open", func() (bool, string) {
		v := scrape(t, l.HTTPAddr).sum("aorta_mllp_open_connections")
		return v == 1, fmt.Sprintf("%v open", v)
	})
	if code, msa2 := msaOf(send(t, l.MLLPAddr, testMessageWithID("AFTER-IDLE", 7, 1))); code != "AA" || msa2 != "AFTER-IDLE" {
		t.Errorf("new connection after the idle ones closed: MSA %s/%s, want AA/AFTER-IDLE", code, msa2)
	}
	after := normal.stop(t)
	stored := count(t, db, `SELECT count(*) FROM messages`)
	if stored != normal.acked()+1 {
		t.Errorf("%d rows stored, want the normal sender's %d and one more", stored, normal.acked())
	}
	t.Logf("normal sender: %d messages sent, %d ACKed, %d stored; ACK latency before %s; with %d idle connections open %s; %d connections beyond the limit refused and counted",
		normal.sent(), normal.acked(), stored, quantiles(baseline), idle, quantiles(held20), beyond)
	t.Logf("normal sender after the idle connections closed: %s", quantiles(after))
}

// normalSender is a well-behaved sender on one connection of its own,
// sending one message after another with a pause between them, while a
// test misbehaves on other connections; it records each ACK's latency.
type normalSender struct {
	stopCh chan struct{}
	done   chan struct{}

	mu        sync.Mutex
	latencies []float64 // seconds, in order
	mark      int       // latencies before it were returned already
	sentN     int
	err       error
}

func startNormalSender(t *testing.T, addr string, sender int, pause time.Duration) *normalSender {
	t.Helper()
	ns := &normalSender{stopCh: make(chan struct{}), done: make(chan struct{})}
	ctx, cancel := context.WithTimeout(context.Background(), streamDeadline)
	c, err := mllp.Dial(ctx, addr)
	if err != nil {
		cancel()
		t.Fatalf("dial %s: %v", addr, err)
	}
	go func() {
		defer close(ns.done)
		defer cancel()
		defer c.Close()
		for n := 0; ; n++ {
			select {
			case <-ns.stopCh:
				return
			case <-time.After(pause):
			}
			cid := fmt.Sprintf("NORMAL-%d-%d", sender, n)
			start := time.Now()
			ns.mu.Lock()
			ns.sentN++
			ns.mu.Unlock()
			actx, acancel := context.WithTimeout(ctx, ioTimeout)
			ack, err := c.Send(actx, testMessageWithID(cid, sender, n))
			acancel()
			took := time.Since(start)
			if err == nil {
				if code, msa2 := msaOf(ack); code != "AA" || msa2 != cid {
					err = fmt.Errorf("%s answered %s/%s", cid, code, msa2)
				}
			}
			ns.mu.Lock()
			if err != nil {
				ns.err = fmt.Errorf("%s after %v: %w", cid, took, err)
				ns.mu.Unlock()
				return
			}
			ns.latencies = append(ns.latencies, took.Seconds())
			ns.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		select {
		case <-ns.stopCh:
		default:
			close(ns.stopCh)
		}
		<-ns.done
	})
	return ns
}

// waitCount waits until n messages in all were ACKed and returns the
// latencies of the ACKs since the previous waitCount (or the start).
func (ns *normalSender) waitCount(t *testing.T, n int) []float64 {
	t.Helper()
	eventually(t, 30*time.Second, fmt.Sprintf("the normal sender's %d ACKs", n), func() (bool, string) {
		ns.mu.Lock()
		defer ns.mu.Unlock()
		if ns.err != nil {
			t.Fatalf("normal sender: %v", ns.err)
		}
		return len(ns.latencies) >= n, fmt.Sprintf("%d ACKed", len(ns.latencies))
	})
	ns.mu.Lock()
	defer ns.mu.Unlock()
	return ns.since()
}

// since returns the latencies after the mark and moves the mark to the
// end. ns.mu is held.
func (ns *normalSender) since() []float64 {
	out := append([]float64(nil), ns.latencies[ns.mark:]...)
	ns.mark = len(ns.latencies)
	return out
}

// stop ends the sender after its current message, fails the test if a
// message of it went unanswered, and returns the latencies since the last
// waitCount.
func (ns *normalSender) stop(t *testing.T) []float64 {
	t.Helper()
	select {
	case <-ns.stopCh:
	default:
		close(ns.stopCh)
	}
	<-ns.done
	ns.mu.Lock()
	defer ns.mu.Unlock()
	if ns.err != nil {
		t.Errorf("normal sender: %v", ns.err)
	}
	return ns.since()
}

// sent and acked count the sender's messages.
func (ns *normalSender) sent() int {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	return ns.sentN
}

func (ns *normalSender) acked() int {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	return len(ns.latencies)
}

// quantileMax is the largest of latencies in seconds.
func quantileMax(ds []float64) float64 {
	m := 0.0
	for _, d := range ds {
		m = max(m, d)
	}
	return m
}
